/// One `tape.books` record value (README "Order books"): a whole book (`snapshot`) or the levels
/// that changed (`update`: each level sets that price; quantity zero removes it), prices and
/// quantities exactly as the venue printed them. A consumer applying one key's records in order
/// holds the venue's book.
///
/// ```json
/// {"v":1,"exchange":"binance","symbol":"BTC-USDT","nativeSymbol":"BTCUSDT","type":"snapshot","sequence":"1027024",
///  "bids":[["21614.59","0.5"]],"asks":[["21614.60","0.3"]],"time":1661123520381,"receivedAt":1661123520391123}
/// ```
public struct BookEvent: Sendable, Hashable {
    public static let schemaVersion: Int64 = 1

    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case snapshot
        case update
    }

    public var exchange: Exchange
    public var symbol: Symbol
    public var nativeSymbol: String
    public var kind: Kind
    /// The venue's marker of the last change included (Binance `u`, Coinbase `sequence_num`,
    /// Poloniex `id`); nil where the venue has none (Kraken: its checksum is verified instead).
    public var sequence: String?
    /// Bids, best first.
    public var bids: [BookLevel]
    /// Asks, best first.
    public var asks: [BookLevel]
    /// The venue's event time, ms since the Unix epoch (the record's time).
    public var time: Int64
    /// Local receive time, µs since the Unix epoch.
    public var receivedAt: Int64

    public init(
        exchange: Exchange, symbol: Symbol, nativeSymbol: String, kind: Kind, sequence: String?, bids: [BookLevel],
        asks: [BookLevel], time: Int64, receivedAt: Int64
    ) {
        self.exchange = exchange
        self.symbol = symbol
        self.nativeSymbol = nativeSymbol
        self.kind = kind
        self.sequence = sequence
        self.bids = bids
        self.asks = asks
        self.time = time
        self.receivedAt = receivedAt
    }

    /// A snapshot record of a whole book (best levels first).
    public init(
        snapshotOf book: OrderBook, exchange: Exchange, symbol: Symbol, nativeSymbol: String, sequence: String?,
        time: Int64, receivedAt: Int64
    ) {
        self.init(
            exchange: exchange, symbol: symbol, nativeSymbol: nativeSymbol, kind: .snapshot, sequence: sequence,
            bids: book.bids(), asks: book.asks(), time: time, receivedAt: receivedAt)
    }

    /// The Kafka record key: `"<exchange>:<SYMBOL>"`, as for trades.
    public var kafkaKey: String { Trade.kafkaKey(exchange: exchange, symbol: symbol) }

    /// Number of levels carried.
    public var levelCount: Int { bids.count + asks.count }
}

extension BookEvent: JSONRecord {
    public static var typicalJSONSize: Int { 512 }

