import Foundation
import KafkaClient
import Logging
import MarketData
import Synchronization

/// One checkpoint's commit: wait until everything produced so far is acknowledged, then, under
/// the ownership lock and only for partitions still owned under the assignment their state was
/// built for, write the candle rows, commit emitted-through offsets and after them replay offsets.
struct CheckpointCommit: Sendable {
    let producer: KafkaProducer
    let failures: Locked<(count: Int, last: String)>
    let store: CandleStore?
    let consumer: KafkaConsumer
    let replayOffsets: KafkaConsumer
    let ownership: Ownership
    let epochs: [Int32: UInt64]
    let emitted: [TopicPartitionOffset]
    let replay: [TopicPartitionOffset]
    let stored: [Int32: [CandleWindowID: Candle]]
    let final: Bool
    let logger: Logger
    /// Set when the producer is transactional: the checkpoint is then one transaction's commit.
    var transaction: CheckpointTransaction? = nil

    func run() async throws {
        try await producer.flush(timeout: .seconds(60))
        let failed = failures.withLock { $0 }
        if failed.count > 0 {
            throw ProcessingError(
                code: .deliveryFailed,
                message: "\(failed.count) candle record(s) could not be delivered (\(failed.last)); stopping without committing, so a restart re-emits them.")
        }
        guard !emitted.isEmpty || !stored.isEmpty else { return }
        let outcome = try await onDedicatedThread { [self] () throws -> CommitOutcome in
            try ownership.whileLocked { owns in
                let current = { (p: Int32) in epochs[p].map { owns(p, $0) } ?? false }
                if let store {
                    let rows = stored.filter { current($0.key) }.flatMap(\.value.values)
                    if !rows.isEmpty { try store.upsert(rows) }
                }
                let emittedOwned = emitted.filter { current($0.partition) }
                let replayOwned = replay.filter { current($0.partition) }
                if let transaction {
                    return transaction.commitLocked(
                        producer: producer, consumer: consumer, emitted: emittedOwned, replay: replayOwned, ownership: ownership)
                }
                guard !emittedOwned.isEmpty else { return .nothing }
                do {
                    try consumer.commitBlocking(emittedOwned)
                } catch {
                    return .refused("\(error)")
                }
                do {
                    try replayOffsets.commitBlocking(replayOwned)
                } catch {
                    return .replayFailed("\(error)")
                }
                return .committed(emittedOwned.map(\.partition))
            }
        }
        switch outcome {
        case .nothing:
            break
        case .refused(let error):
            // Typically a rebalance took the partitions away: the new owner replays.
            logger.notice("Commit refused; the next owner replays", metadata: ["error": "\(error)"])
        case .replayFailed(let error):
            logger.notice("Replay-offset commit failed; an older (still valid) one stays", metadata: ["error": "\(error)"])
        case .committed(let partitions):
            if final { logger.info("Final checkpoint committed", metadata: ["partitions": "\(partitions)"]) }
        case .aborted(let reason, let partitions):
            // Nothing of the transaction is visible; the partitions still held are set up again
            // from the last committed transaction's offsets (the loop replays them).
            logger.notice("Checkpoint transaction aborted; replaying the partitions held", metadata: ["reason": "\(reason)", "partitions": "\(partitions)"])
        case .fenced(let reason):
            throw ProcessingError(
                code: .fenced,
                message:
                    "This processor was fenced: \(reason). Another processor with the same transactional id (or group instance id) took its place, or this one's transaction stayed open longer than transaction.timeout.ms (a stall) and the coordinator aborted it; stopping without committing."
            )
        }
    }
}

/// One candle window: the key of `tape.candles` and of the candle store.
struct CandleWindowID: Hashable, Sendable {
    var exchange: Exchange
    var symbol: Symbol
    var interval: CandleInterval
    var start: Int64
    init(_ candle: Candle) {
        exchange = candle.exchange
        symbol = candle.symbol
        interval = candle.interval
        start = candle.start
    }
}

enum CommitOutcome: Sendable {
    case nothing
    case refused(String)
    case replayFailed(String)
    case committed([Int32])
    /// A transactional checkpoint aborted; the partitions held were set up again.
    case aborted(String, [Int32])
    /// The transactional producer was fenced (fatal): the processor must stop.
    case fenced(String)
}

/// The transactional side of checkpoints (`CandleProcessorConfiguration.transactions`): candles,
/// dead letters and both groups' offsets of a checkpoint become visible together or not at all.
///
/// Everything here runs under the ownership lock, so no candle is produced between a commit (or
/// abort) and the next `beginTransaction`. After an abort, the in-memory state of every partition
/// is ahead of what became visible: the partitions still held get new ownership epochs (dropping
/// candles queued under the old ones) and a revoke/assign pair is queued for the loop, which sets
/// them up again from the committed offsets exactly like a new owner.
final class CheckpointTransaction: Sendable {
    let replayGroup: ConsumerGroupMetadata
    let inputTopic: String
    let rebalances: Locked<[RebalanceEvent]>
    /// The producer's enqueue count when the open transaction began.
    private let enqueuedAtBegin: Locked<UInt64>

