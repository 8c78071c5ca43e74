import Crypto
import Foundation

/// The SASL mechanisms `tape broker` can enable.
public enum SaslMechanism: String, Sendable, CaseIterable, Codable {
    case plain = "PLAIN"
    case scramSha256 = "SCRAM-SHA-256"
    case scramSha512 = "SCRAM-SHA-512"

    /// Lower-case name used on the command line and in the credentials file.
    public var optionName: String { rawValue.lowercased() }

    public init?(optionName: String) {
        guard let m = Self.allCases.first(where: { $0.optionName == optionName.lowercased() }) else { return nil }
        self = m
    }

    /// The SCRAM hash of this mechanism; nil for PLAIN.
    public var scramHash: ScramHash? {
        switch self {
        case .plain: nil
        case .scramSha256: .sha256
        case .scramSha512: .sha512
        }
    }
}

/// The hash functions SCRAM runs over (SHA-1 only for RFC 5802's test vector).
public enum ScramHash: Sendable {
    case sha1, sha256, sha512

    public var outputByteCount: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha512: 64
        }
    }

    public func hash(_ data: [UInt8]) -> [UInt8] {
        switch self {
        case .sha1: Array(Insecure.SHA1.hash(data: data))
        case .sha256: Array(SHA256.hash(data: data))
        case .sha512: Array(SHA512.hash(data: data))
        }
    }

    public func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let k = SymmetricKey(data: key)
        switch self {
        case .sha1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: k))
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: k))
        case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: k))
        }
    }

    /// PBKDF2 (RFC 8018) with HMAC over this hash; `iterations` must be at least 1.
    public func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        switch self {
        case .sha1: Self.pbkdf2(Insecure.SHA1.self, password: password, salt: salt, iterations: iterations, length: length)
        case .sha256: Self.pbkdf2(SHA256.self, password: password, salt: salt, iterations: iterations, length: length)
        case .sha512: Self.pbkdf2(SHA512.self, password: password, salt: salt, iterations: iterations, length: length)
        }
    }

    private static func pbkdf2<H: HashFunction>(_: H.Type, password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var out: [UInt8] = []
        out.reserveCapacity(length)
        var block: UInt32 = 1
        while out.count < length {
            var first = HMAC<H>(key: key)
            first.update(data: salt)
            first.update(data: [UInt8(block >> 24), UInt8((block >> 16) & 0xff), UInt8((block >> 8) & 0xff), UInt8(block & 0xff)])
            var u = Array(first.finalize())
            var t = u
            var i = 1
            while i < iterations {
                u = Array(HMAC<H>.authenticationCode(for: u, using: key))
                for j in t.indices { t[j] ^= u[j] }
                i += 1
            }
            out.append(contentsOf: t)
            block &+= 1
        }
        return Array(out.prefix(length))
    }
}

/// Byte-wise comparison whose time depends only on the lengths, not on where the bytes differ.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in a.indices { diff |= a[i] ^ b[i] }
    return diff == 0
}

/// `count` bytes from the system CSPRNG (getrandom on Linux).
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    var g = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
}

/// What the server keeps of a SCRAM password (RFC 5802 §3): never the password itself.
public struct ScramCredential: Sendable, Codable, Equatable {
    public var salt: Data
    public var iterations: Int
    public var storedKey: Data
    public var serverKey: Data

    public init(salt: Data, iterations: Int, storedKey: Data, serverKey: Data) {
        self.salt = salt
        self.iterations = iterations
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// From the salted password (PBKDF2 output), as AlterUserScramCredentials sends it.
    public init(hash: ScramHash, saltedPassword: [UInt8], salt: [UInt8], iterations: Int) {
        let clientKey = hash.hmac(key: saltedPassword, Array("Client Key".utf8))
        let serverKey = hash.hmac(key: saltedPassword, Array("Server Key".utf8))
        self.init(salt: Data(salt), iterations: iterations, storedKey: Data(hash.hash(clientKey)), serverKey: Data(serverKey))
    }

    /// From a password (`tape users add`).
    public init(hash: ScramHash, password: String, salt: [UInt8] = secureRandomBytes(32), iterations: Int = 4096) {
        let salted = hash.pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations, length: hash.outputByteCount)
        self.init(hash: hash, saltedPassword: salted, salt: salt, iterations: iterations)
    }
}

/// A SASL exchange step's outcome.
public enum SaslStep: Sendable, Equatable {
    /// Send these bytes to the client and wait for its next message.
    case challenge([UInt8])
    /// Authenticated as `user`; send `finalBytes` (may be empty).
    case success(user: String, finalBytes: [UInt8])
    /// Authentication failed: `message` goes to the client, then the connection closes.
    case failure(String)
}

