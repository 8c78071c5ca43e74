/// Why JSON bytes could not be read: a code, a short reason and the byte offset.
public struct JSONError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong; new codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        public static let unexpectedEnd = Code(name: "unexpectedEnd")
        public static let unexpectedByte = Code(name: "unexpectedByte")
        public static let invalidString = Code(name: "invalidString")
        public static let invalidNumber = Code(name: "invalidNumber")
        public static let tooDeep = Code(name: "tooDeep")
        /// Well-formed JSON, but not the shape the reader asked for (a string where a number is due, ...).
        public static let wrongType = Code(name: "wrongType")
        /// Well-formed JSON, but a required member is absent or has a bad value.
        public static let badValue = Code(name: "badValue")
        /// Well-formed JSON, but a number outside the range Tape accepts for that member (a trade
        /// time before 1970 or after 9999, see `Trade.validTimes`).
        public static let outOfRange = Code(name: "outOfRange")
    }

    public var code: Code
    public var reason: String
    /// Byte offset in the input where the problem was seen.
    public var offset: Int

    public init(_ code: Code, _ reason: String, at offset: Int) {
        self.code = code
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "\(reason) (\(code) at byte \(offset))" }
}

/// A JSON string token: the byte range between its quotes, still escaped.
public struct JSONStringToken: Sendable, Hashable {
    /// Bytes between the quotes, in the scanner's buffer.
    public var range: Range<Int>
    /// True when the raw bytes contain a backslash escape.
    public var hasEscapes: Bool

    @inlinable
    public init(range: Range<Int>, hasEscapes: Bool) {
        self.range = range
        self.hasEscapes = hasEscapes
    }
}

/// A forward-only, allocation-free JSON reader over UTF-8 bytes (RFC 8259 grammar).
///
/// The caller drives it with the shape it expects (`beginObject`, `nextKey`, `readString`,
/// `readNumber`, `skipValue`, ...), so unknown members cost one `skipValue`. It never traps
/// on bad input: every problem is a thrown `JSONError`. Nesting deeper than `maximumDepth` is
/// refused. The buffer must outlive the scanner (use it inside `withUnsafeBufferPointer`).
public struct JSONScanner {
    public let bytes: UnsafeBufferPointer<UInt8>
    /// Offset of the next unread byte.
    public var position: Int
    /// Deepest nesting `skipValue` accepts.
    public static let maximumDepth = 64

