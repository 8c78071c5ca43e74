import Logging
import MarketData

/// The recovery and replay protocol of `CandleProcessor`, as a value. It performs no I/O and reads
/// no clock: every event is a `mutating func` (times are passed in, ms since the epoch) and returns
/// the `Action`s the driver (`CandleProcessorLoop`, in `CandleProcessor.run`) carries out, in
/// order, against the consumers, the producer and the candle store. Tested without a broker in
/// `CandleProcessorStateMachineTests`. The values and actions are in
/// `CandleProcessorStateMachineValues.swift`.
///
/// Each assigned input partition goes through three states:
/// - `awaitingRecovery`: assigned; its committed offsets are still to be read (the driver reads them
///   on its next wake, or when records of the partition arrive: `recoverFirst`, and answers with
///   `recoveryPointsRead`). Records are not used.
/// - `seeking`: the replay start is known (and, when it lies before the emitted-through offset, the
///   consumer was moved there with `seek`). Records are dropped until the one at exactly the
///   replay start arrives; an aggregator starts with it.
/// - `running`: records go through the partition's `CandleAggregator`. While it replays (below the
///   emitted-through offset) nothing is emitted and the partition takes no part in commits.
///
/// Rules it enforces:
/// - the replay start is the committed replay offset (`group.replay`), or the first offset still in
///   the log when there is none, never after the committed emitted-through offset (`group`) and
///   never before the first offset still in the log; emission resumes at the emitted-through offset;
/// - a jump in a running partition's offsets (records fetched before a seek and delivered after
///   it) drops its state and sets it up again, at most `gapRetries` times in a row; after that the
///   jump is accepted;
/// - every output (`produce`, `deadLetter`, `commit`) carries the assignment epoch its state was
///   built under: the driver lets it out only while the partition is still owned under that epoch;
/// - candles are emitted every emit interval, but committed (`commit`, once they are queued) only
///   every commit interval, one commit at a time (a commit still running defers the next one to the
///   next checkpoint, except the final one);
/// - after `outputFailed` or `partitionsLost` nothing more goes out.
struct CandleProcessorStateMachine: Sendable {
    struct Configuration: Sendable {
        var aggregation: CandleAggregatorConfiguration
        /// How often final candles and corrections are looked for (ms).
        var tickMilliseconds: Int64
        /// How often emitted candles are made durable and offsets committed (ms).
        var commitIntervalMilliseconds: Int64
        /// How often a progress line is due (s); nil: never.
        var progressSeconds: Double?
        /// Input offsets (exclusive) per partition at which the processor stops.
        var stopAtOffsets: [Int32: Int64]?
        /// Offset jumps in a row after which a partition's jump is accepted.
        var gapRetries = 3
        /// Where rejected records go (named in the log).
        var deadLetterTopic = "tape.deadletter"

        init(
            aggregation: CandleAggregatorConfiguration, tickMilliseconds: Int64, commitIntervalMilliseconds: Int64,
            progressSeconds: Double? = nil, stopAtOffsets: [Int32: Int64]? = nil
        ) {
            self.aggregation = aggregation
            self.tickMilliseconds = tickMilliseconds
            self.commitIntervalMilliseconds = commitIntervalMilliseconds
            self.progressSeconds = progressSeconds
            self.stopAtOffsets = stopAtOffsets
        }

        init(_ processor: CandleProcessorConfiguration) {
            self.init(
                aggregation: processor.aggregation, tickMilliseconds: processor.tickMilliseconds,
                commitIntervalMilliseconds: processor.effectiveCommitIntervalMilliseconds,
                progressSeconds: processor.progressSeconds, stopAtOffsets: processor.stopAtOffsets)
            deadLetterTopic = processor.deadLetterTopic
        }
    }

