import MarketData
import Testing

@Suite struct TradeIDSetTests {
    @Test(arguments: [
        ("0", UInt64(0) as UInt64?), ("7", 7), ("1234567890", 1_234_567_890), ("18446744073709551615", UInt64.max),
        ("18446744073709551616", nil), ("99999999999999999999", nil), ("100000000000000000000", nil),
        ("07", nil), ("00", nil), ("+7", nil), ("-0", nil), ("-7", nil), (" 7", nil), ("7 ", nil), ("", nil), ("7a", nil), ("٣", nil),
    ])
    func canonicalNumbers(id: String, expected: UInt64?) {
        #expect(TradeIDSet.canonicalNumber(id) == expected)
    }

    @Test func anIdIsItsExactText() {
        var set = TradeIDSet()
        let first = set.insert("7")
        let again = set.insert("7")
        #expect(first && !again)
        for other in ["07", "+7", "7 ", "x7"] {
            #expect(!set.contains(other))
            let inserted = set.insert(other)
            #expect(inserted, "\(other)")
        }
        #expect(set.count == 5)
        set.remove("07")
        #expect(set.contains("7") && !set.contains("07") && set.contains("+7"))
        set.remove("7")
        #expect(!set.contains("7") && set.count == 3)
    }

    /// The same answers as a `Set<String>` over random inserts, removes and lookups.
    @Test func agreesWithASetOfStrings() {
        var generator = SystemRandomNumberGenerator()
        var set = TradeIDSet()
        var model: Set<String> = []
        let spellings: [(UInt64) -> String] = [{ "\($0)" }, { "0\($0)" }, { "+\($0)" }, { "id-\($0)" }, { "\($0)" }]
        for _ in 0..<20_000 {
            let n = UInt64.random(in: 0...300, using: &generator)
            let id = spellings[Int.random(in: 0..<spellings.count, using: &generator)](n)
            switch Int.random(in: 0...2, using: &generator) {
            case 0:
                let inserted = set.insert(id)
                #expect(inserted == model.insert(id).inserted, "insert \(id)")
            case 1:
                set.remove(id)
                model.remove(id)
            default: #expect(set.contains(id) == model.contains(id), "contains \(id)")
            }
            #expect(set.count == model.count)
        }
    }
}
