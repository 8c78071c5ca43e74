import Foundation
import KafkaProtocol
import Logging
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

/// SCRAM, PBKDF2 and PLAIN against published vectors and edge cases, the per-connection SASL
/// state machine, the credentials file, and the SCRAM credential admin APIs.
final class SaslTests: XCTestCase {
    func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    // MARK: PBKDF2 known answers (RFC 6070 for HMAC-SHA-1, RFC 7914 §11 for HMAC-SHA-256)

    func testPBKDF2KnownAnswers() {
        let p = Array("password".utf8)
        let s = Array("salt".utf8)
        XCTAssertEqual(ScramHash.sha1.pbkdf2(password: p, salt: s, iterations: 1, length: 20), hex("0c60c80f961f0e71f3a9b524af6012062fe037a6"))
        XCTAssertEqual(ScramHash.sha1.pbkdf2(password: p, salt: s, iterations: 2, length: 20), hex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"))
        XCTAssertEqual(ScramHash.sha1.pbkdf2(password: p, salt: s, iterations: 4096, length: 20), hex("4b007901b765489abead49d926f721d065a429c1"))
        // Output longer than one hash block (two blocks, truncated).
        XCTAssertEqual(
            ScramHash.sha1.pbkdf2(
                password: Array("passwordPASSWORDpassword".utf8), salt: Array("saltSALTsaltSALTsaltSALTsaltSALTsalt".utf8), iterations: 4096, length: 25),
            hex("3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"))
        XCTAssertEqual(
            ScramHash.sha256.pbkdf2(password: Array("passwd".utf8), salt: s, iterations: 1, length: 64),
            hex(
                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"))
        XCTAssertEqual(
            ScramHash.sha256.pbkdf2(password: Array("Password".utf8), salt: Array("NaCl".utf8), iterations: 80000, length: 64),
            hex(
                "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"))
    }

    // MARK: SCRAM RFC vectors

    /// Runs the server through an RFC example: the server must send exactly the RFC's
    /// server-first and server-final messages for the RFC's client messages.
    func runVector(hash: ScramHash, salt: String, clientNonce: String, serverNonce: String, proof: String, serverSignature: String) {
        let credential = ScramCredential(hash: hash, password: "pencil", salt: Array(Data(base64Encoded: salt)!), iterations: 4096)
        var server = ScramServerExchange(mechanism: "SCRAM-TEST", hash: hash, serverNonce: serverNonce, lookup: { $0 == "user" ? credential : nil })
        let nonce = clientNonce + serverNonce
        XCTAssertEqual(server.step(Array("n,,n=user,r=\(clientNonce)".utf8)), .challenge(Array("r=\(nonce),s=\(salt),i=4096".utf8)))
        XCTAssertEqual(
            server.step(Array("c=biws,r=\(nonce),p=\(proof)".utf8)), .success(user: "user", finalBytes: Array("v=\(serverSignature)".utf8)))
        // Our client computes the same proof and expects the same signature.
        let client = ScramClient(hash: hash, user: "user", password: "pencil", clientNonce: clientNonce)
        let final = client.clientFinal(serverFirst: "r=\(nonce),s=\(salt),i=4096")
        XCTAssertEqual(final?.message, "c=biws,r=\(nonce),p=\(proof)")
        XCTAssertEqual(final?.expectedServerFinal, "v=\(serverSignature)")
    }

    func testRFC7677SCRAMSHA256Vector() {
        runVector(
            hash: .sha256, salt: "W22ZaJ0SNY7soEsUEjb6gQ==", clientNonce: "rOprNGfwEbeRWgbNEkqO", serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            proof: "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", serverSignature: "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    func testRFC5802SCRAMSHA1Vector() {
        runVector(
            hash: .sha1, salt: "QSXCR+Q6sek8bf92", clientNonce: "fyko+d2lbbFgONRv9qkxdawL", serverNonce: "3rfcNHYJY1ZVvWVs7j",
            proof: "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", serverSignature: "rmF9pqV8S7suAoZWja4dJRkFsKQ=")
    }

    func testSCRAMSHA512RoundTripAndWrongPassword() {
        let credential = ScramCredential(hash: .sha512, password: "s3cret")
        XCTAssertEqual(credential.storedKey.count, 64)
        for (password, ok) in [("s3cret", true), ("s3creT", false)] {
            var server = ScramServerExchange(mechanism: "SCRAM-SHA-512", hash: .sha512, lookup: { $0 == "al,i=ce" ? credential : nil })
            let client = ScramClient(hash: .sha512, user: "al,i=ce", password: password)
            XCTAssertTrue(client.clientFirst.contains("n=al=2Ci=3Dce"))
            guard case .challenge(let first) = server.step(Array(client.clientFirst.utf8)), let serverFirst = String(bytes: first, encoding: .utf8),
                let final = client.clientFinal(serverFirst: serverFirst)
            else { return XCTFail("no server-first") }
            XCTAssertTrue(serverFirst.hasPrefix("r=\(client.clientNonce)"), "the server nonce extends the client's")
            XCTAssertGreaterThan(serverFirst.count, "r=\(client.clientNonce),s=,i=4096".count + 24)
            let result = server.step(Array(final.message.utf8))
            if ok {
                XCTAssertEqual(result, .success(user: "al,i=ce", finalBytes: Array(final.expectedServerFinal.utf8)))
            } else {
                XCTAssertEqual(
                    result, .failure("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"))
            }
        }
    }

    func testServerNoncesDiffer() {
        let a = ScramServerExchange(mechanism: "m", hash: .sha256, lookup: { _ in nil }).serverNonce
        let b = ScramServerExchange(mechanism: "m", hash: .sha256, lookup: { _ in nil }).serverNonce
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(Data(base64Encoded: a)?.count, 24)
    }

    func testMalformedSCRAMMessagesFail() {
        let credential = ScramCredential(hash: .sha256, password: "pencil")
        let bad: [String] = [
            "", "n", "n,,", "p=tls-server-end-point,,n=user,r=abc", "x,,n=user,r=abc", "n,,r=abc,n=user", "n,,n=,r=abc", "n,,n=us=er,r=abc",
            "n,,n=user,r=", "n,,n=user,r=a,b", "n,a=other,n=user,r=abc", "n,,n=user,r=abc,tokenauth=true", "n,,n=nobody,r=abc",
            String(repeating: "n", count: 5000), "n,,n=user,r=abc\u{0}",
        ]
        for message in bad {
            var server = ScramServerExchange(mechanism: "SCRAM-SHA-256", hash: .sha256, lookup: { $0 == "user" ? credential : nil })
            guard case .failure = server.step(Array(message.utf8)) else { return XCTFail("accepted \(message.debugDescription)") }
        }
        var invalidUTF8 = ScramServerExchange(mechanism: "SCRAM-SHA-256", hash: .sha256, lookup: { _ in credential })
        guard case .failure = invalidUTF8.step([0x6e, 0x2c, 0x2c, 0xff, 0xfe]) else { return XCTFail("accepted invalid UTF-8") }
        // client-final errors: wrong binding, nonce, proof encoding or length; and a third message.
        let finals = ["c=eSws,r=NONCE,p=AAAA", "c=biws,r=other,p=AAAA", "c=biws,r=NONCE,p=***", "c=biws,r=NONCE,p=AAAA", "c=biws,r=NONCE", "garbage"]
        for template in finals {
            var server = ScramServerExchange(mechanism: "SCRAM-SHA-256", hash: .sha256, serverNonce: "S", lookup: { _ in credential })
            guard case .challenge = server.step(Array("n,,n=user,r=C".utf8)) else { return XCTFail("no challenge") }
            let message = template.replacingOccurrences(of: "NONCE", with: "CS")
            guard case .failure = server.step(Array(message.utf8)) else { return XCTFail("accepted \(message)") }
            guard case .failure = server.step(Array(message.utf8)) else { return XCTFail("a finished exchange accepted more") }
        }
        // librdkafka 2.0.x repeats the client nonce in client-final ("r=" + cnonce + cnonce + snonce);
        // Kafka accepts a nonce that ends with the combined one, and so do we. The proof covers what was sent.
        do {
            var server = ScramServerExchange(mechanism: "SCRAM-SHA-256", hash: .sha256, serverNonce: "SRV", lookup: { _ in credential })
            guard case .challenge(let first) = server.step(Array("n,,n=user,r=CLI".utf8)) else { return XCTFail("no challenge") }
            let serverFirst = String(decoding: first, as: UTF8.self)
            let salted = ScramHash.sha256.pbkdf2(password: Array("pencil".utf8), salt: Array(credential.salt), iterations: 4096, length: 32)
            let clientKey = ScramHash.sha256.hmac(key: salted, Array("Client Key".utf8))
            let withoutProof = "c=biws,r=CLICLISRV"
            let signature = ScramHash.sha256.hmac(key: ScramHash.sha256.hash(clientKey), Array("n=user,r=CLI,\(serverFirst),\(withoutProof)".utf8))
            let proof = Data(zip(clientKey, signature).map { $0 ^ $1 }).base64EncodedString()
            guard case .success = server.step(Array("\(withoutProof),p=\(proof)".utf8)) else { return XCTFail("librdkafka 2.0 nonce refused") }
        }
        // An authzid equal to the user is allowed (Kafka does the same).
        var same = ScramServerExchange(mechanism: "SCRAM-SHA-256", hash: .sha256, lookup: { $0 == "user" ? credential : nil })
        guard case .challenge = same.step(Array("n,a=user,n=user,r=abc".utf8)) else { return XCTFail("authzid = user refused") }
    }

    func testCredentialsWithOutOfRangeIterationsAreRefused() {
        var zero = ScramCredential(hash: .sha256, password: "p", iterations: 1)
        zero.iterations = 0
        let c = zero
        var server = ScramServerExchange(mechanism: "SCRAM-SHA-256", hash: .sha256, lookup: { _ in c })
        guard case .failure = server.step(Array("n,,n=user,r=abc".utf8)) else { return XCTFail("accepted 0 iterations") }
        var plain = PlainCredential(password: "p")
        plain.iterations = Int.max
        XCTAssertFalse(plain.matches("p"))
    }

    // MARK: PLAIN

    func testPlainParsing() throws {
        XCTAssertEqual(try PlainMessage.parse(Array("\0alice\0pw".utf8)), PlainMessage(authorizationId: "", user: "alice", password: "pw"))
        XCTAssertEqual(
            try PlainMessage.parse(Array("alice\0alice\0p w\u{e9}".utf8)), PlainMessage(authorizationId: "alice", user: "alice", password: "p w\u{e9}"))
        let cases: [([UInt8], PlainMessage.ParseError)] = [
            ([], .wrongFieldCount), (Array("alice".utf8), .wrongFieldCount), (Array("\0alice".utf8), .wrongFieldCount),
            (Array("\0alice\0pw\0x".utf8), .wrongFieldCount), (Array("\0\0pw".utf8), .emptyUser), (Array("\0alice\0".utf8), .emptyPassword),
            ([0, 0xff, 0, 0x41], .notUTF8), ([0] + Array(repeating: 0x61, count: 256) + [0, 0x61], .fieldTooLong),
            (Array(repeating: 0x61, count: 2000), .tooLarge), ([0, 0], .emptyUser),
        ]
        for (bytes, expected) in cases {
            XCTAssertThrowsError(try PlainMessage.parse(bytes), "\(bytes.prefix(20))") { XCTAssertEqual($0 as? PlainMessage.ParseError, expected) }
        }
    }

    func testPlainExchange() {
        let credential = PlainCredential(password: "pw")
        XCTAssertNotEqual(Array(credential.hash), Array("pw".utf8))
        func run(_ s: String) -> SaslStep {
            var e = PlainServerExchange(lookup: { $0 == "alice" ? credential : nil })
            return e.step(Array(s.utf8))
        }
        XCTAssertEqual(run("\0alice\0pw"), .success(user: "alice", finalBytes: []))
        XCTAssertEqual(run("alice\0alice\0pw"), .success(user: "alice", finalBytes: []))
        XCTAssertEqual(run("\0alice\0pW"), .failure("Authentication failed: Invalid username or password"))
        XCTAssertEqual(run("\0bob\0pw"), .failure("Authentication failed: Invalid username or password"))
        guard case .failure = run("bob\0alice\0pw") else { return XCTFail("another authzid accepted") }
    }

    // MARK: The connection's state machine

    func store(_ users: [String: String]) throws -> CredentialStore {
        let store = CredentialStore(dataDirectory: try temporaryDirectory("sasl").path)
        try store.update { file in
            for (name, password) in users {
                file.users[name] = UserCredentials(
                    scramSha256: ScramCredential(hash: .sha256, password: password), scramSha512: ScramCredential(hash: .sha512, password: password),
                    plain: PlainCredential(password: password))
            }
        }
        return store
    }

    func testSessionHandshakeAndAuthenticate() throws {
        let credentials = try store(["alice": "pw"])
        var s = SaslSession(mechanisms: [.plain, .scramSha256], credentials: credentials)
        let refused = s.handshake(SaslHandshakeRequest(mechanism: "SCRAM-SHA-512"), version: 1)
        XCTAssertEqual(refused.response, SaslHandshakeResponse(errorCode: .unsupportedSaslMechanism, mechanisms: ["PLAIN", "SCRAM-SHA-256"]))
        XCTAssertTrue(refused.close)

        // SaslAuthenticate before the handshake: ILLEGAL_SASL_STATE.
        s = SaslSession(mechanisms: [.plain, .scramSha256], credentials: credentials)
        XCTAssertEqual(s.authenticate(SaslAuthenticateRequest(authBytes: [])).response.errorCode, .illegalSaslState)

        s = SaslSession(mechanisms: [.plain, .scramSha256], credentials: credentials)
        XCTAssertEqual(s.handshake(SaslHandshakeRequest(mechanism: "SCRAM-SHA-256"), version: 1).response.errorCode, ErrorCode.none)
        XCTAssertFalse(s.expectsRawToken)
        let client = ScramClient(hash: .sha256, user: "alice", password: "pw")
        let first = s.authenticate(SaslAuthenticateRequest(authBytes: Array(client.clientFirst.utf8)))
        XCTAssertEqual(first.response.errorCode, ErrorCode.none)
        XCTAssertFalse(s.isAuthenticated)
        let final = client.clientFinal(serverFirst: String(decoding: first.response.authBytes, as: UTF8.self))!
        let done = s.authenticate(SaslAuthenticateRequest(authBytes: Array(final.message.utf8)))
        XCTAssertEqual(done.response.authBytes, Array(final.expectedServerFinal.utf8))
        XCTAssertEqual(s.principal, "User:alice")
        // Once authenticated, another handshake is a protocol error.
        XCTAssertEqual(s.handshake(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1).response.errorCode, .illegalSaslState)

        // Wrong PLAIN password: SASL_AUTHENTICATION_FAILED with a message, then close.
        s = SaslSession(mechanisms: [.plain], credentials: credentials)
        _ = s.handshake(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1)
        let wrong = s.authenticate(SaslAuthenticateRequest(authBytes: Array("\0alice\0nope".utf8)))
        XCTAssertEqual(wrong.response.errorCode, .saslAuthenticationFailed)
        XCTAssertNotNil(wrong.response.errorMessage)
        XCTAssertTrue(wrong.close)
        XCTAssertFalse(s.isAuthenticated)

        // Handshake v0: the tokens come bare.
        s = SaslSession(mechanisms: [.plain], credentials: credentials)
        _ = s.handshake(SaslHandshakeRequest(mechanism: "plain"), version: 0)
        XCTAssertTrue(s.expectsRawToken)
        XCTAssertEqual(s.step(Array("\0alice\0pw".utf8)), .success(user: "alice", finalBytes: []))
        XCTAssertEqual(s.principal, "User:alice")
    }

    /// Random and mutated tokens never trap and never authenticate.
    func testFuzzedTokensNeverCrashOrAuthenticate() throws {
        let credentials = try store(["user": "pencil"])
        var rng = SplitMix64(seed: 17)
        let seeds: [[UInt8]] = [
            Array("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL".utf8), Array("\0user\0pencil".utf8),
            Array("c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8),
        ]
        for _ in 0..<TestBudget.iterations(3000) {
            let m = rng.pick([SaslMechanism.plain, .scramSha256, .scramSha512])
            var s = SaslSession(mechanisms: SaslMechanism.allCases, credentials: credentials)
            _ = s.handshake(SaslHandshakeRequest(mechanism: m.rawValue), version: 1)
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                var token = rng.pick(seeds)
                rng.mutateFrame(&token)
                if rng.chance(0.1) { token = (0..<rng.below(64)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
                _ = s.authenticate(SaslAuthenticateRequest(authBytes: token))
            }
            // A mutated PLAIN token can only pass with the exact password bytes.
            if s.isAuthenticated { XCTAssertEqual(m, .plain) }
        }
    }

    // MARK: Credentials file

    func testCredentialsFileIsPrivateHoldsNoPasswordAndReloads() throws {
        let dir = try temporaryDirectory("credentials")
        let store = CredentialStore(dataDirectory: dir.path)
        XCTAssertNil(store.user("alice"))
        try store.update { $0.users["alice"] = UserCredentials(scramSha256: ScramCredential(hash: .sha256, password: "hunter2-secret")) }
        let attributes = try FileManager.default.attributesOfItem(atPath: store.path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let text = try String(contentsOfFile: store.path, encoding: .utf8)
        XCTAssertFalse(text.contains("hunter2"))
        XCTAssertTrue(text.contains("storedKey"))
        XCTAssertNotNil(store.user("alice"))
        // Another process (tape users) changes the file: the broker's store sees it.
        let other = CredentialStore(dataDirectory: dir.path)
        try other.update { $0.users["bob"] = UserCredentials(plain: PlainCredential(password: "x")) }
        XCTAssertNotNil(store.user("bob"))
        // No temporary files are left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["credentials.json", "credentials.json.lock"])
        // A malformed file is an error for read(); current() keeps the last good content.
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: store.path))
        XCTAssertThrowsError(try store.read())
        XCTAssertNotNil(store.user("bob"))
    }

    /// Writers in parallel (tape users and the broker are separate processes) lose no update.
    func testConcurrentUpdatesAreSerialized() throws {
        let dir = try temporaryDirectory("credentials-race")
        let credential = UserCredentials(plain: PlainCredential(password: "p", iterations: 1))
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            let store = CredentialStore(dataDirectory: dir.path)  // own descriptors, like another process
            for i in 0..<15 { try? store.update { $0.users["u\(worker)-\(i)"] = credential } }
        }
        XCTAssertEqual(try CredentialStore(dataDirectory: dir.path).read().users.count, 60)
    }

    func testSuperUsersAloneManageCredentials() async throws {
        var config = BrokerConfiguration()
        config.security.credentialsPath = try temporaryDirectory("super-users").appendingPathComponent("credentials.json").path
        config.security.superUsers = ["User:admin"]
        let broker = Broker(configuration: config, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
        await broker.setPrincipal("User:bob", connection: 1)
        await broker.setPrincipal("User:admin", connection: 2)
        let bob = await broker.describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: nil), connection: 1)
        XCTAssertEqual(bob.errorCode, .clusterAuthorizationFailed)
        let upsert = AlterUserScramCredentialsRequest(
            deletions: [], upsertions: [.init(name: "x", mechanism: 1, iterations: 4096, salt: [1], saltedPassword: Array(repeating: 1, count: 32))])
        let bobAlter = await broker.alterUserScramCredentials(upsert, connection: 1)
        XCTAssertEqual(bobAlter.results.map(\.errorCode), [.clusterAuthorizationFailed])
        XCTAssertNil(broker.credentials?.user("x"))
        let adminAlter = await broker.alterUserScramCredentials(upsert, connection: 2)
        XCTAssertEqual(adminAlter.results.map(\.errorCode), [ErrorCode.none])
        let admin = await broker.describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: nil), connection: 2)
        XCTAssertEqual(admin.results.map(\.user), ["x"])
    }

    // MARK: Admin APIs

    func testDescribeAndAlterUserScramCredentials() async throws {
        var config = BrokerConfiguration()
        config.security.credentialsPath = try temporaryDirectory("scram-admin").appendingPathComponent("credentials.json").path
        let broker = Broker(configuration: config, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
        // Unauthenticated connections are refused.
        let anonymous = await broker.describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: nil), connection: 9)
        XCTAssertEqual(anonymous.errorCode, .clusterAuthorizationFailed)
        let anonymousAlter = await broker.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(deletions: [.init(name: "x", mechanism: 1)], upsertions: []), connection: 9)
        XCTAssertEqual(anonymousAlter.results.map(\.errorCode), [.clusterAuthorizationFailed])

