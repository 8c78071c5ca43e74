import Foundation
import KafkaClient
import TapeTestSupport
import XCTest

/// The wrapper against librdkafka's mock cluster (3 brokers, real loopback sockets).
final class KafkaClientTests: XCTestCase {
    var cluster: MockKafkaCluster!

    override func setUp() async throws {
        cluster = try MockKafkaCluster(brokers: 3)
    }

    override func tearDown() async throws {
        cluster = nil
    }

    func producer(_ configure: (inout KafkaProducerConfiguration) -> Void = { _ in }) throws -> KafkaProducer {
        var config = KafkaProducerConfiguration(kafka: .init(bootstrapServers: cluster.bootstrapServers))
        config.lingerMilliseconds = 1
        configure(&config)
        return try KafkaProducer(configuration: config)
    }

    func consumer(group: String? = nil, reset: KafkaConsumerConfiguration.AutoOffsetReset = .earliest) throws -> KafkaConsumer {
        var config = KafkaConsumerConfiguration(
            kafka: .init(
                bootstrapServers: cluster.bootstrapServers,
                properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "fetch.wait.max.ms": "50"]))
        if let group { config.groupID = group }
        config.autoOffsetReset = reset
        return try KafkaConsumer(configuration: config)
    }

    func read(_ consumer: KafkaConsumer, count: Int, timeout: Duration = .seconds(20)) async throws -> [KafkaMessage] {
        try await withThrowingTaskGroup(of: [KafkaMessage].self) { group in
            group.addTask {
                var out: [KafkaMessage] = []
                for try await m in consumer.messages {
                    out.append(m)
                    if out.count >= count { break }
                }
                return out
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw XCTSkip("timeout")
            }
            let result = try await group.next()!
            group.cancelAll()
            return result
        }
    }

    /// Tape's in-process producer (inside `tape up`) must put a key on the partition librdkafka would.
    func testKafkaPartitionerMatchesLibrdkafkasDefault() async throws {
        XCTAssertEqual(KafkaPartitioner.crc32(Array("123456789".utf8)), 0xCBF4_3926, "the CRC-32 check value")
        try cluster.createTopic("keyed", partitions: 7)
        let p = try producer()
        var mismatches: [String] = []
        var partitionsSeen = Set<Int32>()
        for i in 0..<100 {
            let key = i % 2 == 0 ? "poloniex:BTC_USDT-\(i)" : "k\(i)"
            let report = try await p.send(.init(topic: "keyed", key: key, value: "v"))
            partitionsSeen.insert(report.partition)
            if KafkaPartitioner.consistent(key: Array(key.utf8), partitions: 7) != report.partition { mismatches.append(key) }
        }
        XCTAssertEqual(mismatches, [])
        XCTAssertEqual(partitionsSeen.count, 7, "the keys spread over every partition")
        XCTAssertNil(KafkaPartitioner.consistent(key: [], partitions: 7))
        XCTAssertNil(KafkaPartitioner.consistent(key: nil, partitions: 7))
    }

    func testSendReturnsDeliveryReportWithOffsets() async throws {
        try cluster.createTopic("orders", partitions: 1)
        let p = try producer()
        let first = try await p.send(.init(topic: "orders", key: "k", value: "one"))
        let second = try await p.send(.init(topic: "orders", key: "k", value: "two", timestamp: 1_661_123_520_381))
        XCTAssertEqual(first.topic, "orders")
        XCTAssertEqual(first.partition, 0)
        XCTAssertEqual(first.offset, 0)
        XCTAssertEqual(second.offset, 1)
        XCTAssertNil(second.error)
        // The mock cluster answers every produce with LogAppendTime 1234, so the record's own
        // timestamp is checked on the consumed record.
        let c = try consumer()
        try c.assign([.init(topic: "orders", partition: 0, offset: 1)])
        let got = try await read(c, count: 1)
        XCTAssertEqual(got.first?.timestamp, 1_661_123_520_381)
        XCTAssertEqual(got.first?.timestampType, .createTime)
        XCTAssertEqual(got.first?.key, Array("k".utf8))
        c.close()
    }

    func testKeysStayOnOnePartitionAndRoundTripWithHeaders() async throws {
        try cluster.createTopic("trades", partitions: 6)
        let p = try producer()
        var partitionsByKey: [String: Set<Int32>] = [:]
        for i in 0..<60 {
            let key = "poloniex:SYM-\(i % 5)"
            let report = try await p.send(
                .init(
                    topic: "trades", key: Array(key.utf8), value: Array("v\(i)".utf8),
                    headers: [.init(key: "h1", value: [0, 1, 2, 255]), .init(key: "null", value: nil)]))
            partitionsByKey[key, default: []].insert(report.partition)
        }
        XCTAssertEqual(partitionsByKey.count, 5)
        for (key, partitions) in partitionsByKey { XCTAssertEqual(partitions.count, 1, "\(key) spread over \(partitions)") }
        XCTAssertGreaterThan(Set(partitionsByKey.values.flatMap { $0 }).count, 1, "5 keys over 6 partitions should use more than one")

        let c = try consumer()
        try c.assign((0..<6).map { .init(topic: "trades", partition: $0, offset: KafkaOffset.beginning) })
        let messages = try await read(c, count: 60)
        XCTAssertEqual(messages.count, 60)
        let m = try XCTUnwrap(messages.first)
        XCTAssertEqual(m.headers, [.init(key: "h1", value: [0, 1, 2, 255]), .init(key: "null", value: nil)])
        XCTAssertEqual(Set(messages.map { String(decoding: $0.value!, as: UTF8.self) }), Set((0..<60).map { "v\($0)" }))
        for msg in messages {
            XCTAssertEqual(partitionsByKey[String(decoding: msg.key!, as: UTF8.self)], [msg.partition])
        }
        c.close()
    }

    /// Both consumer paths name each record's topic right when one fetch interleaves topics (the
    /// poll thread compares with the last topic before looking it up).
    func testRecordsOfSeveralTopicsKeepTheirTopicPackedAndNot() async throws {
        let topics = ["alpha", "beta", "gamma"]
        for topic in topics { try cluster.createTopic(topic, partitions: 2) }
        let p = try producer()
        for i in 0..<90 {
            let topic = topics[(i / 3 + i) % 3]  // runs of one topic and single switches
            _ = try await p.send(.init(topic: topic, partition: Int32(i % 2), key: nil, value: Array("\(topic)/\(i)".utf8)))
        }
        let assignment = topics.flatMap { t in (0..<2).map { TopicPartitionOffset(topic: t, partition: Int32($0), offset: KafkaOffset.beginning) } }

        let plain = try consumer()
        try plain.assign(assignment)
        let messages = try await read(plain, count: 90)
        XCTAssertEqual(messages.count, 90)
        for m in messages { XCTAssertTrue(String(decoding: m.value!, as: UTF8.self).hasPrefix(m.topic + "/"), "\(m.topic): \(m.value!)") }
        plain.close()

        var config = KafkaConsumerConfiguration(
            kafka: .init(bootstrapServers: cluster.bootstrapServers, properties: ["fetch.wait.max.ms": "50"]))
        config.autoOffsetReset = .earliest
        config.packedValues = true
        let packed = try KafkaConsumer(configuration: config)
        try packed.assign(assignment)
        let pairs = try await withThrowingTaskGroup(of: [(topic: String, value: String)].self) { group in
            group.addTask {
                var out: [(topic: String, value: String)] = []
                for try await batch in packed.packedBatches {
                    for r in batch.records {
                        let value = String(decoding: batch.bytes[Int(r.valueStart)..<Int(r.valueStart + r.valueLength)], as: UTF8.self)
                        out.append((batch.topics[Int(r.topic)], value))
                    }
                    if out.count >= 90 { break }
                }
                return out
            }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                return []
            }
            let result = try await group.next()!
            group.cancelAll()
            return result
        }
        XCTAssertEqual(pairs.count, 90)
        for (topic, value) in pairs { XCTAssertTrue(value.hasPrefix(topic + "/"), "\(topic): \(value)") }
        XCTAssertEqual(Set(pairs.map(\.topic)), Set(topics))
        packed.close()
    }

    func testEveryCompressionCodecRoundTrips() async throws {
        for codec in KafkaCompression.allCases {
            let topic = "c-\(codec.rawValue)"
            try cluster.createTopic(topic, partitions: 1)
            let p = try producer { $0.compression = codec }
            let value = Array(repeating: Array("compressible-\(codec.rawValue)-".utf8), count: 50).flatMap { $0 }
            for _ in 0..<20 { try await p.enqueue(.init(topic: topic, value: value)) }
            try await p.close()
            let c = try consumer()
            try c.assign([.init(topic: topic, partition: 0, offset: KafkaOffset.beginning)])
            let got = try await read(c, count: 20)
            XCTAssertEqual(got.count, 20, "\(codec)")
            XCTAssertTrue(got.allSatisfy { $0.value == value }, "\(codec) changed the bytes")
            c.close()
        }
    }

    func testEnqueueDeliversReportsForEveryMessage() async throws {
        try cluster.createTopic("bulk", partitions: 3)
        let p = try producer()
        var ids: Set<UInt64> = []
        for i in 0..<5000 { ids.insert(try await p.enqueue(.init(topic: "bulk", key: "\(i)", value: "x"))) }
        try await p.close()
        var reported: Set<UInt64> = []
        var offsets: [Int32: [Int64]] = [:]
        for await batch in p.deliveryReports {
            for r in batch {
                XCTAssertNil(r.error)
                reported.insert(r.messageID)
                offsets[r.partition, default: []].append(r.offset)
            }
        }
        XCTAssertEqual(reported, ids)
        for (_, list) in offsets { XCTAssertEqual(list.sorted(), Array(0..<Int64(list.count)), "offsets per partition are contiguous") }
    }

    /// Reports are served by whichever thread gets there (the enqueuer inline, the polling thread,
    /// `flush`), one at a time: per partition they must arrive in offset order, each exactly once,
    /// through queue-full waits, idle gaps and a final `send`.
    func testReportsStayInOrderWhicheverThreadServesThem() async throws {
        try cluster.createTopic("ordered", partitions: 1)
        let p = try producer { $0.maxQueuedMessages = 2_000 }
        let collected = Task { () -> [DeliveryReport] in
            var all: [DeliveryReport] = []
            for await batch in p.deliveryReports { all += batch }
            return all
        }
        var ids: [UInt64] = []
        for round in 0..<4 {
            for i in 0..<10_000 { ids.append(try await p.enqueue(.init(topic: "ordered", key: nil, value: "r\(round)-\(i)"))) }
            try await Task.sleep(for: .milliseconds(50))  // idle: the polling thread serves
        }
        let last = try await p.send(.init(topic: "ordered", key: nil, value: "last"))
        try await p.close()
        let reports = await collected.value
        XCTAssertEqual(reports.map(\.messageID), ids, "every id reported once, in order")
        XCTAssertEqual(reports.map(\.offset), Array(0..<Int64(ids.count)), "offsets in report order")
        XCTAssertEqual(last.offset, Int64(ids.count))
    }

    func testSubscribeByRegexCommitAndResumeFromCommitted() async throws {
        try cluster.createTopic("tape.alpha", partitions: 2)
        try cluster.createTopic("tape.beta", partitions: 1)
        try cluster.createTopic("other", partitions: 1)
        let p = try producer()
        for i in 0..<10 { try await p.send(.init(topic: "tape.alpha", key: "\(i)", value: "a\(i)")) }
        for i in 0..<5 { try await p.send(.init(topic: "tape.beta", key: nil, value: "b\(i)")) }
        try await p.send(.init(topic: "other", key: nil, value: "never"))

        let c1 = try consumer(group: "g-regex")
        try c1.subscribe(["^tape\\..*"])
        let first = try await read(c1, count: 15)
        XCTAssertEqual(first.count, 15)
        XCTAssertFalse(first.contains { $0.topic == "other" })
        // Commit everything read.
        var next: [String: TopicPartitionOffset] = [:]
        for m in first { next["\(m.topic)/\(m.partition)"] = .init(topic: m.topic, partition: m.partition, offset: m.offset + 1) }
        try await c1.commit(Array(next.values))
        let committed = try await c1.committed(Array(next.values).map { .init(topic: $0.topic, partition: $0.partition, offset: KafkaOffset.invalid) })
        XCTAssertEqual(Set(committed), Set(next.values))
        c1.close()

        for i in 0..<3 { try await p.send(.init(topic: "tape.beta", key: nil, value: "late\(i)")) }
        let c2 = try consumer(group: "g-regex")
        try c2.subscribe(["^tape\\..*"])
        let second = try await read(c2, count: 3)
        XCTAssertEqual(
            second.map { String(decoding: $0.value!, as: UTF8.self) }, ["late0", "late1", "late2"], "a restarted member resumes after its committed offsets")
        c2.close()
    }

    func testSeekAndTimestampLookupAndPauseResume() async throws {
        try cluster.createTopic("seek", partitions: 1)
        let p = try producer()
        for i in 0..<10 { try await p.send(.init(topic: "seek", key: nil, value: "m\(i)", timestamp: 1_000_000 + Int64(i) * 1000)) }
        let c = try consumer()
        try c.assign([.init(topic: "seek", partition: 0, offset: 7)])
        let fromSeven = try await read(c, count: 3)
        XCTAssertEqual(fromSeven.map(\.offset), [7, 8, 9])
        // librdkafka's mock cluster answers every by-timestamp ListOffsets with -1 ("FIXME: by
        // timestamp" in rdkafka_mock_handlers.c); the lookup itself is checked against `tape broker`.
        let byTime = try await c.offsets(forTimestamp: 1_004_500, partitions: [("seek", 0)])
        XCTAssertEqual(byTime.map(\.partition), [0])
        try await c.seek([.init(topic: "seek", partition: 0, offset: 2)])
        let fromTwo = try await read(c, count: 2)
        XCTAssertEqual(fromTwo.map(\.offset), [2, 3])
        try c.pause([("seek", 0)])
        try c.resume([("seek", 0)])
        let after = try await read(c, count: 1)
        XCTAssertEqual(after.first?.offset, 4)
        let wm = try await c.watermarks(topic: "seek", partition: 0)
        XCTAssertEqual(wm.high, 10)
        c.close()
    }

    func testRebalanceEventsSplitPartitionsBetweenTwoMembers() async throws {
        try cluster.createTopic("split", partitions: 4)
        let a = try consumer(group: "g-split")
        try a.subscribe(["split"])
        var eventsA = a.rebalanceEvents.makeAsyncIterator()
        // Serve polls so that the group forms.
        let drainA = Task { for try await _ in a.batches {} }
        guard case .assigned(let all)? = await eventsA.next() else { return XCTFail("no assignment") }
        XCTAssertEqual(all.count, 4)
        let b = try consumer(group: "g-split")
        try b.subscribe(["split"])
        let drainB = Task { for try await _ in b.batches {} }
        var eventsB = b.rebalanceEvents.makeAsyncIterator()
        var assignedB: [TopicPartitionOffset] = []
        while let e = await eventsB.next() {
            if case .assigned(let parts) = e {
                assignedB = parts
                break
            }
        }
        XCTAssertEqual(assignedB.count, 2)
        var assignedA: [TopicPartitionOffset] = []
        while let e = await eventsA.next() {
            if case .assigned(let parts) = e {
                assignedA = parts
                break
            }
        }
        XCTAssertEqual(Set(assignedA.map(\.partition)).union(assignedB.map(\.partition)), [0, 1, 2, 3])
        XCTAssertTrue(Set(assignedA.map(\.partition)).isDisjoint(with: assignedB.map(\.partition)))
        a.close()
        b.close()
        drainA.cancel()
        drainB.cancel()
    }

    /// librdkafka 2.0.2 stops fetching while its pre-fetch queue is full and looks again only at
    /// its broker thread's next timed wake-up, up to a second later, however fast the queue
    /// drains. The consumer wakes the broker threads once the queue has drained (`FetchRefill`),
    /// so reading a backlog through a small queue has no second-long pauses. Without the wake-up,
    /// this test saw a 0.995 s gap between two batches; with it, 1 ms.
    func testAFullPrefetchQueueIsRefilledWithoutWaitingForLibrdkafkasTimer() async throws {
        try cluster.createTopic("backlog", partitions: 2)
        let p = try producer()
        let count = 1500
        let value = String(repeating: "x", count: 1000)
        for i in 0..<count { _ = try await p.enqueue(.init(topic: "backlog", key: "k\(i % 2)", value: value)) }
        try await p.flush(timeout: .seconds(30))
        var config = KafkaConsumerConfiguration(
            kafka: .init(
                bootstrapServers: cluster.bootstrapServers,
                properties: ["queued.max.messages.kbytes": "64", "fetch.message.max.bytes": "16384", "fetch.wait.max.ms": "50"]))
        config.groupID = "backlog-reader"
        config.autoOffsetReset = .earliest
        config.batchSize = 16
        config.bufferedBatches = 1
        let consumer = try KafkaConsumer(configuration: config)
        try consumer.subscribe(["backlog"])
        var received = 0
        var longestGap: Duration = .zero
        var last: ContinuousClock.Instant?
        for try await batch in consumer.batches {
            let now = ContinuousClock.now
            if let last { longestGap = max(longestGap, now - last) }
            last = now
            received += batch.count
            if received >= count { break }
            // A reader slower than the fetcher, so that the queue fills.
            try await Task.sleep(for: .milliseconds(1))
        }
        let refills = consumer.fetchRefills
        consumer.close()
        XCTAssertEqual(received, count)
        XCTAssertGreaterThan(refills, 0, "the queue filled and was refilled")
        XCTAssertLessThan(longestGap, .milliseconds(500), "no wait for librdkafka's one-second timer between batches")
    }

    func testMetadataListsBrokersAndTopics() async throws {
        try cluster.createTopic("meta", partitions: 5)
        let admin = try KafkaAdmin(configuration: .init(bootstrapServers: cluster.bootstrapServers))
        let md = try await admin.metadata()
        XCTAssertEqual(md.brokers.count, 3)
        let topic = try XCTUnwrap(md.topics.first { $0.name == "meta" })
        XCTAssertEqual(topic.partitions.map(\.id), [0, 1, 2, 3, 4])
        XCTAssertTrue(topic.partitions.allSatisfy { $0.leader >= 1 })
    }

    func testUnreachableClusterFailsFastNamingTheAddress() async throws {
        // A port nothing listens on: bind, read the port, close.
        let port = Loopback.freePort()
        let admin = try KafkaAdmin(configuration: .init(bootstrapServers: "127.0.0.1:\(port)"), timeout: .seconds(3))
        let start = ContinuousClock.now
        do {
            _ = try await admin.metadata()
            XCTFail("metadata from a closed port")
        } catch let error as KafkaError {
            XCTAssertTrue(error.message.contains("127.0.0.1:\(port)"), error.message)
            XCTAssertTrue(error.message.contains("--brokers"), error.message)
            XCTAssertTrue(error.isRetriable)
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(10))
    }

    func testBadPropertyIsAClearError() throws {
        var config = KafkaProducerConfiguration(kafka: .init(bootstrapServers: cluster.bootstrapServers, properties: ["no.such.property": "1"]))
        config.acks = -1
        XCTAssertThrowsError(try KafkaProducer(configuration: config)) { error in
            XCTAssertTrue("\(error)".contains("no.such.property"), "\(error)")
        }
        XCTAssertThrowsError(try KafkaConfiguration.parseProperties(["novalue"]))
    }

    func testVersionAndFeatures() {
        XCTAssertTrue(LibrdkafkaInfo.version.hasPrefix("2."))
        for f in ["gzip", "snappy", "lz4", "zstd", "ssl"] { XCTAssertTrue(LibrdkafkaInfo.features.contains(f), f) }
    }
}
