import Foundation
import MarketData
import TapeTestSupport
import XCTest

/// `tape up --offline` restarted on the same data directory resumes at once. Before, the built-in
/// simulator started its trade ids again below the last trade stored, the deduplicator took every
/// new trade for one already published, and nothing new was ingested for as long as the previous
/// run had lasted (while /health said ok).
final class UpRestartTests: XCTestCase {
    /// The newest trade of `symbol` in /api/trades, if any.
    func newestTrade(_ base: String, symbol: String) -> Trade? {
        guard let r = try? httpGet(base + "/api/trades?symbol=\(symbol)&limit=1"), r.status == 200,
            let object = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any],
            let trades = object["trades"] as? [Any], let first = trades.first,
            let data = try? JSONSerialization.data(withJSONObject: first)
        else { return nil }
        return try? Trade(json: [UInt8](data))
    }

    func testOfflineRestartOnTheSameDataShowsNewTradesWithinFiveSeconds() throws {
        let dir = try temporaryDirectory("up-restart")
        defer { try? FileManager.default.removeItem(at: dir) }
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let base = "http://127.0.0.1:\(httpPort)"
        let symbols = ["BTC-USDT", "ETH-USDT"]
        func start() throws -> ChildProcess {
            try ChildProcess([
                "up", "--offline", "--data-dir", dir.appendingPathComponent("data").path,
                "--listen", "127.0.0.1:\(kafkaPort)", "--http", "127.0.0.1:\(httpPort)",
                "--rate", "100", "--intervals", "1m", "--symbols", "BTC_USDT,ETH_USDT",
            ])
        }
        /// The last ids the run showed, per market.
        func lastIds() -> [String: Int64] {
            var ids: [String: Int64] = [:]
            for symbol in symbols { ids[symbol] = newestTrade(base, symbol: "poloniex:\(symbol)").flatMap { Int64($0.tradeId) } }
            return ids
        }
        /// Seconds from `launched` until every market shows a trade above `previous`.
        func secondsToNewTrades(since launched: Date, above previous: [String: Int64], timeout: TimeInterval = 30) -> TimeInterval? {
            while Date().timeIntervalSince(launched) < timeout {
                let now = lastIds()
                if symbols.allSatisfy({ (now[$0] ?? 0) > (previous[$0] ?? .max) }) { return Date().timeIntervalSince(launched) }
                usleep(100_000)
            }
            return nil
        }

        // Run 1: ~8 s of trades.
        let first = try start()
        XCTAssertTrue(waitForHealth(base), "tape up did not serve /health: \(first.stderr.suffix(2000))")
        sleep(8)
        let afterFirst = lastIds()
        XCTAssertEqual(afterFirst.count, symbols.count, "run 1 showed trades of every market: \(first.stderr.suffix(2000))")
        first.process.terminate()  // SIGTERM
        first.process.waitUntilExit()
        XCTAssertEqual(first.process.terminationStatus, 0, first.stderr.suffix(2000).description)

        // Run 2 on the same data: new trades within 5 s of the restart.
        var launched = Date()
        let second = try start()
        let afterTerm = secondsToNewTrades(since: launched, above: afterFirst)
        XCTAssertNotNil(afterTerm, "no new trades after a SIGTERM restart: \(second.stderr.suffix(3000))")
        XCTAssertLessThan(afterTerm ?? 99, 5, "restart after SIGTERM")
        sleep(8)
        let afterSecond = lastIds()
        kill(second.process.processIdentifier, SIGKILL)
        second.process.waitUntilExit()

        // Run 3 after kill -9.
        launched = Date()
        let third = try start()
        defer { third.interrupt(timeout: 10) }
        let afterKill = secondsToNewTrades(since: launched, above: afterSecond)
        XCTAssertNotNil(afterKill, "no new trades after a kill -9 restart: \(third.stderr.suffix(3000))")
        XCTAssertLessThan(afterKill ?? 99, 5, "restart after kill -9")
        // The simulator's ids jump across a restart (nothing traded while it was down): no gap.
        sleep(2)
        let gaps = try httpGet(base + "/api/gaps")
        XCTAssertEqual(gaps.status, 200)
        let listed = (try JSONSerialization.jsonObject(with: Data(gaps.body.utf8)) as? [String: Any])?["gaps"] as? [Any]
        XCTAssertEqual(listed?.count, 0, "restarting the offline simulator is no gap: \(gaps.body.prefix(500))")
        print(
            String(
                format:
                    "tape up --offline restarted on its data: first new trade in /api/trades %.1f s after a SIGTERM restart, %.1f s after a kill -9 restart (from launch)",
                afterTerm ?? -1, afterKill ?? -1))
    }
}
