import MarketData
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the connection loop delivers what it read. Calls are awaited: a slow sink slows the
/// reader down (back-pressure reaches the socket) instead of anything being dropped.
public protocol TradeSink: Sendable {
    /// New trades, deduplicated, oldest first per market (backfill before the live frames after it).
    func publish(_ trades: [Trade]) async
    /// A frame that could not be parsed, with the error.
    func deadLetter(frame: [UInt8], error: FrameParseError) async
    /// A `tape.gaps` record: an interval in which trades may be missing (`repaired: false`), or
    /// the same interval once REST filled it (`repaired: true`).
    func gap(_ gap: Gap) async
    /// Something worth a log line (connects, reconnects with their reason, backfills, errors).
    func event(_ event: ConnectionEvent) async
    /// `tape.books` records, in order per market (connections collecting books only).
    func publishBooks(_ events: [BookEvent]) async
}

extension TradeSink {
    /// Default for sinks of trade-only connections: a connection with the book channel on needs a
    /// sink that implements this.
    public func publishBooks(_ events: [BookEvent]) async {}
}

/// What the loop reports for logs; every failure carries the address and the reason.
public enum ConnectionEvent: Sendable, Hashable {
    case connecting(endpoint: String, attempt: Int)
    case subscribed(endpoint: String, symbols: Int)
    case reconnectScheduled(endpoint: String, delay: Duration, attempt: Int, reason: String)
    case backfilled(symbol: String, fetched: Int, fresh: Int)
    /// REST could not be read for `symbol` after retries: trades between the last one seen and the
    /// first live one may be missing.
    case backfillFailed(endpoint: String, symbol: String, reason: String)
    case exchangeError(endpoint: String, message: String)
    /// REST listed `symbol`'s trade ids with holes: they are not consecutive there, so gaps in it
    /// are found by periodic reconciliation only.
    case idsNotConsecutive(symbol: String)
    /// A market's book was thrown away (`reason`) and is being re-synchronized.
    case bookResync(symbol: String, reason: BookResyncReason, detail: String)
    /// A REST depth snapshot could not be read.
    case bookSnapshotFailed(endpoint: String, symbol: String, reason: String)
}

/// Counters of the loop, readable at any time from any thread.
public final class ConnectionMetrics: Sendable {
    public let frames = Atomic<Int>(0)
    public let frameBytes = Atomic<Int>(0)
    public let trades = Atomic<Int>(0)
    public let duplicates = Atomic<Int>(0)
    public let backfilledTrades = Atomic<Int>(0)
    public let unparseableFrames = Atomic<Int>(0)
    /// Intervals in which trades may be missing, as written to `tape.gaps` (`repaired: false`).
    public let gaps = Atomic<Int>(0)
    /// Of those, the ones REST filled afterwards.
    public let gapsRepaired = Atomic<Int>(0)
    /// Of those, the ones REST could not fill (the trades are lost).
    public let gapsUnrepaired = Atomic<Int>(0)
    /// REST requests for repairs and periodic reconciliation (not counting the backfill after a subscribe).
    public let restRepairs = Atomic<Int>(0)
    /// Trades found by repairs and reconciliation that the stream had not delivered.
    public let repairedTrades = Atomic<Int>(0)
    public let backfillFailures = Atomic<Int>(0)
    /// REST recent-trades requests sent (backfills, repairs and reconciliation; every attempt).
    public let restTradeRequests = Atomic<Int>(0)
    public let reconnects = Atomic<Int>(0)
    public let connected = Atomic<Bool>(false)
    /// `tape.books` records published (snapshots and updates) and the levels they carried.
    public let bookEvents = Atomic<Int>(0)
    public let bookLevels = Atomic<Int>(0)
    /// Books thrown away and re-synchronized, by cause.
    public let bookSequenceBreaks = Atomic<Int>(0)
    public let bookChecksumFailures = Atomic<Int>(0)
    public let bookCrossed = Atomic<Int>(0)
    public let bookOtherResyncs = Atomic<Int>(0)
    /// Book intervals reported to `tape.gaps`.
    public let bookGaps = Atomic<Int>(0)
    /// REST depth snapshots requested (venues that need them).
    public let bookSnapshotRequests = Atomic<Int>(0)
    /// Time (ms) of the newest book record, for staleness.
    public let lastBookEventTime = Atomic<Int>(0)
    /// Receive time − trade time of the last trade, in µs.
    public let lastLagMicros = Atomic<Int>(0)
    private let failure = Mutex<String?>(nil)

