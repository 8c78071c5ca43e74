import MarketData

/// One market of `GET /markets`, with the fields Tape uses.
public struct PoloniexMarket: Sendable, Hashable {
    /// Native symbol, "BTC_USDT".
    public var symbol: String
    public var baseCurrencyName: String
    public var quoteCurrencyName: String
    public var displayName: String
    /// "NORMAL" when trading; "PAUSE" and others when not.
    public var state: String
    public var visibleStartTime: Int64?
    public var tradableStartTime: Int64?
    public var priceScale: Int?
    public var quantityScale: Int?
    public var amountScale: Int?
    public var minQuantity: ExactDecimal?
    public var minAmount: ExactDecimal?

    /// True when `state` is "NORMAL".
    public var isTrading: Bool { state == "NORMAL" }
    /// Tape's normalized symbol.
    public var normalizedSymbol: Symbol { Symbol(normalizing: symbol) }
}

/// Parsers for Poloniex REST bodies (same hand-written scanner as the websocket parser).
public enum PoloniexREST {
    /// Parses `GET /markets/{symbol}/trades`: an array of trades (`takerSide` "BUY"/"SELL", no
    /// `symbol` field), newest first as Poloniex returns them — the order is kept.
    public static func parseTrades(
        _ body: [UInt8], nativeSymbol: String, receivedAt: Int64
    ) throws(FrameParseError) -> [Trade] {
        let cached = CachedSymbol(native: nativeSymbol, symbol: Symbol(normalizing: nativeSymbol))
        let result = body.withUnsafeBufferPointer { buffer in
            Result { () throws(FrameParseError) -> [Trade] in
                var parser = PoloniexFrameParser()
                var s = JSONScanner(buffer)
                var trades: [Trade] = []
                do throws(JSONError) {
                    try s.beginArray()
                    var first = true
                    while try s.nextElement(first: &first) {
                        trades.append(try parser.parseTrade(&s, receivedAt: receivedAt, restSymbol: cached))
                    }
                    guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the array", at: s.position) }
                } catch {
                    throw FrameParseError(error)
                }
                return trades
            }
        }
        return try result.get()
    }

    public static func parseTrades(_ body: String, nativeSymbol: String, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    {
        try parseTrades(Array(body.utf8), nativeSymbol: nativeSymbol, receivedAt: receivedAt)
    }

    /// Parses `GET /markets`: every market, in the order given. Requires `symbol` and `state`.
    public static func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [PoloniexMarket] {
        let result = body.withUnsafeBufferPointer { buffer in
            Result { () throws(FrameParseError) -> [PoloniexMarket] in
                var s = JSONScanner(buffer)
                var markets: [PoloniexMarket] = []
                do throws(JSONError) {
                    try s.beginArray()
                    var first = true
                    while try s.nextElement(first: &first) {
                        markets.append(try parseMarket(&s))
                    }
                    guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the array", at: s.position) }
                } catch {
                    throw FrameParseError(error)
                }
                return markets
            }
        }
        return try result.get()
    }

    public static func parseMarkets(_ body: String) throws(FrameParseError) -> [PoloniexMarket] {
        try parseMarkets(Array(body.utf8))
    }

    static func parseMarket(_ s: inout JSONScanner) throws(JSONError) -> PoloniexMarket {
        let start = s.position
        var market = PoloniexMarket(
            symbol: "", baseCurrencyName: "", quoteCurrencyName: "", displayName: "", state: "")
        var sawSymbol = false
        var sawState = false
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "symbol") {
                market.symbol = try s.readStringValue()
                sawSymbol = true
            } else if s.token(key, equals: "baseCurrencyName") {
                market.baseCurrencyName = try optionalString(&s)
            } else if s.token(key, equals: "quoteCurrencyName") {
                market.quoteCurrencyName = try optionalString(&s)
            } else if s.token(key, equals: "displayName") {
                market.displayName = try optionalString(&s)
            } else if s.token(key, equals: "state") {
                market.state = try s.readStringValue()
                sawState = true
            } else if s.token(key, equals: "visibleStartTime") {
                market.visibleStartTime = try s.consumeNull() ? nil : try s.readInt64()
            } else if s.token(key, equals: "tradableStartTime") {
                market.tradableStartTime = try s.consumeNull() ? nil : try s.readInt64()
            } else if s.token(key, equals: "symbolTradeLimit") {
                if try s.consumeNull() { continue }
                try s.beginObject()
                var firstLimit = true
                while let limitKey = try s.nextKey(first: &firstLimit) {
                    if s.token(limitKey, equals: "priceScale") {
                        market.priceScale = Int(try s.readInt64())
                    } else if s.token(limitKey, equals: "quantityScale") {
                        market.quantityScale = Int(try s.readInt64())
                    } else if s.token(limitKey, equals: "amountScale") {
                        market.amountScale = Int(try s.readInt64())
                    } else if s.token(limitKey, equals: "minQuantity") {
                        market.minQuantity = try s.readDecimal()
                    } else if s.token(limitKey, equals: "minAmount") {
                        market.minAmount = try s.readDecimal()
                    } else {
                        try s.skipValue()
                    }
                }
            } else {
                try s.skipValue()
            }
        }
        guard sawSymbol, !market.symbol.isEmpty else { throw JSONError(.badValue, "market has no symbol", at: start) }
        guard sawState else { throw JSONError(.badValue, "market \(market.symbol) has no state", at: start) }
        return market
    }

    static func optionalString(_ s: inout JSONScanner) throws(JSONError) -> String {
        try s.consumeNull() ? "" : try s.readStringValue()
    }
}
