import Foundation
import TapeBroker
import TapeTestSupport
import XCTest

/// Topic configs, compressed batches and long names against a real `tape broker` with real
/// clients: kcat and confluent-kafka (librdkafka), kafka-python (its own protocol code).
final class TopicConfigProcessTests: XCTestCase {
    var kcat: String!
    var python: String!

    override func setUpWithError() throws {
        kcat = try Executables.require("kcat")
        python = try Executables.require("python3")
    }

    func py(_ script: String, _ args: [String], timeout: TimeInterval = 120) throws -> String {
        let r = try runProcess(python, ["-c", script] + args, timeout: timeout)
        XCTAssertEqual(r.status, 0, "stderr: \(r.stderr)\nstdout: \(r.stdout)")
        return r.stdout
    }

    /// librdkafka writes gzip, raw snappy, LZ4 frames and zstd; the broker reads records inside
    /// them (offsets_for_times, ListOffsets MAX_TIMESTAMP) and consumers get them back intact.
    func testBatchesRealClientsCompressedAreReadInsideByTheBroker() throws {
        let broker = try BrokerProcess()
        let script = """
            import sys, time
            from confluent_kafka import Producer, Consumer, TopicPartition
            from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
            b = sys.argv[1]
            admin = AdminClient({'bootstrap.servers': b})
            base = 1700000000000
            def ts(i):
                return base + 100000 if i == 12 else base + i * 1000
            for codec in ['gzip', 'snappy', 'lz4', 'zstd']:
                t = 'ck-' + codec
                admin.create_topics([NewTopic(t, 1, 1)])[t].result(10)
                p = Producer({'bootstrap.servers': b, 'compression.type': codec, 'linger.ms': 300})
                for i in range(20):
                    p.produce(t, key=b'k%d' % i, value=(b'value-%d ' % i) * 20, timestamp=ts(i))
                assert p.flush(15) == 0
                c = Consumer({'bootstrap.servers': b, 'group.id': 'g-' + codec, 'enable.auto.commit': False})
                found = c.offsets_for_times([TopicPartition(t, 0, base + 6500)], 10)
                print(codec, 'FOR-TIMES', found[0].offset)
                c.assign([TopicPartition(t, 0, 0)])
                got = []
                deadline = time.time() + 15
                while len(got) < 20 and time.time() < deadline:
                    m = c.poll(0.5)
                    if m is None or m.error():
                        continue
                    got.append((m.offset(), m.key(), m.timestamp()[1], m.value()))
                c.close()
                ok = all(o == i and k == b'k%d' % i and t2 == ts(i) and v == (b'value-%d ' % i) * 20 for i, (o, k, t2, v) in enumerate(got))
                print(codec, 'CONSUMED', len(got), ok)
                tp = TopicPartition(t, 0)
                r = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(10)
                print(codec, 'MAX-TIMESTAMP', r.offset, r.timestamp == base + 100000)
            """
        let out = try py(script, [broker.address])
        for (i, codec) in ["gzip", "snappy", "lz4", "zstd"].enumerated() {
            // The lookups below are only meaningful if the records share compressed batches.
            let batches = try storedBatches(broker, "ck-\(codec)")
            XCTAssertLessThan(batches.count, 10, "\(codec): records were batched")
            XCTAssertTrue(batches.allSatisfy { $0.codec == i + 1 }, "\(codec): stored as the client compressed it: \(batches)")
            XCTAssertTrue(out.contains("\(codec) FOR-TIMES 7\n"), "\(codec): \(out)\n\(broker.log.suffix(3000))")
            XCTAssertTrue(out.contains("\(codec) CONSUMED 20 True"), "\(codec): \(out)")
            XCTAssertTrue(out.contains("\(codec) MAX-TIMESTAMP 12 True"), "\(codec): \(out)")
        }
    }

