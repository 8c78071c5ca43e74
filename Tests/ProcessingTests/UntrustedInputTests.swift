import MarketData
import TapeTestSupport
import Testing

@testable import Processing

// Records in tape.trades can be written by anyone: no value in them may trap the processor
// (a trap kills `tape up` whole, and the record stays in the topic: a crash loop).

private func trade(
    _ id: String, price: String = "1", quantity: String, side: Side = .buy, at time: Int64, symbol: String = "BTC_USDT"
) -> Trade {
    Trade(
        exchange: .poloniex, symbol: Symbol(normalizing: symbol), nativeSymbol: symbol, tradeId: id,
        price: d(price), quantity: d(quantity), side: side, time: time, receivedAt: 1_000)
}

/// A trade value as Tape writes it, with any integer as its time.
private func value(time: Int64, id: String = "1", quantity: String = "1") -> [UInt8] {
    var t = trade(id, quantity: quantity, at: 1_661_123_520_000)
    t.time = time
    return t.jsonBytes
}

/// 38 nines: the largest quantity the parser accepts.
private let huge = String(repeating: "9", count: 38)
/// The smallest positive value at scale 38.
private let tiny = "0." + String(repeating: "0", count: 37) + "1"

@Suite("Untrusted trade records")
struct UntrustedInputTests {
    static let t0: Int64 = 1_661_123_520_000

    /// Times near Int64's ends (and just outside Trade.validTimes) are rejected, counted, and
    /// change nothing; the old code trapped on `bucketStart + 2 * largest + lateness`.
    @Test(arguments: [
        Int64.max, Int64.max - 5, Int64.min, Int64.min + 1, -1, -86_400_000, 253_402_300_800_000, 999_999_999_999_999_999,
        -999_999_999_999_999_999,
    ])
    func outOfRangeTimeIsRejected(time: Int64) {
        var a = CandleAggregator(configuration: CandleAggregatorConfiguration(intervals: [.oneMinute, .oneDay]))
        a.ingest(trade("1", quantity: "2", at: Self.t0), sequence: 0, now: Self.t0)
        let before = a.currentCandles()
        let maxBefore = a.maxTradeTime
        let rejection = value(time: time, id: "2").withUnsafeBufferPointer { a.ingestRecord(bytes: $0, sequence: 1, now: Self.t0) }
        #expect(rejection?.kind == .timeOutOfRange)
        #expect(rejection?.reason.contains("\(time)") == true, "\(String(describing: rejection))")
        // Same through the decoded-trade entry point.
        var t = trade("3", quantity: "1", at: Self.t0)
        t.time = time
        let outcome = a.ingest(t, sequence: 2, now: Self.t0)
        #expect(outcome == .rejected(.timeOutOfRange))
        #expect(a.position == 3)
        #expect(a.counters.rejectedTimes == 2)
        #expect(a.counters.trades == 1)
        #expect(a.maxTradeTime == maxBefore)
        #expect(Set(a.currentCandles().map(\.jsonString)) == Set(before.map(\.jsonString)))
        // And it goes on.
        let goesOn = a.ingest(value: value(time: Self.t0 + 1, id: "4"), sequence: 3, now: Self.t0)
        #expect(goesOn)
        #expect(a.counters.trades == 2)
    }

    /// The range's own ends are trades like any other.
    @Test func rangeEndsAreAccepted() {
        var a = CandleAggregator(configuration: CandleAggregatorConfiguration(intervals: [.oneMinute, .oneDay]))
        let first = a.ingest(value: value(time: Trade.validTimes.lowerBound, id: "1"), sequence: 0, now: 0)
        let last = a.ingest(value: value(time: Trade.validTimes.upperBound, id: "2"), sequence: 1, now: 0)
        #expect(first && last)
        let starts = Set(a.currentCandles().map(\.start))
        #expect(starts.contains(0))
        #expect(starts.contains(253_402_300_740_000))  // 9999-12-31T23:59:00Z, 1m
        #expect(a.currentCandles().allSatisfy { $0.end > $0.start })
        _ = a.checkpoint(now: .max)
        _ = a.tick(now: .max)
    }