        await broker.setPrincipal("User:admin", connection: 1)
        let salt: [UInt8] = Array("salty".utf8)
        let salted = ScramHash.sha256.pbkdf2(password: Array("pw".utf8), salt: salt, iterations: 4096, length: 32)
        let alter = await broker.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(
                deletions: [.init(name: "ghost", mechanism: 1)],
                upsertions: [
                    .init(name: "alice", mechanism: 1, iterations: 4096, salt: salt, saltedPassword: salted),
                    .init(name: "low", mechanism: 1, iterations: 10, salt: salt, saltedPassword: salted),
                    .init(name: "odd", mechanism: 7, iterations: 4096, salt: salt, saltedPassword: salted),
                ]), connection: 1)
        XCTAssertEqual(alter.results.map(\.user), ["ghost", "alice", "low", "odd"])
        XCTAssertEqual(alter.results.map(\.errorCode), [.resourceNotFound, .none, .unacceptableCredential, .unsupportedSaslMechanism])
        // The stored credential authenticates the password the client salted.
        let stored = broker.credentials?.user("alice")?.scramSha256
        XCTAssertEqual(stored, ScramCredential(hash: .sha256, password: "pw", salt: salt, iterations: 4096))

        let all = await broker.describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: nil), connection: 1)
        XCTAssertEqual(all.results, [.init(user: "alice", errorCode: .none, credentials: [.init(mechanism: 1, iterations: 4096)])])
        let some = await broker.describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: ["alice", "nobody", "d", "d"]), connection: 1)
        XCTAssertEqual(some.results.map(\.errorCode), [.none, .resourceNotFound, .duplicateResource])

        let delete = await broker.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(deletions: [.init(name: "alice", mechanism: 1)], upsertions: []), connection: 1)
        XCTAssertEqual(delete.results.map(\.errorCode), [ErrorCode.none])
        XCTAssertNil(broker.credentials?.user("alice"))
    }

    func testUnauthenticatedFrameLimit() throws {
        let limit = UnauthenticatedFrameLimit(bytes: 16)
        var decoder = KafkaFrameDecoder(maxFrameBytes: 100, unauthenticatedLimit: limit)
        var big = ByteBuffer()
        big.writeInteger(Int32(17))
        XCTAssertThrowsError(try decoder.decode(buffer: &big)) { XCTAssertEqual(($0 as? FrameSizeError)?.maxFrameBytes, 16) }
        var small = ByteBuffer()
        small.writeInteger(Int32(2))
        small.writeBytes([1, 2])
        XCTAssertEqual(try decoder.decode(buffer: &small)?.readableBytes, 2)
        limit.lift()
        big = ByteBuffer()
        big.writeInteger(Int32(17))
        big.writeBytes([UInt8](repeating: 0, count: 17))
        XCTAssertEqual(try decoder.decode(buffer: &big)?.readableBytes, 17)
        var huge = ByteBuffer()
        huge.writeInteger(Int32(101))
        XCTAssertThrowsError(try decoder.decode(buffer: &huge), "maxFrameBytes still applies")
    }

    // MARK: Listener safety and certificate subjects

    func testLoopbackCheck() {
        for h in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"] { XCTAssertTrue(BrokerSecurity.isLoopback(host: h), h) }
        for h in ["0.0.0.0", "::", "10.0.0.1", "example.com", "127.0.0", "1127.0.0.1"] { XCTAssertFalse(BrokerSecurity.isLoopback(host: h), h) }
        XCTAssertNotNil(BrokerSecurity.insecureListenerRefusal(host: "0.0.0.0", authenticatesClients: false, insecure: false))
        XCTAssertNil(BrokerSecurity.insecureListenerRefusal(host: "0.0.0.0", authenticatesClients: true, insecure: false))
        XCTAssertNil(BrokerSecurity.insecureListenerRefusal(host: "0.0.0.0", authenticatesClients: false, insecure: true))
        XCTAssertNil(BrokerSecurity.insecureListenerRefusal(host: "127.0.0.1", authenticatesClients: false, insecure: false))
    }

    func testCertificateSubjectFromDER() throws {
        // A certificate made with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
        //   -subj "/C=DE/O=Tape, Inc/OU=ops/CN=client one" -days 1
        let pem = Self.samplePEM
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let der = Array(Data(base64Encoded: body)!)
        XCTAssertEqual(CertificateSubject.distinguishedName(der: der), "CN=client one,OU=ops,O=Tape\\, Inc,C=DE")
        // Truncations and garbage give nil, never a trap.
        for n in stride(from: 0, to: der.count, by: 7) { _ = CertificateSubject.distinguishedName(der: Array(der.prefix(n))) }
        XCTAssertNil(CertificateSubject.distinguishedName(der: [0x30, 0x84, 0xff, 0xff, 0xff, 0xff]))
    }

    static let samplePEM = """
        -----BEGIN CERTIFICATE-----
        MIIB3DCCAYOgAwIBAgIUdz3Eq/PYz5o8VNVn1Z26ImUA3icwCgYIKoZIzj0EAwIw
        RDELMAkGA1UEBhMCREUxEjAQBgNVBAoMCVRhcGUsIEluYzEMMAoGA1UECwwDb3Bz
        MRMwEQYDVQQDDApjbGllbnQgb25lMB4XDTI2MTIwNjExMzgwNFoXDTI2MTIwNzEx
        MzgwNFowRDELMAkGA1UEBhMCREUxEjAQBgNVBAoMCVRhcGUsIEluYzEMMAoGA1UE
        CwwDb3BzMRMwEQYDVQQDDApjbGllbnQgb25lMFkwEwYHKoZIzj0CAQYIKoZIzj0D
        AQcDQgAEjJz6v83DOpDdtTUK04rr/c9bzXZPHYz+x773BV9zlEZk/CHxyA+6Yt40
        CPaxecMxa0kZQqxdN2OF5Y+tXT8z0KNTMFEwHQYDVR0OBBYEFH+LpG9naxIDM1f8
        VbcJ/ekrzpOKMB8GA1UdIwQYMBaAFH+LpG9naxIDM1f8VbcJ/ekrzpOKMA8GA1Ud
        EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgTBQPrJF9ELkKOhN9BV3DPM6q
        HuuzX1AYbXu8MEKYPYcCICbQ9gm9Jc1Z3FOpgI2Idma8PE+E/lzmkUovnaOhtkz/
        -----END CERTIFICATE-----
        """
}

