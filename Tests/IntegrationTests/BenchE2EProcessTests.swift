import Foundation
import TapeTestSupport
import XCTest

/// `tape bench e2e` as a user runs it, briefly: its own child `tape up --offline`, its own `/ws`
/// client. With `--compare` the two builds run alternately (so both see the same minutes of a
/// shared machine, which moves this benchmark by 2–4x between runs and hours) and the summary has a row each.
final class BenchE2EProcessTests: XCTestCase {
    func testTwoBuildsRunAlternatelyWithASummaryRowEach() throws {
        let tape = TapeBinary.path
        let result = try runProcess(
            tape,
            ["bench", "e2e", "--rates", "500", "--seconds", "2", "--warmup", "2", "--runs", "2", "--candle-emit-ms", "50", "--compare", tape],
            timeout: 240)
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("build A: \(tape)") && lines.contains("build B: \(tape)"), result.stdout)
        // The runs alternate: A, B, A, B.
        let runs = lines.filter { $0.hasPrefix("rate 500/s run ") }.map { String($0.prefix { $0 != ":" }) }
        XCTAssertEqual(runs, ["rate 500/s run 1, build A", "rate 500/s run 1, build B", "rate 500/s run 2, build A", "rate 500/s run 2, build B"])
        // A summary row per build, each with the rate it achieved and a trade p99.
        guard let header = lines.firstIndex(where: { $0.hasPrefix("build  target/s") }) else { return XCTFail(result.stdout) }
        let rows = lines[(header + 1)...].filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        XCTAssertEqual(rows.count, 2, result.stdout)
        for (row, build) in zip(rows, ["A", "B"]) {
            // build, target, achieved, sustained (one or two words), trade p50, p99, max | ...
            let trade = row.split(separator: "|")[0].split(separator: " ").map(String.init)
            XCTAssertEqual(trade.first, build, row)
            XCTAssertEqual(trade.dropFirst().first, "500", row)
            XCTAssertGreaterThan(Double(trade[2]) ?? 0, 250, "achieved trades/s: \(row)")
            let p99 = Double(trade[trade.count - 2]) ?? .nan
            XCTAssertTrue(p99 > 0 && p99 < 60_000, "trade p99 (ms): \(row)")
        }
    }
}
