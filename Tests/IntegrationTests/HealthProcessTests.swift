import Foundation
import MarketData
import TapeTestSupport
import XCTest

/// `/health` of a real `tape up` against a real (simulated) exchange process: killing the exchange
/// turns it degraded with the exchange named, restarting it turns it ok again.
final class HealthProcessTests: XCTestCase {
    /// `tape simulate` on a fixed loopback port; returns the process and its websocket and REST URLs.
    func simulator(port: Int, seed: Int) throws -> (process: ChildProcess, websocket: String, rest: String) {
        let sim = try ChildProcess([
            "simulate", "--exchange", "poloniex", "--listen", "127.0.0.1:\(port)", "--rate", "40", "--symbols", "BTC_USDT,ETH_USDT",
            "--seed", "\(seed)",
        ])
        let urls = try sim.firstLine().split(separator: " ").map(String.init)
        XCTAssertEqual(urls.count, 2, "tape simulate prints \"<websocket URL> <REST URL>\"")
        return (sim, urls.first ?? "", urls.last ?? "")
    }

    struct Health {
        var status: Int
        var body: [String: Any]
        var state: String { body["status"] as? String ?? "?" }
        var reasons: [String] { body["reasons"] as? [String] ?? [] }
        func check(_ name: String) -> String? { ((body["checks"] as? [String: Any])?[name] as? [String: Any])?["status"] as? String }
    }