/// The server side of one SCRAM exchange (RFC 5802; RFC 7677 for SHA-256): client-first →
/// server-first, client-final → server-final. No channel binding (Kafka has none).
public struct ScramServerExchange: Sendable {
    public let mechanism: String
    let hash: ScramHash
    let lookup: @Sendable (String) -> ScramCredential?
    let serverNonce: String
    private var state: State = .initial

    enum State {
        case initial
        case sentFirst(user: String, credential: ScramCredential, gs2Header: String, clientFirstBare: String, serverFirst: String, nonce: String)
        case done
    }

    /// Largest SCRAM message accepted (real ones are a few hundred bytes).
    public static let maxMessageBytes = 4096
    /// Iterations accepted from the credential store (Kafka allows 4096...16384).
    public static let iterationRange = 1...1_000_000

    /// `serverNonce`: tests pass RFC vectors' nonces; otherwise 24 random bytes, base64.
    public init(mechanism: String, hash: ScramHash, serverNonce: String? = nil, lookup: @escaping @Sendable (String) -> ScramCredential?) {
        self.mechanism = mechanism
        self.hash = hash
        self.lookup = lookup
        self.serverNonce = serverNonce ?? Data(secureRandomBytes(24)).base64EncodedString()
    }

    var failed: String { "Authentication failed during authentication due to invalid credentials with SASL mechanism \(mechanism)" }

    public mutating func step(_ message: [UInt8]) -> SaslStep {
        let current = state
        state = .done
        guard message.count <= Self.maxMessageBytes, let text = String(bytes: message, encoding: .utf8), !text.contains("\0") else {
            return .failure("Invalid SCRAM message: not UTF-8 text of at most \(Self.maxMessageBytes) bytes")
        }
        switch current {
        case .initial: return clientFirst(text)
        case .sentFirst(let user, let credential, let gs2, let bare, let serverFirst, let nonce):
            return clientFinal(text, user: user, credential: credential, gs2Header: gs2, clientFirstBare: bare, serverFirst: serverFirst, nonce: nonce)
        case .done: return .failure("Invalid SCRAM state: the exchange is already finished")
        }
    }

    /// `saslname` decoding: "=2C" is ",", "=3D" is "="; any other "=" is invalid.
    static func decodeSaslName(_ s: Substring) -> String? {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == "=" {
                let rest = s[i...]
                if rest.hasPrefix("=2C") {
                    out.append(",")
                } else if rest.hasPrefix("=3D") {
                    out.append("=")
                } else {
                    return nil
                }
                i = s.index(i, offsetBy: 3)
            } else {
                out.append(c)
                i = s.index(after: i)
            }
        }
        return out
    }

    private mutating func clientFirst(_ text: String) -> SaslStep {
        // gs2-header: cbind flag "n" or "y" (no channel binding), then optional "a=authzid".
        let parts = text.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure("Invalid SCRAM client-first message: no GS2 header") }
        switch parts[0] {
        case "n", "y": break
        default: return .failure("Invalid SCRAM client-first message: channel binding is not supported")
        }
        var authzid: String?
        if !parts[1].isEmpty {
            guard parts[1].hasPrefix("a="), let a = Self.decodeSaslName(parts[1].dropFirst(2)) else {
                return .failure("Invalid SCRAM client-first message: bad authorization id")
            }
            authzid = a
        }
        let bare = String(parts[2])
        let attributes = bare.split(separator: ",", omittingEmptySubsequences: false)
        guard attributes.count >= 2, attributes[0].hasPrefix("n="), attributes[1].hasPrefix("r=") else {
            return .failure("Invalid SCRAM client-first message: expected n=USER,r=NONCE")
        }
        guard let user = Self.decodeSaslName(attributes[0].dropFirst(2)), !user.isEmpty else {
            return .failure("Invalid SCRAM client-first message: bad user name")
        }
        let clientNonce = String(attributes[1].dropFirst(2))
        guard !clientNonce.isEmpty, clientNonce.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7e && $0 != UInt8(ascii: ",") }) else {
            return .failure("Invalid SCRAM client-first message: bad nonce")
        }
        for ext in attributes.dropFirst(2) {
            // Extensions are KEY=VALUE; Kafka's delegation-token one is not supported, others are ignored.
            guard let eq = ext.firstIndex(of: "="), eq != ext.startIndex, ext[..<eq].allSatisfy({ $0.isASCII && $0.isLetter }) else {
                return .failure("Invalid SCRAM client-first message: bad extension")
            }
            if ext.hasPrefix("tokenauth=") && ext != "tokenauth=false" { return .failure("Delegation token authentication is not supported") }
        }
        if let authzid, authzid != user {
            return .failure("Authentication failed: the authorization id must be empty or equal the user name")
        }
        guard let credential = lookup(user), Self.iterationRange.contains(credential.iterations),
            credential.storedKey.count == hash.outputByteCount, credential.serverKey.count == hash.outputByteCount
        else { return .failure(failed) }
        let nonce = clientNonce + serverNonce
        let serverFirst = "r=\(nonce),s=\(credential.salt.base64EncodedString()),i=\(credential.iterations)"
        state = .sentFirst(
            user: user, credential: credential, gs2Header: "\(parts[0]),\(parts[1]),", clientFirstBare: bare, serverFirst: serverFirst, nonce: nonce)
        return .challenge(Array(serverFirst.utf8))
    }

    private func clientFinal(
        _ text: String, user: String, credential: ScramCredential, gs2Header: String, clientFirstBare: String, serverFirst: String, nonce: String
    ) -> SaslStep {
        guard let proofRange = text.range(of: ",p=", options: .backwards) else {
            return .failure("Invalid SCRAM client-final message: no proof")
        }
        let withoutProof = String(text[..<proofRange.lowerBound])
        let attributes = withoutProof.split(separator: ",", omittingEmptySubsequences: false)
        guard attributes.count >= 2, attributes[0].hasPrefix("c="), attributes[1].hasPrefix("r=") else {
            return .failure("Invalid SCRAM client-final message: expected c=…,r=…,p=…")
        }
        guard let binding = Data(base64Encoded: String(attributes[0].dropFirst(2))), Array(binding) == Array(gs2Header.utf8) else {
            return .failure("Invalid SCRAM client-final message: channel binding does not match the GS2 header")
        }
        // Kafka accepts any nonce that ends with the combined one (it still carries this exchange's
        // fresh server nonce): librdkafka 2.0.x (Debian 12's) sends the client nonce twice.
        guard attributes[1].dropFirst(2).hasSuffix(nonce) else { return .failure("Invalid SCRAM client-final message: nonce mismatch") }
        guard let proof = Data(base64Encoded: String(text[proofRange.upperBound...])), proof.count == hash.outputByteCount else {
            return .failure("Invalid SCRAM client-final message: bad proof")
        }
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = hash.hmac(key: Array(credential.storedKey), authMessage)
        var clientKey = Array(proof)
        for i in clientKey.indices { clientKey[i] ^= clientSignature[i] }
        guard constantTimeEquals(hash.hash(clientKey), Array(credential.storedKey)) else { return .failure(failed) }
        let serverSignature = hash.hmac(key: Array(credential.serverKey), authMessage)
        return .success(user: user, finalBytes: Array("v=\(Data(serverSignature).base64EncodedString())".utf8))
    }
}

