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
/// Sample (Advanced Trade docs): see `Coinbase.sampleTradesFrame`.
public struct CoinbaseFrameParser: Sendable {
    var symbols = SymbolCache()

    public init() {}

    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        try appendingAllOrNothing(to: &trades) { trades throws(FrameParseError) in
            try parseFrame(frame, receivedAt: receivedAt, into: &trades)
        }
    }

    mutating func parseFrame(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        var s = JSONScanner(frame)
        var channel: String?
        var type: String?
        var message: String?
        var eventsAt: Int?
        var repeated = false
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
        if repeated { throw FrameParseError(.unexpectedMessage, "frame repeats \"channel\" or \"events\"", offset: 0) }
        if type == "error" { return .error(message: message ?? "") }
        guard let channel else {
            if let type { return .otherEvent(type) }
            throw FrameParseError(.unexpectedMessage, "frame has neither channel nor type", offset: 0)
        }
        switch channel {
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
