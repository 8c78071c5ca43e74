/// Why a decimal could not be parsed or computed.
public struct DecimalError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong; new codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// The text was empty (or only a sign).
        public static let empty = Code(name: "empty")
        /// A byte that is not a digit, a leading sign or one decimal point.
        public static let invalidCharacter = Code(name: "invalidCharacter")
        /// Exponent notation ("1e5") is not accepted: exchanges print plain decimals.
        public static let exponent = Code(name: "exponent")
        /// A decimal point without digits on both sides ("1.", ".5", ".").
        public static let misplacedPoint = Code(name: "misplacedPoint")
        /// More significant digits or fractional digits than `ExactDecimal` accepts (38 each).
        public static let tooManyDigits = Code(name: "tooManyDigits")
        /// A result needs more than 256 bits of mantissa.
        public static let overflow = Code(name: "overflow")
        /// Division by zero.
        public static let divisionByZero = Code(name: "divisionByZero")
    }

    public var code: Code
    /// A short human-readable reason.
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}

/// An exact decimal number for prices, quantities and volumes — never binary floating point.
///
/// Value = ±mantissa × 10^-scale, the mantissa a 256-bit unsigned integer. Parsing accepts
/// plain decimal text only (`[+-]?digits(.digits)?`, at most 38 significant and 38 fractional
/// digits) and keeps the text exactly as printed: `description` of a parsed value is the
/// original text (scale, sign mark and leading zeros are kept, so no string is stored and the
/// type is trivially copyable, 40 bytes). `+`, `-` and `*` are exact (they trap, like `Int`, if a result would need
/// more than 256 bits). Sums of untrusted values can get there — a few dozen 38-digit quantities at
/// different scales — so code handling input from outside uses the throwing `adding(_:)`,
/// `subtracting(_:)` and `multiplied(by:)`, which report `.overflow` instead. Equality,
/// hashing and ordering are by numeric value: `"1.10" == "1.1"`.
public struct ExactDecimal: Sendable {
    @usableFromInline var magnitude: UInt256
    @usableFromInline var storedScale: Int32
    /// Number of fractional digits of the mantissa (≥ 0).
    @inlinable public var scale: Int32 { storedScale }
    @usableFromInline var negative: Bool
    /// How the parsed text differed from plain canonical printing, so `description` reproduces it
    /// without storing it: `signMark` 0 = natural, 1 = '+' prefix, 2 = "-" on a zero ("-0.0");
    /// `extraLeadingZeros` = zeros before the integer part ("007.5" → 2). Keeps the type trivial.
    @usableFromInline var signMark: UInt8
    @usableFromInline var extraLeadingZeros: UInt8

    /// Largest number of significant (and of fractional) digits accepted by the parser.
    public static let maximumParsedDigits = 38

    /// Largest number of significant digits of a sum Tape writes and reads back: a candle's
    /// volumes add up values of up to 38 digits, bounded by the 256-bit mantissa (2^256 has 78
    /// digits). See `init(utf8:allowingSignificantDigits:)`.
    public static let maximumSumDigits = 78

    @inlinable
    init(magnitude: UInt256, scale: Int32, negative: Bool) {
        self.magnitude = magnitude
        self.storedScale = scale
        self.negative = negative && !magnitude.isZero
        self.signMark = 0
        self.extraLeadingZeros = 0
    }

    public static let zero = ExactDecimal(magnitude: .zero, scale: 0, negative: false)

    /// `mantissa × 10^-scale`, e.g. `ExactDecimal(mantissa: 2161459, scale: 2)` is 21614.59.
    public init(mantissa: Int64, scale: Int = 0) {
        precondition(scale >= 0 && scale <= Int(Int32.max), "scale must be non-negative")
        self.init(magnitude: UInt256(mantissa.magnitude), scale: Int32(scale), negative: mantissa < 0)
    }

    /// An integer value.
    public init(_ value: Int) {
        self.init(mantissa: Int64(value), scale: 0)
    }

