import Foundation
import TapeTestSupport
import XCTest

/// Transactions (KIP-98) against a real `tape broker` with confluent-kafka (librdkafka),
/// kafka-python and aiokafka transactional producers and read_committed consumers.
final class TransactionProcessTests: XCTestCase {
    func python() throws -> String { try Executables.require("python3") }

    /// A sorted list as Python prints it.
    func py(_ values: [String]) -> String { "[" + values.sorted().map { "'\($0)'" }.joined(separator: ", ") + "]" }

    /// One confluent-kafka transactional producer commits, aborts and commits; read_committed
    /// consumers see exactly the committed records, read_uncommitted ones all of them;
    /// send_offsets_to_transaction commits the group's offsets only with the transaction; a second
    /// producer with the same transactional.id fences the first.
    func testConfluentKafkaCommitAbortOffsetsAndFencing() throws {
        let broker = try BrokerProcess()
        let script = """
            import sys, time
            from confluent_kafka import Producer, Consumer, TopicPartition, KafkaException
            from confluent_kafka.admin import AdminClient, NewTopic
            b = sys.argv[1]
            admin = AdminClient({"bootstrap.servers": b})
            for f in admin.create_topics([NewTopic("txn", 2, 1), NewTopic("src", 1, 1)]).values():
                f.result()

            p = Producer({"bootstrap.servers": b, "transactional.id": "ck-1", "transaction.timeout.ms": 20000})
            p.init_transactions(15)
            p.begin_transaction()
            for i in range(10):
                p.produce("txn", value=b"c%d" % i, partition=i % 2)
            p.commit_transaction(15)
            p.begin_transaction()
            for i in range(5):
                p.produce("txn", value=b"a%d" % i, partition=i % 2)
            p.flush(15)
            p.abort_transaction(15)
            p.begin_transaction()
            for i in range(3):
                p.produce("txn", value=b"d%d" % i, partition=i % 2)
            p.commit_transaction(15)

            def consume(iso, want):
                c = Consumer({"bootstrap.servers": b, "group.id": "g-" + iso, "auto.offset.reset": "earliest",
                              "isolation.level": iso, "enable.auto.commit": False})
                c.subscribe(["txn"])
                got = []
                deadline = time.time() + 20
                while time.time() < deadline and len(got) < want:
                    m = c.poll(0.5)
                    if m is None or m.error():
                        continue
                    got.append(m.value().decode())
                # Nothing more arrives.
                end = time.time() + 2
                while time.time() < end:
                    m = c.poll(0.2)
                    if m is not None and not m.error():
                        got.append(m.value().decode())
                c.close()
                return sorted(got)

            print("COMMITTED", consume("read_committed", 13))
            print("UNCOMMITTED", consume("read_uncommitted", 18))

            # send_offsets_to_transaction: consume-transform-produce.
            plain = Producer({"bootstrap.servers": b})
            for i in range(5):
                plain.produce("src", value=b"s%d" % i, partition=0)
            plain.flush(10)
            c = Consumer({"bootstrap.servers": b, "group.id": "ctp", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                          "isolation.level": "read_committed"})
            c.subscribe(["src"])
            seen = 0
            deadline = time.time() + 20
            while seen < 5 and time.time() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    seen += 1
            def committed():
                return c.committed([TopicPartition("src", 0)], timeout=10)[0].offset
            p.begin_transaction()
            p.produce("txn", value=b"x", partition=0)
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 10)
            p.abort_transaction(15)
            print("AFTER-ABORT", committed())
            p.begin_transaction()
            p.produce("txn", value=b"y", partition=0)
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 10)
            p.commit_transaction(15)
            print("AFTER-COMMIT", committed())
            c.close()

            # A second producer with the same transactional.id fences the first.
            p2 = Producer({"bootstrap.servers": b, "transactional.id": "ck-1"})
            p2.init_transactions(15)
            try:
                p.begin_transaction()
                p.produce("txn", value=b"zombie", partition=0)
                p.commit_transaction(15)
                print("ZOMBIE-COMMITTED")
            except KafkaException as e:
                print("FENCED", e.args[0].fatal(), e.args[0].name())
            p2.begin_transaction()
            p2.produce("txn", value=b"p2", partition=0)
            p2.commit_transaction(15)
            print("FINAL", consume("read_committed", 15))
            """
        let r = try runProcess(try python(), ["-c", script, broker.address], timeout: 150)
        XCTAssertEqual(r.status, 0, r.stderr + String(broker.log.suffix(3000)))
        let committed = (0..<10).map { "c\($0)" } + (0..<3).map { "d\($0)" }
        XCTAssertTrue(r.stdout.contains("COMMITTED \(py(committed))"), r.stdout)
        XCTAssertTrue(r.stdout.contains("UNCOMMITTED \(py(committed + (0..<5).map { "a\($0)" }))"), r.stdout)
        XCTAssertTrue(r.stdout.contains("AFTER-ABORT -1001"), "aborted offsets are not committed: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("AFTER-COMMIT 5"), r.stdout)
        XCTAssertTrue(r.stdout.contains("FENCED True _FENCED"), r.stdout)
        XCTAssertFalse(r.stdout.contains("ZOMBIE-COMMITTED"), r.stdout)
        XCTAssertTrue(r.stdout.contains("FINAL \(py(committed + ["p2", "y"]))"), r.stdout)
    }

    /// kafka-python 3.0's transactional producer commits and aborts.
    func testKafkaPythonTransactionalProducer() throws {
        let broker = try BrokerProcess()
        let script = """
            import sys
            from kafka import KafkaProducer, KafkaConsumer
            from kafka.admin import KafkaAdminClient, NewTopic
            b = sys.argv[1]
            KafkaAdminClient(bootstrap_servers=b).create_topics([NewTopic("kp", num_partitions=1, replication_factor=1)])
            p = KafkaProducer(bootstrap_servers=b, transactional_id="kp-1")
            p.init_transactions()
            p.begin_transaction()
            for i in range(4):
                p.send("kp", b"c%d" % i, partition=0)
            p.commit_transaction()
            p.begin_transaction()
            p.send("kp", b"a0", partition=0)
            p.flush()
            p.abort_transaction()
            p.begin_transaction()
            p.send("kp", b"c4", partition=0)
            p.commit_transaction()
            p.close()
            for iso in ["read_committed", "read_uncommitted"]:
                c = KafkaConsumer("kp", bootstrap_servers=b, isolation_level=iso, auto_offset_reset="earliest", consumer_timeout_ms=4000)
                print(iso.upper(), sorted(m.value.decode() for m in c))
                c.close()
            """
        let r = try runProcess(try python(), ["-c", script, broker.address], timeout: 90)
        XCTAssertEqual(r.status, 0, r.stderr + String(broker.log.suffix(3000)))
        XCTAssertTrue(r.stdout.contains("READ_COMMITTED ['c0', 'c1', 'c2', 'c3', 'c4']"), r.stdout)
        XCTAssertTrue(r.stdout.contains("READ_UNCOMMITTED ['a0', 'c0', 'c1', 'c2', 'c3', 'c4']"), r.stdout)
    }

    /// aiokafka's transactional producer commits and aborts.
    func testAiokafkaTransactionalProducer() throws {
        let broker = try BrokerProcess()
        let script = """
            import asyncio, sys
            from aiokafka import AIOKafkaProducer, AIOKafkaConsumer
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic

            async def main(b):
                admin = AIOKafkaAdminClient(bootstrap_servers=b)
                await admin.start()
                await admin.create_topics([NewTopic("aio", num_partitions=1, replication_factor=1)])
                await admin.close()
                p = AIOKafkaProducer(bootstrap_servers=b, transactional_id="aio-1")
                await p.start()
                async with p.transaction():
                    for i in range(4):
                        await p.send_and_wait("aio", b"c%d" % i, partition=0)
                try:
                    async with p.transaction():
                        await p.send_and_wait("aio", b"a0", partition=0)
                        raise RuntimeError("abort")
                except RuntimeError:
                    pass
                async with p.transaction():
                    await p.send_and_wait("aio", b"c4", partition=0)
                await p.stop()
                for iso in ["read_committed", "read_uncommitted"]:
                    c = AIOKafkaConsumer("aio", bootstrap_servers=b, isolation_level=iso, auto_offset_reset="earliest")
                    await c.start()
                    got = []
                    for _ in range(8):
                        batch = await c.getmany(timeout_ms=500)
                        for msgs in batch.values():
                            got += [m.value.decode() for m in msgs]
                    await c.stop()
                    print(iso.upper(), sorted(got))

            asyncio.run(main(sys.argv[1]))
            """
        let r = try runProcess(try python(), ["-c", script, broker.address], timeout: 90)
        XCTAssertEqual(r.status, 0, r.stderr + String(broker.log.suffix(3000)))
        XCTAssertTrue(r.stdout.contains("READ_COMMITTED ['c0', 'c1', 'c2', 'c3', 'c4']"), r.stdout)
        XCTAssertTrue(r.stdout.contains("READ_UNCOMMITTED ['a0', 'c0', 'c1', 'c2', 'c3', 'c4']"), r.stdout)
    }

    /// A transaction left open when the broker is killed (-9) is still open after the restart
    /// (read_committed stops before it), is aborted on its timeout, and the committed data is all there.
    func testOpenTransactionSurvivesKill9AndIsAbortedOnTimeout() throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-txn-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let port = Loopback.freePort()
        var broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)
        let open = """
            import os, sys
            from confluent_kafka import Producer
            from confluent_kafka.admin import AdminClient, NewTopic
            b = sys.argv[1]
            admin = AdminClient({"bootstrap.servers": b})
            for f in admin.create_topics([NewTopic("rs", 1, 1)]).values():
                f.result()
            p = Producer({"bootstrap.servers": b, "transactional.id": "rs-1", "transaction.timeout.ms": 4000})
            p.init_transactions(15)
            p.begin_transaction()
            for i in range(5):
                p.produce("rs", value=b"k%d" % i, partition=0)
            p.commit_transaction(15)
            p.begin_transaction()
            for i in range(3):
                p.produce("rs", value=b"open%d" % i, partition=0)
            p.flush(15)
            print("OPEN", flush=True)
            os._exit(0)
            """
        let first = try runProcess(try python(), ["-c", open, broker.address], timeout: 60)
        XCTAssertEqual(first.status, 0, first.stderr + String(broker.log.suffix(3000)))
        XCTAssertTrue(first.stdout.contains("OPEN"), first.stdout)
        broker.kill9()
        broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)
        let check = """
            import sys, time
            from confluent_kafka import Producer, Consumer
            b = sys.argv[1]
            plain = Producer({"bootstrap.servers": b})
            plain.produce("rs", value=b"plain", partition=0)
            plain.flush(10)
            def consume(iso, seconds):
                c = Consumer({"bootstrap.servers": b, "group.id": "rs-" + iso, "auto.offset.reset": "earliest", "isolation.level": iso, "enable.auto.commit": False})
                c.subscribe(["rs"])
                got = []
                first_plain = None
                start = time.time()
                while time.time() - start < seconds:
                    m = c.poll(0.2)
                    if m is not None and not m.error():
                        got.append(m.value().decode())
                        if m.value() == b"plain" and first_plain is None:
                            first_plain = time.time() - start
                c.close()
                return sorted(got)
            print("COMMITTED", consume("read_committed", 12))
            print("UNCOMMITTED", consume("read_uncommitted", 4))
            """
        let r = try runProcess(try python(), ["-c", check, broker.address], timeout: 90)
        XCTAssertEqual(r.status, 0, r.stderr + String(broker.log.suffix(3000)))
        XCTAssertTrue(r.stdout.contains("COMMITTED ['k0', 'k1', 'k2', 'k3', 'k4', 'plain']"), r.stdout)
        XCTAssertTrue(r.stdout.contains("UNCOMMITTED ['k0', 'k1', 'k2', 'k3', 'k4', 'open0', 'open1', 'open2', 'plain']"), r.stdout)
        XCTAssertTrue(broker.log.contains("rebuilt transaction state from the log"), String(broker.log.suffix(3000)))
        XCTAssertTrue(broker.log.contains("aborting a transaction open longer than its timeout"), String(broker.log.suffix(3000)))
    }

    /// librdkafka's test 0129 (fetch aborted messages), stretched: 1000 messages of 1000 bytes in
    /// batches of at most 10 000 bytes over 100 kB segments are aborted, 10 are committed after them; a
    /// read_committed consumer reaches the partition's end having seen exactly the 10, before and
    /// after a restart (the aborted range is rebuilt from the markers in the log).
    func testLibrdkafka0129AbortedMessagesAcrossSegmentsBeforeAndAfterRestart() throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-txn-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let port = Loopback.freePort()
        var broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)
        let script = """
            import sys, time
            from confluent_kafka import Producer, Consumer, KafkaError
            from confluent_kafka.admin import AdminClient, NewTopic
            b = sys.argv[1]
            topic = "t0129"
            if sys.argv[2] == "produce":
                admin = AdminClient({"bootstrap.servers": b})
                for f in admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "10000", "segment.bytes": "100000"})]).values():
                    f.result()
                p = Producer({"bootstrap.servers": b, "linger.ms": 100, "transactional.id": topic, "message.max.bytes": 10000})
                p.init_transactions(30)
                p.begin_transaction()
                for i in range(1000):
                    p.produce(topic, value=b"x" * 1000, partition=0)
                p.flush(30)
                p.abort_transaction(30)
                p.begin_transaction()
                for i in range(10):
                    p.produce(topic, value=b"c%d" % i, partition=0)
                p.commit_transaction(30)
            c = Consumer({"bootstrap.servers": b, "group.id": topic + sys.argv[2], "auto.offset.reset": "earliest", "enable.partition.eof": True,
                          "isolation.level": "read_committed"})
            c.subscribe([topic])
            got, eof = [], False
            start = time.time()
            while not eof and time.time() - start < 30:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof = True
                    continue
                got.append(m.value().decode())
            c.close()
            print("EOF", eof, "MESSAGES", sorted(got))
            """
        let expected = "EOF True MESSAGES \(py((0..<10).map { "c\($0)" }))"
        let first = try runProcess(try python(), ["-c", script, broker.address, "produce"], timeout: 120)
        XCTAssertEqual(first.status, 0, first.stderr + String(broker.log.suffix(3000)))
        XCTAssertTrue(first.stdout.contains(expected), first.stdout)
        let segments = try FileManager.default.contentsOfDirectory(atPath: dataDir.appendingPathComponent("t0129-0").path).filter { $0.hasSuffix(".log") }
        XCTAssertGreaterThan(segments.count, 5, "the aborted transaction spans several segments")
        XCTAssertEqual(broker.stop(), 0)
        broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)
        let again = try runProcess(try python(), ["-c", script, broker.address, "after-restart"], timeout: 120)
        XCTAssertEqual(again.status, 0, again.stderr + String(broker.log.suffix(3000)))
        XCTAssertTrue(again.stdout.contains(expected), again.stdout)
    }

    /// A transaction open when the broker is killed (-9) continues after the restart: the same
    /// confluent-kafka producer adds records and commits, and a read_committed consumer sees
    /// the records from before and after the crash.
    func testAnOpenTransactionContinuesAcrossAKill9() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-txn-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let go = FileManager.default.temporaryDirectory.appendingPathComponent("tape-txn-go-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: go) }
        let port = Loopback.freePort()
        var broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)
        let script = """
            import os, sys, time
            from confluent_kafka import Producer, Consumer, KafkaError
            from confluent_kafka.admin import AdminClient, NewTopic
            b = sys.argv[1]
            admin = AdminClient({"bootstrap.servers": b})
            for f in admin.create_topics([NewTopic("cont", 1, 1)]).values():
                f.result()
            p = Producer({"bootstrap.servers": b, "transactional.id": "cont-1", "transaction.timeout.ms": 60000})
            p.init_transactions(15)
            p.begin_transaction()
            for i in range(5):
                p.produce("cont", value=b"before%d" % i, partition=0)
            p.flush(15)
            print("READY", flush=True)
            while not os.path.exists(sys.argv[2]):  # the broker is killed and restarted meanwhile
                time.sleep(0.1)
            for i in range(5):
                p.produce("cont", value=b"after%d" % i, partition=0)
            p.commit_transaction(60)
            c = Consumer({"bootstrap.servers": b, "group.id": "cont", "auto.offset.reset": "earliest", "enable.partition.eof": True, "isolation.level": "read_committed"})
            c.subscribe(["cont"])
            got, eof, start = [], False, time.time()
            while not eof and time.time() - start < 30:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    eof = m.error().code() == KafkaError._PARTITION_EOF
                    continue
                got.append(m.value().decode())
            c.close()
            print("COMMITTED", sorted(got), flush=True)
            """
        let client = try ChildProcess(["-c", script, broker.address, go.path], name: "txn-client", executable: try python(), stdoutToLog: true)
        let ready = try await client.waitForLog("READY", timeout: 60)
        XCTAssertTrue(ready, client.stderr)
        broker.kill9()
        broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)
        _ = FileManager.default.createFile(atPath: go.path, contents: nil)
        let deadline = Date().addingTimeInterval(90)
        while client.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        XCTAssertFalse(client.isRunning, client.stderr)
        XCTAssertEqual(client.process.terminationStatus, 0, client.stderr + String(broker.log.suffix(3000)))
        let expected = py((0..<5).flatMap { ["before\($0)", "after\($0)"] })
        XCTAssertTrue(client.stderr.contains("COMMITTED \(expected)"), client.stderr)
    }
}