    let configuration: Configuration
    /// The assigned input partitions.
    private(set) var partitions: [Int32: PartitionState] = [:]
    /// One aggregator per running partition.
    private(set) var aggregators: [Int32: CandleAggregator] = [:]
    /// Offset jumps in a row per partition (see `recordsArrived`).
    private var gapResets: [Int32: Int] = [:]
    private var lastTick: Int64
    private var lastCheckpoint: Int64
    private var lastCommit: Int64
    private var lastProgress: Int64
    private var lastProgressTrades: Int64 = 0
    /// Records were applied since the last checkpoint (an emission may be due).
    private(set) var changedSinceCheckpoint = false
    private var badRecordsLogged = 0
    /// After a failed output nothing more goes out.
    private(set) var hasFailed = false
    /// The commit of the last checkpoint, until its candles are queued (`checkpointProduced`).
    private var preparedCommit: (commit: Commit, now: Int64)?

    init(configuration: Configuration, now: Int64) {
        self.configuration = configuration
        lastTick = now
        lastCheckpoint = now
        lastCommit = now
        lastProgress = now
    }

    // MARK: - Queries

    /// Assigned partitions whose committed offsets are still to be read, in order.
    var partitionsAwaitingRecovery: [Int32] {
        partitions.filter { $0.value == .awaitingRecovery }.map(\.key).sorted()
    }

    /// The assigned partitions, in order.
    var assignedPartitions: [Int32] { partitions.keys.sorted() }

    /// The next offset to read of a partition: its aggregator's position, or its replay start.
    func position(of partition: Int32) -> Int64? {
        if let aggregator = aggregators[partition] { return aggregator.position }
        if case .seeking(_, let point) = partitions[partition] { return point.replayFrom }
        return nil
    }

    /// The counters of the aggregators held.
    var liveCounters: ProcessingCounters {
        var sum = ProcessingCounters()
        for aggregator in aggregators.values { sum = sum + aggregator.counters }
        return sum
    }

    /// How long to wait for input: a tick, but no longer than until the next emission is due when
    /// records were applied since the last checkpoint.
    func waitMilliseconds(now: Int64) -> Int64 {
        var wait = configuration.tickMilliseconds
        if changedSinceCheckpoint {
            wait = min(wait, max(0, lastCheckpoint + configuration.aggregation.emitIntervalMilliseconds - now))
        }
        return wait
    }

    func isTickDue(now: Int64) -> Bool { now - lastTick >= configuration.tickMilliseconds }

    func isCheckpointDue(now: Int64) -> Bool { now - lastCheckpoint >= configuration.aggregation.emitIntervalMilliseconds }

    func isProgressDue(now: Int64) -> Bool {
        guard let seconds = configuration.progressSeconds else { return false }
        return Double(now - lastProgress) >= seconds * 1000
    }

    /// True once every partition of `stopAtOffsets` was read up to its offset (a partition with
    /// nothing to read counts when its replay start is there).
    var reachedStopOffsets: Bool {
        guard let stop = configuration.stopAtOffsets else { return false }
        for (partition, offset) in stop {
            if let aggregator = aggregators[partition] {
                guard aggregator.position >= offset else { return false }
            } else {
                guard case .seeking(_, let point) = partitions[partition], point.replayFrom >= offset else { return false }
            }
        }
        return true
    }

    // MARK: - Rebalances

    /// Input partitions given to this member: their state is set up anew.
    mutating func partitionsAssigned(_ assigned: [Int32]) -> [Action] {
        var actions: [Action] = []
        for partition in assigned {
            retire(partition, into: &actions)
            partitions[partition] = .awaitingRecovery
        }
        return actions
    }

    /// Input partitions taken away: their state is dropped (the next owner replays).
    mutating func partitionsRevoked(_ revoked: [Int32]) -> [Action] {
        var actions: [Action] = []
        if !revoked.isEmpty { actions.append(.announce("partitions \(revoked.sorted()) given up")) }
        for partition in revoked {
            retire(partition, into: &actions)
            partitions[partition] = nil
            gapResets[partition] = nil
        }
        return actions
    }

