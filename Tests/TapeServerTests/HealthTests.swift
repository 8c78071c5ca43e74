import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MarketData
import TapeServer
import XCTest

/// `/health`'s judgement as a value with an injected clock: each condition must last its
/// threshold, each reason is one sentence naming the thing, and recovery is seen at once.
final class HealthTests: XCTestCase {
    static let t0: Int64 = 1_700_000_000_000
    static let ws = "wss://ws.poloniex.com/ws/public"

    func exchange(connected: Bool, trades: Int, started: Bool = true, error: String? = nil) -> PipelineSample {
        PipelineSample(exchanges: [
            ExchangeSample(exchange: "poloniex", endpoint: Self.ws, started: started, connected: connected, trades: trades, reconnects: 2, lastError: error)
        ])
    }

    func testStandaloneServerIsDegradedOnlyAfterStaleAfterWithoutTrades() {
        var h = HealthTracker(policy: HealthPolicy(staleAfterMilliseconds: 60_000), startedAt: Self.t0)
        h.record(tradesSeen: 0, candlesSeen: 0, at: Self.t0 + 1_000)
        var r = h.evaluate(at: Self.t0 + 59_000)
        XCTAssertFalse(r.degraded, "\(r.reasons)")
        XCTAssertEqual(r.checks[.exchange]?.status, .unknown, "a standalone server cannot see the exchange")
        XCTAssertEqual(r.checks[.kafka]?.status, .unknown)
        r = h.evaluate(at: Self.t0 + 61_000)
        XCTAssertTrue(r.degraded)
        XCTAssertEqual(r.reasons, ["No trade on tape.trades for 61 s since the server started (--stale-after 60 s)."])
        XCTAssertEqual(r.checks[.trades]?.status, .failing)
        XCTAssertEqual(r.lastTradeAgeSeconds, 61)

        // Trades arrive: ok at once; then they stop again.
        h.record(tradesSeen: 10, candlesSeen: 3, at: Self.t0 + 62_000)
        r = h.evaluate(at: Self.t0 + 62_500)
        XCTAssertFalse(r.degraded, "\(r.reasons)")
        XCTAssertEqual(r.lastTradeAgeSeconds, 0.5)
        h.record(tradesSeen: 10, candlesSeen: 3, at: Self.t0 + 100_000)
        r = h.evaluate(at: Self.t0 + 125_000)
        XCTAssertEqual(r.reasons, ["No trade on tape.trades for 63 s (--stale-after 60 s)."])
    }

    func testExchangeDisconnectedForFiveSecondsNamesTheEndpointAndTheReason() {
        var h = HealthTracker(startedAt: Self.t0)
        h.record(pipeline: exchange(connected: true, trades: 5), at: Self.t0 + 1_000)
        h.record(tradesSeen: 5, candlesSeen: 1, at: Self.t0 + 1_000)
        XCTAssertFalse(h.evaluate(at: Self.t0 + 1_500).degraded)
        XCTAssertEqual(h.evaluate(at: Self.t0 + 3_000).checks[.exchange]?.detail, "poloniex websocket \(Self.ws) connected for 2 s.")

        let reason = "connect failed: connection refused (errno: 111)"
        h.record(pipeline: exchange(connected: false, trades: 9, error: reason), at: Self.t0 + 10_000)
        var r = h.evaluate(at: Self.t0 + 14_900)
        XCTAssertFalse(r.degraded, "a reconnect gets 5 s: \(r.reasons)")
        XCTAssertEqual(r.checks[.exchange]?.detail, "poloniex websocket \(Self.ws) is reconnecting.")
        r = h.evaluate(at: Self.t0 + 52_000)
        XCTAssertTrue(r.degraded)
        XCTAssertEqual(r.reasons, ["poloniex websocket \(Self.ws) disconnected for 42 s: \(reason)."])
        XCTAssertEqual(r.checks[.exchange]?.status, .failing)
        XCTAssertEqual(r.checks[.trades]?.status, .ok, "trades arrived 42 s ago, within --stale-after")

        // Past --stale-after the missing trades are a reason too, pointing at the disconnection.
        r = h.evaluate(at: Self.t0 + 72_000)
        XCTAssertEqual(
            r.reasons,
            [
                "poloniex websocket \(Self.ws) disconnected for 62 s: \(reason).",
                "No trade for 71 s (--stale-after 60 s): poloniex not connected.",
            ])

        // Back: ok at the first sample that sees it.
        h.record(pipeline: exchange(connected: true, trades: 9), at: Self.t0 + 73_000)
        h.record(tradesSeen: 6, candlesSeen: 2, at: Self.t0 + 73_000)
        r = h.evaluate(at: Self.t0 + 73_000)
        XCTAssertFalse(r.degraded, "\(r.reasons)")
    }

    func testIngestionThatCannotStartIsDegradedWithItsError() {
        var h = HealthTracker(startedAt: Self.t0)
        let error = "Cannot read the market list from https://api.poloniex.com/markets: host not found"
        h.record(pipeline: exchange(connected: false, trades: 0, started: false, error: error + ". Check the network."), at: Self.t0 + 500)
        XCTAssertFalse(h.evaluate(at: Self.t0 + 4_000).degraded)
        let r = h.evaluate(at: Self.t0 + 6_000)
        XCTAssertEqual(r.reasons, ["poloniex ingestion from \(Self.ws) has not started for 6 s: \(error)."])
    }

