/// A venue Tape reads from, by its lowercase name ("poloniex"): the first part of every key.
public struct Exchange: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let name: String

    public init(_ name: String) { self.name = name }

    public static let poloniex = Exchange("poloniex")

    public var description: String { name }
    public static func < (a: Exchange, b: Exchange) -> Bool { a.name < b.name }
}

/// An instrument in Tape's normal form: uppercase `BASE-QUOTE` ("BTC-USDT").
///
/// `Symbol(normalizing: "BTC_USDT")` maps a venue's native spelling: ASCII letters are
/// uppercased and `_`, `/` and `-` become `-`. Normalizing is idempotent.
public struct Symbol: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The normalized text, e.g. "BTC-USDT".
    public let rawValue: String

    /// Normalizes a native symbol ("BTC_USDT", "btc/usdt", "BTC-USDT" → "BTC-USDT").
    public init(normalizing native: String) {
        var copy = native
        self = copy.withUTF8 { Symbol(normalizing: $0) }
    }

    /// Normalizes a native symbol given as UTF-8 bytes (allocation-free for ≤ 15 bytes).
    @inlinable
    public init(normalizing native: UnsafeBufferPointer<UInt8>) {
        rawValue = String(unsafeUninitializedCapacity: native.count) { out in
            for i in 0..<native.count {
                let b = native[i]
                if b == UInt8(ascii: "_") || b == UInt8(ascii: "/") {
                    out[i] = UInt8(ascii: "-")
                } else if b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") {
                    out[i] = b - 32
                } else {
                    out[i] = b
                }
            }
            return native.count
        }
    }

    /// The part before the first '-' ("BTC"), or the whole symbol if there is none.
    public var base: Substring { rawValue.split(separator: "-", maxSplits: 1).first ?? Substring(rawValue) }
    /// The part after the first '-' ("USDT"), or "" if there is none.
    public var quote: Substring {
        guard let dash = rawValue.firstIndex(of: "-") else { return "" }
        return rawValue[rawValue.index(after: dash)...]
    }

    public var description: String { rawValue }
    public static func < (a: Symbol, b: Symbol) -> Bool { a.rawValue < b.rawValue }
}

/// The taker's side of a trade: `buy` means the aggressor bought (lifted an ask).
public enum Side: String, Sendable, Hashable, CaseIterable {
    case buy
    case sell

    /// Parses "buy"/"sell" in any ASCII case ("BUY" on Poloniex REST); nil otherwise.
    @inlinable
    public init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        if bytes.count == 3, bytes[0] | 0x20 == UInt8(ascii: "b"), bytes[1] | 0x20 == UInt8(ascii: "u"),
            bytes[2] | 0x20 == UInt8(ascii: "y")
        {
            self = .buy
        } else if bytes.count == 4, bytes[0] | 0x20 == UInt8(ascii: "s"), bytes[1] | 0x20 == UInt8(ascii: "e"),
            bytes[2] | 0x20 == UInt8(ascii: "l"), bytes[3] | 0x20 == UInt8(ascii: "l")
        {
            self = .sell
        } else {
            return nil
        }
    }
}

/// One executed trade, normalized: the value of a `tape.trades` record (docs/contracts.md, "Trade").
///
/// Decimals keep the exchange's text; `quoteQuantity` is `price × quantity`, exact, without
/// trailing zeros. Equality compares decimals by value.
public struct Trade: Sendable, Hashable {
    /// The JSON schema version written as `"v"`.
    public static let schemaVersion: Int64 = 1

    /// Trade times (ms since the Unix epoch) Tape accepts: 1970-01-01T00:00:00.000Z through
    /// 9999-12-31T23:59:59.999Z. Times arrive from venues and from records anyone can produce; a
    /// time outside this range is a malformed trade (parsers reject the frame, `Trade(json:)`
    /// throws `.outOfRange`, the processor dead-letters the record). Within it, every window
    /// computation (start, end, + allowed lateness, ...) stays far from `Int64`'s limits (±9.2e18).
    public static let validTimes: ClosedRange<Int64> = 0...253_402_300_799_999

    /// Why `time` is not a valid trade time (for errors and dead-letter headers).
    public static func invalidTimeReason(_ time: Int64) -> String {
        "trade time \(time) is outside \(validTimes.lowerBound)...\(validTimes.upperBound) ms (1970-01-01 to 9999-12-31 UTC)"
    }

    public var exchange: Exchange
    /// Normalized symbol ("BTC-USDT").
    public var symbol: Symbol
    /// The venue's own spelling ("BTC_USDT").
    public var nativeSymbol: String
    /// The venue's trade id, as text (numbers are kept as their digits).
    public var tradeId: String
    public var price: ExactDecimal
    /// Base-currency quantity.
    public var quantity: ExactDecimal
    /// Quote-currency value: `price × quantity`, exact.
    public var quoteQuantity: ExactDecimal
    /// The taker's side.
    public var side: Side
    /// The exchange's trade time, ms since the Unix epoch.
    public var time: Int64
    /// Local receive time, µs since the Unix epoch.
    public var receivedAt: Int64

