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

private enum CommitOutcome: Sendable {
    case nothing
    case refused(String)
    case replayFailed(String)
    case committed([Int32])
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

    /// Waits for output in flight under the lock (a commit), then the partitions are no longer owned.
    func revoke(_ partitions: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        for p in partitions { owned[p] = nil }
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
