import Foundation
import KafkaProtocol
import XCTest

@testable import TapeBroker

/// The transaction coordinator's file: replay, torn tails, topic deletion, rewrite.
final class TransactionLogTests: StorageTestCase {
    func sample(_ id: String = "tx", state: TransactionCoordinator.State = .ongoing) -> TransactionCoordinator.Transaction {
        var t = TransactionCoordinator.Transaction(transactionalId: id, producerId: 123_456_789_012, producerEpoch: 7, timeoutMs: 60_000, state: state)
        t.startMs = 42
        t.partitions = [TopicPartition("t", 0), TopicPartition("u", 3)]
        t.groups = ["g"]
        t.pendingOffsets = [
            "g": [TopicPartition("t", 0): CommittedOffset(offset: 11, leaderEpoch: 2, metadata: "m"), TopicPartition("u", 3): CommittedOffset(offset: 5)]
        ]
        return t
    }

    func testStateIsReplayedOnOpen() async throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("transactions.log")
        let store = try TransactionLogStore(path: path, fsyncPolicy: .always)
        try store.save(sample(state: .empty))
        try store.save(sample())
        try store.save(sample("other", state: .completeAbort))
        try store.markTransactional(TopicPartition("t", 0))
        try store.markTransactional(TopicPartition("u", 3))
        try store.save(sample("expired"))
        store.remove(transactionalId: "expired")
        await store.shutdown()

        let reopened = try TransactionLogStore(path: path, fsyncPolicy: .always)
        let loaded = reopened.load()
        XCTAssertEqual(loaded.transactions, [sample("other", state: .completeAbort), sample()], "the last state of each id wins")
        XCTAssertEqual(loaded.partitions, [TopicPartition("t", 0), TopicPartition("u", 3)])
        await reopened.shutdown()
    }

    func testATornOrCorruptTailIsCutAndLaterWritesSurvive() async throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("transactions.log")
        let store = try TransactionLogStore(path: path, fsyncPolicy: .always)
        try store.save(sample())
        let good = store.fileSize
        try store.save(sample("second"))
        await store.shutdown()
        // Tear the second frame.
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try h.truncate(atOffset: UInt64(good + 5))
        try h.close()
        let reopened = try TransactionLogStore(path: path, fsyncPolicy: .always)
        XCTAssertEqual(reopened.load().transactions.map(\.transactionalId), ["tx"])
        XCTAssertEqual(reopened.fileSize, good, "the torn tail was cut")
        try reopened.save(sample("third"))
        await reopened.shutdown()
        // Flip a payload byte of the last frame: its CRC no longer matches.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var damaged = bytes
        damaged[damaged.count - 1] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: path))
        let again = try TransactionLogStore(path: path, fsyncPolicy: .always)
        XCTAssertEqual(again.load().transactions.map(\.transactionalId), ["tx"])
        await again.shutdown()
    }

    func testRemovedTopicsAreForgottenAfterReplay() async throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("transactions.log")
        let store = try TransactionLogStore(path: path, fsyncPolicy: .never)
        try store.save(sample())
        try store.markTransactional(TopicPartition("t", 0))
        store.removeTopic("t")
        try store.sync()
        await store.shutdown()
        let reopened = try TransactionLogStore(path: path, fsyncPolicy: .always)
        let loaded = reopened.load()
        XCTAssertEqual(loaded.partitions, [])
        XCTAssertEqual(loaded.transactions.first?.partitions, [TopicPartition("u", 3)])
        XCTAssertEqual(loaded.transactions.first?.pendingOffsets["g"]?.keys.map(\.topic), ["u"])
        await reopened.shutdown()
    }

    func testTheFileIsRewrittenWhenItGrows() async throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("transactions.log")
        let store = try TransactionLogStore(path: path, fsyncPolicy: .never, compactionBytes: 4096)
        for i in 0..<200 {
            var t = sample()
            t.producerEpoch = Int16(i)
            try store.save(t)
        }
        XCTAssertLessThan(store.fileSize, 8192, "rewritten instead of growing to 200 frames")
        await store.shutdown()
        let reopened = try TransactionLogStore(path: path, fsyncPolicy: .always)
        XCTAssertEqual(reopened.load().transactions.first?.producerEpoch, 199)
        await reopened.shutdown()
    }

    /// Compaction keeps transactional batches whole and does not let their keys replace older values:
    /// the log does not know which transactions were aborted.
    func testCompactionKeepsTransactionalBatchesAndTheirKeysDoNotShadow() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 200
        config.cleanupPolicy = .compact
        let log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        func transactional(_ batch: [UInt8]) -> [UInt8] {
            var b = batch
            b[22] |= 0x10  // attributes low byte
            let crc = CRC32C.checksum(Array(b[21...]))
            b.replaceSubrange(17..<21, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
            return b
        }
        _ = try log.append(batch: makeBatch(records: [TestRecord(key: "k", value: "committed")]))
        _ = try log.append(batch: transactional(makeBatch(records: [TestRecord(key: "k", value: "aborted")])))
        _ = try log.append(batch: transactional(makeBatch(records: [TestRecord(key: "k", value: "aborted-again")])))
        for i in 0..<6 { _ = try log.append(batch: makeBatch(records: [TestRecord(key: "other", value: "v\(i)")])) }
        XCTAssertGreaterThan(log.segmentCount, 2)
        XCTAssertGreaterThan(try log.compact(), 0, "the plain key still compacts")
        let values = try readAll(log).flatMap(\.records).filter { $0.key == "k" }.map(\.value)
        XCTAssertEqual(values, ["committed", "aborted", "aborted-again"])
    }

    func testCountsLargerThanTheFrameAreCorruptNotATrap() async throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("transactions.log")
        // kind 1, id "x", pid, epoch, timeout, state 1, startMs, partition count 0xFFFFFFFF.
        var payload: [UInt8] = [1, 0, 1, 0x78] + [UInt8](repeating: 0, count: 8) + [0, 1] + [0, 0, 0, 1] + [1] + [UInt8](repeating: 0, count: 8)
        payload += [0xFF, 0xFF, 0xFF, 0xFF]
        var frame: [UInt8] = []
        putBE(UInt32(payload.count), &frame)
        putBE(CRC32C.checksum(payload), &frame)
        try Data(frame + payload).write(to: URL(fileURLWithPath: path))
        let store = try TransactionLogStore(path: path, fsyncPolicy: .always)
        XCTAssertEqual(store.load().transactions, [])
        XCTAssertEqual(store.fileSize, 0)
        await store.shutdown()
    }
}
