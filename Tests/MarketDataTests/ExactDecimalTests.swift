import MarketData
import Testing

private func d(_ text: String) -> ExactDecimal {
    do { return try ExactDecimal(text) } catch { fatalError("test literal \(text) does not parse: \(error)") }
}

@Suite struct ExactDecimalParsingTests {
    @Test(arguments: [
        "21614.59", "0.00000001", "21620.00", "0", "0.0", "-0.5", "100", "1.10", "0.000328",
        "123456789012.12345678", "12345678901234567890123456789012345678",
        "0.12345678901234567890123456789012345678", "18446744073709551616", "9999999999999999999",
        "10000000000000000000", "+1", "007.50", "-0", "-0.000", "00.5", "+0.10", "-00.0", "000",
        "0000000000000000000000000000000000000000001.5", "12345678901234567890", "-1234567890123456789",
        "-12345678901234567890.5", "1234567890123456789.1", "99999999999999999999999999999999999999",
    ])
    func keepsTheTextItParsed(text: String) throws {
        let value = try ExactDecimal(text)
        #expect(value.description == text)
        var bytes: [UInt8] = []
        value.appendText(to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == text)
    }

    @Test(arguments: [
        "", "1e5", "1E5", "1e-5", "--1", "-", "+", ".", "1.", ".5", "1.2.3", "abc", " 1", "1 ", "0x10",
        "NaN", "Infinity", "1,5", "١", "1_000",
        "123456789012345678901234567890123456789",  // 39 significant digits
        "0.000000000000000000000000000000000000001",  // 39 fractional digits
        String(repeating: "9", count: 200),
    ])
    func rejectsGarbage(text: String) {
        #expect(throws: DecimalError.self) { try ExactDecimal(text) }
    }

    @Test func errorCodesSayWhy() {
        func code(_ text: String) -> DecimalError.Code? {
            do {
                _ = try ExactDecimal(text)
                return nil
            } catch { return error.code }
        }
        #expect(code("") == .empty)
        #expect(code("1e5") == .exponent)
        #expect(code(".") == .misplacedPoint)
        #expect(code("--1") == .invalidCharacter)
        #expect(code(String(repeating: "1", count: 39)) == .tooManyDigits)
    }

    @Test func isTriviallyCopyableAndSmall() {
        #expect(_isPOD(ExactDecimal.self))
        #expect(MemoryLayout<ExactDecimal>.stride == 40)
    }

    @Test func fastAndGeneralParsersAgree() throws {
        // 19 digits takes the fast path, 20 the general one: same values either way.
        #expect(try ExactDecimal("9999999999999999999") + ExactDecimal("1") == ExactDecimal("10000000000000000000"))
        #expect(try ExactDecimal("1844674407370955161.5") * ExactDecimal("10") == ExactDecimal("18446744073709551615"))
        #expect(try ExactDecimal("-0.5") == ExactDecimal("-00.50"))
        #expect(try ExactDecimal("+7") == ExactDecimal("7"))
    }

    @Test func leadingZerosOfAnIntegerPartAreAccepted() throws {
        #expect(try ExactDecimal("0000000000000000000000000000000000000000001.5") == d("1.5"))
    }

    @Test func scaleIsTheNumberOfFractionalDigits() {
        #expect(d("21620.00").scale == 2)
        #expect(d("5").scale == 0)
        #expect(d("0.00000001").scale == 8)
    }
}

@Suite struct ExactDecimalArithmeticTests {
    @Test func tinyTimesLargeIsExact() {
        let product = d("0.00000001") * d("123456789012.12345678")
        #expect(product.description == "1234.5678901212345678")
        #expect(product.scale == 16)
        #expect(product == d("1234.5678901212345678"))
        #expect((d("0.00000001") * d("0.00000001")).description == "0.0000000000000001")
    }