    func testConnectedButSilentExchangeIsStale() {
        var h = HealthTracker(policy: HealthPolicy(staleAfterMilliseconds: 30_000), startedAt: Self.t0)
        h.record(pipeline: exchange(connected: true, trades: 100), at: Self.t0 + 1_000)
        h.record(tradesSeen: 100, candlesSeen: 10, at: Self.t0 + 1_000)
        for s in 2...40 {
            h.record(pipeline: exchange(connected: true, trades: 100), at: Self.t0 + Int64(s) * 1_000)
            h.record(tradesSeen: 100, candlesSeen: 10, at: Self.t0 + Int64(s) * 1_000)
        }
        let r = h.evaluate(at: Self.t0 + 40_000)
        XCTAssertEqual(r.checks[.exchange]?.status, .ok)
        XCTAssertEqual(r.reasons, ["No trade from poloniex for 39 s while connected to \(Self.ws) (--stale-after 30 s)."])
        XCTAssertEqual(r.checks[.processor]?.status, .ok, "no trades, so no candles expected")
    }

    func testTradesFromTheExchangeThatNeverReachTheServer() {
        var h = HealthTracker(policy: HealthPolicy(staleAfterMilliseconds: 20_000), startedAt: Self.t0)
        for s in 1...25 {
            h.record(pipeline: exchange(connected: true, trades: s * 10), at: Self.t0 + Int64(s) * 1_000)
            h.record(tradesSeen: 0, candlesSeen: 0, at: Self.t0 + Int64(s) * 1_000)
        }
        let r = h.evaluate(at: Self.t0 + 25_000)
        XCTAssertEqual(r.reasons, ["poloniex trades arrive from the exchange but none reached the server on tape.trades for 25 s since the server started."])
    }

    func testKafkaThatAcknowledgesNothingWhileRecordsWait() {
        var h = HealthTracker(startedAt: Self.t0)
        func sample(_ s: Int64, enqueued: Int, acknowledged: Int) {
            var p = exchange(connected: true, trades: enqueued)
            p.producer = ProducerSample(bootstrap: "127.0.0.1:9092", enqueued: enqueued, acknowledged: acknowledged)
            h.record(pipeline: p, at: Self.t0 + s * 1_000)
            h.record(tradesSeen: Int64(acknowledged), candlesSeen: Int64(acknowledged), at: Self.t0 + s * 1_000)
        }
        sample(1, enqueued: 100, acknowledged: 100)
        sample(2, enqueued: 150, acknowledged: 150)
        // Kafka goes away: records keep being queued, none acknowledged.
        for s in Int64(3)...12 { sample(s, enqueued: 150 + Int(s) * 40, acknowledged: 150) }
        XCTAssertFalse(h.evaluate(at: Self.t0 + 12_000).degraded, "9 s without an acknowledgement")
        sample(13, enqueued: 700, acknowledged: 150)
        let r = h.evaluate(at: Self.t0 + 13_000)
        XCTAssertEqual(r.reasons, ["Kafka at 127.0.0.1:9092 has acknowledged none of the ingester's records for 10 s (550 waiting in memory)."])
        XCTAssertEqual(r.checks[.kafka]?.status, .failing)
        sample(14, enqueued: 720, acknowledged: 300)
        XCTAssertFalse(h.evaluate(at: Self.t0 + 14_000).degraded)
        // A quiet exchange queues nothing: no acknowledgement is expected then.
        for s in Int64(15)...40 { sample(s, enqueued: 720, acknowledged: 720) }
        XCTAssertEqual(h.evaluate(at: Self.t0 + 40_000).checks[.kafka]?.status, .ok)
    }