    @inlinable
    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        self.position = 0
    }

    @inlinable @inline(__always)
    public mutating func skipWhitespace() {
        while position < bytes.count {
            let b = bytes[position]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 {
                position += 1
            } else {
                return
            }
        }
    }

    /// True when only whitespace remains.
    @inlinable
    public mutating func isAtEnd() -> Bool {
        skipWhitespace()
        return position >= bytes.count
    }

    @inlinable
    func unexpected(_ what: StaticString) -> JSONError {
        if position >= bytes.count {
            return JSONError(.unexpectedEnd, "input ends where \(what) was expected", at: position)
        }
        return JSONError(.unexpectedByte, "expected \(what)", at: position)
    }

    /// The next non-whitespace byte, not consumed.
    @inlinable @inline(__always)
    public mutating func peek() throws(JSONError) -> UInt8 {
        skipWhitespace()
        guard position < bytes.count else { throw JSONError(.unexpectedEnd, "unexpected end of input", at: position) }
        return bytes[position]
    }

    /// Consumes `byte` (after whitespace) if it is next.
    @inlinable @inline(__always)
    public mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if position < bytes.count && bytes[position] == byte {
            position += 1
            return true
        }
        return false
    }

    @inlinable @inline(__always)
    public mutating func expect(_ byte: UInt8, _ what: StaticString) throws(JSONError) {
        if !consume(byte) { throw unexpected(what) }
    }

    @inlinable
    public mutating func beginObject() throws(JSONError) { try expect(UInt8(ascii: "{"), "'{'") }

    @inlinable
    public mutating func beginArray() throws(JSONError) { try expect(UInt8(ascii: "["), "'['") }

    /// The next member's key (its ':' consumed), or nil at the closing '}'.
    /// Start with `first = true`; the scanner handles the commas.
    @inlinable
    public mutating func nextKey(first: inout Bool) throws(JSONError) -> JSONStringToken? {
        if consume(UInt8(ascii: "}")) { return nil }
        if first {
            first = false
        } else {
            try expect(UInt8(ascii: ","), "',' or '}'")
        }
        let key = try readString()
        try expect(UInt8(ascii: ":"), "':'")
        return key
    }

    /// True if another array element follows (its comma consumed); false at the closing ']'.
    @inlinable
    public mutating func nextElement(first: inout Bool) throws(JSONError) -> Bool {
        if consume(UInt8(ascii: "]")) { return false }
        if first {
            first = false
        } else {
            try expect(UInt8(ascii: ","), "',' or ']'")
        }
        return true
    }

    /// Reads a string token, validating escapes and rejecting raw control bytes.
    @inlinable
    public mutating func readString() throws(JSONError) -> JSONStringToken {
        try expect(UInt8(ascii: "\""), "a string")
        let start = position
        var hasEscapes = false
        let count = bytes.count
        while true {
            #if _endian(little)
                if position + 8 <= count, let base = bytes.baseAddress {
                    // Eight bytes at a time (SWAR): find the first '"', '\\' or control byte.
                    let word = UnsafeRawPointer(base).loadUnaligned(fromByteOffset: position, as: UInt64.self)
                    let ones: UInt64 = 0x0101_0101_0101_0101
                    let quote = word ^ (ones &* 0x22)
                    let backslash = word ^ (ones &* 0x5C)
                    let special =
                        (((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word))
                        & 0x8080_8080_8080_8080
                    if special == 0 {
                        position += 8
                        continue
                    }
                    // The lowest flagged byte is a true match (borrows only flag bytes above it).
                    position += special.trailingZeroBitCount >> 3
                } else {
                    guard position < count else { break }
                    let b = bytes[position]
                    if b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") && b >= 0x20 {
                        position += 1
                        continue
                    }
                }
            #else
                guard position < count else { break }
                let b0 = bytes[position]
                if b0 != UInt8(ascii: "\"") && b0 != UInt8(ascii: "\\") && b0 >= 0x20 {
                    position += 1
                    continue
                }
            #endif
            let b = bytes[position]
            if b == UInt8(ascii: "\"") {
                let token = JSONStringToken(range: start..<position, hasEscapes: hasEscapes)
                position += 1
                return token
            }
            if b == UInt8(ascii: "\\") {
                hasEscapes = true
                try skipEscape()
                continue
            }
            throw JSONError(.invalidString, "control byte in string", at: position)
        }
        throw JSONError(.unexpectedEnd, "unterminated string", at: position)
    }

    @usableFromInline
    mutating func skipEscape() throws(JSONError) {
        position += 1  // backslash
        guard position < bytes.count else { throw JSONError(.unexpectedEnd, "unterminated escape", at: position) }
        switch bytes[position] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
            UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            position += 1
        case UInt8(ascii: "u"):
            guard position + 4 < bytes.count else { throw JSONError(.unexpectedEnd, "short \\u escape", at: position) }
            for i in 1...4 where JSONScanner.hexValue(bytes[position + i]) == nil {
                throw JSONError(.invalidString, "bad \\u escape", at: position + i)
            }
            position += 5
        default:
            throw JSONError(.invalidString, "bad escape", at: position)
        }
    }

    @usableFromInline
    static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(b - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// The raw (still escaped) bytes of a token.
    @inlinable
    public func rawBytes(_ token: JSONStringToken) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: bytes[token.range])
    }

    /// True when the token's unescaped content is exactly `literal` (ASCII, no escapes expected).
    @inlinable
    public func token(_ token: JSONStringToken, equals literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard token.range.count == count, !token.hasEscapes else {
            return token.hasEscapes && (try? string(token)) == literal.description
        }
        let base = literal.utf8Start
        var i = 0
        let start = token.range.lowerBound
        while i < count {
            if bytes[start + i] != base[i] { return false }
            i += 1
        }
        return true
    }

    /// The unescaped string of a token (allocates only for long or escaped strings).
    @inlinable
    public func string(_ token: JSONStringToken) throws(JSONError) -> String {
        if !token.hasEscapes {
            return String(decoding: rawBytes(token), as: UTF8.self)
        }
        return try unescape(token)
    }

    @usableFromInline
    func unescape(_ token: JSONStringToken) throws(JSONError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(token.range.count)
        var i = token.range.lowerBound
        let end = token.range.upperBound
        func hex4(_ at: Int) throws(JSONError) -> UInt32 {
            guard at + 4 <= end else { throw JSONError(.invalidString, "short \\u escape", at: at) }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let h = JSONScanner.hexValue(bytes[at + k]) else {
                    throw JSONError(.invalidString, "bad \\u escape", at: at + k)
                }
                v = v << 4 | h
            }
            return v
        }
        while i < end {
            let b = bytes[i]
            if b != UInt8(ascii: "\\") {
                out.append(b)
                i += 1
                continue
            }
            guard i + 1 < end else { throw JSONError(.invalidString, "bad escape", at: i) }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(i)
                i += 4
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    // high surrogate: a low one must follow
                    guard i + 6 <= end, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw JSONError(.invalidString, "lone surrogate", at: i)
                    }
                    let low = try hex4(i + 2)
                    guard low >= 0xDC00 && low < 0xE000 else { throw JSONError(.invalidString, "lone surrogate", at: i) }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw JSONError(.invalidString, "lone surrogate", at: i)
                }
                guard let unicode = Unicode.Scalar(scalar) else {
                    throw JSONError(.invalidString, "bad code point", at: i)
                }
                out.append(contentsOf: UTF8.encode(unicode)!)
            default:
                throw JSONError(.invalidString, "bad escape", at: i - 1)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads a JSON string and unescapes it.
    @inlinable
    public mutating func readStringValue() throws(JSONError) -> String {
        try string(readString())
    }

    /// Reads a number token (RFC 8259 grammar) and returns its byte range.
    @inlinable
    public mutating func readNumber() throws(JSONError) -> Range<Int> {
        skipWhitespace()
        let start = position
        if position < bytes.count && bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count else { throw unexpected("a number") }
        let first = bytes[position]
        if first == UInt8(ascii: "0") {
            position += 1
        } else if first >= UInt8(ascii: "1") && first <= UInt8(ascii: "9") {
            position += 1
            skipDigits()
        } else {
            throw unexpected("a number")
        }
        if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
            position += 1
            let digitsStart = position
            skipDigits()
            if position == digitsStart { throw JSONError(.invalidNumber, "no digits after '.'", at: position) }
        }
        if position < bytes.count && (bytes[position] | 0x20) == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) {
                position += 1
            }
            let digitsStart = position
            skipDigits()
            if position == digitsStart { throw JSONError(.invalidNumber, "no digits in exponent", at: position) }
        }
        return start..<position
    }

    @inlinable
    mutating func skipDigits() {
        while position < bytes.count && bytes[position] &- UInt8(ascii: "0") < 10 { position += 1 }
    }

    /// Reads a JSON integer that fits in Int64 (no fraction, no exponent).
    @inlinable
    public mutating func readInt64() throws(JSONError) -> Int64 {
        // Fast path: up to 18 plain digits followed by a delimiter.
        skipWhitespace()
        var i = position
        var value: Int64 = 0
        let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        let digitsStart = i
        while i < bytes.count && i - digitsStart < 18 {
            let d = bytes[i] &- UInt8(ascii: "0")
            if d >= 10 { break }
            value = value &* 10 &+ Int64(d)
            i += 1
        }
        let digits = i - digitsStart
        if digits > 0 && (digits == 1 || bytes[digitsStart] != UInt8(ascii: "0")) {
            let next = i < bytes.count ? bytes[i] : UInt8(ascii: " ")
            if next == UInt8(ascii: ",") || next == UInt8(ascii: "}") || next == UInt8(ascii: "]")
                || next == UInt8(ascii: " ") || next == 0x0A || next == 0x0D || next == 0x09
            {
                position = i
                return negative ? -value : value
            }
        }
        let range = try readNumber()
        return try JSONScanner.int64(UnsafeBufferPointer(rebasing: bytes[range]), at: range.lowerBound)
    }

    /// Parses decimal integer text ("-12", "1661123520381") into Int64, checking overflow.
    @inlinable
    public static func int64(_ text: UnsafeBufferPointer<UInt8>, at offset: Int = 0) throws(JSONError) -> Int64 {
        var i = 0
        var negative = false
        if i < text.count && text[i] == UInt8(ascii: "-") {
            negative = true
            i = 1
        }
        guard i < text.count else { throw JSONError(.wrongType, "not an integer", at: offset) }
        var value: UInt64 = 0
        while i < text.count {
            let d = text[i] &- UInt8(ascii: "0")
            guard d < 10 else { throw JSONError(.wrongType, "not an integer", at: offset + i) }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            if o1 || o2 { throw JSONError(.badValue, "integer out of range", at: offset) }
            value = a
            i += 1
        }
        if negative {
            guard value <= UInt64(Int64.max) + 1 else { throw JSONError(.badValue, "integer out of range", at: offset) }
            return value == UInt64(Int64.max) + 1 ? Int64.min : -Int64(value)
        }
        guard value <= UInt64(Int64.max) else { throw JSONError(.badValue, "integer out of range", at: offset) }
        return Int64(value)
    }

    @inlinable
    public mutating func readBool() throws(JSONError) -> Bool {
        if try consumeLiteral("true") { return true }
        if try consumeLiteral("false") { return false }
        throw unexpected("true or false")
    }

    /// Consumes `null` if it is next.
    @inlinable
    public mutating func consumeNull() throws(JSONError) -> Bool {
        try consumeLiteral("null")
    }

    @inlinable
    mutating func consumeLiteral(_ literal: StaticString) throws(JSONError) -> Bool {
        skipWhitespace()
        let count = literal.utf8CodeUnitCount
        guard position < bytes.count, bytes[position] == literal.utf8Start[0] else { return false }
        guard position + count <= bytes.count else { throw JSONError(.unexpectedEnd, "truncated literal", at: position) }
        for i in 1..<count where bytes[position + i] != literal.utf8Start[i] {
            throw JSONError(.unexpectedByte, "bad literal", at: position + i)
        }
        position += count
        return true
    }

    /// Skips one value of any type, checking its grammar; refuses nesting beyond `maximumDepth`.
    public mutating func skipValue() throws(JSONError) {
        try skipValue(depth: 0)
    }

    mutating func skipValue(depth: Int) throws(JSONError) {
        guard depth < JSONScanner.maximumDepth else { throw JSONError(.tooDeep, "nesting too deep", at: position) }
        let b = try peek()
        switch b {
        case UInt8(ascii: "\""):
            _ = try readString()
        case UInt8(ascii: "{"):
            position += 1
            var first = true
            while try nextKey(first: &first) != nil {
                try skipValue(depth: depth + 1)
            }
        case UInt8(ascii: "["):
            position += 1
            var first = true
            while try nextElement(first: &first) {
                try skipValue(depth: depth + 1)
            }
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            _ = try readBool()
        case UInt8(ascii: "n"):
            if !(try consumeNull()) { throw unexpected("a value") }
        default:
            _ = try readNumber()
        }
    }
}
