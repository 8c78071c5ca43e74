import Foundation
import TapeBroker
import XCTest

@testable import TapeRuntime

/// How `tape up`'s stages reach an embedded broker that requires authentication: the user added
/// in memory, the librdkafka properties, and the refusal of mTLS without a client certificate.
final class InternalClientTests: XCTestCase {
    func testPlaintextWithoutAuthenticationAddsNothing() throws {
        let client = try InternalClient(security: BrokerSecurity(), properties: [:])
        XCTAssertEqual(client.properties, [:])
        XCTAssertTrue(client.security.internalUsers.isEmpty)
        XCTAssertTrue(client.security.aclExemptPrincipals.isEmpty)
    }

    func testSaslPicksTheStrongestMechanismWithAFreshPasswordEachTime() throws {
        var security = BrokerSecurity()
        security.saslMechanisms = [.plain, .scramSha256]
        let a = try InternalClient(security: security, properties: [:])
        let b = try InternalClient(security: security, properties: [:])
        XCTAssertEqual(a.properties["security.protocol"], "SASL_PLAINTEXT")
        XCTAssertEqual(a.properties["sasl.mechanisms"], "SCRAM-SHA-256")
        XCTAssertEqual(a.properties["sasl.username"], InternalClient.userName)
        let password = try XCTUnwrap(a.properties["sasl.password"])
        XCTAssertEqual(password.count, 64)
        XCTAssertNotEqual(password, b.properties["sasl.password"])
        // The broker holds a SCRAM credential for exactly that password, and no other.
        let user = try XCTUnwrap(a.security.internalUsers[InternalClient.userName])
        XCTAssertEqual(user.mechanisms, [.scramSha256])
        let credential = try XCTUnwrap(user.scramSha256)
        let again = ScramCredential(hash: .sha256, password: password, salt: [UInt8](credential.salt), iterations: credential.iterations)
        XCTAssertEqual(again.storedKey, credential.storedKey)
        XCTAssertEqual(a.security.aclExemptPrincipals, ["User:tape-internal"])
        XCTAssertEqual(a.security.superUsers, [], "the stages are exempt from ACLs without becoming super users")

        security.saslMechanisms = [.plain]
        let plain = try InternalClient(security: security, properties: [:])
        XCTAssertEqual(plain.properties["sasl.mechanisms"], "PLAIN")
        XCTAssertNotNil(plain.security.internalUsers[InternalClient.userName]?.plain)
    }

    func testTlsSkipsVerificationOfItsOwnListenerAndMutualTlsNeedsACertificate() throws {
        var security = BrokerSecurity()
        security.saslMechanisms = [.scramSha512]
        security.tls = .init(certificatePath: "/nonexistent/server.pem", privateKeyPath: "/nonexistent/server.key")
        let tls = try InternalClient(security: security, properties: [:])
        XCTAssertEqual(tls.properties["security.protocol"], "SASL_SSL")
        XCTAssertEqual(tls.properties["enable.ssl.certificate.verification"], "false")

        security.tls?.clientCAPath = "/nonexistent/ca.pem"
        XCTAssertThrowsError(try InternalClient(security: security, properties: [:])) { error in
            XCTAssertTrue("\(error)".contains("-X ssl.certificate.location=FILE -X ssl.key.location=FILE"), "\(error)")
        }
        XCTAssertThrowsError(
            try InternalClient(security: security, properties: ["ssl.certificate.location": "/nonexistent/c.pem", "ssl.key.location": "/nonexistent/c.key"])
        ) { error in
            XCTAssertTrue("\(error)".contains("is not a readable PEM certificate"), "\(error)")
        }
    }
}
