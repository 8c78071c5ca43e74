import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MarketData
import Processing
import TapeServer
import XCTest

/// `/api/candles` and `/api/markets` over the processing stage's SQLite CandleStore (`tape serve --db`).
final class CandleStoreHistoryTests: XCTestCase {
    func testRoutesServeTheSQLiteStore() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try CandleStore(path: dir.appendingPathComponent("candles.sqlite").path)
        let series = (0..<30).map { Fixture.candle(Fixture.btc, .oneMinute, index: $0, base: 21_600) }
        var updated = Fixture.candle(Fixture.btc, .oneMinute, index: 29, base: 21_600, revision: 9, isFinal: true)
        updated.close = try ExactDecimal("21999.99")
        try store.upsert(series)
        try store.upsert([updated, Fixture.candle(Fixture.eth, .fiveMinutes, index: 0, base: 1_600)])
        let expectedJSON = updated.jsonString

        let (trades, _) = PushFeed<Trade>.make()
        let (candles, _) = PushFeed<Candle>.make()
        var logger = Logger(label: "test.store")
        logger.logLevel = .warning
        let app = buildTapeServer(
            configuration: TapeServerConfiguration(host: "127.0.0.1", port: 0), trades: trades, candles: candles, history: store,
            logger: logger)
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/markets", method: .get) { response in
                let symbols = (response.body.json["markets"] as? [[String: Any]] ?? []).map { $0["symbol"] as? String }
                XCTAssertEqual(symbols, ["poloniex:BTC-USDT", "poloniex:ETH-USDT"])
            }
            let from = Fixture.t0 + 20 * 60_000
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&interval=1m&from=\(from)&limit=5", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                let candles = response.body.json["candles"] as? [[String: Any]] ?? []
                XCTAssertEqual(candles.map { ($0["start"] as? NSNumber)?.int64Value }, (25..<30).map { Fixture.t0 + Int64($0) * 60_000 })
                XCTAssertEqual(candles.last?["close"] as? String, "21999.99")
                XCTAssertEqual(candles.last?["revision"] as? Int, 9)
                XCTAssertTrue(response.body.text.contains(expectedJSON), "the stored candle comes back exactly")
            }
        }
    }
}
