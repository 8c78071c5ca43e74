import Foundation
import MarketData
import Processing
import TapeTestSupport
import Testing

/// `tape candles` and `tape process` as a user runs them.
@Suite("tape candles / tape process command line")
struct CommandLineTests {
    func run(_ arguments: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
        try runProcess(TapeBinary.path, arguments, timeout: timeout)
    }

    @Test func candlesPrintsTableAndJSONFromTheStore() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).sqlite").path
        let store = try CandleStore(path: path)
        var generator = TradeGenerator(seed: 21)
        let trades = generator.trades(2_000)
        let candles = BatchCandles.compute(trades.enumerated().map { .init(trade: $1, sequence: Int64($0)) }, intervals: [.oneMinute])
        try store.upsert(Array(candles.values))
        let expected = candles.values.filter { $0.exchange == .poloniex && $0.symbol.rawValue == "BTC-USDT" }.sorted { $0.start < $1.start }

        let json = try run(["candles", "--db", path, "--symbol", "poloniex:BTC-USDT", "--interval", "1m", "--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let lines = json.stdout.split(separator: "\n")
        let decoded = try lines.map { try Candle(json: String($0)) }
        #expect(decoded == expected)

        let from = expected[2].start
        let iso = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(from) / 1000))
        let table = try run(["candles", "--db", path, "--symbol", "poloniex:BTC-USDT", "--interval", "1m", "--from", iso, "--to", String(from + 120_000)])
        #expect(table.status == 0, "\(table.stderr)")
        let rows = table.stdout.split(separator: "\n")
        #expect(rows.first?.hasPrefix("start (UTC)") == true)
        #expect(rows.count == 3, "header + two minutes: \(table.stdout)")
        #expect(rows.dropFirst().first?.contains(expected[2].close.description) == true)

        let list = try run(["candles", "--db", path])
        #expect(list.stdout.contains("poloniex:BTC-USDT  1m"))

        let bad = try run(["candles", "--db", path, "--symbol", "poloniex:BTC-USDT", "--from", "yesterday"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("neither ISO 8601"))
        let missing = try run(["candles", "--db", path + ".missing", "--symbol", "poloniex:BTC-USDT"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("No candle history"))
    }

    @Test func processWithoutABrokerSaysSoInOneSentence() throws {
        let result = try run(["process", "--brokers", "127.0.0.1:1", "--no-db", "--progress", "0"], timeout: 60)
        #expect(result.status != 0)
        #expect(result.stderr.contains("no Kafka broker answered at 127.0.0.1:1"), "\(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"))
        let badInterval = try run(["process", "--intervals", "1m,2w", "--no-db"])
        #expect(badInterval.status != 0)
        #expect(badInterval.stderr.contains("'2w' is not a candle interval"))
    }

    /// Durations that overflow Int64 milliseconds, or would push window arithmetic near its end,
    /// are refused with a sentence (the first one trapped before).
    @Test func absurdDurationsAreRefusedNotTrapped() throws {
        for flags in [
            ["--grace", "9999999999999999d"], ["--allowed-lateness", "400d"], ["--emit-interval", "9223372036854775807s"],
            ["--commit-interval", "400d"], ["--commit-interval", "0s"],
        ] {
            let result = try run(["process", "--brokers", "127.0.0.1:1", "--no-db", "--progress", "0"] + flags)
            #expect(result.status != 0, "\(flags)")
            #expect(!result.stderr.contains("Fatal error"), "\(flags): \(result.stderr)")
            #expect(result.stderr.contains(flags[0]), "\(flags): \(result.stderr)")
        }
    }

    /// A commit interval is one Kafka transaction: longer than a cluster lets a transaction live
    /// (15 min by default) is refused up front, unless transactions are off.
    @Test func aCommitIntervalLongerThanATransactionMayLiveIsRefused() throws {
        for flags in [["--emit-interval", "20m"], ["--commit-interval", "1h"], ["--commit-interval", "15m", "--transactions", "on"]] {
            let result = try run(["process", "--brokers", "127.0.0.1:1", "--no-db", "--progress", "0"] + flags)
            #expect(result.status == 64, "\(flags): \(result.stderr)")
            #expect(result.stderr.contains("transaction.max.timeout.ms"), "\(flags): \(result.stderr)")
        }
        // Without transactions the same interval is fine (it then fails on the missing broker).
        let off = try run(
            ["process", "--brokers", "127.0.0.1:1", "--no-db", "--progress", "0", "--emit-interval", "20m", "--transactions", "off"], timeout: 60)
        #expect(off.status == 1, "\(off.stderr)")
        #expect(off.stderr.contains("no Kafka broker answered"), "\(off.stderr)")
    }
}
