import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MarketData
import Processing
import TapeServer
import TapeTestSupport
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

    /// `complete` survives SQLite: an incomplete candle is served as `"complete":false`, and turns
    /// complete when the processor rewrites it.
    func testCompleteRoundTripsThroughTheStore() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try CandleStore(path: dir.appendingPathComponent("candles.sqlite").path)
        var gappy = Fixture.candle(Fixture.btc, .oneMinute, index: 1, base: 100)
        gappy.complete = false
        try store.upsert([Fixture.candle(Fixture.btc, .oneMinute, index: 0, base: 100), gappy])
        var read = try await store.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 10)
        XCTAssertEqual(read.map(\.complete), [true, false])
        XCTAssertEqual(read.last, gappy)
        XCTAssertTrue(read.last?.jsonString.contains("\"complete\":false") ?? false)
        gappy.complete = true
        gappy.revision += 1
        try store.upsert([gappy])
        read = try await store.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 10)
        XCTAssertEqual(read.map(\.complete), [true, true])
    }
}

/// A store written by the previous release (through the `sqlite3` program: a child process, so
/// not in `make test-fast`).
final class CandleStoreMigrationProcessTests: XCTestCase {
    /// A store written before `complete` existed opens, and its rows read as complete.
    func testStoreWithoutTheCompleteColumnIsMigrated() async throws {
        guard let sqlite = Executables.which("sqlite3") else {
            throw XCTSkip("sqlite3 is not installed")
        }
        let dir = try temporaryDirectory("store")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("candles.sqlite").path
        // The v1 schema, as the previous release wrote it, with one row.
        let script = """
            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO grdb_migrations VALUES ('v1');
            CREATE TABLE candles (exchange TEXT NOT NULL, symbol TEXT NOT NULL, interval INTEGER NOT NULL, start INTEGER NOT NULL,
              "end" INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL,
              quoteVolume TEXT NOT NULL, buyVolume TEXT NOT NULL, sellVolume TEXT NOT NULL, trades INTEGER NOT NULL, vwap TEXT,
              revision INTEGER NOT NULL, final INTEGER NOT NULL, PRIMARY KEY (exchange, symbol, interval, start)) WITHOUT ROWID;
            INSERT INTO candles VALUES ('poloniex','BTC-USDT',60,\(Fixture.t0),\(Fixture.t0 + 60_000),'1','2','0.5','1.5','3','4.5','1','2',3,'1.5',2,1);
            """
        XCTAssertEqual(try runProcess(sqlite, [path, script]).status, 0)
        let store = try CandleStore(path: path)
        let read = try await store.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 10)
        XCTAssertEqual(read.count, 1)
        XCTAssertEqual(read.first?.complete, true)
        XCTAssertEqual(read.first?.close.description, "1.5")
    }
}
