import ArgumentParser
import ExchangeSimulator
import Exchanges
import Foundation
import MarketData

/// `tape bench book`: how fast one core turns raw book frames into applied level updates.
struct BenchBookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "book",
        abstract: "Parse raw order book frames (one a line) and apply every level to in-memory books, in a loop on one core; print level updates/s.",
        discussion: """
            --synthetic N drives the venue's simulator (its book channel, as `tape simulate` sends it) for N
            orders and benchmarks the frames it wrote; --write-frames FILE keeps them for --file runs.
            Compare with `tape bench parse` (trades) on the same machine.
            """)

    @Option(help: "Exchange whose frame format the file holds: poloniex, binance, coinbase or kraken.")
    var exchange: String = "binance"
    @Option(help: "Frames file: one raw websocket text frame a line.") var file: String?
    @Option(help: "Instead of --file: frames of this many simulated orders on the venue's book channel.") var synthetic: Int?
    @Option(name: .customLong("write-frames"), help: "With --synthetic: also write the generated frames to FILE.") var writeFrames: String?
    @Flag(
        name: .customLong("parse-only"),
        help: "Apply parsed levels to plain books, without the venue's synchronizer (sequence checks, Kraken's checksum, the records).")
    var parseOnly = false
    @Option(help: "Measured runs; the median is reported.") var runs: Int = 5
    @Option(help: "Minimum seconds per run.") var seconds: Double = 1

    func validate() throws {
        guard let adapter = Venues.adapter(named: exchange) else {
            throw ValidationError("No frame parser for exchange \"\(exchange)\" (supported: \(Venues.names.joined(separator: ", "))).")
        }
        guard adapter.supportsBooks else { throw ValidationError("\(exchange) has no order books in Tape.") }
        if (file == nil) == (synthetic == nil) { throw ValidationError("Give either --file FRAMES or --synthetic N.") }
        if let synthetic, synthetic < 1 || synthetic > 10_000_000 { throw ValidationError("--synthetic must be from 1 to 10000000.") }
        if runs < 1 { throw ValidationError("--runs must be at least 1.") }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be between 0 and 600.") }
    }

    func run() throws {
        let venue = exchange.lowercased()
        var lines: [[UInt8]]
        var snapshots: [BookFrame] = []
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("Cannot read \(file): check the path and permissions.")
            }
            lines = ParseBenchmark.lines(fromFileContents: [UInt8](data))
        } else {
            let generated = try Self.simulatedFrames(venue: venue, orders: synthetic ?? 1)
            lines = generated.frames.map { Array($0.utf8) }
            snapshots = generated.snapshots
            if let writeFrames {
                var out: [UInt8] = []
                for line in lines { out += line + [UInt8(ascii: "\n")] }
                guard FileManager.default.createFile(atPath: writeFrames, contents: Data(out)) else {
                    throw ValidationError("Cannot write \(writeFrames).")
                }
            }
        }
        guard !lines.isEmpty else { throw ValidationError("No frames to parse.") }
        let markets = Self.markets(venue: venue)
        if file != nil && venue == "binance" && !parseOnly {
            printError("note: a Binance frames file has no REST snapshot: every book is resynchronized; use --synthetic or --parse-only")
        }
        func once(_ minimum: Double) throws -> BookBenchmark.Result {
            try BookBenchmark.run(
                lines: lines, exchange: Exchange(venue), markets: markets, synchronize: !parseOnly, snapshots: snapshots, minimumSeconds: minimum)
        }
        _ = try once(min(seconds, 0.2))
        var results: [BookBenchmark.Result] = []
        for i in 1...runs {
            let result = try once(seconds)
            print("run \(i): \(result)")
            results.append(result)
        }
        let wall = results.map(\.levelsPerSecond).sorted()[results.count / 2]
        let cpu = results.map(\.levelsPerCPUSecond).sorted()[results.count / 2]
        print(
            "median: \(Int(wall)) level updates/s wall, \(Int(cpu)) per CPU-second, over \(runs) runs (\(lines.count) frames, exchange \(venue), \(parseOnly ? "parse + apply" : "parse + synchronize + apply"))"
        )
        if let errors = results.first?.errors, errors > 0 { print("warning: \(errors) frames per pass failed to parse") }
    }

    /// The simulator's markets as the venue lists them (Binance's parser needs them to split symbols).
    static func markets(venue: String) -> [ListedMarket] {
        let instruments = MarketSimulator.defaultInstruments.map(\.nativeSymbol)
        switch venue {
        case "binance": return instruments.map { ListedMarket(nativeSymbol: BinanceVenue.nativeSymbol(instrument: $0), symbol: Symbol(normalizing: $0), isTrading: true) }
        case "coinbase": return instruments.map { ListedMarket(nativeSymbol: CoinbaseVenue.nativeSymbol(instrument: $0)) }
        case "kraken": return instruments.map { ListedMarket(nativeSymbol: KrakenVenue.nativeSymbol(instrument: $0)) }
        default: return instruments.map { ListedMarket(nativeSymbol: $0) }
        }
    }

    static func simulatedFrames(venue: String, orders: Int) throws -> (frames: [String], snapshots: [BookFrame]) {
        switch venue {
        case "binance": return frames(BinanceVenue.self, Binance.self, orders: orders)
        case "coinbase": return frames(CoinbaseVenue.self, Coinbase.self, orders: orders)
        case "kraken": return frames(KrakenVenue.self, Kraken.self, orders: orders)
        default: return frames(PoloniexVenue.self, Poloniex.self, orders: orders)
        }
    }

    /// What the venue's simulated session sends a client subscribed to every market's book while
    /// the market makes `orders` orders: snapshots, then updates (trade frames are left out).
    static func frames<V: SimulatedVenue, A: ExchangeAdapter>(_ venue: V.Type, _ adapter: A.Type, orders: Int) -> (
        frames: [String], snapshots: [BookFrame]
    ) {
        var market = MarketSimulator()
        // The REST snapshots a venue without stream snapshots (Binance) would be primed with.
        var snapshots: [BookFrame] = []
        if adapter.bookSnapshotPath(market: ListedMarket(nativeSymbol: "X")) != nil {
            for instrument in market.nativeSymbols {
                guard let book = market.book(nativeSymbol: instrument) else { continue }
                snapshots.append(
                    BookFrame(
                        nativeSymbol: V.nativeSymbol(instrument: instrument), kind: .snapshot, bids: book.bids(), asks: book.asks(),
                        time: market.configuration.startTime, receivedAt: 0, sequence: market.bookUpdateId(nativeSymbol: instrument)))
            }
        }
        let instruments = market.nativeSymbols
        let start = market.configuration.startTime
        // A client that never goes quiet for the venue (the generator sends no pings).
        var settings = SimulatedSessionConfiguration()
        settings.idleTimeout = .max / 4
        var session = V.makeSession(instruments: instruments, configuration: settings, connectedAt: start)
        var sent: [String] = []
        func collect(_ actions: [SessionAction]) {
            for case .send(let text) in actions { sent.append(text) }
        }
        for message in adapter.bookSubscribeMessages(nativeSymbols: instruments.map(V.nativeSymbol(instrument:))) {
            collect(session.received(message, at: start))
        }
        for instrument in session.takeBookSnapshotRequests() {
            if let book = market.book(nativeSymbol: instrument) {
                collect(session.bookSnapshot(book, updateId: market.bookUpdateId(nativeSymbol: instrument), instrument: instrument))
            }
        }
        for _ in 0..<orders {
            let order = market.nextOrder()
            var withoutTrades = order
            withoutTrades.trades = []
            collect(session.publish([withoutTrades], at: order.time))
        }
        // Keep the frames the venue's parser reads as book messages.
        var parser = adapter.makeFrameParser(markets: markets(venue: A.exchange.name))
        var trades: [Trade] = []
        var books: [BookFrame] = []
        let frames = sent.filter { text in
            books.removeAll()
            var bytes = Array(text.utf8)
            let parsed = bytes.withUnsafeMutableBufferPointer { buffer in
                try? parser.parse(UnsafeBufferPointer(buffer), receivedAt: 0, into: &trades, books: &books)
            }
            if case .books = parsed { return true }
            return false
        }
        return (frames, snapshots)
    }
}
