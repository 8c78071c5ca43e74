import MarketData

/// Settings of the candle state machine (`CandleAggregator`). All times are milliseconds.
public struct CandleAggregatorConfiguration: Sendable, Hashable {
    /// Window lengths to compute, each 1 s ... 1 d. Default 1m, 5m, 1h.
    public var intervals: [CandleInterval] = [.oneMinute, .fiveMinutes, .oneHour]
    /// How far behind the highest trade time seen the watermark trails. Default 5 000 ms.
    public var graceMilliseconds: Int64 = 5_000
    /// While a window is open, at most one update per key per this period. Default 1 000 ms.
    public var emitIntervalMilliseconds: Int64 = 1_000
    /// How long after the watermark passes a window's end the window (and the trade ids needed
    /// to deduplicate it) is kept, so that a late trade can still correct it. A trade for a window
    /// older than this is dropped and counted in `ProcessingCounters.droppedTooLate`.
    /// Default 3 600 000 ms (1 h).
    public var allowedLatenessMilliseconds: Int64 = 3_600_000

    public init(
        intervals: [CandleInterval] = [.oneMinute, .fiveMinutes, .oneHour],
        graceMilliseconds: Int64 = 5_000,
        emitIntervalMilliseconds: Int64 = 1_000,
        allowedLatenessMilliseconds: Int64 = 3_600_000
    ) {
        // Sorted and unique, so that window identity does not depend on how flags were written.
        self.intervals = Array(Set(intervals)).sorted()
        self.graceMilliseconds = graceMilliseconds
        self.emitIntervalMilliseconds = emitIntervalMilliseconds
        self.allowedLatenessMilliseconds = allowedLatenessMilliseconds
    }
}

/// Counts of what happened to trades and records in a processor (exported as metrics).
public struct ProcessingCounters: Sendable, Hashable {
    /// Trades applied to their windows (excluding duplicates).
    public var trades: Int64 = 0
    /// Trades whose (exchange, symbol, tradeId) was seen before: ignored.
    public var duplicates: Int64 = 0
    /// Trades that arrived after their window (in at least one interval) was final: the window is
    /// re-emitted, corrected, with `revision` + 1.
    public var lateTrades: Int64 = 0
    /// Trades older than the allowed lateness for at least one interval: not applied there.
    public var droppedTooLate: Int64 = 0
    /// Records that were not a valid trade: rejected (dead-lettered by the processor).
    public var unparseable: Int64 = 0
    /// Trades whose time is outside `Trade.validTimes`: rejected (dead-lettered by the processor).
    public var rejectedTimes: Int64 = 0
    /// Trades whose volume sums would have overflowed 256 bits in one of their windows: rejected
    /// before any window changed (dead-lettered by the processor).
    public var rejectedOverflows: Int64 = 0
    /// Rejected records written to the dead-letter topic (processor only).
    public var deadLettered: Int64 = 0
    /// Rejected records that could not be queued for the dead-letter topic, or whose delivery
    /// failed: logged and counted, processing goes on (processor only).
    public var deadLetterFailures: Int64 = 0
    /// Candle updates handed out for emission.
    public var candlesEmitted: Int64 = 0
    /// `candlesEmitted` by interval.
    public var candlesEmittedByInterval: [CandleInterval: Int64] = [:]

    public init() {}

    public static func + (a: ProcessingCounters, b: ProcessingCounters) -> ProcessingCounters {
        var c = a
        c.trades += b.trades
        c.duplicates += b.duplicates
        c.lateTrades += b.lateTrades
        c.droppedTooLate += b.droppedTooLate
        c.unparseable += b.unparseable
        c.rejectedTimes += b.rejectedTimes
        c.rejectedOverflows += b.rejectedOverflows
        c.deadLettered += b.deadLettered
        c.deadLetterFailures += b.deadLetterFailures
        c.candlesEmitted += b.candlesEmitted
        c.candlesEmittedByInterval.merge(b.candlesEmittedByInterval, uniquingKeysWith: +)
        return c
    }
}
