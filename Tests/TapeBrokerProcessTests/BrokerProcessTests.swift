import Foundation
import KafkaProtocol
import NIOCore
import Synchronization
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Integration tests: the built `tape broker` as a separate process, driven by kcat
/// (librdkafka 2.0.2) and, when installed, kafka-python — all on loopback.
final class BrokerProcessTests: XCTestCase {
    var kcat: String!

    override func setUpWithError() throws {
        kcat = try Executables.require("kcat")
    }

    func testKcatMetadataListsThisBroker() throws {
        let broker = try BrokerProcess()
        let r = try runProcess(kcat, ["-b", broker.address, "-L", "-t", "listed"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("broker 0 at \(broker.address)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("topic \"listed\" with 1 partitions"), r.stdout)
        XCTAssertEqual(broker.stop(), 0, "SIGTERM should stop the broker cleanly")
        XCTAssertTrue(broker.log.contains("tape broker stopped"), broker.log)
    }

    /// Produces keyed records with headers under every codec and reads them back byte for byte.
    func testProduceAndConsumeEveryCompressionCodecByteForByte() throws {
        let broker = try BrokerProcess(extraArguments: ["--log-level", "debug"])
        var rng = SystemRandomNumberGenerator()
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let topic = "codec-\(codec)"
            var lines: [String] = []
            for i in 0..<200 {
                let repeated = String(repeating: "candle-\(i % 7) ", count: Int.random(in: 1...40, using: &rng))
                let value = i == 100 ? String(repeating: "x", count: 20_000) : "\(i) ünïcødé \(repeated)".trimmingCharacters(in: .whitespaces)
                lines.append("key-\(i)\t\(value)")
            }
            let input = lines.joined(separator: "\n") + "\n"
            let p = try runProcess(
                kcat, ["-b", broker.address, "-P", "-t", topic, "-z", codec, "-K", "\t", "-H", "source=test", "-H", "codec=\(codec)", "-X", "linger.ms=20"],
                stdin: input)
            XCTAssertEqual(p.status, 0, "\(codec): \(p.stderr)")
            let c = try runProcess(kcat, ["-b", broker.address, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\t%h\n"])
            XCTAssertEqual(c.status, 0, c.stderr)
            let expected = lines.map { "\($0)\tsource=test,codec=\(codec)" }
            XCTAssertEqual(c.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init), expected, codec)
            // The batches really were stored compressed with this codec (stored as received, not unpacked).
            XCTAssertTrue(broker.log.contains("compression=\(codec)") && broker.log.contains("partition=\(topic)-0"), "no \(codec) batch logged for \(topic)")
        }
        let offsets = try runProcess(kcat, ["-b", broker.address, "-Q", "-t", "codec-zstd:0:-1"])
        XCTAssertTrue(offsets.stdout.contains("codec-zstd [0] offset 200"), offsets.stdout + offsets.stderr)
        // By timestamp: every record is newer than one hour ago, none is from the future.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let past = try runProcess(kcat, ["-b", broker.address, "-Q", "-t", "codec-none:0:\(now - 3_600_000)"])
        XCTAssertTrue(past.stdout.contains("codec-none [0] offset 0"), past.stdout + past.stderr)
        let future = try runProcess(kcat, ["-b", broker.address, "-Q", "-t", "codec-none:0:\(now + 3_600_000)"])
        XCTAssertTrue(future.stdout.contains("codec-none [0] offset -1"), future.stdout + future.stderr)
    }

    func testIdempotentProducerWithAcksAll() throws {
        let broker = try BrokerProcess(extraArguments: ["--log-level", "debug"])
        let input = (0..<5000).map { "m\($0)" }.joined(separator: "\n") + "\n"
        let p = try runProcess(
            kcat,
            ["-b", broker.address, "-P", "-t", "idem", "-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5", "-X", "batch.num.messages=500"],
            stdin: input)
        XCTAssertEqual(p.status, 0, p.stderr)
        let c = try runProcess(kcat, ["-b", broker.address, "-C", "-t", "idem", "-o", "beginning", "-e", "-q", "-f", "%o %s\n"])
        let lines = c.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, (0..<5000).map { "\($0) m\($0)" }, "exactly once, in order, contiguous offsets")
        XCTAssertTrue(broker.log.contains("producerId=") && !broker.log.contains("producerId=-1"), "batches should carry the producer id from InitProducerId")
    }

