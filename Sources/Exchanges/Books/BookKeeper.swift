import MarketData

/// The part of book synchronization every venue shares, as a value: the book, the records that
/// describe its changes, and the bookkeeping of the interval in which it was unknown. A venue's
/// synchronizer decides *whether* a frame may be applied (its sequence rules, its checksum); the
/// keeper applies it, refuses a crossed result, and turns a loss and the next snapshot into a
/// `tape.gaps` record.
public struct BookKeeper: Sendable, Hashable {
    public let exchange: Exchange
    public let market: ListedMarket
    /// The book as published; nil while unsynchronized.
    public private(set) var book: OrderBook?
    /// The sequence written in the last record.
    public private(set) var sequence: String?
    /// When the book was last known good (ms): the start of the gap reported at the next snapshot.
    public private(set) var lostSince: Int64?
    /// Why it was lost, for the gap's reason.
    public private(set) var lostReason: String?
    /// Time (ms) of the last record published, for staleness.
    public private(set) var lastEventTime: Int64?
    /// Level updates applied since the start.
    public private(set) var levelsApplied = 0

    public init(exchange: Exchange, market: ListedMarket) {
        self.exchange = exchange
        self.market = market
    }

    public var isSynchronized: Bool { book != nil }

    /// Most levels a side a book may hold: a venue (or something posing as one) that keeps adding
    /// levels gets its book thrown away and re-synchronized instead of growing memory without end.
    /// Real books stay far below (Binance's REST snapshot: 5,000 at most).
    public static let maximumLevelsPerSide = 250_000

    static func oversized(_ book: OrderBook) -> Bool {
        book.depth.bids > maximumLevelsPerSide || book.depth.asks > maximumLevelsPerSide
    }

    /// Replaces the book with a snapshot and publishes it; reports the gap since the book was lost.
    /// A crossed snapshot is refused (the book stays unknown) with `resyncReason = .crossed`.
    public mutating func snapshot(_ frame: BookFrame, sequence: String?) -> BookSyncStep {
        let fresh = OrderBook(bids: frame.bids, asks: frame.asks)
        if fresh.isCrossed {
            return lose(reason: .crossed, detail: "the snapshot is crossed", receivedAt: frame.receivedAt)
        }
        if Self.oversized(fresh) {
            return lose(
                reason: .invalid, detail: "the snapshot holds more than \(Self.maximumLevelsPerSide) levels a side",
                receivedAt: frame.receivedAt)
        }
        var step = BookSyncStep()
        if let since = lostSince {
            step.gaps.append(
                Gap(
                    exchange: exchange, symbol: market.symbol, channel: .book, from: since, to: frame.time,
                    reason: "book re-synchronized from a snapshot: \(lostReason ?? "book lost")", repaired: false,
                    detected: frame.receivedAt / 1000))
        }
        lostSince = nil
        lostReason = nil
        book = fresh
        self.sequence = sequence
        lastEventTime = frame.time
        levelsApplied += frame.bids.count + frame.asks.count
        step.events.append(
            BookEvent(
                snapshotOf: fresh, exchange: exchange, symbol: market.symbol, nativeSymbol: market.nativeSymbol,
                sequence: sequence, time: frame.time, receivedAt: frame.receivedAt))
        return step
    }

    /// Applies an update the venue's rules accepted and publishes it. If the result is crossed,
    /// the book is thrown away instead (`resyncReason = .crossed`): the caller resynchronizes.
    public mutating func update(_ frame: BookFrame, sequence: String?) -> BookSyncStep {
        guard var current = book else {
            return BookSyncStep(resyncReason: .invalid)
        }
        // Leave `current` the only owner of the levels, so `apply` changes them in place instead
        // of copying the whole book (copy-on-write) for every update.
        book = nil
        current.apply(bids: frame.bids, asks: frame.asks)
        book = current
        if current.isCrossed {
            return lose(reason: .crossed, detail: "an update crossed the book", receivedAt: frame.receivedAt)
        }
        if Self.oversized(current) {
            return lose(
                reason: .invalid, detail: "the book grew beyond \(Self.maximumLevelsPerSide) levels a side", receivedAt: frame.receivedAt)
        }
        self.sequence = sequence
        lastEventTime = frame.time
        levelsApplied += frame.bids.count + frame.asks.count
        guard !(frame.bids.isEmpty && frame.asks.isEmpty) else { return .nothing }
        return BookSyncStep(events: [
            BookEvent(
                exchange: exchange, symbol: market.symbol, nativeSymbol: market.nativeSymbol, kind: .update,
                sequence: sequence, bids: frame.bids, asks: frame.asks, time: frame.time, receivedAt: frame.receivedAt)
        ])
    }

    /// Applies an update to a copy of the book without publishing: for venues that verify a
    /// checksum of the result before accepting it (Kraken). Nil while unsynchronized.
    public func applying(_ frame: BookFrame) -> OrderBook? {
        guard var copy = book else { return nil }
        copy.apply(bids: frame.bids, asks: frame.asks)
        return copy
    }

    /// Throws the book away. The gap to report starts at the last good record's time; a book that
    /// was already lost keeps its first reason.
    public mutating func lose(reason: BookResyncReason, detail: String, receivedAt: Int64) -> BookSyncStep {
        let wasSynchronized = book != nil
        // A book never held loses nothing: no gap until there was something to miss.
        if !wasSynchronized && lastEventTime == nil { return BookSyncStep(resyncReason: reason == .reconnect ? nil : reason) }
        if lostSince == nil {
            lostSince = lastEventTime ?? receivedAt / 1000
            lostReason = detail
        }
        book = nil
        return BookSyncStep(resyncReason: wasSynchronized || reason != .reconnect ? reason : nil)
    }
}
