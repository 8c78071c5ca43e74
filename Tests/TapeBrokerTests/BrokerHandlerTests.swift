import KafkaProtocol
import NIOCore
import XCTest

@testable import TapeBroker

/// The request handler without sockets.
final class BrokerHandlerTests: XCTestCase {
    func makeBroker(autoCreate: Bool = true, partitions: Int32 = 1) -> Broker {
        var c = BrokerConfiguration()
        c.autoCreateTopics = autoCreate
        c.numPartitions = partitions
        return Broker(configuration: c, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
    }

    func batch(_ values: [String], pid: Int64 = -1, seq: Int32 = -1, timestamp: Int64 = 1_000) -> ByteBuffer {
        RecordBatchBuilder.build(
            records: values.enumerated().map {
                Record(timestampDelta: Int64($0.offset), offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8))
            },
            baseTimestamp: timestamp, producerId: pid, producerEpoch: pid >= 0 ? 0 : -1, baseSequence: seq)
    }

    func produce(_ b: Broker, _ records: ByteBuffer, topic: String = "t", partition: Int32 = 0, acks: Int16 = 1) async -> ProduceResponse.PartitionResponse {
        let r = await b.produce(
            ProduceRequest(acks: acks, timeoutMs: 1000, topics: [.init(name: topic, partitions: [.init(index: partition, records: records)])]))
        return r.topics[0].partitions[0]
    }

    func fetch(_ b: Broker, _ topic: String = "t", offset: Int64, maxWait: Int32 = 0, minBytes: Int32 = 0) async -> FetchResponse.Partition {
        let r = await b.fetch(Self.fetchRequest(topic, offset: offset, maxWait: maxWait, minBytes: minBytes))
        return r.topics[0].partitions[0]
    }

    /// A fetch of partition 0 of `topic` (up to 1 MiB).
    static func fetchRequest(_ topic: String = "t", offset: Int64, maxWait: Int32 = 0, minBytes: Int32 = 0) -> FetchRequest {
        FetchRequest(
            maxWaitMs: maxWait, minBytes: minBytes, maxBytes: 1 << 20,
            topics: [.init(topic: topic, partitions: [.init(partition: 0, fetchOffset: offset, partitionMaxBytes: 1 << 20)])])
    }

    func values(_ records: ByteBuffer?) throws -> [String] {
        let bytes = try XCTUnwrap(records)
        if bytes.readableBytes == 0 { return [] }
        let batches = try RecordBatchValidator.validate(records: bytes, maxBatchBytes: 1 << 20)
        return try batches.flatMap { b -> [String] in
            var body = b.bytes
            body.moveReaderIndex(forwardBy: RecordBatchHeader.size)
            return try Record.decodeAll(from: &body, count: Int(b.header.recordCount)).map { String(decoding: $0.value ?? [], as: UTF8.self) }
        }
    }

    func testProduceThenFetchAssignsOffsets() async throws {
        let b = makeBroker()
        let first = await produce(b, batch(["a", "b", "c"]))
        XCTAssertEqual(first.errorCode, ErrorCode.none)
        XCTAssertEqual(first.baseOffset, 0)
        let second = await produce(b, batch(["d"]))
        XCTAssertEqual(second.baseOffset, 3)
        let all = await fetch(b, offset: 0)
        XCTAssertEqual(all.highWatermark, 4)
        XCTAssertEqual(try values(all.records), ["a", "b", "c", "d"])
        let fromMiddle = await fetch(b, offset: 1)
        XCTAssertEqual(try values(fromMiddle.records), ["a", "b", "c", "d"], "an offset inside a batch returns the whole batch")
        let beyond = await fetch(b, offset: 10)
        XCTAssertEqual(beyond.errorCode, .offsetOutOfRange)
    }