    /// Parses plain decimal text exactly ("21614.59", "-0.5", "100"); throws on anything else.
    public init(_ text: String) throws(DecimalError) {
        try self.init(text, allowingSignificantDigits: ExactDecimal.maximumParsedDigits)
    }

    /// `init(_:)` accepting up to `limit` significant digits (at most `maximumSumDigits`).
    public init(_ text: String, allowingSignificantDigits limit: Int) throws(DecimalError) {
        var copy = text
        let result = copy.withUTF8 { buffer in
            Result { () throws(DecimalError) -> ExactDecimal in try ExactDecimal(utf8: buffer, allowingSignificantDigits: limit) }
        }
        self = try result.get()
    }

    /// Parses like `init(utf8:)` but accepts up to `limit` significant digits (at most
    /// `maximumSumDigits`, and always what fits in 256 bits); fractional digits stay at most 38.
    /// For reading values Tape computed as sums (candle volumes), which may outgrow 38 digits.
    public init(utf8 bytes: UnsafeBufferPointer<UInt8>, allowingSignificantDigits limit: Int) throws(DecimalError) {
        if limit <= ExactDecimal.maximumParsedDigits {
            try self.init(utf8: bytes)
        } else {
            try self.init(parsingGeneral: bytes, maximumSignificantDigits: min(limit, ExactDecimal.maximumSumDigits))
        }
    }

    /// Parses plain decimal text from UTF-8 bytes, allocation-free: `[+-]?digits(.digits)?`.
    @inlinable
    public init(utf8 bytes: UnsafeBufferPointer<UInt8>) throws(DecimalError) {
        let count = bytes.count
        // Fast path: optional '-', at most 19 significant digits, at most one '.', canonical text.
        if count > 0 && count <= 40 {
            var index = 0
            let negative = bytes[0] == UInt8(ascii: "-")
            if negative { index = 1 }
            let digitsStart = index
            var accumulator: UInt64 = 0
            var significant = 0
            var pointAt = -1
            var ok = index < count
            while index < count {
                let byte = bytes[index]
                let digit = byte &- UInt8(ascii: "0")
                if digit < 10 {
                    if accumulator != 0 || digit != 0 { significant += 1 }
                    accumulator = accumulator &* 10 &+ UInt64(digit)
                } else if byte == UInt8(ascii: ".") && pointAt < 0 {
                    pointAt = index
                } else {
                    ok = false
                    break
                }
                index += 1
            }
            if ok {
                let integerDigits = (pointAt < 0 ? count : pointAt) - digitsStart
                let fractionDigits = pointAt < 0 ? 0 : count - pointAt - 1
                let canonical =
                    significant <= 19 && fractionDigits <= ExactDecimal.maximumParsedDigits && integerDigits >= 1
                    && (pointAt < 0 || fractionDigits >= 1)
                    && (integerDigits == 1 || bytes[digitsStart] != UInt8(ascii: "0"))
                    && !(negative && accumulator == 0)
                if canonical {
                    self.init(magnitude: UInt256(accumulator), scale: Int32(fractionDigits), negative: negative)
                    return
                }
            }
        }
        try self.init(parsingGeneral: bytes)
    }

