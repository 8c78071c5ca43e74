/// A level-2 order book: every price level of both sides, kept sorted, as the venue printed it.
///
/// Each side is a sorted array with its best price last (bids ascending, asks descending), so the
/// changes markets make most — near the top — move few elements. `apply` sets or removes one
/// level; `replace` swaps in a whole snapshot. The book never checks the venue's sequencing: that
/// is the per-venue synchronizer's job. `isCrossed` tells when the best bid reaches the best ask,
/// which a correct book of a continuous market never shows.
public struct OrderBook: Sendable, Hashable {
    /// Bids, lowest price first (best bid last).
    public private(set) var bidsAscending: [BookLevel] = []
    /// Asks, highest price first (best ask last).
    public private(set) var asksDescending: [BookLevel] = []

    public init() {}

    /// A book holding these levels (zero-quantity ones skipped; a price given twice keeps the last).
    public init(bids: [BookLevel], asks: [BookLevel]) {
        replace(bids: bids, asks: asks)
    }

    /// Replaces the whole book with a snapshot's levels, in any order.
    public mutating func replace(bids: [BookLevel], asks: [BookLevel]) {
        bidsAscending = OrderBook.sorted(bids, ascending: true)
        asksDescending = OrderBook.sorted(asks, ascending: false)
    }

    private static func sorted(_ levels: [BookLevel], ascending: Bool) -> [BookLevel] {
        var out = levels.filter { !$0.isEmpty }
        if ascending {
            out.sort { $0.key < $1.key }
        } else {
            out.sort { $1.key < $0.key }
        }
        // A price listed twice: keep the later one (stable sort keeps input order among equals).
        var deduplicated: [BookLevel] = []
        deduplicated.reserveCapacity(out.count)
        for level in out {
            if let last = deduplicated.last, last.key == level.key {
                deduplicated[deduplicated.count - 1] = level
            } else {
                deduplicated.append(level)
            }
        }
        return deduplicated
    }

    /// Sets one level (or removes it when its quantity is zero).
    public mutating func apply(_ level: BookLevel, side: BookSide) {
        switch side {
        case .bid: OrderBook.set(level, in: &bidsAscending, ascending: true)
        case .ask: OrderBook.set(level, in: &asksDescending, ascending: false)
        }
    }

    /// Applies every level of an update: bids, then asks.
    public mutating func apply(bids: [BookLevel], asks: [BookLevel]) {
        for level in bids { apply(level, side: .bid) }
        for level in asks { apply(level, side: .ask) }
    }

    static func set(_ level: BookLevel, in levels: inout [BookLevel], ascending: Bool) {
        // Search from the best end first: most changes are near the top of the book.
        var low = 0
        var high = levels.count
        while low < high {
            let mid = (low &+ high) >> 1
            let before = ascending ? levels[mid].key < level.key : level.key < levels[mid].key
            if before { low = mid &+ 1 } else { high = mid }
        }
        if low < levels.count, levels[low].key == level.key {
            if level.isEmpty {
                levels.remove(at: low)
            } else {
                levels[low] = level
            }
        } else if !level.isEmpty {
            levels.insert(level, at: low)
        }
    }

    public var bestBid: BookLevel? { bidsAscending.last }
    public var bestAsk: BookLevel? { asksDescending.last }

    /// True when both sides have levels and the best bid is at or above the best ask.
    public var isCrossed: Bool {
        guard let bid = bidsAscending.last, let ask = asksDescending.last else { return false }
        return !(bid.key < ask.key)
    }

    public var isEmpty: Bool { bidsAscending.isEmpty && asksDescending.isEmpty }

    /// Number of levels on each side.
    public var depth: (bids: Int, asks: Int) { (bidsAscending.count, asksDescending.count) }

    /// The best `count` bids, best first.
    public func bids(top count: Int = .max) -> [BookLevel] { Array(bidsAscending.reversed().prefix(max(0, count))) }
    /// The best `count` asks, best first.
    public func asks(top count: Int = .max) -> [BookLevel] { Array(asksDescending.reversed().prefix(max(0, count))) }

    /// The quantity at `price` on `side`, as printed, or nil when there is no such level.
    public func quantity(at price: BookPrice, side: BookSide) -> String? {
        let levels = side == .bid ? bidsAscending : asksDescending
        return levels.first { $0.key == price }?.quantity
    }

    /// Best ask − best bid, exact; nil when a side is empty.
    public var spread: ExactDecimal? {
        guard let bid = bestBid, let ask = bestAsk,
            let b = try? ExactDecimal(bid.price), let a = try? ExactDecimal(ask.price)
        else { return nil }
        return (a - b).normalized()
    }

    /// (best bid + best ask) / 2, exact; nil when a side is empty.
    public var mid: ExactDecimal? {
        guard let bid = bestBid, let ask = bestAsk,
            let b = try? ExactDecimal(bid.price), let a = try? ExactDecimal(ask.price)
        else { return nil }
        return ((a + b) * ExactDecimal(mantissa: 5, scale: 1)).normalized()
    }

    /// Applies a `tape.books` record: a snapshot replaces the book, an update sets its levels.
    public mutating func apply(_ event: BookEvent) {
        switch event.kind {
        case .snapshot: replace(bids: event.bids, asks: event.asks)
        case .update: apply(bids: event.bids, asks: event.asks)
        }
    }
}
