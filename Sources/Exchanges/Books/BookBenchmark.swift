import MarketData

/// The core of `tape bench book`: parses raw book frames in a loop on the calling thread and
/// applies every level, reporting level updates per second. Two paths:
/// - `synchronize` (the ingest path): each frame goes through the venue's synchronizer — sequence
///   or checksum checks, the book keeper's apply, the records it would publish — starting every
///   pass from fresh synchronizers (primed with `snapshots`, the REST snapshots of venues whose
///   stream has none), so the sequences hold on every pass;
/// - otherwise: parse, then apply each frame's levels to a plain `OrderBook` per market.
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
        /// Resynchronizations the synchronizers asked for (0 on a clean stream).
        public var resyncs = 0

        public var levelsPerSecond: Double { seconds > 0 ? Double(levels) / seconds : 0 }
        public var levelsPerCPUSecond: Double { cpuSeconds > 0 ? Double(levels) / cpuSeconds : 0 }

        public var description: String {
            "\(levels) levels in \(messages) book messages, \(frames) frames (\(errors) errors) in "
                + "\(ParseBenchmark.rounded(seconds, 3)) s (\(ParseBenchmark.rounded(cpuSeconds, 3)) s CPU): "
                + "\(Int(levelsPerSecond)) levels/s, \(Int(levelsPerCPUSecond)) levels/CPU-s" + (resyncs > 0 ? ", \(resyncs) resyncs" : "")
        }
    }

    /// Parses and applies `lines` repeatedly, whole passes only, for at least `minimumSeconds`.
    public static func run(
        lines: [[UInt8]], exchange: Exchange, markets: [ListedMarket] = [], synchronize: Bool = false, snapshots: [BookFrame] = [],
        minimumSeconds: Double = 1
    ) throws(ParseBenchmark.Unsupported) -> Result {
        guard let adapter = Venues.adapter(named: exchange.name) else {
            throw ParseBenchmark.Unsupported(description: "no frame parser for exchange \"\(exchange.name)\"")
        }
        guard adapter.supportsBooks else {
            throw ParseBenchmark.Unsupported(description: "\(exchange.name) has no order books in Tape")
        }
        if synchronize {
            return synchronized(adapter, lines: lines, markets: markets, snapshots: snapshots, minimumSeconds: minimumSeconds)
        }
        return loop(adapter, lines: lines, markets: markets, minimumSeconds: minimumSeconds)
    }

    static func synchronized<A: ExchangeAdapter>(
        _ adapter: A.Type, lines: [[UInt8]], markets: [ListedMarket], snapshots: [BookFrame], minimumSeconds: Double
    ) -> Result {
        var listed: [String: ListedMarket] = [:]
        for market in markets { listed[market.nativeSymbol] = market }
        var syncs: [String: A.BookSync] = [:]
        return measure(
            adapter, lines: lines, markets: markets, minimumSeconds: minimumSeconds,
            beginPass: { result in
                // A new connection: fresh synchronizers, reset, primed with the REST snapshots.
                syncs = [:]
                for market in markets {
                    var sync = A.BookSync(exchange: adapter.exchange, market: market)
                    _ = sync.reset(receivedAt: 0)
                    syncs[market.nativeSymbol] = sync
                }
                for snapshot in snapshots {
                    result.levels += snapshot.bids.count + snapshot.asks.count
                    result.checksum &+= syncs[snapshot.nativeSymbol]?.receiveSnapshot(snapshot).events.count ?? 0
                }
            },
            take: { frame, result in
                if syncs[frame.nativeSymbol] == nil,
                    let market = listed[frame.nativeSymbol] ?? (markets.isEmpty ? ListedMarket(nativeSymbol: frame.nativeSymbol) : nil)
                {
                    syncs[frame.nativeSymbol] = A.BookSync(exchange: adapter.exchange, market: market)
                }
                guard let step = syncs[frame.nativeSymbol]?.receive(frame) else { return }
                if step.resyncReason != nil { result.resyncs += 1 }
                result.checksum &+= step.events.count
            })
    }

    static func loop<A: ExchangeAdapter>(_ adapter: A.Type, lines: [[UInt8]], markets: [ListedMarket], minimumSeconds: Double) -> Result {
        var state: [String: OrderBook] = [:]
        var result = measure(
            adapter, lines: lines, markets: markets, minimumSeconds: minimumSeconds, beginPass: { _ in },
            take: { frame, _ in
                switch frame.kind {
                case .snapshot: state[frame.nativeSymbol] = OrderBook(bids: frame.bids, asks: frame.asks)
                case .update: state[frame.nativeSymbol, default: OrderBook()].apply(bids: frame.bids, asks: frame.asks)
                }
            })
        result.checksum = state.values.reduce(0) { $0 + $1.depth.bids + $1.depth.asks }
        return result
    }

    /// The timed loop both paths share: whole passes over `lines` (each begun by `beginPass`), every
    /// frame parsed by one parser and each book message handed to `take`, until `minimumSeconds`.
    static func measure<A: ExchangeAdapter>(
        _ adapter: A.Type, lines: [[UInt8]], markets: [ListedMarket], minimumSeconds: Double, beginPass: (inout Result) -> Void,
        take: (BookFrame, inout Result) -> Void
    ) -> Result {
        var parser = markets.isEmpty ? adapter.makeFrameParser() : adapter.makeFrameParser(markets: markets)
        var trades: [Trade] = []
        var books: [BookFrame] = []
        books.reserveCapacity(16)
        var result = Result(frames: 0, messages: 0, levels: 0, errors: 0, seconds: 0, cpuSeconds: 0, checksum: 0)
        let clock = ContinuousClock()
        let cpuStart = ParseBenchmark.threadCPUSeconds()
        let start = clock.now
        repeat {
            beginPass(&result)
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
                    take(frame, &result)
                }
                books.removeAll(keepingCapacity: true)
                trades.removeAll(keepingCapacity: true)
            }
            result.seconds = (clock.now - start).seconds
        } while result.seconds < minimumSeconds && !lines.isEmpty
        result.cpuSeconds = ParseBenchmark.threadCPUSeconds() - cpuStart
        return result
    }
}
