import MarketData

/// Where a trade sits in its market's sequence: exchange trade ids when they are numbers (Poloniex's
/// increase per market), otherwise trade time.
public struct TradeMark: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var time: Int64
    public var id: String
    /// `id` as a number, when it is one.
    public var sequence: UInt64?

    public init(time: Int64, id: String) {
        self.time = time
        self.id = id
        self.sequence = UInt64(id)
    }

    public init(_ trade: Trade) { self.init(time: trade.time, id: trade.tradeId) }

    public static func < (a: TradeMark, b: TradeMark) -> Bool {
        if let x = a.sequence, let y = b.sequence { return x < y }
        return a.time < b.time
    }

    public static func == (a: TradeMark, b: TradeMark) -> Bool { a.id == b.id && a.time == b.time }

    public var description: String { "id \(id) at \(time)" }
}

/// A gap REST could not fill: after a reconnect the oldest trade REST still returns is newer than
/// the last trade seen, and REST returned a full page — trades in between are lost. Reported
/// (log, counter, dead-letter record), never hidden.
public struct TradeGap: Sendable, Hashable {
    public var exchange: Exchange
    public var symbol: Symbol
    public var nativeSymbol: String
    /// The newest trade seen before the gap.
    public var lastSeen: TradeMark
    /// The oldest trade the backfill returned (the first after the gap).
    public var oldestBackfilled: TradeMark
    /// How many trades the backfill returned (its page size).
    public var backfilled: Int

    /// The record written to the dead-letter topic.
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"type\":\"gap\",\"exchange\":", to: &out)
        JSONWriter.appendString(exchange.name, to: &out)
        JSONWriter.appendRaw(",\"symbol\":", to: &out)
        JSONWriter.appendString(symbol.rawValue, to: &out)
        JSONWriter.appendRaw(",\"nativeSymbol\":", to: &out)
        JSONWriter.appendString(nativeSymbol, to: &out)
        JSONWriter.appendRaw(",\"lastSeenId\":", to: &out)
        JSONWriter.appendString(lastSeen.id, to: &out)
        JSONWriter.appendRaw(",\"lastSeenTime\":", to: &out)
        JSONWriter.appendInt(lastSeen.time, to: &out)
        JSONWriter.appendRaw(",\"firstAfterGapId\":", to: &out)
        JSONWriter.appendString(oldestBackfilled.id, to: &out)
        JSONWriter.appendRaw(",\"firstAfterGapTime\":", to: &out)
        JSONWriter.appendInt(oldestBackfilled.time, to: &out)
        JSONWriter.appendRaw(",\"backfilled\":", to: &out)
        JSONWriter.appendInt(Int64(backfilled), to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    public var description: String {
        "gap in \(exchange):\(symbol): last trade seen \(lastSeen), oldest trade REST still has \(oldestBackfilled) (\(backfilled) returned); trades in between are lost"
    }
}

/// Drops trades already published, with bounded memory: per market it keeps the ids of the last
/// `capacity` trades and a *floor* — the mark of the newest trade evicted from that window (or the
/// oldest trade known from Kafka's tail on restart). A trade is new when its id is not in the window
/// and it is above the floor.
///
/// This relies on trades of one market being published in sequence order (live frames are; a
/// backfill is published oldest first, before the live frames that follow it). With numeric ids
/// (Poloniex) it is exact; with ids that are not numbers the floor compares trade times, so a trade
/// sharing the floor's millisecond but missing from the window is taken as already seen.
public struct TradeDeduplicator: Sendable {
    /// Ids kept per market. Default 10,000 (ten REST pages).
    public let capacity: Int
    private var markets: [String: Window] = [:]

    struct Window: Sendable {
        var ids = TradeIDSet()
        var order: RingBuffer<TradeMark>
        var floor: TradeMark?
        var newest: TradeMark?

        mutating func admit(_ mark: TradeMark) -> Bool {
            if let floor, !(floor < mark) { return false }
            // Inserting answers whether it was there: one hash per trade, not two.
            guard ids.insert(mark.id) else { return false }
            if let evicted = order.append(mark) {
                ids.remove(evicted.id)
                if floor.map({ $0 < evicted }) ?? true { floor = evicted }
            }
            if newest.map({ $0 < mark }) ?? true { newest = mark }
            return true
        }
    }

    public init(capacity: Int = 10_000) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Admits `trade` if it was not seen; returns false for a duplicate.
    public mutating func admit(_ trade: Trade) -> Bool {
        admit(market: trade.nativeSymbol, mark: TradeMark(trade))
    }

    /// Admits a trade by market and mark.
    public mutating func admit(market: String, mark: TradeMark) -> Bool {
        // Mutated in place through the dictionary (a copy would cost O(capacity) per trade).
        markets[market, default: Window(order: RingBuffer(capacity: capacity))].admit(mark)
    }

    /// Records trades already published (read back from Kafka on restart). Call with one market's
    /// trades in log order; the oldest becomes the floor: anything at or below it was published
    /// before it.
    public mutating func restore(_ trades: [Trade]) {
        for trade in trades {
            let mark = TradeMark(trade)
            let isFirst = markets[trade.nativeSymbol] == nil
            _ = admit(market: trade.nativeSymbol, mark: mark)
            if isFirst { markets[trade.nativeSymbol]?.floor = mark }
        }
    }

    /// The newest trade seen in `market`, if any.
    public func newest(market: String) -> TradeMark? { markets[market]?.newest }

    /// Markets with any history.
    public var knownMarkets: [String] { Array(markets.keys) }

    /// Reconciles a REST backfill (any order) for one market: returns the trades not yet seen,
    /// oldest first, and a gap when REST could not reach back to the last trade seen.
    ///
    /// A gap is reported when a trade was seen before, REST returned a full page (`limit` trades),
    /// and even its oldest trade is newer than the last one seen. With fewer than `limit` trades REST
    /// returned all it has, so nothing is missing.
    public mutating func reconcileBackfill(
        _ backfill: [Trade], market: String, limit: Int
    ) -> (fresh: [Trade], gap: TradeGap?) {
        let sorted = backfill.sorted { TradeMark($0) < TradeMark($1) }
        var gap: TradeGap?
        if let last = newest(market: market), let oldest = sorted.first, backfill.count >= limit,
            last < TradeMark(oldest), markets[market]?.ids.contains(oldest.tradeId) != true
        {
            gap = TradeGap(
                exchange: oldest.exchange, symbol: oldest.symbol, nativeSymbol: market, lastSeen: last,
                oldestBackfilled: TradeMark(oldest), backfilled: backfill.count)
        }
        var fresh: [Trade] = []
        for trade in sorted where admit(trade) { fresh.append(trade) }
        return (fresh, gap)
    }
}

/// A fixed-capacity FIFO; `append` returns the element pushed out when full.
struct RingBuffer<Element: Sendable>: Sendable {
    private var storage: [Element] = []
    private var head = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { storage.count }

    mutating func append(_ element: Element) -> Element? {
        if storage.count < capacity {
            storage.append(element)
            return nil
        }
        let evicted = storage[head]
        storage[head] = element
        head = (head + 1) % capacity
        return evicted
    }
}
