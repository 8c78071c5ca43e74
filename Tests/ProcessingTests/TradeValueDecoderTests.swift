import MarketData
import TapeTestSupport
import Testing

@testable import Processing

@Suite("Fast trade value decoder")
struct TradeValueDecoderTests {
    private func fields(_ bytes: [UInt8]) -> TradeFields? {
        bytes.withUnsafeBufferPointer { TradeFields.decode($0) }
    }

    /// One random edit: a byte replaced, removed or inserted (from `alphabet`).
    private func mutateOnce(_ bytes: inout [UInt8], rng: inout SplitMix64, alphabet: [UInt8]) {
        let i = Int(rng.next() % UInt64(bytes.count))
        switch rng.next() % 3 {
        case 0: bytes[i] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
        case 1: bytes.remove(at: i)
        default: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: i)
        }
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
        let design =
            #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","nativeSymbol":"BTC_USDT","tradeId":"60184114","price":"21614.59","quantity":"0.01149","quoteQuantity":"248.3516391","side":"sell","time":1661123520381,"receivedAt":1661123520391123}"#
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
                mutateOnce(&bytes, rng: &rng, alphabet: alphabet)
            }
            if fields(bytes) != nil { accepted += 1 }
            #expect(agrees(bytes), "disagrees on \(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(accepted > 100, "some mutations stay valid and take the fast path")
    }

    /// The written-layout path (literal by literal) and the any-order path must read the same
    /// fields whenever the first accepts; mutations probe where it must refuse.
    @Test func writtenLayoutPathAgreesWithAnyOrderPath() {
        var generator = TradeGenerator(seed: 17)
        var rng = SplitMix64(seed: 3)
        let alphabet = Array(#"{}":,.-0123456789 bsuyelAZ_\"#.utf8)
        var fast = 0
        for round in 0..<20_000 {
            var bytes = generator.next().jsonBytes
            if round % 4 != 0 {
                mutateOnce(&bytes, rng: &rng, alphabet: alphabet)
            }
            bytes.withUnsafeBufferPointer { b in
                let layout = TradeFields.decodeWrittenLayout(b)
                let anyOrder = TradeFields.decodeAnyOrder(b)
                if round % 4 == 0 { #expect(layout != nil, "unmutated value refused: \(String(decoding: bytes, as: UTF8.self))") }
                guard let l = layout else { return }
                fast += 1
                guard let a = anyOrder else {
                    Issue.record("layout path accepted what the any-order path refuses: \(String(decoding: bytes, as: UTF8.self))")
                    return
                }
                #expect(
                    l.exchange == a.exchange && l.symbol == a.symbol && l.tradeID == a.tradeID && l.side == a.side
                        && l.time == a.time && l.price.isIdentical(to: a.price) && l.quantity.isIdentical(to: a.quantity)
                        && l.quoteQuantity.isIdentical(to: a.quoteQuantity),
                    "paths disagree on \(String(decoding: bytes, as: UTF8.self))")
            }
        }
        #expect(fast > 5_000)
        // Integer edges the generator never writes: each path's own integer rules must agree.
        let design =
            #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","nativeSymbol":"BTC_USDT","tradeId":"1","price":"1.5","quantity":"2","quoteQuantity":"3.0","side":"buy","time":TIME,"receivedAt":RECV}"#
        let edges = ["0", "-0", "-5", "07", "123456789012345678", "1234567890123456789", "-123456789012345678", "-", "1-2", ""]
        for time in edges {
            for received in edges {
                let bytes = Array(design.replacingOccurrences(of: "TIME", with: time).replacingOccurrences(of: "RECV", with: received).utf8)
                bytes.withUnsafeBufferPointer { b in
                    let layout = TradeFields.decodeWrittenLayout(b)
                    let anyOrder = TradeFields.decodeAnyOrder(b)
                    #expect((layout == nil) == (anyOrder == nil) && layout?.time == anyOrder?.time, "time \(time), receivedAt \(received)")
                }
            }
        }
    }

    /// The trade-id set (bitmap near the first id, hash set elsewhere) against `Set<UInt64>`.
    @Test func tradeIDSetMatchesASet() {
        var rng = SplitMix64(seed: 8)
        for trial in 0..<20 {
            var set = UInt64Set()
            var reference = Set<UInt64>()
            let first = trial == 0 ? 0 : rng.next() % 1_000_000_000_000
            var next = first
            for _ in 0..<20_000 {
                let value: UInt64
                switch rng.next() % 10 {
                case 0: value = rng.next()  // anywhere, mostly outside the bitmap
                case 1: value = first &- (rng.next() % 10_000)  // below the first id
                case 2: value = first &+ UInt64SetSpan.edge &+ (rng.next() % 64) &- 32  // around the bitmap's end
                case 3: value = [0, 1, .max, .max - 1][Int(rng.next() % 4)]
                case 4: value = next &- (rng.next() % 300)  // a repeat, recent
                default:
                    next &+= 1 + rng.next() % 3
                    value = next
                }
                #expect(set.contains(value) == reference.contains(value), "trial \(trial): contains \(value)")
                #expect(set.insert(value) == reference.insert(value).inserted, "trial \(trial): \(value)")
            }
            #expect(set.count == reference.count)
        }
    }
}

private enum UInt64SetSpan {
    static let edge = UInt64Set.denseSpan - UInt64Set.denseSlack
}

@Suite("Decoder byte comparison")
struct EqualBytesTests {
    /// The literal check compares eight bytes at a time: every length, a difference at every place.
    @Test func equalBytesFindsADifferenceAnywhere() {
        for count in 0...40 {
            let a: [UInt8] = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            a.withUnsafeBytes { pa in
                var b = a
                b.withUnsafeBytes { pb in
                    let none = UnsafeRawPointer(bitPattern: 1)!  // never read: count is 0 when an array has no storage
                    #expect(TradeFields.equalBytes(pa.baseAddress ?? none, pb.baseAddress ?? none, count))
                }
                for k in 0..<count {
                    b = a
                    b[k] ^= 0x01
                    b.withUnsafeBytes { pb in
                        #expect(!TradeFields.equalBytes(pa.baseAddress!, pb.baseAddress!, count), "length \(count), byte \(k)")
                    }
                }
            }
        }
    }
}
