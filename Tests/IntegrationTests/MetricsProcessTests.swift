import Foundation
import TapeTestSupport
import XCTest

/// `/metrics` of a real `tape up --offline`: valid for promtool, every family with `# HELP` and
/// `# TYPE`, the standard `process_*` series, per-interval candles, per-venue ingest series, and
/// every metric the Grafana dashboard (docs/grafana/tape-dashboard.json) queries.
final class MetricsProcessTests: XCTestCase {
    static let dashboard = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/grafana/tape-dashboard.json")

    /// One sample line: metric name, label text (inside the braces) and value.
    struct Sample {
        var name: String
        var labels: String
        var value: Double
    }

    struct Scrape {
        var text: String
        var samples: [Sample] = []
        /// family name → type, in `# TYPE` order.
        var types: [(name: String, type: String)] = []
        /// Families whose `# TYPE` line did not directly follow their `# HELP` line.
        var withoutHelp: [String] = []

        init(_ text: String) {
            self.text = text
            let lines = text.split(separator: "\n").map(String.init)
            for (i, line) in lines.enumerated() {
                if line.hasPrefix("# TYPE ") {
                    let parts = line.split(separator: " ").map(String.init)
                    guard parts.count == 4 else { continue }
                    types.append((parts[2], parts[3]))
                    if i == 0 || !lines[i - 1].hasPrefix("# HELP \(parts[2]) ") { withoutHelp.append(parts[2]) }
                } else if !line.hasPrefix("#") {
                    let name = String(line.prefix { $0 != "{" && $0 != " " })
                    var labels = ""
                    if let open = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}"), open < close {
                        labels = String(line[line.index(after: open)..<close])
                    }
                    let value = line.split(separator: " ").last.flatMap { Double(String($0).replacingOccurrences(of: "+Inf", with: "inf")) } ?? .nan
                    samples.append(Sample(name: name, labels: labels, value: value))
                }
            }
        }

        func value(_ name: String, _ labels: String = "") -> Double? { samples.first { $0.name == name && $0.labels == labels }?.value }
        var seriesNames: Set<String> { Set(samples.map(\.name)) }
    }

    /// The metric names a PromQL expression reads: label matchers, ranges, strings, grouping
    /// clauses and function names taken out.
    static func metricNames(in expr: String) -> Set<String> {
        var text = expr
        for pattern in [#""(\\.|[^"\\])*""#, #"\{[^}]*\}"#, #"\[[^\]]*\]"#, #"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        // Possessive `*+`: a function name is never matched shortened (`histogram_quantil`).
        let identifier = try! NSRegularExpression(pattern: #"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*+(?!\s*\()"#)
        let keywords: Set<String> = ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"]
        var names: Set<String> = []
        for m in identifier.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            guard let r = Range(m.range, in: text) else { continue }
            let word = String(text[r])
            if !keywords.contains(word.lowercased()) { names.insert(word) }
        }
        return names
    }

    /// Every `expr` of the dashboard, panels inside rows included.
    static func expressions(in json: Any) -> [String] {
        if let object = json as? [String: Any] {
            var out: [String] = []
            if let expr = object["expr"] as? String { out.append(expr) }
            for (_, value) in object { out += expressions(in: value) }
            return out
        }
        if let array = json as? [Any] { return array.flatMap { expressions(in: $0) } }
        return []
    }

    func testMetricNameExtraction() {
        XCTAssertEqual(
            Self.metricNames(in: #"histogram_quantile(0.99, sum by (le, topic) (rate(tape_x_bucket{instance=~"$instance",a="b(c)"}[$__rate_interval])))"#),
            ["tape_x_bucket"])
        XCTAssertEqual(Self.metricNames(in: "process_open_fds{a=\"1\"} / process_max_fds"), ["process_open_fds", "process_max_fds"])
        XCTAssertEqual(Self.metricNames(in: "sum(rate(a_total[5m])) by (exchange) > 0.5"), ["a_total"])
        XCTAssertEqual(Self.metricNames(in: "max without (check) (tape_health_check)"), ["tape_health_check"])
    }

    func testUpOfflineMetricsPassPromtoolAndCoverTheGrafanaDashboard() throws {
        // CI installs promtool (`make test-deps`): missing is a failure, not a skip.
        let promtool = try Executables.require("promtool")
        let dashboardJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.dashboard))
        let dir = try temporaryDirectory("metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let startedAt = Date().timeIntervalSince1970
        let up = try ChildProcess([
            "up", "--offline", "--data-dir", dir.appendingPathComponent("data").path,
            "--listen", "127.0.0.1:\(kafkaPort)", "--http", "127.0.0.1:\(httpPort)",
            "--rate", "100", "--intervals", "1s,1m", "--symbols", "BTC_USDT,ETH_USDT",
        ])
        defer { up.interrupt(timeout: 10) }
        let base = "http://127.0.0.1:\(httpPort)"
        XCTAssertTrue(waitForHealth(base), "tape up did not serve an ok /health within 60 s; stderr:\n\(up.stderr.suffix(3000))")

        // Until trades and candles of both intervals flowed and the processor's and server's lag were measured.
        var scrape = Scrape("")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let r = try httpGet(base + "/metrics")
            XCTAssertEqual(r.status, 200)
            scrape = Scrape(r.body)
            if (scrape.value("tape_trades_in_total", #"exchange="poloniex""#) ?? 0) > 0,
                (scrape.value("tape_candles_emitted_total", #"interval="1s""#) ?? 0) > 0,
                (scrape.value("tape_candles_emitted_total", #"interval="1m""#) ?? 0) > 0,
                scrape.value("tape_consumer_lag_messages", #"group="tape-processor",topic="tape.trades""#) != nil,
                scrape.value("tape_consumer_lag_messages", #"group="tape-serve",topic="tape.trades""#) != nil
            {
                break
            }
            usleep(500_000)
        }
        let text = scrape.text
        XCTAssertGreaterThan(scrape.value("tape_trades_in_total", #"exchange="poloniex""#) ?? 0, 0, text)

        // (a) promtool: valid exposition, and no lint findings.
        let check = try runProcess(promtool, ["check", "metrics"], stdin: text, timeout: 30)
        let findings = (check.stdout + check.stderr).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(check.status, 0, "promtool check metrics failed: \(findings)")
        XCTAssertEqual(findings, "", "promtool lint findings")

        // (b) Every family has HELP right before TYPE, once; the samples belong to declared families.
        XCTAssertEqual(scrape.withoutHelp, [], "families without # HELP")
        let families = Dictionary(scrape.types.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(families.count, scrape.types.count, "a family declared twice")
        for sample in scrape.samples {
            let family = families[sample.name] != nil ? sample.name : ["_bucket", "_sum", "_count"].reduce(sample.name) { n, s in n.hasSuffix(s) ? String(n.dropLast(s.count)) : n }
            XCTAssertEqual(families[family].map { sample.name == family || $0 == "histogram" }, true, "\(sample.name) has no # TYPE")
        }
        // Process metrics, with sane values.
        let now = Date().timeIntervalSince1970
        for (name, type) in [
            ("process_resident_memory_bytes", "gauge"), ("process_virtual_memory_bytes", "gauge"), ("process_cpu_seconds_total", "counter"),
            ("process_open_fds", "gauge"), ("process_max_fds", "gauge"), ("process_start_time_seconds", "gauge"),
        ] {
            XCTAssertEqual(families[name], type, name)
        }
        let rss = scrape.value("process_resident_memory_bytes") ?? 0
        XCTAssertGreaterThan(rss, 10_000_000, "tape up holds more than 10 MB")
        XCTAssertGreaterThanOrEqual(scrape.value("process_virtual_memory_bytes") ?? 0, rss)
        let start = scrape.value("process_start_time_seconds") ?? 0
        XCTAssertGreaterThanOrEqual(start, startedAt - 2, "started after the test launched it")
        XCTAssertLessThanOrEqual(start, now + 1)
        XCTAssertGreaterThan(scrape.value("process_cpu_seconds_total") ?? 0, 0)
        let openFDs = scrape.value("process_open_fds") ?? 0
        XCTAssertGreaterThan(openFDs, 3)
        XCTAssertGreaterThanOrEqual(scrape.value("process_max_fds") ?? 0, openFDs)
        // Candles per interval, no aggregate label value beside them.
        let candleIntervals = Set(scrape.samples.filter { $0.name == "tape_candles_emitted_total" }.map(\.labels))
        XCTAssertEqual(candleIntervals, [#"interval="1s""#, #"interval="1m""#])
        // Every ingest series names its venue.
        for name in [
            "tape_frames_in_total", "tape_trades_in_total", "tape_parse_errors_total", "tape_reconnects_total", "tape_book_updates_total",
            "tape_book_resyncs_total", "tape_ingest_dead_letters_total", "tape_backfill_requests_total", "tape_backfill_trades_total",
            "tape_backfill_failures_total", "tape_gaps_total", "tape_gaps_repaired_total", "tape_gaps_open",
        ] {
            let series = scrape.samples.filter { $0.name == name }
            XCTAssertFalse(series.isEmpty, "\(name) missing")
            for s in series { XCTAssertTrue(s.labels.contains(#"exchange="poloniex""#), "\(name){\(s.labels)}") }
        }
        XCTAssertGreaterThan(scrape.value("tape_backfill_requests_total", #"exchange="poloniex""#) ?? 0, 0, "the backfill after subscribing asks REST")
        XCTAssertNotNil(scrape.value("tape_consumer_lag_messages", #"group="tape-processor",topic="tape.trades""#), "the processor's lag")
        XCTAssertNotNil(scrape.value("tape_consumer_lag_messages", #"group="tape-serve",topic="tape.trades""#), "the server's lag")

        // (c) Every metric the dashboard queries is a series of this scrape.
        let expressions = Self.expressions(in: dashboardJSON)
        XCTAssertGreaterThan(expressions.count, 20)
        let exported = scrape.seriesNames
        for expr in expressions {
            let names = Self.metricNames(in: expr)
            XCTAssertFalse(names.isEmpty, "no metric in \(expr)")
            for name in names { XCTAssertTrue(exported.contains(name), "the dashboard queries \(name), which /metrics does not export: \(expr)") }
        }
        let inputs = (dashboardJSON as? [String: Any])?["__inputs"] as? [[String: Any]] ?? []
        XCTAssertEqual(inputs.first?["name"] as? String, "DS_PROMETHEUS")

        XCTAssertEqual(up.interrupt(timeout: 20), 0, up.stderr.suffix(3000).description)
    }
}
