import MarketData

/// Kraken spot websocket v2 `book` channel (level 2).
///
/// Facts (Kraken docs, spot-websocket-v2 "Book (Level 2)" and the guide "Spot Websockets (v2)
/// Book Checksum"): subscribe `{"method":"subscribe","params":{"channel":"book","symbol":[...],
/// "depth":10}}` (depth 10, 25, 100, 500 or 1000; one ack per symbol); messages
/// `{"channel":"book","type":"snapshot"|"update","data":[{"symbol","bids":[{"price","qty"}],"asks":[...],
/// "checksum":<uint32>,"timestamp"}]}` where `price` and `qty` are JSON numbers and
/// `timestamp` (RFC 3339) is on updates; qty 0 removes a level; several updates of one price in
/// one message apply in order. After each message the book is cut to the subscribed depth (no
/// removal is sent for a level pushed out of scope), then `checksum` covers its top 10 levels
/// (`KrakenBookChecksum`). Kraken has no sequence numbers.
extension Kraken {
    /// The channel carrying level-2 books.
    public static let bookChannel = "book"

    /// Levels per side Tape subscribes to (and cuts its copy of the book to).
    public static let bookDepth = 10

    /// The subscribe request for the books of v2 `symbols` at `depth` levels.
    public static func bookSubscribeMessage(symbols: [String], depth: Int = bookDepth) -> String {
        bookRequest(method: "subscribe", symbols: symbols, depth: depth)
    }

    /// The unsubscribe request for the books of v2 `symbols` at `depth` levels.
    public static func bookUnsubscribeMessage(symbols: [String], depth: Int = bookDepth) -> String {
        bookRequest(method: "unsubscribe", symbols: symbols, depth: depth)
    }

    static func bookRequest(method: String, symbols: [String], depth: Int) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"method\":", to: &out)
        JSONWriter.appendString(method, to: &out)
        JSONWriter.appendRaw(",\"params\":{\"channel\":\"book\",\"symbol\":[", to: &out)
        for (i, symbol) in symbols.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(symbol, to: &out)
        }
        JSONWriter.appendRaw("],\"depth\":", to: &out)
        out.append(contentsOf: String(depth).utf8)
        JSONWriter.appendRaw("}}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The worked example of Kraken's v2 checksum guide (levels as strings there; its checksum
    /// 3310070434 is Kraken's own value), BTC/USD: 1 price decimal, 8 quantity decimals.
    public static let sampleBookChecksumFrame =
        #"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":"45283.5","qty":"0.10000000"},{"price":"45283.4","qty":"1.54582015"},{"price":"45282.1","qty":"0.10000000"},{"price":"45281.0","qty":"0.10000000"},{"price":"45280.3","qty":"1.54592586"},{"price":"45279.0","qty":"0.07990000"},{"price":"45277.6","qty":"0.03310103"},{"price":"45277.5","qty":"0.30000000"},{"price":"45277.3","qty":"1.54602737"},{"price":"45276.6","qty":"0.15445238"}],"asks":[{"price":"45285.2","qty":"0.00100000"},{"price":"45286.4","qty":"1.54571953"},{"price":"45286.6","qty":"1.54571109"},{"price":"45289.6","qty":"1.54560911"},{"price":"45290.2","qty":"0.15890660"},{"price":"45291.8","qty":"1.54553491"},{"price":"45294.7","qty":"0.04454749"},{"price":"45296.1","qty":"0.35380000"},{"price":"45297.5","qty":"0.09945542"},{"price":"45299.5","qty":"0.18772827"}],"checksum":3310070434}]}"#

    /// The same book as v2 really sends it: JSON numbers, so trailing zeros are gone ("45281.0"
    /// is 45281, "0.10000000" is 0.1) and one quantity comes in exponent form (0.001 as 1e-3).
    public static let sampleBookNumbersFrame =
        #"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.1},{"price":45283.4,"qty":1.54582015},{"price":45282.1,"qty":0.1},{"price":45281,"qty":0.1},{"price":45280.3,"qty":1.54592586},{"price":45279,"qty":0.0799},{"price":45277.6,"qty":0.03310103},{"price":45277.5,"qty":0.3},{"price":45277.3,"qty":1.54602737},{"price":45276.6,"qty":0.15445238}],"asks":[{"price":45285.2,"qty":1e-3},{"price":45286.4,"qty":1.54571953},{"price":45286.6,"qty":1.54571109},{"price":45289.6,"qty":1.54560911},{"price":45290.2,"qty":0.1589066},{"price":45291.8,"qty":1.54553491},{"price":45294.7,"qty":0.04454749},{"price":45296.1,"qty":0.3538},{"price":45297.5,"qty":0.09945542},{"price":45299.5,"qty":0.18772827}],"checksum":3310070434}]}"#

    /// An update in the shape of the v2 `book` page's example: one bid, a checksum, a timestamp.
    public static let sampleBookUpdateFrame =
        #"{"channel":"book","type":"update","data":[{"symbol":"ETH/BTC","bids":[{"price":0.5657,"qty":1098.3947558}],"asks":[],"checksum":2114181697,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#

    /// The book subscribe acknowledgement (one per symbol), from the v2 `book` page.
    public static let sampleBookSubscribeAck =
        #"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"MATIC/USD"},"success":true,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}"#
}

