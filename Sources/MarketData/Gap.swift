/// An interval in which Tape knows data may be missing: the value of a `tape.gaps` record.
///
/// Key `<exchange>:<SYMBOL>:<channel>`; value
/// `{"v":1,"exchange","symbol","channel":"trades"|"book","from":ms,"to":ms,"reason":"...","repaired":bool}`.
/// `from` and `to` (ms since the epoch, both inclusive) bound the trade times the missing data can
/// have: for a jump in trade ids, the times of the last trade before it and the first after it.
/// A gap is written when it is found (`repaired: false`) and written again with the same key,
/// `from` and `to` when REST filled it (`repaired: true`); the latest record for a
/// (key, from, to) is the gap's state. Extra members: `missing` (how many trade ids the jump
/// skipped, when ids are consecutive numbers) and `detected` (wall time of the record, ms).
public struct Gap: Sendable, Hashable, CustomStringConvertible {
    public static let schemaVersion: Int64 = 1

    /// Which stream the gap is in.
    public enum Channel: String, Sendable, Hashable, CaseIterable {
        case trades
        case book
    }

    public var exchange: Exchange
    public var symbol: Symbol
    public var channel: Channel
    /// First ms the missing data can be at (inclusive).
    public var from: Int64
    /// Last ms the missing data can be at (inclusive).
    public var to: Int64
    /// Why data may be missing, one sentence ("trade ids jumped from 100 to 140", "REST could not reach back", ...).
    public var reason: String
    /// True once the missing data was fetched and published.
    public var repaired: Bool
    /// Trade ids skipped, when known.
    public var missing: Int64?
    /// When this record was written (ms), when known.
    public var detected: Int64?

    public init(
        exchange: Exchange, symbol: Symbol, channel: Channel, from: Int64, to: Int64, reason: String, repaired: Bool,
        missing: Int64? = nil, detected: Int64? = nil
    ) {
        self.exchange = exchange
        self.symbol = symbol
        self.channel = channel
        self.from = min(from, to)
        self.to = max(from, to)
        self.reason = reason
        self.repaired = repaired
        self.missing = missing
        self.detected = detected
    }

    /// The Kafka record key: `"<exchange>:<SYMBOL>:<channel>"`.
    public var kafkaKey: String { "\(exchange.name):\(symbol.rawValue):\(channel.rawValue)" }

    /// What identifies one gap across its records (found, then repaired).
    public var identity: Identity { Identity(exchange: exchange, symbol: symbol, channel: channel, from: from, to: to) }

    public struct Identity: Sendable, Hashable {
        public var exchange: Exchange
        public var symbol: Symbol
        public var channel: Channel
        public var from: Int64
        public var to: Int64
    }

    /// True when the gap could hold data of the window `[start, end)` (ms).
    public func overlaps(start: Int64, end: Int64) -> Bool { from < end && to >= start }

    public var description: String {
        "\(repaired ? "repaired gap" : "gap") in \(exchange.name):\(symbol.rawValue) \(channel.rawValue) from \(from) to \(to) ms: \(reason)"
    }

