/// The length of a candle window, from 1 s to 1 d: "1s", "5s", "1m", "15m", "1h", "4h", "1d", "90s", ...
///
/// Windows are tumbling and aligned to the Unix epoch. The text form is canonical: the largest
/// unit that divides the length evenly ("60s" parses and prints as "1m").
public struct CandleInterval: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Window length in seconds, 1...86_400.
    public let seconds: Int64

    public static let minimumSeconds: Int64 = 1
    public static let maximumSeconds: Int64 = 86_400

    /// An interval of `seconds`, or nil outside 1 s ... 1 d.
    public init?(seconds: Int64) {
        guard seconds >= CandleInterval.minimumSeconds && seconds <= CandleInterval.maximumSeconds else { return nil }
        self.seconds = seconds
    }

    /// Parses `N` followed by `s`, `m`, `h` or `d` (N a positive integer without sign or leading
    /// zeros); nil for anything else or outside 1 s ... 1 d.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8.count <= 8 else { return nil }
        let unit: Int64
        switch utf8.last! {
        case UInt8(ascii: "s"): unit = 1
        case UInt8(ascii: "m"): unit = 60
        case UInt8(ascii: "h"): unit = 3_600
        case UInt8(ascii: "d"): unit = 86_400
        default: return nil
        }
        let digits = utf8.dropLast()
        guard digits.first != UInt8(ascii: "0") else { return nil }
        var n: Int64 = 0
        for b in digits {
            let d = b &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            n = n * 10 + Int64(d)
        }
        self.init(seconds: n * unit)
    }

    public static let oneSecond = CandleInterval(seconds: 1)!
    public static let fiveSeconds = CandleInterval(seconds: 5)!
    public static let oneMinute = CandleInterval(seconds: 60)!
    public static let fiveMinutes = CandleInterval(seconds: 300)!
    public static let fifteenMinutes = CandleInterval(seconds: 900)!
    public static let oneHour = CandleInterval(seconds: 3_600)!
    public static let fourHours = CandleInterval(seconds: 14_400)!
    public static let oneDay = CandleInterval(seconds: 86_400)!

    /// Window length in milliseconds.
    public var milliseconds: Int64 { seconds * 1_000 }

    /// Start (ms, inclusive) of the window holding `time` (ms); floor division, so times before
    /// the epoch also land in the right window. Never traps: for a time in the first window
    /// below `Int64.min`'s (whose start is not an `Int64`) it returns `Int64.min`.
    public func windowStart(containing time: Int64) -> Int64 {
        let length = milliseconds
        let r = time % length
        if r >= 0 { return time - r }
        let (start, overflow) = (time - r).subtractingReportingOverflow(length)
        return overflow ? .min : start
    }

    /// Canonical text: "1s", "90s", "1m", "4h", "1d".
    public var description: String {
        if seconds % 86_400 == 0 { return "\(seconds / 86_400)d" }
        if seconds % 3_600 == 0 { return "\(seconds / 3_600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    public static func < (a: CandleInterval, b: CandleInterval) -> Bool { a.seconds < b.seconds }
}

/// One OHLCV window of one instrument: the value of a `tape.candles` record (docs/contracts.md, "Candle").
///
/// `start` (inclusive) and `end` (exclusive) are ms since the epoch. OHLC are exact trade prices,
/// volumes exact sums (base: `volume`, `buyVolume`, `sellVolume`; quote: `quoteVolume`), `vwap` =
/// quoteVolume / volume (10 fractional digits, half-even; nil when volume is zero, written `null`).
/// `revision` counts updates of the same window; `isFinal` (JSON `"final"`) marks the last one.
/// `complete` is false while an unrepaired gap in the trades (`tape.gaps`) overlaps the window.
public struct Candle: Sendable, Hashable {
    public static let schemaVersion: Int64 = 1

    public var exchange: Exchange
    public var symbol: Symbol
    public var interval: CandleInterval
    public var start: Int64
    public var end: Int64
    public var open: ExactDecimal
    public var high: ExactDecimal
    public var low: ExactDecimal
    public var close: ExactDecimal
    public var volume: ExactDecimal
    public var quoteVolume: ExactDecimal
    public var buyVolume: ExactDecimal
    public var sellVolume: ExactDecimal
    public var trades: Int64
    public var vwap: ExactDecimal?
    public var revision: Int64
    public var isFinal: Bool
    /// False while a known, unrepaired gap in the market's trades overlaps the window: trades may
    /// be missing from it. Absent in records written before gaps were tracked (read as true).
    public var complete: Bool = true

    public init(
        exchange: Exchange, symbol: Symbol, interval: CandleInterval, start: Int64, end: Int64,
        open: ExactDecimal, high: ExactDecimal, low: ExactDecimal, close: ExactDecimal,
        volume: ExactDecimal, quoteVolume: ExactDecimal, buyVolume: ExactDecimal, sellVolume: ExactDecimal,
        trades: Int64, vwap: ExactDecimal?, revision: Int64, isFinal: Bool
    ) {
        self.exchange = exchange
        self.symbol = symbol
        self.interval = interval
        self.start = start
        self.end = end
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.quoteVolume = quoteVolume
        self.buyVolume = buyVolume
        self.sellVolume = sellVolume
        self.trades = trades
        self.vwap = vwap
        self.revision = revision
        self.isFinal = isFinal
    }

    /// VWAP as Tape computes it: quoteVolume / volume at 10 fractional digits, round half to even;
    /// nil when volume is zero.
    public static func vwap(quoteVolume: ExactDecimal, volume: ExactDecimal) -> ExactDecimal? {
        if volume.isZero { return nil }
        return try? quoteVolume.divided(by: volume, scale: 10)
    }

    /// The Kafka record key: `"<exchange>:<SYMBOL>:<interval>:<start>"`, e.g. "poloniex:BTC-USDT:1m:1661123520000".
    public var kafkaKey: String {
        Candle.kafkaKey(exchange: exchange, symbol: symbol, interval: interval, start: start)
    }

    public static func kafkaKey(exchange: Exchange, symbol: Symbol, interval: CandleInterval, start: Int64) -> String {
        "\(exchange.name):\(symbol.rawValue):\(interval):\(start)"
    }

    /// Appends the docs/contracts.md JSON layout (one line, no spaces, fields in schema order).
    public func appendJSON(to out: inout [UInt8]) {
        JSONWriter.appendMember("{\"v\":", Candle.schemaVersion, to: &out)
        JSONWriter.appendMember(",\"exchange\":", exchange.name, to: &out)
        JSONWriter.appendMember(",\"symbol\":", symbol.rawValue, to: &out)
        JSONWriter.appendMember(",\"interval\":", interval.description, to: &out)
        JSONWriter.appendMember(",\"start\":", start, to: &out)
        JSONWriter.appendMember(",\"end\":", end, to: &out)
        JSONWriter.appendMember(",\"open\":", open, to: &out)
        JSONWriter.appendMember(",\"high\":", high, to: &out)
        JSONWriter.appendMember(",\"low\":", low, to: &out)
        JSONWriter.appendMember(",\"close\":", close, to: &out)
        JSONWriter.appendMember(",\"volume\":", volume, to: &out)
        JSONWriter.appendMember(",\"quoteVolume\":", quoteVolume, to: &out)
        JSONWriter.appendMember(",\"buyVolume\":", buyVolume, to: &out)
        JSONWriter.appendMember(",\"sellVolume\":", sellVolume, to: &out)
        JSONWriter.appendMember(",\"trades\":", trades, to: &out)
        JSONWriter.appendRaw(",\"vwap\":", to: &out)
        if let vwap {
            JSONWriter.appendDecimal(vwap, to: &out)
        } else {
            JSONWriter.appendRaw("null", to: &out)
        }
        JSONWriter.appendMember(",\"revision\":", revision, to: &out)
        JSONWriter.appendRaw(isFinal ? ",\"final\":true" : ",\"final\":false", to: &out)
        JSONWriter.appendRaw(complete ? ",\"complete\":true}" : ",\"complete\":false}", to: &out)
    }

    /// Decodes a candle value; unknown members skipped, all schema fields required (`vwap` may be null).
    /// Decimals may have up to `ExactDecimal.maximumSumDigits` significant digits: volumes are
    /// sums of trade quantities, which may outgrow the 38 digits of one quantity.
    public init(from s: inout JSONScanner) throws(JSONError) {
        let begin = s.position
        var version: Int64?
        var exchange: String?
        var symbol: String?
        var interval: CandleInterval?
        var start: Int64?
        var end: Int64?
        var decimals: [String: ExactDecimal] = [:]
        var trades: Int64?
        var vwap: ExactDecimal??
        var revision: Int64?
        var isFinal: Bool?
        var complete = true
        let decimalNames: [StaticString] = [
            "open", "high", "low", "close", "volume", "quoteVolume", "buyVolume", "sellVolume",
        ]
        try s.beginObject()
        var first = true
        members: while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "v") {
                version = try s.readInt64()
            } else if s.token(key, equals: "exchange") {
                exchange = try s.readStringValue()
            } else if s.token(key, equals: "symbol") {
                symbol = try s.readStringValue()
            } else if s.token(key, equals: "interval") {
                let at = s.position
                let text = try s.readStringValue()
                guard let parsed = CandleInterval(text) else {
                    throw JSONError(.badValue, "bad candle interval \"\(text)\"", at: at)
                }
                interval = parsed
            } else if s.token(key, equals: "start") {
                start = try s.readInt64()
            } else if s.token(key, equals: "end") {
                end = try s.readInt64()
            } else if s.token(key, equals: "trades") {
                trades = try s.readInt64()
            } else if s.token(key, equals: "vwap") {
                vwap = try s.consumeNull() ? .some(nil) : .some(try s.readDecimal(allowingSignificantDigits: ExactDecimal.maximumSumDigits))
            } else if s.token(key, equals: "revision") {
                revision = try s.readInt64()
            } else if s.token(key, equals: "final") {
                isFinal = try s.readBool()
            } else if s.token(key, equals: "complete") {
                complete = try s.readBool()
            } else {
                for name in decimalNames where s.token(key, equals: name) {
                    decimals[name.description] = try s.readDecimal(allowingSignificantDigits: ExactDecimal.maximumSumDigits)
                    continue members
                }
                try s.skipValue()
            }
        }
        guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the candle object", at: s.position) }
        func missing(_ name: String) -> JSONError { JSONError(.badValue, "candle has no \(name)", at: begin) }
        guard let version else { throw missing("v") }
        guard version == Candle.schemaVersion else {
            throw JSONError(.badValue, "unsupported candle schema version \(version)", at: begin)
        }
        guard let exchange else { throw missing("exchange") }
        guard let symbol else { throw missing("symbol") }
        guard let interval else { throw missing("interval") }
        guard let start else { throw missing("start") }
        guard let end else { throw missing("end") }
        func decimal(_ name: String) throws(JSONError) -> ExactDecimal {
            guard let value = decimals[name] else { throw missing(name) }
            return value
        }
        guard let trades else { throw missing("trades") }
        guard let vwap else { throw missing("vwap") }
        guard let revision else { throw missing("revision") }
        guard let isFinal else { throw missing("final") }
        self.init(
            exchange: Exchange(exchange), symbol: Symbol(normalizing: symbol), interval: interval, start: start,
            end: end, open: try decimal("open"), high: try decimal("high"), low: try decimal("low"),
            close: try decimal("close"), volume: try decimal("volume"), quoteVolume: try decimal("quoteVolume"),
            buyVolume: try decimal("buyVolume"), sellVolume: try decimal("sellVolume"), trades: trades, vwap: vwap,
            revision: revision, isFinal: isFinal)
        self.complete = complete
    }
}

extension Candle: JSONRecord {
    public static var typicalJSONSize: Int { 400 }
}