    func testAcksZeroGetsNoResponseAndBadAcksAreRefused() async throws {
        let b = makeBroker()
        let req = KafkaRequest(
            header: RequestHeader(apiKey: 0, apiVersion: 7, correlationId: 1, clientId: "x"),
            body: .produce(ProduceRequest(acks: 0, timeoutMs: 1000, topics: [.init(name: "t", partitions: [.init(index: 0, records: batch(["x"]))])])))
        let response = await b.handle(req)
        XCTAssertNil(response)
        let fetched = await fetch(b, offset: 0)
        XCTAssertEqual(try values(fetched.records), ["x"])
        var corrupt = batch(["z"])
        corrupt.setInteger(UInt8(0xFF), at: corrupt.writerIndex - 1)
        let failedSilently = await b.receive(
            KafkaRequest(
                header: RequestHeader(apiKey: 0, apiVersion: 7, correlationId: 2, clientId: "x"),
                body: .produce(ProduceRequest(acks: 0, timeoutMs: 1000, topics: [.init(name: "t", partitions: [.init(index: 0, records: corrupt)])]))))
        guard case .closeConnection = failedSilently else { return XCTFail("an acks=0 failure should close the connection, got \(failedSilently)") }
        let bad = await produce(b, batch(["y"]), acks: 2)
        XCTAssertEqual(bad.errorCode, .invalidRequiredAcks)
    }

    func testCorruptBatchIsRefusedAndNothingIsWritten() async throws {
        let b = makeBroker()
        var bad = batch(["a"])
        bad.setInteger(UInt8(0xFF), at: bad.writerIndex - 1)
        let r = await produce(b, bad)
        XCTAssertEqual(r.errorCode, .corruptMessage)
        XCTAssertNotNil(r.errorMessage)
        let f = await fetch(b, offset: 0)
        XCTAssertEqual(f.highWatermark, 0)
    }

    func testIdempotentRetryIsAcknowledgedNotWrittenTwice() async throws {
        let b = makeBroker()
        let reply = await b.handle(
            KafkaRequest(header: RequestHeader(apiKey: 22, apiVersion: 1, correlationId: 4, clientId: "p"), body: .initProducerId(InitProducerIdRequest())))
        var frame = try XCTUnwrap(reply)
        XCTAssertEqual(try frame.decodeInt32(), Int32(frame.readableBytes))
        XCTAssertEqual(try frame.decodeInt32(), 4)
        _ = try frame.decodeInt32()  // throttle
        XCTAssertEqual(try frame.decodeErrorCode(), ErrorCode.none)
        let pid = try frame.decodeInt64()
        XCTAssertGreaterThanOrEqual(pid, 0)

        let first = await produce(b, batch(["a", "b"], pid: pid, seq: 0), acks: -1)
        let retry = await produce(b, batch(["a", "b"], pid: pid, seq: 0), acks: -1)
        XCTAssertEqual(first.baseOffset, 0)
        XCTAssertEqual(retry.errorCode, ErrorCode.none)
        XCTAssertEqual(retry.baseOffset, 0)
        let next = await produce(b, batch(["c"], pid: pid, seq: 2), acks: -1)
        XCTAssertEqual(next.baseOffset, 2)
        let gap = await produce(b, batch(["e"], pid: pid, seq: 9), acks: -1)
        XCTAssertEqual(gap.errorCode, .outOfOrderSequenceNumber)
        let f = await fetch(b, offset: 0)
        XCTAssertEqual(try values(f.records), ["a", "b", "c"])
    }