    /// Why the connection last failed or ended (with the address), nil before any failure.
    public var lastFailure: String? { failure.withLock { $0 } }

    func recordFailure(_ text: String) { failure.withLock { $0 = text } }

    public init() {}

    /// A plain copy of the counters.
    public var snapshot: Snapshot {
        Snapshot(
            frames: frames.load(ordering: .relaxed), frameBytes: frameBytes.load(ordering: .relaxed),
            trades: trades.load(ordering: .relaxed), duplicates: duplicates.load(ordering: .relaxed),
            backfilledTrades: backfilledTrades.load(ordering: .relaxed),
            unparseableFrames: unparseableFrames.load(ordering: .relaxed), gaps: gaps.load(ordering: .relaxed),
            gapsRepaired: gapsRepaired.load(ordering: .relaxed), gapsUnrepaired: gapsUnrepaired.load(ordering: .relaxed),
            restRepairs: restRepairs.load(ordering: .relaxed), repairedTrades: repairedTrades.load(ordering: .relaxed),
            backfillFailures: backfillFailures.load(ordering: .relaxed), reconnects: reconnects.load(ordering: .relaxed),
            connected: connected.load(ordering: .relaxed), lastLagMicros: lastLagMicros.load(ordering: .relaxed),
            bookEvents: bookEvents.load(ordering: .relaxed), bookLevels: bookLevels.load(ordering: .relaxed),
            bookSequenceBreaks: bookSequenceBreaks.load(ordering: .relaxed),
            bookChecksumFailures: bookChecksumFailures.load(ordering: .relaxed), bookCrossed: bookCrossed.load(ordering: .relaxed),
            bookOtherResyncs: bookOtherResyncs.load(ordering: .relaxed), bookGaps: bookGaps.load(ordering: .relaxed),
            bookSnapshotRequests: bookSnapshotRequests.load(ordering: .relaxed),
            lastBookEventTime: lastBookEventTime.load(ordering: .relaxed), restTradeRequests: restTradeRequests.load(ordering: .relaxed))
    }

    /// Counts one book resync by its cause.
    func recordResync(_ reason: BookResyncReason) {
        switch reason {
        case .sequenceBreak: bookSequenceBreaks.add(1, ordering: .relaxed)
        case .checksum: bookChecksumFailures.add(1, ordering: .relaxed)
        case .crossed: bookCrossed.add(1, ordering: .relaxed)
        case .reconnect, .invalid: bookOtherResyncs.add(1, ordering: .relaxed)
        }
    }

    public struct Snapshot: Sendable, Hashable {
        public var frames, frameBytes, trades, duplicates, backfilledTrades, unparseableFrames, gaps, gapsRepaired,
            gapsUnrepaired, restRepairs, repairedTrades, backfillFailures, reconnects: Int
        public var connected: Bool
        public var lastLagMicros: Int
        public var bookEvents = 0, bookLevels = 0, bookSequenceBreaks = 0, bookChecksumFailures = 0, bookCrossed = 0,
            bookOtherResyncs = 0, bookGaps = 0, bookSnapshotRequests = 0, lastBookEventTime = 0, restTradeRequests = 0
        /// Every book resync, whatever the cause.
        public var bookResyncs: Int { bookSequenceBreaks + bookChecksumFailures + bookCrossed + bookOtherResyncs }
    }
}