    /// Absurd settings (lateness and grace near Int64.max) saturate instead of trapping.
    @Test func extremeSettingsDoNotTrap() {
        for (grace, lateness) in [(Int64.max, Int64.max), (0, Int64.max), (Int64.max, 0), (Int64.min, Int64.min), (-1, -1)] {
            var a = CandleAggregator(
                configuration: CandleAggregatorConfiguration(
                    intervals: [.oneMinute, .oneDay], graceMilliseconds: grace, allowedLatenessMilliseconds: lateness))
            for i in 0..<5 {
                a.ingest(trade("\(i)", quantity: "1", at: Trade.validTimes.upperBound - Int64(i) * 90_000), sequence: Int64(i), now: .max)
            }
            a.ingest(trade("x", quantity: "1", at: 0), sequence: 5, now: .min)
            _ = a.tick(now: .max)
            _ = a.checkpoint(now: .min)
            _ = a.checkpoint(now: .max)
        }
    }

    /// Twelve 38-digit quantities, then one at scale 38 in the same windows: the old code hit a
    /// precondition in `ExactDecimal.+`. Now that trade is rejected, nothing changes, and later
    /// trades (even with its id) go on.
    @Test func overflowingTradeIsRejectedBeforeAnyWindowChanges() {
        let configuration = CandleAggregatorConfiguration(intervals: [.oneMinute, .oneHour])
        var a = CandleAggregator(configuration: configuration)
        var log: [Trade] = []
        for i in 0..<12 { log.append(trade("\(i)", quantity: huge, side: i % 2 == 0 ? .buy : .sell, at: Self.t0 + Int64(i))) }
        // One minute later: a new 1m window (empty, would accept it) but the same 1h window (overflows).
        let poison = trade("p", quantity: tiny, at: Self.t0 + 60_000)
        log.append(poison)
        log.append(trade("p", quantity: "3", at: Self.t0 + 60_001))  // the rejected trade's id, a normal trade
        log.append(trade("13", price: "2", quantity: "1", at: Self.t0 + 61_000))
        var outcomes: [CandleAggregator.IngestOutcome] = []
        for (i, t) in log.enumerated() {
            outcomes.append(a.ingest(t, sequence: Int64(i), now: Self.t0))
        }
        #expect(outcomes[12] == .rejected(.overflow))
        #expect(outcomes[13] == .applied, "the rejected trade's id does not make this one a duplicate")
        #expect(outcomes[14] == .applied)
        #expect(a.counters.rejectedOverflows == 1)
        let reference = BatchCandles.computeWithRejections(
            log.enumerated().map { .init(trade: $1, sequence: Int64($0)) }, intervals: configuration.intervals)
        #expect(reference.rejected.map(\.sequence) == outcomes.indices.filter { outcomes[$0] == .rejected(.overflow) }.map(Int64.init))
        let streamed = latest(a.checkpoint(now: Self.t0 + 10 * 86_400_000).candles)
        let problems = mismatches(streamed, reference.candles)
        #expect(problems.isEmpty, "\(problems)")
        // The 1m window of the poison trade's minute was not created by it.
        let minute1 = streamed.values.filter { $0.interval == .oneMinute && $0.start == Self.t0 + 60_000 }
        #expect(minute1.count == 1 && minute1.first?.trades == 2 && minute1.first?.volume == d("4"), "\(minute1)")
    }

