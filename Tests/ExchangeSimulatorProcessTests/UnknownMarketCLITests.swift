import Foundation
import TapeTestSupport
import XCTest

/// The built `tape` refuses a market the simulator does not know (exit 64, one sentence naming it
/// and what the simulator knows) instead of inventing a price for it.
final class UnknownMarketCLITests: XCTestCase {
    func testSimulateAndUpOfflineRefuseUnknownMarkets() throws {
        let data = try temporaryDirectory("unknown-market")
        defer { try? FileManager.default.removeItem(at: data) }
        let runs: [[String]] = [
            ["simulate", "--listen", "127.0.0.1:0", "--symbols", "BTC_USDT,FOO_USDT"],
            ["up", "--offline", "--data-dir", data.path, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--symbols", "BTC_USDT,FOO_USDT"],
        ]
        for arguments in runs {
            let result = try runProcess(TapeBinary.path, arguments, timeout: 30)
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
            let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
            XCTAssertTrue(first.contains("'FOO_USDT'"), first)
            XCTAssertFalse(first.contains("'BTC_USDT'"), "only the unknown one is named: \(first)")
            XCTAssertTrue(first.contains("BTC, ETH, SOL, XRP, DOGE, LTC") && first.contains("USDT, USDC, USD, EUR, BTC, ETH"), first)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: data.path), [], "nothing was started")
        // Known markets in other spellings pass validation: the simulator starts and prints its URLs.
        let simulator = try ChildProcess(["simulate", "--listen", "127.0.0.1:0", "--symbols", "btc-usd,XBT/EUR,DOGE_BTC"], name: "simulate")
        defer { _ = simulator.terminate() }
        let line = try simulator.firstLine(timeout: 30)
        XCTAssertTrue(line.hasPrefix("ws://127.0.0.1:"), line)
    }
}
