import Foundation
import KafkaClient
import TapeTestSupport
import XCTest

/// The transactional producer API's flow against librdkafka's mock cluster, which speaks the
/// transaction coordinator's protocol but neither stores transactional offsets, fences by epoch nor
/// hides aborted records: those semantics are tested against `tape broker`
/// (TapeBrokerProcessTests.TransactionClientProcessTests).
final class KafkaTransactionTests: XCTestCase {
    var cluster: MockKafkaCluster!

    override func setUp() async throws {
        cluster = try MockKafkaCluster(brokers: 3)
    }

    override func tearDown() async throws {
        cluster = nil
    }

    func transactionalProducer(id: String) throws -> KafkaProducer {
        var config = KafkaProducerConfiguration(kafka: .init(bootstrapServers: cluster.bootstrapServers))
        config.lingerMilliseconds = 1
        config.transactionalID = id
        config.transactionTimeoutMilliseconds = 10_000
        return try KafkaProducer(configuration: config)
    }

    func testTransactionsCommitAndAbortInTurn() async throws {
        try cluster.createTopic("txn.out", partitions: 2)
        try cluster.createTopic("txn.in", partitions: 1)
        let p = try transactionalProducer(id: "tape-test-1")
        try await p.initTransactions()
        try p.beginTransaction()
        for i in 0..<10 { try await p.enqueue(.init(topic: "txn.out", key: "k\(i)", value: "v\(i)")) }
        let group = try ConsumerGroupMetadata(groupID: "txn-group")
        try await p.sendOffsetsToTransaction([.init(topic: "txn.in", partition: 0, offset: 42)], group: group)
        try await p.commitTransaction()
        XCTAssertEqual(p.outstanding, 0, "the commit flushed every record")

        // A second transaction right after the first works on the same producer.
        try p.beginTransaction()
        try await p.enqueue(.init(topic: "txn.out", key: "again", value: "x"))
        try await p.abortTransaction()
        try await p.close()
    }

    func testUsingTransactionsWithoutAnIdIsAClearError() async throws {
        var config = KafkaProducerConfiguration(kafka: .init(bootstrapServers: cluster.bootstrapServers))
        config.lingerMilliseconds = 1
        let p = try KafkaProducer(configuration: config)
        XCTAssertThrowsError(try p.beginTransaction()) { error in
            XCTAssertTrue("\(error)".contains("transaction"), "\(error)")
        }
    }
}
