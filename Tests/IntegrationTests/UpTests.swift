import Foundation
import MarketData
import Processing
import TapeTestSupport
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `tape up --offline` as a user runs it: one process, then the API, /metrics and kcat from outside.
final class UpTests: XCTestCase {
    func testUpOfflineServesCandlesEqualToARecomputationOfTheSimulatorsTrades() throws {
        let dir = try temporaryDirectory("up")
        defer { try? FileManager.default.removeItem(at: dir) }
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let tradesLog = dir.appendingPathComponent("simulated-trades.jsonl").path
        let up = try ChildProcess([
            "up", "--offline", "--data-dir", dir.appendingPathComponent("data").path,
            "--listen", "127.0.0.1:\(kafkaPort)", "--http", "127.0.0.1:\(httpPort)",
            "--rate", "150", "--intervals", "1s,1m", "--symbols", "BTC_USDT,ETH_USDT",
            "--simulator-trades-log", tradesLog,
        ])
        defer { up.interrupt(timeout: 10) }
        let base = "http://127.0.0.1:\(httpPort)"
        // Ready once /health answers 200: ok, nothing known wrong.
        XCTAssertTrue(waitForHealth(base), "tape up did not serve an ok /health within 60 s")
        let firstUseful = Int64(Date().timeIntervalSince1970 * 1000) + 3_000
        sleep(24)
        let queriedAt = Int64(Date().timeIntervalSince1970 * 1000)

        // The API's 1s candles of both markets.
        var served: [String: Candle] = [:]
        for symbol in ["BTC-USDT", "ETH-USDT"] {
            let r = try httpGet(base + "/api/candles?symbol=poloniex:\(symbol)&interval=1s&limit=1000")
            XCTAssertEqual(r.status, 200, r.body)
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
            for item in try XCTUnwrap(obj["candles"] as? [Any]) {
                let data = try JSONSerialization.data(withJSONObject: item)
                let candle = try Candle(json: [UInt8](data))
                served[candle.kafkaKey] = candle
            }
        }

        // /metrics is Prometheus text: every sample line is `name{labels} value`.
        let metrics = try httpGet(base + "/metrics")
        XCTAssertEqual(metrics.status, 200)
        let samples = metrics.body.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        XCTAssertFalse(samples.isEmpty, metrics.body)
        let sampleLine = try NSRegularExpression(pattern: #"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?([0-9.eE+-]+|NaN|\+Inf|-Inf)( [0-9]+)?$"#)
        for line in samples {
            let s = String(line)
            XCTAssertNotNil(sampleLine.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)), "not Prometheus text: \(s)")
        }

