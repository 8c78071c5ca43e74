import MarketData
import TapeTestSupport
import Testing

/// Random values up to 38 digits checked against a digit-array reference written independently
/// (schoolbook base-10 arithmetic on strings), so the 256-bit paths are exercised, not only UInt64.
@Suite struct ExactDecimalPropertyTests {
    /// A random canonical decimal text: sign, 1...38 significant digits, scale 0...min(digits+3, 38).
    static func randomText(_ r: inout SplitMix64, maxDigits: Int = 38) -> String {
        let digits = 1 + r.below(maxDigits)
        var body = String(1 + r.below(9))
        for _ in 1..<digits { body += String(r.below(10)) }
        let scale = r.below(min(digits + 3, 38) + 1)
        var text: String
        if scale == 0 {
            text = body
        } else if scale >= body.count {
            text = "0." + String(repeating: "0", count: scale - body.count) + body
        } else {
            text = String(body.dropLast(scale)) + "." + String(body.suffix(scale))
        }
        if r.below(4) == 0 { text = "-" + text }
        return text
    }

    // MARK: reference arithmetic on (negative, digits, scale)

    struct Ref {
        var negative: Bool
        var digits: [Int]  // most significant first, no leading zeros except [0]
        var scale: Int
    }

    static func ref(_ text: String) -> Ref {
        var t = Substring(text)
        let negative = t.first == "-"
        if negative { t = t.dropFirst() }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        let scale = parts.count == 2 ? parts[1].count : 0
        let all = parts.joined().map { Int(String($0))! }
        return Ref(negative: negative, digits: strip(all), scale: scale)
    }

    static func strip(_ d: [Int]) -> [Int] {
        var d = d
        while d.count > 1 && d[0] == 0 { d.removeFirst() }
        return d.isEmpty ? [0] : d
    }

