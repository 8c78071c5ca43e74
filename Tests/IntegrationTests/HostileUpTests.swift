import Foundation
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `tape up` under systemd's default open-files limit (`ulimit -n 1024`) while clients hoard
/// connections to its broker and its HTTP server: it must stay up, keep ingesting, and answer a
/// real client on each side. (Before: ~1000 idle connections killed it within 30 s.)
final class HostileUpTests: XCTestCase {
    func testConnectionHoardersUnderUlimit1024() throws {
        var l = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        if l.rlim_cur < 4096 && l.rlim_max > l.rlim_cur {
            l.rlim_cur = min(l.rlim_max, 65_536)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        }
        let dir = try temporaryDirectory("hostile-up")
        defer { try? FileManager.default.removeItem(at: dir) }
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let args = [
            "up", "--offline", "--data-dir", dir.appendingPathComponent("data").path, "--listen", "127.0.0.1:\(kafkaPort)", "--http", "127.0.0.1:\(httpPort)",
            "--rate", "100", "--symbols", "BTC_USDT",
        ].map { "'\($0)'" }.joined(separator: " ")
        let up = try ChildProcess(["-c", "ulimit -n 1024 && exec '\(TapeBinary.path)' \(args)"], name: "up", executable: "/bin/sh")
        defer { up.interrupt(timeout: 10) }
        let base = "http://127.0.0.1:\(httpPort)"
        XCTAssertTrue(waitForHealth(base), "tape up did not serve /health within 60 s: \(up.stderr.suffix(2000))")

        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<1_000 {
            let fd = Loopback.connect(port: kafkaPort)
            if fd >= 0 { fds.append(fd) }
        }
        for _ in 0..<400 {
            let fd = Loopback.connect(port: httpPort)
            if fd >= 0 { fds.append(fd) }
        }
        let tradesBefore = try tradesSeen(base)
        sleep(15)
        XCTAssertTrue(up.process.isRunning, "tape up survived 1,400 hoarded connections: \(up.stderr.suffix(3000))")
        // Real clients on both sides get through (idle hoarders make room).
        let health = try httpGet(base + "/health")
        XCTAssertEqual(health.status, 200, health.body)
        if let kcat = Executables.which("kcat") {
            let r = try runProcess(kcat, ["-b", "127.0.0.1:\(kafkaPort)", "-C", "-t", "tape.trades", "-o", "beginning", "-c", "10", "-q"], timeout: 30)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertFalse(r.stdout.isEmpty, "recent trades are readable")
        }
        // The pipeline kept working through it.
        let tradesAfter = try tradesSeen(base)
        XCTAssertGreaterThan(tradesAfter, tradesBefore, "trades kept flowing")
        XCTAssertFalse(up.stderr.contains("Too many open files"), up.stderr.suffix(3000).description)
        // The limits show in /metrics.
        let metrics = try httpGet(base + "/metrics").body
        func value(_ prefix: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        let refused =
            (value("tape_broker_connections_closed_total{reason=\"refused\"}") ?? 0) + (value("tape_broker_connections_closed_total{reason=\"evicted\"}") ?? 0)
        XCTAssertGreaterThan(refused, 0, metrics)
        XCTAssertGreaterThan(value("tape_broker_connections ") ?? 0, 100, metrics)
        let httpRefused = (value("tape_http_rejected_total{reason=\"refused\"}") ?? 0) + (value("tape_http_rejected_total{reason=\"evicted\"}") ?? 0)
        XCTAssertGreaterThan(httpRefused, 0, metrics)
    }

    func tradesSeen(_ base: String) throws -> Int {
        let r = try httpGet(base + "/health")
        let obj = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]
        return (obj?["tradesSeen"] as? Int) ?? -1
    }
}
