import Foundation
import MarketData
import TapeMetrics
import TapeServer
import TapeTestSupport
import XCTest

/// `/proc` parsing for the `process_*` metrics, and the `# HELP` / `# TYPE` rendering of `/metrics`.
final class MetricsTextTests: XCTestCase {
    // A real /proc/self/stat line (52 fields), with a command name holding spaces and parentheses.
    static let statLine =
        "4242 (tape (up) x) S 1 4242 4242 0 -1 4194560 13000 0 2 0 1234 567 0 0 20 0 9 0 98765 2147483648 5120 "
        + "18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

    func testParsesStatFieldsCountedFromTheLastParenthesis() throws {
        let fields = try XCTUnwrap(ProcessStats.parseStat(Array(Self.statLine.utf8)))
        XCTAssertEqual(fields.userTicks, 1234)
        XCTAssertEqual(fields.systemTicks, 567)
        XCTAssertEqual(fields.startTicks, 98765)
        XCTAssertEqual(fields.virtualBytes, 2_147_483_648)
        XCTAssertEqual(fields.residentPages, 5120)
    }

    func testCombinesTicksPagesAndBootTime() throws {
        let fields = try XCTUnwrap(ProcessStats.parseStat(Array(Self.statLine.utf8)))
        let boot = try XCTUnwrap(ProcessStats.parseBootTime(Array("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n".utf8)))
        XCTAssertEqual(boot, 1_700_000_000)
        let s = ProcessStats.from(stat: fields, bootTime: boot, ticksPerSecond: 100, pageSize: 4096, openFDs: 12, maxFDs: 1024)
        XCTAssertEqual(s.cpuSeconds ?? -1, 18.01, accuracy: 1e-9)
        XCTAssertEqual(s.residentMemoryBytes, 5120 * 4096)
        XCTAssertEqual(s.virtualMemoryBytes, 2_147_483_648)
        XCTAssertEqual(s.startTimeSeconds ?? -1, 1_700_000_987.65, accuracy: 1e-6)
        XCTAssertEqual(s.openFDs, 12)
        XCTAssertEqual(s.maxFDs, 1024)
        // No tick rate or page size: those values are unknown, not divided by zero.
        let broken = ProcessStats.from(stat: fields, bootTime: boot, ticksPerSecond: 0, pageSize: -1, openFDs: nil, maxFDs: nil)
        XCTAssertNil(broken.cpuSeconds)
        XCTAssertNil(broken.startTimeSeconds)
        XCTAssertNil(broken.residentMemoryBytes)
        XCTAssertEqual(broken.virtualMemoryBytes, 2_147_483_648)
        XCTAssertNil(ProcessStats.from(stat: fields, bootTime: nil, ticksPerSecond: 100, pageSize: 4096, openFDs: nil, maxFDs: nil).startTimeSeconds)
    }

