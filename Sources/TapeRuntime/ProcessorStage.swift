import Logging
import MarketData
import Metrics
import Processing
import ServiceLifecycle
import Synchronization
import TapeMetrics

/// Candle processing as a service: consumes `tape.trades` until graceful shutdown, then emits and
/// commits what it holds and leaves its group. Ending on its own is an error (`ProcessorStopped`).
/// Reports `tape_candles_emitted_total{interval}`, `tape_process_dead_letters_total{reason}`, its
/// input lag (`tape_consumer_lag_messages{group,topic}`) and its input consumer's fetch restarts
/// (`tape_consumer_fetch_refills_total{group}`).
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
        let configuration = processor.configuration
        try await withMetricsReporter(ProcessorCounters(configuration)) { [processor] c in
            let now = processor.counters
            c.record(candlesByInterval: now.candlesEmittedByInterval)
            if let lag = processor.lag { c.lag.record(lag) }
            c.fetchRefills.record(total: Int64(processor.fetchRefills))
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
    /// `tape_candles_emitted_total{interval}`, made for the configured intervals at start (so each
    /// series shows 0 before its first candle).
    var candles: [CandleInterval: DeltaCounter]
    /// `tape_consumer_lag_messages{group,topic}` of the processor's group and input topic.
    let lag: Gauge
    /// `tape_consumer_fetch_refills_total{group}` of the processor's input consumer.
    var fetchRefills: DeltaCounter

    init(_ configuration: CandleProcessorConfiguration) {
        candles = Dictionary(
            uniqueKeysWithValues: configuration.aggregation.intervals.map { ($0, DeltaCounter(TapeMetrics.candlesEmitted(interval: $0.description))) })
        lag = TapeMetrics.consumerLag(group: configuration.group, topic: configuration.inputTopic)
        fetchRefills = DeltaCounter(TapeMetrics.consumerFetchRefills(group: configuration.group))
    }

    mutating func record(candlesByInterval totals: [CandleInterval: Int64]) {
        for (interval, total) in totals {
            candles[interval, default: DeltaCounter(TapeMetrics.candlesEmitted(interval: interval.description))].record(total: total)
        }
    }

    /// In the order not-a-trade, time-out-of-range, overflow, deadletter-failed.
    var deadLetters = ["not-a-trade", "time-out-of-range", "overflow", "deadletter-failed"].map {
        DeltaCounter(TapeMetrics.processDeadLetters(reason: $0))
    }
}