    /// Every partition is gone at once (the consumer was fenced or failed).
    mutating func partitionsLost(reason: String) -> [Action] {
        var actions: [Action] = [.log(.error, "Every partition is lost; stopping", ["reason": reason])]
        for partition in partitions.keys.sorted() { retire(partition, into: &actions) }
        partitions.removeAll()
        return actions
    }

    mutating func rebalanceFailed(_ message: String) -> [Action] {
        [.log(.warning, "Rebalance error", ["error": message])]
    }

    // MARK: - Recovery

    /// The committed offsets were read (partitions missing from `offsets` stay awaiting): each
    /// partition gets its recovery point, and the consumer is moved back to every replay start
    /// before its emitted-through offset.
    mutating func recoveryPointsRead(_ offsets: [Int32: CommittedOffsets]) -> [Action] {
        var actions: [Action] = []
        var points: [(partition: Int32, epoch: UInt64, point: RecoveryPoint)] = []
        for (partition, read) in offsets.sorted(by: { $0.key < $1.key }) where partitions[partition] == .awaitingRecovery {
            let (point, deleted) = Self.recoveryPoint(read)
            if let needed = deleted {
                actions.append(
                    .log(
                        .warning, "Trades needed for recovery were deleted by retention; candles of the oldest windows may be incomplete",
                        ["partition": "\(partition)", "needed": "\(needed)", "first": "\(read.firstInLog)"]))
            }
            points.append((partition, read.epoch, point))
        }
        var seeks: [PartitionOffset] = []
        for (partition, epoch, point) in points {
            actions.append(
                .log(.info, "Partition starts", ["partition": "\(partition)", "replayFrom": "\(point.replayFrom)", "emitFrom": "\(point.emitFrom)"]))
            actions.append(
                .announce("partition \(partition) taken over: replaying from offset \(point.replayFrom), emitting from offset \(point.emitFrom)"))
            partitions[partition] = .seeking(epoch: epoch, point)
            if point.replayFrom < point.emitFrom { seeks.append(PartitionOffset(partition: partition, offset: point.replayFrom)) }
        }
        if !seeks.isEmpty { actions.append(.seek(seeks)) }
        return actions
    }

    /// The recovery point of a partition from its committed offsets, and the replay start that was
    /// needed when retention deleted it (then replay starts at the first offset still in the log).
    static func recoveryPoint(_ read: CommittedOffsets) -> (RecoveryPoint, deleted: Int64?) {
        // Without a replay offset (first run, or lost), replay everything still in the log.
        var start = read.replayFrom >= 0 ? read.replayFrom : read.firstInLog
        if read.emittedThrough >= 0 && start > read.emittedThrough { start = read.emittedThrough }
        var deleted: Int64?
        if start < read.firstInLog {
            deleted = start
            start = read.firstInLog
        }
        return (RecoveryPoint(replayFrom: start, emitFrom: max(read.emittedThrough, start)), deleted)
    }

    /// The seek to the replay starts failed: these partitions are set up again later.
    mutating func seekFailed(_ seeks: [PartitionOffset]) {
        for seek in seeks where partitions[seek.partition] != nil { partitions[seek.partition] = .awaitingRecovery }
    }

    /// Reading the committed offsets (or seeking) failed; retried on the next wake, or when records
    /// of `partition` arrive.
    func recoveryFailed(error: String, partition: Int32? = nil) -> [Action] {
        if let partition {
            return [.log(.notice, "Cannot set up a partition yet; retrying", ["partition": "\(partition)", "error": error])]
        }
        return [.log(.notice, "Cannot set up partitions yet; retrying", ["partitions": "\(partitionsAwaitingRecovery)", "error": error])]
    }

    // MARK: - Records

    enum RecordsOutcome: Sendable, Hashable {
        /// The partition awaits its recovery point: read the committed offsets of these partitions
        /// (`recoveryPointsRead`), then deliver the same records once more. Nothing was used.
        case recoverFirst([Int32])
        case handled([Action])
    }

