import Foundation
import TapeTestSupport
import XCTest

/// The admin APIs of a real `tape broker` driven by clients written elsewhere: confluent-kafka's
/// AdminClient (librdkafka 2.16), kafka-python's KafkaAdminClient (also for OffsetDelete, which
/// confluent-kafka's Python AdminClient does not offer), aiokafka's AIOKafkaAdminClient, and kcat
/// (librdkafka 2.0.2); then a restart on the same data directory, after which every effect is
/// still there.
final class AdminProcessTests: XCTestCase {
    static let confluentScript = """
        import sys, time
        from confluent_kafka import Producer, Consumer, TopicPartition, ConsumerGroupTopicPartitions, ConsumerGroupState, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions
        b = sys.argv[1]
        a = AdminClient({"bootstrap.servers": b})
        for f in a.create_topics([NewTopic("adm", 1, 1), NewTopic("kp", 1, 1)]).values():
            f.result()
        a.create_partitions([NewPartitions("adm", 3)])["adm"].result()
        print("CP adm", len(a.list_topics("adm", timeout=10).topics["adm"].partitions))
        try:
            a.create_partitions([NewPartitions("adm", 2)])["adm"].result()
            print("SHRINK ACCEPTED")
        except KafkaException as e:
            print("SHRINK", e.args[0].name())
        try:
            a.create_partitions([NewPartitions("adm", 50)])["adm"].result()
            print("LIMIT ACCEPTED")
        except KafkaException as e:
            print("LIMIT", e.args[0].name())
        a.create_partitions([NewPartitions("adm", 9)], validate_only=True)["adm"].result()
        print("VALIDATE-ONLY", len(a.list_topics("adm", timeout=10).topics["adm"].partitions))
        p = Producer({"bootstrap.servers": b})
        for part in range(3):
            for i in range(10):
                p.produce("adm", value=b"v%d" % i, partition=part)
        p.flush(10)
        fs = a.delete_records([TopicPartition("adm", 0, 4), TopicPartition("adm", 1, -1)])
        for tp, f in sorted(fs.items(), key=lambda kv: kv[0].partition):
            print("DR", tp.partition, f.result().low_watermark)
        try:
            list(a.delete_records([TopicPartition("adm", 2, 99)]).values())[0].result()
            print("DR-BEYOND ACCEPTED")
        except KafkaException as e:
            print("DR-BEYOND", e.args[0].name())
        c = Consumer({"bootstrap.servers": b, "group.id": "probe"})
        print("WM", [c.get_watermark_offsets(TopicPartition("adm", i), timeout=10) for i in range(3)])
        c.close()
        # Groups with committed offsets, no members.
        for g in ["g-keep", "g-del"]:
            c = Consumer({"bootstrap.servers": b, "group.id": g, "enable.auto.commit": False})
            c.commit(offsets=[TopicPartition("adm", i, 5 + i) for i in range(3)], asynchronous=False)
            c.close()
        # An active member subscribed to adm.
        live = Consumer({"bootstrap.servers": b, "group.id": "g-live", "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
        live.subscribe(["adm"])
        deadline = time.time() + 20
        while not live.assignment() and time.time() < deadline:
            live.poll(0.2)
        live.commit(offsets=[TopicPartition("adm", 0, 7)], asynchronous=False)
        print("LIVE assigned", len(live.assignment()))
        # confluent-kafka's Python AdminClient has no OffsetDelete call: kafka-python's, in this process, while the member is live.
        import kafka
        kadmin = kafka.KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=10000)
        r = kadmin.delete_group_offsets("g-keep", [kafka.TopicPartition("adm", 1)])
        print("OD", sorted((tp.topic, tp.partition, e.__name__) for tp, e in r.items()))
        r = kadmin.delete_group_offsets("g-live", [kafka.TopicPartition("adm", 0)])
        print("OD-LIVE", sorted((tp.topic, tp.partition, e.__name__) for tp, e in r.items()))
        try:
            kadmin.delete_group_offsets("g-never", [kafka.TopicPartition("adm", 0)])
            print("OD-NEVER ACCEPTED")
        except kafka.errors.KafkaError as e:
            print("OD-NEVER", type(e).__name__)
        kadmin.close()
        res = a.delete_consumer_groups(["g-del", "g-live", "g-never"])
        for g in ["g-del", "g-live", "g-never"]:
            try:
                res[g].result()
                print("DG", g, "OK")
            except KafkaException as e:
                print("DG", g, e.args[0].name())
        d = a.describe_cluster().result()
        print("DC", d.cluster_id, d.controller.id, [(n.id, n.host, n.port) for n in d.nodes])
        d = a.describe_cluster(include_authorized_operations=True).result()
        print("DC-OPS", sorted(op.name for op in d.authorized_operations))
        # This client logs the requests it sends (stderr), so the test sees which versions were used.
        a = AdminClient({"bootstrap.servers": b, "debug": "protocol"})
        for states in [{ConsumerGroupState.EMPTY}, {ConsumerGroupState.STABLE}]:
            l = a.list_consumer_groups(states=states).result()
            print("LCG", sorted((g.group_id, g.state.name) for g in l.valid))
        r = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g-keep")])["g-keep"].result()
        print("LCGO", sorted((tp.topic, tp.partition, tp.offset) for tp in r.topic_partitions))
        live.close()
        print("DONE")
        """

