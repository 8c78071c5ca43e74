import Foundation
import TapeTestSupport
import XCTest

/// `tape up` with authentication, encryption and ACLs on its embedded broker, as a user runs it:
/// one `tape up --offline` process on loopback ports, users added with `tape users add`, and
/// clients from outside (confluent-kafka 2.16 from the test venv, kcat). The pipeline's own stages
/// must keep producing candles whatever the broker requires of other clients.
final class UpAuthProcessTests: XCTestCase {
    var python: String!
    var kcat: String!

    override func setUpWithError() throws {
        python = try Executables.require("python3")
        kcat = try Executables.require("kcat")
    }

    func tape(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> ProcessResult {
        try runProcess(TapeBinary.privateCopy, arguments, stdin: stdin, timeout: timeout)
    }

    /// A running `tape up --offline` with `extra` flags; the caller adds users to `brokerData` first.
    struct Up {
        let child: ChildProcess
        let kafka: String
        let base: String
        let brokerData: String
    }

    func startUp(_ dir: URL, _ extra: [String]) throws -> Up {
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let child = try ChildProcess(
            [
                "up", "--offline", "--data-dir", dir.appendingPathComponent("data").path, "--listen", "127.0.0.1:\(kafkaPort)",
                "--http", "127.0.0.1:\(httpPort)", "--rate", "100", "--intervals", "1s,1m", "--symbols", "BTC_USDT,ETH_USDT",
            ] + extra)
        return Up(
            child: child, kafka: "127.0.0.1:\(kafkaPort)", base: "http://127.0.0.1:\(httpPort)",
            brokerData: dir.appendingPathComponent("data/kafka").path)
    }

    /// Adds `name` with password `name-secret` (all mechanisms) where `tape up` keeps its broker's users.
    func addUser(_ name: String, dataDir: String) throws {
        let r = try tape(["users", "add", name, "--data-dir", dataDir], stdin: "\(name)-secret\n")
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// Waits until the server has seen candles from the processor (the whole pipeline ran through
    /// the authenticated broker), then checks the API serves some.
    func assertPipelineProducesCandles(_ up: Up, file: StaticString = #filePath, line: UInt = #line) throws {
        var seen = 0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, up.child.isRunning {
            if let r = try? httpGet(up.base + "/api/stats"), r.status == 200,
                let obj = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
                let server = obj["server"] as? [String: Any], let candles = server["candlesSeen"] as? Int, candles > 0
            {
                seen = candles
                break
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        XCTAssertGreaterThan(seen, 0, "no candle reached the server within 60 s:\n\(up.child.stderr.suffix(4000))", file: file, line: line)
        let r = try httpGet(up.base + "/api/candles?symbol=poloniex:BTC-USDT&interval=1s&limit=10")
        XCTAssertEqual(r.status, 200, r.body, file: file, line: line)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any], file: file, line: line)
        XCTAssertFalse((obj["candles"] as? [Any] ?? []).isEmpty, r.body, file: file, line: line)
    }

    /// confluent-kafka: reads up to `count` records of `topic` from the beginning (assigned, no
    /// rebalancing; librdkafka still looks up group alice-group), prints "READ n <first value>" or "ERROR <error name>".
    static let readScript = """
        import sys, json, time
        from confluent_kafka import Consumer, TopicPartition, KafkaException
        bootstrap, topic, count, conf = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
        c = Consumer(dict(conf, **{"bootstrap.servers": bootstrap, "group.id": "alice-group", "enable.auto.commit": False,
            "auto.offset.reset": "earliest"}))
        try:
            md = c.list_topics(topic, timeout=15)
            t = md.topics[topic]
            if t.error is not None:
                print("ERROR", t.error.name())
                sys.exit(0)
            c.assign([TopicPartition(topic, p, 0) for p in t.partitions])
            got = []
            deadline = time.time() + 30
            while len(got) < count and time.time() < deadline:
                m = c.poll(1.0)
                if m is None:
                    continue
                if m.error():
                    print("ERROR", m.error().name())
                    sys.exit(0)
                got.append(m.value())
            print("READ", len(got), (got[0] if got else b"").decode())
        except KafkaException as e:
            print("ERROR", e.args[0].name())
        finally:
            c.close()
        """

    func read(_ up: Up, topic: String, count: Int, _ conf: [String: String]) throws -> String {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: conf), as: UTF8.self)
        let r = try runProcess(python, ["-c", Self.readScript, up.kafka, topic, String(count), json], timeout: 90)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func scram(_ mechanism: String, _ user: String, ssl: Bool = false) -> [String: String] {
        [
            "security.protocol": ssl ? "SASL_SSL" : "SASL_PLAINTEXT", "sasl.mechanism": mechanism, "sasl.username": user,
            "sasl.password": "\(user)-secret",
        ]
    }

    // MARK: Tests

    /// `tape up --sasl scram-sha-256`: candles still flow; a user added with `tape users add` reads
    /// tape.trades; no credentials, a wrong password or the internal user's name without its
    /// password are refused.
    func testUpWithScramServesItsPipelineAndOnlyAuthenticatedClients() throws {
        let dir = try temporaryDirectory("up-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let brokerData = dir.appendingPathComponent("data/kafka").path
        try addUser("alice", dataDir: brokerData)
        let up = try startUp(dir, ["--sasl", "scram-sha-256"])
        defer { up.child.interrupt(timeout: 10) }
        try assertPipelineProducesCandles(up)
        // The banner says how to connect.
        XCTAssertTrue(up.child.stderr.contains("security.protocol=SASL_PLAINTEXT, sasl.mechanisms=SCRAM-SHA-256"), up.child.stderr)
        XCTAssertTrue(up.child.stderr.contains("tape users add --data-dir \(brokerData)"), up.child.stderr)

        let alice = try read(up, topic: "tape.trades", count: 5, scram("SCRAM-SHA-256", "alice"))
        XCTAssertTrue(alice.hasPrefix("READ 5 {"), alice)
        XCTAssertTrue(alice.contains(#""exchange":"poloniex""#), alice)
        // A user added while Tape runs, naming tape up's own data directory: it goes to its broker's.
        let added = try tape(["users", "add", "bob", "--data-dir", dir.appendingPathComponent("data").path], stdin: "bob-secret\n")
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertTrue(added.stderr.contains("using its broker's, \(brokerData)"), added.stderr)
        let bob = try read(up, topic: "tape.trades", count: 2, scram("SCRAM-SHA-256", "bob"))
        XCTAssertTrue(bob.hasPrefix("READ 2 {"), bob)
        // The stages' user name is reserved.
        let reserved = try tape(["users", "add", "tape-internal", "--data-dir", brokerData], stdin: "guess\n")
        XCTAssertEqual(reserved.status, 64, reserved.stderr)

        // kcat without credentials: the broker answers nothing but ApiVersions and SASL.
        let anonymous = try runProcess(kcat, ["-b", up.kafka, "-L", "-m", "5"], timeout: 30)
        XCTAssertNotEqual(anonymous.status, 0, anonymous.stdout)
        XCTAssertFalse(anonymous.stdout.contains("tape.trades"), anonymous.stdout)
        // A wrong password, and the stages' own user name without its in-memory password.
        for user in ["alice", "tape-internal"] {
            let x = ["security.protocol=SASL_PLAINTEXT", "sasl.mechanisms=SCRAM-SHA-256", "sasl.username=\(user)", "sasl.password=wrong"]
            let refused = try runProcess(kcat, ["-b", up.kafka, "-L", "-m", "5"] + x.flatMap { ["-X", $0] }, timeout: 30)
            XCTAssertNotEqual(refused.status, 0, refused.stdout)
            XCTAssertTrue(refused.stderr.contains("Authentication failed"), refused.stderr)
        }
        // The internal user is never written to the data directory.
        let credentials = try String(contentsOfFile: brokerData + "/credentials.json", encoding: .utf8)
        XCTAssertTrue(credentials.contains("alice") && credentials.contains("bob"), credentials)
        XCTAssertFalse(credentials.contains("tape-internal"), credentials)
        XCTAssertTrue(up.child.isRunning, up.child.stderr.suffix(3000).description)
    }

    /// `--authorizer acl` without any ACL for Tape's stages: they still produce candles (their
    /// principal is exempt). alice, allowed READ on tape.trades only, reads it, is refused
    /// tape.books, and Metadata v8+ tells her the operations she has on each topic, as does
    /// DescribeGroups for a group.
    func testUpWithAclsKeepsItsStagesWorkingAndReportsAuthorizedOperations() throws {
        let dir = try temporaryDirectory("up-acl")
        defer { try? FileManager.default.removeItem(at: dir) }
        let brokerData = dir.appendingPathComponent("data/kafka").path
        try addUser("alice", dataDir: brokerData)
        for (type, name, op) in [("topic", "tape.trades", "read"), ("group", "alice-group", "read"), ("group", "alice-group", "delete")] {
            let r = try tape([
                "acls", "add", "--data-dir", brokerData, "--resource-type", type, "--resource-name", name, "--principal", "User:alice", "--operation", op,
            ])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let up = try startUp(dir, ["--sasl", "scram-sha-512", "--authorizer", "acl"])
        defer { up.child.interrupt(timeout: 10) }
        try assertPipelineProducesCandles(up)
        XCTAssertTrue(up.child.stderr.contains("ACLs enforced"), up.child.stderr)

        let alice = scram("SCRAM-SHA-512", "alice")
        let trades = try read(up, topic: "tape.trades", count: 3, alice)
        XCTAssertTrue(trades.hasPrefix("READ 3 {"), trades)
        XCTAssertEqual(try read(up, topic: "tape.books", count: 1, alice), "ERROR TOPIC_AUTHORIZATION_FAILED")

        let script = """
            import sys, json
            from confluent_kafka import TopicCollection, KafkaException
            from confluent_kafka.admin import AdminClient
            a = AdminClient(dict(json.loads(sys.argv[2]), **{"bootstrap.servers": sys.argv[1]}))
            for name, f in a.describe_topics(TopicCollection(["tape.trades", "tape.books"]), include_authorized_operations=True).items():
                try:
                    d = f.result(15)
                    print(name, ",".join(sorted(o.name for o in (d.authorized_operations or []))))
                except KafkaException as e:
                    print(name, "ERROR", e.args[0].name())
            for name, f in a.describe_consumer_groups(["alice-group"], include_authorized_operations=True).items():
                try:
                    d = f.result(15)
                    print(name, ",".join(sorted(o.name for o in (d.authorized_operations or []))))
                except KafkaException as e:
                    print(name, "ERROR", e.args[0].name())
            """
        let json = String(decoding: try JSONSerialization.data(withJSONObject: alice), as: UTF8.self)
        let r = try runProcess(python, ["-c", script, up.kafka, json], timeout: 90)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = Set(r.stdout.split(separator: "\n").map(String.init))
        // READ implies DESCRIBE (Kafka's rule); nothing else was granted.
        XCTAssertTrue(lines.contains("tape.trades DESCRIBE,READ"), r.stdout)
        XCTAssertTrue(lines.contains("tape.books ERROR TOPIC_AUTHORIZATION_FAILED"), r.stdout)
        XCTAssertTrue(lines.contains("alice-group DELETE,DESCRIBE,READ"), r.stdout)
    }

    /// SASL_SSL with client certificates required: `tape up` refuses to start until its stages
    /// have a certificate too; with one (-X), candles flow and kcat reads tape.trades over TLS.
    func testUpWithSaslSslAndClientCertificates() throws {
        let openssl = try Executables.require("openssl")
        let dir = try temporaryDirectory("up-tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.path
        func ssl(_ args: [String]) throws {
            let r = try runProcess(openssl, args, timeout: 60)
            guard r.status == 0 else { throw TestSupportError("openssl \(args.joined(separator: " ")): \(r.stderr)") }
        }
        try ssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Tape Test CA", "-keyout", "\(p)/ca.key", "-out", "\(p)/ca.pem"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: "\(p)/server.ext", atomically: true, encoding: .utf8)
        for (name, subject, ext) in [
            ("server", "/CN=localhost", ["-extfile", "\(p)/server.ext"]), ("stages", "/O=Tape/CN=tape-up", []), ("client", "/CN=reader", []),
        ] {
            try ssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", "\(p)/\(name).key", "-out", "\(p)/\(name).csr"])
            try ssl(
                [
                    "x509", "-req", "-in", "\(p)/\(name).csr", "-CA", "\(p)/ca.pem", "-CAkey", "\(p)/ca.key", "-CAcreateserial", "-days", "2", "-out",
                    "\(p)/\(name).pem",
                ]
                    + ext)
        }
        let brokerData = dir.appendingPathComponent("data/kafka").path
        try addUser("alice", dataDir: brokerData)
        let tls = [
            "--sasl", "scram-sha-512", "--tls-cert", "\(p)/server.pem", "--tls-key", "\(p)/server.key", "--tls-client-ca", "\(p)/ca.pem",
            "--authorizer", "acl",
        ]

        // Without a certificate for its own stages: one sentence saying which flags, exit 64.
        let refused = try tape(
            [
                "up", "--offline", "--data-dir", dir.appendingPathComponent("data").path, "--listen", "127.0.0.1:\(Loopback.freePort())", "--http",
                "127.0.0.1:\(Loopback.freePort())",
            ] + tls, timeout: 60)
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("-X ssl.certificate.location=FILE -X ssl.key.location=FILE"), refused.stderr)

        let up = try startUp(dir, tls + ["-X", "ssl.certificate.location=\(p)/stages.pem", "-X", "ssl.key.location=\(p)/stages.key"])
        defer { up.child.interrupt(timeout: 10) }
        try assertPipelineProducesCandles(up)
        XCTAssertTrue(up.child.stderr.contains("security.protocol=SASL_SSL"), up.child.stderr)

        let grant = try tape([
            "acls", "add", "--data-dir", brokerData, "--resource-type", "topic", "--resource-name", "tape.trades", "--principal", "User:alice",
            "--operation", "read",
        ])
        XCTAssertEqual(grant.status, 0, grant.stderr)
        let x = [
            "security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512", "sasl.username=alice", "sasl.password=alice-secret", "ssl.ca.location=\(p)/ca.pem",
            "ssl.certificate.location=\(p)/client.pem", "ssl.key.location=\(p)/client.key",
        ].flatMap { ["-X", $0] }
        let consumed = try runProcess(kcat, ["-b", up.kafka, "-C", "-t", "tape.trades", "-o", "beginning", "-c", "3", "-q"] + x, timeout: 60)
        XCTAssertEqual(consumed.status, 0, consumed.stderr)
        XCTAssertEqual(consumed.stdout.split(separator: "\n").count, 3, consumed.stdout)
        XCTAssertTrue(consumed.stdout.contains(#""exchange":"poloniex""#), consumed.stdout)
        // Without a client certificate the TLS handshake fails.
        let noCert = try runProcess(
            kcat,
            ["-b", up.kafka, "-L", "-m", "5"]
                + [
                    "security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512", "sasl.username=alice", "sasl.password=alice-secret",
                    "ssl.ca.location=\(p)/ca.pem",
                ]
                .flatMap { ["-X", $0] }, timeout: 30)
        XCTAssertNotEqual(noCert.status, 0, noCert.stdout)
    }

    /// A non-loopback listen address: refused without authentication (naming the flags that fix
    /// it); security flags with --brokers are a usage error. Neither binds anything.
    func testRefusals() throws {
        let dir = try temporaryDirectory("up-refuse")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data").path
        let open = try tape(["up", "--offline", "--data-dir", data, "--listen", "0.0.0.0:\(Loopback.freePort())", "--http", "127.0.0.1:\(Loopback.freePort())"])
        XCTAssertEqual(open.status, 64, open.stderr)
        for flag in ["--sasl", "--tls-client-ca", "--insecure", "tape users add --data-dir \(data)/kafka"] {
            XCTAssertTrue(open.stderr.contains(flag), "\(flag): \(open.stderr)")
        }
        let external = try tape(["up", "--offline", "--brokers", "127.0.0.1:1", "--sasl", "plain"])
        XCTAssertEqual(external.status, 64, external.stderr)
        XCTAssertTrue(external.stderr.contains("--sasl configures the embedded broker"), external.stderr)

        // The same settings from a --config file reach the broker's configuration: mTLS there
        // needs the stages' certificate (checked before any file is read or port bound), and
        // super-users are checked as the flag is.
        let yaml = dir.appendingPathComponent("tape.yaml")
        try """
        offline: true
        data-dir: \(data)
        listen: 127.0.0.1:\(Loopback.freePort())
        http: 127.0.0.1:\(Loopback.freePort())
        sasl: [scram-sha-256, scram-sha-512]
        tls-cert: \(dir.path)/none.pem
        tls-key: \(dir.path)/none.key
        tls-client-ca: \(dir.path)/ca.pem
        authorizer: acl
        allow-everyone-if-no-acl-found: true
        super-users: [User:admin, User:ops]
        """.write(to: yaml, atomically: true, encoding: .utf8)
        let fromFile = try tape(["up", "--config", yaml.path])
        XCTAssertEqual(fromFile.status, 64, fromFile.stderr)
        XCTAssertTrue(fromFile.stderr.contains("--tls-client-ca requires every client to present a certificate"), fromFile.stderr)
        try "super-users: [admin]\n".write(to: yaml, atomically: true, encoding: .utf8)
        let badPrincipal = try tape(["up", "--config", yaml.path])
        XCTAssertEqual(badPrincipal.status, 64, badPrincipal.stderr)
        XCTAssertTrue(badPrincipal.stderr.contains("--super-users takes principals like User:admin"), badPrincipal.stderr)
    }

    /// Every `tape up` flag is a --config setting, and docs/configuration.md shows every setting.
    func testConfigSettingsMatchFlagsAndDocs() throws {
        let dir = try temporaryDirectory("up-settings")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = dir.appendingPathComponent("bad.yaml")
        try "no-such-setting: 1\n".write(to: yaml, atomically: true, encoding: .utf8)
        let r = try tape(["up", "--config", yaml.path])
        XCTAssertEqual(r.status, 64, r.stderr)
        let listed = try XCTUnwrap(r.stderr.range(of: "settings are ").map { r.stderr[$0.upperBound...] }, r.stderr)
        let settings = Set(listed.prefix { $0 != "." && $0 != "\n" }.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        XCTAssertTrue(
            settings.isSuperset(of: ["sasl", "tls-cert", "tls-key", "tls-client-ca", "super-users", "authorizer", "allow-everyone-if-no-acl-found", "insecure"]
            ), "\(settings)")

        let help = try tape(["up", "--help"])
        let flags = Set(
            try NSRegularExpression(pattern: #"(?m)^\s+--([a-z][a-z-]+)"#).matches(in: help.stdout, range: NSRange(help.stdout.startIndex..., in: help.stdout))
                .compactMap { Range($0.range(at: 1), in: help.stdout).map { String(help.stdout[$0]) } })
        XCTAssertTrue(flags.contains("sasl"), help.stdout)
        // --symbols is the markets under `exchanges:`, -X is `kafka:`; --config, --help and --version are not settings.
        let expected = flags.subtracting(["config", "help", "version", "symbols"])
        XCTAssertEqual(expected.subtracting(settings), [], "flags without a --config setting")
        XCTAssertEqual(settings.subtracting(expected).subtracting(["kafka"]), [], "settings without a flag")

        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let docs = try String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        for key in settings {
            XCTAssertNotNil(docs.range(of: "\n\(key):"), "docs/configuration.md does not show the setting '\(key)'")
        }
    }
}