/// Settings of one exchange connection.
public struct ExchangeConnectionConfiguration: Sendable {
    /// Websocket URL.
    public var websocket: Endpoint
    /// REST base URL.
    public var rest: Endpoint
    /// Native symbols to subscribe to (already checked against the market list).
    public var symbols: [String]
    /// What the venue's market list says about `symbols` (normalized symbol, REST spelling). A
    /// symbol missing here is taken as `ListedMarket(nativeSymbol:)`. Default empty.
    public var markets: [ListedMarket] = []
    /// Timing of the state machine (ping, silence, deadlines, backoff).
    public var machine = ConnectionStateMachine.Configuration()
    /// How often the driver checks timers. Default 1 s.
    public var tickInterval: Duration = .seconds(1)
    /// Deadline of one REST request. Default 10 s.
    public var restTimeout: Duration = .seconds(10)
    /// REST requests in flight at once during a backfill. Default 4.
    public var backfillConcurrency = 4
    /// Attempts per symbol before a backfill failure is reported. Default 3.
    public var backfillAttempts = 3
    /// After an unparseable frame, wait this long, then re-read its market (or all, when the frame
    /// names none) over REST so trades it may have carried are not lost. Default 1 s.
    public var repairDelay: Duration = .seconds(1)
    /// On venues with consecutive trade ids, how long after a jump in ids its market is re-read
    /// over REST (trades arriving out of order in the meantime close the hole without a request).
    /// Default 250 ms.
    public var gapRepairDelay: Duration = .milliseconds(250)
    /// Look for jumps in trade ids on venues that number trades consecutively. Default true (off
    /// only to test the periodic reconciliation alone).
    public var detectIdJumps = true
    /// REST attempts at a hole whose ids REST does not list yet before it is reported lost. Default 3.
    public var gapRepairAttempts = 3
    /// Every market is re-read over REST once per this interval (spread evenly, never faster than
    /// the venue's `restRequestSpacing`) to find trades the stream skipped without a jump in ids
    /// showing it (the last trades before a quiet spell, venues without consecutive ids). nil = off.
    /// Default 60 s.
    public var reconcileInterval: Duration? = .seconds(60)
    /// What to collect: trades, order books, or both. Default trades only. Books on a venue
    /// without them in Tape are ignored (the caller says so).
    public var channels: Set<Gap.Channel> = [.trades]
    /// Every synchronized book is also published whole this often, so a consumer can start from
    /// the recent past instead of the topic's beginning. nil = only when the venue sends one.
    /// Default 5 min.
    public var bookSnapshotInterval: Duration? = .seconds(300)
    /// TLS for `wss://` and `https://` endpoints.
    public var tls = TLSOptions()
    /// Seed of the backoff jitter. Default: random.
    public var jitterSeed = UInt64.random(in: 0 ... .max)

    public init(websocket: Endpoint, rest: Endpoint, symbols: [String]) {
        self.websocket = websocket
        self.rest = rest
        self.symbols = symbols
    }

    /// Settings for resolved `markets` (their native symbols are subscribed to).
    public init(websocket: Endpoint, rest: Endpoint, markets: [ListedMarket]) {
        self.init(websocket: websocket, rest: rest, symbols: markets.map(\.nativeSymbol))
        self.markets = markets
    }

    /// The listed market of native `symbol`.
    public func market(_ symbol: String) -> ListedMarket {
        markets.first { $0.nativeSymbol == symbol } ?? ListedMarket(nativeSymbol: symbol)
    }

    /// The listed market of every subscribed symbol, in order.
    var subscribedMarkets: [ListedMarket] {
        var byNative: [String: ListedMarket] = [:]
        for market in markets where byNative[market.nativeSymbol] == nil { byNative[market.nativeSymbol] = market }
        return symbols.map { byNative[$0] ?? ListedMarket(nativeSymbol: $0) }
    }
}
