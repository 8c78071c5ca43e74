import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import KafkaClient
import Logging
import MarketData
import TapeServer
import TapeTestSupport
import XCTest

/// Gaps in the server: the ledger behind `/api/gaps`, the gap metrics, `gap` messages on `/ws`,
/// and `tape.gaps` read from Kafka.
final class GapServerTests: XCTestCase {
    static let sol = MarketID("binance:SOL-USDT")!

    static func gaps() -> [Gap] {
        [
            Fixture.gap(Fixture.btc, minutes: 3...4),
            Fixture.gap(Fixture.btc, minutes: 10...10, reason: "REST could not reach back"),
            Fixture.gap(Fixture.eth, minutes: 7...9),
            Fixture.gap(sol, minutes: 1...2),
            // found, then repaired: one gap, repaired
            Fixture.gap(Fixture.btc, minutes: 20...21),
            Fixture.gap(Fixture.btc, minutes: 20...21, repaired: true),
        ]
    }

    func testGapsNewestFirstFilteredBySymbolOpenAndLimit() async throws {
        let f = Fixture(gaps: Self.gaps())
        @Sendable func tos(_ response: TestResponse) -> [Int64] {
            (response.body.json["gaps"] as? [[String: Any]] ?? []).map { ($0["to"] as? NSNumber)?.int64Value ?? -1 }
        }
        @Sendable func to(_ minute: Int64) -> Int64 { Fixture.t0 + minute * 60_000 + 10_000 }
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/api/gaps", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(tos(response), [to(21), to(10), to(9), to(4), to(2)])
                let first = (response.body.json["gaps"] as? [[String: Any]])?.first ?? [:]
                XCTAssertEqual(first["repaired"] as? Bool, true, "the latest record of a gap is its state")
                XCTAssertEqual(first["exchange"] as? String, "poloniex")
                XCTAssertEqual(first["channel"] as? String, "trades")
                XCTAssertEqual(first["missing"] as? Int, 12)
                XCTAssertTrue(response.body.text.contains(Self.gaps()[5].jsonString), "each gap exactly as on tape.gaps")
            }
            try await client.execute(uri: "/api/gaps?symbol=poloniex:BTC-USDT&open=true", method: .get) { response in
                XCTAssertEqual(tos(response), [to(10), to(4)])
            }
            try await client.execute(uri: "/api/gaps?symbol=poloniex:btc_usdt&open=false&limit=2", method: .get) { response in
                XCTAssertEqual(tos(response), [to(21), to(10)])
            }
            // a bare SYMBOL matches every exchange
            try await client.execute(uri: "/api/gaps?symbol=SOL-USDT", method: .get) { response in
                XCTAssertEqual(tos(response), [to(2)])
            }
            try await client.execute(uri: "/api/gaps?symbol=kraken:SOL-USDT", method: .get) { response in
                XCTAssertEqual(response.status, .ok, "an unknown market has no gaps, like it has no candles")
                XCTAssertEqual(tos(response), [])
            }
            for (uri, parameter) in [
                ("/api/gaps?open=yes", "open"), ("/api/gaps?limit=0", "limit"), ("/api/gaps?limit=1001", "limit"),
                ("/api/gaps?symbol=BTC%20USDT", "symbol"), ("/api/gaps?symbol=:BTC", "symbol"), ("/api/gaps?interval=1m", "interval"),
                ("/api/gaps?open=true&open=false", "open"),
            ] {
                try await client.execute(uri: uri, method: .get) { response in
                    XCTAssertEqual(response.status, .badRequest, uri)
                    XCTAssertEqual((response.body.json["error"] as? [String: Any])?["parameter"] as? String, parameter, uri)
                }
            }
        }
    }

    func testGapsNeedTheToken() async throws {
        let f = Fixture(token: "s3cret", gaps: Self.gaps())
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/api/gaps", method: .get) { XCTAssertEqual($0.status, .unauthorized) }
            try await client.execute(uri: "/api/gaps", method: .get, headers: [.authorization: "Bearer s3cret"]) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/api/gaps", method: .post) { XCTAssertEqual($0.status, .methodNotAllowed) }
        }
    }

    func testGapMetricsCountFoundRepairedAndOpen() async throws {
        let market = MarketID("metricsx:ABC-USDT")!  // its own exchange label: other tests' gaps do not count here
        let f = Fixture()
        f.state.accept(Fixture.gap(market, minutes: 1...2))
        f.state.accept(Fixture.gap(market, minutes: 1...2))  // the same record again (a re-read): counted once
        f.state.accept(Fixture.gap(market, minutes: 5...6))
        f.state.accept(Gap(exchange: market.exchange, symbol: market.symbol, channel: .book, from: 1, to: 2, reason: "sequence jumped", repaired: false))
        f.state.accept(Fixture.gap(market, minutes: 1...2, repaired: true))
        let text = try await eventuallyMetrics(f) { $0.contains(#"tape_gaps_open{exchange="metricsx",channel="trades"} 1"#) }
        XCTAssertTrue(text.contains(#"tape_gaps_total{exchange="metricsx",channel="trades"} 2"#), text)
        XCTAssertTrue(text.contains(#"tape_gaps_total{exchange="metricsx",channel="book"} 1"#), text)
        XCTAssertTrue(text.contains(#"tape_gaps_repaired_total{exchange="metricsx",channel="trades"} 1"#), text)
        XCTAssertTrue(text.contains(#"tape_gaps_open{exchange="metricsx",channel="book"} 1"#), text)
        XCTAssertTrue(text.contains("tape_health_degraded 0"), text)
        XCTAssertTrue(text.contains(#"tape_health_check{check="trades"} 0"#), text)
        XCTAssertTrue(text.contains("tape_last_trade_age_seconds "), text)
        try PrometheusText.validate(text)
    }

    /// The open-gap gauges are set by the server's once-a-second sampler: run the app live.
    func eventuallyMetrics(_ f: Fixture, _ condition: @escaping @Sendable (String) -> Bool) async throws -> String {
        let result = Locked("")
        try await f.app.test(.live) { client in
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                let text = try await client.execute(uri: "/metrics", method: .get).body.text
                result.withLock { $0 = text }
                if condition(text) { return }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        return result.withLock { $0 }
    }

    func testGapRecordsArePushedToSubscribers() async throws {
        let f = Fixture()
        let state = f.state
        let input = f.gapInput
        let open = Fixture.gap(Fixture.btc, minutes: 30...31)
        try await f.app.test(.live) { client in
            try await client.ws("/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                func next() async throws -> [String: Any] {
                    guard case .text(let text) = try await messages.next() else { throw TestSupportError("timed out waiting for a text message") }
                    return WebSocketTests.json(text)
                }
                try await outbound.write(.text(#"{"op":"subscribe","channel":"gaps","symbol":"poloniex:btc_usdt"}"#))
                let ack = try await next()
                XCTAssertEqual(ack["type"] as? String, "subscribed")
                XCTAssertEqual(ack["channel"] as? String, "gaps")
                XCTAssertEqual(ack["symbol"] as? String, "poloniex:BTC-USDT")
                input.yield(Fixture.gap(Fixture.eth, minutes: 30...31))  // another market: not sent
                input.yield(open)
                var repaired = open
                repaired.repaired = true
                input.yield(repaired)
                let m1 = try await next()
                XCTAssertEqual(m1["type"] as? String, "gap")
                XCTAssertEqual(m1["symbol"] as? String, "poloniex:BTC-USDT")
                XCTAssertEqual(try Gap(json: [UInt8](JSONSerialization.data(withJSONObject: m1["data"] as Any))), open)
                let m2 = try await next()
                XCTAssertEqual((m2["data"] as? [String: Any])?["repaired"] as? Bool, true)
                XCTAssertEqual(state.gaps.list(openOnly: true).filter { $0.symbol == Fixture.btc.symbol }.count, 0)
                XCTAssertEqual(state.gaps.count, 2)
            }
        }
    }

    /// `tape serve`'s gap feed against librdkafka's mock cluster: from the beginning, bad records skipped.
    func testServerReadsTapeGapsFromTheBeginning() async throws {
        let cluster = try MockKafkaCluster(brokers: 1)
        try cluster.createTopic("tape.gaps", partitions: 1)
        try cluster.createTopic("tape.trades", partitions: 1)
        try cluster.createTopic("tape.candles", partitions: 1)
        var producerConfig = KafkaProducerConfiguration(kafka: .init(bootstrapServers: cluster.bootstrapServers))
        producerConfig.lingerMilliseconds = 1
        let producer = try KafkaProducer(configuration: producerConfig)
        let found = Fixture.gap(Fixture.btc, minutes: 2...3)
        var fixed = found
        fixed.repaired = true
        let other = Fixture.gap(Fixture.eth, minutes: 4...4)
        for (key, value) in [
            (found.kafkaKey, found.jsonString), ("x", "{\"v\":1,\"exchange\":"), (other.kafkaKey, other.jsonString), (fixed.kafkaKey, fixed.jsonString),
        ] {
            _ = try await producer.send(ProducerMessage(topic: "tape.gaps", key: key, value: value))
        }
        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, properties: ["fetch.wait.max.ms": "20"])
        var logger = Logger(label: "test.gap-feed")
        logger.logLevel = .error
        let state = TapeServerState()
        let app = buildTapeServer(
            configuration: TapeServerConfiguration(host: "127.0.0.1", port: 0),
            trades: KafkaTradeFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.trades", start: .end, logger: logger)),
            candles: KafkaCandleFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.candles", start: .end, logger: logger)),
            history: InMemoryCandleHistory(),
            gaps: KafkaGapFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.gaps", start: .beginning, logger: logger)),
            state: state, logger: logger)
        try await app.test(.live) { client in
            try await eventually(30, "three records of tape.gaps") {
                state.gaps.list().contains { $0.repaired } && state.gaps.count == 2
            }
            try await client.execute(uri: "/api/gaps?open=true", method: .get) { response in
                let gaps = response.body.json["gaps"] as? [[String: Any]] ?? []
                XCTAssertEqual(gaps.map { $0["symbol"] as? String }, ["ETH-USDT"])
            }
            // /health counts the three readers as Kafka contacts.
            try await client.execute(uri: "/health", method: .get) { response in
                let kafkaCheck = (response.body.json["checks"] as? [String: [String: Any]])?["kafka"]
                XCTAssertEqual(kafkaCheck?["status"] as? String, "ok", response.body.text)
                XCTAssertTrue((kafkaCheck?["detail"] as? String ?? "").contains("tape.gaps"), response.body.text)
            }
        }
        try await producer.close()
    }
}