/// SCRAM client side, for tests and the in-process round trip (not used by the broker).
public struct ScramClient: Sendable {
    public let hash: ScramHash
    public let user: String
    public let password: String
    public let clientNonce: String
    public init(hash: ScramHash, user: String, password: String, clientNonce: String = Data(secureRandomBytes(18)).base64EncodedString()) {
        self.hash = hash
        self.user = user
        self.password = password
        self.clientNonce = clientNonce
    }

    public var clientFirst: String { "n,,n=\(user.replacingOccurrences(of: "=", with: "=3D").replacingOccurrences(of: ",", with: "=2C")),r=\(clientNonce)" }

    /// The client-final message for `serverFirst`, and the server signature expected back; nil when unparsable.
    public func clientFinal(serverFirst: String) -> (message: String, expectedServerFinal: String)? {
        var nonce: String?
        var salt: Data?
        var iterations: Int?
        for a in serverFirst.split(separator: ",") {
            if a.hasPrefix("r=") { nonce = String(a.dropFirst(2)) }
            if a.hasPrefix("s=") { salt = Data(base64Encoded: String(a.dropFirst(2))) }
            if a.hasPrefix("i=") { iterations = Int(a.dropFirst(2)) }
        }
        guard let nonce, let salt, let iterations, iterations >= 1 else { return nil }
        let salted = hash.pbkdf2(password: Array(password.utf8), salt: Array(salt), iterations: iterations, length: hash.outputByteCount)
        let clientKey = hash.hmac(key: salted, Array("Client Key".utf8))
        let storedKey = hash.hash(clientKey)
        let withoutProof = "c=biws,r=\(nonce)"
        let authMessage = Array("\(clientFirst.dropFirst(3)),\(serverFirst),\(withoutProof)".utf8)
        let signature = hash.hmac(key: storedKey, authMessage)
        var proof = clientKey
        for i in proof.indices { proof[i] ^= signature[i] }
        let serverKey = hash.hmac(key: salted, Array("Server Key".utf8))
        let serverSignature = hash.hmac(key: serverKey, authMessage)
        return ("\(withoutProof),p=\(Data(proof).base64EncodedString())", "v=\(Data(serverSignature).base64EncodedString())")
    }
}
