import Foundation
import KafkaProtocol
import NIOCore
import XCTest

@testable import TapeBroker

/// The request handler on the durable store: timestamps, topic-name collisions and partition
/// limits answer with Kafka's error codes and a message.
final class StorageLimitsHandlerTests: XCTestCase {
    var directories: [String] = []
    var managers: [LogManager] = []

    override func tearDown() async throws {
        for m in managers { await m.shutdown() }
        for d in directories { try? FileManager.default.removeItem(atPath: d) }
        managers = []
        directories = []
    }

    func makeBroker(maxPartitions: Int = 10_000, dir: String? = nil) throws -> (Broker, LogManager, String) {
        let dir = dir ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("tape-limits-\(UUID().uuidString)")
        directories.append(dir)
        let m = try LogManager(
            configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0, maxPartitions: maxPartitions))
        managers.append(m)
        let b = Broker(configuration: BrokerConfiguration(), topics: m, committedOffsets: DurableCommittedOffsetStore(m.offsetStore))
        return (b, m, dir)
    }

    func produce(_ b: Broker, _ records: ByteBuffer, topic: String = "t") async -> ProduceResponse.PartitionResponse {
        await b.produce(ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: topic, partitions: [.init(index: 0, records: records)])])).topics[0]
            .partitions[0]
    }

    func listOffsets(_ b: Broker, _ ts: Int64, topic: String = "t") async -> ListOffsetsResponse.Partition {
        await b.listOffsets(ListOffsetsRequest(topics: [.init(name: topic, partitions: [.init(partitionIndex: 0, timestamp: ts)])])).topics[0].partitions[0]
    }

    /// The reported crash: a batch whose baseTimestamp + timestampDelta overflows, then ListOffsets
    /// by time. Produce now refuses it (INVALID_TIMESTAMP) and nothing is written.
    func testProduceRefusesRecordTimestampsThatOverflow() async throws {
        let (b, m, _) = try makeBroker()
        let ok = await produce(b, RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: [1])], baseTimestamp: 1_000))
        XCTAssertEqual(ok.errorCode, .none)
        let bad = RecordBatchBuilder.build(
            records: [Record(timestampDelta: 0, offsetDelta: 0, key: nil, value: [2]), Record(timestampDelta: 100, offsetDelta: 1, key: nil, value: [3])],
            baseTimestamp: Int64.max - 10)
        let refused = await produce(b, bad)
        XCTAssertEqual(refused.errorCode, .invalidTimestamp)
        XCTAssertTrue(refused.errorMessage?.contains("overflows") == true, refused.errorMessage ?? "")
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 0)?.logEndOffset, 1)
        let answer = await listOffsets(b, 500)
        XCTAssertEqual(answer.errorCode, .none)
        XCTAssertEqual(answer.offset, 0)
    }

    /// Data already on disk from a version that accepted such batches: ListOffsets answers, before
    /// and after a restart.
    func testListOffsetsOverAnOverflowingBatchAlreadyOnDisk() async throws {
        var (b, m, dir) = try makeBroker()
        try m.createTopic(name: "t", partitions: 1)
        let stored = RecordBatchBuilder.build(
            records: [Record(timestampDelta: 100, offsetDelta: 0, key: nil, value: [2]), Record(timestampDelta: 0, offsetDelta: 1, key: nil, value: [3])],
            baseTimestamp: Int64.max - 10)
        var bytes = Array(stored.readableBytesView)
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: Int64.max.bigEndian, toByteOffset: 35, as: Int64.self) }  // maxTimestamp as claimed
        _ = try m.partitionLog(topic: "t", partition: 0)!.append(batch: bytes)
        for _ in 0..<2 {
            let answer = await listOffsets(b, 2_000)
            XCTAssertEqual(answer.errorCode, .none)
            XCTAssertEqual(answer.offset, 1)
            XCTAssertEqual(answer.timestamp, Int64.max - 10)
            await m.shutdown()
            managers.removeAll()
            (b, m, _) = try makeBroker(dir: dir)
        }
    }

    func testTopicNamesThatCollideAreRefusedOnCreateTopicsAndAutoCreate() async throws {
        let (b, m, _) = try makeBroker()
        let r = await b.createTopics(
            CreateTopicsRequest(topics: [
                .init(name: "foo.bar", numPartitions: 1, replicationFactor: 1), .init(name: "foo_bar", numPartitions: 1, replicationFactor: 1),
            ]),
            version: 4)
        XCTAssertEqual(r.topics.map(\.errorCode), [.none, .invalidTopicException])
        XCTAssertEqual(
            r.topics[1].errorMessage,
            "Topic 'foo_bar' collides with existing topic: foo.bar ('.' and '_' are the same in metric names, so Kafka allows only one of them)")
        let md = await b.metadata(MetadataRequest(topics: ["foo_bar"]), version: 4)
        XCTAssertEqual(md.topics[0].errorCode, .invalidTopicException)
        let produced = await produce(b, RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: [1])], baseTimestamp: 0), topic: "foo_bar")
        XCTAssertEqual(produced.errorCode, .invalidTopicException)
        XCTAssertEqual(m.topicNames(), ["foo.bar"])
    }

    func testPartitionLimitsAnswerPolicyViolation() async throws {
        let (b, m, _) = try makeBroker(maxPartitions: 20)
        let r = await b.createTopics(
            CreateTopicsRequest(topics: [.init(name: "a", numPartitions: 15, replicationFactor: 1), .init(name: "b", numPartitions: 10, replicationFactor: 1)]),
            version: 4)
        XCTAssertEqual(r.topics.map(\.errorCode), [.none, .policyViolation])
        XCTAssertTrue(r.topics[1].errorMessage?.contains("--max-partitions") == true, r.topics[1].errorMessage ?? "")
        // Auto-creation past the limit (5 left, each auto-created topic takes 1).
        for i in 0..<5 {
            let md = await b.metadata(MetadataRequest(topics: ["auto\(i)"]), version: 4)
            XCTAssertEqual(md.topics[0].errorCode, .none)
        }
        let md = await b.metadata(MetadataRequest(topics: ["auto5"]), version: 4)
        XCTAssertEqual(md.topics[0].errorCode, .policyViolation)
        XCTAssertEqual(m.partitionCount, 20)
        // One request may not ask for more than 10 000 partitions in all (Kafka's controller rule).
        let (big, bigStore, _) = try makeBroker()
        let r2 = await big.createTopics(
            CreateTopicsRequest(topics: [
                .init(name: "x", numPartitions: 6_000, replicationFactor: 1), .init(name: "y", numPartitions: 6_000, replicationFactor: 1),
            ]),
            version: 4)
        XCTAssertEqual(r2.topics.map(\.errorCode), [.policyViolation, .policyViolation])
        XCTAssertTrue(r2.topics[0].errorMessage?.hasPrefix("Excessively large number of partitions per request") == true)
        XCTAssertEqual(bigStore.topicNames(), [])
    }
}
