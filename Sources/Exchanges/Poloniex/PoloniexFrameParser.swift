import MarketData

/// Parses frames of Poloniex's public spot websocket (`wss://ws.poloniex.com/ws/public`).
///
/// Hand-written over UTF-8 bytes: no Foundation, no `Codable`, no string per field — the only
/// strings made per trade are the ones `Trade` holds (native and normalized symbol, cached per
/// symbol, and the trade id). Every trade of a frame is read; `quantity` (base) is the quantity,
/// not `amount` (quote); `createTime` is the trade time, not `ts` (push time); `takerSide` is the
/// side; `id` may be a string or a number and keeps its text. `quoteQuantity` is computed as
/// price × quantity exactly — `amount` is checked against it, counted in `amountMismatches`,
/// never trusted. Price and quantity must be positive. A frame that fails midway appends no trades.
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

    /// Whether the speculative fixed-layout path is tried first (see `parseTradeFast`).
    public let fastPath: Bool

    /// A parser; `fastPath: false` forces the general path everywhere (for differential tests).
    public init(fastPath: Bool = true) {
        self.fastPath = fastPath
    }

    /// Parses one frame; trades are appended to `trades` stamped with `receivedAt` (µs).
    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        let countBefore = trades.count
        let mismatchesBefore = amountMismatches
        let missingBefore = missingAmounts
        do {
            if fastPath, let message = try parseTradesFrameFast(frame, receivedAt: receivedAt, into: &trades) {
                return message
            }
            // Not the usual layout: start over with the general parser.
            trades.removeSubrange(countBefore...)
            amountMismatches = mismatchesBefore
            missingAmounts = missingBefore
            return try parseFrame(frame, receivedAt: receivedAt, into: &trades)
        } catch {
            // A failed frame leaves no trace: no trades, no counts.
            trades.removeSubrange(countBefore...)
            amountMismatches = mismatchesBefore
            missingAmounts = missingBefore
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
        let countBefore = trades.count
        var s = JSONScanner(frame)
        var duplicate = false
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
                    if sawData { duplicate = true }
                    sawData = true
                    if channelIsTrades {
                        tradeCount = try parseTradeArray(&s, receivedAt: receivedAt, into: &trades)
                    } else {
                        deferredData = s.position
                        try s.skipValue()
                    }
                } else if s.token(key, equals: "channel") {
                    if channel != nil { duplicate = true }
                    if try s.peek() == UInt8(ascii: "[") {
                        let names = try readStringArray(&s)
                        channel = names.joined(separator: ",")
                        channelIsTrades = names == ["trades"]
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

        // Only a plain trades frame may carry trades: anything mixed is refused whole.
        if duplicate {
            throw FrameParseError(.unexpectedMessage, "frame repeats \"channel\" or \"data\"", offset: 0)
        }
        if event != nil && trades.count > countBefore {
            throw FrameParseError(.unexpectedMessage, "frame has both an event and trades", offset: 0)
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
            if fastPath, parseTradeFast(&s, receivedAt: receivedAt, into: &trades) {
                // appended
            } else {
                trades.append(try parseTrade(&s, receivedAt: receivedAt, restSymbol: nil))
            }
            count += 1
        }
        return count
    }

    /// A trades frame exactly as Poloniex lays it out, `{"channel":"trades","data":[...]}`, read
    /// without the general member loop; nil (trades possibly appended, caller truncates) when the
    /// frame has any other shape, so the general parser decides. Errors inside the data array
    /// are the same ones the general path would throw for the same bytes.
    mutating func parseTradesFrameFast(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage? {
        guard let base = frame.baseAddress else { return nil }
        var cursor = FastCursor(base: base, end: frame.count, position: 0)
        guard cursor.literal(#"{"channel":"trades","data":"#) else { return nil }
        var s = JSONScanner(frame)
        s.position = cursor.position
        do throws(JSONError) {
            let count = try parseTradeArray(&s, receivedAt: receivedAt, into: &trades)
            guard s.consume(UInt8(ascii: "}")), s.isAtEnd() else { return nil }
            return .trades(count: count)
        } catch {
            throw FrameParseError(error)
        }
    }

    /// Speculative read of one trade object in Poloniex's own member order and spelling
    /// (`symbol, amount, quantity, takerSide, createTime, price, id, ts`, no whitespace, no escapes).
    /// Returns false — leaving the scanner and `trades` as they were — at the first difference, so
    /// the general `parseTrade` reads the object and reports any error. Otherwise appends the same
    /// trade `parseTrade` would have produced and returns true.
    mutating func parseTradeFast(_ s: inout JSONScanner, receivedAt: Int64, into trades: inout [Trade]) -> Bool {
        guard let base = s.bytes.baseAddress else { return false }
        var c = FastCursor(base: base, end: s.bytes.count, position: s.position)
        guard c.literal(#"{"symbol":""#), let symbolRange = c.stringBody(), !symbolRange.isEmpty,
            symbolRange.count <= 64,
            c.literal(#","amount":""#), let amountRange = c.stringBody(),
            c.literal(#","quantity":""#), let quantityRange = c.stringBody(),
            c.literal(#","takerSide":""#), let sideRange = c.stringBody(),
            c.literal(#","createTime":"#), let createTime = c.integer(), Trade.validTimes.contains(createTime),
            c.literal(#","price":""#), let priceRange = c.stringBody(),
            c.literal(#","id":"#)
        else { return false }
        let idRange: Range<Int>
        if c.literal("\"") {
            guard let r = c.stringBody(), !r.isEmpty else { return false }
            idRange = r
        } else {
            let start = c.position
            guard c.integer() != nil else { return false }
            idRange = start..<c.position
        }
        guard c.literal(#","ts":"#), c.integer() != nil, c.literal("}") else { return false }
        guard let side = Side(utf8: c.slice(sideRange)),
            let price = try? ExactDecimal(utf8: c.slice(priceRange)),
            let quantity = try? ExactDecimal(utf8: c.slice(quantityRange)),
            let amount = try? ExactDecimal(utf8: c.slice(amountRange)),
            !price.isNegative, !price.isZero, !quantity.isNegative, !quantity.isZero,
            let product = try? price.multiplied(by: quantity)
        else { return false }
        let quote = product.normalized()
        if amount != quote { amountMismatches += 1 }
        let symbol = symbols.lookup(c.slice(symbolRange))
        s.position = c.position
        trades.append(
            Trade(
                exchange: .poloniex, symbol: symbol.symbol, nativeSymbol: symbol.native,
                tradeId: String(decoding: c.slice(idRange), as: UTF8.self), price: price, quantity: quantity,
                quoteQuantity: quote, side: side, time: createTime, receivedAt: receivedAt))
        return true
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
                let at = s.position
                createTime = try validTradeTime(try readTime(&s), at: at)
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
        guard price > .zero else { throw JSONError(.badValue, "trade price must be positive", at: objectStart) }
        guard quantity > .zero else { throw JSONError(.badValue, "trade quantity must be positive", at: objectStart) }
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

/// Byte matching for the speculative path: literals, quote-delimited bodies, plain integers.
struct FastCursor {
    let base: UnsafePointer<UInt8>
    let end: Int
    var position: Int

    /// Consumes `text` if the bytes match it exactly.
    @inline(__always)
    mutating func literal(_ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard position + count <= end else { return false }
        let expected = text.utf8Start
        for i in 0..<count where base[position + i] != expected[i] {
            return false
        }
        position += count
        return true
    }

    /// The bytes up to the next '"' (consumed); nil on a backslash, control byte or end.
    @inline(__always)
    mutating func stringBody() -> Range<Int>? {
        let start = position
        while position < end {
            let b = base[position]
            if b == UInt8(ascii: "\"") {
                position += 1
                return start..<(position - 1)
            }
            if b == UInt8(ascii: "\\") || b < 0x20 { return nil }
            position += 1
        }
        return nil
    }

    /// 1...18 digits, no leading zero (unless "0"), no sign, followed by a byte that is not part
    /// of a number; nil otherwise.
    @inline(__always)
    mutating func integer() -> Int64? {
        let start = position
        var value: Int64 = 0
        while position < end && position - start < 18 {
            let d = base[position] &- UInt8(ascii: "0")
            if d >= 10 { break }
            value = value &* 10 &+ Int64(d)
            position += 1
        }
        let count = position - start
        guard count > 0, count == 1 || base[start] != UInt8(ascii: "0"), position < end else { return nil }
        let next = base[position]
        if next &- UInt8(ascii: "0") < 10 || next == UInt8(ascii: ".") || next | 0x20 == UInt8(ascii: "e") {
            return nil
        }
        return value
    }

    @inline(__always)
    func slice(_ range: Range<Int>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base + range.lowerBound, count: range.count)
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