    @Test func productsBeyond64BitsAreExact() {
        #expect((d("123456789012.12345678") * d("98765.4321")).description == "12193263112460905.347422374638")
        #expect(
            (d("12345678901234567890123456789012345678") * d("98765432109876543210987654321098765432")).description
                == "1219326311370217952261850327338667885854747751864349946654322511812221002896")
        #expect(
            (d("0.12345678901234567890123456789012345678") * d("9999999999.9999999999999999999999999999")).description
                == "1234567890.123456789012345678901234567787654321098765432109876543210987654322")
    }

    @Test func poloniexAmountsArePriceTimesQuantity() {
        #expect((d("21614.59") * d("0.01149")).description == "248.3516391")
        #expect((d("120.17") * d("0.270684")).description == "32.52809628")
        #expect((d("21602.42") * d("0.002305")).description == "49.79357810")
        #expect((d("21602.42") * d("0.002305")).normalized().description == "49.7935781")
    }

    @Test func additionAlignsScales() {
        #expect((d("1.10") + d("1.1")).description == "2.20")
        #expect((d("0.01149") + d("0.006021")).description == "0.017511")
        #expect((d("1") + d("0.00000001")).description == "1.00000001")
        #expect((d("1.5") - d("2.25")).description == "-0.75")
        #expect((d("2.25") - d("2.25")).description == "0.00")
        #expect((d("-1.5") + d("-1")).description == "-2.5")
        #expect((d("18446744073709551615") + d("1")).description == "18446744073709551616")
    }

    @Test func sumsOfManyPricesStayExact() {
        var total = ExactDecimal.zero
        for _ in 0..<10 { total += d("0.1") }
        #expect(total == d("1"))
        #expect(total.description == "1.0")
    }

    @Test func overflowThrowsInsteadOfWrapping() {
        let big = d("99999999999999999999999999999999999999")  // 38 nines
        let square = big * big  // 76 digits, fits in 256 bits
        #expect(throws: DecimalError.self) { try square.multiplied(by: big) }
        #expect(throws: DecimalError.self) {
            var sum = square
            for _ in 0..<20 { sum = try sum.adding(sum) }
        }
    }

    @Test func vwapDivisionRoundsHalfToEven() throws {
        #expect(try d("26680.1234").divided(by: d("1.23456"), scale: 10).description == "21611.0382646449")
        #expect(try d("1").divided(by: d("3"), scale: 10).description == "0.3333333333")
        #expect(try d("2").divided(by: d("3"), scale: 10).description == "0.6666666667")
        #expect(try d("0.125").divided(by: d("1"), scale: 2).description == "0.12")
        #expect(try d("0.135").divided(by: d("1"), scale: 2).description == "0.14")
        #expect(try d("0.1251").divided(by: d("1"), scale: 2).description == "0.13")
        #expect(try d("-2").divided(by: d("3"), scale: 2).description == "-0.67")
        #expect(try d("5").divided(by: d("2"), scale: 0).description == "2")
        #expect(try d("7").divided(by: d("2"), scale: 0).description == "4")
        #expect(try d("10").divided(by: d("0.5"), scale: 3).description == "20.000")
        #expect(try d("0.000001").divided(by: d("1000000000000"), scale: 2).description == "0.00")
    }

    @Test func divisionByWideDivisorIsExact() throws {
        let volume = d("12345678901234567890123456789.123456789")
        let quote = volume * d("21614.59")
        #expect(try quote.divided(by: volume, scale: 10).description == "21614.5900000000")
    }

    /// Twelve 38-digit quantities and one at scale 38: the sum needs more than 256 bits. The
    /// throwing operations say so (the candle processor rejects such a trade with it); before,
    /// only the trapping `+` existed on this path.
    @Test func overflowingSumsThrowOverflow() {
        let huge = d(String(repeating: "9", count: 38))
        let tiny = d("0." + String(repeating: "0", count: 37) + "1")
        var sum = ExactDecimal.zero
        for _ in 0..<12 { sum = try! sum.adding(huge) }
        #expect(sum == huge * d("12"))
        #expect((try? sum.adding(tiny)) == nil)
        #expect((try? tiny.adding(sum)) == nil)
        #expect((try? sum.subtracting(-tiny)) == nil)
        #expect((try? (-sum).subtracting(tiny)) == nil)
        do {
            _ = try sum.adding(tiny)
            Issue.record("no overflow reported")
        } catch {
            #expect(error.code == .overflow)
        }
        // Eleven still fit: the sum at scale 38 is below 2^256.
        let eleven = huge * d("11")
        #expect((try? eleven.adding(tiny))?.scale == 38)
        #expect((try? sum.subtracting(huge)) == eleven)
    }

    /// The throwing sum takes the same fast path as `+` and gives the same text.
    @Test func addingMatchesPlus() throws {
        for (a, b) in [("1.10", "1.1"), ("0.01149", "0.006021"), ("-1.5", "-1"), ("18446744073709551615", "1"), ("1.5", "-2.25"), ("007.5", "0")] {
            #expect(try d(a).adding(d(b)).description == (d(a) + d(b)).description)
            #expect(try d(a).subtracting(d(b)).description == (d(a) - d(b)).description)
        }
    }

    /// quoteVolume / volume when quoteVolume × 10^(10 + volume scale − quote scale) needs more
    /// than 256 bits: computed digit by digit instead of failing (the VWAP of a window of huge
    /// trades was null before).
    @Test func wideQuotientsAreExact() throws {
        let quote = d(String(repeating: "9", count: 38))
        let one = d("1." + String(repeating: "0", count: 37))  // 38 digits, scale 37
        #expect(try quote.divided(by: one, scale: 10).description == String(repeating: "9", count: 38) + ".0000000000")
        #expect(Candle.vwap(quoteVolume: quote, volume: one) != nil)
        // Against the fast path: the same divisor without its trailing zeros gives the same quotient.
        var state: UInt64 = 7
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        var wide = 0
        for _ in 0..<2_000 {
            let aDigits = String((0..<(1 + Int(next() % 38))).map { _ in Character(String(next() % 10)) })
            let a = d(aDigits)
            let bDigits = 1 + Int(next() % 6)
            let b = "\(1 + next() % 9)" + String((1..<bDigits).map { _ in Character(String(next() % 10)) })
            let zeros = 37 - (bDigits - 1)
            let padded = d(String(b.prefix(1)) + "." + String(b.dropFirst()) + String(repeating: "0", count: zeros))  // scale 37
            let plain = d(String(b.prefix(1)) + (bDigits > 1 ? "." + String(b.dropFirst()) : ""))
            #expect(padded == plain)
            let scale = Int(next() % 12)
            guard let expected = try? a.divided(by: plain, scale: scale) else { continue }
            let got = try a.divided(by: padded, scale: scale)
            #expect(got.description == expected.description, "\(a) / \(padded) at \(scale)")
            if a.rescaled(to: 37 + scale) == nil { wide += 1 }
        }
        #expect(wide > 100, "the digit-by-digit path was exercised")
    }

    @Test func divisionByZeroThrows() {
        #expect(throws: DecimalError.self) { try d("1").divided(by: d("0.000"), scale: 10) }
    }
}

@Suite struct ExactDecimalComparisonTests {
    @Test func equalityIsByValue() {
        #expect(d("1.10") == d("1.1"))
        #expect(d("0") == d("0.000"))
        #expect(d("-0") == d("0"))
        #expect(d("1.10").hashValue == d("1.1").hashValue)
        #expect(Set([d("1.10"), d("1.1"), d("1.100")]).count == 1)
        #expect(!d("1.10").isIdentical(to: d("1.1")))
        #expect(d("1.10").canonicalString == "1.1")
        #expect(d("100").canonicalString == "100")
        #expect(d("-0.000").canonicalString == "0")
    }

    @Test func orderingForHighAndLow() {
        #expect(d("21614.59") > d("21614.46"))
        #expect(d("2") > d("1.99999999999999999999999999"))
        #expect(d("-1") < d("0.00000001"))
        #expect(d("-2") < d("-1.5"))
        #expect(d("0.9997") < d("1"))
        #expect(d("12345678901234567890123456789012345678") > d("0.12345678901234567890123456789012345678"))
        let prices = ["21614.59", "21615.95", "21614.46", "21602.42"].map(d)
        #expect(prices.max()!.description == "21615.95")
        #expect(prices.min()!.description == "21602.42")
    }
}
