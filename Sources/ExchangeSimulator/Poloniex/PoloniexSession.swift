import MarketData

/// One client connection to the simulated Poloniex websocket, as a value (no sockets): feed it
/// what the client sent, the market's new orders and the clock; it answers with actions for the
/// server to carry out. Behaves like the venue: acks echo `channel` as a string, `ping` gets
/// `pong`, unknown symbols and bad requests get `{"event":"error",...}`, a client silent for
/// `idleTimeout` is dropped. Fault knobs: drop the connection every N ms, break every Nth trades
/// frame, write ids as numbers every Nth frame.
///
/// `book_lv2`: a subscription owes the client a snapshot of the symbol's whole simulated book
/// (`takeBookSnapshotRequests`, then `bookSnapshot`), with `id` = the market's book update id and
/// `lastId` = `id` − 1; then every order that changed the book is one update with the changed
/// levels in order, `id` = the order's book update id, `lastId` = `id` − 1 (the venue's own
/// numbering: a client that missed one sees the break). The simulated book is not cut to
/// Poloniex's 20 levels. Book fault knobs: leave out every Nth update (`skipBookUpdateEvery`),
/// send every Nth update after the next one of its symbol (`swapBookUpdatesEvery`).
public struct PoloniexSession: VenueSession {
    /// Behaviour and fault knobs.
    public typealias Configuration = SimulatedSessionConfiguration

    /// What the server must do.
    public typealias Action = SessionAction

    public let configuration: Configuration
    let knownSymbols: Set<String>
    let connectedAt: Int64
    var lastReceived: Int64
    var closed = false
    var allSymbols = false
    /// Time of the last `publish` (book snapshots are stamped with it).
    var lastPublished: Int64?
    /// Symbols subscribed on the `trades` channel.
    public private(set) var tradeSymbols: Set<String> = []
    /// Symbols subscribed on `book_lv2`, with the book update id of the last message sent (nil
    /// until the snapshot went out).
    public private(set) var bookSymbols: [String: Int64?] = [:]
    var bookSnapshotsOwed: [String] = []
    /// Book updates the session built (sent, skipped or held back).
    public private(set) var bookUpdates = 0
    /// Book updates left out on purpose (`skipBookUpdateEvery`).
    public private(set) var bookUpdatesSkipped = 0
    /// Book updates sent after the next one of their symbol on purpose (`swapBookUpdatesEvery`).
    public private(set) var bookUpdatesSwapped = 0
    /// An update held back to be sent after the next one of its symbol.
    var heldBookUpdates: [String: String] = [:]
    /// Trades frames sent (malformed ones included).
    public private(set) var framesSent = 0
    /// Malformed frames sent on purpose.
    public private(set) var malformedFramesSent = 0
    var malformedFrames: [String] = []

    public mutating func takeMalformedFrames() -> [String] {
        defer { malformedFrames = [] }
        return malformedFrames
    }

    public init(knownSymbols: [String], configuration: Configuration = Configuration(), connectedAt: Int64) {
        self.knownSymbols = Set(knownSymbols)
        self.configuration = configuration
        self.connectedAt = connectedAt
        self.lastReceived = connectedAt
    }

    /// True once the session decided to close.
    public var isClosed: Bool { closed }

    /// A text frame from the client.
    public mutating func received(_ text: String, at time: Int64) -> [Action] {
        guard !closed else { return [] }
        lastReceived = time
        guard let request = try? PoloniexSession.parseRequest(text) else {
            return [.send(PoloniexWire.error(message: "Invalid request: not a JSON object with an event"))]
        }
        switch request.event {
        case "ping":
            return [.send(PoloniexWire.pong)]
        case "subscribe", "unsubscribe":
            guard !request.channels.isEmpty else {
                return [.send(PoloniexWire.error(message: "Missing channel"))]
            }
            let wantsAll = request.symbols.contains { $0.lowercased() == "all" }
            if !wantsAll {
                if request.symbols.isEmpty { return [.send(PoloniexWire.error(message: "Missing symbols"))] }
                if let unknown = request.symbols.first(where: { !knownSymbols.contains($0) }) {
                    return [.send(PoloniexWire.error(message: "Invalid symbol: \(unknown)"))]
                }
            }
            var actions: [Action] = []
            for channel in request.channels {
                if channel == "book_lv2" {
                    let symbols = wantsAll ? Array(knownSymbols).sorted() : request.symbols
                    for symbol in symbols {
                        if request.event == "subscribe" {
                            if bookSymbols[symbol] == nil {
                                bookSymbols[symbol] = .some(nil)
                                bookSnapshotsOwed.append(symbol)
                            }
                        } else {
                            bookSymbols[symbol] = nil
                            heldBookUpdates[symbol] = nil
                            bookSnapshotsOwed.removeAll { $0 == symbol }
                        }
                    }
                }
                if channel == "trades" {
                    if request.event == "subscribe" {
                        if wantsAll { allSymbols = true } else { tradeSymbols.formUnion(request.symbols) }
                    } else {
                        if wantsAll {
                            allSymbols = false
                            tradeSymbols = []
                        } else {
                            tradeSymbols.subtract(request.symbols)
                        }
                    }
                }
                actions.append(
                    .send(PoloniexWire.subscribeAck(channel: channel, symbols: request.symbols, event: request.event)))
            }
            return actions
        default:
            return [.send(PoloniexWire.error(message: "Unsupported event: \(request.event)"))]
        }
    }

