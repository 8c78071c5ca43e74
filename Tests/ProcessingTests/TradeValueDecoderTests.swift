import MarketData
import Testing

@testable import Processing

@Suite("Fast trade value decoder")
struct TradeValueDecoderTests {
    private func fields(_ bytes: [UInt8]) -> TradeFields? {
        bytes.withUnsafeBufferPointer { TradeFields.decode($0) }
    }

    /// When the fast decoder accepts a value, it must agree with `Trade(json:)` field by field.
    private func agrees(_ bytes: [UInt8]) -> Bool {
        guard let f = fields(bytes) else { return true }
        guard let t = try? Trade(json: bytes) else { return false }
        let text = { (r: Range<Int>) in String(decoding: bytes[r], as: UTF8.self) }
        return text(f.exchange) == t.exchange.name && text(f.symbol) == t.symbol.rawValue && text(f.tradeID) == t.tradeId
            && f.price.isIdentical(to: t.price) && f.quantity.isIdentical(to: t.quantity)
            && f.quoteQuantity.isIdentical(to: t.quoteQuantity) && f.side == t.side && f.time == t.time
    }

    @Test func generatedValuesTakeTheFastPathAndAgree() {
        var generator = TradeGenerator(seed: 11)
        for _ in 0..<5_000 {
            let bytes = generator.next().jsonBytes
            #expect(fields(bytes) != nil, "fast path refused \(String(decoding: bytes, as: UTF8.self))")
            #expect(agrees(bytes))
        }
    }

    @Test func designExampleAndVariants() {
        let design = #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","nativeSymbol":"BTC_USDT","tradeId":"60184114","price":"21614.59","quantity":"0.01149","quoteQuantity":"248.3516391","side":"sell","time":1661123520381,"receivedAt":1661123520391123}"#
        #expect(fields(Array(design.utf8)) != nil)
        #expect(agrees(Array(design.utf8)))
        let variants = [
            design.replacingOccurrences(of: ",", with: " ,\n "),  // whitespace
            design.replacingOccurrences(of: #""v":1,"#, with: "") + "",  // missing v: both refuse
            design.replacingOccurrences(of: #""BTC-USDT""#, with: #""btc_usdt""#),  // not normalized: fallback
            design.replacingOccurrences(of: #""sell""#, with: #""SELL""#),
            design.replacingOccurrences(of: #""price":"21614.59""#, with: #""price":21614.59"#),  // number: fallback
            design.replacingOccurrences(of: #""tradeId":"60184114""#, with: #""tradeId":"6018\u0034114""#),  // escape
            design.replacingOccurrences(of: "}", with: #","extra":[1,2]}"#),  // nested unknown: fallback
            design.replacingOccurrences(of: "}", with: #","extra":null,"more":-3}"#),
            design.replacingOccurrences(of: #""v":1"#, with: #""v":2"#),
            design.replacingOccurrences(of: "1661123520381", with: "1661123520381.5"),
            design.replacingOccurrences(of: "1661123520381", with: "-5"),
            design + " ",
            design + "x",
            String(design.dropLast()),
        ]
        for v in variants {
            #expect(agrees(Array(v.utf8)), "disagrees on \(v)")
        }
        #expect(fields(Array(variants[0].utf8)) != nil)
        #expect(fields(Array(variants[2].utf8)) == nil)
    }

    /// Random byte edits: the fast decoder either refuses or agrees; it never accepts something
    /// the reference decoder rejects or reads differently.
    @Test func mutatedValuesNeverDisagree() {
        var generator = TradeGenerator(seed: 5)
        var rng = SplitMix64(seed: 99)
        let alphabet = Array(#"{}[]":,.-0123456789 abcvtrue\"#.utf8)
        var accepted = 0
        for _ in 0..<20_000 {
            var bytes = generator.next().jsonBytes
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[i] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: i)
                }
            }
            if fields(bytes) != nil { accepted += 1 }
            #expect(agrees(bytes), "disagrees on \(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(accepted > 100, "some mutations stay valid and take the fast path")
    }
}