    /// (record count, codec) of every batch in partition 0's first segment, read from the data directory.
    func storedBatches(_ broker: BrokerProcess, _ topic: String, file: String = "00000000000000000000.log") throws -> [(records: Int, codec: Int)] {
        let bytes = [UInt8](try Data(contentsOf: broker.dataDir.appendingPathComponent("\(topic)-0/\(file)")))
        func int(_ at: Int, _ n: Int) -> Int { bytes[at..<at + n].reduce(0) { $0 << 8 | Int($1) } }
        var out: [(Int, Int)] = []
        var p = 0
        while p + 61 <= bytes.count {
            out.append((int(p + 57, 4), int(p + 21, 2) & 7))
            p += 12 + int(p + 8, 4)
        }
        return out
    }

    /// Compaction of batches librdkafka compressed (gzip, raw snappy, LZ4, zstd): the broker's
    /// data directory is compacted, then consumers read only the latest value of every key, from
    /// batches recompressed with their own codec.
    func testCompactionRewritesCompressedBatchesRealClientsWrote() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-compact-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        var broker = try BrokerProcess(dataDir: dataDir)
        let codecs = ["gzip", "snappy", "lz4", "zstd"]
        let script = """
            import sys
            from confluent_kafka import Producer
            from confluent_kafka.admin import AdminClient, NewTopic
            b = sys.argv[1]
            a = AdminClient({'bootstrap.servers': b})
            for codec in ['gzip', 'snappy', 'lz4', 'zstd']:
                t = 'cc-' + codec
                a.create_topics([NewTopic(t, 1, 1, config={'cleanup.policy': 'compact', 'segment.bytes': '200'})])[t].result(10)
                p = Producer({'bootstrap.servers': b, 'compression.type': codec, 'linger.ms': 50})
                for r in range(5):
                    for k in range(10):
                        p.produce(t, key=b'k%d' % k, value=b'r%d-k%d-' % (r, k) + b'%d' % (r * 7919 + k * 104729) * 6)
                    assert p.flush(10) == 0
            print('PRODUCED')
            """
        XCTAssertTrue(try py(script, [broker.address]).contains("PRODUCED"))
        XCTAssertEqual(broker.stop(), 0)
        let manager = try LogManager(configuration: .init(dataDirectory: dataDir.path, fsyncPolicy: .never, maintenanceIntervalMs: 0))
        for codec in codecs {
            let log = try XCTUnwrap(manager.partitionLog(topic: "cc-\(codec)", partition: 0))
            XCTAssertGreaterThan(log.segmentCount, 2, codec)
            XCTAssertEqual(try log.compact(), 40, "\(codec): rounds 0-3 are superseded by round 4")
        }
        await manager.shutdown()
        broker = try BrokerProcess(dataDir: dataDir)
        for (i, codec) in codecs.enumerated() {
            let r = try runProcess(kcat, ["-b", broker.address, "-C", "-t", "cc-\(codec)", "-o", "beginning", "-e", "-f", "%k=%s\n"], timeout: 30)
            XCTAssertEqual(r.status, 0, r.stderr)
            let lines = r.stdout.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.map { String($0.prefix(while: { $0 != "=" })) }, (0..<10).map { "k\($0)" }, "\(codec): \(lines)")
            XCTAssertTrue(lines.allSatisfy { $0.contains("=r4-") }, "\(codec): \(lines)")
            let files = try FileManager.default.contentsOfDirectory(atPath: dataDir.appendingPathComponent("cc-\(codec)-0").path).filter {
                $0.hasSuffix(".log")
            }
            for file in files {
                let batches = try storedBatches(broker, "cc-\(codec)", file: file)
                XCTAssertTrue(batches.allSatisfy { $0.codec == i + 1 }, "\(codec) \(file): \(batches)")
            }
        }
    }

    /// kcat's batches in every codec, stored as sent and recompressed by the topic's
    /// compression.type, read back by kcat (librdkafka) and, where it has the codec, kafka-python.
    func testKcatBatchesInEveryCodecAndTopicCompressionTypes() throws {
        let broker = try BrokerProcess()
        let lines = (0..<30).map { "k\($0)\tvalue-\($0)-" + String(repeating: "x", count: 50) }
        func produce(_ topic: String, codec: String) throws {
            let r = try runProcess(
                kcat, ["-b", broker.address, "-P", "-t", topic, "-z", codec, "-K", "\t", "-X", "linger.ms=100"], stdin: lines.joined(separator: "\n") + "\n",
                timeout: 30)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        func consume(_ topic: String) throws -> [String] {
            let r = try runProcess(kcat, ["-b", broker.address, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%o:%k\t%s\n"], timeout: 30)
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.stdout.split(separator: "\n").map(String.init)
        }
        let expected = lines.enumerated().map { "\($0.offset):\($0.element)" }
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            try produce("kz-\(codec)", codec: codec)
            XCTAssertEqual(try consume("kz-\(codec)"), expected, "kcat -z \(codec)")
        }
        // compression.type set on the topic: the broker rewrites what kcat sent (gzip) into it.
        let create = """
            import sys
            from confluent_kafka.admin import AdminClient, NewTopic
            a = AdminClient({'bootstrap.servers': sys.argv[1]})
            for codec in ['uncompressed', 'gzip', 'snappy', 'lz4', 'zstd']:
                t = 'kr-' + codec
                a.create_topics([NewTopic(t, 1, 1, config={'compression.type': codec})])[t].result(10)
            print('CREATED')
            """
        XCTAssertTrue(try py(create, [broker.address]).contains("CREATED"))
        for (i, codec) in ["uncompressed", "gzip", "snappy", "lz4", "zstd"].enumerated() {
            try produce("kr-\(codec)", codec: codec == "gzip" ? "lz4" : "gzip")
            XCTAssertEqual(try consume("kr-\(codec)"), expected, "topic compression.type=\(codec)")
            let stored = try storedBatches(broker, "kr-\(codec)")
            XCTAssertTrue(!stored.isEmpty && stored.allSatisfy { $0.codec == i }, "kr-\(codec) stored recompressed: \(stored)")
        }
        let kafkaPython = """
            import sys
            from kafka import KafkaConsumer, TopicPartition
            for t in ['kr-uncompressed', 'kr-gzip']:
                c = KafkaConsumer(bootstrap_servers=sys.argv[1], consumer_timeout_ms=5000, enable_auto_commit=False)
                c.assign([TopicPartition(t, 0)])
                c.seek_to_beginning()
                got = [(m.offset, m.key.decode()) for m in c]
                c.close()
                print(t, len(got), got == [(i, 'k%d' % i) for i in range(30)])
            """
        let out = try py(kafkaPython, [broker.address])
        XCTAssertTrue(out.contains("kr-uncompressed 30 True"), out)
        XCTAssertTrue(out.contains("kr-gzip 30 True"), out)
    }

    /// Configs Tape cannot apply are refused with INVALID_CONFIG (40) and a message naming the key,
    /// by CreateTopics, AlterConfigs and IncrementalAlterConfigs; accepted ones are shown by
    /// DescribeConfigs as dynamic topic configs, also after a restart.
    func testBogusConfigsAreRefusedAndGoodOnesAppliedThroughRealAdminClients() throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-cfg-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        var broker = try BrokerProcess(dataDir: dataDir)
        let script = """
            import sys
            from confluent_kafka import KafkaException
            from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource, ConfigEntry, AlterConfigOpType, ResourceType
            b = sys.argv[1]
            a = AdminClient({'bootstrap.servers': b})
            def show(label, fut):
                try:
                    fut.result(10)
                    print(label, 'OK')
                except KafkaException as e:
                    print(label, e.args[0].code(), e.args[0].str())
            for key, value in [('compression.type', 'bogus'), ('message.timestamp.type', 'bogus'), ('min.cleanable.dirty.ratio', '7'),
                               ('unclean.leader.election.enable', 'true'), ('retention.ms', 'soon')]:
                t = 'bad-' + key.replace('.', '-')
                show('CREATE ' + key, a.create_topics([NewTopic(t, 1, 1, config={key: value})])[t])
            show('CREATE-GOOD', a.create_topics([NewTopic('cfg', 1, 1, config={'compression.type': 'gzip', 'min.cleanable.dirty.ratio': '0.2',
                 'message.timestamp.type': 'LogAppendTime', 'delete.retention.ms': '1000'})])['cfg'])
            r = ConfigResource(ResourceType.TOPIC, 'cfg', set_config={'compression.type': 'bogus'})
            show('ALTER', a.alter_configs([r])[r])
            r = ConfigResource(ResourceType.TOPIC, 'cfg', incremental_configs=[ConfigEntry('message.timestamp.type', 'bogus', incremental_operation=AlterConfigOpType.SET)])
            show('INCREMENTAL', a.incremental_alter_configs([r])[r])
            r = ConfigResource(ResourceType.TOPIC, 'cfg', incremental_configs=[ConfigEntry('retention.ms', '12345', incremental_operation=AlterConfigOpType.SET)])
            show('INCREMENTAL-GOOD', a.incremental_alter_configs([r])[r])
            r = ConfigResource(ResourceType.BROKER, '0', incremental_configs=[ConfigEntry('log.retention.ms', '1', incremental_operation=AlterConfigOpType.SET)])
            show('BROKER', a.incremental_alter_configs([r])[r])
            r = ConfigResource(ResourceType.TOPIC, 'cfg')
            d = a.describe_configs([r])[r].result(10)
            print('DESCRIBE', d['retention.ms'].value, int(d['retention.ms'].source), d['compression.type'].value, int(d['segment.ms'].source),
                  d['min.cleanable.dirty.ratio'].value, d['message.timestamp.type'].value)

            from kafka import KafkaAdminClient
            from kafka.admin import NewTopic as KNewTopic, ConfigResource as KConfigResource, ConfigResourceType
            from kafka.errors import InvalidConfigurationError
            k = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=10000)
            try:
                k.create_topics([KNewTopic('kp-bad', 1, 1, topic_configs={'compression.type': 'bogus'})])
                print('KP-CREATE accepted')
            except InvalidConfigurationError as e:
                print('KP-CREATE refused', 'compression.type=bogus' in str(e))
            resp = k.alter_configs([KConfigResource(ConfigResourceType.TOPIC, 'cfg', configs={'message.timestamp.type': 'bogus'})])
            print('KP-ALTER', repr(resp))
            """
        let out = try py(script, [broker.address])
        for key in ["compression.type", "message.timestamp.type", "min.cleanable.dirty.ratio", "unclean.leader.election.enable", "retention.ms"] {
            XCTAssertTrue(out.contains("CREATE \(key) 40 ") && out.contains(key + "="), "\(key): \(out)")
        }
        XCTAssertTrue(out.contains("CREATE-GOOD OK"), out)
        XCTAssertTrue(out.contains("ALTER 40 topic config compression.type=bogus"), out)
        XCTAssertTrue(out.contains("INCREMENTAL 40 topic config message.timestamp.type=bogus"), out)
        XCTAssertTrue(out.contains("INCREMENTAL-GOOD OK"), out)
        // Not one of the dynamic broker configs Tape stores: INVALID_CONFIG naming it.
        XCTAssertTrue(out.contains("BROKER 40 broker config log.retention.ms=1 "), out)
        XCTAssertTrue(out.contains("DESCRIBE 12345 1 gzip 5 0.2 LogAppendTime"), out)
        XCTAssertTrue(out.contains("KP-CREATE refused True"), out)
        XCTAssertTrue(out.contains("KP-ALTER {'topic': {'cfg': '[Error 40] InvalidConfigurationError: topic config message.timestamp.type=bogus"), out)
        XCTAssertEqual(broker.stop(), 0)
        broker = try BrokerProcess(dataDir: dataDir)
        let after = """
            import sys
            from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
            a = AdminClient({'bootstrap.servers': sys.argv[1]})
            r = ConfigResource(ResourceType.TOPIC, 'cfg')
            d = a.describe_configs([r])[r].result(10)
            print('RESTARTED', d['retention.ms'].value, int(d['retention.ms'].source), d['compression.type'].value)
            """
        XCTAssertTrue(try py(after, [broker.address]).contains("RESTARTED 12345 1 gzip"))
    }

    /// aiokafka (its own protocol code, asyncio): INVALID_CONFIG from CreateTopics and AlterConfigs,
    /// and offsets_for_times inside the gzip batches it wrote.
    func testAiokafkaSeesInvalidConfigAndTimestampLookupsInsideItsBatches() throws {
        let broker = try BrokerProcess()
        let script = """
            import sys, asyncio
            from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic
            from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
            b = sys.argv[1]
            async def main():
                ad = AIOKafkaAdminClient(bootstrap_servers=b)
                await ad.start()
                r = await ad.create_topics([NewTopic('ak-bad', 1, 1, topic_configs={'message.timestamp.type': 'bogus'})])
                print('CREATE', [(e[0], e[1], e[2]) for e in r.topic_errors])
                await ad.create_topics([NewTopic('ak', 1, 1)])
                r = await ad.alter_configs([ConfigResource(ConfigResourceType.TOPIC, 'ak', configs={'retention.ms': 'bogus'})])
                print('ALTER', [(e[0], e[1]) for e in r[0].resources])
                await ad.close()
                p = AIOKafkaProducer(bootstrap_servers=b, compression_type='gzip', linger_ms=100)
                await p.start()
                sent = [await p.send('ak', b'x%d' % i, timestamp_ms=1700000000000 + i * 1000) for i in range(5)]
                await asyncio.gather(*sent)
                await p.stop()
                c = AIOKafkaConsumer(bootstrap_servers=b)
                await c.start()
                found = await c.offsets_for_times({TopicPartition('ak', 0): 1700000002500})
                print('FOR-TIMES', found[TopicPartition('ak', 0)].offset)
                await c.stop()
            asyncio.run(main())
            """
        let out = try py(script, [broker.address])
        XCTAssertTrue(out.contains("CREATE [('ak-bad', 40, 'topic config message.timestamp.type=bogus"), out)
        XCTAssertTrue(out.contains("ALTER [(40, 'topic config retention.ms=bogus"), out)
        XCTAssertTrue(out.contains("FOR-TIMES 3"), out)
        let batches = try storedBatches(broker, "ak")
        XCTAssertTrue(batches.count < 5 && batches.allSatisfy { $0.codec == 1 }, "\(batches)")
    }

    /// message.timestamp.type=LogAppendTime: consumers see the broker's append time, typed so.
    func testLogAppendTimeIsWhatConsumersSee() throws {
        let broker = try BrokerProcess()
        let script = """
            import sys, time
            from confluent_kafka import Producer, Consumer, TopicPartition, TIMESTAMP_LOG_APPEND_TIME
            from confluent_kafka.admin import AdminClient, NewTopic
            b = sys.argv[1]
            a = AdminClient({'bootstrap.servers': b})
            a.create_topics([NewTopic('lat', 1, 1, config={'message.timestamp.type': 'LogAppendTime'})])['lat'].result(10)
            before = int(time.time() * 1000)
            for codec in ['none', 'gzip']:
                p = Producer({'bootstrap.servers': b, 'compression.type': codec})
                p.produce('lat', value=b'x' * 100, timestamp=1000)
                assert p.flush(10) == 0
            after = int(time.time() * 1000)
            c = Consumer({'bootstrap.servers': b, 'group.id': 'lat', 'enable.auto.commit': False})
            c.assign([TopicPartition('lat', 0, 0)])
            got = []
            deadline = time.time() + 15
            while len(got) < 2 and time.time() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    got.append(m.timestamp())
            c.close()
            print('LAT', len(got), all(t == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000 for t, ts in got))
            from kafka import KafkaConsumer, TopicPartition as KTP
            k = KafkaConsumer(bootstrap_servers=b, consumer_timeout_ms=5000)
            k.assign([KTP('lat', 0)])
            k.seek_to_beginning()
            ms = [m for m in k]
            print('KP-LAT', len(ms), all(m.timestamp_type == 1 and m.timestamp >= before - 1000 for m in ms))
            """
        let out = try py(script, [broker.address])
        XCTAssertTrue(out.contains("LAT 2 True"), out)
        XCTAssertTrue(out.contains("KP-LAT 2 True"), out)
    }

    /// group.initial.rebalance.delay.ms: by default (3000, as Kafka) a consumer joining a second
    /// after the first lands in the group's first generation, so the first never holds every
    /// partition; with the flag at 0 the group forms around the first at once.
    func testInitialRebalanceDelayLetsTheSecondConsumerIntoTheFirstGeneration() throws {
        let script = """
            import sys, time, threading
            from confluent_kafka import Consumer
            from confluent_kafka.admin import AdminClient, NewTopic
            b = sys.argv[1]
            admin = AdminClient({'bootstrap.servers': b})
            admin.create_topics([NewTopic('rd', 4, 1)])['rd'].result(10)
            first = {}
            def run(name, delay):
                time.sleep(delay)
                c = Consumer({'bootstrap.servers': b, 'group.id': 'rd', 'session.timeout.ms': 10000})
                c.subscribe(['rd'], on_assign=lambda c, parts: first.setdefault(name, len(parts)))
                end = time.time() + 20
                while time.time() < end and len(first) < 2:
                    c.poll(0.1)
                c.close()
            threads = [threading.Thread(target=run, args=('a', 0)), threading.Thread(target=run, args=('b', 1))]
            for t in threads: t.start()
            for t in threads: t.join()
            print('FIRST', first.get('a'), first.get('b'))
            """
        let delayed = try BrokerProcess()
        XCTAssertTrue(try py(script, [delayed.address]).contains("FIRST 2 2"), delayed.log)
        let immediate = try BrokerProcess(extraArguments: ["--group-initial-rebalance-delay-ms", "0"])
        XCTAssertTrue(try py(script, [immediate.address]).contains("FIRST 4 "), immediate.log)
    }

    /// A topic of Kafka's longest legal name (249 characters): created, produced, consumed, kept
    /// across a restart, deleted, and still gone after the next restart.
    func testLongestTopicNameLivesAndDiesAcrossRestarts() throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-long-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let topic = String(repeating: "t", count: 240) + "-._abcde"
        XCTAssertEqual(topic.count, 248)
        let name = topic + "Z"
        var broker = try BrokerProcess(dataDir: dataDir)
        let admin = """
            import sys
            from confluent_kafka.admin import AdminClient, NewTopic
            a = AdminClient({'bootstrap.servers': sys.argv[1]})
            op, t = sys.argv[2], sys.argv[3]
            if op == 'create':
                a.create_topics([NewTopic(t, 3, 1)])[t].result(10)
            elif op == 'delete':
                a.delete_topics([t])[t].result(10)
            print('TOPICS', t in a.list_topics(timeout=10).topics)
            """
        XCTAssertTrue(try py(admin, [broker.address, "create", name]).contains("TOPICS True"))
        let produced = try runProcess(kcat, ["-b", broker.address, "-P", "-t", name, "-p", "2"], stdin: "a\nb\nc\n", timeout: 30)
        XCTAssertEqual(produced.status, 0, produced.stderr)
        func consume() throws -> String {
            try runProcess(kcat, ["-b", broker.address, "-C", "-t", name, "-p", "2", "-o", "beginning", "-e"], timeout: 30).stdout
        }
        XCTAssertEqual(try consume(), "a\nb\nc\n")
        XCTAssertEqual(broker.stop(), 0)
        broker = try BrokerProcess(dataDir: dataDir)
        XCTAssertEqual(try consume(), "a\nb\nc\n", broker.log)
        XCTAssertTrue(try py(admin, [broker.address, "delete", name]).contains("TOPICS False"))
        XCTAssertEqual(broker.stop(), 0)
        broker = try BrokerProcess(dataDir: dataDir)
        XCTAssertTrue(try py(admin, [broker.address, "list", name]).contains("TOPICS False"))
        let left = try FileManager.default.contentsOfDirectory(atPath: dataDir.path).filter { $0.hasPrefix("tttt") }
        XCTAssertEqual(left, [])
    }
}
