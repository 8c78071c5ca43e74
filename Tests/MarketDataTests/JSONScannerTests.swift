import MarketData
import Testing

private func scan<R>(_ text: String, _ body: (inout JSONScanner) throws(JSONError) -> R) throws(JSONError) -> R {
    try JSONScanner.withScanner(over: text, body)
}

@Suite struct JSONScannerTests {
    @Test func stringsAtEveryLengthAndSpecialBytePosition() throws {
        // Exercises the 8-bytes-at-a-time path and its tail at every alignment.
        for length in 0..<40 {
            let body = String((0..<length).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
            let value = try scan("\"\(body)\"  ") { (s: inout JSONScanner) throws(JSONError) in try s.readStringValue() }
            #expect(value == body)
            for at in 0...length {
                var withEscape = body
                withEscape.insert(contentsOf: "\\\"", at: withEscape.index(withEscape.startIndex, offsetBy: at))
                var expected = body
                expected.insert("\"", at: expected.index(expected.startIndex, offsetBy: at))
                #expect(
                    try scan("\"\(withEscape)\"") { (s: inout JSONScanner) throws(JSONError) in try s.readStringValue() }
                        == expected)
                var withControl = body
                withControl.insert("\n", at: withControl.index(withControl.startIndex, offsetBy: at))
                #expect(throws: JSONError.self) {
                    try scan("\"\(withControl)\"") { (s: inout JSONScanner) throws(JSONError) in try s.readString() }
                }
            }
            #expect(throws: JSONError.self) {
                try scan("\"\(body)") { (s: inout JSONScanner) throws(JSONError) in try s.readString() }
            }
        }
    }

    @Test func escapesAndUnicode() throws {
        func read(_ json: String) throws(JSONError) -> String {
            try scan(json) { (s: inout JSONScanner) throws(JSONError) in try s.readStringValue() }
        }
        #expect(try read(#""a\"b\\c\/d\b\f\n\r\t""#) == "a\"b\\c/d\u{8}\u{C}\n\r\t")
        #expect(try read(#""\u00e9\u20AC""#) == "é€")
        #expect(try read(#""\ud83d\ude00""#) == "😀")
        #expect(try read("\"héllo €\"") == "héllo €")
        for bad in [#""\x""#, #""\u12""#, #""\u12g4""#, #""\ud83d""#, #""\ude00""#, #""\ud83d\u0041""#, #""\"#] {
            #expect(throws: JSONError.self, "\(bad)") { try read(bad) }
        }
    }

    @Test func int64FastAndSlowPaths() throws {
        func int(_ json: String) throws(JSONError) -> Int64 {
            try scan(json) { (s: inout JSONScanner) throws(JSONError) in
                let v = try s.readInt64()
                guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "trailing", at: s.position) }
                return v
            }
        }
        #expect(try int("0") == 0)
        #expect(try int("-0") == 0)
        #expect(try int(" 1661123520381 ") == 1_661_123_520_381)
        #expect(try int("999999999999999999") == 999_999_999_999_999_999)  // 18 digits, fast path
        #expect(try int("9223372036854775807") == Int64.max)  // 19 digits, checked path
        #expect(try int("-9223372036854775808") == Int64.min)
        for bad in ["9223372036854775808", "-9223372036854775809", "01", "1.5", "1e3", "-", "", "+1", "1x", "\"1\""] {
            #expect(throws: JSONError.self, "\(bad)") { try int(bad) }
        }
    }

    @Test func numbersFollowTheGrammar() throws {
        for good in ["0", "-0", "1.5", "-1.5e10", "2E-3", "1e+2", "123456789012345678901234567890"] {
            #expect(try scan(good) { (s: inout JSONScanner) throws(JSONError) in try s.readNumber() }.count == good.count)
        }
        for bad in ["-", ".5", "1.", "1e", "1e+", "+1", "a"] {
            #expect(throws: JSONError.self, "\(bad)") {
                try scan(bad) { (s: inout JSONScanner) throws(JSONError) in
                    _ = try s.readNumber()
                    guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "trailing", at: s.position) }
                }
            }
        }
    }

    @Test func skipValueHandlesEverythingAndLimitsDepth() throws {
        let json = #" {"a":[1,-2.5e3,"x\"]",{"b":null,"c":[true,false,[]]},{}],"d":{}} "#
        try scan(json) { (s: inout JSONScanner) throws(JSONError) in
            try s.skipValue()
            let atEnd = s.isAtEnd()
            #expect(atEnd)
        }
        let deep =
            String(repeating: "[", count: JSONScanner.maximumDepth + 1)
            + String(repeating: "]", count: JSONScanner.maximumDepth + 1)
        #expect(throws: JSONError.self) { try scan(deep) { (s: inout JSONScanner) throws(JSONError) in try s.skipValue() } }
        let ok =
            String(repeating: "[", count: JSONScanner.maximumDepth - 1)
            + String(repeating: "]", count: JSONScanner.maximumDepth - 1)
        try scan(ok) { (s: inout JSONScanner) throws(JSONError) in try s.skipValue() }
        for bad in ["[1,]", "{\"a\":1,}", "{\"a\"}", "[", "{", "tru", "nul", "[1 2]", "{1:2}"] {
            #expect(throws: JSONError.self, "\(bad)") {
                try scan(bad) { (s: inout JSONScanner) throws(JSONError) in try s.skipValue() }
            }
        }
    }

    @Test func decimalsFromStringsOrNumbers() throws {
        func dec(_ json: String) throws(JSONError) -> String {
            try scan(json) { (s: inout JSONScanner) throws(JSONError) in try s.readDecimal().description }
        }
        #expect(try dec(#""21614.59""#) == "21614.59")
        #expect(try dec("21614.59") == "21614.59")
        #expect(try dec(#""\u0031.5""#) == "1.5")
        for bad in [#""1e5""#, "1e5", #""""#, #""abc""#, "true"] {
            #expect(throws: JSONError.self, "\(bad)") { try dec(bad) }
        }
    }
}
