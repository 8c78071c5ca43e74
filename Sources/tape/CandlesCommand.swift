import ArgumentParser
import Foundation
import MarketData
import Processing

struct CandlesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "candles",
        abstract: "Print candles from the SQLite history written by `tape process`."
    )

    @Option(help: "Instrument as exchange:SYMBOL, e.g. poloniex:BTC-USDT (omit to list the instruments stored).")
    var symbol: String?
    @Option(help: "Interval, e.g. 1m.") var interval: String = "1m"
    @Option(help: "First window start: ISO 8601 (2022-08-21T23:12:00Z) or ms since the epoch.") var from: String?
    @Option(help: "End (exclusive) of window starts: ISO 8601 or ms since the epoch.") var to: String?
    @Option(help: "At most this many (the newest) candles.") var limit: Int?
    @Option(help: "Output: table or json (one candle value a line).") var format: Format = .table
    @Option(help: "SQLite candle history.") var db: String = "./tape-data/candles.sqlite"

    enum Format: String, ExpressibleByArgument { case table, json }

    static func parseTime(_ text: String, flag: String) throws -> Int64 {
        if let ms = Int64(text) { return ms }
        let iso = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            iso.formatOptions = options
            if let date = iso.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        throw ValidationError("--\(flag) '\(text)' is neither ISO 8601 (2022-08-21T23:12:00Z) nor milliseconds since the epoch.")
    }

    func validate() throws {
        guard CandleInterval(interval) != nil else { throw ValidationError("--interval '\(interval)' is not an interval from 1s to 1d, e.g. 1m.") }
        if let from { _ = try Self.parseTime(from, flag: "from") }
        if let to { _ = try Self.parseTime(to, flag: "to") }
        if let symbol, !symbol.contains(":") { throw ValidationError("--symbol must be exchange:SYMBOL, e.g. poloniex:BTC-USDT.") }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive.") }
    }

    func run() async throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: db, isDirectory: &isDirectory) else {
            throw TapeFailure("No candle history at \(db): run `tape process` first, or pass --db.")
        }
        guard !isDirectory.boolValue else { throw TapeFailure("--db \(db) is a directory; give the candle history file with --db FILE.") }
        let store = try CandleStore(path: db)
        guard let symbol else {
            for s in try store.symbols() {
                print("\(s.exchange):\(s.symbol)  \(s.intervals.map(\.description).joined(separator: ","))")
            }
            return
        }
        let parts = symbol.split(separator: ":", maxSplits: 1)
        let candles = try store.candles(
            exchange: Exchange(String(parts[0])), symbol: Symbol(normalizing: String(parts[1])), interval: CandleInterval(interval)!,
            from: try from.map { try Self.parseTime($0, flag: "from") }, to: try to.map { try Self.parseTime($0, flag: "to") },
            limit: limit)
        let out = OutputBuffer()
        switch format {
        case .json:
            for c in candles {
                out.write(c.jsonBytes)
                out.write("\n")
            }
        case .table:
            let header = ["start (UTC)", "open", "high", "low", "close", "volume", "quoteVolume", "buy", "sell", "trades", "vwap", "rev", "final"]
            let iso = ISO8601DateFormatter()
            var rows = [header]
            for c in candles {
                rows.append([
                    iso.string(from: Date(timeIntervalSince1970: Double(c.start) / 1000)), c.open.description, c.high.description,
                    c.low.description, c.close.description, c.volume.description, c.quoteVolume.description,
                    c.buyVolume.description, c.sellVolume.description, String(c.trades), c.vwap?.description ?? "-",
                    String(c.revision), c.isFinal ? "yes" : "no",
                ])
            }
            var widths = header.map { _ in 0 }
            for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
            for row in rows {
                let line = row.enumerated().map { i, cell in
                    i == 0
                        ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[i] - cell.count) + cell
                }.joined(separator: "  ")
                out.write(line + "\n")
            }
            if candles.isEmpty { out.write("(no candles for \(symbol) \(interval) in that range)\n") }
        }
        out.flush()
    }
}