    /// The complete parser: any accepted form, precise errors.
    @usableFromInline
    init(parsingGeneral bytes: UnsafeBufferPointer<UInt8>, maximumSignificantDigits: Int = ExactDecimal.maximumParsedDigits)
        throws(DecimalError)
    {
        let count = bytes.count
        guard count > 0 else { throw DecimalError(.empty, "empty decimal") }
        var index = 0
        var negative = false
        var signMark: UInt8 = 0
        let first = bytes[0]
        if first == UInt8(ascii: "-") {
            negative = true
            index = 1
        } else if first == UInt8(ascii: "+") {
            signMark = 1
            index = 1
        }
        guard index < count else { throw DecimalError(.empty, "sign without digits") }
        if count > 120 { throw DecimalError(.tooManyDigits, "decimal text longer than 120 bytes") }

        var magnitude = UInt256.zero
        var accumulator: UInt64 = 0
        var accumulatedDigits = 0
        var significantDigits = 0
        var integerDigits = 0
        var leadingZeros = 0
        var fractionDigits = 0
        var seenPoint = false

        while index < count {
            let byte = bytes[index]
            let digit = byte &- UInt8(ascii: "0")
            if digit < 10 {
                if seenPoint {
                    fractionDigits += 1
                } else {
                    if digit == 0 && leadingZeros == integerDigits { leadingZeros += 1 }
                    integerDigits += 1
                }
                if significantDigits > 0 || digit != 0 {
                    significantDigits += 1
                }
                accumulator = accumulator &* 10 &+ UInt64(digit)
                accumulatedDigits += 1
                if accumulatedDigits == 19 {
                    // flush: magnitude = magnitude * 10^19 + accumulator
                    guard let shifted = magnitude.multipliedByPowerOfTen(19) else {
                        throw DecimalError(.tooManyDigits, "too many digits")
                    }
                    let (sum, overflow) = shifted.addingReportingOverflow(UInt256(accumulator))
                    if overflow { throw DecimalError(.tooManyDigits, "more digits than 256 bits hold") }
                    magnitude = sum
                    accumulator = 0
                    accumulatedDigits = 0
                }
            } else if byte == UInt8(ascii: ".") {
                if seenPoint { throw DecimalError(.invalidCharacter, "second decimal point") }
                if integerDigits == 0 { throw DecimalError(.misplacedPoint, "no digits before the decimal point") }
                seenPoint = true
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                throw DecimalError(.exponent, "exponent notation is not accepted")
            } else {
                throw DecimalError(.invalidCharacter, "unexpected byte \(byte) at \(index)")
            }
            index += 1
        }
        if integerDigits == 0 { throw DecimalError(.empty, "no digits") }
        if seenPoint && fractionDigits == 0 { throw DecimalError(.misplacedPoint, "no digits after the decimal point") }
        if significantDigits > maximumSignificantDigits || fractionDigits > ExactDecimal.maximumParsedDigits {
            throw DecimalError(.tooManyDigits, "more than \(ExactDecimal.maximumParsedDigits) digits")
        }
        if accumulatedDigits > 0 {
            if magnitude.isZero {
                magnitude = UInt256(accumulator)
            } else {
                guard let shifted = magnitude.multipliedByPowerOfTen(accumulatedDigits) else {
                    throw DecimalError(.tooManyDigits, "too many digits")
                }
                let (sum, overflow) = shifted.addingReportingOverflow(UInt256(accumulator))
                if overflow { throw DecimalError(.tooManyDigits, "more digits than 256 bits hold") }
                magnitude = sum
            }
        }
        self.init(magnitude: magnitude, scale: Int32(fractionDigits), negative: negative)
        if negative && magnitude.isZero { signMark = 2 }
        self.signMark = signMark
        // Zeros printed before the canonical integer part (which keeps at least one digit).
        self.extraLeadingZeros = UInt8(min(leadingZeros, integerDigits - 1))
    }

    /// True for a value below zero.
    public var isNegative: Bool { negative }
    /// True for zero (of any scale).
    public var isZero: Bool { magnitude.isZero }

    /// The signed mantissa (the value × 10^`scale`) when it fits in an `Int128` (every parsed value does: at most 38
    /// digits), else nil: the 128-bit fast form of running sums (candle volumes) starts from it.
    @inlinable
    public var int128Mantissa: Int128? {
        guard (magnitude.l2 | magnitude.l3) == 0 else { return nil }
        let m = UInt128(magnitude.l1) << 64 | UInt128(magnitude.l0)
        if negative { return m <= UInt128(1) << 127 ? Int128(truncatingIfNeeded: 0 &- m) : nil }
        return m <= UInt128(Int128.max) ? Int128(m) : nil
    }

