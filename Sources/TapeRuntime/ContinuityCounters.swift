import Ingest
import MarketData
import Metrics
import TapeMetrics

/// One venue's dead letters and REST backfill as swift-metrics counters (part of `IngestCounters`):
/// `tape_ingest_dead_letters_total{exchange,reason}`, `tape_backfill_requests_total`,
/// `tape_backfill_trades_total`, `tape_backfill_failures_total`. It also makes the server's gap
/// series of the venue (`tape_gaps_total`, `tape_gaps_repaired_total`, `tape_gaps_open`, both
/// channels) so they show 0 from the start instead of appearing with the first gap.
struct ContinuityCounters: Sendable {
    var deadLetteredFrames, deadLetteredBackfills, backfillRequests, backfillTrades, backfillFailures: DeltaCounter

    init(exchange: String) {
        deadLetteredFrames = DeltaCounter(TapeMetrics.ingestDeadLetters(exchange: exchange, reason: "unparseable-frame"))
        deadLetteredBackfills = DeltaCounter(TapeMetrics.ingestDeadLetters(exchange: exchange, reason: "backfill-failed"))
        backfillRequests = DeltaCounter(TapeMetrics.backfillRequests(exchange: exchange))
        backfillTrades = DeltaCounter(TapeMetrics.backfillTrades(exchange: exchange))
        backfillFailures = DeltaCounter(TapeMetrics.backfillFailures(exchange: exchange))
        for channel in Gap.Channel.allCases {
            _ = TapeMetrics.gapsFound(exchange: exchange, channel: channel.rawValue)
            _ = TapeMetrics.gapsRepaired(exchange: exchange, channel: channel.rawValue)
            _ = TapeMetrics.gapsOpen(exchange: exchange, channel: channel.rawValue)
        }
    }

    mutating func record(_ metrics: IngestMetrics) {
        let c = metrics.connection.snapshot
        deadLetteredFrames.record(total: metrics.deadLetteredFrames.load(ordering: .relaxed))
        deadLetteredBackfills.record(total: metrics.deadLetteredBackfillFailures.load(ordering: .relaxed))
        backfillRequests.record(total: c.restTradeRequests)
        let (recovered, overflow) = c.backfilledTrades.addingReportingOverflow(c.repairedTrades)
        backfillTrades.record(total: overflow ? Int.max : recovered)
        backfillFailures.record(total: c.backfillFailures)
    }
}