    func consumeGroup(_ broker: BrokerProcess, group: String, topic: String) throws -> [String] {
        let r = try runProcess(
            kcat, ["-b", broker.address, "-G", group, topic, "-e", "-q", "-f", "%s\n", "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000"],
            timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    func testConsumerGroupCommitsOffsetsAndResumes() throws {
        let broker = try BrokerProcess(extraArguments: ["--num-partitions", "3"])
        let first = (0..<30).map { "k\($0):v\($0)" }.joined(separator: "\n") + "\n"
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "grouped", "-K", ":"], stdin: first).status, 0)
        let meta = try runProcess(kcat, ["-b", broker.address, "-L", "-t", "grouped"])
        XCTAssertTrue(meta.stdout.contains("with 3 partitions"), meta.stdout)

        XCTAssertEqual(Set(try consumeGroup(broker, group: "g1", topic: "grouped")), Set((0..<30).map { "v\($0)" }))
        XCTAssertEqual(try consumeGroup(broker, group: "g1", topic: "grouped"), [], "committed offsets: nothing new")
        let more = (30..<35).map { "k\($0):v\($0)" }.joined(separator: "\n") + "\n"
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "grouped", "-K", ":"], stdin: more).status, 0)
        XCTAssertEqual(Set(try consumeGroup(broker, group: "g1", topic: "grouped")), Set((30..<35).map { "v\($0)" }))
        XCTAssertEqual(try consumeGroup(broker, group: "g2", topic: "grouped").count, 35, "another group starts from the beginning")
    }

    /// A static member (group.instance.id) that restarts without leaving takes its old place at
    /// once instead of waiting for its old incarnation's session to expire.
    func testStaticMemberRestartsWithoutWaitingForItsOldSession() throws {
        let broker = try BrokerProcess()
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "static"], stdin: "a\nb\n").status, 0)
        func run() throws -> [String] {
            let r = try runProcess(
                kcat,
                [
                    "-b", broker.address, "-G", "sg", "static", "-e", "-q", "-f", "%s\n", "-X", "group.instance.id=inst-1", "-X", "auto.offset.reset=earliest",
                    "-X", "session.timeout.ms=30000",
                ],
                timeout: 20)
            return r.stdout.split(separator: "\n").map(String.init)
        }
        XCTAssertEqual(try run(), ["a", "b"])
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "static"], stdin: "c\n").status, 0)
        let start = Date()
        XCTAssertEqual(try run(), ["c"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 15, "no wait for the 30 s session of the previous run")
    }

    func testDeadMemberIsEvictedAfterSessionTimeoutAndTheGroupRebalances() throws {
        let broker = try BrokerProcess()
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "evict"], stdin: "a\nb\nc\n").status, 0)
        // Member A joins and owns the only partition; then it is killed without leaving.
        let a = Process()
        a.executableURL = URL(fileURLWithPath: kcat)
        a.arguments = [
            "-b", broker.address, "-G", "ev", "evict", "-q", "-X", "session.timeout.ms=6000", "-X", "auto.offset.reset=earliest", "-X",
            "enable.auto.commit=false",
        ]
        a.standardOutput = FileHandle.nullDevice
        a.standardError = FileHandle.nullDevice
        try a.run()
        let deadline = Date().addingTimeInterval(20)
        while !broker.log.contains("group=ev") && Date() < deadline { usleep(100_000) }
        XCTAssertTrue(broker.log.contains("group=ev"), "member A never joined: \(broker.log)")
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        // Member B can only get the partition once A's session (6 s) has expired.
        let start = Date()
        let values = try consumeGroup(broker, group: "ev", topic: "evict")
        XCTAssertEqual(values, ["a", "b", "c"])
        XCTAssertGreaterThan(Date().timeIntervalSince(start), 3, "B should have waited for A's eviction")
        XCTAssertTrue(broker.log.contains("session expired"), broker.log)
    }

    func testHostileFramesCloseOnlyTheirConnection() throws {
        let broker = try BrokerProcess()
        let idle = Loopback.connect(port: broker.port, receiveTimeout: 5)
        XCTAssertGreaterThanOrEqual(idle, 0)
        defer { close(idle) }
        let attacks: [[UInt8]] = [
            [0x7F, 0xFF, 0xFF, 0xFF],  // 2 GiB frame
            [0xFF, 0xFF, 0xFF, 0xF0],  // negative size
            [0, 0, 0, 10, 0, 99, 0, 0, 0, 0, 0, 1, 0, 0],  // unknown API key
            [0, 0, 0, 12, 0, 3, 0, 4, 0, 0, 0, 1, 0x7F, 0xFF, 0, 0],  // Metadata with a client id longer than the frame
            [0, 0, 0, 16, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0xFF, 0xFF, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF],  // Produce with a 2-billion-topic array
        ]
        for attack in attacks {
            let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = attack.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var buf = [UInt8](repeating: 0, count: 64)
            let n = recv(fd, &buf, buf.count, 0)
            XCTAssertEqual(n, 0, "the broker should close the connection after \(attack)")
            close(fd)
        }
        XCTAssertTrue(broker.log.contains("closing connection"), broker.log)
        // The broker and other clients carry on.
        let r = try runProcess(kcat, ["-b", broker.address, "-L"])
        XCTAssertEqual(r.status, 0, r.stderr)
        var probe: [UInt8] = [0, 0, 0, 14, 0, 18, 0, 0, 0, 0, 0, 42, 0, 4, 0x74, 0x65, 0x73, 0x74]  // ApiVersions v0 on the idle connection
        XCTAssertEqual(probe.withUnsafeMutableBytes { send(idle, $0.baseAddress, $0.count, 0) }, 18)
        var header = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(recv(idle, &header, 8, Int32(MSG_WAITALL)), 8)
        XCTAssertEqual(Array(header[4..<8]), [0, 0, 0, 42], "correlation id echoed")
    }

    func testPortInUseGivesOneClearSentence() throws {
        let broker = try BrokerProcess()
        let r = try runProcess(TapeBinary.path, ["broker", "--listen", broker.address], timeout: 15)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(broker.address) is already in use"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Usage"), "one sentence, no usage dump: \(r.stderr)")
        let bad = try runProcess(TapeBinary.path, ["broker", "--listen", "nonsense"], timeout: 15)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--listen must be HOST:PORT"), bad.stderr)
    }

    func testSigtermWithConnectedConsumersStopsPromptly() throws {
        let broker = try BrokerProcess()
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "busy"], stdin: "a\n").status, 0)
        let consumer = Process()
        consumer.executableURL = URL(fileURLWithPath: kcat)
        consumer.arguments = ["-b", broker.address, "-G", "busy-group", "busy", "-q", "-X", "session.timeout.ms=30000"]
        consumer.standardOutput = FileHandle.nullDevice
        consumer.standardError = FileHandle.nullDevice
        try consumer.run()
        defer {
            kill(consumer.processIdentifier, SIGKILL)
            consumer.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(20)
        while !broker.log.contains("group=busy-group") && Date() < deadline { usleep(100_000) }
        usleep(500_000)  // the consumer is now long-polling
        let start = Date()
        XCTAssertEqual(broker.stop(), 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertTrue(broker.log.contains("received SIGTERM"), broker.log)
    }

    /// Clients that keep connecting while the broker stops (librdkafka reconnects at once when
    /// its connection is closed) must not crash it: a connection NIO accepted during the
    /// shutdown used to be dropped unfinished, and NIO traps on that (seen in `tape up`).
    func testSigtermWhileClientsKeepConnectingExitsCleanly() throws {
        for round in 0..<8 {
            let broker = try BrokerProcess()
            let port = broker.port
            final class Flag: Sendable { let value = Atomic<Bool>(false) }
            let stop = Flag()
            let connectors = (0..<8).map { _ in
                Thread {
                    while !stop.value.load(ordering: .relaxed) {
                        let fd = Loopback.connect(port: port, receiveTimeout: 5)
                        // Refused (the broker is gone): back off a millisecond, or eight threads
                        // spinning on two cores starve the thread that reaps the exited broker,
                        // and waiting for its exit hung (seen twice on this machine).
                        if fd >= 0 { close(fd) } else { usleep(1_000) }
                    }
                }
            }
            connectors.forEach { $0.start() }
            usleep(200_000)
            let status = broker.stop()
            stop.value.store(true, ordering: .relaxed)
            XCTAssertEqual(status, 0, "round \(round): the broker did not exit cleanly:\n\(broker.log.suffix(3000))")
            XCTAssertFalse(broker.log.contains("Fatal error"), broker.log)
            usleep(100_000)
        }
    }

    /// A JoinGroup parked in a rebalance (waiting for a dead member's session) must not keep
    /// the broker from stopping.
    func testSigtermWithAParkedJoinGroupStopsPromptly() throws {
        let broker = try BrokerProcess()
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "parked"], stdin: "a\n").status, 0)
        func member() throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: kcat)
            p.arguments = ["-b", broker.address, "-G", "parked-group", "parked", "-q", "-X", "session.timeout.ms=30000"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        let a = try member()
        waitFor("A to join") { broker.log.contains("group=parked-group") }
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        let b = try member()  // its JoinGroup waits for A's 30 s session to expire
        defer {
            kill(b.processIdentifier, SIGKILL)
            b.waitUntilExit()
        }
        usleep(1_500_000)
        let start = Date()
        XCTAssertEqual(broker.stop(), 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, broker.log)
    }

    func testAutoCreateCanBeSwitchedOff() throws {
        let broker = try BrokerProcess(extraArguments: ["--auto-create-topics", "false"])
        let r = try runProcess(kcat, ["-b", broker.address, "-L", "-t", "absent"])
        XCTAssertTrue(r.stdout.contains("Broker: Unknown topic or partition"), r.stdout)
    }

    /// kafka-python (a client that does not use librdkafka): admin, producer, consumer group.
    func testKafkaPythonAdminProducerAndConsumerGroup() throws {
        let python = try Executables.require("python3")
        guard try runProcess(python, ["-c", "import kafka"]).status == 0 else {
            throw XCTSkip("kafka-python is not installed (pip install kafka-python)")
        }
        let broker = try BrokerProcess()
        let script = """
            import sys
            from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient
            from kafka.admin import NewTopic
            from kafka.errors import InvalidReplicationFactorError
            b = sys.argv[1]
            admin = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=10000)
            admin.create_topics([NewTopic("py", num_partitions=2, replication_factor=1)])
            try:
                admin.create_topics([NewTopic("py3", num_partitions=1, replication_factor=3)])
                print("RF3-ACCEPTED")
            except InvalidReplicationFactorError as e:
                print("RF3-REFUSED")
            p = KafkaProducer(bootstrap_servers=b, acks="all", compression_type="gzip")
            for i in range(50):
                p.send("py", key=b"k%d" % (i % 5), value=b"v%d" % i)
            p.flush()
            c = KafkaConsumer("py", bootstrap_servers=b, group_id="pyg", auto_offset_reset="earliest", consumer_timeout_ms=4000, enable_auto_commit=False)
            got = sorted(int(m.value[1:]) for m in c)
            c.commit()
            c.close()
            print("CONSUMED", len(got), got == list(range(50)))
            offs = admin.list_group_offsets("pyg")["pyg"]
            print("COMMITTED", sum(o.offset for o in offs.values()))
            print("GROUPS", [g["group_id"] for g in admin.list_groups()])
            d = admin.describe_groups(["pyg"])["pyg"]
            print("DESCRIBED", d["group_state"], d["protocol_type"])
            admin.delete_topics(["py"])
            print("TOPICS", sorted(admin.list_topics()))
            try:
                admin.delete_topics(["never-existed"])
                print("DELETE-UNKNOWN-ACCEPTED")
            except Exception as e:
                print("DELETE-UNKNOWN", type(e).__name__)
            """
        let r = try runProcess(python, ["-c", script, broker.address], timeout: 90)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("RF3-REFUSED"), r.stdout)
        XCTAssertTrue(r.stdout.contains("CONSUMED 50 True"), r.stdout)
        XCTAssertTrue(r.stdout.contains("COMMITTED 50"), r.stdout)
        XCTAssertTrue(r.stdout.contains("GROUPS ['pyg']"), r.stdout)
        XCTAssertTrue(r.stdout.contains("DESCRIBED Empty consumer"), r.stdout)
        XCTAssertTrue(r.stdout.contains("TOPICS []"), r.stdout)
        XCTAssertTrue(r.stdout.contains("DELETE-UNKNOWN UnknownTopicOrPartitionError"), r.stdout)
    }
}