    /// A trade; `quoteQuantity` defaults to `price × quantity` (normalized).
    @inlinable
    public init(
        exchange: Exchange,
        symbol: Symbol,
        nativeSymbol: String,
        tradeId: String,
        price: ExactDecimal,
        quantity: ExactDecimal,
        quoteQuantity: ExactDecimal? = nil,
        side: Side,
        time: Int64,
        receivedAt: Int64
    ) {
        self.exchange = exchange
        self.symbol = symbol
        self.nativeSymbol = nativeSymbol
        self.tradeId = tradeId
        self.price = price
        self.quantity = quantity
        self.quoteQuantity = quoteQuantity ?? (price * quantity).normalized()
        self.side = side
        self.time = time
        self.receivedAt = receivedAt
    }

    /// The Kafka record key: `"<exchange>:<SYMBOL>"`, e.g. "poloniex:BTC-USDT".
    public var kafkaKey: String { Trade.kafkaKey(exchange: exchange, symbol: symbol) }

    public static func kafkaKey(exchange: Exchange, symbol: Symbol) -> String {
        exchange.name + ":" + symbol.rawValue
    }

    /// Appends the docs/contracts.md JSON layout (one line, no spaces, fields in schema order).
    public func appendJSON(to out: inout [UInt8]) {
        JSONWriter.appendMember("{\"v\":", Trade.schemaVersion, to: &out)
        JSONWriter.appendMember(",\"exchange\":", exchange.name, to: &out)
        JSONWriter.appendMember(",\"symbol\":", symbol.rawValue, to: &out)
        JSONWriter.appendMember(",\"nativeSymbol\":", nativeSymbol, to: &out)
        JSONWriter.appendMember(",\"tradeId\":", tradeId, to: &out)
        JSONWriter.appendMember(",\"price\":", price, to: &out)
        JSONWriter.appendMember(",\"quantity\":", quantity, to: &out)
        JSONWriter.appendMember(",\"quoteQuantity\":", quoteQuantity, to: &out)
        JSONWriter.appendRaw(side == .buy ? ",\"side\":\"buy\"" : ",\"side\":\"sell\"", to: &out)
        JSONWriter.appendMember(",\"time\":", time, to: &out)
        JSONWriter.appendMember(",\"receivedAt\":", receivedAt, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Decodes a trade value. Unknown members are skipped; every schema field is required;
    /// `v` must be 1; decimals may be strings (as written) or plain JSON numbers. Reads one object
    /// from the scanner, then requires the input to end.
    public init(from s: inout JSONScanner) throws(JSONError) {
        let start = s.position
        var version: Int64?
        var exchange: String?
        var symbol: String?
        var nativeSymbol: String?
        var tradeId: String?
        var price: ExactDecimal?
        var quantity: ExactDecimal?
        var quoteQuantity: ExactDecimal?
        var side: Side?
        var time: Int64?
        var receivedAt: Int64?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "v") {
                version = try s.readInt64()
            } else if s.token(key, equals: "exchange") {
                exchange = try s.readStringValue()
            } else if s.token(key, equals: "symbol") {
                symbol = try s.readStringValue()
            } else if s.token(key, equals: "nativeSymbol") {
                nativeSymbol = try s.readStringValue()
            } else if s.token(key, equals: "tradeId") {
                tradeId = try s.readStringValue()
            } else if s.token(key, equals: "price") {
                price = try s.readDecimal()
            } else if s.token(key, equals: "quantity") {
                quantity = try s.readDecimal()
            } else if s.token(key, equals: "quoteQuantity") {
                quoteQuantity = try s.readDecimal()
            } else if s.token(key, equals: "side") {
                let position = s.position
                let token = try s.readString()
                guard let parsed = Side(utf8: s.rawBytes(token)) else {
                    throw JSONError(.badValue, "side must be \"buy\" or \"sell\"", at: position)
                }
                side = parsed
            } else if s.token(key, equals: "time") {
                time = try s.readInt64()
            } else if s.token(key, equals: "receivedAt") {
                receivedAt = try s.readInt64()
            } else {
                try s.skipValue()
            }
        }
        guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the trade object", at: s.position) }
        func missing(_ name: String) -> JSONError { JSONError(.badValue, "trade has no \(name)", at: start) }
        guard let version else { throw missing("v") }
        guard version == Trade.schemaVersion else {
            throw JSONError(.badValue, "unsupported trade schema version \(version)", at: start)
        }
        guard let exchange else { throw missing("exchange") }
        guard let symbol else { throw missing("symbol") }
        guard let nativeSymbol else { throw missing("nativeSymbol") }
        guard let tradeId else { throw missing("tradeId") }
        guard let price else { throw missing("price") }
        guard let quantity else { throw missing("quantity") }
        guard let quoteQuantity else { throw missing("quoteQuantity") }
        guard let side else { throw missing("side") }
        guard let time else { throw missing("time") }
        guard Trade.validTimes.contains(time) else { throw JSONError(.outOfRange, Trade.invalidTimeReason(time), at: start) }
        guard let receivedAt else { throw missing("receivedAt") }
        self.init(
            exchange: Exchange(exchange), symbol: Symbol(normalizing: symbol), nativeSymbol: nativeSymbol,
            tradeId: tradeId, price: price, quantity: quantity, quoteQuantity: quoteQuantity, side: side,
            time: time, receivedAt: receivedAt)
    }
}

extension Trade: JSONRecord {
    public static var typicalJSONSize: Int { 256 }
}