    static let kafkaPythonScript = """
        import sys
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
        from kafka.structs import OffsetAndMetadata
        b = sys.argv[1]
        admin = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=10000)
        admin.create_partitions({"kp": 4})
        print("KP-CP", len(admin.describe_topics(["kp"])[0]["partitions"]))
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=b)
        for i in range(6):
            p.send("kp", value=b"x", partition=3)
        p.flush()
        r = admin.delete_records({TopicPartition("kp", 3): 2})
        print("KP-DR", sorted((tp.partition, m["low_watermark"]) for tp, m in r.items()))
        c = KafkaConsumer(bootstrap_servers=b, group_id="kp-g", enable_auto_commit=False)
        c.commit({TopicPartition("kp", 0): OffsetAndMetadata(1, "", -1)})
        c.close()
        print("KP-LG", sorted((g["group_id"], g.get("group_state")) for g in admin.list_groups(states_filter=["Empty"])))
        print("KP-DG", admin.delete_groups(["kp-g", "kp-none"]))
        print("KP-LG2", sorted(g["group_id"] for g in admin.list_groups()))
        d = admin.describe_cluster()
        print("KP-DC", d["cluster_id"], d["controller_id"], [(x["broker_id"], x["host"]) for x in d["brokers"]], "DESCRIBE" in d["authorized_operations"])
        print("KP-DONE")
        """

    static let aiokafkaScript = """
        import asyncio, sys
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic, NewPartitions, RecordsToDelete
        from aiokafka import AIOKafkaProducer, TopicPartition
        async def main(b):
            a = AIOKafkaAdminClient(bootstrap_servers=b)
            await a.start()
            await a.create_topics([NewTopic("aio", 1, 1)])
            r = await a.create_partitions({"aio": NewPartitions(3)})
            print("AIO-CP", [(t[0], t[1]) for t in r.topic_errors])
            p = AIOKafkaProducer(bootstrap_servers=b)
            await p.start()
            for i in range(5):
                await p.send_and_wait("aio", b"x", partition=2)
            await p.stop()
            r = await a.delete_records({TopicPartition("aio", 2): RecordsToDelete(before_offset=3)})
            print("AIO-DR", sorted((tp.partition, low) for tp, low in r.items()))
            await a.close()
        asyncio.run(main(sys.argv[1]))
        """