    /// `mantissa × 10^-scale` for a 128-bit mantissa (`scale` ≥ 0).
    public init(int128Mantissa mantissa: Int128, scale: Int) {
        precondition(scale >= 0 && scale <= Int(Int32.max), "scale must be non-negative")
        let m = mantissa.magnitude
        self.init(
            magnitude: UInt256(l0: UInt64(truncatingIfNeeded: m), l1: UInt64(truncatingIfNeeded: m >> 64), l2: 0, l3: 0),
            scale: Int32(scale), negative: mantissa < 0)
    }

    /// The same value without trailing fractional zeros ("2.50" → "2.5", "3.000" → "3").
    public func normalized() -> ExactDecimal {
        var m = magnitude
        var s = scale
        if m.isZero { return ExactDecimal(magnitude: .zero, scale: 0, negative: false) }
        while s > 0 {
            let (q, r) = m.quotientAndRemainder(dividingBy: 10)
            if r != 0 { break }
            m = q
            s -= 1
        }
        return ExactDecimal(magnitude: m, scale: s, negative: negative)
    }

    /// This value at `newScale` fractional digits, or nil if that would lose digits or overflow.
    public func rescaled(to newScale: Int) -> ExactDecimal? {
        if newScale == Int(scale) { return ExactDecimal(magnitude: magnitude, scale: scale, negative: negative) }
        if newScale > Int(scale) {
            guard newScale <= Int(Int32.max), let m = magnitude.multipliedByPowerOfTen(newScale - Int(scale)) else { return nil }
            return ExactDecimal(magnitude: m, scale: Int32(newScale), negative: negative)
        }
        let n = normalized()
        if Int(n.scale) > newScale || newScale < 0 { return nil }
        return n.rescaled(to: newScale)
    }
}

// MARK: - Text

extension ExactDecimal: CustomStringConvertible {
    /// The original text for a parsed value (reproduced exactly, not stored); otherwise plain
    /// notation with `scale` fractional digits.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendPlainText(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Value-only canonical text: no trailing fractional zeros, no '+', no leading zeros, "0" for zero.
    /// `"1.10"` and `"1.1"` have the same canonical string.
    public var canonicalString: String { normalized().description }

    /// Appends `description`'s UTF-8 bytes (no allocation on the common path).
    @inlinable
    public func appendText(to bytes: inout [UInt8]) {
        appendPlainText(to: &bytes)
    }

    @inlinable
    func appendPlainText(to bytes: inout [UInt8]) {
        if negative || signMark == 2 {
            bytes.append(UInt8(ascii: "-"))
        } else if signMark == 1 {
            bytes.append(UInt8(ascii: "+"))
        }
        for _ in 0..<extraLeadingZeros { bytes.append(UInt8(ascii: "0")) }
        let scale = Int(self.scale)
        if magnitude.isSmall {
            // Up to 20 digits, written right to left in a stack tuple.
            var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)
            let digitCount: Int = withUnsafeMutableBytes(of: &buffer) { raw in
                var value = magnitude.l0
                var position = 24
                repeat {
                    position -= 1
                    raw[position] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value % 10)
                    value /= 10
                } while value > 0
                let digits = 24 - position
                Self.appendDigits(UnsafeRawBufferPointer(rebasing: raw[position..<24]), scale: scale, to: &bytes)
                return digits
            }
            _ = digitCount
        } else {
            let digits = magnitude.decimalDigits()
            digits.withUnsafeBytes { Self.appendDigits($0, scale: scale, to: &bytes) }
        }
    }

    /// Writes `digits` with a decimal point `scale` places from the right, zero-padded.
    @inlinable
    static func appendDigits(_ digits: UnsafeRawBufferPointer, scale: Int, to bytes: inout [UInt8]) {
        let count = digits.count
        if scale == 0 {
            bytes.append(contentsOf: digits)
            return
        }
        if count > scale {
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: digits[0..<(count - scale)]))
            bytes.append(UInt8(ascii: "."))
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: digits[(count - scale)...]))
        } else {
            bytes.append(UInt8(ascii: "0"))
            bytes.append(UInt8(ascii: "."))
            for _ in 0..<(scale - count) { bytes.append(UInt8(ascii: "0")) }
            bytes.append(contentsOf: digits)
        }
    }
}
