/// A fixed-width 256-bit unsigned integer: the mantissa store of `ExactDecimal`.
///
/// Four little-endian 64-bit limbs, no heap, trivially copyable. Only the operations
/// exact decimal arithmetic needs are provided; each reports overflow instead of wrapping.
@usableFromInline
struct UInt256: Sendable, Hashable {
    @usableFromInline var l0: UInt64
    @usableFromInline var l1: UInt64
    @usableFromInline var l2: UInt64
    @usableFromInline var l3: UInt64

    @inlinable
    init(l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64) {
        self.l0 = l0
        self.l1 = l1
        self.l2 = l2
        self.l3 = l3
    }

    @inlinable
    init(_ value: UInt64) {
        self.init(l0: value, l1: 0, l2: 0, l3: 0)
    }

    @usableFromInline static let zero = UInt256(0)

    @inlinable var isZero: Bool { (l0 | l1 | l2 | l3) == 0 }

    /// True when the value fits in the low limb.
    @inlinable var isSmall: Bool { (l1 | l2 | l3) == 0 }

    @inlinable
    subscript(limb index: Int) -> UInt64 {
        get {
            switch index {
            case 0: return l0
            case 1: return l1
            case 2: return l2
            default: return l3
            }
        }
        set {
            switch index {
            case 0: l0 = newValue
            case 1: l1 = newValue
            case 2: l2 = newValue
            default: l3 = newValue
            }
        }
    }

    /// -1, 0 or 1.
    @inlinable
    static func compare(_ a: UInt256, _ b: UInt256) -> Int {
        if a.l3 != b.l3 { return a.l3 < b.l3 ? -1 : 1 }
        if a.l2 != b.l2 { return a.l2 < b.l2 ? -1 : 1 }
        if a.l1 != b.l1 { return a.l1 < b.l1 ? -1 : 1 }
        if a.l0 != b.l0 { return a.l0 < b.l0 ? -1 : 1 }
        return 0
    }

    @inlinable
    func addingReportingOverflow(_ other: UInt256) -> (partialValue: UInt256, overflow: Bool) {
        var result = UInt256.zero
        var carry: UInt64 = 0
        for i in 0..<4 {
            let (s1, o1) = self[limb: i].addingReportingOverflow(other[limb: i])
            let (s2, o2) = s1.addingReportingOverflow(carry)
            result[limb: i] = s2
            carry = (o1 || o2) ? 1 : 0
        }
        return (result, carry != 0)
    }

    /// `self - other`; requires `self >= other`.
    @inlinable
    func subtracting(_ other: UInt256) -> UInt256 {
        var result = UInt256.zero
        var borrow: UInt64 = 0
        for i in 0..<4 {
            let (d1, o1) = self[limb: i].subtractingReportingOverflow(other[limb: i])
            let (d2, o2) = d1.subtractingReportingOverflow(borrow)
            result[limb: i] = d2
            borrow = (o1 || o2) ? 1 : 0
        }
        precondition(borrow == 0, "UInt256 subtraction underflow")
        return result
    }

    @inlinable
    func multipliedReportingOverflow(by factor: UInt64) -> (partialValue: UInt256, overflow: Bool) {
        if isSmall {
            let (high, low) = l0.multipliedFullWidth(by: factor)
            return (UInt256(l0: low, l1: high, l2: 0, l3: 0), false)
        }
        var result = UInt256.zero
        var carry: UInt64 = 0
        for i in 0..<4 {
            let (high, low) = self[limb: i].multipliedFullWidth(by: factor)
            let (sum, o) = low.addingReportingOverflow(carry)
            result[limb: i] = sum
            carry = high &+ (o ? 1 : 0)  // high <= 2^64 - 2, cannot wrap
        }
        return (result, carry != 0)
    }

    @inlinable
    func multipliedReportingOverflow(by other: UInt256) -> (partialValue: UInt256, overflow: Bool) {
        if other.isSmall { return multipliedReportingOverflow(by: other.l0) }
        if isSmall { return other.multipliedReportingOverflow(by: l0) }
        var product: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        var overflow = false
        withUnsafeMutableBytes(of: &product) { raw in
            let p = raw.bindMemory(to: UInt64.self)
            for i in 0..<4 {
                let a = self[limb: i]
                if a == 0 { continue }
                var carry: UInt64 = 0
                for j in 0..<4 {
                    let (high, low) = a.multipliedFullWidth(by: other[limb: j])
                    let (s1, o1) = low.addingReportingOverflow(p[i + j])
                    let (s2, o2) = s1.addingReportingOverflow(carry)
                    p[i + j] = s2
                    carry = high &+ (o1 ? 1 : 0) &+ (o2 ? 1 : 0)
                }
                p[i + 4] = carry
            }
            overflow = (p[4] | p[5] | p[6] | p[7]) != 0
        }
        return (UInt256(l0: product.0, l1: product.1, l2: product.2, l3: product.3), overflow)
    }