    func testLongPollWakesWhenDataArrives() async throws {
        let b = makeBroker()
        _ = await produce(b, batch(["seed"]))
        let clock = ContinuousClock()
        let start = clock.now
        async let waited = b.fetch(Self.fetchRequest(offset: 1, maxWait: 10_000, minBytes: 1))
        try await Task.sleep(for: .milliseconds(200))
        _ = await produce(b, batch(["late"]))
        let got = await waited.topics[0].partitions[0]
        let elapsed = clock.now - start
        XCTAssertEqual(try values(got.records), ["late"])
        XCTAssertLessThan(elapsed, .seconds(3), "the fetch should wake on produce, not wait out max wait")
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(150))
    }

    func testLongPollReturnsEmptyAtMaxWait() async throws {
        let b = makeBroker()
        _ = await produce(b, batch(["seed"]))
        let clock = ContinuousClock()
        let start = clock.now
        let got = await fetch(b, offset: 1, maxWait: 300, minBytes: 1)
        let elapsed = clock.now - start
        XCTAssertEqual(got.records?.readableBytes, 0)
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(280))
        XCTAssertLessThan(elapsed, .seconds(2))
    }

    /// One timer serves every parked fetch: each still answers at its own max wait, whether the
    /// earliest deadline arrives last, first, or belongs to a fetch that data answered early.
    func testParkedFetchesEachAnswerAtTheirOwnMaxWait() async throws {
        let b = makeBroker()
        _ = await produce(b, batch(["seed"]))
        let clock = ContinuousClock()
        let start = clock.now
        let timed: @Sendable (Int32) async -> Duration = { maxWait in
            _ = await b.fetch(Self.fetchRequest(offset: 1, maxWait: maxWait, minBytes: 1 << 20))
            return clock.now - start
        }
        async let slow = timed(900)
        try await Task.sleep(for: .milliseconds(20))
        async let fast = timed(200)  // earlier than the armed deadline: re-arms
        async let middle = timed(500)
        // A fetch woken by data before its deadline (the earliest of all).
        async let woken = b.fetch(Self.fetchRequest(offset: 1, maxWait: 100, minBytes: 1))
        try await Task.sleep(for: .milliseconds(30))
        _ = await produce(b, batch(["x"]))
        let early = await woken.topics[0].partitions[0]
        XCTAssertEqual(try values(early.records), ["x"])
        let (f, m, s) = await (fast, middle, slow)
        for (got, wanted) in [(f, 220), (m, 520), (s, 900)] {
            XCTAssertGreaterThanOrEqual(got, .milliseconds(wanted - 40), "answered before its max wait")
            XCTAssertLessThan(got, .milliseconds(wanted + 400), "answered long after its max wait")
        }
        XCTAssertLessThan(f, m)
        XCTAssertLessThan(m, s)
        let parked = await b.parkedFetchCount
        XCTAssertEqual(parked, 0)
    }

    func testListOffsets() async throws {
        let b = makeBroker()
        _ = await produce(b, batch(["a", "b"], timestamp: 1_000))
        _ = await produce(b, batch(["c"], timestamp: 5_000))
        func ask(_ ts: Int64) async -> ListOffsetsResponse.Partition {
            await b.listOffsets(ListOffsetsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: ts)])])).topics[0].partitions[0]
        }
        let earliest = await ask(-2)
        let latest = await ask(-1)
        let byTime = await ask(4_000)
        let future = await ask(9_000)
        XCTAssertEqual(earliest.offset, 0)
        XCTAssertEqual(latest.offset, 3)
        XCTAssertEqual(byTime.offset, 2)
        XCTAssertEqual(byTime.timestamp, 5_000)
        XCTAssertEqual(future.offset, -1)
    }

    func testMetadataAutoCreateCanBeSwitchedOff() async {
        let off = makeBroker(autoCreate: false)
        let m = await off.metadata(MetadataRequest(topics: ["nope"]), version: 4)
        XCTAssertEqual(m.topics[0].errorCode, .unknownTopicOrPartition)
        let p = await produce(off, batch(["x"]), topic: "nope")
        XCTAssertEqual(p.errorCode, .unknownTopicOrPartition)

        let on = makeBroker(partitions: 3)
        let created = await on.metadata(MetadataRequest(topics: ["yes"]), version: 4)
        XCTAssertEqual(created.topics[0].errorCode, ErrorCode.none)
        XCTAssertEqual(created.topics[0].partitions.count, 3)
        let notAllowed = await on.metadata(MetadataRequest(topics: ["no-auto"], allowAutoTopicCreation: false), version: 4)
        XCTAssertEqual(notAllowed.topics[0].errorCode, .unknownTopicOrPartition)
        let all = await on.metadata(MetadataRequest(topics: nil), version: 1)
        XCTAssertEqual(all.topics.map(\.name), ["yes"])
        XCTAssertEqual(all.brokers, [.init(nodeId: 0, host: "127.0.0.1", port: 9092)])
    }

    func testCreateTopicsRules() async {
        let b = makeBroker()
        let r = await b.createTopics(
            CreateTopicsRequest(topics: [
                .init(name: "ok", numPartitions: 2, replicationFactor: 1),
                .init(name: "rf3", numPartitions: 1, replicationFactor: 3),
                .init(name: "bad name!", numPartitions: 1, replicationFactor: 1),
                .init(name: "ok", numPartitions: 2, replicationFactor: 1),
                .init(name: "zero", numPartitions: 0, replicationFactor: 1),
                .init(name: "cfg", numPartitions: 1, replicationFactor: 1, configs: [.init(name: "cleanup.policy", value: "shred")]),
                .init(name: "compacted", numPartitions: -1, replicationFactor: -1, configs: [.init(name: "cleanup.policy", value: "compact")]),
            ]), version: 4)
        XCTAssertEqual(
            r.topics.map(\.errorCode),
            [.none, .invalidReplicationFactor, .invalidTopicException, .topicAlreadyExists, .invalidPartitions, .invalidConfig, .none])
        XCTAssertTrue(r.topics[1].errorMessage?.contains("single-node") == true, r.topics[1].errorMessage ?? "")
        let configs = await b.describeConfigs(
            DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "compacted", configurationKeys: ["cleanup.policy"])]))
        XCTAssertEqual(configs.results[0].configs, [.init(name: "cleanup.policy", value: "compact", configSource: 1)])
        let deleted = await b.deleteTopics(DeleteTopicsRequest(topicNames: ["ok", "ok"]))
        XCTAssertEqual(deleted.responses.map(\.errorCode), [.none, .unknownTopicOrPartition])
    }

    func testStandaloneOffsetCommitAndFetch() async {
        let b = makeBroker()
        _ = await produce(b, batch(["a"]))
        let commit = await b.offsetCommit(
            OffsetCommitRequest(
                groupId: "g", generationId: -1, memberId: "",
                topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 1, committedMetadata: "m")])]))
        XCTAssertEqual(commit.topics[0].partitions[0].errorCode, ErrorCode.none)
        let fetched = await b.offsetFetch(OffsetFetchRequest(groupId: "g", topics: [.init(name: "t", partitionIndexes: [0, 1])]))
        XCTAssertEqual(fetched.topics[0].partitions.map(\.committedOffset), [1, -1])
        let all = await b.offsetFetch(OffsetFetchRequest(groupId: "g", topics: nil))
        XCTAssertEqual(all.topics.map(\.name), ["t"])
        let groups = await b.listGroups()
        XCTAssertEqual(groups.groups.map(\.groupId), ["g"])
    }

    func testIdempotenceWindowIsRebuiltFromTheLogAfterARestart() async throws {
        let topics = InMemoryTopicStore()
        let offsets = InMemoryCommittedOffsetStore()
        let before = Broker(configuration: BrokerConfiguration(), topics: topics, committedOffsets: offsets, firstProducerId: 500)
        _ = await produce(before, batch(["x"]))  // a non-idempotent batch in between
        let first = await produce(before, batch(["a", "b"], pid: 77, seq: 0), acks: -1)
        let second = await produce(before, batch(["c"], pid: 77, seq: 2), acks: -1)
        XCTAssertEqual([first.baseOffset, second.baseOffset], [1, 3])

        // Same logs, new broker (its in-memory producer table is empty), as after a restart.
        let after = Broker(configuration: BrokerConfiguration(), topics: topics, committedOffsets: offsets, firstProducerId: 900)
        let retried = await produce(after, batch(["c"], pid: 77, seq: 2), acks: -1)
        XCTAssertEqual(retried.errorCode, ErrorCode.none)
        XCTAssertEqual(retried.baseOffset, 3, "the retried batch is acknowledged with its original offset")
        let gap = await produce(after, batch(["e"], pid: 77, seq: 5), acks: -1)
        XCTAssertEqual(gap.errorCode, .outOfOrderSequenceNumber)
        let next = await produce(after, batch(["d"], pid: 77, seq: 3), acks: -1)
        XCTAssertEqual(next.baseOffset, 4)
        let f = await fetch(after, offset: 0)
        XCTAssertEqual(try values(f.records), ["x", "a", "b", "c", "d"])
    }

    func testFetchRespectsPartitionAndResponseMaxBytesButAlwaysReturnsOneBatch() async throws {
        let b = makeBroker(partitions: 2)
        for i in 0..<3 {
            _ = await produce(b, batch([String(repeating: "a", count: 100) + "\(i)"]))
            _ = await produce(b, batch([String(repeating: "b", count: 100) + "\(i)"]), partition: 1)
        }
        func read(maxBytes: Int32, partitionMaxBytes: Int32) async throws -> [[String]] {
            let r = await b.fetch(
                FetchRequest(
                    maxWaitMs: 0, minBytes: 0, maxBytes: maxBytes,
                    topics: [
                        .init(
                            topic: "t",
                            partitions: [
                                .init(partition: 0, fetchOffset: 0, partitionMaxBytes: partitionMaxBytes),
                                .init(partition: 1, fetchOffset: 0, partitionMaxBytes: partitionMaxBytes),
                            ])
                    ]))
            return try r.topics[0].partitions.map { try values($0.records) }
        }
        let all = try await read(maxBytes: 1 << 20, partitionMaxBytes: 1 << 20)
        XCTAssertEqual(all.map(\.count), [3, 3])
        let tiny = try await read(maxBytes: 1 << 20, partitionMaxBytes: 10)
        XCTAssertEqual(tiny.map(\.count), [1, 1], "a partition limit below one batch still returns that whole batch")
        let tinyResponse = try await read(maxBytes: 10, partitionMaxBytes: 1 << 20)
        XCTAssertEqual(tinyResponse.map(\.count), [1, 0], "past the response limit only the first batch is returned")
    }

    /// A store whose disk is full: appends fail, or appends succeed and the fsync fails.
    final class FullDiskTopicStore: TopicStore, @unchecked Sendable {
        let inner = InMemoryTopicStore()
        let failAppends: Bool
        init(failAppends: Bool) { self.failAppends = failAppends }
        final class FullLog: PartitionLog, @unchecked Sendable {
            let wrapped: any PartitionLog
            init(_ wrapped: any PartitionLog) { self.wrapped = wrapped }
            var topic: String { wrapped.topic }
            var partition: Int32 { wrapped.partition }
            var logStartOffset: Int64 { wrapped.logStartOffset }
            var logEndOffset: Int64 { wrapped.logEndOffset }
            func append(batch: [UInt8]) throws -> LogAppendInfo { throw StorageError(.diskFull, "No space left on device") }
            func read(from offset: Int64, maxBytes: Int) throws -> LogReadResult { try wrapped.read(from: offset, maxBytes: maxBytes) }
            func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? { try wrapped.offset(forTimestamp: timestamp) }
            func sync() throws {}
        }
        func topicNames() -> [String] { inner.topicNames() }
        func partitionLogs(of topic: String) -> [any PartitionLog]? {
            guard let logs = inner.partitionLogs(of: topic) else { return nil }
            return failAppends ? logs.map { FullLog($0) } : logs
        }
        func configs(of topic: String) -> [String: String]? { inner.configs(of: topic) }
        func createTopic(name: String, partitions: Int32, configs: [String: String]) throws {
            try inner.createTopic(name: name, partitions: partitions, configs: configs)
        }
        func deleteTopic(name: String) throws { try inner.deleteTopic(name: name) }
        func waitDurable(_ log: any PartitionLog) async throws { throw StorageError(.diskFull, "fsync: No space left on device") }
    }

    func testDiskFullIsReportedToTheProducer() async throws {
        for failAppends in [true, false] {
            let b = Broker(
                configuration: BrokerConfiguration(), topics: FullDiskTopicStore(failAppends: failAppends), committedOffsets: InMemoryCommittedOffsetStore())
            let r = await produce(b, batch(["x"]), acks: -1)
            XCTAssertEqual(r.errorCode, .kafkaStorageError, "failAppends=\(failAppends)")
            XCTAssertTrue(r.errorMessage?.contains("No space left") == true, r.errorMessage ?? "")
            XCTAssertEqual(r.baseOffset, -1)
        }
    }
}