/// The SASL and SCRAM-credential messages encode and decode at every version, with Kafka's field layout.
final class SaslMessageTests: XCTestCase {
    func testSaslAuthenticateResponseBytes() throws {
        let r = SaslAuthenticateResponse(errorCode: .saslAuthenticationFailed, errorMessage: "no", authBytes: [1, 2], sessionLifetimeMs: 0)
        var v0 = ByteBuffer()
        r.encode(into: &v0, version: 0)
        XCTAssertEqual(Array(v0.readableBytesView), [0, 58, 0, 2, 0x6e, 0x6f, 0, 0, 0, 2, 1, 2])
        var v2 = ByteBuffer()
        r.encode(into: &v2, version: 2)
        XCTAssertEqual(Array(v2.readableBytesView), [0, 58, 3, 0x6e, 0x6f, 3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        for v: Int16 in 0...2 {
            var b = ByteBuffer()
            r.encode(into: &b, version: v)
            XCTAssertEqual(try SaslAuthenticateResponse.decode(from: &b, version: v), r)
            XCTAssertEqual(b.readableBytes, 0)
        }
        var h = ByteBuffer()
        SaslHandshakeResponse(errorCode: .none, mechanisms: ["PLAIN"]).encode(into: &h, version: 1)
        XCTAssertEqual(Array(h.readableBytesView), [0, 0, 0, 0, 0, 1, 0, 5] + Array("PLAIN".utf8))
    }

    func testScramCredentialResponsesRoundTrip() throws {
        let d = DescribeUserScramCredentialsResponse(
            errorCode: .none,
            results: [
                .init(user: "a", errorCode: .none, credentials: [.init(mechanism: 1, iterations: 4096)]),
                .init(user: "b", errorCode: .resourceNotFound, errorMessage: "x"),
            ])
        var b = ByteBuffer()
        d.encode(into: &b, version: 0)
        XCTAssertEqual(try DescribeUserScramCredentialsResponse.decode(from: &b, version: 0), d)
        let a = AlterUserScramCredentialsResponse(results: [
            .init(user: "a", errorCode: .none), .init(user: "b", errorCode: .unacceptableCredential, errorMessage: "m"),
        ])
        var c = ByteBuffer()
        a.encode(into: &c, version: 0)
        XCTAssertEqual(try AlterUserScramCredentialsResponse.decode(from: &c, version: 0), a)
        // A null user list (describe all) survives, distinct from an empty one.
        var n = ByteBuffer()
        DescribeUserScramCredentialsRequest(users: nil).encode(into: &n, version: 0)
        XCTAssertEqual(Array(n.readableBytesView), [0, 0])
        XCTAssertNil(try DescribeUserScramCredentialsRequest.decode(from: &n, version: 0).users)
    }
}