    init(replayGroup: ConsumerGroupMetadata, inputTopic: String, rebalances: Locked<[RebalanceEvent]>, enqueuedAtBegin: UInt64) {
        self.replayGroup = replayGroup
        self.inputTopic = inputTopic
        self.rebalances = rebalances
        self.enqueuedAtBegin = Locked(enqueuedAtBegin)
    }

    /// Commits the open transaction with these offsets, or aborts it; then begins the next one.
    /// Call with the ownership lock held.
    func commitLocked(
        producer: KafkaProducer, consumer: KafkaConsumer, emitted: [TopicPartitionOffset], replay: [TopicPartitionOffset], ownership: Ownership
    ) -> CommitOutcome {
        let produced = producer.enqueuedRecords != enqueuedAtBegin.withLock { $0 }
        if emitted.isEmpty {
            // No partition of ours advanced: records in the transaction (if any) belong to
            // partitions no longer held under their epoch, and must not become visible.
            guard produced else { return .nothing }
            return abortLocked(producer: producer, ownership: ownership, reason: "no partition it was produced for is still held")
        }
        do {
            guard let member = consumer.groupMetadata() else {
                return abortLocked(producer: producer, ownership: ownership, reason: "the consumer has no group metadata")
            }
            try producer.sendOffsetsToTransactionBlocking(emitted, group: member)
            try producer.sendOffsetsToTransactionBlocking(replay, group: replayGroup)
            try producer.commitTransactionBlocking()
        } catch let error as KafkaError where error.isFatal {
            return .fenced("\(error)")
        } catch {
            return abortLocked(producer: producer, ownership: ownership, reason: "\(error)")
        }
        if let fenced = beginLocked(producer) { return fenced }
        return .committed(emitted.map(\.partition))
    }

    /// Aborts the open transaction and begins the next; with `resetPartitions`, the partitions held
    /// are set up again (see the type's comment). Call with the ownership lock held.
    func abortLocked(producer: KafkaProducer, ownership: Ownership, reason: String, resetPartitions: Bool = true) -> CommitOutcome {
        do {
            try producer.abortTransactionBlocking()
        } catch let error as KafkaError where error.isFatal {
            return .fenced("\(error)")
        } catch {
            return .fenced("the transaction could not be aborted (\(error))")
        }
        if let fenced = beginLocked(producer) { return fenced }
        guard resetPartitions else { return .aborted(reason, []) }
        let partitions = ownership.reassignAllLocked()
        if !partitions.isEmpty {
            let tps = partitions.map { TopicPartitionOffset(topic: inputTopic, partition: $0, offset: KafkaOffset.invalid) }
            rebalances.withLock { $0 += [.revoked(tps), .assigned(tps)] }
        }
        return .aborted(reason, partitions)
    }

    private func beginLocked(_ producer: KafkaProducer) -> CommitOutcome? {
        do {
            try producer.beginTransaction()
        } catch {
            return .fenced("the next transaction could not begin (\(error))")
        }
        enqueuedAtBegin.withLock { $0 = producer.enqueuedRecords }
        return nil
    }
}

/// Runs blocking work (a lock held across broker round trips) on a thread of its own, off Swift's
/// cooperative pool.
private func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// The input partitions this member owns, as the consumer's rebalance callback sees them, each
/// with the serial number (epoch) of the assignment that gave it. Output for a partition happens
/// under the lock and only while the partition is owned under the epoch its state was built for.
final class Ownership: @unchecked Sendable {
    private let lock = NSLock()
    private var serial: UInt64 = 0
    private var owned: [Int32: UInt64] = [:]

    func assign(_ partitions: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        for p in partitions {
            serial += 1
            owned[p] = serial
        }
    }

    /// Waits for output in flight under the lock (a commit), then the partitions are no longer
    /// owned; `body` runs before the lock is released (a transactional producer aborts there, so
    /// nothing is produced between the revocation and the next transaction).
    func revoke(_ partitions: [Int32], thenLocked body: () -> Void = {}) {
        lock.lock()
        defer { lock.unlock() }
        for p in partitions { owned[p] = nil }
        body()
    }

    /// Gives every partition held a new epoch (so output queued under the old ones is dropped)
    /// and returns them. Call only with the lock held (inside `whileLocked`).
    func reassignAllLocked() -> [Int32] {
        let partitions = owned.keys.sorted()
        for p in partitions {
            serial += 1
            owned[p] = serial
        }
        return partitions
    }

    /// Like `revoke`, for every partition.
    func revokeAll() {
        lock.lock()
        defer { lock.unlock() }
        owned.removeAll()
    }

    func epoch(of partition: Int32) -> UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return owned[partition]
    }

    /// Runs `body` under the lock if `partition` is owned under `epoch`; nil if it is not.
    func ifOwned<T>(_ partition: Int32, epoch: UInt64, _ body: () -> T) -> T? {
        lock.lock()
        defer { lock.unlock() }
        guard owned[partition] == epoch else { return nil }
        return body()
    }

    /// Runs `body` under the lock with a test "owned under this epoch".
    func whileLocked<T>(_ body: (@escaping (Int32, UInt64) -> Bool) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body { p, e in self.owned[p] == e }
    }
}

/// A value behind a lock, shareable between tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
