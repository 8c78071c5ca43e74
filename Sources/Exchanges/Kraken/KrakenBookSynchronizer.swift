import MarketData

/// One Kraken market's v2 `book`, kept by Kraken's rules: a snapshot replaces the book; an
/// update's levels apply in order; then the book is cut to the subscribed depth and its CRC32
/// (`KrakenBookChecksum`) must equal the message's `checksum`. Kraken has no sequence numbers, so
/// the checksum is what vouches for the book: a mismatch (or a message without one) throws the
/// book away and resubscribes (Kraken then sends a fresh snapshot). Records have no `sequence`.
///
/// Levels cut by the depth are published as removals (quantity "0") in the update that pushed
/// them out, so a consumer applying the records holds the same book without knowing the depth.
///
/// The checksum formats numbers to the pair's decimals (`ListedMarket.priceDecimals` and
/// `quantityDecimals`, from REST AssetPairs). Where the market list did not give them, they are
/// learned from a snapshot: the decimals its checksum matches with, tried from the most decimals
/// seen in the market's numbers up (JSON numbers drop trailing zeros, so a pair whose sizes are
/// round never prints all its `lot_decimals`). Twenty levels make a chance CRC32 match of a wrong
/// guess about one in 10^8; an update is only ever verified with decimals a snapshot confirmed.
public struct KrakenBookSynchronizer: BookSynchronizer {
    var keeper: BookKeeper
    /// Levels per side the subscription carries.
    public let depth: Int
    let listedPriceDecimals: Int?
    let listedQuantityDecimals: Int?
    /// Most decimals seen in prices and quantities (where the search for unlisted decimals starts).
    public private(set) var seenPriceDecimals = 0
    public private(set) var seenQuantityDecimals = 0
    /// Decimals a snapshot's checksum confirmed, when the listing gave none.
    public private(set) var learnedDecimals: (price: Int, quantity: Int)?
    /// Messages whose checksum matched.
    public private(set) var checksumsVerified = 0
    /// Updates dropped while waiting for a snapshot.
    public private(set) var droppedWhileUnsynchronized = 0

    public init(exchange: Exchange, market: ListedMarket) {
        self.init(exchange: exchange, market: market, depth: Kraken.bookDepth)
    }

    public init(exchange: Exchange, market: ListedMarket, depth: Int) {
        keeper = BookKeeper(exchange: exchange, market: market)
        self.depth = max(depth, 1)
        listedPriceDecimals = market.priceDecimals
        listedQuantityDecimals = market.quantityDecimals
    }

    public var book: OrderBook? { keeper.book }
    public var sequence: String? { nil }

    /// Decimals the checksum formats prices and quantities with.
    public var priceDecimals: Int { listedPriceDecimals ?? learnedDecimals?.price ?? seenPriceDecimals }
    public var quantityDecimals: Int { listedQuantityDecimals ?? learnedDecimals?.quantity ?? seenQuantityDecimals }

    public mutating func receive(_ frame: BookFrame) -> BookSyncStep {
        switch frame.kind {
        case .snapshot:
            observeDecimals(frame)
            guard let expected = frame.checksum else {
                return lose(.invalid, "a snapshot without a checksum", frame.receivedAt)
            }
            var fresh = OrderBook(bids: frame.bids, asks: frame.asks)
            let cut = KrakenBookSynchronizer.cut(&fresh, depth: depth)
            let actual = checksum(fresh)
            if actual != expected {
                guard let found = searchDecimals(fresh, expected: expected) else {
                    return lose(.checksum, "snapshot checksum \(expected), book gives \(actual)", frame.receivedAt)
                }
                learnedDecimals = found
            } else if listedPriceDecimals == nil || listedQuantityDecimals == nil {
                // Confirmed: later numbers with more digits must not move them.
                learnedDecimals = (priceDecimals, quantityDecimals)
            }
            checksumsVerified &+= 1
            var published = frame
            if !cut.bids.isEmpty || !cut.asks.isEmpty {
                published.bids = fresh.bids()
                published.asks = fresh.asks()
            }
            var step = keeper.snapshot(published, sequence: nil)
            if !keeper.isSynchronized { step.action = .resubscribe(reason: "the snapshot is crossed") }
            return step
        case .update:
            guard keeper.isSynchronized else {
                droppedWhileUnsynchronized &+= 1
                return .nothing
            }
            observeDecimals(frame)
            guard let expected = frame.checksum else {
                return lose(.invalid, "an update without a checksum", frame.receivedAt)
            }
            guard var next = keeper.applying(frame) else { return .nothing }
            let cut = KrakenBookSynchronizer.cut(&next, depth: depth)
            let actual = checksum(next)
            guard actual == expected else {
                return lose(.checksum, "update checksum \(expected), book gives \(actual)", frame.receivedAt)
            }
            checksumsVerified &+= 1
            var published = frame
            published.bids.append(contentsOf: cut.bids)
            published.asks.append(contentsOf: cut.asks)
            var step = keeper.update(published, sequence: nil)
            if !keeper.isSynchronized { step.action = .resubscribe(reason: "an update crossed the book") }
            return step
        }
    }