extension KrakenFrameParser {
    /// Parses one frame of a connection carrying trades and books: trades go to `trades`, `book`
    /// messages to `books` (one `BookFrame` per element of `data`, with `checksum`; `sequence`
    /// nil), answered with `.books(count:)`. A frame that fails anywhere appends nothing to either.
    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        try appendingAllOrNothing(to: &trades, and: &books) { trades, books throws(FrameParseError) in
            if KrakenFrameParser.startsAsBookFrame(frame) {
                return try parseBookFrame(frame, receivedAt: receivedAt, into: &books)
            }
            let message = try parse(frame, receivedAt: receivedAt, into: &trades)
            guard message == .ignored(channel: Kraken.bookChannel) else { return message }
            return try parseBookFrame(frame, receivedAt: receivedAt, into: &books)
        }
    }

    static func startsAsBookFrame(_ frame: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = frame.baseAddress else { return false }
        var cursor = FastCursor(base: base, end: frame.count, position: 0)
        return cursor.literal(#"{"channel":"book","#)
    }

    /// A `book` frame in any member order; `type` must be `snapshot` or `update`.
    mutating func parseBookFrame(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        var s = JSONScanner(frame)
        let first = books.count
        var kind: BookFrame.Kind?
        var sawChannel = false
        var sawData = false
        do throws(JSONError) {
            try s.beginObject()
            var firstKey = true
            while let key = try s.nextKey(first: &firstKey) {
                if s.token(key, equals: "channel") {
                    let at = s.position
                    let token = try s.readString()
                    guard !sawChannel, s.token(token, equals: "book") else {
                        throw JSONError(.badValue, "not one book channel", at: at)
                    }
                    sawChannel = true
                } else if s.token(key, equals: "type") {
                    let at = s.position
                    let token = try s.readString()
                    if s.token(token, equals: "snapshot") {
                        kind = .snapshot
                    } else if s.token(token, equals: "update") {
                        kind = .update
                    } else {
                        throw JSONError(.badValue, "book type must be \"snapshot\" or \"update\"", at: at)
                    }
                } else if s.token(key, equals: "data") {
                    guard !sawData else { throw JSONError(.badValue, "book frame repeats data", at: s.position) }
                    sawData = true
                    try s.beginArray()
                    var firstElement = true
                    while try s.nextElement(first: &firstElement) {
                        books.append(try parseBookMessage(&s, receivedAt: receivedAt))
                    }
                } else {
                    try s.skipValue()
                }
            }
            guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the frame's object", at: s.position) }
            guard sawData else { throw JSONError(.badValue, "book frame without data", at: 0) }
            guard let kind else { throw JSONError(.badValue, "book frame without type", at: 0) }
            for index in first..<books.count {
                books[index].kind = kind
            }
        } catch {
            throw FrameParseError(book: error)
        }
        return .books(count: books.count - first)
    }

    /// One element of `data`, kind `.update` until the frame's `type` is known.
    mutating func parseBookMessage(_ s: inout JSONScanner, receivedAt: Int64) throws(JSONError) -> BookFrame {
        let start = s.position
        var symbol: CachedSymbol?
        var bids: [BookLevel]?
        var asks: [BookLevel]?
        var checksum: UInt32?
        var time: Int64?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "bids") {
                bids = try KrakenFrameParser.readLevels(&s)
            } else if s.token(key, equals: "asks") {
                asks = try KrakenFrameParser.readLevels(&s)
            } else if s.token(key, equals: "symbol") {
                let token = try s.readString()
                if token.hasEscapes || token.range.isEmpty || token.range.count > 64 {
                    throw JSONError(.badValue, "bad symbol", at: token.range.lowerBound)
                }
                symbol = symbols.lookup(s.rawBytes(token))
            } else if s.token(key, equals: "checksum") {
                let at = s.position
                let value = try s.readInt64()
                guard value >= 0, value <= Int64(UInt32.max) else {
                    throw JSONError(.outOfRange, "checksum is not an unsigned 32-bit integer", at: at)
                }
                checksum = UInt32(value)
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
        func missing(_ field: String) -> JSONError { JSONError(.badValue, "book message has no \(field)", at: start) }
        guard let symbol else { throw missing("symbol") }
        return BookFrame(
            nativeSymbol: symbol.native, kind: .update, bids: bids ?? [], asks: asks ?? [],
            time: time ?? receivedAt / 1000, receivedAt: receivedAt, checksum: checksum)
    }

    /// `[{"price":<number>,"qty":<number>}, ...]`; numbers (or strings) keep their digits, an
    /// exponent form ("1e-05") is written out as plain decimals ("0.00001"), the same value.
    static func readLevels(_ s: inout JSONScanner) throws(JSONError) -> [BookLevel] {
        var levels: [BookLevel] = []
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            let at = s.position
            var price: UnsafeBufferPointer<UInt8>?
            var qty: UnsafeBufferPointer<UInt8>?
            try s.beginObject()
            var firstKey = true
            while let key = try s.nextKey(first: &firstKey) {
                if s.token(key, equals: "price") {
                    price = try s.readLevelText()
                } else if s.token(key, equals: "qty") {
                    qty = try s.readLevelText()
                } else {
                    try s.skipValue()
                }
            }
            guard let price, let qty else { throw JSONError(.badValue, "book level needs price and qty", at: at) }
            do throws(BookError) {
                levels.append(try KrakenFrameParser.level(price: price, quantity: qty))
            } catch {
                throw JSONError(.badValue, "bad book level: \(error.reason)", at: at)
            }
        }
        return levels
    }

    static func level(price: UnsafeBufferPointer<UInt8>, quantity: UnsafeBufferPointer<UInt8>) throws(BookError) -> BookLevel {
        if !PlainDecimal.hasExponent(price) && !PlainDecimal.hasExponent(quantity) {
            return try BookLevel(price: price, quantity: quantity)
        }
        let plainPrice = try PlainDecimal.expand(price)
        let plainQuantity = try PlainDecimal.expand(quantity)
        let result = plainPrice.withUnsafeBufferPointer { p in
            plainQuantity.withUnsafeBufferPointer { q in
                Result { () throws(BookError) -> BookLevel in try BookLevel(price: p, quantity: q) }
            }
        }
        return try result.get()
    }
}

