import MarketData

/// RFC 3339 timestamps as venues print trade times ("2019-08-14T20:42:27.265Z" on Coinbase,
/// "2022-12-25T09:30:59.123456Z" on Kraken v2), read straight from the bytes — no Foundation
/// `DateFormatter`, no Double — to milliseconds since the Unix epoch.
public enum RFC3339 {
    /// Milliseconds since the epoch of `YYYY-MM-DD(T|t| )hh:mm:ss[.fraction](Z|z|±hh:mm)`.
    /// Fractions beyond milliseconds are truncated (floor), never rounded, so a trade is never
    /// moved into the next millisecond (or candle). Nil on anything else, including impossible
    /// dates ("2023-02-30") and times ("24:00:00"); a leap second ("23:59:60") is accepted as
    /// the next second, as the POSIX epoch counts it.
    public static func milliseconds(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
        // Shortest form: "2019-08-14T20:42:27Z" (20 bytes).
        guard b.count >= 20, b.count <= 64 else { return nil }
        func digits(_ start: Int, _ count: Int) -> Int64? {
            var value: Int64 = 0
            for i in start..<(start + count) {
                let d = b[i] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                value = value * 10 + Int64(d)
            }
            return value
        }
        guard let year = digits(0, 4), b[4] == UInt8(ascii: "-"), let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
            let day = digits(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
            let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
            let second = digits(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60,
            second <= 60
        else { return nil }
        var i = 19
        var millis: Int64 = 0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < b.count, b[i] &- UInt8(ascii: "0") < 10 {
                if i - start < 3 { millis = millis * 10 + Int64(b[i] - UInt8(ascii: "0")) }
                i += 1
            }
            let count = i - start
            guard count >= 1 else { return nil }
            if count == 1 { millis *= 100 } else if count == 2 { millis *= 10 }
        }
        guard i < b.count else { return nil }
        var offsetMinutes: Int64 = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard i + 6 == b.count, let h = digits(i + 1, 2), b[i + 3] == UInt8(ascii: ":"), let m = digits(i + 4, 2),
                h < 24, m < 60
            else { return nil }
            offsetMinutes = (h * 60 + m) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offsetMinutes * 60
        return seconds * 1_000 + millis
    }

    /// Parses a timestamp given as text.
    public static func milliseconds(_ text: String) -> Int64? {
        var copy = text
        return copy.withUTF8 { milliseconds($0) }
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

extension JSONScanner {
    /// Reads a decimal written as a JSON number (Kraken v2 `price`, `qty`) or string, exactly from
    /// its text — never through Double. Exponent notation ("1e-8", "1.5E+3") is accepted and
    /// shifted into the scale, exactly.
    mutating func readExactNumber() throws(JSONError) -> ExactDecimal {
        skipWhitespace()
        let start = position
        if try peek() == UInt8(ascii: "\"") { return try readDecimal() }
        let range = try readNumber()
        let text = UnsafeBufferPointer(rebasing: bytes[range])
        var exponentAt: Int?
        for i in 0..<text.count where text[i] | 0x20 == UInt8(ascii: "e") {
            exponentAt = i
            break
        }
        do throws(DecimalError) {
            guard let e = exponentAt else { return try ExactDecimal(utf8: text) }
            return try ExactDecimal.shifting(
                UnsafeBufferPointer(rebasing: text[..<e]), exponent: UnsafeBufferPointer(rebasing: text[(e + 1)...]))
        } catch {
            throw JSONError(.badValue, "bad decimal: \(error.reason)", at: start)
        }
    }
}

extension ExactDecimal {
    /// `mantissa × 10^exponent` from their texts ("1.5", "-3"), exactly, as plain decimal text.
    static func shifting(_ mantissa: UnsafeBufferPointer<UInt8>, exponent: UnsafeBufferPointer<UInt8>) throws(DecimalError)
        -> ExactDecimal
    {
        var exp = 0
        var expNegative = false
        var i = 0
        if i < exponent.count, exponent[i] == UInt8(ascii: "+") || exponent[i] == UInt8(ascii: "-") {
            expNegative = exponent[i] == UInt8(ascii: "-")
            i += 1
        }
        guard i < exponent.count else { throw DecimalError(.exponent, "empty exponent") }
        while i < exponent.count {
            let d = exponent[i] &- UInt8(ascii: "0")
            guard d < 10 else { throw DecimalError(.exponent, "bad exponent") }
            exp = exp * 10 + Int(d)
            guard exp <= 2 * ExactDecimal.maximumParsedDigits else { throw DecimalError(.exponent, "exponent out of range") }
            i += 1
        }
        if expNegative { exp = -exp }
        var negative = false
        var digits: [UInt8] = []
        var pointAt: Int?
        for (index, byte) in mantissa.enumerated() {
            if index == 0 && byte == UInt8(ascii: "-") {
                negative = true
            } else if byte == UInt8(ascii: ".") {
                pointAt = digits.count
            } else {
                digits.append(byte)
            }
        }
        // Position of the decimal point within `digits`, after the shift.
        var point = (pointAt ?? digits.count) + exp
        if point <= 0 {
            digits.insert(contentsOf: [UInt8](repeating: UInt8(ascii: "0"), count: 1 - point), at: 0)
            point = 1
        }
        if point > digits.count {
            digits.append(contentsOf: [UInt8](repeating: UInt8(ascii: "0"), count: point - digits.count))
        }
        var text: [UInt8] = negative ? [UInt8(ascii: "-")] : []
        text.append(contentsOf: digits[..<point])
        if point < digits.count {
            text.append(UInt8(ascii: "."))
            text.append(contentsOf: digits[point...])
        }
        // Drop leading zeros of the integer part ("0012.5" → "12.5") so the text is canonical.
        let first = negative ? 1 : 0
        while first + 1 < text.count, text[first] == UInt8(ascii: "0"), text[first + 1] != UInt8(ascii: ".") {
            text.remove(at: first)
        }
        return try text.withUnsafeBufferPointer { buffer throws(DecimalError) in try ExactDecimal(utf8: buffer) }
    }
}

/// Milliseconds from a JSON number of seconds with a fraction ("1688669597.8277369", Kraken REST
/// trade time), read from its text: integer seconds × 1000 + the first three fraction digits
/// (truncated). Nil for negatives, exponents or more than 12 integer digits.
func millisecondsFromSecondsText(_ text: UnsafeBufferPointer<UInt8>) -> Int64? {
    var seconds: Int64 = 0
    var i = 0
    while i < text.count, text[i] &- UInt8(ascii: "0") < 10 {
        seconds = seconds * 10 + Int64(text[i] - UInt8(ascii: "0"))
        i += 1
        if i > 12 { return nil }
    }
    guard i > 0 else { return nil }
    var millis: Int64 = 0
    var fraction = 0
    if i < text.count {
        guard text[i] == UInt8(ascii: ".") else { return nil }
        i += 1
        while i < text.count {
            let d = text[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            if fraction < 3 { millis = millis * 10 + Int64(d) }
            fraction += 1
            i += 1
        }
        guard fraction > 0 else { return nil }
    }
    for _ in min(fraction, 3)..<3 { millis *= 10 }
    return seconds * 1_000 + millis
}
