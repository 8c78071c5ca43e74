/// Parses frames of Poloniex's public spot websocket (`wss://ws.poloniex.com/ws/public`).
///
/// Hand-written over UTF-8 bytes: no Foundation, no `Codable`, no string per field — the only
/// strings made per trade are the ones `Trade` holds (native and normalized symbol, cached per
/// symbol, and the trade id). Every trade of a frame is read; `quantity` (base) is the quantity,
/// not `amount` (quote); `createTime` is the trade time, not `ts` (push time); `takerSide` is the
/// side; `id` may be a string or a number and keeps its text. `quoteQuantity` is computed as
/// price × quantity exactly — `amount` is checked against it, counted in `amountMismatches`,
/// never trusted. A frame that fails midway appends no trades.
///
/// Sample frame (from the 2022-08-21 capture):
/// ```
/// {"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"248.3516391","quantity":"0.01149",
///  "takerSide":"sell","createTime":1661123520381,"price":"21614.59","id":"60184114","ts":1661123520386}]}
/// ```
public struct PoloniexFrameParser: Sendable {
    /// Trades whose `amount` differed from price × quantity (the trade keeps the computed value).
    public private(set) var amountMismatches = 0
    /// Trades that had no `amount` field.
    public private(set) var missingAmounts = 0
    var symbols = SymbolCache()

    public init() {}

