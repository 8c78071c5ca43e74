import MarketData

/// Parses frames of Coinbase Advanced Trade's public websocket: `market_trades` (snapshot and
/// update events, several trades each), `subscriptions` confirmations, `heartbeats`, errors.
///
/// Every trade of every event is read; `time` (RFC 3339, parsed from its bytes to ms, fraction
/// truncated) is the trade time, not the envelope's `timestamp`; `size` is the base quantity;
/// `side` is the maker's side, so the taker side is its opposite (`Coinbase.sideIsMakerSide`,
/// sources there); `trade_id` is kept as text; `quoteQuantity` is price × size, exact. A frame
/// that fails anywhere appends nothing.
///
/// `l2_data` (the `level2` channel) frames become one `BookFrame` per event: `snapshot` or
/// `update`, `side` "bid" → bids, "offer" → asks, `price_level`/`new_quantity` kept as printed,
/// `time` = the envelope's `timestamp`, `sequence` = the envelope's `sequence_num`.
///
/// **The connection-wide sequence check.** `sequence_num` numbers every message of the connection,
/// whatever its channel (heartbeats, trades, subscriptions and every product's book alike), one
/// by one; "Sequence numbers that are greater than one integer value from the previous number
/// indicate that a message has been dropped" (Advanced Trade docs, WebSocket Overview). A lost
/// message may have been any product's book update, so a break makes every book of the connection
/// suspect — but each market's synchronizer only sees its own market's frames. So the parser,
/// which sees every frame, tracks the numbering: `runStart` is the `sequence_num` since which it
/// has had no break (no skip, no repeat, no step back, no frame that failed to parse), and each
/// book frame carries it as `firstSequence`. A synchronizer remembers the run its snapshot came
/// in; a later frame of another run means a message was lost since, and it resynchronizes
/// (`CoinbaseBookSynchronizer`). An `l2_data` frame that fails to parse (or one whose envelope
/// cannot be read) does not advance the numbering, so the next good frame starts a new run: a
/// dead-lettered book update resyncs every book. A bad frame of another channel, whose envelope
/// was read, lost no book change and counts as read.
///
/// Sample (Advanced Trade docs): see `Coinbase.sampleTradesFrame`, `Coinbase.sampleLevel2Snapshot`.
public struct CoinbaseFrameParser: Sendable {
    var symbols = SymbolCache()
    /// The `sequence_num` of the last frame parsed whole; nil before the first.
    public private(set) var lastSequence: Int64?
    /// The `sequence_num` since which the numbering has had no break; nil before the first frame.
    public private(set) var runStart: Int64?

