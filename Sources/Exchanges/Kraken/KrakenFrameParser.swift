import MarketData

/// Parses frames of Kraken's websocket API v2: `trade` snapshots and updates (several trades
/// each), subscribe acknowledgements and refusals, `pong`, `heartbeat` and `status`.
///
/// Every trade is read; `price` and `qty` are JSON numbers read exactly from their text into
/// `ExactDecimal` (never through Double; exponents shifted exactly); `side` is the taker's;
/// `timestamp` (RFC 3339, µs) is the trade time, truncated to ms; `trade_id` keeps its digits;
/// `quoteQuantity` is price × qty, exact. A frame that fails anywhere appends nothing.
///
/// Sample (Kraken docs): see `Kraken.sampleTradesFrame`.
public struct KrakenFrameParser: Sendable {
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
        var channelIsTrade = false
        var method: String?
        var success: Bool?
        var error: String?
        var symbol: String?
        var resultSymbol: String?
        var resultChannel: String?
        var dataAt: Int?
        var tradeCount: Int?
        var repeated = false
        do throws(JSONError) {
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                if s.token(key, equals: "channel") {
                    if channel != nil { repeated = true }
                    let token = try s.readString()
                    channelIsTrade = s.token(token, equals: "trade")
                    channel = channelIsTrade ? Kraken.tradesChannel : try s.string(token)
                } else if s.token(key, equals: "data") {
                    if dataAt != nil { repeated = true }
                    if channelIsTrade {
                        dataAt = s.position
                        tradeCount = try parseTradeArray(&s, receivedAt: receivedAt, into: &trades)
                    } else {
                        dataAt = s.position
                        try s.skipValue()
                    }
                } else if s.token(key, equals: "method") {
                    method = try s.readStringValue()
                } else if s.token(key, equals: "success") {
                    success = try s.readBool()
                } else if s.token(key, equals: "error") {
                    error = try s.peek() == UInt8(ascii: "\"") ? try s.readStringValue() : nil
                    if error == nil { try s.skipValue() }
                } else if s.token(key, equals: "symbol") {
                    symbol = try s.peek() == UInt8(ascii: "\"") ? try s.readStringValue() : nil
                    if symbol == nil { try s.skipValue() }
                } else if s.token(key, equals: "result") {
                    if try s.peek() == UInt8(ascii: "{") {
                        try s.beginObject()
                        var firstResult = true
                        while let field = try s.nextKey(first: &firstResult) {
                            if s.token(field, equals: "symbol"), try s.peek() == UInt8(ascii: "\"") {
                                resultSymbol = try s.readStringValue()
                            } else if s.token(field, equals: "channel"), try s.peek() == UInt8(ascii: "\"") {
                                resultChannel = try s.readStringValue()
                            } else {
                                try s.skipValue()
                            }
                        }
                    } else {
                        try s.skipValue()
                    }
                } else {
                    try s.skipValue()
                }
            }
            guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the frame's object", at: s.position) }
        } catch {
            throw FrameParseError(error)
        }
        if repeated { throw FrameParseError(.unexpectedMessage, "frame repeats \"channel\" or \"data\"", offset: 0) }
        if let method {
            if channel != nil { throw FrameParseError(.unexpectedMessage, "frame has both a method and a channel", offset: 0) }
            if success == false || error != nil {
                let what = [error, symbol.map { "(\($0))" }].compactMap { $0 }.joined(separator: " ")
                return .error(message: what.isEmpty ? "\(method) failed" : what)
            }
            switch method {
            case "subscribe":
                return .subscribed(channel: resultChannel ?? Kraken.tradesChannel, symbols: [resultSymbol ?? symbol].compactMap { $0 })
            case "unsubscribe":
                return .unsubscribed(channel: resultChannel ?? Kraken.tradesChannel, symbols: [resultSymbol ?? symbol].compactMap { $0 })
            case "pong": return .pong
            default: return .otherEvent(method)
            }
        }
        guard let channel else {
            if let error { return .error(message: error) }
            throw FrameParseError(.unexpectedMessage, "frame has neither method nor channel", offset: 0)
        }
        guard channelIsTrade else { return .ignored(channel: channel) }
        guard let dataAt else { throw FrameParseError(.unexpectedMessage, "trade frame without data", offset: 0) }
        if let tradeCount { return .trades(count: tradeCount) }
        // "data" came before "channel": read it now that we know what it is.
        var again = JSONScanner(frame)
        again.position = dataAt
        do throws(JSONError) {
            return .trades(count: try parseTradeArray(&again, receivedAt: receivedAt, into: &trades))
        } catch {
            throw FrameParseError(error)
        }
    }

    mutating func parseTradeArray(_ s: inout JSONScanner, receivedAt: Int64, into trades: inout [Trade]) throws(JSONError)
        -> Int
    {
        var count = 0
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            trades.append(try parseTrade(&s, receivedAt: receivedAt))
            count += 1
        }
        return count
    }

    mutating func parseTrade(_ s: inout JSONScanner, receivedAt: Int64) throws(JSONError) -> Trade {
        let start = s.position
        var symbol: CachedSymbol?
        var side: Side?
        var price: ExactDecimal?
        var qty: ExactDecimal?
        var id: String?
        var time: Int64?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "symbol") {
                let token = try s.readString()
                if token.hasEscapes || token.range.isEmpty || token.range.count > 64 {
                    throw JSONError(.badValue, "bad symbol", at: token.range.lowerBound)
                }
                symbol = symbols.lookup(s.rawBytes(token))
            } else if s.token(key, equals: "side") {
                let token = try s.readString()
                guard let parsed = Side(utf8: s.rawBytes(token)) else {
                    throw JSONError(.badValue, "side must be buy or sell", at: token.range.lowerBound)
                }
                side = parsed
            } else if s.token(key, equals: "price") {
                price = try s.readExactNumber()
            } else if s.token(key, equals: "qty") {
                qty = try s.readExactNumber()
            } else if s.token(key, equals: "trade_id") {
                id = try readIdText(&s)
            } else if s.token(key, equals: "timestamp") {
                let token = try s.readString()
                guard !token.hasEscapes, let ms = RFC3339.milliseconds(s.rawBytes(token)) else {
                    throw JSONError(.badValue, "timestamp is not an RFC 3339 time", at: token.range.lowerBound)
                }
                time = try validTradeTime(ms, at: token.range.lowerBound)
            } else {
                try s.skipValue()
            }
        }
        func missing(_ field: String) -> JSONError { JSONError(.badValue, "trade has no \(field)", at: start) }
        guard let symbol else { throw missing("symbol") }
        guard let side else { throw missing("side") }
        guard let price else { throw missing("price") }
        guard let qty else { throw missing("qty") }
        guard let id else { throw missing("trade_id") }
        guard let time else { throw missing("timestamp") }
        let quote = try exactQuote(price, qty, at: start)
        return Trade(
            exchange: Kraken.exchange, symbol: symbol.symbol, nativeSymbol: symbol.native, tradeId: id, price: price,
            quantity: qty, quoteQuantity: quote, side: side, time: time, receivedAt: receivedAt)
    }
}