    func testServerReadersThatKafkaDoesNotAnswer() {
        var h = HealthTracker(startedAt: Self.t0)
        let error =
            "Cannot read metadata: no Kafka broker answered at 127.0.0.1:9092 (Connect to ipv4#127.0.0.1:9092 failed: Connection refused). Start one with `tape broker`."
        let ok = FeedSample(topic: "tape.trades", bootstrap: "127.0.0.1:9092", lastContact: Self.t0 + 1_000, lastError: nil)
        h.record(tradesSeen: 1, candlesSeen: 1, feeds: [ok], at: Self.t0 + 1_000)
        XCTAssertEqual(h.evaluate(at: Self.t0 + 1_000).checks[.kafka]?.status, .ok)
        var failing = ok
        failing.lastError = error
        h.record(tradesSeen: 1, candlesSeen: 1, feeds: [failing], at: Self.t0 + 8_000)
        XCTAssertFalse(h.evaluate(at: Self.t0 + 8_000).degraded, "7 s without an answer")
        let r = h.evaluate(at: Self.t0 + 12_000)
        XCTAssertEqual(
            r.reasons,
            [
                "The server's reader of tape.trades has had no answer from Kafka at 127.0.0.1:9092 for 11 s: Cannot read metadata: no Kafka broker answered at 127.0.0.1:9092 (Connect to ipv4#127.0.0.1:9092 failed: Connection refused)."
            ])
        // Readers of one cluster: one sentence, the most recent answer counts.
        var candles = failing
        candles.topic = "tape.candles"
        candles.lastContact = Self.t0 + 1_500
        h.record(tradesSeen: 1, candlesSeen: 1, feeds: [failing, candles], at: Self.t0 + 12_000)
        XCTAssertEqual(
            h.evaluate(at: Self.t0 + 12_000).reasons.map { $0.prefix(86) },
            ["The server's readers of tape.trades, tape.candles have had no answer from Kafka at 127"])
        XCTAssertTrue(h.evaluate(at: Self.t0 + 12_000).reasons.first?.contains(":9092 for 10 s: Cannot read metadata") ?? false)
        // A feed that stopped is degraded at once.
        h.record(tradesSeen: 1, candlesSeen: 1, feeds: [ok], feedErrors: ["candles": "feed ended"], at: Self.t0 + 12_000)
        XCTAssertEqual(h.evaluate(at: Self.t0 + 12_000).reasons, ["The server's candles feed stopped: feed ended."])
    }

    func testCandlesThatStopWhileTradesFlowMeanTheProcessorIsStuck() {
        var h = HealthTracker(policy: HealthPolicy(staleAfterMilliseconds: 30_000), startedAt: Self.t0)
        for s in 1...70 {
            h.record(tradesSeen: Int64(s * 10), candlesSeen: Int64(min(s, 20)), at: Self.t0 + Int64(s) * 1_000)
        }
        var r = h.evaluate(at: Self.t0 + 49_500)
        XCTAssertFalse(r.degraded, "candles stopped 29.5 s ago: \(r.reasons)")
        r = h.evaluate(at: Self.t0 + 70_000)
        XCTAssertEqual(
            r.reasons,
            ["No candle update on tape.candles for 50 s while trades keep arriving (the last 0 s ago): candle processing is stopped or stuck."])
        XCTAssertEqual(r.checks[.processor]?.status, .failing)
        h.record(tradesSeen: 710, candlesSeen: 21, at: Self.t0 + 71_000)
        XCTAssertFalse(h.evaluate(at: Self.t0 + 71_000).degraded)
    }

    func testSentenceKeepsTheFirstSentenceOfAnError() {
        XCTAssertEqual(HealthTracker.sentence("Cannot x (a. b). Start one."), "Cannot x (a. b)")
        XCTAssertEqual(HealthTracker.sentence("closed by the server"), "closed by the server")
        XCTAssertEqual(HealthTracker.sentence("ends with a period."), "ends with a period")
    }

    /// The route: 503 with the reasons while degraded, 200 when ok; HEAD too; no token needed.
    func testHealthRouteAnswers503WhileDegraded() async throws {
        var configuration = TapeServerConfiguration(host: "127.0.0.1", port: 0, token: "t")
        configuration.health = HealthPolicy(staleAfterMilliseconds: 300)
        let state = TapeServerState(configuration: configuration)
        let (trades, _) = PushFeed<Trade>.make()
        let (candles, _) = PushFeed<Candle>.make()
        var logger = Logger(label: "test.health")
        logger.logLevel = .warning
        let app = buildTapeServer(
            configuration: configuration, trades: trades, candles: candles, history: InMemoryCandleHistory(), state: state, logger: logger)
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                XCTAssertEqual(response.status, .ok, response.body.text)
                XCTAssertEqual(response.body.json["status"] as? String, "ok")
                XCTAssertEqual(response.body.json["reasons"] as? [String], [])
            }
            try await Task.sleep(for: .milliseconds(400))
            try await client.execute(uri: "/health", method: .get) { response in
                XCTAssertEqual(response.status, .serviceUnavailable)
                let body = response.body.json
                XCTAssertEqual(body["status"] as? String, "degraded")
                let reasons = body["reasons"] as? [String] ?? []
                XCTAssertEqual(reasons.count, 1, "\(reasons)")
                XCTAssertTrue(reasons.first?.hasPrefix("No trade on tape.trades for") ?? false, "\(reasons)")
                let checks = body["checks"] as? [String: [String: Any]] ?? [:]
                XCTAssertEqual(Set(checks.keys), ["exchange", "kafka", "trades", "processor"])
                XCTAssertEqual(checks["trades"]?["status"] as? String, "failing")
                XCTAssertEqual(checks["exchange"]?["status"] as? String, "unknown")
                XCTAssertEqual(body["staleAfterSeconds"] as? Double, 0.3)
                XCTAssertNotNil(body["tradesSeen"], "the older members stay")
            }
            try await client.execute(uri: "/health", method: .head) { response in
                XCTAssertEqual(response.status, .serviceUnavailable)
            }
            state.accept(Fixture.trade(Fixture.btc, id: 1, price: "1", time: Fixture.t0))
            try await client.execute(uri: "/health", method: .get) { response in
                XCTAssertEqual(response.status, .ok, response.body.text)
            }
        }
    }
}