        // The stages' counters reach /metrics.
        let tradesIn = samples.first { $0.hasPrefix("tape_trades_in_total{") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        XCTAssertGreaterThan(tradesIn ?? 0, 100, "tape_trades_in_total should count ingested trades:\n\(metrics.body)")
        func value(_ prefix: String) -> Double? {
            samples.first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        // The embedded broker's socket traffic and the producers' sampled ack latency.
        XCTAssertGreaterThan(value("tape_broker_bytes_in_total ") ?? 0, 10_000, metrics.body)
        XCTAssertGreaterThan(value("tape_broker_bytes_out_total ") ?? 0, 10_000, metrics.body)
        XCTAssertGreaterThan(value(#"tape_produce_latency_seconds_count{topic="tape.trades"}"#) ?? 0, 0, metrics.body)

        // After 24 s of a working pipeline every check of /health is ok (200).
        let health = try httpGet(base + "/health")
        XCTAssertEqual(health.status, 200, health.body)
        let verdict = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(health.body.utf8)) as? [String: Any])
        XCTAssertEqual(verdict["status"] as? String, "ok", health.body)
        XCTAssertEqual(verdict["reasons"] as? [String], [], health.body)
        let checks = verdict["checks"] as? [String: [String: Any]] ?? [:]
        for check in ["exchange", "kafka", "trades", "processor"] { XCTAssertEqual(checks[check]?["status"] as? String, "ok", "\(check): \(health.body)") }
        XCTAssertEqual(value("tape_health_degraded "), 0, metrics.body)

        // kcat sees tape.trades on the printed bootstrap address.
        if let kcat = Executables.which("kcat") {
            let listing = try runProcess(kcat, ["-b", "127.0.0.1:\(kafkaPort)", "-L"], timeout: 20)
            XCTAssertTrue(listing.stdout.contains("topic \"tape.trades\""), listing.stdout)
        }

        up.interrupt(timeout: 10)  // graceful: flushes the simulator's trade log
        XCTAssertEqual(up.process.terminationStatus, 0, "tape up should exit 0 on SIGINT; its stderr ends:\n\(up.stderr.suffix(6000))")

        // Recompute from every trade the simulator produced.
        let lines = try String(contentsOfFile: tradesLog, encoding: .utf8).split(separator: "\n")
        var sequenced: [BatchCandles.SequencedTrade] = []
        for (i, line) in lines.enumerated() {
            sequenced.append(.init(trade: try Trade(json: String(line)), sequence: Int64(i)))
        }
        XCTAssertGreaterThan(sequenced.count, 500)
        let reference = BatchCandles.compute(sequenced, intervals: [CandleInterval("1s")!])
        // Windows that were complete well before the query (grace 5 s + margin), after start-up.
        let comparable = reference.filter { $0.value.start >= firstUseful && $0.value.end <= queriedAt - 8_000 }
        XCTAssertGreaterThan(comparable.count, 10)
        var mismatches: [String] = []
        for (key, expected) in comparable {
            guard let got = served[key] else {
                mismatches.append("\(key): missing from /api/candles")
                continue
            }
            if let diff = BatchCandles.difference(got, expected) { mismatches.append("\(key): \(diff)") }
        }
        XCTAssertTrue(mismatches.isEmpty, "\(mismatches.count) of \(comparable.count) candles differ:\n" + mismatches.prefix(10).joined(separator: "\n"))
    }

    /// A second Ctrl-C stops `tape up` at once, even when a Kafka client is blocked waiting for the
    /// embedded broker it has just lost (the processor's flush used to wait out 60 s, twice).
    func testSecondSignalStopsWithinSeconds() throws {
        let dir = try temporaryDirectory("up-second-signal")
        defer { try? FileManager.default.removeItem(at: dir) }
        let httpPort = Loopback.freePort()
        let up = try ChildProcess([
            "up", "--offline", "--data-dir", dir.appendingPathComponent("data").path,
            "--listen", "127.0.0.1:\(Loopback.freePort())", "--http", "127.0.0.1:\(httpPort)",
        ])
        defer { up.kill9() }
        XCTAssertTrue(waitForHealth("http://127.0.0.1:\(httpPort)"), "tape up did not serve an ok /health within 60 s")
        sleep(10)  // candles flowing and committed: the processor has records in flight
        // Back to back, as an impatient user's two Ctrl-Cs: the broker goes while the processor
        // still flushes. (By hand, `kill -INT` twice, this hung for 60 s and more in 2 of 3 runs
        // before the fix; here the race is won less often. Two signals this close may also merge
        // into one, and then the graceful stop must be quick too.)
        up.send(SIGINT)
        up.send(SIGINT)
        let deadline = Date().addingTimeInterval(15)
        while up.isRunning, Date() < deadline { usleep(50_000) }
        XCTAssertFalse(up.isRunning, "tape up still running 15 s after two SIGINTs; stderr ends:\n\(up.stderr.suffix(3000))")
    }
}

/// Polls `base`/health until it answers 200 (true) or `timeout` seconds pass (false). 200 means
/// `ok`: up, and nothing has been wrong for its threshold (a degraded pipeline answers 503, so a
/// `tape up` that cannot reach its exchange or Kafka never passes).
func waitForHealth(_ base: String, timeout: TimeInterval = 60) -> Bool {
    let started = Date()
    while Date().timeIntervalSince(started) < timeout {
        if (try? httpGet(base + "/health"))?.status == 200 { return true }
        usleep(300_000)
    }
    return false
}