    static func mulDigits(_ a: [Int], _ b: [Int]) -> [Int] {
        var out = [Int](repeating: 0, count: a.count + b.count)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                out[i + j + 1] += a[i] * b[j]
            }
        }
        for k in stride(from: out.count - 1, to: 0, by: -1) {
            out[k - 1] += out[k] / 10
            out[k] %= 10
        }
        return strip(out)
    }

    static func shifted(_ d: [Int], by n: Int) -> [Int] { strip(d + [Int](repeating: 0, count: n)) }

    static func compareDigits(_ a: [Int], _ b: [Int]) -> Int {
        if a.count != b.count { return a.count < b.count ? -1 : 1 }
        for (x, y) in zip(a, b) where x != y { return x < y ? -1 : 1 }
        return 0
    }

    static func addDigits(_ a: [Int], _ b: [Int]) -> [Int] {
        let n = max(a.count, b.count) + 1
        let x = [Int](repeating: 0, count: n - a.count) + a
        let y = [Int](repeating: 0, count: n - b.count) + b
        var out = [Int](repeating: 0, count: n)
        var carry = 0
        for k in stride(from: n - 1, through: 0, by: -1) {
            let s = x[k] + y[k] + carry
            out[k] = s % 10
            carry = s / 10
        }
        return strip(out)
    }

    /// a - b for a >= b.
    static func subDigits(_ a: [Int], _ b: [Int]) -> [Int] {
        let y = [Int](repeating: 0, count: a.count - b.count) + b
        var out = a
        var borrow = 0
        for k in stride(from: a.count - 1, through: 0, by: -1) {
            var d = a[k] - y[k] - borrow
            borrow = d < 0 ? 1 : 0
            if d < 0 { d += 10 }
            out[k] = d
        }
        return strip(out)
    }

    static func text(_ r: Ref) -> String {
        var digits = r.digits.map(String.init).joined()
        if r.scale > 0 {
            if digits.count <= r.scale { digits = String(repeating: "0", count: r.scale - digits.count + 1) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -r.scale))
        }
        let zero = r.digits == [0]
        return (r.negative && !zero ? "-" : "") + digits
    }

    static func refMul(_ a: Ref, _ b: Ref) -> Ref {
        Ref(negative: a.negative != b.negative, digits: mulDigits(a.digits, b.digits), scale: a.scale + b.scale)
    }

    static func refAdd(_ a: Ref, _ b: Ref) -> Ref {
        let scale = max(a.scale, b.scale)
        let x = shifted(a.digits, by: scale - a.scale)
        let y = shifted(b.digits, by: scale - b.scale)
        if a.negative == b.negative { return Ref(negative: a.negative, digits: addDigits(x, y), scale: scale) }
        if compareDigits(x, y) >= 0 { return Ref(negative: a.negative, digits: subDigits(x, y), scale: scale) }
        return Ref(negative: b.negative, digits: subDigits(y, x), scale: scale)
    }

    static func refCompare(_ a: Ref, _ b: Ref) -> Int {
        let d = refAdd(a, Ref(negative: !b.negative, digits: b.digits, scale: b.scale))
        if d.digits == [0] { return 0 }
        return d.negative ? -1 : 1
    }

    @Test func productsSumsAndOrderMatchTheReference() throws {
        var r = SplitMix64(seed: 2_022_0821)
        for _ in 0..<3_000 {
            let ta = ExactDecimalPropertyTests.randomText(&r)
            let tb = ExactDecimalPropertyTests.randomText(&r)
            let a = try ExactDecimal(ta)
            let b = try ExactDecimal(tb)
            #expect(a.description == ta)
            let ra = ExactDecimalPropertyTests.ref(ta)
            let rb = ExactDecimalPropertyTests.ref(tb)
            #expect((a * b).description == ExactDecimalPropertyTests.text(ExactDecimalPropertyTests.refMul(ra, rb)), "\(ta) * \(tb)")
            #expect((a + b).description == ExactDecimalPropertyTests.text(ExactDecimalPropertyTests.refAdd(ra, rb)), "\(ta) + \(tb)")
            let c = ExactDecimalPropertyTests.refCompare(ra, rb)
            #expect((a < b) == (c < 0), "\(ta) < \(tb)")
            #expect((a == b) == (c == 0), "\(ta) == \(tb)")
            #expect(a + b - b == a)
        }
    }

    /// Values of up to 21 digits: the 64-bit fast path of `+` and comparison, its scale
    /// alignment and its overflow fallbacks (sums and aligned mantissas just past 2^64).
    @Test func smallSumsAndOrderMatchTheReference() throws {
        var r = SplitMix64(seed: 64)
        for _ in 0..<5_000 {
            let ta = ExactDecimalPropertyTests.randomText(&r, maxDigits: 21)
            let tb = ExactDecimalPropertyTests.randomText(&r, maxDigits: 21)
            let a = try ExactDecimal(ta)
            let b = try ExactDecimal(tb)
            let ra = ExactDecimalPropertyTests.ref(ta)
            let rb = ExactDecimalPropertyTests.ref(tb)
            #expect((a + b).description == ExactDecimalPropertyTests.text(ExactDecimalPropertyTests.refAdd(ra, rb)), "\(ta) + \(tb)")
            var sum = a
            sum += b
            #expect(sum == a + b && sum.scale == (a + b).scale, "\(ta) += \(tb)")
            let c = ExactDecimalPropertyTests.refCompare(ra, rb)
            #expect((a < b) == (c < 0), "\(ta) < \(tb)")
            #expect((a > b) == (c > 0), "\(ta) > \(tb)")
            #expect((a == b) == (c == 0), "\(ta) == \(tb)")
        }
        // Just past 64 bits: 18446744073709551615 + 1, and a scale alignment that overflows.
        let max64 = try ExactDecimal("18446744073709551615")
        #expect((max64 + ExactDecimal(1)).description == "18446744073709551616")
        let wide = try ExactDecimal("1844674407370955161.5")
        #expect((wide + max64).description == "20291418481080506776.5")
        #expect(max64 > wide && wide < max64)
    }

    @Test func quotientsAreWithinHalfAUnitAndTiesGoToEven() throws {
        var r = SplitMix64(seed: 99)
        var checked = 0
        for _ in 0..<1_500 {
            let a = try ExactDecimal(ExactDecimalPropertyTests.randomText(&r))
            let b = try ExactDecimal(ExactDecimalPropertyTests.randomText(&r))
            let scale = r.below(12)
            guard let q = try? a.divided(by: b, scale: scale) else { continue }  // overflow of wide cases
            #expect(Int(q.scale) == scale)
            // |a - q·b| ≤ ½·|b|·10^-scale, i.e. |2·(a - q·b)| · 10^scale ≤ |b|
            let unit = ExactDecimal(mantissa: 1, scale: scale)
            let residual = a - q * b
            let lhs = (residual + residual).magnitudeForTest()
            let rhs = (b * unit).magnitudeForTest()
            #expect(lhs <= rhs, "\(a) / \(b) at \(scale) = \(q)")
            if lhs == rhs {
                // exact tie: the last digit of q must be even
                let last = q.description.last!
                #expect("02468".contains(last), "tie \(a) / \(b) → \(q)")
            }
            checked += 1
        }
        #expect(checked > 1_000)
    }
}

extension ExactDecimal {
    fileprivate func magnitudeForTest() -> ExactDecimal { isNegative ? -self : self }
}
