// ExactDecimal: ordering, hashing and exact arithmetic (the value and its text are in ExactDecimal.swift).

// MARK: - Comparison

extension ExactDecimal: Comparable, Hashable {
    /// Compares magnitudes of two values at possibly different scales: -1, 0, 1.
    @usableFromInline
    static func compareMagnitudes(_ a: ExactDecimal, _ b: ExactDecimal) -> Int {
        if a.scale == b.scale { return UInt256.compare(a.magnitude, b.magnitude) }
        if a.scale < b.scale {
            guard let scaled = a.magnitude.multipliedByPowerOfTen(Int(b.scale - a.scale)) else { return 1 }
            return UInt256.compare(scaled, b.magnitude)
        } else {
            guard let scaled = b.magnitude.multipliedByPowerOfTen(Int(a.scale - b.scale)) else { return -1 }
            return UInt256.compare(a.magnitude, scaled)
        }
    }

    @inlinable
    static func compare(_ a: ExactDecimal, _ b: ExactDecimal) -> Int {
        if a.negative != b.negative { return a.negative ? -1 : 1 }
        let m: Int
        if let (x, y, _) = alignedSmallMantissas(a, b) {
            m = x == y ? 0 : (x < y ? -1 : 1)
        } else {
            m = compareMagnitudes(a, b)
        }
        return a.negative ? -m : m
    }

    /// 10^n for n in 0...19 (fits in 64 bits).
    @inlinable @inline(__always)
    static func powerOfTen64(_ n: Int32) -> UInt64 {
        var p: UInt64 = 1
        var k = n
        while k > 0 {
            p &*= 10
            k -= 1
        }
        return p
    }

    /// The fast path of sums and comparisons: both mantissas in one 64-bit limb and still within
    /// 64 bits at the common scale (the larger of the two), or nil (use the 256-bit path).
    @inlinable @inline(__always)
    static func alignedSmallMantissas(_ a: ExactDecimal, _ b: ExactDecimal) -> (UInt64, UInt64, Int32)? {
        guard a.magnitude.isSmall && b.magnitude.isSmall else { return nil }
        let sa = a.storedScale
        let sb = b.storedScale
        if sa == sb { return (a.magnitude.l0, b.magnitude.l0, sa) }
        if sa < sb {
            guard sb - sa <= 19 else { return nil }
            let (x, overflow) = a.magnitude.l0.multipliedReportingOverflow(by: powerOfTen64(sb - sa))
            return overflow ? nil : (x, b.magnitude.l0, sb)
        }
        guard sa - sb <= 19 else { return nil }
        let (y, overflow) = b.magnitude.l0.multipliedReportingOverflow(by: powerOfTen64(sa - sb))
        return overflow ? nil : (a.magnitude.l0, y, sa)
    }

    @inlinable
    public static func == (a: ExactDecimal, b: ExactDecimal) -> Bool { compare(a, b) == 0 }

    @inlinable
    public static func < (a: ExactDecimal, b: ExactDecimal) -> Bool { compare(a, b) < 0 }

    public func hash(into hasher: inout Hasher) {
        let n = normalized()
        hasher.combine(n.magnitude)
        hasher.combine(n.scale)
        hasher.combine(n.negative)
    }

    /// True when both values print the same text (stricter than `==`: "1.10" is not "1.1").
    public func isIdentical(to other: ExactDecimal) -> Bool { description == other.description }
}

// MARK: - Arithmetic

extension ExactDecimal {
    /// Exact sum; throws `.overflow` instead of trapping. Same fast path as `+`.
    @inlinable
    public func adding(_ other: ExactDecimal) throws(DecimalError) -> ExactDecimal {
        // Fast path (the candle sums): same sign, both within 64 bits at the common scale.
        if negative == other.negative, let (x, y, scale) = ExactDecimal.alignedSmallMantissas(self, other) {
            let (sum, overflow) = x.addingReportingOverflow(y)
            if !overflow { return ExactDecimal(magnitude: UInt256(sum), scale: scale, negative: negative) }
        }
        return try slowAdding(other)
    }

    /// Exact difference; throws `.overflow` instead of trapping.
    @inlinable
    public func subtracting(_ other: ExactDecimal) throws(DecimalError) -> ExactDecimal {
        try adding(-other)
    }

    @usableFromInline
    func slowAdding(_ other: ExactDecimal) throws(DecimalError) -> ExactDecimal {
        let scale = max(self.scale, other.scale)
        guard let a = magnitude.multipliedByPowerOfTen(Int(scale - self.scale)),
            let b = other.magnitude.multipliedByPowerOfTen(Int(scale - other.scale))
        else { throw DecimalError(.overflow, "sum needs more than 256 bits") }
        if negative == other.negative {
            let (sum, overflow) = a.addingReportingOverflow(b)
            if overflow { throw DecimalError(.overflow, "sum needs more than 256 bits") }
            return ExactDecimal(magnitude: sum, scale: scale, negative: negative)
        }
        if UInt256.compare(a, b) >= 0 {
            return ExactDecimal(magnitude: a.subtracting(b), scale: scale, negative: negative)
        } else {
            return ExactDecimal(magnitude: b.subtracting(a), scale: scale, negative: other.negative)
        }
    }

