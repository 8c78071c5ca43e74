import Foundation
import MarketData
import Processing
import TapeTestSupport
import XCTest

/// `tape serve` without `--db` builds its candle history from `tape.candles` in its own data
/// directory: `tape broker`, `tape process` and `tape serve` as separate processes with separate
/// data directories (as on separate machines). History produced before serve started is served,
/// a revised candle replaces the older one, a restarted serve keeps its history and reads on from
/// where it stopped, and restarted with its broker gone it still serves that history, each window once.
final class ServeOwnHistoryTests: XCTestCase {
    struct Served: Equatable {
        var start: Int64
        var revision: Int
        var trades: Int
        var isFinal: Bool
    }

    func candles(_ base: String) -> [Served]? {
        guard let r = try? httpGet(base + "/api/candles?symbol=poloniex:BTC-USDT&interval=1s&limit=1000"), r.status == 200,
            let object = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any]
        else { return nil }
        return (object["candles"] as? [[String: Any]] ?? []).map {
            Served(
                start: ($0["start"] as? NSNumber)?.int64Value ?? -1, revision: $0["revision"] as? Int ?? -1, trades: $0["trades"] as? Int ?? -1,
                isFinal: $0["final"] as? Bool ?? false)
        }
    }

    func waitForCandles(_ base: String, timeout: TimeInterval, _ condition: ([Served]) -> Bool) -> [Served]? {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [Served]?
        while Date() < deadline {
            last = candles(base)
            if let last, condition(last) { return last }
            usleep(250_000)
        }
        print("last /api/candles: \(String(describing: last))")
        return nil
    }

    func testServeBuildsItsOwnHistoryFromTheCandleTopicAndKeepsItAcrossRestarts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-serve-own-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let brokers = "127.0.0.1:\(kafkaPort)"
        let broker = try ChildProcess(["broker", "--listen", brokers, "--data-dir", dir.appendingPathComponent("broker").path])
        defer { _ = broker.terminate() }
        let topics = try runProcess(TapeBinary.path, ["topics", "create", "tape.trades", "--partitions", "1", "--brokers", brokers], timeout: 30)
        XCTAssertEqual(topics.status, 0, topics.stderr + broker.stderr)
        let processorDB = dir.appendingPathComponent("process/candles.sqlite").path
        let process = try ChildProcess([
            "process", "--brokers", brokers, "--intervals", "1s", "--grace", "1s", "--emit-interval", "100ms", "--db", processorDB,
        ])
        defer { _ = process.terminate() }

        // Trades ten minutes old, in windows 0, 1 and 5 of one market.
        let base = (Int64(Date().timeIntervalSince1970) - 600) * 1000
        func produce(_ trades: [(id: Int, offset: Int64)]) throws {
            let lines = trades.map { t in
                Trade(
                    exchange: Exchange("poloniex"), symbol: Symbol(normalizing: "BTC-USDT"), nativeSymbol: "BTC_USDT", tradeId: "\(t.id)",
                    price: try! ExactDecimal("21600.5"), quantity: try! ExactDecimal("0.01"), side: .buy, time: base + t.offset,
                    receivedAt: (base + t.offset) * 1000 + 5
                ).jsonString + "\n"
            }.joined()
            let r = try runProcess(
                TapeBinary.path, ["produce", "--brokers", brokers, "--topic", "tape.trades", "--key", "poloniex:BTC-USDT"], stdin: Data(lines.utf8),
                timeout: 30)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try produce([(1, 100), (2, 1_500), (3, 5_000)])

        // The processor's windows 0 and 1 are final before serve starts.
        let store = try CandleStore(path: processorDB)
        let deadline = Date().addingTimeInterval(45)
        func processed() -> [Candle] {
            (try? store.candles(exchange: Exchange("poloniex"), symbol: Symbol(normalizing: "BTC-USDT"), interval: CandleInterval("1s")!)) ?? []
        }
        while processed().filter({ $0.isFinal }).count < 2 && Date() < deadline { usleep(250_000) }
        XCTAssertGreaterThanOrEqual(processed().filter(\.isFinal).count, 2, "tape process: \(process.stderr.suffix(2000))")

        let serveDir = dir.appendingPathComponent("serve").path
        let serveArguments = ["serve", "--brokers", brokers, "--data-dir", serveDir, "--http", "127.0.0.1:\(httpPort)"]
        var serve = try ChildProcess(serveArguments)
        defer { _ = serve.terminate() }
        let api = "http://127.0.0.1:\(httpPort)"

        // 1. History from before serve started.
        guard
            let before = waitForCandles(
                api, timeout: 45, { list in list.contains { $0.start == base && $0.isFinal } && list.contains { $0.start == base + 1_000 } })
        else { return XCTFail("serve never showed the candles made before it started; stderr:\n\(serve.stderr.suffix(3000))") }
        XCTAssertEqual(before.first { $0.start == base }, Served(start: base, revision: 0, trades: 1, isFinal: true))

        // 2. A late trade in window 0: the processor re-emits it with revision 1, which replaces revision 0.
        try produce([(4, 200)])
        guard let revised = waitForCandles(api, timeout: 45, { $0.contains { $0.start == base && $0.revision >= 1 } }) else {
            return XCTFail("the revised candle never replaced the old one; serve:\n\(serve.stderr.suffix(2000))\nprocess:\n\(process.stderr.suffix(2000))")
        }
        XCTAssertEqual(revised.first { $0.start == base }, Served(start: base, revision: 1, trades: 2, isFinal: true))
        XCTAssertEqual(revised.map(\.start), Array(Set(revised.map(\.start))).sorted(), "each window once, oldest first")
        XCTAssertTrue(serve.stderr.contains("reading tape.candles from its beginning"), serve.stderr.suffix(2000).description)
        usleep(500_000)  // let the last batch's transaction finish before the stop
        let served = candles(api) ?? []

        // 3. Serve restarted: its history is there at once, and it reads on from where it stopped.
        _ = serve.terminate()
        XCTAssertEqual(serve.process.terminationStatus, 0, serve.stderr.suffix(2000).description)
        serve = try ChildProcess(serveArguments)
        XCTAssertTrue(waitForHealthAnswer(api), "restarted serve: \(serve.stderr.suffix(2000))")
        XCTAssertEqual(candles(api), served, "the restarted server serves the same history, each window once")
        XCTAssertTrue(serve.stderr.contains("candles kept from the last run"), serve.stderr.suffix(2000).description)
        try produce([(5, 1_600)])
        guard let resumed = waitForCandles(api, timeout: 45, { $0.contains { $0.start == base + 1_000 && $0.revision >= 1 } }) else {
            return XCTFail("the restarted server did not read on; serve:\n\(serve.stderr.suffix(2000))")
        }
        XCTAssertEqual(resumed.first { $0.start == base + 1_000 }, Served(start: base + 1_000, revision: 1, trades: 2, isFinal: true))
        XCTAssertEqual(resumed.map(\.start), served.map(\.start), "no window twice, none lost")
        usleep(500_000)
        let servedAgain = candles(api) ?? []

        // 4. Serve restarted with its broker (and processor) gone: the history is its own.
        _ = serve.terminate()
        XCTAssertEqual(serve.process.terminationStatus, 0, serve.stderr.suffix(2000).description)
        _ = process.terminate()
        _ = broker.terminate()
        serve = try ChildProcess(serveArguments)
        XCTAssertTrue(waitForHealthAnswer(api), "restarted serve: \(serve.stderr.suffix(2000))")
        let afterRestart = candles(api) ?? []
        XCTAssertEqual(afterRestart, servedAgain, "the restarted server serves the same history, each window once")
        XCTAssertEqual(afterRestart.first { $0.start == base }?.revision, 1)
        XCTAssertTrue(serve.stderr.contains("candles kept from the last run"), serve.stderr.suffix(2000).description)
        XCTAssertTrue(FileManager.default.fileExists(atPath: serveDir + "/serve-candles.sqlite"))
        print("serve's own history: \(served.count) 1s candles before the first restart, \(afterRestart.count) after the second, windows 0 and 1 at revision 1")
    }
}
