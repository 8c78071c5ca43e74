import Ingest
import KafkaClient
import MarketData
import Processing
import Synchronization
import TapeMetrics
import TapeServer
import XCTest

@testable import TapeRuntime

/// The stages' own counters turned into Prometheus series (what `tape up` reports once a second).
/// Label values are this test's own: the metrics system is global to the test process.
final class StageMetricsTests: XCTestCase {
    func scrape() -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in String(decoding: MetricsExporter.scrape(), as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            samples[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        return samples
    }

    func testIngestDeadLettersAndBackfillBecomeCountersOfTheirVenue() {
        MetricsExporter.bootstrap()
        let venue = #"exchange="unit-continuity""#
        var counters = ContinuityCounters(exchange: "unit-continuity")
        var s = scrape()
        // The venue's series exist at 0 before anything happened, the server's gap series included.
        for series in [
            "tape_ingest_dead_letters_total{\(venue),reason=\"unparseable-frame\"}", "tape_ingest_dead_letters_total{\(venue),reason=\"backfill-failed\"}",
            "tape_backfill_requests_total{\(venue)}", "tape_backfill_trades_total{\(venue)}", "tape_backfill_failures_total{\(venue)}",
            "tape_gaps_total{\(venue),channel=\"trades\"}", "tape_gaps_total{\(venue),channel=\"book\"}",
            "tape_gaps_repaired_total{\(venue),channel=\"book\"}", "tape_gaps_open{\(venue),channel=\"trades\"}",
        ] {
            XCTAssertEqual(s[series], 0, series)
        }
        let metrics = IngestMetrics()
        metrics.deadLetteredFrames.add(3, ordering: .relaxed)
        metrics.deadLetteredBackfillFailures.add(1, ordering: .relaxed)
        metrics.connection.restTradeRequests.add(7, ordering: .relaxed)
        metrics.connection.backfilledTrades.add(5, ordering: .relaxed)
        metrics.connection.repairedTrades.add(2, ordering: .relaxed)
        metrics.connection.backfillFailures.add(1, ordering: .relaxed)
        counters.record(metrics)
        counters.record(metrics)  // the same totals again add nothing
        s = scrape()
        XCTAssertEqual(s["tape_ingest_dead_letters_total{\(venue),reason=\"unparseable-frame\"}"], 3)
        XCTAssertEqual(s["tape_ingest_dead_letters_total{\(venue),reason=\"backfill-failed\"}"], 1)
        XCTAssertEqual(s["tape_backfill_requests_total{\(venue)}"], 7)
        XCTAssertEqual(s["tape_backfill_trades_total{\(venue)}"], 7, "backfilled and repaired trades")
        XCTAssertEqual(s["tape_backfill_failures_total{\(venue)}"], 1)
        metrics.deadLetteredFrames.add(2, ordering: .relaxed)
        counters.record(metrics)
        XCTAssertEqual(scrape()["tape_ingest_dead_letters_total{\(venue),reason=\"unparseable-frame\"}"], 5)
    }

    func testProcessorCandlesPerIntervalAndLag() throws {
        MetricsExporter.bootstrap()
        var configuration = CandleProcessorConfiguration(kafka: KafkaConfiguration(bootstrapServers: "127.0.0.1:1"))
        let seven = try XCTUnwrap(CandleInterval("7s"))
        let thirteen = try XCTUnwrap(CandleInterval("13m"))
        configuration.aggregation = CandleAggregatorConfiguration(intervals: [seven, thirteen])
        configuration.group = "unit-processor"
        configuration.inputTopic = "unit.trades"
        var counters = ProcessorCounters(configuration)
        var s = scrape()
        XCTAssertEqual(s[#"tape_candles_emitted_total{interval="7s"}"#], 0, "configured intervals show from the start")
        XCTAssertEqual(s[#"tape_candles_emitted_total{interval="13m"}"#], 0)
        XCTAssertEqual(s[#"tape_consumer_fetch_refills_total{group="unit-processor"}"#], 0, "shown from the start")
        counters.record(candlesByInterval: [seven: 4, thirteen: 1])
        counters.fetchRefills.record(total: 3)
        counters.fetchRefills.record(total: 5)
        counters.record(candlesByInterval: [seven: 6, thirteen: 1])
        counters.lag.record(42)
        s = scrape()
        XCTAssertEqual(s[#"tape_candles_emitted_total{interval="7s"}"#], 6)
        XCTAssertEqual(s[#"tape_candles_emitted_total{interval="13m"}"#], 1)
        XCTAssertEqual(s[#"tape_consumer_lag_messages{group="unit-processor",topic="unit.trades"}"#], 42)
        XCTAssertEqual(s[#"tape_consumer_fetch_refills_total{group="unit-processor"}"#], 5, "the running total, not the sum of totals")
    }
}