    /// Kraken needs no REST snapshot.
    public mutating func receiveSnapshot(_ frame: BookFrame) -> BookSyncStep { .nothing }

    public mutating func reset(receivedAt: Int64) -> BookSyncStep {
        keeper.lose(reason: .reconnect, detail: "the connection was reset", receivedAt: receivedAt)
    }

    func checksum(_ book: OrderBook) -> UInt32 {
        KrakenBookChecksum.checksum(of: book, priceDecimals: priceDecimals, quantityDecimals: quantityDecimals)
    }

    /// Decimals (within the listing's, where it gave one) that make `book`'s checksum `expected`;
    /// nil when the listing gave both or none match.
    func searchDecimals(_ book: OrderBook, expected: UInt32) -> (price: Int, quantity: Int)? {
        guard listedPriceDecimals == nil || listedQuantityDecimals == nil else { return nil }
        let prices = listedPriceDecimals.map { $0...$0 } ?? seenPriceDecimals...min(seenPriceDecimals + 8, 18)
        let quantities = listedQuantityDecimals.map { $0...$0 } ?? seenQuantityDecimals...min(max(seenQuantityDecimals, 8) + 2, 18)
        for p in prices {
            for q in quantities where KrakenBookChecksum.checksum(of: book, priceDecimals: p, quantityDecimals: q) == expected {
                return (p, q)
            }
        }
        return nil
    }

    mutating func lose(_ reason: BookResyncReason, _ detail: String, _ receivedAt: Int64) -> BookSyncStep {
        var step = keeper.lose(reason: reason, detail: detail, receivedAt: receivedAt)
        step.action = .resubscribe(reason: detail)
        return step
    }

    /// Raises the decimals seen (only used where the listing gave none).
    mutating func observeDecimals(_ frame: BookFrame) {
        guard listedPriceDecimals == nil || listedQuantityDecimals == nil else { return }
        for level in frame.bids { observe(level) }
        for level in frame.asks { observe(level) }
    }

    mutating func observe(_ level: BookLevel) {
        seenPriceDecimals = max(seenPriceDecimals, KrakenBookSynchronizer.decimals(level.price))
        seenQuantityDecimals = max(seenQuantityDecimals, KrakenBookSynchronizer.decimals(level.quantity))
    }

    static func decimals(_ text: String) -> Int {
        var count = 0
        var afterPoint = false
        for byte in text.utf8 {
            if afterPoint {
                count += 1
            } else if byte == UInt8(ascii: ".") {
                afterPoint = true
            }
        }
        return count
    }

    /// Cuts each side of `book` to its best `depth` levels; the levels removed, as removals
    /// (quantity "0"), worst first.
    static func cut(_ book: inout OrderBook, depth: Int) -> (bids: [BookLevel], asks: [BookLevel]) {
        var removedBids: [BookLevel] = []
        var removedAsks: [BookLevel] = []
        if book.depth.bids > depth {
            removedBids = book.bidsAscending.prefix(book.depth.bids - depth).map(removal)
            for level in removedBids { book.apply(level, side: .bid) }
        }
        if book.depth.asks > depth {
            removedAsks = book.asksDescending.prefix(book.depth.asks - depth).map(removal)
            for level in removedAsks { book.apply(level, side: .ask) }
        }
        return (removedBids, removedAsks)
    }

    static func removal(_ level: BookLevel) -> BookLevel {
        var removed = level
        removed.quantity = "0"
        removed.isEmpty = true
        return removed
    }
}
