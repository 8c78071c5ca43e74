import Foundation
import KafkaProtocol

/// How `tape broker` authenticates clients and encrypts connections.
public struct BrokerSecurity: Sendable {
    /// SASL mechanisms clients must use; empty = no SASL (connections are not authenticated
    /// unless TLS client certificates are required).
    public var saslMechanisms: [SaslMechanism] = []
    /// The credentials file (`credentials.json` in the data directory).
    public var credentialsPath: String? = nil
    /// TLS on the listener: certificate chain and key (PEM), and the CA that client
    /// certificates must be signed by (mTLS; the principal is the certificate's subject).
    public var tls: TLSFiles? = nil
    /// Principals ("User:NAME", "User:CN=...") allowed to describe and alter SCRAM credentials
    /// (Kafka's `super.users`); empty: every authenticated principal. With ACLs enforced, these
    /// principals bypass every ACL.
    public var superUsers: [String] = []
    /// Enforce ACLs on every request (`tape broker --authorizer acl`). Default false: every client
    /// may do everything, and ACLs are only stored.
    public var aclAuthorizer = false
    /// With ACLs enforced, allow what no ACL covers (Kafka's `allow.everyone.if.no.acl.found`). Default false.
    public var allowEveryoneIfNoAclFound = false
    /// The ACL file (`acls.json` in the data directory); nil: the ACL APIs answer SECURITY_DISABLED.
    public var aclsPath: String? = nil
    /// Users known only to this process, never written to the credentials file and not listed by
    /// it (`tape up`'s own stages, with a password made at start and kept in memory). They win over
    /// the file's users of the same name, and their principals bypass ACLs.
    public var internalUsers: [String: UserCredentials] = [:]
    /// Other principals of this process's own clients (e.g. the subject of the client certificate
    /// `tape up`'s stages use with mTLS): they bypass ACLs like super users, without being super
    /// users for credential management.
    public var internalPrincipals: [String] = []

    /// Principals ACLs never refuse: the super users and this process's own clients.
    public var aclExemptPrincipals: Set<String> {
        Set(superUsers + internalPrincipals + internalUsers.keys.map { "User:\($0)" })
    }

    public struct TLSFiles: Sendable {
        public var certificatePath: String
        public var privateKeyPath: String
        public var clientCAPath: String?
        public init(certificatePath: String, privateKeyPath: String, clientCAPath: String? = nil) {
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
            self.clientCAPath = clientCAPath
        }
    }

    public init() {}

    /// Every client proves who it is: SASL, or a client certificate.
    public var authenticatesClients: Bool { !saslMechanisms.isEmpty || tls?.clientCAPath != nil }

    /// Kafka's name of the listener's security protocol.
    public var protocolName: String {
        switch (saslMechanisms.isEmpty, tls == nil) {
        case (true, true): "PLAINTEXT"
        case (true, false): "SSL"
        case (false, true): "SASL_PLAINTEXT"
        case (false, false): "SASL_SSL"
        }
    }

    /// 127.0.0.0/8, ::1 and localhost.
    public static func isLoopback(host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// The one sentence refusing an unauthenticated listener on a non-loopback address, or nil when allowed.
    public static func insecureListenerRefusal(
        host: String, authenticatesClients: Bool, insecure: Bool, remedy: String = "require authentication with --sasl or --tls-client-ca, "
    ) -> String? {
        if insecure || authenticatesClients || isLoopback(host: host) { return nil }
        return
            "refusing to listen on \(host) without authentication, since anyone who can reach it could produce, consume and delete data; \(remedy)listen on 127.0.0.1, or pass --insecure to accept that."
    }
}

/// One connection's SASL state: handshake (choose a mechanism), then the mechanism's exchange,
/// then authenticated. Until then only ApiVersions and the SASL requests are answered.
public struct SaslSession: Sendable {
    public let mechanisms: [SaslMechanism]
    let credentials: CredentialStore
    /// "User:NAME" once authenticated.
    public private(set) var principal: String?
    /// The mechanism chosen in the handshake.
    public private(set) var mechanism: SaslMechanism?
    private var exchange: Exchange?
    /// SaslHandshake v0: the tokens follow as bare size-prefixed frames, not SaslAuthenticate.
    private var legacy = false
    /// For tests: the SCRAM server nonce to use instead of a random one.
    var fixedServerNonce: String?

    enum Exchange: Sendable {
        case plain(PlainServerExchange)
        case scram(ScramServerExchange)
    }

    /// Frames larger than this are refused before authentication (Kafka's `sasl.server.max.receive.size`).
    public static let maxUnauthenticatedFrameBytes = 524_288

    public init(mechanisms: [SaslMechanism], credentials: CredentialStore) {
        self.mechanisms = mechanisms
        self.credentials = credentials
    }

    public var isAuthenticated: Bool { principal != nil }
    /// The next frame is a bare token of a v0 handshake's exchange.
    public var expectsRawToken: Bool { legacy && exchange != nil }

    var mechanismNames: [String] { mechanisms.map(\.rawValue) }

    /// Answers a SaslHandshake; `close` says the connection must close after the answer.
    public mutating func handshake(_ request: SaslHandshakeRequest, version: Int16) -> (response: SaslHandshakeResponse, close: Bool) {
        guard principal == nil, exchange == nil else {
            return (SaslHandshakeResponse(errorCode: .illegalSaslState, mechanisms: mechanismNames), true)
        }
        guard let m = SaslMechanism(rawValue: request.mechanism.uppercased()), mechanisms.contains(m) else {
            return (SaslHandshakeResponse(errorCode: .unsupportedSaslMechanism, mechanisms: mechanismNames), true)
        }
        mechanism = m
        legacy = version == 0
        let store = credentials
        switch m {
        case .plain: exchange = .plain(PlainServerExchange(lookup: { store.user($0)?.plain }))
        case .scramSha256, .scramSha512:
            exchange = .scram(
                ScramServerExchange(mechanism: m.rawValue, hash: m.scramHash ?? .sha256, serverNonce: fixedServerNonce, lookup: { store.user($0)?.scram(m) }))
        }
        return (SaslHandshakeResponse(errorCode: .none, mechanisms: mechanismNames), false)
    }

    /// One token of the exchange.
    public mutating func step(_ token: [UInt8]) -> SaslStep {
        guard var ex = exchange else { return .failure("Unexpected SASL token: send SaslHandshake first") }
        let result: SaslStep
        switch ex {
        case .plain(var p):
            result = p.step(token)
            ex = .plain(p)
        case .scram(var s):
            result = s.step(token)
            ex = .scram(s)
        }
        switch result {
        case .challenge: exchange = ex
        case .success(let user, _):
            exchange = nil
            principal = "User:\(user)"
        case .failure: exchange = nil
        }
        return result
    }

    /// Answers a SaslAuthenticate; `close` says the connection must close after the answer.
    public mutating func authenticate(_ request: SaslAuthenticateRequest) -> (response: SaslAuthenticateResponse, close: Bool) {
        guard principal == nil, exchange != nil, !legacy else {
            return (
                SaslAuthenticateResponse(errorCode: .illegalSaslState, errorMessage: "Unexpected SaslAuthenticate request: send SaslHandshake v1 first"),
                true
            )
        }
        switch step(request.authBytes) {
        case .challenge(let bytes): return (SaslAuthenticateResponse(errorCode: .none, authBytes: bytes), false)
        case .success(_, let bytes): return (SaslAuthenticateResponse(errorCode: .none, authBytes: bytes), false)
        case .failure(let message): return (SaslAuthenticateResponse(errorCode: .saslAuthenticationFailed, errorMessage: message), true)
        }
    }
}
