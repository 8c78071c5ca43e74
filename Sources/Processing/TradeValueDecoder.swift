import MarketData

/// The fields of a `tape.trades` value that candles need, read straight from the record bytes
/// without building a `Trade` (no `String`s for the common case): the processor's hot path.
///
/// It accepts exactly the plain form Tape writes (a flat object, string decimals, no escapes, an
/// already normalized symbol); for anything else it returns nil and the caller decodes with
/// `Trade(json:)`, the reference decoder. When it returns fields, they equal `Trade(json:)`'s
/// (checked by tests on generated, mutated and fuzzed values); in particular a time outside
/// `Trade.validTimes` is never returned (the reference decoder rejects it with its reason).
struct TradeFields {
    var exchange: Range<Int>
    var symbol: Range<Int>
    var tradeID: Range<Int>
    var price: ExactDecimal
    var quantity: ExactDecimal
    var quoteQuantity: ExactDecimal
    var side: Side
    var time: Int64

    /// Decodes `bytes`; nil when the value is not in the plain form (use `Trade(json:)`).
    static func decode(_ b: UnsafeBufferPointer<UInt8>) -> TradeFields? {
        if let fields = decodeWrittenLayout(b) { return fields }
        return decodeAnyOrder(b)
    }

    /// The fastest path: exactly the layout `Trade.appendJSON` writes (every member in schema
    /// order, no spaces), checked literal by literal. Anything else — other order, spaces, extra
    /// members, escapes — returns nil and goes to `decodeAnyOrder`, which accepts the same values
    /// and more; so this path only decides speed, never the result.
    @inline(__always)
    static func decodeWrittenLayout(_ b: UnsafeBufferPointer<UInt8>) -> TradeFields? {
        let n = b.count
        guard let base = b.baseAddress else { return nil }
        var i = 0
        @inline(__always) func expect(_ literal: StaticString) -> Bool {
            let count = literal.utf8CodeUnitCount
            guard n - i >= count else { return false }
            guard equalBytes(UnsafeRawPointer(base + i), UnsafeRawPointer(literal.utf8Start), count) else { return false }
            i += count
            return true
        }
        /// The text up to the closing quote (plain ASCII, no escapes); leaves `i` after the quote.
        @inline(__always) func quoted() -> Range<Int>? {
            guard let end = plainStringEnd(b, from: i) else { return nil }
            defer { i = end + 1 }
            return i..<end
        }
        /// A quoted decimal. The common text — canonical, at most 18 digits — is parsed in the same
        /// pass that finds the closing quote, straight into the 64-bit mantissa (no second scan);
        /// anything else goes to `ExactDecimal(utf8:)`, whose value the fast pass equals.
        @inline(__always) func decimal() -> ExactDecimal? {
            var j = i
            let negative = j < n && base[j] == UInt8(ascii: "-")
            if negative { j += 1 }
            let digitsStart = j
            var mantissa: Int64 = 0
            var pointAt = -1
            while j < n {
                let c = base[j]
                let d = c &- UInt8(ascii: "0")
                if d < 10 {
                    mantissa = mantissa &* 10 &+ Int64(d)
                } else if c == UInt8(ascii: ".") && pointAt < 0 {
                    pointAt = j
                } else {
                    break
                }
                j += 1
            }
            if j < n && base[j] == UInt8(ascii: "\"") {
                let integerDigits = (pointAt < 0 ? j : pointAt) - digitsStart
                let fractionDigits = pointAt < 0 ? 0 : j - pointAt - 1
                if integerDigits >= 1 && integerDigits + fractionDigits <= 18 && (pointAt < 0 || fractionDigits >= 1)
                    && (integerDigits == 1 || base[digitsStart] != UInt8(ascii: "0")) && !(negative && mantissa == 0)
                {
                    i = j + 1
                    return ExactDecimal(mantissa: negative ? -mantissa : mantissa, scale: fractionDigits)
                }
            }
            guard let r = quoted() else { return nil }
            return try? ExactDecimal(utf8: UnsafeBufferPointer(start: base + r.lowerBound, count: r.count))
        }
        /// `plainInteger`'s rules in one pass (the hot path), directly followed by `terminator`
        /// (consumed too); the path-agreement test holds the two to the same answers.
        @inline(__always) func integer(until terminator: UInt8) -> Int64? {
            var negative = false
            if i < n && base[i] == UInt8(ascii: "-") {
                negative = true
                i += 1
            }
            let start = i
            var v: Int64 = 0
            while i < n {
                let d = base[i] &- UInt8(ascii: "0")
                if d > 9 { break }
                v = v &* 10 &+ Int64(d)
                i += 1
            }
            let digits = i - start
            guard digits > 0 && digits <= 18, i < n, base[i] == terminator else { return nil }
            if digits > 1 && base[start] == UInt8(ascii: "0") { return nil }
            i += 1
            return negative ? -v : v
        }

        guard expect("{\"v\":1,\"exchange\":\""), let exchange = quoted(),
            expect(",\"symbol\":\""), let symbol = quoted(), !symbol.isEmpty,
            expect(",\"nativeSymbol\":\""), quoted() != nil,
            expect(",\"tradeId\":\""), let tradeID = quoted(),
            expect(",\"price\":\""), let price = decimal(),
            expect(",\"quantity\":\""), let quantity = decimal(),
            expect(",\"quoteQuantity\":\""), let quoteQuantity = decimal(),
            expect(",\"side\":\"")
        else { return nil }
        let side: Side
        if expect("buy\"") {
            side = .buy
        } else if expect("sell\"") {
            side = .sell
        } else {
            return nil
        }
        guard expect(",\"time\":"), let time = integer(until: UInt8(ascii: ",")), Trade.validTimes.contains(time),
            expect("\"receivedAt\":"), integer(until: UInt8(ascii: "}")) != nil, i == n
        else { return nil }
        guard isNormalSymbol(b, symbol) else { return nil }
        return TradeFields(
            exchange: exchange, symbol: symbol, tradeID: tradeID, price: price, quantity: quantity,
            quoteQuantity: quoteQuantity, side: side, time: time)
    }

