import ExchangeSimulator
import Exchanges
import MarketData
import Testing

/// Drives a simulated venue session value with a market's orders and feeds every frame it sends
/// through the venue's parser and book synchronizers, carrying out their resubscribes on the
/// session: the whole book path without sockets. Each time a synchronizer accepts a message
/// (publishes records without a resync) its book is compared with the market's.
struct BookSessionHarness<Adapter: ExchangeAdapter, Session: VenueSession> {
    var market: MarketSimulator
    var session: Session
    var parser: Adapter.FrameParser
    var syncs: [String: Adapter.BookSync]
    /// The instrument ("BTC_USDT") of a venue symbol.
    let instrument: [String: String]
    /// The book a client of the venue should hold, from the market's whole book.
    let expected: @Sendable (OrderBook) -> OrderBook
    /// How two books are compared (exact texts, or values when the venue reprints numbers).
    let same: @Sendable (OrderBook, OrderBook) -> Bool
    var now: Int64
    var resyncs: [BookResyncReason: Int] = [:]
    var accepted = 0
    /// Accepted messages after which the book differed from the venue's.
    var mismatches = 0
    /// Of those, the ones the next message of the market did not resync or heal.
    var undetectedMismatches = 0
    var differing: Set<String> = []
    /// Resubscribes carried out inside the delivery of one frame (bounded: a venue that never
    /// sends a book Tape accepts must not recurse forever).
    var nesting = 0
    var nestingLimitHit = false
    var crossed = 0
    var gaps = 0
    /// Per venue symbol: whether its last message was accepted.
    var lastAccepted: [String: Bool] = [:]

    var resyncCount: Int { resyncs.values.reduce(0, +) }

    /// Subscribes the book channel of every market and serves the snapshots owed.
    mutating func subscribe() {
        for request in Adapter.bookSubscribeMessages(nativeSymbols: syncs.keys.sorted()) { send(request) }
    }

    mutating func send(_ request: String) {
        deliver(session.received(request, at: now))
        for owed in session.takeBookSnapshotRequests() {
            guard let book = market.book(nativeSymbol: owed) else {
                Issue.record("no book for \(owed)")
                continue
            }
            deliver(session.bookSnapshot(book, updateId: market.bookUpdateId(nativeSymbol: owed), instrument: owed))
        }
    }

    mutating func deliver(_ actions: [SessionAction]) {
        for action in actions {
            guard case .send(let text) = action else { continue }
            var trades: [Trade] = []
            var books: [BookFrame] = []
            let bytes = Array(text.utf8)
            do {
                _ = try bytes.withUnsafeBufferPointer { buffer throws(FrameParseError) in
                    try parser.parse(buffer, receivedAt: now * 1000, into: &trades, books: &books)
                }
            } catch {
                Issue.record("\(error): \(text.prefix(300))")
                continue
            }
            for frame in books { receive(frame) }
        }
    }

    mutating func receive(_ frame: BookFrame) {
        guard var sync = syncs[frame.nativeSymbol], let name = instrument[frame.nativeSymbol] else {
            Issue.record("a book frame of an unknown market \(frame.nativeSymbol)")
            return
        }
        let step = sync.receive(frame)
        syncs[frame.nativeSymbol] = sync
        gaps += step.gaps.count
        if let book = sync.book, book.isCrossed { crossed += 1 }
        if let reason = step.resyncReason {
            resyncs[reason, default: 0] += 1
            lastAccepted[frame.nativeSymbol] = false
            differing.remove(frame.nativeSymbol)
        } else if !step.events.isEmpty, let book = sync.book, let truth = market.book(nativeSymbol: name) {
            accepted += 1
            lastAccepted[frame.nativeSymbol] = true
            if same(book, expected(truth)) {
                differing.remove(frame.nativeSymbol)
            } else {
                mismatches += 1
                if differing.contains(frame.nativeSymbol) { undetectedMismatches += 1 }
                differing.insert(frame.nativeSymbol)
            }
        }
        if case .resubscribe = step.action {
            guard nesting < 20 else {
                nestingLimitHit = true
                return
            }
            nesting += 1
            for request in Adapter.bookResubscribeMessages(nativeSymbol: frame.nativeSymbol) { send(request) }
            nesting -= 1
        }
    }

    /// Publishes `count` orders, one at a time.
    mutating func run(orders count: Int) {
        for _ in 0..<count {
            let order = market.nextOrder()
            now = max(now, order.time)
            deliver(session.publish([order], at: now))
        }
    }

    /// Publishes orders until every market's last message was accepted (at most `limit`).
    mutating func settle(limit: Int) {
        var published = 0
        while published < limit && syncs.keys.contains(where: { lastAccepted[$0] != true }) {
            run(orders: 1)
            published += 1
        }
    }

    /// Every market's book equals what the venue shows.
    func booksAreExact() -> [String] {
        syncs.keys.sorted().compactMap { symbol in
            guard let name = instrument[symbol], let truth = market.book(nativeSymbol: name), let book = syncs[symbol]?.book,
                same(book, expected(truth))
            else { return symbol }
            return nil
        }
    }
}

/// The faults a session can inject into its book stream.
enum BookFault: String, CaseIterable, Sendable {
    case none
    case skip
    case swap
    case corruptChecksum

    func apply(to configuration: inout SimulatedSessionConfiguration) {
        switch self {
        case .none: break
        case .skip: configuration.skipBookUpdateEvery = 53
        case .swap: configuration.swapBookUpdatesEvery = 47
        case .corruptChecksum: configuration.corruptChecksumEvery = 41
        }
    }
}