    /// A run of records of one input partition, in offset order.
    mutating func recordsArrived(partition: Int32, records: some Collection<InputRecord>, now: Int64) -> RecordsOutcome {
        guard let state = partitions[partition] else { return .handled([]) }
        var first = records.startIndex
        switch state {
        case .awaitingRecovery:
            return .recoverFirst(partitionsAwaitingRecovery)
        case .seeking(let epoch, let point):
            // The aggregator starts with the record at exactly the replay start: records still
            // buffered from an earlier assignment of the partition cannot open a gap.
            guard let start = records.firstIndex(where: { $0.offset == point.replayFrom }) else { return .handled([]) }
            first = start
            aggregators[partition] = CandleAggregator(
                configuration: configuration.aggregation, startSequence: point.replayFrom, resumeEmittingAt: point.emitFrom)
            partitions[partition] = .running(epoch: epoch)
        case .running:
            break
        }
        guard case .running(let epoch) = partitions[partition], var aggregator = aggregators.removeValue(forKey: partition) else {
            return .handled([])
        }
        // Rejected records, with the value to dead-letter: nil when replayed (a previous owner
        // dead-lettered those already).
        var bad: [(offset: Int64, rejection: CandleAggregator.Rejection, value: [UInt8]?)] = []
        var gap: (expected: Int64, got: Int64)?
        // A real gap (a compacted or transactional input) would come back every time: after
        // `gapRetries` tries it is accepted.
        let gapRetries = gapResets[partition, default: 0]
        for record in records[first...] {
            if record.offset < aggregator.position { continue }
            if record.offset > aggregator.position && gapRetries < configuration.gapRetries {
                gap = (aggregator.position, record.offset)
                break
            }
            let replayed = aggregator.isSuppressing
            guard let value = record.value else {
                aggregator.skip(sequence: record.offset)
                bad.append((record.offset, .init(.notATrade, "record has no value"), replayed ? nil : []))
                continue
            }
            if let rejection = aggregator.ingestRecord(bytes: value, sequence: record.offset, now: now) {
                bad.append((record.offset, rejection, replayed ? nil : Array(value)))
            }
        }
        aggregators[partition] = aggregator
        changedSinceCheckpoint = true
        var actions: [Action] = []
        for b in bad {
            logBadRecord(partition: partition, offset: b.offset, rejection: b.rejection, into: &actions)
            if let value = b.value {
                actions.append(.deadLetter(DeadLetter(partition: partition, epoch: epoch, offset: b.offset, rejection: b.rejection, value: value)))
            }
        }
        if let gap {
            // Offsets of tape.trades are contiguous (not compacted, not transactional), so a jump
            // means this state would miss records. It happens when records fetched from the
            // committed offset before the seek to the replay start are delivered after records
            // from the seek (librdkafka 2.0.2's batch consume does not drop them on librdkafka's
            // mock cluster). The state is dropped and the partition set up again: it seeks to the
            // replay start once more and starts at exactly that record.
            actions.append(
                .log(
                    .notice, "Offset gap in the input (records from before a seek); setting the partition up again",
                    ["partition": "\(partition)", "expected": "\(gap.expected)", "got": "\(gap.got)"]))
            retire(partition, into: &actions)
            partitions[partition] = .awaitingRecovery
            gapResets[partition] = gapRetries + 1
        }
        return .handled(actions)
    }

    private mutating func logBadRecord(partition: Int32, offset: Int64, rejection: CandleAggregator.Rejection, into actions: inout [Action]) {
        badRecordsLogged += 1
        guard badRecordsLogged <= 10 || badRecordsLogged % 10_000 == 0 else { return }
        actions.append(
            .log(
                .warning, "Skipping a record the processor cannot use; it goes to the dead-letter topic",
                [
                    "partition": "\(partition)", "offset": "\(offset)", "reason": "\(rejection)", "skipped": "\(badRecordsLogged)",
                    "deadLetterTopic": configuration.deadLetterTopic,
                ]))
    }

    // MARK: - Time