    public func appendJSON(to out: inout [UInt8]) {
        JSONWriter.appendMember("{\"v\":", BookEvent.schemaVersion, to: &out)
        JSONWriter.appendMember(",\"exchange\":", exchange.name, to: &out)
        JSONWriter.appendMember(",\"symbol\":", symbol.rawValue, to: &out)
        JSONWriter.appendMember(",\"nativeSymbol\":", nativeSymbol, to: &out)
        JSONWriter.appendRaw(kind == .snapshot ? ",\"type\":\"snapshot\"" : ",\"type\":\"update\"", to: &out)
        if let sequence {
            JSONWriter.appendMember(",\"sequence\":", sequence, to: &out)
        } else {
            JSONWriter.appendRaw(",\"sequence\":null", to: &out)
        }
        JSONWriter.appendRaw(",\"bids\":", to: &out)
        JSONWriter.appendBookLevels(bids, to: &out)
        JSONWriter.appendRaw(",\"asks\":", to: &out)
        JSONWriter.appendBookLevels(asks, to: &out)
        JSONWriter.appendMember(",\"time\":", time, to: &out)
        JSONWriter.appendMember(",\"receivedAt\":", receivedAt, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Decodes a book value. Unknown members are skipped; `v` (1), `exchange`, `symbol`, `type`,
    /// `bids`, `asks` and `time` are required; `nativeSymbol` defaults to `symbol`, `sequence` to
    /// none, `receivedAt` to `time` × 1000. Every level must be a valid `[price, quantity]` pair.
    public init(from s: inout JSONScanner) throws(JSONError) {
        let start = s.position
        var version: Int64?
        var exchange: String?
        var symbol: String?
        var nativeSymbol: String?
        var kind: Kind?
        var sequence: String?
        var bids: [BookLevel]?
        var asks: [BookLevel]?
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
            } else if s.token(key, equals: "type") {
                let at = s.position
                let text = try s.readStringValue()
                guard let parsed = Kind(rawValue: text) else {
                    throw JSONError(.badValue, "book type must be \"snapshot\" or \"update\", not \"\(text.prefix(20))\"", at: at)
                }
                kind = parsed
            } else if s.token(key, equals: "sequence") {
                if try !s.consumeNull() {
                    if try s.peek() == UInt8(ascii: "\"") {
                        sequence = try s.readStringValue()
                    } else {
                        sequence = String(try s.readInt64())
                    }
                }
            } else if s.token(key, equals: "bids") {
                bids = try s.readBookLevels()
            } else if s.token(key, equals: "asks") {
                asks = try s.readBookLevels()
            } else if s.token(key, equals: "time") {
                time = try s.readInt64()
            } else if s.token(key, equals: "receivedAt") {
                receivedAt = try s.readInt64()
            } else {
                try s.skipValue()
            }
        }
        guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the book object", at: s.position) }
        func missing(_ name: String) -> JSONError { JSONError(.badValue, "book record has no \(name)", at: start) }
        guard let version else { throw missing("v") }
        guard version == BookEvent.schemaVersion else {
            throw JSONError(.badValue, "unsupported book schema version \(version)", at: start)
        }
        guard let exchange else { throw missing("exchange") }
        guard let symbol else { throw missing("symbol") }
        guard let kind else { throw missing("type") }
        guard let bids else { throw missing("bids") }
        guard let asks else { throw missing("asks") }
        guard let time else { throw missing("time") }
        guard Trade.validTimes.contains(time) else { throw JSONError(.outOfRange, Trade.invalidTimeReason(time), at: start) }
        self.init(
            exchange: Exchange(exchange), symbol: Symbol(normalizing: symbol), nativeSymbol: nativeSymbol ?? symbol,
            kind: kind, sequence: sequence, bids: bids, asks: asks, time: time, receivedAt: receivedAt ?? time &* 1000)
    }
}

extension JSONWriter {
    /// Appends `[["price","quantity"], ...]`: the level lists of `tape.books` and of the venues
    /// that print them this way (Poloniex, Binance).
    public static func appendBookLevels(_ levels: [BookLevel], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (index, level) in levels.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendBookLevel(level, to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// Appends one `["price","quantity"]` pair.
    public static func appendBookLevel(_ level: BookLevel, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        appendString(level.price, to: &out)
        out.append(UInt8(ascii: ","))
        appendString(level.quantity, to: &out)
        out.append(UInt8(ascii: "]"))
    }
}

extension JSONScanner {
    /// Reads `[["price","quantity"], ...]` (strings, or plain JSON numbers whose digits are kept):
    /// the level lists of `tape.books`, Poloniex `book_lv2` and Binance depth. Extra elements after
    /// the pair (some venues add a count or an order id) are skipped.
    public mutating func readBookLevels(into levels: inout [BookLevel]) throws(JSONError) {
        try beginArray()
        var first = true
        while try nextElement(first: &first) {
            let at = position
            try beginArray()
            var inner = true
            guard try nextElement(first: &inner) else { throw JSONError(.badValue, "empty book level", at: at) }
            let price = try readLevelText()
            guard try nextElement(first: &inner) else { throw JSONError(.badValue, "book level has no quantity", at: at) }
            let quantity = try readLevelText()
            do throws(BookError) {
                levels.append(try BookLevel(price: price, quantity: quantity))
            } catch {
                throw JSONError(.badValue, "bad book level: \(error.reason)", at: at)
            }
            while try nextElement(first: &inner) { try skipValue() }
        }
    }

    /// `readBookLevels(into:)` into a new array.
    public mutating func readBookLevels() throws(JSONError) -> [BookLevel] {
        var levels: [BookLevel] = []
        try readBookLevels(into: &levels)
        return levels
    }

    /// The digits of a string or number value, unescaped strings only (a level's text has no escapes).
    @inlinable
    public mutating func readLevelText() throws(JSONError) -> UnsafeBufferPointer<UInt8> {
        let at = position
        if try peek() == UInt8(ascii: "\"") {
            let token = try readString()
            guard !token.hasEscapes else { throw JSONError(.badValue, "escaped characters in a number", at: at) }
            return rawBytes(token)
        }
        return UnsafeBufferPointer(rebasing: bytes[try readNumber()])
    }
}