    /// Quotient and remainder of a division by a non-zero 64-bit divisor.
    @inlinable
    func quotientAndRemainder(dividingBy divisor: UInt64) -> (quotient: UInt256, remainder: UInt64) {
        precondition(divisor != 0, "division by zero")
        if isSmall { return (UInt256(l0 / divisor), l0 % divisor) }
        var quotient = UInt256.zero
        var remainder: UInt64 = 0
        var i = 3
        while i >= 0 {
            let (q, r) = divisor.dividingFullWidth((high: remainder, low: self[limb: i]))
            quotient[limb: i] = q
            remainder = r
            i -= 1
        }
        return (quotient, remainder)
    }

    @inlinable var leadingZeroBitCount: Int {
        if l3 != 0 { return l3.leadingZeroBitCount }
        if l2 != 0 { return 64 + l2.leadingZeroBitCount }
        if l1 != 0 { return 128 + l1.leadingZeroBitCount }
        return 192 + l0.leadingZeroBitCount
    }

    @inlinable
    func bit(_ index: Int) -> Bool {
        (self[limb: index >> 6] >> UInt64(index & 63)) & 1 == 1
    }

    /// `self << 1`, dropping the top bit.
    @inlinable
    func shiftedLeftOne() -> UInt256 {
        UInt256(l0: l0 << 1, l1: (l1 << 1) | (l0 >> 63), l2: (l2 << 1) | (l1 >> 63), l3: (l3 << 1) | (l2 >> 63))
    }

    /// Quotient and remainder of a division by a non-zero divisor (binary long division when wide).
    func quotientAndRemainder(dividingBy divisor: UInt256) -> (quotient: UInt256, remainder: UInt256) {
        precondition(!divisor.isZero, "division by zero")
        if divisor.isSmall {
            let (q, r) = quotientAndRemainder(dividingBy: divisor.l0)
            return (q, UInt256(r))
        }
        if UInt256.compare(self, divisor) < 0 { return (.zero, self) }
        var quotient = UInt256.zero
        var remainder = UInt256.zero
        let topBit = 255 - leadingZeroBitCount
        var i = topBit
        while i >= 0 {
            // remainder < divisor < 2^256 here; if its top bit is set the shift overflows and the
            // true value is >= 2^256 > divisor, so subtraction is due (and wraps back correctly).
            let carriedOut = remainder.l3 >> 63 == 1
            remainder = remainder.shiftedLeftOne()
            if bit(i) { remainder.l0 |= 1 }
            if carriedOut || UInt256.compare(remainder, divisor) >= 0 {
                remainder = remainder.wrappingSubtract(divisor)
                quotient[limb: i >> 6] |= 1 << UInt64(i & 63)
            }
            i -= 1
        }
        return (quotient, remainder)
    }

    @inlinable
    func wrappingSubtract(_ other: UInt256) -> UInt256 {
        var result = UInt256.zero
        var borrow: UInt64 = 0
        for i in 0..<4 {
            let (d1, o1) = self[limb: i].subtractingReportingOverflow(other[limb: i])
            let (d2, o2) = d1.subtractingReportingOverflow(borrow)
            result[limb: i] = d2
            borrow = (o1 || o2) ? 1 : 0
        }
        return result
    }

    /// `self * 10^exponent`, or nil on overflow.
    @inlinable
    func multipliedByPowerOfTen(_ exponent: Int) -> UInt256? {
        precondition(exponent >= 0)
        if isZero { return self }
        var value = self
        var remaining = exponent
        while remaining > 0 {
            let step = min(remaining, 19)
            let (next, overflow) = value.multipliedReportingOverflow(by: powersOfTen64[step])
            if overflow { return nil }
            value = next
            remaining -= step
        }
        return value
    }

    /// Decimal digits, most significant first; "0" for zero.
    @usableFromInline
    func decimalDigits() -> [UInt8] {
        if isSmall { return UInt256.decimalDigits(of: l0) }
        var chunks: [UInt64] = []
        var value = self
        while !value.isZero {
            let (q, r) = value.quotientAndRemainder(dividingBy: powersOfTen64[19])
            chunks.append(r)
            value = q
        }
        var digits = UInt256.decimalDigits(of: chunks.removeLast())
        for chunk in chunks.reversed() {
            let part = UInt256.decimalDigits(of: chunk)
            digits.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: 19 - part.count))
            digits.append(contentsOf: part)
        }
        return digits
    }

    static func decimalDigits(of value: UInt64) -> [UInt8] {
        if value == 0 { return [UInt8(ascii: "0")] }
        var digits: [UInt8] = []
        digits.reserveCapacity(20)
        var v = value
        while v > 0 {
            digits.append(UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        }
        digits.reverse()
        return digits
    }
}

/// 10^0 ... 10^19.
@usableFromInline
let powersOfTen64: [UInt64] = {
    var table: [UInt64] = [1]
    for _ in 1...19 { table.append(table.last! * 10) }
    return table
}()