    /// Exact product (scale = sum of scales); throws `.overflow` instead of trapping.
    @inlinable
    public func multiplied(by other: ExactDecimal) throws(DecimalError) -> ExactDecimal {
        let (product, overflow) = magnitude.multipliedReportingOverflow(by: other.magnitude)
        let (productScale, scaleOverflow) = scale.addingReportingOverflow(other.scale)
        if overflow || scaleOverflow { throw DecimalError(.overflow, "product needs more than 256 bits") }
        return ExactDecimal(magnitude: product, scale: productScale, negative: negative != other.negative)
    }

    /// The value with the opposite sign.
    public static prefix func - (value: ExactDecimal) -> ExactDecimal {
        ExactDecimal(magnitude: value.magnitude, scale: value.scale, negative: !value.negative)
    }

    /// Exact sum; traps on overflow beyond 256 bits (like `Int`).
    @inlinable
    public static func + (a: ExactDecimal, b: ExactDecimal) -> ExactDecimal {
        do { return try a.adding(b) } catch { preconditionFailure("ExactDecimal overflow: \(a) + \(b)") }
    }

    /// Exact difference; traps on overflow beyond 256 bits.
    public static func - (a: ExactDecimal, b: ExactDecimal) -> ExactDecimal { a + (-b) }

    /// Exact product; traps on overflow beyond 256 bits.
    @inlinable
    public static func * (a: ExactDecimal, b: ExactDecimal) -> ExactDecimal {
        do { return try a.multiplied(by: b) } catch { preconditionFailure("ExactDecimal overflow: \(a) * \(b)") }
    }

    @inlinable
    public static func += (a: inout ExactDecimal, b: ExactDecimal) { a = a + b }

    /// `self / divisor` rounded to `scale` fractional digits, **round half to even** (banker's
    /// rounding): 0.125 → 0.12, 0.135 → 0.14 at scale 2. The only division `ExactDecimal` offers;
    /// VWAP = quoteVolume.divided(by: volume, scale: 10). The result has exactly `scale`
    /// fractional digits (call `normalized()` to drop trailing zeros).
    public func divided(by divisor: ExactDecimal, scale: Int = 10) throws(DecimalError) -> ExactDecimal {
        precondition(scale >= 0 && scale <= 76, "scale must be 0...76")
        if divisor.isZero { throw DecimalError(.divisionByZero, "division by zero") }
        // q = a·10^-sa / (b·10^-sb) · 10^scale = a·10^(scale + sb - sa) / b
        let exponent = scale + Int(divisor.scale) - Int(self.scale)
        var numerator = magnitude
        var denominator = divisor.magnitude
        if exponent >= 0 {
            guard let n = numerator.multipliedByPowerOfTen(exponent) else {
                // a·10^e does not fit (a wide quote volume over a volume at a larger scale): the
                // same quotient digit by digit, the remainder staying below the divisor.
                return try longDivision(by: divisor, exponent: exponent, scale: scale)
            }
            numerator = n
        } else {
            guard let d = denominator.multipliedByPowerOfTen(-exponent) else {
                // denominator exceeds 2^256 > numerator: the quotient rounds to zero
                return ExactDecimal(magnitude: .zero, scale: Int32(scale), negative: false)
            }
            denominator = d
        }
        var (quotient, remainder) = numerator.quotientAndRemainder(dividingBy: denominator)
        // Round half to even: compare remainder with denominator - remainder (no overflow).
        let rest = denominator.subtracting(remainder)
        let c = UInt256.compare(remainder, rest)
        if c > 0 || (c == 0 && quotient.l0 & 1 == 1) {
            let (q, overflow) = quotient.addingReportingOverflow(UInt256(1))
            if overflow { throw DecimalError(.overflow, "quotient needs more than 256 bits") }
            quotient = q
        }
        return ExactDecimal(magnitude: quotient, scale: Int32(scale), negative: negative != divisor.negative)
    }

    /// `divided(by:scale:)` when `magnitude × 10^exponent` needs more than 256 bits: the integer
    /// quotient first, then one decimal digit per step from the remainder (always below the
    /// divisor), then the same half-even rounding. Throws `.overflow` only when the quotient itself
    /// (or a remainder × 10, for divisors above 2^252) does not fit.
    func longDivision(by divisor: ExactDecimal, exponent: Int, scale: Int) throws(DecimalError) -> ExactDecimal {
        let overflow = DecimalError(.overflow, "quotient needs more than 256 bits")
        let denominator = divisor.magnitude
        var (quotient, remainder) = magnitude.quotientAndRemainder(dividingBy: denominator)
        for _ in 0..<exponent {
            guard let q10 = quotient.multipliedByPowerOfTen(1), let r10 = remainder.multipliedByPowerOfTen(1) else { throw overflow }
            let (digit, rest) = r10.quotientAndRemainder(dividingBy: denominator)
            let (q, carry) = q10.addingReportingOverflow(digit)
            if carry { throw overflow }
            quotient = q
            remainder = rest
        }
        let c = UInt256.compare(remainder, denominator.subtracting(remainder))
        if c > 0 || (c == 0 && quotient.l0 & 1 == 1) {
            let (q, carry) = quotient.addingReportingOverflow(UInt256(1))
            if carry { throw overflow }
            quotient = q
        }
        return ExactDecimal(magnitude: quotient, scale: Int32(scale), negative: negative != divisor.negative)
    }
}
