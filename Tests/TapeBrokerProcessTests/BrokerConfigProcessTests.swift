import Foundation
import TapeTestSupport
import XCTest

/// Dynamic broker configs and the topic configs `flush.messages` / `flush.ms` on a real `tape broker`,
/// driven by confluent-kafka's AdminClient (librdkafka 2.16), then after a restart on the same data
/// directory.
final class BrokerConfigProcessTests: XCTestCase {
    static let alterScript = """
        import sys
        from confluent_kafka import Producer, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource, ResourceType
        b = sys.argv[1]
        a = AdminClient({"bootstrap.servers": b})
        def alter(res):
            try:
                list(a.alter_configs([res]).values())[0].result()
                return "OK"
            except KafkaException as e:
                return e.args[0].name() + ("|names-key" if res.set_config_dict and list(res.set_config_dict)[0] in e.args[0].str() else "")
        print("BROKER-KERBEROS", alter(ConfigResource(ResourceType.BROKER, "0", set_config={"sasl.kerberos.min.time.before.relogin": "58000"})))
        print("BROKER-OTHER", alter(ConfigResource(ResourceType.BROKER, "0", set_config={"log.retention.ms": "1000"})))
        print("BROKER-BADTYPE", alter(ConfigResource(ResourceType.BROKER, "0", set_config={"sasl.login.refresh.buffer.seconds": "99999"})))
        for f in a.create_topics([NewTopic("durable", 1, 1, config={"flush.messages": "1"})]).values():
            f.result()
        try:
            for f in a.create_topics([NewTopic("bad-flush", 1, 1, config={"flush.ms": "-5"})]).values():
                f.result()
            print("BAD-FLUSH ACCEPTED")
        except KafkaException as e:
            print("BAD-FLUSH", e.args[0].name())
        p = Producer({"bootstrap.servers": b, "acks": "all"})
        for i in range(5):
            p.produce("durable", value=b"m%d" % i)
        print("PRODUCED-LEFT", p.flush(15))
        print("ALTER-TOPIC", alter(ConfigResource(ResourceType.TOPIC, "durable", set_config={"flush.messages": "1", "flush.ms": "12345678"})))
        """

    static let describeScript = """
        import sys
        from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
        a = AdminClient({"bootstrap.servers": sys.argv[1]})
        for res in [ConfigResource(ResourceType.BROKER, "0"), ConfigResource(ResourceType.TOPIC, "durable")]:
            configs = list(a.describe_configs([res]).values())[0].result()
            for k in ["sasl.kerberos.min.time.before.relogin", "sasl.kerberos.kinit.cmd", "flush.messages", "flush.ms"]:
                if k in configs:
                    c = configs[k]
                    print("DESC", res.name, k, c.value, c.source, c.is_read_only)
        """

    func lines(_ output: String, _ prefix: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix + " ") }
    }

    func testDynamicBrokerConfigsAndFlushConfigsThroughAdminClientAndRestart() throws {
        let python = try Executables.require("python3")
        let dataDir = try temporaryDirectory("broker-config-process")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let broker = try BrokerProcess(extraArguments: ["--fsync", "never"], dataDir: dataDir)
        let r = try runProcess(python, ["-c", Self.alterScript, broker.address], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout + broker.log)
        let out = r.stdout
        XCTAssertEqual(lines(out, "BROKER-KERBEROS"), ["BROKER-KERBEROS OK"], out)
        XCTAssertEqual(lines(out, "BROKER-OTHER"), ["BROKER-OTHER INVALID_CONFIG|names-key"], out)
        XCTAssertEqual(lines(out, "BROKER-BADTYPE"), ["BROKER-BADTYPE INVALID_CONFIG|names-key"], out)
        XCTAssertEqual(lines(out, "BAD-FLUSH"), ["BAD-FLUSH INVALID_CONFIG"], out)
        XCTAssertEqual(lines(out, "PRODUCED-LEFT"), ["PRODUCED-LEFT 0"], out)
        XCTAssertEqual(lines(out, "ALTER-TOPIC"), ["ALTER-TOPIC OK"], out)
        XCTAssertEqual(broker.stop(), 0, broker.log)

        let restarted = try BrokerProcess(extraArguments: ["--fsync", "never"], port: Loopback.freePort(), dataDir: dataDir)
        defer { _ = restarted.stop() }
        let d = try runProcess(python, ["-c", Self.describeScript, restarted.address], timeout: 120)
        XCTAssertEqual(d.status, 0, d.stderr + d.stdout + restarted.log)
        // Sources: 1 DYNAMIC_TOPIC_CONFIG, 2 DYNAMIC_BROKER_CONFIG, 5 DEFAULT_CONFIG.
        XCTAssertEqual(
            lines(d.stdout, "DESC"),
            [
                "DESC 0 sasl.kerberos.min.time.before.relogin 58000 2 False",
                "DESC 0 sasl.kerberos.kinit.cmd /usr/bin/kinit 5 False",
                "DESC durable flush.messages 1 1 False",
                "DESC durable flush.ms 12345678 1 False",
            ], d.stdout)
    }
}
