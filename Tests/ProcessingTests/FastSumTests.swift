import MarketData
@testable import Processing
import TapeTestSupport
import Testing

// The 128-bit fast form of the candle sums (`FastSum`) and its fallback to the 256-bit form: the
// candles must be bit-identical (same text, so same value *and* scale) to the 256-bit aggregator
// (`ScanningCandleAggregator`, which never had a fast form), whatever the records hold.

/// A random decimal text: up to `maxDigits` digits, scale 0...`maxScale`, sometimes negative.
private func randomDecimal(_ rng: inout SplitMix64, maxDigits: Int, maxScale: Int, negative: Bool) -> String {
    let digits = 1 + Int(rng.next() % UInt64(maxDigits))
    let scale = Int(rng.next() % UInt64(maxScale + 1))
    var text = String((0..<digits).map { k in Character(String(k == 0 ? 1 + rng.next() % 9 : rng.next() % 10)) })
    if scale > 0 {
        text =
            scale >= digits
            ? "0." + String(repeating: "0", count: scale - digits) + text
            : String(text.dropLast(scale)) + "." + String(text.suffix(scale))
    }
    return (negative ? "-" : "") + text
}

@Suite("Candle sums: 128-bit fast form and its 256-bit fallback")
struct FastSumTests {
    /// `FastSum.adding` either gives exactly `ExactDecimal.adding`'s result (same text), or nil —
    /// and nil only when the sum or the rescaling of one side does not fit in 128 bits.
    @Test(arguments: TestBudget.seeds(1...20))
    func addingMatchesExactOrDeclines(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 7919)
        let edges: [Int128] = [0, 1, -1, .max, .min, .max - 1, .min + 1, 999_999_999_999_999_999, Int128(Int64.max) + 1, -(Int128(1) << 100)]
        func random() -> Int128 {
            if rng.next() % 4 == 0 { return edges[Int(rng.next() % UInt64(edges.count))] }
            let wide = Int128(Int64(bitPattern: rng.next())) << 64 | Int128(rng.next())
            return wide >> (rng.next() % 128)
        }
        var declined = 0
        var taken = 0
        for _ in 0..<3_000 {
            let a = FastSum(mantissa: random(), scale: Int32(rng.next() % 45))
            let m = random()
            let s = Int32(rng.next() % 45)
            let b = ExactDecimal(int128Mantissa: m, scale: Int(s))
            #expect(b.int128Mantissa == m)
            guard let exact = try? a.exact.adding(b) else {
                // Past 256 bits at the common scale: the fast form cannot hold it either.
                #expect(a.adding(m, scale: s) == nil)
                declined += 1
                continue
            }
            if let fast = a.adding(m, scale: s) {
                taken += 1
                #expect(fast.exact.description == exact.description, "\(a.mantissa)e-\(a.scale) + \(m)e-\(s)")
                #expect(fast.scale == max(a.scale, s))
            } else {
                declined += 1
                let scale = Int(max(a.scale, s))
                let fits =
                    a.exact.rescaled(to: scale)?.int128Mantissa != nil && b.rescaled(to: scale)?.int128Mantissa != nil
                    && exact.int128Mantissa != nil
                #expect(!fits, "declined a sum that fits: \(a.mantissa)e-\(a.scale) + \(m)e-\(s)")
            }
        }
        #expect(declined > 50 && taken > 50, "both outcomes exercised: \(declined) / \(taken)")
    }

    @Test func mantissaEdges() throws {
        let nines = try ExactDecimal(String(repeating: "9", count: 38))
        #expect(nines.int128Mantissa.map { "\($0)" } == String(repeating: "9", count: 38))
        #expect(ExactDecimal(int128Mantissa: .min, scale: 3).int128Mantissa == .min)
        #expect(ExactDecimal(int128Mantissa: .max, scale: 0).int128Mantissa == .max)
        // 2^127 as a positive value does not fit; its negation does.
        let twoTo127 = try ExactDecimal("170141183460469231731687303715884105728", allowingSignificantDigits: 78)
        #expect(twoTo127.int128Mantissa == nil)
        #expect(try ExactDecimal("-170141183460469231731687303715884105728", allowingSignificantDigits: 78).int128Mantissa == .min)
        #expect(try twoTo127.adding(twoTo127).int128Mantissa == nil)
    }

    /// Windows leave the fast form mid-window — a quantity at a scale 19+ digits finer than the sum,
    /// a sum past Int64, a 38-digit or negative quantity from an untrusted record — and the candles
    /// stay bit-identical to the 256-bit aggregator's at every checkpoint, including the rejections
    /// of trades whose 256-bit sums would overflow. Wide windows are freed on eviction.
    @Test(arguments: TestBudget.seeds(1...40))
    func fallbackIsBitExact(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 104_723)
        var options = TradeGenerator.Options()
        options.instruments = (0..<Int(rng.next() % 4 + 1)).map { ("poloniex", "C\($0)_USDT") }
        options.meanGapMilliseconds = Int64(rng.next() % 2_000) + 1
        options.duplicateProbability = 0.02
        options.disorderProbability = 0.1
        options.maxDisorderMilliseconds = 30_000
        var generator = TradeGenerator(seed: seed, options: options)
        let configuration = CandleAggregatorConfiguration(
            intervals: [.oneMinute, CandleInterval("5m")!], graceMilliseconds: 1_000, emitIntervalMilliseconds: 1_000,
            allowedLatenessMilliseconds: Int64(rng.next() % 3) * 30_000)
        var new = CandleAggregator(configuration: configuration)
        var old = ScanningCandleAggregator(configuration: configuration)
        var now: Int64 = 1_700_000_000_000
        var sawWide = false
        func texts(_ c: [Candle]) -> [String] { c.map(\.jsonString).sorted() }
        for i in 0..<1_500 {
            now += Int64(rng.next() % 300)
            var t = generator.next()
            var quantity: String?
            switch rng.next() % 25 {
            case 0: quantity = randomDecimal(&rng, maxDigits: 38, maxScale: 38, negative: rng.next() % 2 == 0)  // huge, fine, signed
            case 1: quantity = randomDecimal(&rng, maxDigits: 19, maxScale: 0, negative: false)  // past Int64 sums
            case 2: quantity = "0." + String(repeating: "0", count: 20 + Int(rng.next() % 15)) + "1"  // scale jump > 18
            case 3: quantity = randomDecimal(&rng, maxDigits: 12, maxScale: 6, negative: true)  // negative, fast form
            case 4: quantity = String(repeating: "9", count: 38)  // two of them pass Int128.max
            default: break
            }
            if let quantity {
                let q = d(quantity)
                t = Trade(
                    exchange: t.exchange, symbol: t.symbol, nativeSymbol: t.nativeSymbol, tradeId: t.tradeId, price: t.price,
                    quantity: q, quoteQuantity: rng.next() % 2 == 0 ? q : t.quoteQuantity, side: t.side, time: t.time,
                    receivedAt: t.receivedAt)
            }
            // Through the record path (the decoder's fast decimals), and the decoded-trade path.
            let bytes = t.jsonBytes
            let a = bytes.withUnsafeBufferPointer { new.ingestRecord(bytes: $0, sequence: Int64(i), now: now) }
            let b = old.ingest(t, sequence: Int64(i), now: now)
            if case .rejected(let kind) = b {
                #expect(a?.kind.rawValue == kind.rawValue, "record \(i)")
            } else {
                #expect(a == nil, "record \(i): \(String(describing: a))")
            }
            if new.wideWindowCount > 0 { sawWide = true }
            if rng.next() % 10 == 0 {
                let x = new.checkpoint(now: now)
                let y = old.checkpoint(now: now)
                #expect(texts(x.candles) == texts(y.candles), "checkpoint \(i)")
                #expect(x.checkpoint.replayFrom == y.checkpoint.replayFrom && x.checkpoint.emittedThrough == y.checkpoint.emittedThrough)
            }
            #expect(new.windowCount == old.windowCount)
        }
        #expect(texts(new.currentCandles()) == texts(old.currentCandles()))
        #expect(new.counters == old.counters)
        #expect(sawWide, "some window left the fast form")
        // Plain trades two days later: every old window is evicted, and with it its wide sums.
        let t0 = now + 2 * 86_400_000
        var g2 = TradeGenerator(seed: seed &+ 1)
        for i in 0..<200 {
            var t = g2.next()
            t.time = t0 + Int64(i) * 1_000
            new.ingest(t, sequence: Int64(10_000 + i), now: t.time)
            old.ingest(t, sequence: Int64(10_000 + i), now: t.time)
            _ = new.checkpoint(now: t.time)
            _ = old.checkpoint(now: t.time)
        }
        #expect(new.wideWindowCount == 0, "wide sums freed with their windows")
        #expect(texts(new.currentCandles()) == texts(old.currentCandles()))
    }

    /// Ordinary trades (the generator's: up to 6 fractional digits, prices at scale 2) never leave
    /// the fast form.
    @Test func ordinaryTradesStayFast() {
        var a = CandleAggregator(configuration: CandleAggregatorConfiguration())
        for (i, value) in ProcessBenchmark.encodedTrades(count: 20_000, instruments: 5).enumerated() {
            let applied = a.ingest(value: value, sequence: Int64(i), now: 0)
            #expect(applied)
        }
        #expect(a.windowCount > 0)
        #expect(a.wideWindowCount == 0)
    }
}
