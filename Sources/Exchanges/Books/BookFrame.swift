import MarketData

/// One book message of one market as the venue sent it, before any sequence check: what a frame
/// parser produces from a book channel frame, and what a REST depth snapshot parses into.
public struct BookFrame: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// The whole book (a channel's first message, or a REST depth answer).
        case snapshot
        /// Levels that changed (quantity zero removes a level).
        case update
    }

    /// The venue's spelling of the market ("BTC_USDT", "BTCUSDT", "BTC/USD", "BTC-USD").
    public var nativeSymbol: String
    public var kind: Kind
    /// Bids in the venue's order.
    public var bids: [BookLevel]
    /// Asks in the venue's order.
    public var asks: [BookLevel]
    /// The venue's event time, ms since the Unix epoch (its receive time when the venue gives none).
    public var time: Int64
    /// Local receive time, µs since the Unix epoch.
    public var receivedAt: Int64
    /// The first change included, where the venue says (Binance `U`).
    public var firstSequence: Int64?
    /// The last change included: Binance `u` (or a REST snapshot's `lastUpdateId`), Poloniex `id`,
    /// Coinbase `sequence_num`.
    public var sequence: Int64?
    /// The change before this message's first, where the venue says (Poloniex `lastId`).
    public var previousSequence: Int64?
    /// The venue's checksum of its book after this message (Kraken CRC32 of the top 10 levels).
    public var checksum: UInt32?

    public init(
        nativeSymbol: String, kind: Kind, bids: [BookLevel], asks: [BookLevel], time: Int64, receivedAt: Int64,
        firstSequence: Int64? = nil, sequence: Int64? = nil, previousSequence: Int64? = nil, checksum: UInt32? = nil
    ) {
        self.nativeSymbol = nativeSymbol
        self.kind = kind
        self.bids = bids
        self.asks = asks
        self.time = time
        self.receivedAt = receivedAt
        self.firstSequence = firstSequence
        self.sequence = sequence
        self.previousSequence = previousSequence
        self.checksum = checksum
    }
}

/// What a book synchronizer wants the connection to do next.
public enum BookSyncAction: Sendable, Hashable {
    case none
    /// Request the REST depth snapshot of this market (Binance), then call `receiveSnapshot`.
    case fetchSnapshot
    /// Unsubscribe and subscribe this market's book channel again: the venue then sends a fresh
    /// snapshot (Poloniex, Kraken, Coinbase). `reason` says why, for logs.
    case resubscribe(reason: String)
}

/// The outcome of one input to a synchronizer: records to publish (in order), book gaps to
/// report, and what to do next.
public struct BookSyncStep: Sendable, Hashable {
    public var events: [BookEvent]
    public var gaps: [Gap]
    public var action: BookSyncAction
    /// Why the book was thrown away in this step (a sequence break, a failed checksum, a crossed
    /// book), for counters and logs; nil when it was not.
    public var resyncReason: BookResyncReason?

    public init(events: [BookEvent] = [], gaps: [Gap] = [], action: BookSyncAction = .none, resyncReason: BookResyncReason? = nil) {
        self.events = events
        self.gaps = gaps
        self.action = action
        self.resyncReason = resyncReason
    }

    public static let nothing = BookSyncStep()
}

/// Why a book had to be re-synchronized (the label of `tape_book_resyncs_total`).
public enum BookResyncReason: String, Sendable, Hashable, CaseIterable {
    /// A message's sequence did not follow the previous one.
    case sequenceBreak = "sequence_break"
    /// The venue's checksum did not match the book Tape holds.
    case checksum
    /// The book's best bid reached its best ask.
    case crossed
    /// The connection was lost or the subscription reset.
    case reconnect
    /// A message could not be applied (an update before any snapshot, a snapshot too old, ...).
    case invalid
}

/// One market's book synchronization by a venue's documented rules, as a value: no sockets, no
/// clocks. The connection feeds it the market's frames and (where the venue needs one) the REST
/// snapshot; it answers with the `tape.books` records to publish, the gaps to report, and whether
/// to fetch a snapshot or resubscribe. It must never publish a book it cannot vouch for: after a
/// break it publishes nothing for the market until a fresh snapshot, which it publishes as a
/// `snapshot` record together with a `tape.gaps` record for the interval.
public protocol BookSynchronizer: Sendable {
    /// A synchronizer for one market, holding no book yet.
    init(exchange: Exchange, market: ListedMarket)
    /// A websocket book frame of this market.
    mutating func receive(_ frame: BookFrame) -> BookSyncStep
    /// The REST depth snapshot asked for with `.fetchSnapshot` (venues that need one).
    mutating func receiveSnapshot(_ frame: BookFrame) -> BookSyncStep
    /// The REST snapshot could not be read: the machine decides whether to ask again.
    mutating func snapshotFailed(reason: String, receivedAt: Int64) -> BookSyncStep
    /// The connection dropped or the channel was resubscribed: the book is unknown until the next
    /// snapshot. `receivedAt` µs.
    mutating func reset(receivedAt: Int64) -> BookSyncStep
    /// The book as Tape holds it now; nil while not synchronized.
    var book: OrderBook? { get }
    /// The venue's marker of the last change applied, as written in records.
    var sequence: String? { get }
}

extension BookSynchronizer {
    public mutating func snapshotFailed(reason: String, receivedAt: Int64) -> BookSyncStep { .nothing }
}

/// A synchronizer for venues without a book channel in Tape: holds nothing, publishes nothing.
public struct NoBookSynchronizer: BookSynchronizer {
    public init(exchange: Exchange, market: ListedMarket) {}
    public mutating func receive(_ frame: BookFrame) -> BookSyncStep { .nothing }
    public mutating func receiveSnapshot(_ frame: BookFrame) -> BookSyncStep { .nothing }
    public mutating func reset(receivedAt: Int64) -> BookSyncStep { .nothing }
    public var book: OrderBook? { nil }
    public var sequence: String? { nil }
}