/// Writes a JSON number in exponent form as plain decimal digits, exactly ("1.5e-3" → "0.0015",
/// "2E+2" → "200"): the form `BookLevel` holds. Signs are left for `BookLevel` to refuse.
enum PlainDecimal {
    /// Largest exponent magnitude accepted (a book value beyond 10^±40 is not a price or size).
    static let maximumExponent = 40

    static func hasExponent(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        for byte in bytes where byte | 0x20 == UInt8(ascii: "e") { return true }
        return false
    }

    static func expand(_ bytes: UnsafeBufferPointer<UInt8>) throws(BookError) -> [UInt8] {
        var digits: [UInt8] = []
        var integerDigits = 0
        var index = 0
        var sawPoint = false
        while index < bytes.count, bytes[index] | 0x20 != UInt8(ascii: "e") {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") {
                guard !sawPoint else { throw BookError("number has two '.'") }
                sawPoint = true
            } else {
                guard byte &- UInt8(ascii: "0") < 10 else { throw BookError("number has a character other than digits") }
                digits.append(byte)
                if !sawPoint { integerDigits += 1 }
            }
            index += 1
        }
        guard !digits.isEmpty else { throw BookError("number has no digits") }
        guard index < bytes.count else { return Array(bytes) }
        index += 1  // the 'e'
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        var exponent = 0
        var exponentDigits = 0
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { throw BookError("exponent has a character other than digits") }
            exponent = exponent * 10 + Int(digit)
            guard exponent <= maximumExponent else { throw BookError("exponent is too large") }
            exponentDigits += 1
            index += 1
        }
        guard exponentDigits > 0 else { throw BookError("exponent has no digits") }
        let point = integerDigits + (negative ? -exponent : exponent)
        var out: [UInt8] = []
        if point <= 0 {
            out.append(UInt8(ascii: "0"))
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -point))
            out.append(contentsOf: digits)
        } else if point >= digits.count {
            out.append(contentsOf: digits)
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: point - digits.count))
        } else {
            out.append(contentsOf: digits[..<point])
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: digits[point...])
        }
        // Leading zeros of the integer part, keeping one before the point.
        var leading = 0
        while leading + 1 < out.count, out[leading] == UInt8(ascii: "0"), out[leading + 1] != UInt8(ascii: ".") {
            leading += 1
        }
        return Array(out[leading...])
    }
}