    public func appendJSON(to out: inout [UInt8]) {
        JSONWriter.appendMember("{\"v\":", Gap.schemaVersion, to: &out)
        JSONWriter.appendMember(",\"exchange\":", exchange.name, to: &out)
        JSONWriter.appendMember(",\"symbol\":", symbol.rawValue, to: &out)
        JSONWriter.appendMember(",\"channel\":", channel.rawValue, to: &out)
        JSONWriter.appendMember(",\"from\":", from, to: &out)
        JSONWriter.appendMember(",\"to\":", to, to: &out)
        JSONWriter.appendMember(",\"reason\":", reason, to: &out)
        JSONWriter.appendRaw(repaired ? ",\"repaired\":true" : ",\"repaired\":false", to: &out)
        if let missing {
            JSONWriter.appendMember(",\"missing\":", missing, to: &out)
        }
        if let detected {
            JSONWriter.appendMember(",\"detected\":", detected, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Decodes a gap value; unknown members skipped; `v`, `exchange`, `symbol`, `channel`, `from`,
    /// `to` and `repaired` required (`reason` defaults to empty).
    public init(from s: inout JSONScanner) throws(JSONError) {
        let begin = s.position
        var version: Int64?
        var exchange: String?
        var symbol: String?
        var channel: Channel?
        var from: Int64?
        var to: Int64?
        var reason = ""
        var repaired: Bool?
        var missing: Int64?
        var detected: Int64?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "v") {
                version = try s.readInt64()
            } else if s.token(key, equals: "exchange") {
                exchange = try s.readStringValue()
            } else if s.token(key, equals: "symbol") {
                symbol = try s.readStringValue()
            } else if s.token(key, equals: "channel") {
                let at = s.position
                let text = try s.readStringValue()
                guard let parsed = Channel(rawValue: text) else {
                    throw JSONError(.badValue, "gap channel must be \"trades\" or \"book\", not \"\(text.prefix(20))\"", at: at)
                }
                channel = parsed
            } else if s.token(key, equals: "from") {
                from = try s.readInt64()
            } else if s.token(key, equals: "to") {
                to = try s.readInt64()
            } else if s.token(key, equals: "reason") {
                reason = try s.readStringValue()
            } else if s.token(key, equals: "repaired") {
                repaired = try s.readBool()
            } else if s.token(key, equals: "missing") {
                missing = try s.consumeNull() ? nil : try s.readInt64()
            } else if s.token(key, equals: "detected") {
                detected = try s.consumeNull() ? nil : try s.readInt64()
            } else {
                try s.skipValue()
            }
        }
        guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the gap object", at: s.position) }
        func absent(_ name: String) -> JSONError { JSONError(.badValue, "gap has no \(name)", at: begin) }
        guard let version else { throw absent("v") }
        guard version == Gap.schemaVersion else {
            throw JSONError(.badValue, "unsupported gap schema version \(version)", at: begin)
        }
        guard let exchange else { throw absent("exchange") }
        guard let symbol else { throw absent("symbol") }
        guard let channel else { throw absent("channel") }
        guard let from else { throw absent("from") }
        guard let to else { throw absent("to") }
        guard let repaired else { throw absent("repaired") }
        self.init(
            exchange: Exchange(exchange), symbol: Symbol(normalizing: symbol), channel: channel, from: from, to: to,
            reason: reason, repaired: repaired, missing: missing, detected: detected)
    }
}

/// The gaps known so far, latest state per gap: what `/api/gaps` serves and what decides a
/// candle's `complete`. Feed it `tape.gaps` records in log order.
public struct GapLedger: Sendable {
    private var gaps: [Gap.Identity: Gap] = [:]
    /// Unrepaired gaps per market, for overlap checks.
    private var open: [MarketKey: [Gap]] = [:]
    /// Most gaps kept; the oldest (by `to`) repaired ones go first, then the oldest open ones. Default 100,000.
    public let capacity: Int

    struct MarketKey: Hashable, Sendable {
        var exchange: Exchange
        var symbol: Symbol
    }

    public init(capacity: Int = 100_000) { self.capacity = max(1, capacity) }

    /// Records a gap's latest state; returns the previous state of the same gap, if any.
    @discardableResult
    public mutating func apply(_ gap: Gap) -> Gap? {
        let previous = gaps.updateValue(gap, forKey: gap.identity)
        if gap.channel == .trades {
            let key = MarketKey(exchange: gap.exchange, symbol: gap.symbol)
            var list = open[key, default: []]
            list.removeAll { $0.identity == gap.identity }
            if !gap.repaired { list.append(gap) }
            open[key] = list.isEmpty ? nil : list
        }
        if gaps.count > capacity { evict() }
        return previous
    }

    /// True unless an unrepaired trades gap of this market overlaps `[start, end)`.
    public func isComplete(exchange: Exchange, symbol: Symbol, start: Int64, end: Int64) -> Bool {
        guard let list = open[MarketKey(exchange: exchange, symbol: symbol)] else { return true }
        return !list.contains { $0.overlaps(start: start, end: end) }
    }

    /// Every gap, newest `to` first, optionally only one market's and/or only unrepaired ones.
    public func list(exchange: Exchange? = nil, symbol: Symbol? = nil, unrepairedOnly: Bool = false) -> [Gap] {
        gaps.values.filter { gap in
            (exchange.map { gap.exchange == $0 } ?? true) && (symbol.map { gap.symbol == $0 } ?? true)
                && (!unrepairedOnly || !gap.repaired)
        }.sorted { ($0.to, $0.from, $0.kafkaKey) > ($1.to, $1.from, $1.kafkaKey) }
    }

    public var count: Int { gaps.count }
    public var unrepairedCount: Int { gaps.values.reduce(0) { $0 + ($1.repaired ? 0 : 1) } }

    private mutating func evict() {
        // Down to 90 % at once, so a full ledger sorts once per tenth of its capacity, not per gap.
        let excess = gaps.count - capacity * 9 / 10
        guard excess > 0 else { return }
        let victims = gaps.values.sorted { ($0.repaired ? 0 : 1, $0.to) < ($1.repaired ? 0 : 1, $1.to) }.prefix(excess)
        for gap in victims {
            gaps[gap.identity] = nil
            let key = MarketKey(exchange: gap.exchange, symbol: gap.symbol)
            open[key]?.removeAll { $0.identity == gap.identity }
            if open[key]?.isEmpty == true { open[key] = nil }
        }
    }
}

extension Gap: JSONRecord {
    public static var typicalJSONSize: Int { 200 }
}
