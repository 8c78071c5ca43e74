import KafkaClient
import KafkaProtocol
import Logging
import TapeTestSupport
import XCTest

@testable import TapeBroker
@testable import TapeRuntime

/// `tape up`'s ingestion appending to its embedded broker in-process: partitions as librdkafka
/// chooses them, order, a report for every record, back-pressure, and nothing dropped while the
/// broker refuses for a reason that can pass.
final class EmbeddedProducerTests: XCTestCase {
    func makeBroker(autoCreate: Bool = true) -> Broker {
        var c = BrokerConfiguration()
        c.autoCreateTopics = autoCreate
        c.maxMessageBytes = 10_000
        return Broker(configuration: c, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
    }

    func createTopic(_ b: Broker, _ name: String, partitions: Int32) async {
        let r = await b.createTopics(
            CreateTopicsRequest(topics: [.init(name: name, numPartitions: partitions, replicationFactor: 1)], timeoutMs: 1000), version: 4)
        XCTAssertEqual(r.topics[0].errorCode, .none)
    }

    func testRecordsLandOnLibrdkafkasPartitionsInOrderWithAReportEach() async throws {
        let b = makeBroker()
        await createTopic(b, "tape.trades", partitions: 3)
        let producer = EmbeddedProducer(broker: b, limit: 50, logger: Logger(label: "test"))
        let collected = collectReports(producer)
        for i in 0..<300 {
            try await producer.enqueue(ProducerMessage(topic: "tape.trades", key: "poloniex:M\(i % 7)", value: "\(i)", timestamp: 1_000 + Int64(i)))
            XCTAssertLessThanOrEqual(producer.outstanding, 50, "never more than the limit queued")
        }
        try await producer.close(timeout: .seconds(10))
        let all = await collected.value
        XCTAssertEqual(all.count, 300)
        XCTAssertEqual(all.filter { $0.error != nil }.count, 0)
        XCTAssertEqual(Set(all.map(\.messageID)).count, 300)
        for r in all {
            let i = Int(r.messageID) - 1
            XCTAssertEqual(r.partition, KafkaPartitioner.consistent(key: Array("poloniex:M\(i % 7)".utf8), partitions: 3), "message \(i)")
        }
        // Read back: per key, the values in the order they were queued, with their timestamps.
        var byKey: [String: [Int]] = [:]
        for p: Int32 in 0..<3 {
            let read = await b.localRead(topic: "tape.trades", positions: [p: 0], maxWaitMs: 0)
            for record in read.records {
                let value = Int(String(decoding: record.value ?? [], as: UTF8.self))!
                XCTAssertEqual(record.timestamp, 1_000 + Int64(value))
                byKey[String(decoding: record.key ?? [], as: UTF8.self), default: []].append(value)
            }
        }
        XCTAssertEqual(byKey.values.reduce(0) { $0 + $1.count }, 300)
        for (key, values) in byKey { XCTAssertEqual(values, values.sorted(), "\(key) in order") }
        XCTAssertThrowsError(try producer.tryEnqueue(ProducerMessage(topic: "tape.trades", value: [1])), "closed")
    }

    func testRefusalsThatCanPassAreRetriedInOrderWhileTheQueueFillsUp() async throws {
        // The topic does not exist and is not auto-created: every append is refused, retried.
        let b = makeBroker(autoCreate: false)
        let producer = EmbeddedProducer(broker: b, limit: 5, logger: Logger(label: "test"), retryBackoff: .milliseconds(20))
        let collected = collectReports(producer)
        for i in 0..<5 { try producer.tryEnqueue(ProducerMessage(topic: "tape.gaps", key: "g", value: "\(i)")) }
        XCTAssertThrowsError(try producer.tryEnqueue(ProducerMessage(topic: "tape.gaps", key: "g", value: "x"))) { error in
            XCTAssertEqual((error as? KafkaError)?.code, .queueFull)
        }
        // A wait for room ends when its task is cancelled (ingestion shutting down).
        let cancelled = Task { try await producer.enqueue(ProducerMessage(topic: "tape.gaps", key: "g", value: "never")) }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        do {
            _ = try await cancelled.value
            XCTFail("a cancelled wait for room throws")
        } catch is CancellationError {}
        // A sixth waits for room instead of failing.
        let sixth = Task { try await producer.enqueue(ProducerMessage(topic: "tape.gaps", key: "g", value: "5")) }
        try await Task.sleep(for: .milliseconds(200))
        XCTAssertEqual(producer.outstanding, 5, "nothing delivered, nothing dropped")
        await createTopic(b, "tape.gaps", partitions: 1)
        _ = try await sixth.value
        try await producer.close(timeout: .seconds(10))
        let all = await collected.value
        XCTAssertEqual(all.count, 6)
        XCTAssertEqual(all.filter { $0.error != nil }.count, 0)
        let read = await b.localRead(topic: "tape.gaps", positions: [0: 0], maxWaitMs: 0)
        XCTAssertEqual(read.records.map { String(decoding: $0.value ?? [], as: UTF8.self) }, ["0", "1", "2", "3", "4", "5"])
    }

    func testARecordRefusedForGoodIsReportedFailedAndTheRestGoOn() async throws {
        let b = makeBroker()
        await createTopic(b, "tape.deadletter", partitions: 1)
        let producer = EmbeddedProducer(broker: b, limit: 100, logger: Logger(label: "test"))
        let collected = collectReports(producer)
        let big = ProducerMessage(topic: "tape.deadletter", partition: 0, value: [UInt8](repeating: 65, count: 20_000))
        let bigID = try await producer.enqueue(big)
        // Later records go to another batch so that the refusal of the large one is its own.
        try await Task.sleep(for: .milliseconds(100))
        try await producer.enqueue(ProducerMessage(topic: "tape.deadletter", partition: 0, value: Array("small".utf8)))
        try await producer.close(timeout: .seconds(10))
        let all = await collected.value
        XCTAssertEqual(all.count, 2)
        let failed = all.first { $0.messageID == bigID }
        XCTAssertNotNil(failed?.error, "the broker refuses a record over max.message.bytes for good")
        XCTAssertNil(all.first { $0.messageID != bigID }?.error)
        let read = await b.localRead(topic: "tape.deadletter", positions: [0: 0], maxWaitMs: 0)
        XCTAssertEqual(read.records.map(\.value), [Array("small".utf8)])
    }

    /// Under load a partition's queue is appended in batches the topic accepts: none is refused as
    /// too large as a whole, nothing is dropped, order is kept (the broker here takes 10 kB batches).
    func testABacklogIsAppendedInBatchesTheTopicAcceptsWithoutLoss() async throws {
        let b = makeBroker()
        await createTopic(b, "tape.books", partitions: 1)
        let producer = EmbeddedProducer(broker: b, limit: 20_000, logger: Logger(label: "test"))
        let collected = collectReports(producer)
        let value = [UInt8](repeating: 66, count: 1_000)
        for i in 0..<12_000 { try producer.tryEnqueue(ProducerMessage(topic: "tape.books", partition: 0, key: Array("\(i)".utf8), value: value)) }
        try await producer.close(timeout: .seconds(60))
        let all = await collected.value
        XCTAssertEqual(all.count, 12_000)
        XCTAssertEqual(all.filter { $0.error != nil }.count, 0, "no batch refused for its size")
        XCTAssertEqual(all.sorted { $0.messageID < $1.messageID }.map(\.offset), (0..<12_000).map(Int64.init), "appended in the order queued")
    }

    /// `tape up` closes its producer from a cancelled task (graceful shutdown): the records still
    /// queued are appended all the same, within the timeout.
    func testCloseFromACancelledTaskStillWaitsForTheQueue() async throws {
        let b = makeBroker(autoCreate: false)  // refused (retried) until the topic exists
        let producer = EmbeddedProducer(broker: b, limit: 10, logger: Logger(label: "test"), retryBackoff: .milliseconds(20))
        let collected = collectReports(producer)
        for i in 0..<3 { try producer.tryEnqueue(ProducerMessage(topic: "tape.trades", key: "k", value: "\(i)")) }
        let closing = Task { try await producer.close(timeout: .seconds(10)) }
        closing.cancel()
        try await Task.sleep(for: .milliseconds(200))
        await createTopic(b, "tape.trades", partitions: 1)
        try await closing.value  // no "still not appended" although its task was cancelled
        let all = await collected.value
        XCTAssertEqual(all.count, 3)
        XCTAssertEqual(all.filter { $0.error != nil }.count, 0)
        let read = await b.localRead(topic: "tape.trades", positions: [0: 0], maxWaitMs: 0)
        XCTAssertEqual(read.records.map { String(decoding: $0.value ?? [], as: UTF8.self) }, ["0", "1", "2"])
    }

    func testCloseGivesUpAfterItsTimeoutWhenTheBrokerKeepsRefusing() async throws {
        let b = makeBroker(autoCreate: false)
        let producer = EmbeddedProducer(broker: b, limit: 5, logger: Logger(label: "test"), retryBackoff: .milliseconds(20))
        let collected = collectReports(producer)
        try producer.tryEnqueue(ProducerMessage(topic: "nowhere", value: [1]))
        let started = ContinuousClock.now
        do {
            try await producer.close(timeout: .milliseconds(300))
            XCTFail("close should report the record it could not deliver")
        } catch let error as KafkaError {
            XCTAssertEqual(error.code, .timedOut)
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
        _ = await collected.value  // the stream ends
    }
}

/// Every report until `producer`'s stream ends, collected in the background.
private func collectReports(_ producer: EmbeddedProducer) -> Task<[DeliveryReport], Never> {
    let stream = producer.deliveryReports
    return Task {
        var out: [DeliveryReport] = []
        for await batch in stream { out += batch }
        return out
    }
}
