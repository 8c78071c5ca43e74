import MarketData

/// Parses frames of Binance's spot websocket: `trade` events (raw, or wrapped by a combined
/// stream as `{"stream":...,"data":{...}}`), SUBSCRIBE acks and errors.
///
/// Every field is checked: `T` (trade time) is the time, not `E` (push time); `t` is the trade
/// id (a number, kept as its digits); `m` (buyer is maker) gives the taker side — `m:true` → sell;
/// `quoteQuantity` is price × quantity, exact. The normalized symbol comes from the market list's
/// base/quote split (`Binance.normalizedSymbol` when a symbol is missing from it). A frame that
/// fails appends nothing.
///
/// Sample (Binance docs): see `Binance.sampleTradeEvent`.
public struct BinanceFrameParser: Sendable {
    /// Native symbol → its cached native and normalized strings.
    var known: [String: CachedSymbol] = [:]

    /// A parser; `markets` gives the base/quote split of native symbols.
    public init(markets: [ListedMarket] = []) {
        for market in markets {
            known[market.nativeSymbol.uppercased()] = CachedSymbol(native: market.nativeSymbol, symbol: market.symbol)
        }
    }

    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        var unused: [BookFrame] = []
        return try parseFrame(frame, receivedAt: receivedAt, into: &trades, books: &unused, wantsBooks: false)
    }

    /// Parses trades and `depthUpdate` events (`<symbol>@depth@100ms`): each event is one `.update`
    /// frame with `firstSequence` = `U`, `sequence` = `u`, `time` = `E`, levels as printed.
    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        try parseFrame(frame, receivedAt: receivedAt, into: &trades, books: &books, wantsBooks: true)
    }

    /// Both parses: a frame that fails appends nothing to either array.
    mutating func parseFrame(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame],
        wantsBooks: Bool
    ) throws(FrameParseError) -> ExchangeMessage {
        try appendingAllOrNothing(to: &trades, and: &books) { trades, books throws(FrameParseError) in
            do {
                var s = JSONScanner(frame)
                let message = try parseObject(
                    &s, receivedAt: receivedAt, into: &trades, books: &books, wantsBooks: wantsBooks, depth: 0)
                guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the frame's object", at: s.position) }
                return message
            } catch let error as JSONError {
                throw FrameParseError(error)
            } catch let error as FrameParseError {
                throw error
            } catch {
                throw FrameParseError(.malformedJSON, "\(error)", offset: 0)
            }
        }
    }

    /// One object: a trade event, a depth update, a combined-stream wrapper (one level), an ack or
    /// an error.
    mutating func parseObject(
        _ s: inout JSONScanner, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame], wantsBooks: Bool,
        depth: Int
    ) throws -> ExchangeMessage {
        let objectStart = s.position
        var eventType: String?
        var symbol: CachedSymbol?
        var tradeId: String?
        var price: ExactDecimal?
        var quantity: ExactDecimal?
        var tradeTime: Int64?
        var buyerIsMaker: Bool?
        var hasResult = false
        var errorMessage: String?
        var errorCode: Int64?
        var wrapped: ExchangeMessage?
        var keys = 0
        // depthUpdate fields; numbers kept as text until the event is known to be a depth update
        // (a trade event's `E` is not Tape's business).
        var eventTimeText: Range<Int>?
        var firstUpdateIdText: Range<Int>?
        var finalUpdateIdText: Range<Int>?
        var bids: [BookLevel]?
        var asks: [BookLevel]?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            keys += 1
            switch key.range.count {
            case 1 where s.token(key, equals: "e"):
                eventType = try s.readStringValue()
            case 1 where s.token(key, equals: "s"):
                let token = try s.readString()
                if token.hasEscapes || token.range.isEmpty || token.range.count > 32 {
                    throw JSONError(.badValue, "bad symbol", at: token.range.lowerBound)
                }
                symbol = lookup(s.rawBytes(token))
            case 1 where s.token(key, equals: "t"):
                if try s.peek() == UInt8(ascii: "\"") { throw JSONError(.badValue, "trade id must be a number", at: s.position) }
                tradeId = try readIdText(&s)
            case 1 where s.token(key, equals: "p"):
                price = try s.readDecimal()
            case 1 where s.token(key, equals: "q"):
                quantity = try s.readDecimal()
            case 1 where s.token(key, equals: "T"):
                let at = s.position
                tradeTime = try validTradeTime(try s.readInt64(), at: at)
            case 1 where s.token(key, equals: "m"):
                buyerIsMaker = try s.readBool()
            case 1 where s.token(key, equals: "E"):
                eventTimeText = try Self.numberText(&s)
            case 1 where s.token(key, equals: "U"):
                firstUpdateIdText = try Self.numberText(&s)
            case 1 where s.token(key, equals: "u"):
                finalUpdateIdText = try Self.numberText(&s)
            case 1 where s.token(key, equals: "b"):
                // An array only in depth events (older trade events carried a buyer order id here).
                if wantsBooks, try s.peek() == UInt8(ascii: "[") {
                    bids = try Self.readLevels(&s)
                } else {
                    try s.skipValue()
                }
            case 1 where s.token(key, equals: "a"):
                if wantsBooks, try s.peek() == UInt8(ascii: "[") {
                    asks = try Self.readLevels(&s)
                } else {
                    try s.skipValue()
                }
            case 3 where s.token(key, equals: "msg"):
                errorMessage = try s.readStringValue()
            case 4 where s.token(key, equals: "code"):
                errorCode = try s.readInt64()
            case 4 where s.token(key, equals: "data") && depth == 0:
                wrapped = try parseObject(
                    &s, receivedAt: receivedAt, into: &trades, books: &books, wantsBooks: wantsBooks, depth: 1)
            case 5 where s.token(key, equals: "error"):
                if try s.peek() == UInt8(ascii: "{") {
                    try s.beginObject()
                    var firstError = true
                    while let errorKey = try s.nextKey(first: &firstError) {
                        if s.token(errorKey, equals: "msg") {
                            errorMessage = try s.readStringValue()
                        } else if s.token(errorKey, equals: "code") {
                            errorCode = try s.readInt64()
                        } else {
                            try s.skipValue()
                        }
                    }
                } else {
                    errorMessage = try s.readStringValue()
                }
            case 6 where s.token(key, equals: "result"):
                hasResult = true
                try s.skipValue()
            default:
                try s.skipValue()
            }
        }
        if let wrapped {
            guard eventType == nil else { throw JSONError(.badValue, "frame mixes an event and stream data", at: objectStart) }
            return wrapped
        }
        if errorMessage != nil || errorCode != nil {
            return .error(message: "\(errorCode.map { "code \($0): " } ?? "")\(errorMessage ?? "")")
        }
        if hasResult && eventType == nil {
            return .subscribed(channel: "trade", symbols: [])
        }
        guard let eventType else {
            if keys == 0 { throw FrameParseError(.unexpectedMessage, "empty object", offset: objectStart) }
            throw FrameParseError(.unexpectedMessage, "frame has no event type", offset: objectStart)
        }
        if eventType == Binance.depthEventType {
            guard wantsBooks else { return .ignored(channel: eventType) }
            func missing(_ field: String) -> FrameParseError {
                FrameParseError(.invalidBook, "depthUpdate has no \(field)", offset: objectStart)
            }
            guard let symbol else { throw missing("s (symbol)") }
            guard let firstUpdateIdText else { throw missing("U (first update id)") }
            guard let finalUpdateIdText else { throw missing("u (final update id)") }
            guard let eventTimeText else { throw missing("E (event time)") }
            let firstUpdateId = try Self.integer(s, firstUpdateIdText)
            let finalUpdateId = try Self.integer(s, finalUpdateIdText)
            let eventTime = try Self.integer(s, eventTimeText)
            guard let bids else { throw missing("b (bids)") }
            guard let asks else { throw missing("a (asks)") }
            guard firstUpdateId >= 0, firstUpdateId <= finalUpdateId else {
                throw FrameParseError(
                    .invalidBook, "depthUpdate ids out of order: U \(firstUpdateId) > u \(finalUpdateId)", offset: objectStart)
            }
            guard Trade.validTimes.contains(eventTime) else {
                throw FrameParseError(.invalidBook, Trade.invalidTimeReason(eventTime), offset: objectStart)
            }
            books.append(
                BookFrame(
                    nativeSymbol: symbol.native, kind: .update, bids: bids, asks: asks, time: eventTime, receivedAt: receivedAt,
                    firstSequence: firstUpdateId, sequence: finalUpdateId))
            return .books(count: 1)
        }
        guard eventType == "trade" else { return .ignored(channel: eventType) }
        func missing(_ field: String) -> JSONError { JSONError(.badValue, "trade has no \(field)", at: objectStart) }
        guard let symbol else { throw missing("s (symbol)") }
        guard let tradeId else { throw missing("t (trade id)") }
        guard let price else { throw missing("p (price)") }
        guard let quantity else { throw missing("q (quantity)") }
        guard let tradeTime else { throw missing("T (trade time)") }
        guard let buyerIsMaker else { throw missing("m (buyer is maker)") }
        let quote = try exactQuote(price, quantity, at: objectStart)
        trades.append(
            Trade(
                exchange: Binance.exchange, symbol: symbol.symbol, nativeSymbol: symbol.native, tradeId: tradeId,
                price: price, quantity: quantity, quoteQuantity: quote, side: buyerIsMaker ? .sell : .buy,
                time: tradeTime, receivedAt: receivedAt))
        return .trades(count: 1)
    }

    /// A `[["price","qty"], ...]` list; a bad level fails the frame as `.invalidBook`.
    static func readLevels(_ s: inout JSONScanner) throws(FrameParseError) -> [BookLevel] {
        do {
            return try s.readBookLevels()
        } catch {
            throw bookError(error)
        }
    }

    /// The range of a number value (nil for any other value, which is skipped).
    static func numberText(_ s: inout JSONScanner) throws(JSONError) -> Range<Int>? {
        let next = try s.peek()
        guard next == UInt8(ascii: "-") || next &- UInt8(ascii: "0") < 10 else {
            try s.skipValue()
            return nil
        }
        return try s.readNumber()
    }

    /// The integer a `numberText` range holds; anything else fails the book message.
    static func integer(_ s: JSONScanner, _ range: Range<Int>) throws(FrameParseError) -> Int64 {
        do {
            return try JSONScanner.int64(UnsafeBufferPointer(rebasing: s.bytes[range]), at: range.lowerBound)
        } catch {
            throw FrameParseError(.invalidBook, "depthUpdate id or time is not an integer in range", offset: range.lowerBound)
        }
    }

    /// A scanner error inside a book message: well-formed JSON with a bad value is `.invalidBook`.
    static func bookError(_ error: JSONError) -> FrameParseError {
        let wellFormed = error.code == .badValue || error.code == .wrongType || error.code == .outOfRange
        return FrameParseError(wellFormed ? .invalidBook : .malformedJSON, error.reason, offset: error.offset)
    }

    /// The cached symbol of native bytes; a symbol missing from the market list is split by
    /// `Binance.normalizedSymbol` and remembered (bounded).
    mutating func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> CachedSymbol {
        let native = String(decoding: bytes, as: UTF8.self)
        if let found = known[native] { return found }
        let made = CachedSymbol(native: native, symbol: Binance.normalizedSymbol(native))
        if known.count < 4_096 { known[native] = made }
        return made
    }
}
