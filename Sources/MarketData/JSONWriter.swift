/// Appends JSON tokens to a UTF-8 byte buffer: the hand-written encoder behind `Trade`, `Candle` and `Gap`.
public enum JSONWriter {
    /// Appends `value` as a JSON string (quotes included), escaping `"`, `\` and control bytes.
    @inlinable
    public static func appendString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var needsEscaping = false
        for b in value.utf8 where b < 0x20 || b == 0x22 || b == 0x5C {
            needsEscaping = true
            break
        }
        if !needsEscaping {
            out.append(contentsOf: value.utf8)
        } else {
            for b in value.utf8 {
                switch b {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                case 0..<0x20:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    out.append(hex[Int(b >> 4)])
                    out.append(hex[Int(b & 0xF)])
                default: out.append(b)
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends a decimal as a JSON string with its exact text.
    @inlinable
    public static func appendDecimal(_ value: ExactDecimal, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        value.appendText(to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// Appends an integer in decimal.
    @inlinable
    public static func appendInt(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &buffer) { raw in
            var position = 24
            repeat {
                position -= 1
                raw[position] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[position..<24]))
        }
    }

    /// Appends a member: `key` verbatim (e.g. `,"time":`), then the integer.
    @inlinable
    public static func appendMember(_ key: StaticString, _ value: Int64, to out: inout [UInt8]) {
        appendRaw(key, to: &out)
        appendInt(value, to: &out)
    }

    /// Appends a member: `key` verbatim, then the string (quoted and escaped).
    @inlinable
    public static func appendMember(_ key: StaticString, _ value: String, to out: inout [UInt8]) {
        appendRaw(key, to: &out)
        appendString(value, to: &out)
    }

    /// Appends a member: `key` verbatim, then the decimal as a string of its exact text.
    @inlinable
    public static func appendMember(_ key: StaticString, _ value: ExactDecimal, to out: inout [UInt8]) {
        appendRaw(key, to: &out)
        appendDecimal(value, to: &out)
    }

    /// Appends ASCII bytes of a static string verbatim (keys, punctuation).
    @inlinable
    public static func appendRaw(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}

extension JSONScanner {
    /// Reads a decimal written as a JSON string ("21614.59") or, leniently, as a JSON number.
    @inlinable
    public mutating func readDecimal() throws(JSONError) -> ExactDecimal {
        try readDecimal(allowingSignificantDigits: ExactDecimal.maximumParsedDigits)
    }

    /// `readDecimal()` accepting up to `limit` significant digits (sums: candle volumes).
    public mutating func readDecimal(allowingSignificantDigits limit: Int) throws(JSONError) -> ExactDecimal {
        let start = position
        let text: UnsafeBufferPointer<UInt8>
        if try peek() == UInt8(ascii: "\"") {
            let token = try readString()
            if token.hasEscapes {
                let unescaped = try string(token)
                do throws(DecimalError) {
                    return try ExactDecimal(unescaped, allowingSignificantDigits: limit)
                } catch {
                    throw JSONError(.badValue, "bad decimal: \(error.reason)", at: start)
                }
            }
            text = rawBytes(token)
        } else {
            text = UnsafeBufferPointer(rebasing: bytes[try readNumber()])
        }
        do throws(DecimalError) {
            return try ExactDecimal(utf8: text, allowingSignificantDigits: limit)
        } catch {
            throw JSONError(.badValue, "bad decimal: \(error.reason)", at: start)
        }
    }
}