extension BrokerProcessTests {
    final class Consumer {
        let process = Process()
        let output: URL
        init(kcat: String, broker: String, group: String, topic: String) throws {
            output = FileManager.default.temporaryDirectory.appendingPathComponent("kcat-\(UUID().uuidString).out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: kcat)
            process.arguments = [
                "-b", broker, "-G", group, topic, "-u", "-q", "-f", "%p %s\n", "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
                "-X", "heartbeat.interval.ms=300",
            ]
            process.standardOutput = try FileHandle(forWritingTo: output)
            process.standardError = FileHandle.nullDevice
            try process.run()
        }
        var values: [String] {
            ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n").map { String($0.split(separator: " ").last ?? "") }
        }
        /// Partitions this member read values numbered in `range` from.
        func partitions(of range: Range<Int>) -> Set<String> {
            let lines = ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n")
            return Set(
                lines.compactMap { line in
                    let f = line.split(separator: " ")
                    guard f.count == 2, let n = Int(f[1].dropFirst()), range.contains(n) else { return nil }
                    return String(f[0])
                })
        }
        func stop(_ signal: Int32) {
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
        }
        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: output)
        }
    }

    func waitFor(_ what: String, timeout: TimeInterval = 20, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() && Date() < deadline { usleep(100_000) }
        XCTAssertTrue(condition(), "timed out waiting for \(what)")
    }

    /// Two live kcat members share a 4-partition topic; when one leaves, the other takes over.
    func testTwoLiveMembersSplitPartitionsAndTheSurvivorTakesOverAfterLeave() throws {
        let broker = try BrokerProcess(extraArguments: ["--num-partitions", "4"])
        func produce(_ range: Range<Int>) throws {
            let input = range.map { "k\($0):v\($0)" }.joined(separator: "\n") + "\n"
            XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "shared", "-K", ":"], stdin: input).status, 0)
        }
        try produce(0..<40)
        let a = try Consumer(kcat: kcat, broker: broker.address, group: "duo", topic: "shared")
        waitFor("A to read the first 40") { a.values.count >= 40 }
        let b = try Consumer(kcat: kcat, broker: broker.address, group: "duo", topic: "shared")
        waitFor("a second generation with two members") { broker.log.contains("generation=2") }
        usleep(1_500_000)  // both members have synced their assignments
        try produce(40..<120)
        waitFor("A and B to read the next 80 between them") { Set(a.values + b.values).isSuperset(of: (40..<120).map { "v\($0)" }) }
        XCTAssertFalse(b.values.isEmpty, "B should own some partitions")
        XCTAssertTrue(a.values.contains { Int($0.dropFirst()).map { $0 >= 40 } ?? false }, "A should still own some partitions")
        XCTAssertTrue(a.partitions(of: 40..<120).isDisjoint(with: b.partitions(of: 40..<120)), "each partition has one owner in a generation")
        XCTAssertEqual(a.partitions(of: 40..<120).union(b.partitions(of: 40..<120)).count, 4)
        b.stop(SIGTERM)  // kcat leaves the group on a clean exit
        waitFor("B's LeaveGroup") { broker.log.contains("member left group") }
        waitFor("A to rejoin alone") { broker.log.contains("generation=3") }
        usleep(1_500_000)
        try produce(120..<160)
        waitFor("A to read everything after B left") { Set(a.values).isSuperset(of: (120..<160).map { "v\($0)" }) }
        a.stop(SIGTERM)
    }
}

