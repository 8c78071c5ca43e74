import MarketData

/// The core of `tape bench book`: parses raw book frames in a loop on the calling thread and
/// applies every level to an in-memory book per market, as the ingest path does after the venue's
/// sequence check (a few integer comparisons per frame, not in this loop: replaying one file over
/// and over would break every sequence). Reports level updates per second.
public enum BookBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public var frames: Int
        /// Book messages the frames held (a frame may batch several markets).
        public var messages: Int
        /// Price levels parsed and applied.
        public var levels: Int
        public var errors: Int
        public var seconds: Double
        public var cpuSeconds: Double
        /// Levels of the books at the end (so the work cannot be optimized away).
        public var checksum: Int

        public var levelsPerSecond: Double { seconds > 0 ? Double(levels) / seconds : 0 }
        public var levelsPerCPUSecond: Double { cpuSeconds > 0 ? Double(levels) / cpuSeconds : 0 }

        public var description: String {
            "\(levels) levels in \(messages) book messages, \(frames) frames (\(errors) errors) in "
                + "\(ParseBenchmark.rounded(seconds, 3)) s (\(ParseBenchmark.rounded(cpuSeconds, 3)) s CPU): "
                + "\(Int(levelsPerSecond)) levels/s, \(Int(levelsPerCPUSecond)) levels/CPU-s"
        }
    }

    /// Parses and applies `lines` repeatedly, whole passes only, for at least `minimumSeconds`.
    public static func run(lines: [[UInt8]], exchange: Exchange, markets: [ListedMarket] = [], minimumSeconds: Double = 1)
        throws(ParseBenchmark.Unsupported) -> Result
    {
        guard let adapter = Venues.adapter(named: exchange.name) else {
            throw ParseBenchmark.Unsupported(description: "no frame parser for exchange \"\(exchange.name)\"")
        }
        guard adapter.supportsBooks else {
            throw ParseBenchmark.Unsupported(description: "\(exchange.name) has no order books in Tape")
        }
        return loop(adapter, lines: lines, markets: markets, minimumSeconds: minimumSeconds)
    }

    static func loop<A: ExchangeAdapter>(_ adapter: A.Type, lines: [[UInt8]], markets: [ListedMarket], minimumSeconds: Double) -> Result {
        var parser = markets.isEmpty ? adapter.makeFrameParser() : adapter.makeFrameParser(markets: markets)
        var trades: [Trade] = []
        var books: [BookFrame] = []
        books.reserveCapacity(16)
        var state: [String: OrderBook] = [:]
        var result = Result(frames: 0, messages: 0, levels: 0, errors: 0, seconds: 0, cpuSeconds: 0, checksum: 0)
        let clock = ContinuousClock()
        let cpuStart = ParseBenchmark.threadCPUSeconds()
        let start = clock.now
        repeat {
            for line in lines {
                line.withUnsafeBufferPointer { buffer in
                    do {
                        _ = try parser.parse(buffer, receivedAt: 0, into: &trades, books: &books)
                    } catch {
                        result.errors += 1
                    }
                }
                result.frames += 1
                for frame in books {
                    result.messages += 1
                    result.levels += frame.bids.count + frame.asks.count
                    switch frame.kind {
                    case .snapshot: state[frame.nativeSymbol] = OrderBook(bids: frame.bids, asks: frame.asks)
                    case .update: state[frame.nativeSymbol, default: OrderBook()].apply(bids: frame.bids, asks: frame.asks)
                    }
                }
                books.removeAll(keepingCapacity: true)
                trades.removeAll(keepingCapacity: true)
            }
            result.seconds = (clock.now - start).seconds
        } while result.seconds < minimumSeconds && !lines.isEmpty
        result.cpuSeconds = ParseBenchmark.threadCPUSeconds() - cpuStart
        result.checksum = state.values.reduce(0) { $0 + $1.depth.bids + $1.depth.asks }
        return result
    }
}