    static let afterRestartScript = """
        import sys
        from confluent_kafka import Consumer, TopicPartition, ConsumerGroupTopicPartitions, KafkaException
        from confluent_kafka.admin import AdminClient
        b = sys.argv[1]
        a = AdminClient({"bootstrap.servers": b})
        md = a.list_topics(timeout=10)
        print("P2-PARTS", sorted((t, len(m.partitions)) for t, m in md.topics.items()))
        c = Consumer({"bootstrap.servers": b, "group.id": "probe2", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        print("P2-WM", [c.get_watermark_offsets(TopicPartition("adm", i), timeout=10) for i in range(3)], c.get_watermark_offsets(TopicPartition("kp", 3), timeout=10), c.get_watermark_offsets(TopicPartition("aio", 2), timeout=10))
        # Reading partition 0 from its start gets offsets 4..9 only.
        c.assign([TopicPartition("adm", 0, 0)])
        got = []
        while len(got) < 6:
            m = c.poll(5)
            if m is None:
                break
            if m.error():
                print("P2-ERR", m.error())
                continue
            got.append(m.offset())
        print("P2-READ", got)
        c.close()
        groups = a.list_consumer_groups().result()
        print("P2-GROUPS", sorted(g.group_id for g in groups.valid))
        r = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g-keep")])["g-keep"].result()
        print("P2-LCGO", sorted((tp.topic, tp.partition, tp.offset) for tp in r.topic_partitions))
        """