    func testRejectsMalformedProcTextWithoutTrapping() {
        XCTAssertNil(ProcessStats.parseStat([]))
        XCTAssertNil(ProcessStats.parseStat(Array("4242 tape S 1 2 3".utf8)), "no parenthesis")
        XCTAssertNil(ProcessStats.parseStat(Array("4242 (tape) S 1 2 3 4 5".utf8)), "too few fields")
        let overflow = Self.statLine.replacingOccurrences(of: " 1234 567 ", with: " 99999999999999999999 567 ")
        XCTAssertNil(ProcessStats.parseStat(Array(overflow.utf8)), "a number above UInt64.max")
        let negative = Self.statLine.replacingOccurrences(of: " 1234 567 ", with: " -1234 567 ")
        XCTAssertNil(ProcessStats.parseStat(Array(negative.utf8)))
        XCTAssertEqual(ProcessStats.parseUInt64("18446744073709551615".utf8), UInt64.max)
        XCTAssertNil(ProcessStats.parseUInt64("18446744073709551616".utf8))
        XCTAssertNil(ProcessStats.parseUInt64("".utf8))
        XCTAssertNil(ProcessStats.parseUInt64("1e3".utf8))
        XCTAssertNil(ProcessStats.parseBootTime(Array("btime\nbtime x\nbtime 1 2\n".utf8)))
        XCTAssertNil(ProcessStats.parseBootTime(Array("btime 99999999999999999999\n".utf8)))
        // Seeded mutations of a valid line (bytes replaced, cut, duplicated): never a trap; a
        // result, when there is one, holds numbers that were in the text.
        var rng = SplitMix64(seed: 17)
        let base = Array(Self.statLine.utf8)
        let alphabet = Array("0123456789 ()-\n\u{0}x".utf8) + [0xFF, 0xC3]
        for _ in 0..<TestBudget.iterations(20_000) {
            var bytes = base
            for _ in 0..<Int(rng.next() % 6) + 1 {
                guard !bytes.isEmpty else { break }
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: bytes.removeSubrange(at..<min(bytes.count, at + Int(rng.next() % 40)))
                default: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + Int(rng.next() % 40))], at: at)
                }
            }
            _ = ProcessStats.parseStat(bytes)
            _ = ProcessStats.parseBootTime(bytes)
        }
    }

    func testReadsThisProcess() throws {
        let s = ProcessStats.current()
        let rss = try XCTUnwrap(s.residentMemoryBytes)
        XCTAssertGreaterThan(rss, 1_000_000, "a Swift test process holds more than 1 MB")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(s.virtualMemoryBytes), rss)
        let start = try XCTUnwrap(s.startTimeSeconds)
        let now = Date().timeIntervalSince1970
        XCTAssertLessThanOrEqual(start, now + 2)
        XCTAssertGreaterThan(start, now - 6 * 3600, "the test process started within the last hours")
        let openFDs = try XCTUnwrap(s.openFDs)
        XCTAssertGreaterThanOrEqual(openFDs, 3, "stdin, stdout, stderr")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(s.maxFDs), openFDs)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(s.cpuSeconds), 0)
        // Files opened show (32 of them: other tests' threads may open or close a few meanwhile).
        let fds = (0..<32).map { _ in open("/dev/null", O_RDONLY) }
        defer { for fd in fds { close(fd) } }
        XCTAssertTrue(fds.allSatisfy { $0 >= 0 })
        XCTAssertGreaterThanOrEqual(ProcessStats.current().openFDs ?? 0, openFDs + 24)
    }

    func testAddsHelpBeforeEachTypeLineOnce() {
        let scrape = """
            # TYPE a_total counter
            a_total{x="1"} 3
            # HELP b already has help
            # TYPE b gauge
            b 1.5
            # TYPE unknown gauge
            unknown 0

            """
        let out = String(decoding: MetricsText.addingHelp(to: Array(scrape.utf8), help: ["a_total": #"counts \ things"#, "b": "other"]), as: UTF8.self)
        XCTAssertEqual(
            out,
            """
            # HELP a_total counts \\\\ things
            # TYPE a_total counter
            a_total{x="1"} 3
            # HELP b already has help
            # TYPE b gauge
            b 1.5
            # TYPE unknown gauge
            unknown 0

            """)
        let multiline = String(decoding: MetricsText.addingHelp(to: Array("# TYPE c gauge\nc 1".utf8), help: ["c": "two\nlines"]), as: UTF8.self)
        XCTAssertEqual(multiline, "# HELP c two\\nlines\n# TYPE c gauge\nc 1")
    }

    func testProcessFamiliesAndValueFormat() {
        XCTAssertEqual(MetricsText.formatValue(5_120 * 4_096), "20971520")
        XCTAssertEqual(MetricsText.formatValue(0.25), "0.25")
        XCTAssertEqual(MetricsText.formatValue(.infinity), "+Inf")
        XCTAssertEqual(MetricsText.formatValue(.nan), "NaN")
        XCTAssertEqual(MetricsText.formatValue(1e20), "1e+20")
        var out: [UInt8] = []
        MetricsText.appendProcessFamilies(ProcessStats(cpuSeconds: 1.5, residentMemoryBytes: 4096, startTimeSeconds: 1_700_000_000.5), to: &out)
        XCTAssertEqual(
            String(decoding: out, as: UTF8.self),
            """
            # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
            # TYPE process_cpu_seconds_total counter
            process_cpu_seconds_total 1.5
            # HELP process_resident_memory_bytes Resident memory size in bytes.
            # TYPE process_resident_memory_bytes gauge
            process_resident_memory_bytes 4096
            # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
            # TYPE process_start_time_seconds gauge
            process_start_time_seconds 1700000000.5

            """)
    }

    func testEveryTapeMetricHasOneLineHelp() {
        XCTAssertEqual(Set(TapeMetrics.allNames).count, TapeMetrics.allNames.count, "a name listed twice")
        XCTAssertEqual(Set(TapeMetrics.help.keys), Set(TapeMetrics.allNames))
        for (name, text) in TapeMetrics.help {
            XCTAssertFalse(text.isEmpty, name)
            XCTAssertFalse(text.contains("\n"), name)
        }
    }

    /// The scrape `/metrics` serves: every family has `# HELP` then `# TYPE`, once; process_* are there.
    func testScrapeHasHelpAndTypeForEveryFamily() throws {
        MetricsExporter.bootstrap()
        TapeMetricsProbe.touchAll()
        let text = String(decoding: MetricsExporter.scrape(), as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)
        var typed: [String] = []
        for (i, line) in lines.enumerated() where line.hasPrefix("# TYPE ") {
            let name = String(line.dropFirst(7).prefix { $0 != " " })
            typed.append(name)
            XCTAssertTrue(i > 0 && lines[i - 1].hasPrefix("# HELP \(name) "), "no # HELP right before \(line)")
        }
        XCTAssertEqual(Set(typed).count, typed.count, "a family declared twice")
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds", TapeMetrics.tradesIn, TapeMetrics.candlesEmitted] {
            XCTAssertTrue(typed.contains(name), "\(name) missing from\n\(text.prefix(3000))")
        }
        try PrometheusText.validate(text)
    }
}

/// `tape_server_trade_delay_seconds`: ingestion's receipt → the server's read, per live trade.
final class TradeDelayMetricTests: XCTestCase {
    func samples(_ suffix: String) -> Double {
        let text = String(decoding: MetricsExporter.scrape(), as: UTF8.self)
        let name = TapeMetrics.serverTradeDelay + suffix
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
    }

    func testRecordsTheDelayOfEachLiveTradeAndSkipsImpossibleStamps() {
        let state = TapeServerState()
        let market = MarketID("delayx:ABC-USDT")!
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let count = samples("_count")
        let upTo7ms = samples(#"_bucket{le="0.007"}"#)
        let upTo10ms = samples(#"_bucket{le="0.01"}"#)

        var trade = Fixture.trade(market, id: 1, price: "1.5", time: now / 1000)
        trade.receivedAt = Int64(Date().timeIntervalSince1970 * 1_000_000) - 8_000  // read 8 ms after the frame arrived
        state.accept(trade)
        // Stamps a record may carry that are no delay: in the future, zero, far past, the extremes.
        for (id, stamp) in [(2, now + 60_000_000), (3, 0), (4, now - 7_200_000_000), (5, Int64.min), (6, Int64.max)] {
            var other = Fixture.trade(market, id: id, price: "1.5", time: now / 1000)
            other.receivedAt = stamp
            state.accept(other)
        }
        XCTAssertEqual(state.tradesSeen.load(ordering: .relaxed), 6, "every trade is still taken")
        XCTAssertEqual(samples("_count") - count, 1, "only the trade with a plausible stamp is recorded")
        XCTAssertEqual(samples(#"_bucket{le="0.01"}"#) - upTo10ms, 1)
        XCTAssertEqual(samples(#"_bucket{le="0.007"}"#) - upTo7ms, 0, "8 ms is above the 7 ms bucket")
    }
}