extension BrokerProcessTests {
    /// Pipelined requests on one connection are answered in request order, whatever each waits for.
    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let broker = try BrokerProcess(extraArguments: ["--fsync", "always"])
        let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let batch = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: Array("v".utf8))], baseTimestamp: 0)
        var all = ByteBuffer()
        var expected: [Int32] = []
        for i in 0..<30 {
            var frame: ByteBuffer
            switch i % 3 {
            case 0:
                frame = KafkaRequest.encodeFrame(
                    ProduceRequest(acks: -1, timeoutMs: 1000, topics: [.init(name: "pipe", partitions: [.init(index: 0, records: batch)])]), version: 7,
                    correlationId: Int32(i), clientId: "t")
            case 1: frame = KafkaRequest.encodeFrame(MetadataRequest(topics: ["pipe"]), version: 4, correlationId: Int32(i), clientId: "t")
            default:
                frame = KafkaRequest.encodeFrame(
                    ProduceRequest(acks: 0, timeoutMs: 1000, topics: [.init(name: "pipe", partitions: [.init(index: 0, records: batch)])]), version: 7,
                    correlationId: Int32(i), clientId: "t")
            }
            if i % 3 != 2 { expected.append(Int32(i)) }  // acks=0 gets no response
            all.writeBuffer(&frame)
        }
        let bytes = Array(all.readableBytesView)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, bytes.count)
        var got: [Int32] = []
        for _ in expected {
            var sizeBytes = [UInt8](repeating: 0, count: 4)
            guard recv(fd, &sizeBytes, 4, Int32(MSG_WAITALL)) == 4 else { break }
            let size = Int(Int32(bigEndian: sizeBytes.withUnsafeBytes { $0.load(as: Int32.self) }))
            var body = [UInt8](repeating: 0, count: size)
            guard recv(fd, &body, size, Int32(MSG_WAITALL)) == size else { break }
            got.append(Int32(bigEndian: body.withUnsafeBytes { $0.load(as: Int32.self) }))
        }
        XCTAssertEqual(got, expected)
        let r = try runProcess(kcat, ["-b", broker.address, "-C", "-t", "pipe", "-e", "-q", "-o", "beginning", "-f", "%o\n"])
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 20, "10 acks=-1 and 10 acks=0 batches")
    }
}
