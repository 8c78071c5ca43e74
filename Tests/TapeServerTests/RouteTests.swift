import Foundation
import Hummingbird
import HummingbirdTesting
import MarketData
import NIOCore
import TapeServer
import XCTest

/// REST routes over in-memory sources (Hummingbird's router test client, no sockets).
final class RouteTests: XCTestCase {
    func testMarketsListsHistoryAndTradeMarketsWithLastPrice() async throws {
        let f = Fixture()
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/api/markets", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.headers[.contentType], "application/json; charset=utf-8")
                let markets = response.body.json["markets"] as? [[String: Any]] ?? []
                XCTAssertEqual(markets.map { $0["symbol"] as? String }, ["poloniex:BTC-USDT", "poloniex:ETH-USDT"])
                XCTAssertEqual(markets.first?["lastPrice"] as? String, "21614.54")
                XCTAssertEqual(markets.first?["base"] as? String, "BTC")
                XCTAssertEqual(markets.first?["quote"] as? String, "USDT")
            }
        }
    }

    func testCandlesRangeLimitAndExactDecimals() async throws {
        let f = Fixture()
        let expected = try await f.history.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 1000)
        XCTAssertEqual(expected.count, 40)
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&interval=1m", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                let body = response.body.json
                XCTAssertEqual(body["symbol"] as? String, "poloniex:BTC-USDT")
                XCTAssertEqual(body["interval"] as? String, "1m")
                let candles = body["candles"] as? [[String: Any]] ?? []
                XCTAssertEqual(candles.count, 40)
                // the body carries each candle exactly as the candle JSON of docs/contracts.md
                let first = try Candle(json: JSONSerialization.data(withJSONObject: candles[0]).map { $0 })
                XCTAssertEqual(first, expected[0])
                XCTAssertTrue(response.body.text.contains(expected[0].jsonString))
            }
            // from inclusive, to exclusive, by window start
            let from = Fixture.t0 + 10 * 60_000
            let to = Fixture.t0 + 15 * 60_000
            try await client.execute(uri: "/api/candles?symbol=poloniex%3ABTC-USDT&interval=1m&from=\(from)&to=\(to)", method: .get) { response in
                let starts = (response.body.json["candles"] as? [[String: Any]] ?? []).map { ($0["start"] as? NSNumber)?.int64Value }
                XCTAssertEqual(starts, (10..<15).map { Fixture.t0 + Int64($0) * 60_000 })
            }
            // limit keeps the most recent
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&limit=3", method: .get) { response in
                let starts = (response.body.json["candles"] as? [[String: Any]] ?? []).map { ($0["start"] as? NSNumber)?.int64Value }
                XCTAssertEqual(starts, (37..<40).map { Fixture.t0 + Int64($0) * 60_000 })
            }
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&interval=5m", method: .get) { response in
                XCTAssertEqual((response.body.json["candles"] as? [Any])?.count, 6)
            }
            // a known market without candles in the range is an empty list, not an error
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&interval=1h&from=0&to=1000", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual((response.body.json["candles"] as? [Any])?.count, 0)
            }
            // a market the server has nothing of is refused, naming those it has (a typo is not a quiet market)
            try await client.execute(uri: "/api/candles?symbol=binance:DOGE-USDT&interval=1h", method: .get) { response in
                XCTAssertEqual(response.status, .notFound)
                let message = (response.body.json["error"] as? [String: Any])?["message"] as? String ?? ""
                XCTAssertTrue(message.contains("unknown market binance:DOGE-USDT") && message.contains("poloniex:BTC-USDT"), message)
            }
            try await client.execute(uri: "/api/trades?symbol=poloniex:FOO-BAR", method: .get) { response in
                XCTAssertEqual(response.status, .notFound)
            }
        }
    }

    func testNewerRevisionReplacesOlderAndStaleOneIsIgnored() async throws {
        let history = InMemoryCandleHistory()
        let c1 = Fixture.candle(Fixture.btc, .oneMinute, index: 0, base: 100, revision: 1, isFinal: false)
        var c3 = Fixture.candle(Fixture.btc, .oneMinute, index: 0, base: 100, revision: 3, isFinal: true)
        c3.close = try ExactDecimal("123.45")
        history.record(c1)
        history.record(c3)
        history.record(c1)  // stale: must not replace revision 3
        let got = try await history.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 10)
        XCTAssertEqual(got, [c3])
    }

    func testTradesNewestFirstPerMarketAndAcrossMarkets() async throws {
        let f = Fixture()
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/api/trades?symbol=poloniex:BTC-USDT&limit=3", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                let trades = response.body.json["trades"] as? [[String: Any]] ?? []
                XCTAssertEqual(trades.map { $0["tradeId"] as? String }, ["4", "3", "2"])
                XCTAssertEqual(trades.first?["quoteQuantity"] as? String, "248.3510646")  // 21614.54 × 0.01149, exact
            }
            try await client.execute(uri: "/api/trades", method: .get) { response in
                let ids = (response.body.json["trades"] as? [[String: Any]] ?? []).map { $0["tradeId"] as? String }
                XCTAssertEqual(ids, ["4", "3", "100", "2", "1", "0"])
                XCTAssertTrue(response.body.json["symbol"] is NSNull)
            }
        }
    }

    func testTradeRingIsBounded() {
        let ring = RecentTrades(capacityPerMarket: 3)
        for i in 0..<10 { ring.append(Fixture.trade(Fixture.btc, id: i, price: "1", time: Int64(i))) }
        XCTAssertEqual(ring.newest(market: Fixture.btc, limit: 100).map(\.tradeId), ["9", "8", "7"])
    }

    func testBadParametersAre400NamingTheParameter() async throws {
        let f = Fixture()
        let cases: [(String, String, String)] = [
            ("/api/candles", "symbol", "required"),
            ("/api/candles?symbol=BTC-USDT", "symbol", "exchange:SYMBOL"),
            ("/api/candles?symbol=poloniex:BTC-USDT&interval=7x", "interval", "7x"),
            ("/api/candles?symbol=poloniex:BTC-USDT&interval=2d", "interval", "1s to 1d"),
            ("/api/candles?symbol=poloniex:BTC-USDT&from=yesterday", "from", "milliseconds"),
            ("/api/candles?symbol=poloniex:BTC-USDT&from=-5", "from", "milliseconds"),
            ("/api/candles?symbol=poloniex:BTC-USDT&from=2000&to=1000", "to", "greater than from"),
            ("/api/candles?symbol=poloniex:BTC-USDT&limit=0", "limit", "1 to 5000"),
            ("/api/candles?symbol=poloniex:BTC-USDT&limit=99999", "limit", "1 to 5000"),
            ("/api/candles?symbol=poloniex:BTC-USDT&symbol=poloniex:ETH-USDT", "symbol", "once"),
            ("/api/candles?symbol=poloniex:BTC-USDT&intervall=1m", "intervall", "unknown parameter"),
            ("/api/trades?limit=abc", "limit", "1 to 1000"),
            ("/api/trades?limit=1001", "limit", "1 to 1000"),
            ("/api/trades?symbol=", "symbol", "empty"),
            ("/api/trades?symbol=poloniex:BTC%20USDT", "symbol", "exchange:SYMBOL"),
            ("/api/markets?x=1", "x", "takes none"),
            ("/api/stats?verbose=1", "verbose", "takes none"),
        ]
        try await f.app.test(.router) { client in
            for (uri, parameter, reason) in cases {
                try await client.execute(uri: uri, method: .get) { response in
                    XCTAssertEqual(response.status, .badRequest, uri)
                    let error = response.body.json["error"] as? [String: Any] ?? [:]
                    XCTAssertEqual(error["code"] as? String, "bad_parameter", uri)
                    XCTAssertEqual(error["parameter"] as? String, parameter, uri)
                    let message = error["message"] as? String ?? ""
                    XCTAssertTrue(message.contains(reason), "\(uri): \(message)")
                }
            }
            for method in [HTTPRequest.Method.post, .put, .delete, .init("TRACE")!] {
                try await client.execute(uri: "/api/candles", method: method) { response in
                    XCTAssertEqual(response.status, .methodNotAllowed, "\(method)")
                    XCTAssertEqual(response.headers[.allow], "GET, HEAD")
                }
            }
            try await client.execute(uri: "/api/markets", method: .head) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.headers[.contentType], "application/json; charset=utf-8")
                XCTAssertEqual(response.body.readableBytes, 0)
            }
            try await client.execute(uri: "/api/candles?interval=7x&symbol=poloniex:BTC-USDT", method: .head) { response in
                XCTAssertEqual(response.status, .badRequest)
            }
            try await client.execute(uri: "/api/nothing", method: .get) { response in
                XCTAssertEqual(response.status, .notFound)
                XCTAssertEqual((response.body.json["error"] as? [String: Any])?["code"] as? String, "not_found")
            }
        }
    }

    func testStatsFromInjectedSourceAndHealth() async throws {
        let stats = StaticStats(
            PipelineStats(
                exchanges: [
                    ExchangeStats(
                        exchange: "poloniex", connected: true, framesPerSecond: 12.5, tradesPerSecond: 40, tradesTotal: 1234,
                        parseErrors: 2, reconnects: 1, lagMilliseconds: 35.25, lastTradeTime: Fixture.t0)
                ], consumerLag: [ConsumerLag(group: "tape-serve", topic: "tape.trades", messages: 7)]))
        let f = Fixture(stats: stats)
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/api/stats", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                let body = response.body.json
                let e = (body["exchanges"] as? [[String: Any]])?.first ?? [:]
                XCTAssertEqual(e["exchange"] as? String, "poloniex")
                XCTAssertEqual(e["framesPerSecond"] as? Double, 12.5)
                XCTAssertEqual(e["reconnects"] as? Int, 1)
                XCTAssertEqual(e["lagMilliseconds"] as? Double, 35.25)
                XCTAssertEqual(e["connected"] as? Bool, true)
                XCTAssertEqual(((body["consumerLag"] as? [[String: Any]])?.first)?["messages"] as? Int, 7)
                XCTAssertEqual((body["server"] as? [String: Any])?["tradesSeen"] as? Int, 6)
            }
            try await client.execute(uri: "/health", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.body.json["status"] as? String, "ok")
            }
        }
    }

    func testFeedStatsRatesAndLagFromAnInjectedClock() async {
        let clock = ManualMillis(1_000_000)
        let stats = FeedStats(window: 5) { clock.now }
        for i in 0..<50 {  // 10 trades a second for 5 s, each 40 ms after its trade time
            clock.now = 1_000_000 + Int64(i) * 100
            stats.record(Fixture.trade(Fixture.btc, id: i, price: "1", time: clock.now - 40))
        }
        clock.now = 1_005_000
        let snapshot = await stats.stats()
        XCTAssertEqual(snapshot.exchanges.count, 1)
        XCTAssertEqual(snapshot.exchanges[0].tradesPerSecond, 10)
        XCTAssertEqual(snapshot.exchanges[0].tradesTotal, 50)
        XCTAssertEqual(snapshot.exchanges[0].lagMilliseconds, 40)
        XCTAssertNil(snapshot.exchanges[0].reconnects)
    }

    func testMergedStatsTakesEachFieldFromTheFirstSourceThatKnowsIt() async {
        let ingest = StaticStats(
            PipelineStats(
                exchanges: [ExchangeStats(exchange: "poloniex", connected: true, framesPerSecond: 20, tradesPerSecond: 55, tradesTotal: 900, reconnects: 2)],
                consumerLag: []))
        let feed = StaticStats(
            PipelineStats(
                exchanges: [
                    ExchangeStats(exchange: "poloniex", tradesPerSecond: 50, tradesTotal: 880, lagMilliseconds: 31, lastTradeTime: 7),
                    ExchangeStats(exchange: "binance", tradesPerSecond: 3, tradesTotal: 30),
                ], consumerLag: [ConsumerLag(group: "tape-serve", topic: "tape.trades", messages: 4)]))
        let merged = await MergedStats([ingest, feed]).stats()
        XCTAssertEqual(merged.exchanges.map(\.exchange), ["binance", "poloniex"])
        let p = merged.exchanges[1]
        XCTAssertEqual(p.tradesPerSecond, 55)
        XCTAssertEqual(p.framesPerSecond, 20)
        XCTAssertEqual(p.reconnects, 2)
        XCTAssertEqual(p.lagMilliseconds, 31)
        XCTAssertEqual(p.lastTradeTime, 7)
        XCTAssertEqual(merged.consumerLag.map(\.messages), [4])
    }

    /// `tape_trades_in_total{exchange="probe"}` in a scrape (0 when absent).
    static func probeTradesIn(_ text: String) -> Double {
        let series = "tape_trades_in_total{exchange=\"\(TapeMetricsProbe.exchange)\"} "
        return text.split(separator: "\n").first { $0.hasPrefix(series) }.flatMap { Double($0.dropFirst(series.count)) } ?? 0
    }

    func testMetricsIsPrometheusTextWithTapeNames() async throws {
        let f = Fixture()
        // Other tests in this process touch the same series: count what this one adds.
        let before = try await f.app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { Self.probeTradesIn($0.body.text) }
        }
        TapeMetricsProbe.touchAll()
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertTrue(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") ?? false)
                let text = response.body.text
                try PrometheusText.validate(text)
                for name in [
                    "tape_frames_in_total", "tape_trades_in_total", "tape_parse_errors_total", "tape_reconnects_total",
                    "tape_produce_latency_seconds_bucket", "tape_consumer_lag_messages", "tape_broker_bytes_in_total",
                    "tape_broker_bytes_out_total", "tape_candles_emitted_total", "tape_server_trades_seen_total",
                ] {
                    XCTAssertTrue(text.contains("\n" + name) || text.hasPrefix(name), "missing \(name) in\n\(text)")
                }
                XCTAssertEqual(Self.probeTradesIn(text), before + 3, text)
            }
        }
    }

    func testBearerTokenGuardsAPIAndMetricsButNotHealthOrPage() async throws {
        let f = Fixture(token: "s3cret")
        try await f.app.test(.router) { client in
            for uri in ["/api/markets", "/api/trades", "/api/candles?symbol=poloniex:BTC-USDT", "/api/stats", "/metrics"] {
                try await client.execute(uri: uri, method: .get) { response in
                    XCTAssertEqual(response.status, .unauthorized, uri)
                    XCTAssertEqual(response.headers[.wwwAuthenticate], "Bearer realm=\"tape\"")
                    XCTAssertEqual((response.body.json["error"] as? [String: Any])?["code"] as? String, "unauthorized")
                }
                try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer wrong"]) { response in
                    XCTAssertEqual(response.status, .unauthorized, uri)
                }
                try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer s3cret"]) { response in
                    XCTAssertEqual(response.status, .ok, uri)
                }
            }
            try await client.execute(uri: "/api/markets?token=s3cret", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
            }
            try await client.execute(uri: "/health", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertTrue(response.body.text.contains("<canvas") || response.body.text.contains("canvas"))
            }
        }
    }

    func testDashboardIsSelfContained() async throws {
        let f = Fixture()
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                XCTAssertEqual(response.headers[.contentType], "text/html; charset=utf-8")
                let html = response.body.text
                XCTAssertFalse(html.contains("http://") || html.contains("https://"), "the page must not load anything from elsewhere")
                XCTAssertFalse(html.contains("<script src") || html.contains("<link"), "scripts and styles are inline")
                XCTAssertTrue(html.contains("/ws"))
            }
        }
    }

    /// The browser's automatic `/favicon.ico` request gets an icon (no 404), token or not.
    func testFaviconIsServedWithoutAToken() async throws {
        let f = Fixture(token: "s3cret")
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/favicon.ico", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.headers[.contentType], "image/x-icon")
                let bytes = Array(buffer: response.body)
                XCTAssertEqual(Array(bytes.prefix(6)), [0, 0, 1, 0, 1, 0], "an ICO with one image")
                XCTAssertEqual(bytes.count, 6 + 16 + 40 + 16 * 16 * 4 + 16 * 4)
            }
            try await client.execute(uri: "/favicon.ico", method: .head) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.body.readableBytes, 0)
            }
        }
    }

    func testListenAddressAndLoopbackWarning() throws {
        func parse(_ text: String) throws -> String {
            let (host, port) = try TapeServerConfiguration.parseListenAddress(text)
            return "\(host) \(port)"
        }
        XCTAssertEqual(try parse("127.0.0.1:8080"), "127.0.0.1 8080")
        XCTAssertEqual(try parse("[::1]:9000"), "::1 9000")
        XCTAssertEqual(try parse(":8081"), "127.0.0.1 8081")
        XCTAssertThrowsError(try parse("localhost"))
        XCTAssertThrowsError(try parse("127.0.0.1:99999"))
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1"] {
            XCTAssertNil(TapeServerConfiguration(host: host).exposureWarning, host)
        }
        for host in ["0.0.0.0", "192.168.1.5", "::", "example.org", "127.0.0.1.evil"] {
            let warning = TapeServerConfiguration(host: host, port: 8080).exposureWarning
            XCTAssertNotNil(warning, host)
            XCTAssertTrue(warning?.contains("--token") ?? false)
        }
        XCTAssertFalse(TapeServerConfiguration(host: "0.0.0.0", token: "t").exposureWarning?.contains("No --token") ?? true)
        let config = TapeServerConfiguration(host: "127.0.0.1", port: 8080)
        XCTAssertEqual(
            config.explainStartupError(IOError(errnoCode: EADDRINUSE, reason: "bind")),
            "Cannot listen on 127.0.0.1:8080: something else (another tape?) already uses it. Pick another with --http HOST:PORT.")
        XCTAssertNil(config.explainStartupError(CancellationError()))
        XCTAssertEqual(TapeServerConfiguration(host: "0.0.0.0").dashboardURL(port: 9000), "http://127.0.0.1:9000/")
        XCTAssertEqual(TapeServerConfiguration(host: "::1").dashboardURL(port: 9000), "http://[::1]:9000/")
    }
}

/// A settable millisecond clock.
final class ManualMillis: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ value: Int64) { self.value = value }
    var now: Int64 {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