    func lines(_ output: String, _ prefix: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix + " ") }
    }

    func testAdminClientsThenRestart() throws {
        let python = try Executables.require("python3")
        let kcat = try Executables.require("kcat")
        let dataDir = try temporaryDirectory("admin-process")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        var broker: BrokerProcess? = try BrokerProcess(extraArguments: ["--max-partitions", "20", "--fsync", "always"], dataDir: dataDir)
        let address = broker!.address

        let r = try runProcess(python, ["-c", Self.confluentScript, address], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout + broker!.log)
        let out = r.stdout
        XCTAssertEqual(lines(out, "CP"), ["CP adm 3"], out)
        XCTAssertEqual(lines(out, "SHRINK"), ["SHRINK INVALID_PARTITIONS"], out)
        XCTAssertEqual(lines(out, "LIMIT"), ["LIMIT POLICY_VIOLATION"], out)
        XCTAssertEqual(lines(out, "VALIDATE-ONLY"), ["VALIDATE-ONLY 3"], out)
        XCTAssertEqual(lines(out, "DR"), ["DR 0 4", "DR 1 10"], out)
        XCTAssertEqual(lines(out, "DR-BEYOND"), ["DR-BEYOND OFFSET_OUT_OF_RANGE"], out)
        XCTAssertEqual(lines(out, "WM"), ["WM [(4, 10), (10, 10), (0, 10)]"], out)
        XCTAssertEqual(lines(out, "LIVE"), ["LIVE assigned 3"], out)
        XCTAssertEqual(lines(out, "OD"), ["OD [('adm', 1, 'NoError')]"], out)
        XCTAssertEqual(lines(out, "OD-LIVE"), ["OD-LIVE [('adm', 0, 'GroupSubscribedToTopicError')]"], out)
        XCTAssertEqual(lines(out, "OD-NEVER"), ["OD-NEVER GroupIdNotFoundError"], out)
        XCTAssertEqual(lines(out, "DG"), ["DG g-del OK", "DG g-live NON_EMPTY_GROUP", "DG g-never GROUP_ID_NOT_FOUND"], out)
        XCTAssertEqual(lines(out, "DC"), ["DC tape-single-node 0 [(0, '127.0.0.1', \(broker!.port))]"], out)
        XCTAssertEqual(
            lines(out, "DC-OPS"), ["DC-OPS ['ALTER', 'ALTER_CONFIGS', 'CLUSTER_ACTION', 'CREATE', 'DESCRIBE', 'DESCRIBE_CONFIGS', 'IDEMPOTENT_WRITE']"], out)
        XCTAssertEqual(lines(out, "LCG"), ["LCG [('g-keep', 'EMPTY')]", "LCG [('g-live', 'STABLE')]"], out)
        XCTAssertEqual(lines(out, "LCGO"), ["LCGO [('adm', 0, 5), ('adm', 2, 7)]"], out)
        XCTAssertTrue(out.contains("DONE"), out)
        XCTAssertTrue(r.stderr.contains("Sent ListGroupsRequest (v5"), "list_consumer_groups with states uses ListGroups v5 (v4+ carries the states filter)")
        XCTAssertTrue(r.stderr.contains("Sent OffsetFetchRequest (v8"), "list_consumer_group_offsets uses the v8 (groups) form")

        let k = try runProcess(python, ["-c", Self.kafkaPythonScript, address], timeout: 120)
        XCTAssertEqual(k.status, 0, k.stderr + k.stdout)
        XCTAssertEqual(lines(k.stdout, "KP-CP"), ["KP-CP 4"], k.stdout)
        XCTAssertEqual(lines(k.stdout, "KP-DR"), ["KP-DR [(3, 2)]"], k.stdout)
        XCTAssertEqual(lines(k.stdout, "KP-LG"), ["KP-LG [('g-keep', 'Empty'), ('g-live', 'Empty'), ('kp-g', 'Empty')]"], k.stdout)
        XCTAssertEqual(lines(k.stdout, "KP-DG"), ["KP-DG {'kp-g': 'OK', 'kp-none': 'GroupIdNotFoundError'}"], k.stdout)
        XCTAssertEqual(lines(k.stdout, "KP-LG2"), ["KP-LG2 ['g-keep', 'g-live']"], k.stdout)
        XCTAssertEqual(lines(k.stdout, "KP-DC"), ["KP-DC tape-single-node 0 [(0, '127.0.0.1')] True"], k.stdout)

        let aio = try runProcess(python, ["-c", Self.aiokafkaScript, address], timeout: 120)
        XCTAssertEqual(aio.status, 0, aio.stderr + aio.stdout)
        XCTAssertEqual(lines(aio.stdout, "AIO-CP"), ["AIO-CP [('aio', 0)]"], aio.stdout)
        XCTAssertEqual(lines(aio.stdout, "AIO-DR"), ["AIO-DR [(2, 3)]"], aio.stdout)

        let before = try runProcess(kcat, ["-b", address, "-L", "-t", "adm"])
        XCTAssertTrue(before.stdout.contains("topic \"adm\" with 3 partitions"), before.stdout + before.stderr)

        XCTAssertEqual(broker!.stop(), 0, broker!.log)
        broker = nil
        // A clean restart, then a crash (kill -9) and a restart: the effects are there each time.
        for crash in [false, true] {
            let restarted = try BrokerProcess(extraArguments: ["--max-partitions", "20", "--fsync", "always"], port: Loopback.freePort(), dataDir: dataDir)
            let how = crash ? "after kill -9" : "after SIGTERM"
            let after = try runProcess(python, ["-c", Self.afterRestartScript, restarted.address], timeout: 120)
            XCTAssertEqual(after.status, 0, how + after.stderr + after.stdout)
            let a = after.stdout
            XCTAssertEqual(lines(a, "P2-PARTS"), ["P2-PARTS [('adm', 3), ('aio', 3), ('kp', 4)]"], how + a)
            XCTAssertEqual(lines(a, "P2-WM"), ["P2-WM [(4, 10), (10, 10), (0, 10)] (2, 6) (3, 5)"], how + a)
            XCTAssertEqual(lines(a, "P2-READ"), ["P2-READ [4, 5, 6, 7, 8, 9]"], how + a)
            XCTAssertTrue(after.stderr.contains("Offset out of range"), "\(how): a fetch at 0, below the deleted records, is refused: \(after.stderr)")
            XCTAssertEqual(lines(a, "P2-GROUPS"), ["P2-GROUPS ['g-keep', 'g-live']"], how + a)
            XCTAssertEqual(lines(a, "P2-LCGO"), ["P2-LCGO [('adm', 0, 5), ('adm', 2, 7)]"], how + a)
            let kcatAfter = try runProcess(kcat, ["-b", restarted.address, "-L", "-t", "kp"])
            XCTAssertTrue(kcatAfter.stdout.contains("topic \"kp\" with 4 partitions"), how + kcatAfter.stdout + kcatAfter.stderr)
            if crash { XCTAssertEqual(restarted.stop(), 0, restarted.log) } else { restarted.kill9() }
        }
    }
}
