import KafkaProtocol
import XCTest

@testable import TapeBroker

/// The transaction coordinator's state machine, without sockets or storage.
final class TransactionCoordinatorTests: XCTestCase {
    var nextId: Int64 = 1000
    func newId() -> Int64 {
        nextId += 1
        return nextId
    }
    let a = TopicPartition("t", 0)
    let b = TopicPartition("t", 1)

    func initialized(_ c: inout TransactionCoordinator, _ id: String = "tx", timeoutMs: Int32 = 60_000) -> (Int64, Int16) {
        guard case .ok(let pid, let epoch, nil) = c.initProducerId(transactionalId: id, timeoutMs: timeoutMs, now: 0, newProducerId: newId) else {
            XCTFail("InitProducerId failed")
            return (-1, -1)
        }
        return (pid, epoch)
    }

    func testInitProducerIdGivesANewIdThenBumpsTheEpochForTheSameTransactionalId() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        XCTAssertEqual(epoch, 0)
        XCTAssertEqual(c.transaction("tx")?.state, .empty)
        XCTAssertEqual(
            c.initProducerId(transactionalId: "tx", timeoutMs: 1000, now: 0, newProducerId: newId), .ok(producerId: pid, producerEpoch: 1, abort: nil))
        XCTAssertEqual(c.transaction("tx")?.timeoutMs, 1000)
        let (other, otherEpoch) = initialized(&c, "other")
        XCTAssertNotEqual(other, pid)
        XCTAssertEqual(otherEpoch, 0)
        XCTAssertEqual(c.transaction(producerId: other)?.transactionalId, "other")
    }

    func testTimeoutAboveTheMaximumOrNotPositiveIsInvalidTransactionTimeout() {
        var c = TransactionCoordinator(maxTimeoutMs: 900_000)
        for timeout: Int32 in [Int32.max, 900_001, 0, -1] {
            guard case .error(let code, _) = c.initProducerId(transactionalId: "tx", timeoutMs: timeout, now: 0, newProducerId: newId) else {
                return XCTFail("timeout \(timeout) accepted")
            }
            XCTAssertEqual(code, .invalidTransactionTimeout)
        }
        XCTAssertNil(c.transaction("tx"))
        XCTAssertEqual(initialized(&c, timeoutMs: 900_000).1, 0)
    }

    func testInitProducerIdWithAStaleCurrentEpochIsFenced() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        guard
            case .error(.producerFenced, _) = c.initProducerId(transactionalId: "tx", timeoutMs: 1000, now: 0, current: (pid, epoch + 1), newProducerId: newId)
        else { return XCTFail("a wrong current epoch must be fenced") }
        guard
            case .error(.producerFenced, _) = c.initProducerId(transactionalId: "tx", timeoutMs: 1000, now: 0, current: (pid + 1, epoch), newProducerId: newId)
        else { return XCTFail("a wrong current producer id must be fenced") }
        XCTAssertEqual(
            c.initProducerId(transactionalId: "tx", timeoutMs: 1000, now: 0, current: (pid, epoch), newProducerId: newId),
            .ok(producerId: pid, producerEpoch: epoch + 1, abort: nil))
        guard case .ok(_, 0, nil) = c.initProducerId(transactionalId: "new", timeoutMs: 1000, now: 0, current: (pid, epoch), newProducerId: newId) else {
            return XCTFail("an id new here starts afresh")
        }
    }

    func testExhaustedEpochGivesANewProducerId() {
        var c = TransactionCoordinator()
        let (pid, _) = initialized(&c)
        var t = c.transaction("tx")!
        t.producerEpoch = Int16.max - 1
        c.restore(t)
        guard case .ok(let newPid, let epoch, nil) = c.initProducerId(transactionalId: "tx", timeoutMs: 1000, now: 0, newProducerId: newId) else {
            return XCTFail("InitProducerId failed")
        }
        XCTAssertNotEqual(newPid, pid)
        XCTAssertEqual(epoch, 0)
        XCTAssertNil(c.transaction(producerId: pid), "the old producer id no longer maps to the transactional id")
        XCTAssertEqual(c.transaction(producerId: newPid)?.transactionalId, "tx")
    }

    func testAddPartitionsStartsTheTransactionAndProduceNeedsThePartition() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        XCTAssertEqual(c.checkProduce(producerId: pid, epoch: epoch, partition: a)?.0, .invalidTxnState, "no transaction yet")
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [a], now: 5).0, .none)
        let t = c.transaction("tx")!
        XCTAssertEqual(t.state, .ongoing)
        XCTAssertEqual(t.partitions, [a])
        XCTAssertEqual(t.startMs, 5)
        XCTAssertNil(c.checkProduce(producerId: pid, epoch: epoch, partition: a))
        XCTAssertEqual(c.checkProduce(producerId: pid, epoch: epoch, partition: b)?.0, .invalidTxnState, "partition not added")
        XCTAssertEqual(c.checkProduce(producerId: pid, epoch: epoch + 1, partition: a)?.0, .invalidProducerEpoch)
        XCTAssertEqual(c.checkProduce(producerId: 77, epoch: 0, partition: a)?.0, .invalidProducerIdMapping)
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [b], now: 9).0, .none)
        XCTAssertEqual(c.transaction("tx")?.partitions, [a, b])
        XCTAssertEqual(c.transaction("tx")?.startMs, 5, "the start time is the transaction's first add")
    }

    func testWrongProducerIdOrEpochOrUnknownTransactionalIdIsRefused() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        XCTAssertEqual(c.addPartitions(transactionalId: "nope", producerId: pid, epoch: epoch, partitions: [a], now: 0).0, .invalidProducerIdMapping)
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid + 1, epoch: epoch, partitions: [a], now: 0).0, .invalidProducerIdMapping)
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch + 1, partitions: [a], now: 0).0, .producerFenced)
        XCTAssertEqual(c.addOffsets(transactionalId: "tx", producerId: pid, epoch: epoch - 1, group: "g", now: 0).0, .producerFenced)
        XCTAssertEqual(
            c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch + 1, commit: true),
            .error(.producerFenced, "producer epoch 1 of tx is fenced by epoch 0"))
        XCTAssertEqual(c.txnOffsetCommit(transactionalId: "tx", producerId: pid, epoch: epoch + 1, group: "g", offsets: [:]).0, .invalidProducerEpoch)
        XCTAssertEqual(c.transaction("tx")?.state, .empty, "refused requests change nothing")
    }

    func testCommitCompletesWithMarkersForEveryPartitionAndTheGroupOffsets() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        _ = c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [b, a], now: 0)
        XCTAssertEqual(
            c.txnOffsetCommit(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", offsets: [a: .init(offset: 3)]).0, .invalidTxnState,
            "offsets need AddOffsetsToTxn first")
        XCTAssertEqual(c.addOffsets(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", now: 0).0, .none)
        XCTAssertEqual(c.txnOffsetCommit(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", offsets: [a: .init(offset: 3)]).0, .none)
        XCTAssertEqual(c.txnOffsetCommit(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", offsets: [a: .init(offset: 4)]).0, .none)
        guard case .complete(let completion) = c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: true) else {
            return XCTFail("EndTxn did not complete")
        }
        XCTAssertEqual(completion.partitions, [a, b])
        XCTAssertTrue(completion.commit)
        XCTAssertEqual(completion.producerEpoch, epoch)
        XCTAssertEqual(completion.offsets, ["g": [a: .init(offset: 4)]])
        XCTAssertEqual(c.transaction("tx")?.state, .prepareCommit)
        XCTAssertEqual(c.unfinished(), [completion])
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [a], now: 0).0, .concurrentTransactions)
        guard case .error(.concurrentTransactions, _) = c.initProducerId(transactionalId: "tx", timeoutMs: 1000, now: 0, newProducerId: newId) else {
            return XCTFail("InitProducerId during prepare must be CONCURRENT_TRANSACTIONS")
        }
        XCTAssertEqual(c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: true), .complete(completion), "a retry writes the markers again")
        XCTAssertEqual(c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: false).isError, true, "abort while committing")
        c.completed(completion)
        let t = c.transaction("tx")!
        XCTAssertEqual(t.state, .completeCommit)
        XCTAssertEqual(t.partitions, [])
        XCTAssertEqual(t.pendingOffsets, [:])
        XCTAssertEqual(c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: true), .alreadyDone)
        XCTAssertEqual(c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: false).isError, true)
        XCTAssertEqual(c.checkProduce(producerId: pid, epoch: epoch, partition: a)?.0, .invalidTxnState, "the transaction ended")
        // The next transaction starts with the next add.
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [b], now: 50).0, .none)
        XCTAssertEqual(c.transaction("tx")?.partitions, [b])
        XCTAssertEqual(c.transaction("tx")?.startMs, 50)
    }

    func testAbortDiscardsTheOffsets() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        _ = c.addOffsets(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", now: 0)
        _ = c.txnOffsetCommit(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", offsets: [a: .init(offset: 3)])
        guard case .complete(let completion) = c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: false) else {
            return XCTFail("EndTxn did not complete")
        }
        XCTAssertFalse(completion.commit)
        XCTAssertEqual(completion.offsets, [:])
        c.completed(completion)
        XCTAssertEqual(c.transaction("tx")?.state, .completeAbort)
        XCTAssertEqual(c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: false), .alreadyDone)
    }

    func testEndTxnWithoutATransactionIsInvalidTxnState() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        XCTAssertEqual(c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: true).isError, true)
    }

    func testInitProducerIdFencesAndAbortsTheOngoingTransaction() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        _ = c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [a], now: 0)
        guard case .ok(let samePid, let newEpoch, let abort?) = c.initProducerId(transactionalId: "tx", timeoutMs: 1000, now: 0, newProducerId: newId) else {
            return XCTFail("no abort of the ongoing transaction")
        }
        XCTAssertEqual(samePid, pid)
        XCTAssertEqual(newEpoch, epoch + 1)
        XCTAssertEqual(abort.partitions, [a])
        XCTAssertFalse(abort.commit)
        XCTAssertEqual(abort.producerEpoch, epoch + 1, "the abort marker carries the bumped epoch")
        c.completed(abort)
        XCTAssertEqual(c.initAfterAbort(transactionalId: "tx", newProducerId: newId)?.producerEpoch, epoch + 1)
        XCTAssertEqual(c.transaction("tx")?.state, .empty)
        // The old producer is fenced everywhere.
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [a], now: 0).0, .producerFenced)
        XCTAssertEqual(c.checkProduce(producerId: pid, epoch: epoch, partition: a)?.0, .invalidProducerEpoch)
        XCTAssertEqual(c.addPartitions(transactionalId: "tx", producerId: pid, epoch: newEpoch, partitions: [a], now: 0).0, .none)
    }

    func testTimedOutTransactionsAreAbortedWithTheEpochBumped() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c, timeoutMs: 100)
        _ = initialized(&c, "idle", timeoutMs: 100)
        _ = c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [a], now: 1000)
        XCTAssertEqual(c.expire(now: 1100), [], "not older than its timeout yet")
        let expired = c.expire(now: 1101)
        XCTAssertEqual(expired.map(\.transactionalId), ["tx"], "only ongoing transactions time out")
        XCTAssertEqual(expired.first?.producerEpoch, epoch + 1)
        XCTAssertEqual(expired.first?.commit, false)
        XCTAssertEqual(c.transaction("tx")?.state, .prepareAbort)
        c.completed(expired[0])
        XCTAssertEqual(c.transaction("tx")?.state, .completeAbort)
        XCTAssertEqual(c.expire(now: 10_000), [])
        XCTAssertEqual(c.endTxn(transactionalId: "tx", producerId: pid, epoch: epoch, commit: true).isError, true)
        XCTAssertEqual(c.checkProduce(producerId: pid, epoch: epoch, partition: a)?.0, .invalidProducerEpoch, "the timed-out producer is fenced")
    }

    func testRemoveTopicForgetsItsPartitionsAndOffsets() {
        var c = TransactionCoordinator()
        let (pid, epoch) = initialized(&c)
        _ = c.addPartitions(transactionalId: "tx", producerId: pid, epoch: epoch, partitions: [a, TopicPartition("u", 0)], now: 0)
        _ = c.addOffsets(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", now: 0)
        _ = c.txnOffsetCommit(transactionalId: "tx", producerId: pid, epoch: epoch, group: "g", offsets: [a: .init(offset: 1)])
        c.removeTopic("t")
        XCTAssertEqual(c.transaction("tx")?.partitions, [TopicPartition("u", 0)])
        XCTAssertEqual(c.transaction("tx")?.pendingOffsets["g"], [:])
    }

    func testIdleTransactionalIdsExpireAndTheLeastRecentlyUsedGoBeyondTheCap() {
        var c = TransactionCoordinator()
        for (i, id) in ["a", "b", "c", "busy"].enumerated() {
            _ = c.initProducerId(transactionalId: id, timeoutMs: 60_000, now: Int64(i) * 10, newProducerId: newId)
        }
        let busy = c.transaction("busy")!
        _ = c.addPartitions(transactionalId: "busy", producerId: busy.producerId, epoch: busy.producerEpoch, partitions: [a], now: 30)
        XCTAssertEqual(c.expireIdle(now: 100, expirationMs: 1000, maxIds: 10), [], "none idle long enough")
        XCTAssertEqual(c.expireIdle(now: 100, expirationMs: 1000, maxIds: 2), ["a", "b"], "least recently used first; ongoing never")
        XCTAssertNil(c.transaction("a"))
        XCTAssertNil(c.transaction(producerId: 1001))
        XCTAssertEqual(c.expireIdle(now: 5000, expirationMs: 1000, maxIds: 10), ["c"], "idle past the expiration")
        XCTAssertEqual(c.expireIdle(now: 10_000_000, expirationMs: 1000, maxIds: 0), [], "an ongoing transaction is kept")
        XCTAssertEqual(c.transaction("busy")?.state, .ongoing)
    }

    func testPartitionTransactionsLastStableOffsetAndAbortedRanges() {
        var p = PartitionTransactions()
        XCTAssertEqual(p.lastStableOffset(highWatermark: 10), 10)
        p.data(producerId: 1, offset: 3)
        p.data(producerId: 1, offset: 5)
        p.data(producerId: 2, offset: 4)
        XCTAssertEqual(p.lastStableOffset(highWatermark: 10), 3)
        p.marker(producerId: 1, commit: false, offset: 6)
        XCTAssertEqual(p.lastStableOffset(highWatermark: 10), 4)
        p.marker(producerId: 2, commit: true, offset: 7)
        XCTAssertEqual(p.lastStableOffset(highWatermark: 10), 10)
        p.marker(producerId: 9, commit: false, offset: 8)  // no data of its own: nothing to abort
        XCTAssertEqual(p.aborted, [.init(producerId: 1, firstOffset: 3, lastOffset: 6)])
        XCTAssertEqual(p.aborted(from: 0, upTo: 3), [], "ends before the aborted data starts")
        XCTAssertEqual(p.aborted(from: 0, upTo: 4).count, 1)
        XCTAssertEqual(p.aborted(from: 6, upTo: 10).count, 1)
        XCTAssertEqual(p.aborted(from: 7, upTo: 10), [], "starts after its marker")
        // A long transaction aborted after a short one that started later.
        var q = PartitionTransactions()
        q.data(producerId: 1, offset: 0)
        q.data(producerId: 2, offset: 50)
        q.marker(producerId: 2, commit: false, offset: 60)
        q.marker(producerId: 1, commit: false, offset: 100)
        for i in 0..<1000 {
            q.data(producerId: 3, offset: 200 + Int64(i) * 2)
            q.marker(producerId: 3, commit: false, offset: 201 + Int64(i) * 2)
        }
        XCTAssertEqual(q.aborted(from: 55, upTo: 58).map(\.producerId), [2, 1])
        XCTAssertEqual(q.aborted(from: 70, upTo: 80).map(\.producerId), [1], "a long transaction still covers later offsets")
        XCTAssertEqual(q.aborted(from: 2100, upTo: 2104).map(\.firstOffset), [2100, 2102])
        XCTAssertEqual(q.aborted(from: 5000, upTo: 6000), [])
        p.dropBefore(6)
        XCTAssertEqual(p.aborted.count, 1)
        p.dropBefore(7)
        XCTAssertEqual(p.aborted, [], "segments deleted past the marker")
    }
}

extension TransactionCoordinator.EndResult {
    var isError: Bool {
        if case .error = self { return true }
        return false
    }
}
