import Foundation
import KafkaProtocol
import NIOCore
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `tape broker` with SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), TLS and mTLS, driven by real
/// clients: confluent-kafka (librdkafka 2.16), kcat (Debian's librdkafka) and kafka-python.
/// Certificates are made here with openssl. Everything connects through 127.0.0.1.
final class AuthProcessTests: XCTestCase {
    var kcat: String!
    var python: String!
    var openssl: String!
    var pki: URL!

    override func setUpWithError() throws {
        kcat = try Executables.require("kcat")
        python = try Executables.require("python3")
        openssl = try Executables.require("openssl")
    }

    override func tearDown() {
        if let pki { try? FileManager.default.removeItem(at: pki) }
    }

    // MARK: Helpers

    func tape(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
        try runProcess(TapeBinary.privateCopy, arguments, stdin: stdin, timeout: 60)
    }

    /// A data directory with users alice/alice-secret (all mechanisms) and bob/bob-secret (SCRAM-SHA-512 only).
    func dataDirWithUsers() throws -> URL {
        let dir = try temporaryDirectory("auth-data")
        var r = try tape(["users", "add", "alice", "--data-dir", dir.path], stdin: "alice-secret\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try tape(["users", "add", "bob", "--mechanism", "scram-sha-512", "--data-dir", dir.path], stdin: "bob-secret\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir
    }

    /// A CA, a server certificate for 127.0.0.1/localhost and a client certificate (CN=tape-client), all PEM.
    func makePKI() throws -> URL {
        let dir = try temporaryDirectory("pki")
        pki = dir
        func ssl(_ args: [String]) throws {
            let r = try runProcess(openssl, args, timeout: 60)
            guard r.status == 0 else { throw TestSupportError("openssl \(args.joined(separator: " ")): \(r.stderr)") }
        }
        let p = dir.path
        try ssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Tape Test CA", "-keyout", "\(p)/ca.key", "-out", "\(p)/ca.pem"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: "\(p)/server.ext", atomically: true, encoding: .utf8)
        try ssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "\(p)/server.key", "-out", "\(p)/server.csr"])
        try ssl([
            "x509", "-req", "-in", "\(p)/server.csr", "-CA", "\(p)/ca.pem", "-CAkey", "\(p)/ca.key", "-CAcreateserial", "-days", "2", "-extfile",
            "\(p)/server.ext", "-out", "\(p)/server.pem",
        ])
        try ssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=Tape/CN=tape-client", "-keyout", "\(p)/client.key", "-out", "\(p)/client.csr"])
        try ssl([
            "x509", "-req", "-in", "\(p)/client.csr", "-CA", "\(p)/ca.pem", "-CAkey", "\(p)/ca.key", "-CAcreateserial", "-days", "2", "-out", "\(p)/client.pem",
        ])
        return dir
    }

    /// confluent-kafka: produce `count` records to `topic`, consume them back in a group; prints "OK n" or the error.
    static let confluentScript = """
        import sys, json, uuid
        from confluent_kafka import Producer, Consumer, KafkaException
        bootstrap, topic, count, conf = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
        errors = []
        base = dict(conf, **{"bootstrap.servers": bootstrap, "error_cb": lambda e: errors.append(str(e))})
        p = Producer(base)
        for i in range(count):
            p.produce(topic, value=b"m%d" % i)
        left = p.flush(20)
        if left:
            print("NOT-DELIVERED", left, errors)
            sys.exit(2)
        c = Consumer(dict(base, **{"group.id": "g-" + uuid.uuid4().hex, "auto.offset.reset": "earliest"}))
        c.subscribe([topic])
        got = []
        import time
        deadline = time.time() + 30
        while len(got) < count and time.time() < deadline:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            got.append(m.value())
        c.close()
        print("OK", len(got), sorted(got) == sorted(b"m%d" % i for i in range(count)))
        """

    /// confluent-kafka with a client that must fail: prints "AUTH-FAILED <message>" when the broker refused it.
    static let confluentFailScript = """
        import sys, json
        from confluent_kafka.admin import AdminClient
        from confluent_kafka import KafkaException
        errors = []
        conf = dict(json.loads(sys.argv[2]), **{"bootstrap.servers": sys.argv[1], "error_cb": lambda e: errors.append(str(e))})
        a = AdminClient(conf)
        try:
            md = a.list_topics(timeout=8)
            print("LISTED", sorted(md.topics))
        except KafkaException as e:
            errors.append(str(e))
        a.poll(1)
        auth = [e for e in errors if "Authentication failed" in e or "SASL authentication error" in e]
        print("AUTH-FAILED" if auth else "OTHER", auth[:1] or errors[:2])
        """

    func confluent(_ broker: BrokerProcess, topic: String, count: Int = 20, _ conf: [String: String]) throws -> ProcessResult {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: conf), as: UTF8.self)
        return try runProcess(python, ["-c", Self.confluentScript, broker.address, topic, String(count), json], timeout: 90)
    }

    func confluentFailing(_ broker: BrokerProcess, _ conf: [String: String]) throws -> ProcessResult {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: conf), as: UTF8.self)
        return try runProcess(python, ["-c", Self.confluentFailScript, broker.address, json], timeout: 60)
    }

    /// kcat produces three lines then reads them back (-e: exit at the end).
    func kcatRoundTrip(_ broker: BrokerProcess, topic: String, _ options: [String: String]) throws {
        let x = options.sorted { $0.key < $1.key }.flatMap { ["-X", "\($0.key)=\($0.value)"] }
        let produced = try runProcess(kcat, ["-b", broker.address, "-P", "-t", topic] + x, stdin: "one\ntwo\nthree\n", timeout: 60)
        XCTAssertEqual(produced.status, 0, "kcat -P: \(produced.stderr)\nbroker: \(broker.log.suffix(3000))")
        let consumed = try runProcess(kcat, ["-b", broker.address, "-C", "-t", topic, "-o", "beginning", "-e", "-q"] + x, timeout: 60)
        XCTAssertEqual(consumed.status, 0, "kcat -C: \(consumed.stderr)")
        XCTAssertEqual(consumed.stdout, "one\ntwo\nthree\n", consumed.stderr)
    }

    func sasl(_ mechanism: String, _ user: String, _ password: String, ssl: Bool = false) -> [String: String] {
        ["security.protocol": ssl ? "SASL_SSL" : "SASL_PLAINTEXT", "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password]
    }

    // MARK: Tests

    func testUsersAddListDeleteRoundTrip() throws {
        let dir = try temporaryDirectory("users")
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = try tape(["users", "add", "alice", "--data-dir", dir.path], stdin: "first-password\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("added user alice"), r.stdout)
        let passwordFile = dir.appendingPathComponent("pw.txt")
        try "bob-password\n".write(to: passwordFile, atomically: true, encoding: .utf8)
        r = try tape([
            "users", "add", "bob", "--mechanism", "plain", "--mechanism", "scram-sha-512", "--password-file", passwordFile.path, "--data-dir", dir.path,
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try tape(["users", "list", "--data-dir", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "alice\tPLAIN,SCRAM-SHA-256,SCRAM-SHA-512\nbob\tPLAIN,SCRAM-SHA-512\n")
        // The file is private and holds no password.
        let file = dir.appendingPathComponent("credentials.json").path
        let mode = (try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber)?.intValue
        XCTAssertEqual(mode, 0o600)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        XCTAssertFalse(text.contains("first-password") || text.contains("bob-password"))
        // Re-adding replaces; an empty password and an unknown mechanism are refused.
        r = try tape(["users", "add", "alice", "--data-dir", dir.path], stdin: "second-password\n")
        XCTAssertTrue(r.stdout.contains("updated user alice"), r.stdout)
        r = try tape(["users", "add", "carol", "--data-dir", dir.path], stdin: "\n")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("password is empty"), r.stderr)
        r = try tape(["users", "add", "carol", "--mechanism", "md5", "--data-dir", dir.path], stdin: "x\n")
        XCTAssertNotEqual(r.status, 0)
        r = try tape(["users", "delete", "bob", "--data-dir", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try tape(["users", "list", "--data-dir", dir.path])
        XCTAssertEqual(r.stdout, "alice\tPLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n")
        r = try tape(["users", "delete", "bob", "--data-dir", dir.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("there is no user bob"), r.stderr)
    }

    /// SASL_PLAINTEXT with each mechanism, through confluent-kafka and kcat; wrong passwords fail
    /// with an authentication error and the broker stays up; unauthenticated clients get nothing.
    func testSaslPlaintextAllMechanisms() throws {
        let dir = try dataDirWithUsers()
        let broker = try BrokerProcess(extraArguments: ["--sasl", "plain,scram-sha-256,scram-sha-512"], dataDir: dir)
        defer {
            broker.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let topic = "sasl-\(mechanism.lowercased())"
            let r = try confluent(broker, topic: topic, sasl(mechanism, "alice", "alice-secret"))
            XCTAssertEqual(r.status, 0, "\(mechanism): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("OK 20 True"), "\(mechanism): \(r.stdout) \(r.stderr)\n\(broker.log.suffix(3000))")
            try kcatRoundTrip(broker, topic: topic + "-kcat", sasl(mechanism, "alice", "alice-secret"))
        }
        // bob has only a SCRAM-SHA-512 credential.
        XCTAssertTrue(try confluent(broker, topic: "bob", sasl("SCRAM-SHA-512", "bob", "bob-secret")).stdout.contains("OK 20 True"))
        for (mechanism, user, password) in [
            ("PLAIN", "alice", "wrong"), ("SCRAM-SHA-256", "alice", "wrong"), ("SCRAM-SHA-512", "alice", "alice-secreT"),
            ("SCRAM-SHA-256", "bob", "bob-secret"), ("PLAIN", "nobody", "x"),
        ] {
            let r = try confluentFailing(broker, sasl(mechanism, user, password))
            XCTAssertTrue(r.stdout.hasPrefix("AUTH-FAILED"), "\(mechanism) \(user): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(broker.process.isRunning)
        }
        let kcatWrong = try runProcess(
            kcat,
            ["-b", broker.address, "-L", "-m", "5"]
                + sasl("SCRAM-SHA-256", "alice", "nope").sorted { $0.key < $1.key }.flatMap { ["-X", "\($0.key)=\($0.value)"] },
            timeout: 60)
        XCTAssertNotEqual(kcatWrong.status, 0)
        XCTAssertTrue(kcatWrong.stderr.contains("Authentication failed"), kcatWrong.stderr)
        // A client without SASL: ApiVersions is answered, anything else closes the connection unanswered.
        let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
        defer { close(fd) }
        // Metadata v1, correlation id 7, client id "x", all topics (-1).
        let metadata: [UInt8] = [0, 0, 0, 15, 0, 3, 0, 1, 0, 0, 0, 7, 0, 1, 0x78, 0xff, 0xff, 0xff, 0xff]
        XCTAssertEqual(metadata.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, metadata.count)
        var buffer = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(read(fd, &buffer, buffer.count), 0, "the broker must close without answering")
        XCTAssertTrue(broker.log.contains("before SASL authentication"), broker.log.suffix(2000).description)
        let plainClient = try runProcess(kcat, ["-b", broker.address, "-L", "-m", "4"], timeout: 60)
        XCTAssertNotEqual(plainClient.status, 0)
        XCTAssertFalse(plainClient.stdout.contains("sasl-plain"), plainClient.stdout)
        // Still serving, and no password was logged.
        XCTAssertTrue(try confluent(broker, topic: "after", count: 3, sasl("SCRAM-SHA-256", "alice", "alice-secret")).stdout.contains("OK 3 True"))
        XCTAssertFalse(broker.log.contains("alice-secret"))
        XCTAssertTrue(broker.log.contains("principal=User:alice"), broker.log.suffix(2000).description)
    }

    /// Users added while the broker runs can log in at once (the broker re-reads the file).
    func testUserAddedWhileRunning() throws {
        let dir = try temporaryDirectory("auth-live")
        let broker = try BrokerProcess(extraArguments: ["--sasl", "scram-sha-256"], dataDir: dir)
        defer {
            broker.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        XCTAssertTrue(try confluentFailing(broker, sasl("SCRAM-SHA-256", "late", "pw-late")).stdout.hasPrefix("AUTH-FAILED"))
        XCTAssertEqual(try tape(["users", "add", "late", "--data-dir", dir.path], stdin: "pw-late\n").status, 0)
        XCTAssertTrue(try confluent(broker, topic: "late", count: 5, sasl("SCRAM-SHA-256", "late", "pw-late")).stdout.contains("OK 5 True"))
        XCTAssertEqual(try tape(["users", "delete", "late", "--data-dir", dir.path]).status, 0)
        XCTAssertTrue(try confluentFailing(broker, sasl("SCRAM-SHA-256", "late", "pw-late")).stdout.hasPrefix("AUTH-FAILED"))
    }

    /// SASL_SSL (SCRAM-SHA-512 and PLAIN) and SSL without SASL, through confluent-kafka and kcat.
    func testSaslSslAndSsl() throws {
        let pki = try makePKI().path
        let dir = try dataDirWithUsers()
        let tls = ["--tls-cert", "\(pki)/server.pem", "--tls-key", "\(pki)/server.key"]
        do {
            let broker = try BrokerProcess(extraArguments: ["--sasl", "plain,scram-sha-512"] + tls, dataDir: dir)
            defer { broker.stop() }
            var conf = sasl("SCRAM-SHA-512", "alice", "alice-secret", ssl: true)
            conf["ssl.ca.location"] = "\(pki)/ca.pem"
            let r = try confluent(broker, topic: "sasl-ssl", conf)
            XCTAssertTrue(r.stdout.contains("OK 20 True"), "\(r.stdout) \(r.stderr)\n\(broker.log.suffix(3000))")
            try kcatRoundTrip(broker, topic: "sasl-ssl-kcat", conf)
            var plain = sasl("PLAIN", "alice", "alice-secret", ssl: true)
            plain["ssl.ca.location"] = "\(pki)/ca.pem"
            try kcatRoundTrip(broker, topic: "sasl-ssl-plain", plain)
            var wrong = sasl("SCRAM-SHA-512", "alice", "bad", ssl: true)
            wrong["ssl.ca.location"] = "\(pki)/ca.pem"
            XCTAssertTrue(try confluentFailing(broker, wrong).stdout.hasPrefix("AUTH-FAILED"))
            // A plaintext client on the TLS port gets nothing.
            let plaintext = try runProcess(kcat, ["-b", broker.address, "-L", "-m", "4"], timeout: 60)
            XCTAssertNotEqual(plaintext.status, 0)
        }
        do {
            let broker = try BrokerProcess(extraArguments: tls, dataDir: dir)
            defer { broker.stop() }
            let conf = ["security.protocol": "SSL", "ssl.ca.location": "\(pki)/ca.pem"]
            let r = try confluent(broker, topic: "ssl", conf)
            XCTAssertTrue(r.stdout.contains("OK 20 True"), "\(r.stdout) \(r.stderr)\n\(broker.log.suffix(3000))")
            try kcatRoundTrip(broker, topic: "ssl-kcat", conf)
            // A client that does not trust the CA fails the handshake.
            let untrusting = try runProcess(kcat, ["-b", broker.address, "-L", "-m", "4", "-X", "security.protocol=SSL"], timeout: 60)
            XCTAssertNotEqual(untrusting.status, 0)
        }
        try? FileManager.default.removeItem(at: dir)
    }

    /// mTLS: a client certificate signed by --tls-client-ca is the principal; no certificate, no service.
    func testMutualTLS() throws {
        let pki = try makePKI().path
        let broker = try BrokerProcess(
            extraArguments: ["--tls-cert", "\(pki)/server.pem", "--tls-key", "\(pki)/server.key", "--tls-client-ca", "\(pki)/ca.pem"])
        defer { broker.stop() }
        var conf = ["security.protocol": "SSL", "ssl.ca.location": "\(pki)/ca.pem"]
        let anonymous = try runProcess(
            kcat, ["-b", broker.address, "-L", "-m", "4"] + conf.sorted { $0.key < $1.key }.flatMap { ["-X", "\($0.key)=\($0.value)"] }, timeout: 60)
        XCTAssertNotEqual(anonymous.status, 0, anonymous.stdout)
        conf["ssl.certificate.location"] = "\(pki)/client.pem"
        conf["ssl.key.location"] = "\(pki)/client.key"
        try kcatRoundTrip(broker, topic: "mtls", conf)
        XCTAssertTrue(broker.log.contains("principal=User:CN=tape-client,O=Tape"), broker.log.suffix(2000).description)
    }

    /// kafka-python (its own SCRAM code, not librdkafka's): SCRAM-SHA-256 and SCRAM-SHA-512.
    func testKafkaPythonScram() throws {
        let dir = try dataDirWithUsers()
        let broker = try BrokerProcess(extraArguments: ["--sasl", "scram-sha-256,scram-sha-512"], dataDir: dir)
        defer {
            broker.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        let script = """
            import sys
            from kafka import KafkaProducer, KafkaConsumer
            from kafka.errors import KafkaError
            b, mech, user, pw = sys.argv[1:5]
            sec = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mech, sasl_plain_username=user, sasl_plain_password=pw)
            try:
                p = KafkaProducer(bootstrap_servers=b, acks="all", **sec)
                for i in range(10):
                    p.send("kp-" + mech, value=b"v%d" % i)
                p.flush()
                p.close()
                c = KafkaConsumer("kp-" + mech, bootstrap_servers=b, group_id="kpg", auto_offset_reset="earliest", consumer_timeout_ms=5000, **sec)
                got = sorted(int(m.value[1:]) for m in c)
                c.close()
                print("CONSUMED", got == list(range(10)))
            except KafkaError as e:
                print("ERROR", type(e).__name__, e)
            """
        for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let user = mechanism == "SCRAM-SHA-512" ? "bob" : "alice"
            let r = try runProcess(python, ["-c", script, broker.address, mechanism, user, "\(user)-secret"], timeout: 90)
            XCTAssertTrue(r.stdout.contains("CONSUMED True"), "\(mechanism): \(r.stdout) \(r.stderr)\n\(broker.log.suffix(2000))")
        }
        let wrong = try runProcess(python, ["-c", script, broker.address, "SCRAM-SHA-256", "alice", "wrong"], timeout: 90)
        XCTAssertTrue(wrong.stdout.contains("ERROR"), "\(wrong.stdout) \(wrong.stderr)")
        XCTAssertFalse(wrong.stdout.contains("CONSUMED"))
        XCTAssertTrue(broker.process.isRunning)
    }

    /// Not on 0.0.0.0 without authentication unless --insecure (exit 64, one sentence); `tape up` too.
    func testNonLoopbackListenerNeedsAuthenticationOrInsecure() throws {
        let dir = try temporaryDirectory("auth-insecure")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = Loopback.freePort()
        let refused = try tape(["broker", "--listen", "0.0.0.0:\(port)", "--data-dir", dir.path])
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("refusing to listen on 0.0.0.0 without authentication"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--insecure"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertFalse(Loopback.canConnect(port: port))
        let up = try tape(["up", "--offline", "--listen", "0.0.0.0:\(port)", "--data-dir", dir.path])
        XCTAssertEqual(up.status, 64, up.stderr)
        XCTAssertTrue(up.stderr.contains("refusing to listen on 0.0.0.0 without authentication"), up.stderr)

        let insecure = try ChildProcess(["broker", "--listen", "0.0.0.0:\(port)", "--data-dir", dir.path, "--insecure"], name: "insecure", stdoutToLog: true)
        XCTAssertTrue(Loopback.waitForListener(port: port, timeout: 20, while: { insecure.isRunning }), insecure.stderr)
        let listed = try runProcess(kcat, ["-b", "127.0.0.1:\(port)", "-L", "-m", "5"], timeout: 60)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertEqual(insecure.terminate(), 0)
        // With SASL, 0.0.0.0 needs no --insecure.
        let secured = try ChildProcess(
            ["broker", "--listen", "0.0.0.0:\(port)", "--data-dir", dir.path, "--sasl", "scram-sha-256"], name: "secured", stdoutToLog: true)
        XCTAssertTrue(Loopback.waitForListener(port: port, timeout: 20, while: { secured.isRunning }), secured.stderr)
        XCTAssertEqual(secured.terminate(), 0)
    }

    /// Tape's own clients reach a SASL broker with --kafka-option; the password shows in no output, even with --verbose.
    func testTapeClientsWithKafkaOptions() throws {
        let dir = try dataDirWithUsers()
        let broker = try BrokerProcess(extraArguments: ["--sasl", "scram-sha-256"], dataDir: dir)
        defer {
            broker.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        let options = sasl("SCRAM-SHA-256", "alice", "alice-secret").sorted { $0.key < $1.key }.flatMap { ["--kafka-option", "\($0.key)=\($0.value)"] }
        let produced = try tape(["produce", "--brokers", broker.address, "--topic", "opts", "--verbose"] + options, stdin: "a\nb\nc\n")
        XCTAssertEqual(produced.status, 0, produced.stderr.suffix(3000).description)
        XCTAssertFalse(produced.stderr.contains("alice-secret"), "the password was logged")
        let consumed = try tape(["consume", "--brokers", broker.address, "--topic", "opts", "--from-beginning", "--count", "3"] + options)
        XCTAssertEqual(consumed.status, 0, consumed.stderr)
        XCTAssertEqual(consumed.stdout, "a\nb\nc\n")
        // Without the options the same command cannot get in.
        let refused = try runProcess(
            TapeBinary.privateCopy, ["consume", "--brokers", broker.address, "--topic", "opts", "--from-beginning", "--count", "3"], timeout: 15)
        XCTAssertNotEqual(refused.stdout, "a\nb\nc\n")
    }

    /// Kafka's SCRAM credential admin APIs through confluent-kafka's AdminClient: only for
    /// authenticated connections; a user created this way can log in.
    func testScramCredentialAdminApis() throws {
        let dir = try dataDirWithUsers()
        let broker = try BrokerProcess(extraArguments: ["--sasl", "scram-sha-256,scram-sha-512"], dataDir: dir)
        defer {
            broker.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        let script = """
            import sys, json
            from confluent_kafka.admin import AdminClient, UserScramCredentialUpsertion, UserScramCredentialDeletion, ScramCredentialInfo, ScramMechanism
            conf = dict(json.loads(sys.argv[2]), **{"bootstrap.servers": sys.argv[1]})
            a = AdminClient(conf)
            def show(futures):
                for user, f in sorted(futures.items()):
                    try:
                        r = f.result(10)
                        print("OK", user, r if r is None else sorted((i.mechanism.name, i.iterations) for i in r.scram_credential_infos))
                    except Exception as e:
                        print("ERR", user, e.args[0].name() if e.args and hasattr(e.args[0], "name") else e)
            show(a.alter_user_scram_credentials([
                UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"carol-pw"),
                UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_512),
                UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_256)]))
            show(a.describe_user_scram_credentials(["alice", "carol", "bob"]))
            """
        let admin = sasl("SCRAM-SHA-512", "alice", "alice-secret")
        let json = String(decoding: try JSONSerialization.data(withJSONObject: admin), as: UTF8.self)
        let r = try runProcess(python, ["-c", script, broker.address, json], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("OK carol None"), r.stdout)
        XCTAssertTrue(lines.contains("OK bob None"), r.stdout)
        XCTAssertTrue(lines.contains("ERR nobody RESOURCE_NOT_FOUND"), r.stdout)
        XCTAssertTrue(lines.contains("OK alice [('SCRAM_SHA_256', 4096), ('SCRAM_SHA_512', 4096)]"), r.stdout)
        XCTAssertTrue(lines.contains("OK carol [('SCRAM_SHA_256', 8192)]"), r.stdout)
        XCTAssertTrue(lines.contains("ERR bob RESOURCE_NOT_FOUND"), r.stdout)
        // carol logs in with the password the client salted; bob's only credential is gone.
        XCTAssertTrue(try confluent(broker, topic: "carol", count: 3, sasl("SCRAM-SHA-256", "carol", "carol-pw")).stdout.contains("OK 3 True"))
        XCTAssertTrue(try confluentFailing(broker, sasl("SCRAM-SHA-512", "bob", "bob-secret")).stdout.hasPrefix("AUTH-FAILED"))
        let listed = try tape(["users", "list", "--data-dir", dir.path])
        XCTAssertEqual(listed.stdout, "alice\tPLAIN,SCRAM-SHA-256,SCRAM-SHA-512\ncarol\tSCRAM-SHA-256\n")

        // With --super-users, only those principals may use these APIs.
        broker.stop()
        let restricted = try BrokerProcess(extraArguments: ["--sasl", "scram-sha-256,scram-sha-512", "--super-users", "User:carol"], dataDir: dir)
        defer { restricted.stop() }
        let describe = """
            import sys, json
            from confluent_kafka.admin import AdminClient
            a = AdminClient(dict(json.loads(sys.argv[2]), **{"bootstrap.servers": sys.argv[1]}))
            for user, f in a.describe_user_scram_credentials(["alice"]).items():
                try:
                    f.result(10)
                    print("OK", user, flush=True)
                except Exception as e:
                    print("ERR", user, e.args[0].name() if e.args and hasattr(e.args[0], "name") else e, flush=True)
            """
        for (who, password, expected) in [("alice", "alice-secret", "ERR alice CLUSTER_AUTHORIZATION_FAILED"), ("carol", "carol-pw", "OK alice")] {
            let conf = String(decoding: try JSONSerialization.data(withJSONObject: sasl("SCRAM-SHA-256", who, password)), as: UTF8.self)
            let r = try runProcess(python, ["-c", describe, restricted.address, conf], timeout: 60)
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), expected, "\(who): \(r.stdout) \(r.stderr)")
        }
    }

    /// SaslHandshake v0: the PLAIN token goes as a bare size-prefixed frame, the answer is an empty
    /// frame, and Kafka requests are served after it; a wrong password closes the connection.
    func testLegacyHandshakeV0() throws {
        let dir = try dataDirWithUsers()
        let broker = try BrokerProcess(extraArguments: ["--sasl", "plain"], dataDir: dir)
        defer {
            broker.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        func readExactly(_ fd: Int32, _ n: Int) -> [UInt8]? {
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: n)
            while out.count < n {
                let got = read(fd, &chunk, n - out.count)
                if got <= 0 { return nil }
                out += chunk[0..<got]
            }
            return out
        }
        func readFrame(_ fd: Int32) -> [UInt8]? {
            guard let size = readExactly(fd, 4) else { return nil }
            let n = Int(size[0]) << 24 | Int(size[1]) << 16 | Int(size[2]) << 8 | Int(size[3])
            return n == 0 ? [] : readExactly(fd, n)
        }
        func send(_ fd: Int32, _ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        func token(_ s: String) -> [UInt8] {
            let t = Array(s.utf8)
            return [0, 0, UInt8(t.count >> 8), UInt8(t.count & 0xff)] + t
        }
        let handshake = Array(
            KafkaRequest.encodeFrame(SaslHandshakeRequest(mechanism: "PLAIN"), version: 0, correlationId: 1, clientId: "v0").readableBytesView)
        let metadata: [UInt8] = [0, 0, 0, 15, 0, 3, 0, 1, 0, 0, 0, 7, 0, 1, 0x78, 0xff, 0xff, 0xff, 0xff]

        let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
        defer { close(fd) }
        send(fd, handshake)
        let answer = readFrame(fd)
        XCTAssertEqual(answer.map { Array($0.dropFirst(4).prefix(2)) }, [0, 0], "handshake error code")
        send(fd, token("\0alice\0alice-secret"))
        XCTAssertEqual(readFrame(fd), [], "an empty frame acknowledges the PLAIN token")
        send(fd, metadata)
        let response = readFrame(fd)
        XCTAssertEqual(response.map { Array($0.prefix(4)) }, [0, 0, 0, 7], "Metadata answered after v0 authentication")

        let wrong = Loopback.connect(port: broker.port, receiveTimeout: 5)
        defer { close(wrong) }
        send(wrong, handshake)
        XCTAssertNotNil(readFrame(wrong))
        send(wrong, token("\0alice\0nope"))
        XCTAssertNil(readFrame(wrong), "a wrong password closes the connection")
    }

    /// Malformed and mutated SASL frames from raw sockets (v1 and v0 handshakes, garbage tokens)
    /// never stop the broker; real clients still log in afterwards.
    func testHostileSaslFramesDoNotHurtTheBroker() throws {
        let dir = try dataDirWithUsers()
        let broker = try BrokerProcess(extraArguments: ["--sasl", "plain,scram-sha-256,scram-sha-512"], dataDir: dir)
        defer {
            broker.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        func frame<M: KafkaRequestMessage>(_ m: M, _ v: Int16) -> [UInt8] {
            let b = KafkaRequest.encodeFrame(m, version: v, correlationId: 1, clientId: "hostile")
            return Array(b.readableBytesView)
        }
        func raw(_ token: [UInt8]) -> [UInt8] {
            [UInt8(token.count >> 24 & 0xff), UInt8(token.count >> 16 & 0xff), UInt8(token.count >> 8 & 0xff), UInt8(token.count & 0xff)] + token
        }
        let tokens: [[UInt8]] = [
            Array("n,,n=alice,r=abcdef".utf8), Array("\0alice\0alice-secret".utf8), Array("c=biws,r=abc,p=AAAA".utf8),
            Array("y,a=alice,n=alice,r=x,ext=1".utf8),
        ]
        var rng = SplitMix64(seed: 36)
        let mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", ""]
        for i in 0..<TestBudget.iterations(300) {
            let fd = Loopback.connect(port: broker.port, receiveTimeout: 2)
            XCTAssertGreaterThanOrEqual(fd, 0, "connection \(i) refused: \(broker.log.suffix(2000))")
            if fd < 0 { break }
            let legacy = rng.chance(0.3)
            var bytes = frame(SaslHandshakeRequest(mechanism: rng.pick(mechanisms)), legacy ? 0 : 1)
            for _ in 0..<(1 + rng.below(3)) {
                var token = rng.pick(tokens)
                rng.mutateFrame(&token)
                var message = legacy ? raw(token) : frame(SaslAuthenticateRequest(authBytes: token), Int16(rng.below(3)))
                if rng.chance(0.2) {
                    var body = Array(message.dropFirst(4))
                    rng.mutateFrame(&body)  // a broken frame body, with a size prefix that fits it
                    message = raw(body)
                }
                bytes += message
            }
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            shutdown(fd, Int32(SHUT_WR))
            var sink = [UInt8](repeating: 0, count: 4096)
            while read(fd, &sink, sink.count) > 0 {}
            close(fd)
        }
        XCTAssertTrue(broker.process.isRunning)
        // Before authentication a frame over 512 KiB is refused as soon as its size arrives.
        let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
        defer { close(fd) }
        let prefix: [UInt8] = [0, 0x10, 0, 0]  // 1 MiB
        XCTAssertEqual(prefix.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, 4)
        var one = [UInt8](repeating: 0, count: 1)
        XCTAssertEqual(read(fd, &one, 1), 0, "the broker must close the connection")
        // The connection task logs the reason after the socket closed: wait for it.
        let deadline = Date().addingTimeInterval(10)
        while !broker.log.contains("request frame size 1048576 is outside 0...524288") && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(broker.log.contains("request frame size 1048576 is outside 0...524288"), broker.log.suffix(1500).description)
        // After authentication, large records (a ~900 KB produce request) are fine.
        var big = sasl("SCRAM-SHA-512", "alice", "alice-secret")
        big["message.max.bytes"] = "1000000"
        let script = """
            import sys, json
            from confluent_kafka import Producer
            p = Producer(dict(json.loads(sys.argv[2]), **{"bootstrap.servers": sys.argv[1]}))
            p.produce("big", value=b"x" * 900000)
            print("LEFT", p.flush(20))
            """
        let json = String(decoding: try JSONSerialization.data(withJSONObject: big), as: UTF8.self)
        let produced = try runProcess(python, ["-c", script, broker.address, json], timeout: 60)
        XCTAssertTrue(produced.stdout.contains("LEFT 0"), "\(produced.stdout) \(produced.stderr)")
        let r = try confluent(broker, topic: "after-hostile", count: 5, sasl("SCRAM-SHA-512", "alice", "alice-secret"))
        XCTAssertTrue(r.stdout.contains("OK 5 True"), "\(r.stdout) \(r.stderr)")
    }
}