    public init() {}

    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        var unused: [BookFrame] = []
        return try parse(frame, receivedAt: receivedAt, into: &trades, books: &unused, wantsBooks: false)
    }

    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        try parse(frame, receivedAt: receivedAt, into: &trades, books: &books, wantsBooks: true)
    }

    /// Both parses: a frame that fails appends nothing to either array (and counts in the numbering
    /// only when its envelope was read and it is not `l2_data`, see above).
    mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame],
        wantsBooks: Bool
    ) throws(FrameParseError) -> ExchangeMessage {
        try appendingAllOrNothing(to: &trades, and: &books) { trades, books throws(FrameParseError) in
            try parseFrame(frame, receivedAt: receivedAt, into: &trades, books: &books, wantsBooks: wantsBooks)
        }
    }

    /// The run a frame numbered `sequence` belongs to: the current one when it follows the last
    /// frame by exactly one, else a new run starting at it.
    func run(of sequence: Int64) -> Int64 {
        if let last = lastSequence, let runStart, last < Int64.max, sequence == last + 1 { return runStart }
        return sequence
    }

    mutating func parseFrame(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame],
        wantsBooks: Bool
    ) throws(FrameParseError) -> ExchangeMessage {
        var s = JSONScanner(frame)
        var channel: String?
        var type: String?
        var message: String?
        var eventsAt: Int?
        var sequence: Int64?
        var timestamp: JSONStringToken?
        var repeated = false
        var negativeSequence = false
        do throws(JSONError) {
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                if s.token(key, equals: "channel") {
                    if channel != nil { repeated = true }
                    channel = try s.readStringValue()
                } else if s.token(key, equals: "events") {
                    if eventsAt != nil { repeated = true }
                    eventsAt = s.position
                    try s.skipValue()
                } else if s.token(key, equals: "sequence_num") {
                    if sequence != nil { repeated = true }
                    let value = try s.readInt64()
                    if value < 0 { negativeSequence = true }
                    sequence = value
                } else if s.token(key, equals: "timestamp") {
                    timestamp = try s.peek() == UInt8(ascii: "\"") ? try s.readString() : nil
                    if timestamp == nil { try s.skipValue() }
                } else if s.token(key, equals: "type") {
                    type = try s.readStringValue()
                } else if s.token(key, equals: "message") {
                    message = try s.peek() == UInt8(ascii: "\"") ? try s.readStringValue() : nil
                    if message == nil { try s.skipValue() }
                } else {
                    try s.skipValue()
                }
            }
            guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the frame's object", at: s.position) }
        } catch {
            throw FrameParseError(error)
        }
        if repeated {
            throw FrameParseError(.unexpectedMessage, "frame repeats \"channel\", \"events\" or \"sequence_num\"", offset: 0)
        }
        if negativeSequence { throw FrameParseError(.unexpectedMessage, "negative sequence_num", offset: 0) }
        let result: ExchangeMessage
        do {
            result = try dispatch(
                &s, channel: channel, type: type, message: message, eventsAt: eventsAt, sequence: sequence,
                timestamp: timestamp, receivedAt: receivedAt, into: &trades, books: &books, wantsBooks: wantsBooks)
        } catch {
            // A bad message of another channel (a malformed trade) lost no book change: it still
            // counts. A bad l2_data message did: the numbering is left behind it.
            if let sequence, let channel, channel != Coinbase.level2DataChannel { advance(to: sequence) }
            throw error
        }
        if let sequence { advance(to: sequence) }
        return result
    }

    /// Counts message `sequence` as read.
    mutating func advance(to sequence: Int64) {
        runStart = run(of: sequence)
        lastSequence = sequence
    }

    /// The frame's meaning by its channel, once the envelope is read.
    mutating func dispatch(
        _ s: inout JSONScanner, channel: String?, type: String?, message: String?, eventsAt: Int?, sequence: Int64?,
        timestamp: JSONStringToken?, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame],
        wantsBooks: Bool
    ) throws(FrameParseError) -> ExchangeMessage {
        let frame = s.bytes
        if type == "error" { return .error(message: message ?? "") }
        guard let channel else {
            if let type { return .otherEvent(type) }
            throw FrameParseError(.unexpectedMessage, "frame has neither channel nor type", offset: 0)
        }
        switch channel {
        case Coinbase.level2DataChannel:
            guard wantsBooks else { return .ignored(channel: channel) }
            guard let eventsAt else { throw FrameParseError(.invalidBook, "l2_data frame without events", offset: 0) }
            guard let sequence else { throw FrameParseError(.invalidBook, "l2_data frame without sequence_num", offset: 0) }
            var time = receivedAt / 1000
            if let timestamp {
                guard !timestamp.hasEscapes, let ms = RFC3339.milliseconds(s.rawBytes(timestamp)), Trade.validTimes.contains(ms)
                else {
                    throw FrameParseError(.invalidBook, "timestamp is not an RFC 3339 time", offset: timestamp.range.lowerBound)
                }
                time = ms
            }
            var again = JSONScanner(frame)
            again.position = eventsAt
            do throws(JSONError) {
                let count = try parseBookEvents(
                    &again, time: time, receivedAt: receivedAt, sequence: sequence, runStart: run(of: sequence), into: &books)
                return .books(count: count)
            } catch {
                let wellFormed = error.code == .badValue || error.code == .wrongType || error.code == .outOfRange
                throw FrameParseError(wellFormed ? .invalidBook : .malformedJSON, error.reason, offset: error.offset)
            }
        case Coinbase.tradesChannel:
            guard let eventsAt else { throw FrameParseError(.unexpectedMessage, "market_trades frame without events", offset: 0) }
            var again = JSONScanner(frame)
            again.position = eventsAt
            do throws(JSONError) {
                return .trades(count: try parseTradeEvents(&again, receivedAt: receivedAt, into: &trades))
            } catch {
                throw FrameParseError(error)
            }
        case "subscriptions":
            guard let eventsAt else { return .ignored(channel: channel) }
            var again = JSONScanner(frame)
            again.position = eventsAt
            do throws(JSONError) {
                if let products = try subscribedProducts(&again) {
                    return .subscribed(channel: Coinbase.tradesChannel, symbols: products)
                }
                return .ignored(channel: channel)
            } catch {
                throw FrameParseError(error)
            }
        default:
            return .ignored(channel: channel)
        }
    }

    /// `[{"type":"snapshot"|"update","product_id":"BTC-USD","updates":[{"side":"bid"|"offer",
    /// "event_time":"...","price_level":"21614.59","new_quantity":"0.5"}, ...]}, ...]`: one frame
    /// per event, levels in the order given.
    mutating func parseBookEvents(
        _ s: inout JSONScanner, time: Int64, receivedAt: Int64, sequence: Int64, runStart: Int64, into books: inout [BookFrame]
    ) throws(JSONError) -> Int {
        var count = 0
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            let start = s.position
            var kind: BookFrame.Kind?
            var product: CachedSymbol?
            var bids: [BookLevel] = []
            var asks: [BookLevel] = []
            var sawUpdates = false
            try s.beginObject()
            var firstKey = true
            while let key = try s.nextKey(first: &firstKey) {
                if s.token(key, equals: "type") {
                    let token = try s.readString()
                    if s.token(token, equals: "snapshot") {
                        kind = .snapshot
                    } else if s.token(token, equals: "update") {
                        kind = .update
                    } else {
                        throw JSONError(.badValue, "l2_data event type must be snapshot or update", at: token.range.lowerBound)
                    }
                } else if s.token(key, equals: "product_id") {
                    let token = try s.readString()
                    if token.hasEscapes || token.range.isEmpty || token.range.count > 64 {
                        throw JSONError(.badValue, "bad product_id", at: token.range.lowerBound)
                    }
                    product = symbols.lookup(s.rawBytes(token))
                } else if s.token(key, equals: "updates") {
                    if sawUpdates { throw JSONError(.badValue, "l2_data event repeats updates", at: key.range.lowerBound) }
                    sawUpdates = true
                    try parseLevelUpdates(&s, bids: &bids, asks: &asks)
                } else {
                    try s.skipValue()
                }
            }
            guard let kind else { throw JSONError(.badValue, "l2_data event has no type", at: start) }
            guard let product else { throw JSONError(.badValue, "l2_data event has no product_id", at: start) }
            guard sawUpdates else { throw JSONError(.badValue, "l2_data event has no updates", at: start) }
            books.append(
                BookFrame(
                    nativeSymbol: product.native, kind: kind, bids: bids, asks: asks, time: time, receivedAt: receivedAt,
                    firstSequence: runStart, sequence: sequence))
            count += 1
        }
        return count
    }

    /// The `updates` list of one l2_data event.
    func parseLevelUpdates(_ s: inout JSONScanner, bids: inout [BookLevel], asks: inout [BookLevel]) throws(JSONError) {
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            let start = s.position
            var side: BookSide?
            var price: UnsafeBufferPointer<UInt8>?
            var quantity: UnsafeBufferPointer<UInt8>?
            try s.beginObject()
            var firstKey = true
            while let key = try s.nextKey(first: &firstKey) {
                switch key.range.count {
                case 4 where s.token(key, equals: "side"):
                    let token = try s.readString()
                    if s.token(token, equals: "bid") {
                        side = .bid
                    } else if s.token(token, equals: "offer") || s.token(token, equals: "ask") {
                        side = .ask
                    } else {
                        throw JSONError(.badValue, "level side must be bid or offer", at: token.range.lowerBound)
                    }
                case 11 where s.token(key, equals: "price_level"):
                    price = try s.readLevelText()
                case 12 where s.token(key, equals: "new_quantity"):
                    quantity = try s.readLevelText()
                default:
                    try s.skipValue()
                }
            }
            guard let side else { throw JSONError(.badValue, "level update has no side", at: start) }
            guard let price else { throw JSONError(.badValue, "level update has no price_level", at: start) }
            guard let quantity else { throw JSONError(.badValue, "level update has no new_quantity", at: start) }
            let level: BookLevel
            do throws(BookError) {
                level = try BookLevel(price: price, quantity: quantity)
            } catch {
                throw JSONError(.badValue, "bad level: \(error.reason)", at: start)
            }
            if side == .bid { bids.append(level) } else { asks.append(level) }
        }
    }

    /// `[{"type":"snapshot","trades":[...]}, ...]`: every trade of every event.
    mutating func parseTradeEvents(_ s: inout JSONScanner, receivedAt: Int64, into trades: inout [Trade]) throws(JSONError)
        -> Int
    {
        var count = 0
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            try s.beginObject()
            var firstKey = true
            while let key = try s.nextKey(first: &firstKey) {
                guard s.token(key, equals: "trades") else {
                    try s.skipValue()
                    continue
                }
                try s.beginArray()
                var firstTrade = true
                while try s.nextElement(first: &firstTrade) {
                    trades.append(try parseTrade(&s, receivedAt: receivedAt, restProduct: nil))
                    count += 1
                }
            }
        }
        return count
    }

    /// The products of `market_trades` in a subscriptions event, nil when that channel is absent.
    func subscribedProducts(_ s: inout JSONScanner) throws(JSONError) -> [String]? {
        var products: [String]?
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            try s.beginObject()
            var firstKey = true
            while let key = try s.nextKey(first: &firstKey) {
                guard s.token(key, equals: "subscriptions") else {
                    try s.skipValue()
                    continue
                }
                try s.beginObject()
                var firstChannel = true
                while let channel = try s.nextKey(first: &firstChannel) {
                    guard s.token(channel, equals: "market_trades") else {
                        try s.skipValue()
                        continue
                    }
                    var list: [String] = []
                    try s.beginArray()
                    var firstProduct = true
                    while try s.nextElement(first: &firstProduct) { list.append(try s.readStringValue()) }
                    products = (products ?? []) + list
                }
            }
        }
        return products
    }

    /// One trade object (websocket and REST share the shape).
    mutating func parseTrade(_ s: inout JSONScanner, receivedAt: Int64, restProduct: CachedSymbol?) throws(JSONError) -> Trade {
        let start = s.position
        var id: String?
        var symbol: CachedSymbol?
        var price: ExactDecimal?
        var size: ExactDecimal?
        var side: Side?
        var time: Int64?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "trade_id") {
                id = try readIdText(&s)
            } else if s.token(key, equals: "product_id") {
                let token = try s.readString()
                if token.hasEscapes || token.range.isEmpty || token.range.count > 64 {
                    throw JSONError(.badValue, "bad product_id", at: token.range.lowerBound)
                }
                symbol = symbols.lookup(s.rawBytes(token))
            } else if s.token(key, equals: "price") {
                price = try s.readDecimal()
            } else if s.token(key, equals: "size") {
                size = try s.readDecimal()
            } else if s.token(key, equals: "side") {
                let token = try s.readString()
                guard let parsed = Side(utf8: s.rawBytes(token)) else {
                    throw JSONError(.badValue, "side must be BUY or SELL", at: token.range.lowerBound)
                }
                side = parsed
            } else if s.token(key, equals: "time") {
                let token = try s.readString()
                guard !token.hasEscapes, let ms = RFC3339.milliseconds(s.rawBytes(token)) else {
                    throw JSONError(.badValue, "time is not an RFC 3339 timestamp", at: token.range.lowerBound)
                }
                time = try validTradeTime(ms, at: token.range.lowerBound)
            } else {
                try s.skipValue()
            }
        }
        func missing(_ field: String) -> JSONError { JSONError(.badValue, "trade has no \(field)", at: start) }
        guard let id else { throw missing("trade_id") }
        guard let symbol = symbol ?? restProduct else { throw missing("product_id") }
        guard let price else { throw missing("price") }
        guard let size else { throw missing("size") }
        guard let side else { throw missing("side") }
        guard let time else { throw missing("time") }
        let quote = try exactQuote(price, size, at: start)
        return Trade(
            exchange: Coinbase.exchange, symbol: symbol.symbol, nativeSymbol: symbol.native, tradeId: id, price: price,
            quantity: size, quoteQuantity: quote, side: Coinbase.takerSide(fromReported: side), time: time,
            receivedAt: receivedAt)
    }
}
