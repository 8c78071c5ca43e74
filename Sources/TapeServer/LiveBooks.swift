import MarketData
import Synchronization

/// Book records in log order: `tape.books` in production (`KafkaBookFeed`), `PushFeed<BookEvent>`
/// in tests. The server iterates it exactly once.
public protocol BookRecordFeed: AsyncSequence, Sendable where Element == BookEvent {}

extension PushFeed: BookRecordFeed where Element == BookEvent {}

/// The order books the server holds, rebuilt from `tape.books`: each key's records applied in
/// order, from its first snapshot on (updates read before a market's first snapshot are skipped:
/// the feed starts in the recent past, and the periodic snapshots bring every book in).
public final class LiveBooks: Sendable {
    struct Entry: Sendable {
        var book: OrderBook
        var sequence: String?
        var time: Int64
        var receivedAt: Int64
        var updates = 0
        /// Changed since subscribers were last sent it.
        var dirty = true
    }

    private struct State {
        var entries: [MarketID: Entry] = [:]
        /// Updates skipped because their market had no snapshot yet.
        var skipped = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Applies one record.
    public func apply(_ event: BookEvent) {
        let market = MarketID(exchange: event.exchange, symbol: event.symbol)
        state.withLock { s in
            switch event.kind {
            case .snapshot:
                var entry = Entry(
                    book: OrderBook(bids: event.bids, asks: event.asks), sequence: event.sequence, time: event.time,
                    receivedAt: event.receivedAt)
                entry.updates = (s.entries[market]?.updates ?? 0) + 1
                s.entries[market] = entry
            case .update:
                guard var entry = s.entries[market] else {
                    s.skipped += 1
                    return
                }
                entry.book.apply(bids: event.bids, asks: event.asks)
                entry.sequence = event.sequence
                entry.time = event.time
                entry.receivedAt = event.receivedAt
                entry.updates += 1
                entry.dirty = true
                s.entries[market] = entry
            }
        }
    }

    /// One market's book, the best `depth` levels of each side; nil when no snapshot was seen.
    public func view(_ market: MarketID, depth: Int) -> BookView? {
        state.withLock { s in
            s.entries[market].map { BookView(market: market, entry: $0, depth: depth) }
        }
    }

    /// Markets with a book, sorted.
    public var markets: [MarketID] { state.withLock { $0.entries.keys.sorted() } }

    /// Markets changed since the last call, with their views (the dirty marks are cleared).
    func takeChanged(depth: Int, only wanted: (MarketID) -> Bool) -> [BookView] {
        state.withLock { s in
            var views: [BookView] = []
            for (market, entry) in s.entries where entry.dirty && wanted(market) {
                views.append(BookView(market: market, entry: entry, depth: depth))
                s.entries[market]?.dirty = false
            }
            return views
        }
    }

    /// Updates skipped because their market had no snapshot yet.
    public var skippedUpdates: Int { state.withLock { $0.skipped } }
}

/// The top of one book as the API and the WebSocket show it: best levels first, with the best bid
/// and ask, spread and mid (exact decimals as strings).
public struct BookView: Sendable, Hashable {
    public var market: MarketID
    public var bids: [BookLevel]
    public var asks: [BookLevel]
    public var depth: (bids: Int, asks: Int)
    public var sequence: String?
    public var time: Int64
    public var receivedAt: Int64
    public var spread: ExactDecimal?
    public var mid: ExactDecimal?
    public var crossed: Bool

    init(market: MarketID, entry: LiveBooks.Entry, depth: Int) {
        self.market = market
        bids = entry.book.bids(top: depth)
        asks = entry.book.asks(top: depth)
        self.depth = entry.book.depth
        sequence = entry.sequence
        time = entry.time
        receivedAt = entry.receivedAt
        spread = entry.book.spread
        mid = entry.book.mid
        crossed = entry.book.isCrossed
    }

    public static func == (a: BookView, b: BookView) -> Bool {
        a.market == b.market && a.bids == b.bids && a.asks == b.asks && a.sequence == b.sequence && a.time == b.time
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(market)
        hasher.combine(sequence)
        hasher.combine(time)
    }

    /// `{"symbol":..,"exchange":..,"sequence":..,"time":..,"bestBid":..,"bestAsk":..,"spread":..,
    /// "mid":..,"levels":{"bids":N,"asks":N},"bids":[[p,q]..],"asks":[[p,q]..]}`.
    public func appendJSON(to out: inout [UInt8]) {
        JSONWriter.appendRaw("{\"symbol\":", to: &out)
        JSONWriter.appendString(market.description, to: &out)
        JSONWriter.appendRaw(",\"exchange\":", to: &out)
        JSONWriter.appendString(market.exchange.name, to: &out)
        JSONWriter.appendRaw(",\"sequence\":", to: &out)
        if let sequence { JSONWriter.appendString(sequence, to: &out) } else { JSONWriter.appendRaw("null", to: &out) }
        JSONWriter.appendRaw(",\"time\":", to: &out)
        JSONWriter.appendInt(time, to: &out)
        JSONWriter.appendRaw(",\"bestBid\":", to: &out)
        appendLevel(bids.first, to: &out)
        JSONWriter.appendRaw(",\"bestAsk\":", to: &out)
        appendLevel(asks.first, to: &out)
        JSONWriter.appendRaw(",\"spread\":", to: &out)
        if let spread { JSONWriter.appendDecimal(spread, to: &out) } else { JSONWriter.appendRaw("null", to: &out) }
        JSONWriter.appendRaw(",\"mid\":", to: &out)
        if let mid { JSONWriter.appendDecimal(mid, to: &out) } else { JSONWriter.appendRaw("null", to: &out) }
        JSONWriter.appendRaw(crossed ? ",\"crossed\":true" : ",\"crossed\":false", to: &out)
        JSONWriter.appendRaw(",\"levels\":{\"bids\":", to: &out)
        JSONWriter.appendInt(Int64(depth.bids), to: &out)
        JSONWriter.appendRaw(",\"asks\":", to: &out)
        JSONWriter.appendInt(Int64(depth.asks), to: &out)
        JSONWriter.appendRaw("},\"bids\":", to: &out)
        JSONWriter.appendBookLevels(bids, to: &out)
        JSONWriter.appendRaw(",\"asks\":", to: &out)
        JSONWriter.appendBookLevels(asks, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    private func appendLevel(_ level: BookLevel?, to out: inout [UInt8]) {
        if let level { JSONWriter.appendBookLevel(level, to: &out) } else { JSONWriter.appendRaw("null", to: &out) }
    }
}
