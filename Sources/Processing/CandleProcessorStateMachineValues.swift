import Logging
import MarketData

// The values the events of `CandleProcessorStateMachine` take and the actions they return.
extension CandleProcessorStateMachine {
    /// Where a partition's replay starts (`replayFrom`) and from which offset its changes are
    /// emitted again (`emitFrom`).
    struct RecoveryPoint: Sendable, Hashable {
        var replayFrom: Int64
        var emitFrom: Int64
    }

    /// What the driver read for one partition before it is set up: the assignment epoch (read
    /// before the offsets), the committed offsets of both groups (negative: none) and the first
    /// offset still in the log.
    struct CommittedOffsets: Sendable, Hashable {
        var epoch: UInt64
        var emittedThrough: Int64
        var replayFrom: Int64
        var firstInLog: Int64
    }

    enum PartitionState: Sendable, Hashable {
        case awaitingRecovery
        case seeking(epoch: UInt64, RecoveryPoint)
        case running(epoch: UInt64)
    }

    struct PartitionOffset: Sendable, Hashable {
        var partition: Int32
        var offset: Int64
    }

    /// One input record as the state machine sees it: its offset and its value (nil: none).
    struct InputRecord {
        var offset: Int64
        var value: UnsafeBufferPointer<UInt8>?
    }

    /// A rejected record to write to the dead-letter topic.
    struct DeadLetter: Sendable, Hashable {
        var partition: Int32
        var epoch: UInt64
        var offset: Int64
        var rejection: CandleAggregator.Rejection
        var value: [UInt8]
    }

    /// One checkpoint's commit: after every candle produced so far is acknowledged, and only for
    /// partitions still owned under `epochs`, write the candle rows, commit `emittedThrough` (the
    /// processor's group) and then `replayFrom` (the replay group).
    struct Commit: Sendable, Hashable {
        var emittedThrough: [PartitionOffset]
        var replayFrom: [PartitionOffset]
        /// The epoch of every running partition.
        var epochs: [Int32: UInt64]
        var final: Bool
    }

    enum Action: Sendable, Hashable {
        /// Move the consumer to these offsets; on failure call `seekFailed`.
        case seek([PartitionOffset])
        /// Queue candles for the candles topic (and, once queued, for the candle store).
        case produce(partition: Int32, epoch: UInt64, candles: [Candle])
        case deadLetter(DeadLetter)
        case commit(Commit)
        /// The partition's aggregator was dropped; add its counters to the processor's totals and
        /// forget its candles not yet stored.
        case retired(partition: Int32, counters: ProcessingCounters)
        /// The counters of the aggregators held now.
        case publishCounters(ProcessingCounters)
        /// A line for the operator.
        case announce(String)
        case log(Logger.Level, String, [String: String])
    }
}
