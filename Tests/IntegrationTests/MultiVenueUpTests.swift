import Foundation
import TapeTestSupport
import XCTest

/// `tape up --exchanges` with every venue at once, offline, and `tape up --config`, as a newcomer
/// runs them (README's first-ten-minutes command).
final class MultiVenueUpTests: XCTestCase {
    func testFourSimulatedVenuesServeBelievableMarketsAndCandlesWithin30Seconds() throws {
        let dir = try temporaryDirectory("up-venues")
        defer { try? FileManager.default.removeItem(at: dir) }
        let httpPort = Loopback.freePort()
        let up = try ChildProcess([
            "up", "--offline", "--exchanges", "poloniex,binance,coinbase,kraken", "--data-dir", dir.appendingPathComponent("data").path,
            "--listen", "127.0.0.1:0", "--http", "127.0.0.1:\(httpPort)", "--intervals", "1s,1m",
        ])
        defer { _ = up.interrupt(timeout: 20) }
        let base = "http://127.0.0.1:\(httpPort)"
        let venues = ["poloniex", "binance", "coinbase", "kraken"]
        let started = Date()
        // Within 30 s: every venue connected with trades, and candles of one market of each.
        var stats: [String: [String: Any]] = [:]
        var candleCounts: [String: Int] = [:]
        let firstMarket = ["poloniex": "BTC-USDT", "binance": "BTC-USDT", "coinbase": "BTC-USD", "kraken": "BTC-USD"]
        while Date().timeIntervalSince(started) < 30 {
            if let r = try? httpGet(base + "/api/stats"), r.status == 200,
                let obj = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
                let list = obj["exchanges"] as? [[String: Any]]
            {
                stats = Dictionary(list.compactMap { e in (e["exchange"] as? String).map { ($0, e) } }) { a, _ in a }
            }
            for venue in venues {
                let market = firstMarket[venue]!
                if let r = try? httpGet(base + "/api/candles?symbol=\(venue):\(market)&interval=1s"), r.status == 200,
                    let obj = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]
                {
                    candleCounts[venue] = (obj["candles"] as? [Any])?.count ?? 0
                }
            }
            let ready = venues.allSatisfy { v in
                (stats[v]?["connected"] as? Bool) == true && (stats[v]?["tradesTotal"] as? Int ?? 0) > 0 && (candleCounts[v] ?? 0) > 0
            }
            if ready { break }
            usleep(500_000)
        }
        for venue in venues {
            XCTAssertEqual(stats[venue]?["connected"] as? Bool, true, "\(venue): \(stats[venue] ?? [:]); stderr: \(up.stderr.suffix(1500))")
            XCTAssertGreaterThan(stats[venue]?["tradesTotal"] as? Int ?? 0, 0, "\(venue)")
            XCTAssertEqual(stats[venue]?["simulated"] as? Bool, true, "\(venue)")
            XCTAssertEqual(stats[venue]?["markets"] as? Int, 6, "\(venue): the six default markets")
            XCTAssertGreaterThan(candleCounts[venue] ?? 0, 0, "\(venue): no 1s candle of \(firstMarket[venue]!) within 30 s")
        }
        XCTAssertTrue(up.stderr.contains("Exchanges:"), up.stderr.suffix(1500).description)

        // Every market the API lists has a believable price: BTC in the tens of thousands on every venue.
        let markets = try httpGet(base + "/api/markets")
        let list = (try JSONSerialization.jsonObject(with: Data(markets.body.utf8)) as? [String: Any])?["markets"] as? [[String: Any]] ?? []
        XCTAssertEqual(Set(list.compactMap { $0["exchange"] as? String }), Set(venues), markets.body)
        for market in list where (market["base"] as? String) == "BTC" {
            let price = Double(market["lastPrice"] as? String ?? "") ?? 0
            XCTAssertTrue((10_000...250_000).contains(price), "\(market)")
        }
    }

    func testAConfigFileSetsWhatTheFlagsDoAndTheCommandLineWins() throws {
        let dir = try temporaryDirectory("up-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        let httpPort = Loopback.freePort()
        let config = dir.appendingPathComponent("tape.yaml")
        try """
        # tape up --config tape.yaml
        offline: true
        exchanges:
          binance: [ETHUSDT]
        http: 127.0.0.1:1          # the command line's --http wins
        listen: 127.0.0.1:0
        data-dir: \(dir.appendingPathComponent("data").path)
        retention: 2d
        """.write(to: config, atomically: true, encoding: .utf8)
        let up = try ChildProcess(["up", "--config", config.path, "--http", "127.0.0.1:\(httpPort)"])
        defer { _ = up.interrupt(timeout: 20) }
        let base = "http://127.0.0.1:\(httpPort)"
        var exchanges: [[String: Any]] = []
        let started = Date()
        while Date().timeIntervalSince(started) < 30 {
            if let r = try? httpGet(base + "/api/stats"), r.status == 200,
                let obj = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]
            {
                exchanges = obj["exchanges"] as? [[String: Any]] ?? []
                if exchanges.first?["tradesTotal"] as? Int ?? 0 > 0 { break }
            }
            usleep(300_000)
        }
        XCTAssertEqual(exchanges.compactMap { $0["exchange"] as? String }, ["binance"], "stderr: \(up.stderr.suffix(1500))")
        XCTAssertEqual(exchanges.first?["markets"] as? Int, 1)
        XCTAssertTrue(up.stderr.contains("2 days"), "the banner states the file's retention: \(up.stderr.suffix(1500))")

        // A misspelt setting is a one-sentence usage error naming the right one.
        let bad = dir.appendingPathComponent("bad.yaml")
        try "ofline: true\n".write(to: bad, atomically: true, encoding: .utf8)
        let result = try runProcess(TapeBinary.privateCopy, ["up", "--config", bad.path], timeout: 30)
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("unknown setting 'ofline'") && result.stderr.contains("did you mean 'offline'"), result.stderr)
        // A file that is not YAML, and one that does not exist.
        try "rate: [\n".write(to: bad, atomically: true, encoding: .utf8)
        let broken = try runProcess(TapeBinary.privateCopy, ["up", "--config", bad.path], timeout: 30)
        XCTAssertEqual(broken.status, 64, broken.stderr)
        XCTAssertTrue(broken.stderr.contains("is not valid YAML"), broken.stderr)
        let missing = try runProcess(TapeBinary.privateCopy, ["up", "--config", dir.appendingPathComponent("nope.yaml").path], timeout: 30)
        XCTAssertEqual(missing.status, 64, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("no such file"), missing.stderr)
    }
}
