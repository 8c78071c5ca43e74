import KafkaClient
import KafkaProtocol
import Logging
import NIOCore
import TapeServer
import TapeTestSupport
import XCTest

@testable import TapeBroker
@testable import TapeRuntime

/// `tape up`'s server reading its embedded broker in-process: where each start mode begins, what
/// happens when a position falls outside the log, and waiting for a topic that does not exist yet.
final class EmbeddedTopicReaderTests: XCTestCase {
    func makeBroker() -> Broker {
        Broker(configuration: BrokerConfiguration(), topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
    }

    func createTopic(_ b: Broker, _ name: String = "tape.trades", partitions: Int32 = 2) async {
        let r = await b.createTopics(
            CreateTopicsRequest(topics: [.init(name: name, numPartitions: partitions, replicationFactor: 1)], timeoutMs: 1000), version: 4)
        XCTAssertEqual(r.topics[0].errorCode, .none)
    }

    func produce(_ b: Broker, _ values: [String], partition: Int32, topic: String = "tape.trades") async {
        let records = values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: Array("k".utf8), value: Array($0.element.utf8)) }
        let r = await b.produce(
            ProduceRequest(
                acks: -1, timeoutMs: 1000,
                topics: [.init(name: topic, partitions: [.init(index: partition, records: RecordBatchBuilder.build(records: records, baseTimestamp: 1_000))])]))
        XCTAssertEqual(r.topics[0].partitions[0].errorCode, .none)
    }

    func reader(_ b: Broker, _ start: KafkaTopicReader.Start, topic: String = "tape.trades") -> EmbeddedTopicReader {
        EmbeddedTopicReader(broker: b, topic: topic, start: start, logger: Logger(label: "test"), maxWaitMilliseconds: 100)
    }

    /// Reads batches until `count` records arrived (or 10 s passed), as "partition:value".
    func read(_ batches: any TopicBatchIterating, count: Int) async throws -> [String] {
        var out: [String] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while out.count < count && ContinuousClock.now < deadline {
            guard let batch = try await batches.next() else { break }
            out += batch.map { "\($0.partition):\(String(decoding: $0.value ?? [], as: UTF8.self))" }
        }
        return out
    }

    func testFromTheEndReadsOnlyNewRecordsAndFromTheBeginningEverything() async throws {
        let b = makeBroker()
        await createTopic(b)
        await produce(b, ["old1", "old2"], partition: 0)
        let live = reader(b, .end)
        let partitions = try await live.assignWhenReady()
        XCTAssertEqual(partitions, [0, 1])
        let liveBatches = live.makeBatchIterator()
        await produce(b, ["new1"], partition: 0)
        await produce(b, ["new2"], partition: 1)
        let seen = try await read(liveBatches, count: 2)
        XCTAssertEqual(seen.sorted(), ["0:new1", "1:new2"])

        let all = reader(b, .beginning)
        _ = try await all.assignWhenReady()
        let everything = try await read(all.makeBatchIterator(), count: 4)
        XCTAssertEqual(everything.sorted(), ["0:new1", "0:old1", "0:old2", "1:new2"])
        XCTAssertEqual(everything.filter { $0.hasPrefix("0:") }, ["0:old1", "0:old2", "0:new1"], "a partition's records in order")
        XCTAssertNotNil(all.contact.lastContact, "reads count as contact for /health")
    }

    func testAResumePositionOutsideTheLogStartsThePartitionOver() async throws {
        let b = makeBroker()
        await createTopic(b)
        await produce(b, ["a", "b"], partition: 1)
        // Where a previous run stopped, in a topic since recreated (offset 50 no longer exists).
        let resumed = reader(b, .resume([0: 0, 1: 50]))
        _ = try await resumed.assignWhenReady()
        let seen = try await read(resumed.makeBatchIterator(), count: 2)
        XCTAssertEqual(seen, ["1:a", "1:b"])
        // A position inside the log is kept.
        let partway = reader(b, .resume([1: 1]))
        _ = try await partway.assignWhenReady()
        let rest = try await read(partway.makeBatchIterator(), count: 1)
        XCTAssertEqual(rest, ["1:b"])
    }

    func testSinceStartsAtTheFirstRecordThatRecent() async throws {
        let b = makeBroker()
        await createTopic(b)
        await produce(b, ["before"], partition: 0)  // timestamp 1000
        let recent = reader(b, .since(2_000))
        _ = try await recent.assignWhenReady()
        let batches = recent.makeBatchIterator()
        await produce(b, ["after"], partition: 0)
        let seen = try await read(batches, count: 1)
        XCTAssertEqual(seen, ["0:after"], "nothing is that recent: the partition's end at assignment, then what arrives")
        let old = reader(b, .since(500))
        _ = try await old.assignWhenReady()
        let all = try await read(old.makeBatchIterator(), count: 2)
        XCTAssertEqual(all, ["0:before", "0:after"])
    }

    func testWaitsForTheTopicToExistAndReportsLag() async throws {
        let b = makeBroker()
        let lags = Locked<[Int64]>([])
        let waiting = EmbeddedTopicReader(
            broker: b, topic: "tape.gaps", start: .beginning, logger: Logger(label: "test"), quietWhileMissing: true, maxWaitMilliseconds: 100
        ) { lag in lags.withLock { $0.append(lag.messages) } }
        let assigned = Task { try await waiting.assignWhenReady() }
        try await Task.sleep(for: .milliseconds(300))
        await createTopic(b, "tape.gaps", partitions: 1)
        await produce(b, ["g1", "g2", "g3"], partition: 0, topic: "tape.gaps")
        let partitions = try await assigned.value
        XCTAssertEqual(partitions, [0])
        let batches = waiting.makeBatchIterator()
        let seen = try await read(batches, count: 3)
        XCTAssertEqual(seen, ["0:g1", "0:g2", "0:g3"])
        await produce(b, ["g4", "g5"], partition: 0, topic: "tape.gaps")
        // The lag: the log's end now minus the position (3), whatever the last read saw.
        waiting.reportLagInBackground(positions: [:], partitions: [0])
        let deadline = ContinuousClock.now + .seconds(5)
        while lags.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(lags.withLock { $0 }, [2])
        let rest = try await read(batches, count: 2)
        XCTAssertEqual(rest, ["0:g4", "0:g5"])
    }
}