    /// Parses one frame; trades are appended to `trades` stamped with `receivedAt` (µs).
    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        let countBefore = trades.count
        do {
            return try parseFrame(frame, receivedAt: receivedAt, into: &trades)
        } catch {
            trades.removeSubrange(countBefore...)
            throw error
        }
    }

    /// Parses one frame given as text.
    public mutating func parse(
        _ frame: String, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        var copy = frame
        let result = copy.withUTF8 { buffer in
            Result { () throws(FrameParseError) -> ExchangeMessage in
                try parse(buffer, receivedAt: receivedAt, into: &trades)
            }
        }
        return try result.get()
    }

    /// Parses one frame given as bytes.
    public mutating func parse(
        _ frame: [UInt8], receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        let result = frame.withUnsafeBufferPointer { buffer in
            Result { () throws(FrameParseError) -> ExchangeMessage in
                try parse(buffer, receivedAt: receivedAt, into: &trades)
            }
        }
        return try result.get()
    }

    /// Convenience for tests and tools: the message and the trades of one frame.
    public mutating func parse(_ frame: String, receivedAt: Int64) throws(FrameParseError) -> (
        message: ExchangeMessage, trades: [Trade]
    ) {
        var trades: [Trade] = []
        let message = try parse(frame, receivedAt: receivedAt, into: &trades)
        return (message, trades)
    }

    mutating func parseFrame(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        var s = JSONScanner(frame)
        var event: String?
        var channel: String?
        var channelIsTrades = false
        var symbols: [String] = []
        var message: String?
        var deferredData: Int?
        var tradeCount = 0
        var sawData = false
        do throws(JSONError) {
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "data") {
                sawData = true
                if channelIsTrades {
                    tradeCount = try parseTradeArray(&s, receivedAt: receivedAt, into: &trades)
                } else {
                    deferredData = s.position
                    try s.skipValue()
                }
            } else if s.token(key, equals: "channel") {
                if try s.peek() == UInt8(ascii: "[") {
                    let names = try readStringArray(&s)
                    channel = names.joined(separator: ",")
                } else {
                    let token = try s.readString()
                    channelIsTrades = s.token(token, equals: "trades")
                    channel = channelIsTrades ? "trades" : try s.string(token)
                }
            } else if s.token(key, equals: "event") {
                event = try s.readStringValue()
            } else if s.token(key, equals: "symbols") {
                symbols = try readStringArray(&s)
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

        if let event {
            switch event {
            case "subscribe": return .subscribed(channel: channel ?? "", symbols: symbols)
            case "unsubscribe": return .unsubscribed(channel: channel ?? "", symbols: symbols)
            case "pong": return .pong
            case "error": return .error(message: message ?? "")
            default: return .otherEvent(event)
            }
        }
        guard let channel else {
            throw FrameParseError(.unexpectedMessage, "frame has neither event nor channel", offset: 0)
        }
        guard channelIsTrades else { return .ignored(channel: channel) }
        guard sawData else { throw FrameParseError(.unexpectedMessage, "trades frame without data", offset: 0) }
        if let deferredData {
            // "data" came before "channel": read it now that we know what it is.
            var again = JSONScanner(frame)
            again.position = deferredData
            do {
                tradeCount = try parseTradeArray(&again, receivedAt: receivedAt, into: &trades)
            } catch {
                throw FrameParseError(error)
            }
        }
        return .trades(count: tradeCount)
    }

    func readStringArray(_ s: inout JSONScanner) throws(JSONError) -> [String] {
        var result: [String] = []
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            result.append(try s.readStringValue())
        }
        return result
    }

    mutating func parseTradeArray(
        _ s: inout JSONScanner, receivedAt: Int64, into trades: inout [Trade]
    ) throws(JSONError) -> Int {
        try s.beginArray()
        var first = true
        var count = 0
        while try s.nextElement(first: &first) {
            let trade = try parseTrade(&s, receivedAt: receivedAt, restSymbol: nil)
            trades.append(trade)
            count += 1
        }
        return count
    }

    /// Reads one trade object. The websocket form carries `symbol`; the REST form does not, and
    /// its symbol is passed as `restSymbol`.
    mutating func parseTrade(
        _ s: inout JSONScanner, receivedAt: Int64, restSymbol: CachedSymbol?
    ) throws(JSONError) -> Trade {
        let objectStart = s.position
        var symbol: CachedSymbol? = nil
        var price: ExactDecimal? = nil
        var quantity: ExactDecimal? = nil
        var amount: ExactDecimal? = nil
        var side: Side? = nil
        var createTime: Int64? = nil
        var id: JSONStringToken? = nil
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            switch key.range.count {
            case 2 where s.token(key, equals: "id"):
                if try s.peek() == UInt8(ascii: "\"") {
                    let token = try s.readString()
                    if token.range.isEmpty { throw JSONError(.badValue, "empty trade id", at: s.position) }
                    id = token
                } else {
                    id = JSONStringToken(range: try s.readNumber(), hasEscapes: false)
                }
            case 5 where s.token(key, equals: "price"):
                price = try s.readDecimal()
            case 6 where s.token(key, equals: "symbol"):
                let token = try s.readString()
                if token.hasEscapes || token.range.isEmpty || token.range.count > 64 {
                    throw JSONError(.badValue, "bad symbol", at: token.range.lowerBound)
                }
                symbol = symbols.lookup(s.rawBytes(token))
            case 6 where s.token(key, equals: "amount"):
                amount = try s.readDecimal()
            case 8 where s.token(key, equals: "quantity"):
                quantity = try s.readDecimal()
            case 9 where s.token(key, equals: "takerSide"):
                let token = try s.readString()
                guard let parsed = Side(utf8: s.rawBytes(token)) else {
                    throw JSONError(.badValue, "takerSide must be buy or sell", at: token.range.lowerBound)
                }
                side = parsed
            case 10 where s.token(key, equals: "createTime"):
                createTime = try readTime(&s)
            default:
                try s.skipValue()
            }
        }
        func missing(_ field: String) -> JSONError {
            JSONError(.badValue, "trade has no \(field)", at: objectStart)
        }
        guard let symbol = symbol ?? restSymbol else { throw missing("symbol") }
        guard let price else { throw missing("price") }
        guard let quantity else { throw missing("quantity") }
        guard let side else { throw missing("takerSide") }
        guard let createTime else { throw missing("createTime") }
        guard let id else { throw missing("id") }
        let tradeId = id.hasEscapes ? try s.string(id) : String(decoding: s.rawBytes(id), as: UTF8.self)
        let quote: ExactDecimal
        do {
            quote = try price.multiplied(by: quantity).normalized()
        } catch {
            throw JSONError(.badValue, "price × quantity overflows", at: objectStart)
        }
        if let amount {
            if amount != quote { amountMismatches += 1 }
        } else {
            missingAmounts += 1
        }
        return Trade(
            exchange: .poloniex, symbol: symbol.symbol, nativeSymbol: symbol.native, tradeId: tradeId, price: price,
            quantity: quantity, quoteQuantity: quote, side: side, time: createTime, receivedAt: receivedAt)
    }

    /// A millisecond timestamp written as a JSON integer (or, leniently, an integer string).
    func readTime(_ s: inout JSONScanner) throws(JSONError) -> Int64 {
        if try s.peek() == UInt8(ascii: "\"") {
            let token = try s.readString()
            return try JSONScanner.int64(s.rawBytes(token), at: token.range.lowerBound)
        }
        return try s.readInt64()
    }
}