    /// The record path: an overflowing trade comes back as a rejection with its reason.
    @Test func overflowThroughTheRecordPath() {
        var a = CandleAggregator(configuration: CandleAggregatorConfiguration(intervals: [.oneMinute]))
        func ingest(_ bytes: [UInt8], _ sequence: Int64) -> CandleAggregator.Rejection? {
            bytes.withUnsafeBufferPointer { a.ingestRecord(bytes: $0, sequence: sequence, now: 0) }
        }
        for i in 0..<12 {
            let rejection = ingest(value(time: Self.t0, id: "\(i)", quantity: huge), Int64(i))
            #expect(rejection == nil)
        }
        let rejection = ingest(value(time: Self.t0, id: "x", quantity: tiny), 12)
        #expect(rejection?.kind == .overflow)
        #expect(a.position == 13)
        let candle = a.currentCandles().first!
        #expect(candle.trades == 12)
        #expect(candle.volume == d(huge) * d("12"))
        #expect(candle.vwap == d("1.0000000000"))
    }

    /// Random streams with poison mixed in (huge quantities at random scales, times outside the
    /// range, garbage): the streamed candles equal the batch reference over the accepted trades,
    /// and both reject the same records.
    @Test(arguments: TestBudget.seeds(1...12))
    func poisonedStreamsEqualBatch(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 104_729)
        var generator = TradeGenerator(seed: seed)
        let intervals = [CandleInterval("1m")!, CandleInterval("90s")!, CandleInterval("1h")!]
        let configuration = CandleAggregatorConfiguration(
            intervals: intervals, graceMilliseconds: 5_000, emitIntervalMilliseconds: 1_000, allowedLatenessMilliseconds: 10 * 86_400_000)
        var a = CandleAggregator(configuration: configuration)
        var log: [Trade] = []
        var records: [[UInt8]] = []
        var garbage = Set<Int>()
        for i in 0..<2_000 {
            var t = generator.next()
            switch rng.next() % 20 {
            case 0:
                let digits = 30 + Int(rng.next() % 9)
                let scale = Int(rng.next() % 39)
                var text = String((0..<digits).map { _ in Character(String(1 + rng.next() % 9)) })
                if scale > 0 {
                    text =
                        scale >= digits
                        ? "0." + String(repeating: "0", count: scale - digits) + text
                        : String(text.dropLast(scale)) + "." + String(text.suffix(scale))
                }
                t = Trade(
                    exchange: t.exchange, symbol: t.symbol, nativeSymbol: t.nativeSymbol, tradeId: t.tradeId, price: t.price,
                    quantity: d(text), quoteQuantity: d(text), side: t.side, time: t.time, receivedAt: t.receivedAt)
            case 1:
                t.time = [Int64.max, Int64.min, -1, 253_402_300_800_000][Int(rng.next() % 4)]
            case 2:
                garbage.insert(i)
            default: break
            }
            log.append(t)
            records.append(garbage.contains(i) ? Array(#"{"v":1,"time":9223372036854775807}"#.utf8) : t.jsonBytes)
        }
        var rejectedSequences: [Int64] = []
        var emitted: [Candle] = []
        for (i, bytes) in records.enumerated() {
            if let r = bytes.withUnsafeBufferPointer({ a.ingestRecord(bytes: $0, sequence: Int64(i), now: log[i].time) }) {
                if r.kind != .notATrade { rejectedSequences.append(Int64(i)) }
                #expect(r.kind != .notATrade || garbage.contains(i), "\(r)")
            }
            if rng.next() % 50 == 0 { emitted += a.checkpoint(now: log[i].time).candles }
        }
        emitted += a.checkpoint(now: .max).candles
        let sequenced = log.enumerated().filter { !garbage.contains($0.offset) }.map { BatchCandles.SequencedTrade(trade: $1, sequence: Int64($0)) }
        let reference = BatchCandles.computeWithRejections(sequenced, intervals: configuration.intervals)
        #expect(reference.rejected.map(\.sequence) == rejectedSequences)
        #expect(reference.rejected.count > 50, "the stream had poison in it")
        let problems = mismatches(latest(emitted), reference.candles)
        #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(3))")
        #expect(a.counters.unparseable == Int64(garbage.count))
    }

    /// Fuzzing the fast decoder with extreme integers and random edits of valid values: it
    /// never traps, never returns a time outside `Trade.validTimes`, and never disagrees with
    /// `Trade(json:)`; the aggregator fed the same bytes never traps and accounts for every record.
    @Test func fuzzedValuesNeverTrapOrDisagree() {
        var generator = TradeGenerator(seed: 23)
        var rng = SplitMix64(seed: 42)
        let extremes: [String] = [
            "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
            "99999999999999999999999", "253402300799999", "253402300800000", "0", "-0", "-1", "1e18", "1.5", "00",
            "999999999999999999", "-999999999999999999", "18446744073709551616",
        ]
        let decimals: [String] = [
            huge, tiny, "-" + huge, "0", "1e5", String(repeating: "9", count: 39), "0." + String(repeating: "1", count: 38),
            "1." + String(repeating: "0", count: 38), "+1", "007.5",
        ]
        var a = CandleAggregator(configuration: CandleAggregatorConfiguration(intervals: [.oneMinute, .oneDay]))
        var accepted = 0
        var rejected = 0
        for round in 0..<30_000 {
            var text = generator.next().jsonString
            switch rng.next() % 4 {
            case 0:
                let field = ["\"time\":", "\"receivedAt\":", "\"v\":"][Int(rng.next() % 3)]
                text = replaceInteger(after: field, in: text, with: extremes[Int(rng.next() % UInt64(extremes.count))])
            case 1:
                let field = ["\"price\":\"", "\"quantity\":\"", "\"quoteQuantity\":\""][Int(rng.next() % 3)]
                text = replaceString(after: field, in: text, with: decimals[Int(rng.next() % UInt64(decimals.count))])
            default:
                break
            }
            var bytes = Array(text.utf8)
            if rng.next() % 2 == 0 {
                let alphabet = Array(#"{}[]":,.-0123456789eE \"#.utf8)
                for _ in 0..<(1 + Int(rng.next() % 3)) where !bytes.isEmpty {
                    let i = Int(rng.next() % UInt64(bytes.count))
                    switch rng.next() % 3 {
                    case 0: bytes[i] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    case 1: bytes.remove(at: i)
                    default: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: i)
                    }
                }
            }
            let fast = bytes.withUnsafeBufferPointer { TradeFields.decode($0) }
            let reference = try? Trade(json: bytes)
            if let fast {
                #expect(Trade.validTimes.contains(fast.time), "round \(round): \(String(decoding: bytes, as: UTF8.self))")
                #expect(
                    reference != nil && reference!.time == fast.time && reference!.quantity.isIdentical(to: fast.quantity)
                        && reference!.price.isIdentical(to: fast.price) && reference!.quoteQuantity.isIdentical(to: fast.quoteQuantity),
                    "round \(round): \(String(decoding: bytes, as: UTF8.self))")
            }
            if let reference { #expect(Trade.validTimes.contains(reference.time)) }
            if bytes.withUnsafeBufferPointer({ a.ingestRecord(bytes: $0, sequence: Int64(round), now: 0) }) == nil {
                accepted += 1
            } else {
                rejected += 1
            }
        }
        let c = a.counters
        #expect(Int64(rejected) == c.unparseable + c.rejectedTimes + c.rejectedOverflows)
        #expect(Int64(accepted) >= c.trades + c.duplicates)
        #expect(a.position == 30_000)
        #expect(c.rejectedTimes > 100 && c.unparseable > 100 && accepted > 10_000, "\(c)")
    }
}

private func replaceInteger(after field: String, in text: String, with replacement: String) -> String {
    guard let r = text.range(of: field) else { return text }
    var end = r.upperBound
    while end < text.endIndex, text[end] == "-" || text[end].isNumber { end = text.index(after: end) }
    return String(text[..<r.upperBound]) + replacement + String(text[end...])
}

private func replaceString(after field: String, in text: String, with replacement: String) -> String {
    guard let r = text.range(of: field), let close = text[r.upperBound...].firstIndex(of: "\"") else { return text }
    return String(text[..<r.upperBound]) + replacement + String(text[close...])
}