    public mutating func takeBookSnapshotRequests() -> [String] {
        defer { bookSnapshotsOwed = [] }
        return bookSnapshotsOwed
    }

    /// The `book_lv2` snapshot of a symbol subscribed and still owed one.
    public mutating func bookSnapshot(_ book: OrderBook, updateId: Int64, instrument: String) -> [Action] {
        guard !closed, let sent = bookSymbols[instrument], sent == nil else { return [] }
        bookSymbols[instrument] = updateId
        let time = lastPublished ?? connectedAt
        return [
            .send(
                PoloniexWire.bookFrame(
                    symbol: instrument, asks: book.asks(), bids: book.bids(), lastId: updateId &- 1, id: updateId,
                    createTime: time, pushTime: time, snapshot: true))
        ]
    }

    /// New market orders: one trades frame per order on a subscribed symbol, and one `book_lv2`
    /// update per order that changed the book of a symbol whose snapshot went out.
    public mutating func publish(_ orders: [SimulatedOrder], at time: Int64) -> [Action] {
        var actions = tick(at: time)
        guard !closed else { return actions }
        lastPublished = time
        for order in orders {
            appendTrades(order, to: &actions)
            appendBookUpdate(order, at: time, to: &actions)
        }
        return actions
    }

    mutating func appendBookUpdate(_ order: SimulatedOrder, at time: Int64, to actions: inout [Action]) {
        guard !order.bookChanges.isEmpty, let entry = bookSymbols[order.nativeSymbol], let last = entry,
            order.bookUpdateId > last
        else { return }
        bookSymbols[order.nativeSymbol] = order.bookUpdateId
        bookUpdates += 1
        var asks: [BookLevel] = []
        var bids: [BookLevel] = []
        for change in order.bookChanges {
            if change.side == .ask { asks.append(change.level) } else { bids.append(change.level) }
        }
        let frame = PoloniexWire.bookFrame(
            symbol: order.nativeSymbol, asks: asks, bids: bids, lastId: order.bookUpdateId &- 1, id: order.bookUpdateId,
            createTime: order.time, pushTime: max(order.time, time), snapshot: false)
        if let every = configuration.skipBookUpdateEvery, every > 0, bookUpdates % every == 0 {
            bookUpdatesSkipped += 1
            return
        }
        if let every = configuration.swapBookUpdatesEvery, every > 0, bookUpdates % every == 0,
            heldBookUpdates[order.nativeSymbol] == nil
        {
            bookUpdatesSwapped += 1
            heldBookUpdates[order.nativeSymbol] = frame
            return
        }
        actions.append(.send(frame))
        if let held = heldBookUpdates.removeValue(forKey: order.nativeSymbol) { actions.append(.send(held)) }
    }

    mutating func appendTrades(_ order: SimulatedOrder, to actions: inout [Action]) {
        if !order.trades.isEmpty && (allSymbols || tradeSymbols.contains(order.nativeSymbol)) {
            framesSent += 1
            let numeric = configuration.numericIdsEvery.map { $0 > 0 && framesSent % $0 == 0 } ?? false
            var frame = PoloniexWire.tradesFrame(order.trades, numericIds: numeric)
            if let every = configuration.malformedFrameEvery, every > 0, framesSent % every == 0 {
                frame = WireFaults.malformed(frame, variant: UInt64(framesSent / every))
                malformedFramesSent += 1
                malformedFrames.append(frame)
            }
            actions.append(.send(frame))
        }
    }

    /// The clock moved: drop a silent client, or a connection whose planned lifetime is over.
    public mutating func tick(at time: Int64) -> [Action] {
        guard !closed else { return [] }
        if time - lastReceived >= configuration.idleTimeout {
            closed = true
            return [.close(reason: "no message from the client for \(configuration.idleTimeout) ms")]
        }
        if let after = configuration.dropConnectionAfter, time - connectedAt >= after {
            closed = true
            return [.close(reason: "simulated connection drop after \(after) ms")]
        }
        return []
    }

    struct Request {
        var event: String
        var channels: [String]
        var symbols: [String]
    }

    static func parseRequest(_ text: String) throws(JSONError) -> Request {
        try JSONScanner.withScanner(over: text) { (s: inout JSONScanner) throws(JSONError) -> Request in
            var request = Request(event: "", channels: [], symbols: [])
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                if s.token(key, equals: "event") {
                    request.event = try s.readStringValue()
                } else if s.token(key, equals: "channel") {
                    request.channels = try readStrings(&s)
                } else if s.token(key, equals: "symbols") {
                    request.symbols = try readStrings(&s)
                } else {
                    try s.skipValue()
                }
            }
            guard s.isAtEnd(), !request.event.isEmpty else {
                throw JSONError(.badValue, "not a request", at: s.position)
            }
            return request
        }
    }

    /// A string or an array of strings.
    static func readStrings(_ s: inout JSONScanner) throws(JSONError) -> [String] {
        if try s.peek() != UInt8(ascii: "[") { return [try s.readStringValue()] }
        var result: [String] = []
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) { result.append(try s.readStringValue()) }
        return result
    }
}