/// A native symbol and its normalized form, made once per distinct symbol.
public struct CachedSymbol: Sendable {
    public let native: String
    public let symbol: Symbol
}

/// Remembers the strings made for each native symbol, so a hot loop does not rebuild them per
/// trade. Keys are the symbol's bytes packed into two words (symbols up to 15 bytes, length in
/// the top byte); longer symbols bypass the cache. Open addressing with a multiplicative hash
/// (no SipHash: keys come from the venue's own symbol list, and a collision only costs a probe).
/// Bounded: cleared when it reaches `capacity` entries.
struct SymbolCache: Sendable {
    struct Key: Hashable, Sendable {
        var low: UInt64
        var high: UInt64
    }

    static let slotCount = 8_192  // power of two
    static let capacity = 4_096  // at most half full

    var keys: [Key] = []
    var values: [CachedSymbol?] = []
    var count = 0

    init() {}

    mutating func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> CachedSymbol {
        guard bytes.count < 16, bytes.count > 0 else { return SymbolCache.make(bytes) }
        var low: UInt64 = 0
        var high: UInt64 = UInt64(bytes.count) << 56
        for i in 0..<bytes.count {
            if i < 8 {
                low |= UInt64(bytes[i]) << UInt64(i * 8)
            } else {
                high |= UInt64(bytes[i]) << UInt64((i - 8) * 8)
            }
        }
        let key = Key(low: low, high: high)
        if values.isEmpty {
            keys = Array(repeating: Key(low: 0, high: 0), count: SymbolCache.slotCount)
            values = Array(repeating: nil, count: SymbolCache.slotCount)
        }
        let mask = SymbolCache.slotCount - 1
        var slot = Int(truncatingIfNeeded: ((low ^ (high &* 0x9E37_79B9_7F4A_7C15)) &* 0xBF58_476D_1CE4_E5B9) >> 40) & mask
        while true {
            // high is never 0 for a real key (length byte), so an empty slot has high == 0.
            let k = keys[slot]
            if k.high == 0 { break }
            if k == key, let found = values[slot] { return found }
            slot = (slot + 1) & mask
        }
        let made = SymbolCache.make(bytes)
        if count >= SymbolCache.capacity {
            keys = Array(repeating: Key(low: 0, high: 0), count: SymbolCache.slotCount)
            values = Array(repeating: nil, count: SymbolCache.slotCount)
            count = 0
            return made
        }
        keys[slot] = key
        values[slot] = made
        count += 1
        return made
    }

    static func make(_ bytes: UnsafeBufferPointer<UInt8>) -> CachedSymbol {
        CachedSymbol(native: String(decoding: bytes, as: UTF8.self), symbol: Symbol(normalizing: bytes))
    }
}
