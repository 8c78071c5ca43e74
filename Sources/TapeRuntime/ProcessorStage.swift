import Logging
import Processing
import ServiceLifecycle
import Synchronization
import TapeMetrics

/// Candle processing as a service: consumes `tape.trades` until graceful shutdown, then emits and
/// commits what it holds and leaves its group. Ending on its own is an error (`ProcessorStopped`).
/// Reports `tape_candles_emitted_total` and `tape_process_dead_letters_total{reason}`.
public final class ProcessorStage: Service, Sendable {
    public let processor: CandleProcessor
    /// The static-membership instance id, claimed until the stage stops (a pipeline built again
    /// on the same data directory then rejoins as the same member).
    private let instance: Mutex<ProcessorInstance?>
    private let stopped: StageLog

    init(processor: CandleProcessor, instance: ProcessorInstance?, stopped: StageLog) {
        self.processor = processor
        self.instance = Mutex(instance)
        self.stopped = stopped
    }

    public func run() async throws {
        defer {
            instance.withLock { $0 = nil }
            stopped.append("processor")
        }
        try await withMetricsReporter(ProcessorCounters()) { [processor] c in
            let now = processor.counters
            c.candles.record(total: now.candlesEmitted)
            let rejected = [now.unparseable, now.rejectedTimes, now.rejectedOverflows, now.deadLetterFailures]
            for i in c.deadLetters.indices { c.deadLetters[i].record(total: rejected[i]) }
        } work: {
            do {
                try await cancelWhenGracefulShutdown { try await self.processor.run() }
            } catch is CancellationError {
                return
            }
            if !Task.isShuttingDownGracefully && !Task.isCancelled { throw StageStopped(stage: "processing") }
        }
    }
}

/// A stage that should run until shutdown ended on its own.
public struct StageStopped: Error, CustomStringConvertible, Sendable {
    public let stage: String
    public var description: String { "\(stage) stopped" }
}

struct ProcessorCounters: Sendable {
    var candles = DeltaCounter(TapeMetrics.candlesEmitted(interval: "all"))
    /// In the order not-a-trade, time-out-of-range, overflow, deadletter-failed.
    var deadLetters = ["not-a-trade", "time-out-of-range", "overflow", "deadletter-failed"].map {
        DeltaCounter(TapeMetrics.processDeadLetters(reason: $0))
    }
}