    /// Any member order, spaces and unknown plain members; nil when not in the plain form.
    static func decodeAnyOrder(_ b: UnsafeBufferPointer<UInt8>) -> TradeFields? {
        let n = b.count
        var i = 0
        @inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
        @inline(__always) func skipSpace() { while i < n && isSpace(b[i]) { i += 1 } }
        @inline(__always) func stringEnd(from start: Int) -> Int? { plainStringEnd(b, from: start) }
        func decimal(_ r: Range<Int>) -> ExactDecimal? {
            try? ExactDecimal(utf8: UnsafeBufferPointer(rebasing: b[r]))
        }
        func integer(_ r: Range<Int>) -> Int64? { plainInteger(b, r) }
        func keyIs(_ r: Range<Int>, _ name: StaticString) -> Bool { keyLiteral(b, r, name) }

        skipSpace()
        guard i < n, b[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        var seen: UInt16 = 0
        var exchange = 0..<0
        var symbol = 0..<0
        var tradeID = 0..<0
        var price = ExactDecimal.zero
        var quantity = ExactDecimal.zero
        var quoteQuantity = ExactDecimal.zero
        var side = Side.buy
        var time: Int64 = 0
        while true {
            skipSpace()
            guard i < n, b[i] == UInt8(ascii: "\"") else { return nil }
            guard let keyEnd = stringEnd(from: i + 1) else { return nil }
            let key = (i + 1)..<keyEnd
            i = keyEnd + 1
            skipSpace()
            guard i < n, b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            guard i < n else { return nil }
            let isString: Bool
            let value: Range<Int>
            if b[i] == UInt8(ascii: "\"") {
                guard let end = stringEnd(from: i + 1) else { return nil }
                isString = true
                value = (i + 1)..<end
                i = end + 1
            } else {
                let start = i
                while i < n {
                    let c = b[i]
                    if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") || isSpace(c) { break }
                    if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") || c == UInt8(ascii: "\"") { return nil }
                    i += 1
                }
                isString = false
                value = start..<i
            }
            switch key.count {
            case 1 where keyIs(key, "v"):
                guard !isString, integer(value) == 1 else { return nil }
                seen |= 1 << 0
            case 8 where keyIs(key, "exchange"):
                guard isString else { return nil }
                exchange = value
                seen |= 1 << 1
            case 6 where keyIs(key, "symbol"):
                guard isString, !value.isEmpty, isNormalSymbol(b, value) else { return nil }
                symbol = value
                seen |= 1 << 2
            case 12 where keyIs(key, "nativeSymbol"):
                guard isString else { return nil }
                seen |= 1 << 3
            case 7 where keyIs(key, "tradeId"):
                guard isString else { return nil }
                tradeID = value
                seen |= 1 << 4
            case 5 where keyIs(key, "price"):
                guard isString, let d = decimal(value) else { return nil }
                price = d
                seen |= 1 << 5
            case 8 where keyIs(key, "quantity"):
                guard isString, let d = decimal(value) else { return nil }
                quantity = d
                seen |= 1 << 6
            case 13 where keyIs(key, "quoteQuantity"):
                guard isString, let d = decimal(value) else { return nil }
                quoteQuantity = d
                seen |= 1 << 7
            case 4 where keyIs(key, "side"):
                guard isString, let s = Side(utf8: UnsafeBufferPointer(rebasing: b[value])) else { return nil }
                side = s
                seen |= 1 << 8
            case 4 where keyIs(key, "time"):
                guard !isString, let t = integer(value), Trade.validTimes.contains(t) else { return nil }
                time = t
                seen |= 1 << 9
            case 10 where keyIs(key, "receivedAt"):
                guard !isString, integer(value) != nil else { return nil }
                seen |= 1 << 10
            default:
                // Unknown members: only plain literals (numbers, true, false, null) are skipped here.
                if !isString {
                    let text = value
                    guard !text.isEmpty else { return nil }
                    let c = b[text.lowerBound]
                    let plain =
                        c == UInt8(ascii: "-") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                        || keyLiteral(b, text, "true") || keyLiteral(b, text, "false") || keyLiteral(b, text, "null")
                    guard plain, c != UInt8(ascii: "-") || text.count > 1 else { return nil }
                    if plain && (c == UInt8(ascii: "-") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))) {
                        guard integer(text) != nil else { return nil }  // plain integers only; others: reference decoder
                    }
                }
            }
            skipSpace()
            guard i < n else { return nil }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard b[i] == UInt8(ascii: "}") else { return nil }
            i += 1
            break
        }
        skipSpace()
        guard i == n, seen == 0x7FF else { return nil }
        return TradeFields(
            exchange: exchange, symbol: symbol, tradeID: tradeID, price: price, quantity: quantity,
            quoteQuantity: quoteQuantity, side: side, time: time)
    }

    /// Index of the quote closing a plain string starting at `start` (ASCII, no escapes, no
    /// control characters); nil for anything else.
    @inline(__always)
    static func plainStringEnd(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var j = start
        while j < b.count {
            let c = b[j]
            if c == UInt8(ascii: "\"") { return j }
            if c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { return nil }
            j += 1
        }
        return nil
    }

    /// A plain JSON integer: optional '-', 1–18 digits, no leading zero; nil otherwise.
    @inline(__always)
    static func plainInteger(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Int64? {
        var j = r.lowerBound
        var negative = false
        if j < r.upperBound && b[j] == UInt8(ascii: "-") {
            negative = true
            j += 1
        }
        let digits = r.upperBound - j
        guard digits > 0 && digits <= 18 else { return nil }
        if digits > 1 && b[j] == UInt8(ascii: "0") { return nil }
        var v: Int64 = 0
        while j < r.upperBound {
            let d = b[j] &- UInt8(ascii: "0")
            if d > 9 { return nil }
            v = v * 10 + Int64(d)
            j += 1
        }
        return negative ? -v : v
    }

    /// A symbol already in normal form (no lowercase, '_', '/' or non-ASCII); otherwise the
    /// reference decoder normalizes it.
    @inline(__always)
    static func isNormalSymbol(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        for k in r {
            let c = b[k]
            if (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || c == UInt8(ascii: "_") || c == UInt8(ascii: "/") || c >= 0x80 {
                return false
            }
        }
        return true
    }

    /// Whether `count` bytes at `a` and `b` are equal, compared eight at a time.
    @inline(__always)
    static func equalBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
        var k = 0
        while count - k >= 8 {
            if a.loadUnaligned(fromByteOffset: k, as: UInt64.self) != b.loadUnaligned(fromByteOffset: k, as: UInt64.self) { return false }
            k += 8
        }
        if count >= 8 {
            // The last (overlapping) word covers the rest.
            return count == k || a.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self) == b.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        }
        while k < count {
            if a.load(fromByteOffset: k, as: UInt8.self) != b.load(fromByteOffset: k, as: UInt8.self) { return false }
            k += 1
        }
        return true
    }

    /// Whether the bytes of `r` (within `b`) are exactly `literal`.
    private static func keyLiteral(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ literal: StaticString) -> Bool {
        guard r.count == literal.utf8CodeUnitCount else { return false }
        guard let base = b.baseAddress else { return r.isEmpty }
        return equalBytes(UnsafeRawPointer(base + r.lowerBound), UnsafeRawPointer(literal.utf8Start), r.count)
    }
}