    /// A tick: gaps found or repaired (`gaps`, from the gap ledger) mark the windows they overlap
    /// for emission again; windows the watermark has passed go out as final.
    mutating func tick(now: Int64, gaps: [Gap] = []) -> [Action] {
        lastTick = now
        guard !hasFailed else { return [] }
        let running = aggregators.keys.sorted()
        for gap in gaps where gap.channel == .trades {
            for partition in running {
                _ = aggregators[partition]!.revise(exchange: gap.exchange, symbol: gap.symbol, from: gap.from, to: gap.to)
            }
        }
        var actions: [Action] = []
        for partition in running {
            let candles = aggregators[partition]!.tick(now: now)
            if !candles.isEmpty, case .running(let epoch) = partitions[partition] {
                actions.append(.produce(partition: partition, epoch: epoch, candles: candles))
            }
        }
        return actions
    }

    /// An emission: every changed window goes out (`produce`). When `final` or the commit interval
    /// has passed, the points that hold once those candles are acknowledged are kept for
    /// `checkpointProduced`. Partitions still replaying take no part in them.
    mutating func checkpointDue(now: Int64, final: Bool) -> [Action] {
        lastCheckpoint = now
        changedSinceCheckpoint = false
        preparedCommit = nil
        guard !hasFailed else { return [] }
        var actions: [Action] = []
        var commit = Commit(emittedThrough: [], replayFrom: [], epochs: [:], final: final)
        for partition in aggregators.keys.sorted() {
            guard case .running(let epoch) = partitions[partition] else { continue }
            let (candles, point) = aggregators[partition]!.checkpoint(now: now)
            if !candles.isEmpty { actions.append(.produce(partition: partition, epoch: epoch, candles: candles)) }
            commit.epochs[partition] = epoch
            if !aggregators[partition]!.isSuppressing {
                commit.emittedThrough.append(PartitionOffset(partition: partition, offset: point.emittedThrough))
                commit.replayFrom.append(PartitionOffset(partition: partition, offset: point.replayFrom))
            }
        }
        actions.append(.publishCounters(liveCounters))
        // Emitted; made durable and committed only every commit interval.
        if final || now - lastCommit >= configuration.commitIntervalMilliseconds { preparedCommit = (commit, now) }
        return actions
    }

    /// The candles of the last `checkpointDue` are queued: its `commit`, if one is due — unless an
    /// earlier commit is still running (`commitInFlight`) and this is not the final checkpoint;
    /// then the next checkpoint tries again (its points are newer, so nothing is lost by waiting).
    mutating func checkpointProduced(commitInFlight: Bool) -> [Action] {
        guard let prepared = preparedCommit, !hasFailed else { return [] }
        preparedCommit = nil
        if !prepared.commit.final && commitInFlight { return [] }
        lastCommit = prepared.now
        return [.commit(prepared.commit)]
    }

    /// A progress line was shown; returns the trades per second since the previous one.
    mutating func progressReported(now: Int64, trades: Int64) -> Double {
        let seconds = Double(now - lastProgress) / 1000
        let rate = Double(trades - lastProgressTrades) / max(seconds, 0.001)
        lastProgress = now
        lastProgressTrades = trades
        return rate
    }

    // MARK: - Failure and stop

    /// Output failed (a candle could not be queued or delivered, or the consumer stopped): the
    /// processor stops, and nothing more goes out — not even a final checkpoint; the next owner
    /// replays from the last commit.
    mutating func outputFailed() {
        hasFailed = true
    }

    /// The processor stops: every aggregator is dropped.
    mutating func retireAll() -> [Action] {
        var actions: [Action] = []
        for partition in aggregators.keys.sorted() { retire(partition, into: &actions) }
        return actions
    }

    /// Drops a partition's aggregator (rebuilt by replay when the partition comes back).
    private mutating func retire(_ partition: Int32, into actions: inout [Action]) {
        guard let aggregator = aggregators.removeValue(forKey: partition) else { return }
        actions.append(.retired(partition: partition, counters: aggregator.counters))
        actions.append(.publishCounters(liveCounters))
    }
}
