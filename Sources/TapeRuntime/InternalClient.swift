import Foundation
import TapeBroker

/// How `tape up`'s own stages (ingest, processing, the server's readers) reach an embedded broker
/// that requires authentication or TLS: the broker's security with one more user, and the
/// librdkafka properties the stages connect with.
///
/// The user (`tape-internal`) gets a random password made at every start and kept in memory only:
/// it is never written to the data directory (where a backup or another local account could read
/// it), `tape users list` does not show it, and no one outside this process can log in as it. Its
/// principal bypasses ACLs (without becoming a super user for credential management), so ACLs
/// never lock Tape out of its own topics. With mTLS the stages also need a client certificate
/// (`-X ssl.certificate.location` and `-X ssl.key.location`); its subject bypasses ACLs the same way.
public struct InternalClient: Sendable {
    /// The SASL user name of the stages; a user of that name in the credentials file cannot log in.
    public static let userName = "tape-internal"

    /// The broker's security with the internal user (and principals) added.
    public var security: BrokerSecurity
    /// librdkafka properties for the stages (empty for a PLAINTEXT listener); `-X` properties win over them.
    public var properties: [String: String]

    /// `properties` are the `-X` ones given (for the client certificate with mTLS). Throws
    /// `TapeConfigurationError` (a sentence) when mTLS is required and no client certificate is given.
    public init(security brokerSecurity: BrokerSecurity, properties given: [String: String]) throws {
        var security = brokerSecurity
        var client: [String: String] = [:]
        // The strongest mechanism the listener offers.
        let preference: [SaslMechanism] = [.scramSha512, .scramSha256, .plain]
        if let mechanism = preference.first(where: { security.saslMechanisms.contains($0) }) {
            let password = secureRandomBytes(32).map { String(format: "%02x", $0) }.joined()
            var user = UserCredentials()
            user.setScram(mechanism, mechanism == .plain ? nil : ScramCredential(hash: mechanism.scramHash ?? .sha256, password: password))
            if mechanism == .plain { user.plain = PlainCredential(password: password) }
            security.internalUsers[Self.userName] = user
            client["sasl.mechanisms"] = mechanism.rawValue
            client["sasl.username"] = Self.userName
            client["sasl.password"] = password
        }
        if let tls = security.tls {
            // The stages connect to this process's own listener, at the address it bound: the
            // certificate is not checked (it may be issued for a public name, or by a CA this
            // machine does not hold). `-X enable.ssl.certificate.verification=true` with
            // `-X ssl.ca.location` checks it.
            client["enable.ssl.certificate.verification"] = "false"
            client["ssl.endpoint.identification.algorithm"] = "none"
            if tls.clientCAPath != nil {
                guard let certificate = given["ssl.certificate.location"], given["ssl.key.location"] != nil else {
                    throw TapeConfigurationError(
                        "--tls-client-ca requires every client to present a certificate, Tape's own stages too: give them one signed by that CA with -X ssl.certificate.location=FILE -X ssl.key.location=FILE (its subject is exempt from ACLs)."
                    )
                }
                guard let principal = CertificateSubject.principal(pemFile: certificate) else {
                    throw TapeConfigurationError("-X ssl.certificate.location=\(certificate) is not a readable PEM certificate.")
                }
                security.internalPrincipals.append(principal)
            }
        }
        if security.protocolName != "PLAINTEXT" { client["security.protocol"] = security.protocolName }
        self.security = security
        self.properties = client
    }
}