    func health(_ base: String) -> Health {
        guard let r = try? httpGet(base + "/health") else { return Health(status: 0, body: [:]) }
        let body = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:]
        return Health(status: r.status, body: body)
    }

    /// Polls /health until `condition` holds; returns the seconds it took, or nil after `timeout`.
    func waitFor(_ base: String, timeout: TimeInterval, _ condition: (Health) -> Bool) -> (seconds: Double, last: Health)? {
        let started = Date()
        var last = Health(status: 0, body: [:])
        while Date().timeIntervalSince(started) < timeout {
            last = health(base)
            if condition(last) { return (Date().timeIntervalSince(started), last) }
            usleep(250_000)
        }
        print("last /health: \(last.status) \(last.body)")
        return nil
    }

    func metric(_ base: String, _ name: String) -> Double? {
        guard let text = try? httpGet(base + "/metrics").body else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    func testKillingTheExchangeTurnsHealthDegradedAndRestartingItTurnsItOk() throws {
        let dir = try temporaryDirectory("health")
        defer { try? FileManager.default.removeItem(at: dir) }
        let simPort = Loopback.freePort()
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        var sim = try simulator(port: simPort, seed: 1)
        defer { sim.process.interrupt(timeout: 10) }
        let up = try ChildProcess([
            "up", "--endpoint", sim.websocket, "--rest-endpoint", sim.rest, "--symbols", "BTC_USDT,ETH_USDT",
            "--data-dir", dir.appendingPathComponent("data").path, "--listen", "127.0.0.1:\(kafkaPort)", "--http", "127.0.0.1:\(httpPort)",
            "--intervals", "1s,1m", "--stale-after", "10",
        ])
        defer { up.interrupt(timeout: 10) }
        let base = "http://127.0.0.1:\(httpPort)"

        // 1. Against a live exchange: ok, every check judged.
        guard let ok = waitFor(base, timeout: 45, { $0.status == 200 && $0.check("exchange") == "ok" && ($0.body["tradesSeen"] as? Int ?? 0) > 0 })
        else {
            return XCTFail("tape up against the simulator never became ok; stderr:\n\(up.stderr.suffix(4000))")
        }
        XCTAssertEqual(ok.last.state, "ok")
        XCTAssertEqual(ok.last.reasons, [])
        for check in ["exchange", "kafka", "trades", "processor"] { XCTAssertEqual(ok.last.check(check), "ok", "\(check): \(ok.last.body)") }
        XCTAssertEqual(metric(base, "tape_health_degraded"), 0)

        // 2. The exchange dies.
        kill(sim.process.process.processIdentifier, SIGKILL)
        sim.process.process.waitUntilExit()
        let killedAt = Date()
        guard let degraded = waitFor(base, timeout: 20, { $0.status == 503 && $0.check("exchange") == "failing" }) else {
            return XCTFail("/health did not turn degraded within 20 s of the exchange dying; stderr:\n\(up.stderr.suffix(4000))")
        }
        print("health: degraded \(String(format: "%.1f", degraded.seconds)) s after the exchange was killed: \(degraded.last.reasons)")
        XCTAssertEqual(degraded.last.state, "degraded")
        let reason = degraded.last.reasons.first ?? ""
        XCTAssertTrue(reason.hasPrefix("poloniex websocket \(sim.websocket) disconnected for "), reason)
        XCTAssertLessThanOrEqual(degraded.seconds, 9, "the exchange check waits 5 s, the server samples every second")
        XCTAssertGreaterThanOrEqual(degraded.seconds, 4, "a disconnection counts only after 5 s: \(reason)")
        XCTAssertEqual(metric(base, "tape_health_degraded"), 1)
        XCTAssertEqual(metric(base, #"tape_health_check{check="exchange"}"#), 1)
        // Past --stale-after (10 s), the missing trades are a reason too.
        let stale = waitFor(base, timeout: 12, { $0.check("trades") == "failing" })
        XCTAssertNotNil(stale, "no trade for --stale-after while the exchange is down")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(killedAt), 9)
        XCTAssertGreaterThan(metric(base, "tape_last_trade_age_seconds") ?? 0, 9)

        // 3. The exchange comes back (another seed: new trade ids, so the trades are new).
        sim = try simulator(port: simPort, seed: 2)
        guard let back = waitFor(base, timeout: 40, { $0.status == 200 }) else {
            return XCTFail("/health did not turn ok within 40 s of the exchange coming back; stderr:\n\(up.stderr.suffix(4000))")
        }
        print("health: ok again \(String(format: "%.1f", back.seconds)) s after the exchange came back")
        XCTAssertEqual(back.last.reasons, [])
        XCTAssertEqual(metric(base, "tape_health_degraded"), 0)

        up.interrupt(timeout: 10)
        XCTAssertEqual(up.process.terminationStatus, 0, up.stderr.suffix(3000).description)
        XCTAssertTrue(up.stderr.contains("Health: degraded"), "the transition is logged")
    }

    /// A standalone `tape serve` judges what it reads: no trade on tape.trades for --stale-after,
    /// then trades (ok), then its broker killed (Kafka named), then the broker back (ok).
    func testStandaloneServeJudgesTradesAndKafkaItReads() throws {
        let dir = try temporaryDirectory("serve-health")
        defer { try? FileManager.default.removeItem(at: dir) }
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let bootstrap = "127.0.0.1:\(kafkaPort)"
        func startBroker() throws -> ChildProcess {
            try ChildProcess(["broker", "--listen", bootstrap, "--data-dir", dir.appendingPathComponent("kafka").path])
        }
        var broker = try startBroker()
        defer { broker.interrupt(timeout: 10) }
        let serve = try ChildProcess([
            "serve", "--brokers", bootstrap, "--http", "127.0.0.1:\(httpPort)", "--stale-after", "4", "--db", dir.appendingPathComponent("candles.sqlite").path,
        ])
        defer { serve.interrupt(timeout: 10) }
        let base = "http://127.0.0.1:\(httpPort)"

        // 1. Nothing on tape.trades for 4 s: degraded, and it says so; the exchange is not its to judge.
        guard let quiet = waitFor(base, timeout: 30, { $0.status == 503 }) else {
            return XCTFail("tape serve never said degraded without trades; stderr:\n\(serve.stderr.suffix(3000))")
        }
        XCTAssertTrue(quiet.last.reasons.first?.hasPrefix("No trade on tape.trades for ") ?? false, "\(quiet.last.reasons)")
        XCTAssertTrue(quiet.last.reasons.first?.hasSuffix("(--stale-after 4 s).") ?? false, "\(quiet.last.reasons)")
        XCTAssertEqual(quiet.last.check("exchange"), "unknown")
        XCTAssertEqual(quiet.last.check("kafka"), "ok", "\(quiet.last.body)")

        // 2. Trades arrive (until the reader, which starts at the end, has one): ok.
        var id = 0
        let became = waitFor(base, timeout: 30) { health in
            if health.status == 200 && (health.body["tradesSeen"] as? Int ?? 0) > 0 { return true }
            id += 1
            let trade = Trade(
                exchange: Exchange("poloniex"), symbol: Symbol(normalizing: "BTC-USDT"), nativeSymbol: "BTC_USDT", tradeId: "\(id)",
                price: try! ExactDecimal("21600.5"), quantity: try! ExactDecimal("0.01"), side: .buy, time: Int64(Date().timeIntervalSince1970 * 1000),
                receivedAt: Int64(Date().timeIntervalSince1970 * 1_000_000))
            _ = try? runProcess(
                TapeBinary.path, ["produce", "--brokers", bootstrap, "--topic", "tape.trades", "--key", trade.kafkaKey],
                stdin: Data((trade.jsonString + "\n").utf8), timeout: 20)
            return false
        }
        XCTAssertNotNil(became, "trades on tape.trades turn /health ok; stderr:\n\(serve.stderr.suffix(3000))")

        // 3. The broker dies: Kafka is named within 10 s (+ a probe period).
        kill(broker.process.processIdentifier, SIGKILL)
        broker.process.waitUntilExit()
        guard let down = waitFor(base, timeout: 25, { $0.check("kafka") == "failing" }) else {
            return XCTFail("the dead broker never showed on /health; stderr:\n\(serve.stderr.suffix(3000))")
        }
        print("serve health: Kafka failing \(String(format: "%.1f", down.seconds)) s after the broker was killed: \(down.last.reasons)")
        XCTAssertEqual(down.last.status, 503)
        XCTAssertTrue(
            down.last.reasons.contains { $0.hasPrefix("The server's reader") && $0.contains(" had no answer from Kafka at \(bootstrap) for ") },
            "\(down.last.reasons)")
        XCTAssertGreaterThanOrEqual(down.seconds, 7, "Kafka gets 10 s (its last answer may be up to 3 s older than the kill)")

        // 4. The broker is back: the readers' next probe sees it.
        broker = try startBroker()
        guard let back = waitFor(base, timeout: 30, { $0.check("kafka") == "ok" }) else {
            return XCTFail("the broker came back but /health did not see it; stderr:\n\(serve.stderr.suffix(3000))")
        }
        print("serve health: Kafka ok again \(String(format: "%.1f", back.seconds)) s after the broker came back")
    }
}
