import MarketData
import Processing
import TapeTestSupport
import Testing

// The aggregator keeps its windows indexed by end (to finalize and evict only those that are due)
// and its changed windows in a list (to emit only those). These tests check, against what the
// trades alone imply, that nothing due is missed and nothing else is touched.

private func trade(_ id: Int, _ price: String, at time: Int64, symbol: String) -> Trade {
    Trade(
        exchange: .poloniex, symbol: Symbol(normalizing: symbol), nativeSymbol: symbol, tradeId: String(id),
        price: d(price), quantity: d("1"), side: id % 2 == 0 ? .buy : .sell, time: time, receivedAt: time * 1000)
}

private struct WindowID: Hashable {
    var key: String
    var end: Int64
}

@Suite("Candle window index: finalization, re-emission and eviction by window end")
struct CandleWindowIndexTests {
    /// Windows of several instruments and intervals, created in random order; the watermark then
    /// moves on with the clock in random steps. Each tick emits as final exactly the windows whose
    /// end it passed since the last tick — first-time finals in end order across ticks — and
    /// every window still held is final exactly when its end is at or below that point.
    @Test(arguments: TestBudget.seeds(1...8))
    func windowsFinalizeInEndOrderExactlyWhenDue(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 104_729)
        let grace: Int64 = 3 * 3_600_000
        let configuration = CandleAggregatorConfiguration(
            intervals: [CandleInterval("1m")!, CandleInterval("5m")!, CandleInterval("15m")!], graceMilliseconds: grace,
            emitIntervalMilliseconds: 1_000, allowedLatenessMilliseconds: 24 * 3_600_000)
        var a = CandleAggregator(configuration: configuration)
        let symbols = (0..<7).map { "C\($0)_USDT" }
        var expected: [Int64: Set<String>] = [:]  // end → window keys
        let count = Int(rng.next() % 2_000) + 200
        for n in 0..<count {
            let time = Int64(rng.next() % 7_200_000)  // two hours, any order
            let symbol = symbols[Int(rng.next() % UInt64(symbols.count))]
            #expect(a.ingest(trade(n, "10", at: time, symbol: symbol), sequence: Int64(n), now: 0) == .applied)
            for interval in configuration.intervals {
                let start = time - time % interval.milliseconds
                let key = Candle.kafkaKey(exchange: .poloniex, symbol: Symbol(normalizing: symbol), interval: interval, start: start)
                expected[start + interval.milliseconds, default: []].insert(key)
            }
        }
        #expect(a.windowCount == expected.values.reduce(0) { $0 + $1.count })
        let watermark = a.watermark  // highest time − 3 h: nothing final yet
        #expect(a.tick(now: 0).isEmpty)
        var finalizedThrough = watermark
        var previousLastEnd = Int64.min
        var finalsSeen = 0
        var now: Int64 = 0
        while finalizedThrough < 7_200_000 + 900_000 {
            now += Int64(rng.next() % 600_000) + 1
            let point = watermark + now  // idle: the watermark moves with the clock
            let finals = a.tick(now: now)
            let want = Set(expected.filter { $0.key > finalizedThrough && $0.key <= point }.values.flatMap { $0 })
            #expect(Set(finals.map(\.kafkaKey)) == want, "tick at +\(now) ms")
            #expect(finals.count == want.count, "each final once")
            #expect(finals.allSatisfy { $0.isFinal && $0.revision == 0 && $0.end <= point })
            if let first = finals.map(\.end).min() {
                #expect(first >= previousLastEnd, "finals go out in end order across ticks")
                previousLastEnd = finals.map(\.end).max()!
            }
            finalsSeen += finals.count
            for c in a.currentCandles() { #expect(c.isFinal == (c.end <= point), "\(c.kafkaKey) final? end \(c.end), point \(point)") }
            finalizedThrough = point
        }
        #expect(finalsSeen == a.windowCount)
        #expect(a.checkpoint(now: now).candles.isEmpty, "nothing changed since the finals went out")
    }

    /// With many windows held, a checkpoint emits only the open windows that changed, and a late
    /// trade re-emits only its own (final) window, with the next revision.
    @Test func emissionTouchesOnlyChangedWindows() {
        let configuration = CandleAggregatorConfiguration(
            intervals: [.oneMinute], graceMilliseconds: 0, emitIntervalMilliseconds: 1_000, allowedLatenessMilliseconds: 3_600_000)
        var a = CandleAggregator(configuration: configuration)
        var sequence: Int64 = 0
        var id = 0
        func add(_ symbol: String, at time: Int64, price: String = "10") -> CandleAggregator.IngestOutcome {
            defer {
                sequence += 1
                id += 1
            }
            return a.ingest(trade(id, price, at: time, symbol: symbol), sequence: sequence, now: 0)
        }
        // 40 minutes × 5 instruments; the newest minute stays open.
        for minute in 0..<40 {
            for s in 0..<5 { _ = add("S\(s)_USDT", at: Int64(minute) * 60_000 + 1_000) }
        }
        let first = a.checkpoint(now: 0).candles
        #expect(first.count == 200)
        #expect(first.filter(\.isFinal).count == 195)
        #expect(a.checkpoint(now: 0).candles.isEmpty)
        // Two open windows change.
        #expect(add("S1_USDT", at: 39 * 60_000 + 2_000) == .applied)
        #expect(add("S3_USDT", at: 39 * 60_000 + 3_000) == .applied)
        #expect(a.tick(now: 0).isEmpty, "open windows wait for the checkpoint")
        let update = a.checkpoint(now: 0).candles
        #expect(update.map(\.symbol.rawValue).sorted() == ["S1-USDT", "S3-USDT"])
        #expect(update.allSatisfy { !$0.isFinal && $0.trades == 2 })
        // A late trade into a final window: only that window, revision 1, at the next tick.
        #expect(add("S2_USDT", at: 7 * 60_000 + 5, price: "3") == .late)
        let corrected = a.tick(now: 0)
        #expect(corrected.count == 1)
        let seventhMinute: Int64 = 7 * 60_000
        #expect(corrected.first?.start == seventhMinute)
        #expect(corrected.first?.symbol.rawValue == "S2-USDT")
        #expect(corrected.first?.revision == 1)
        #expect(corrected.first?.trades == 2)
        #expect(corrected.first?.low == d("3"))
        #expect(a.tick(now: 0).isEmpty)
        #expect(a.checkpoint(now: 0).candles.isEmpty)
    }

    /// Windows are forgotten exactly when the watermark passes their end plus the allowed
    /// lateness; a trade for a forgotten window is too late, one for a held final window is late;
    /// the checkpoint's replay point is the first sequence of the oldest window still held.
    @Test(arguments: TestBudget.seeds(1...6))
    func evictionFollowsAllowedLateness(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 7_727)
        let lateness = Int64(rng.next() % 4) * 150_000 + 1  // 1 ms ... 7.5 min
        let configuration = CandleAggregatorConfiguration(
            intervals: [.oneMinute, .fiveMinutes], graceMilliseconds: 0, emitIntervalMilliseconds: 1_000,
            allowedLatenessMilliseconds: lateness)
        var a = CandleAggregator(configuration: configuration)
        // Per window (key): end and the sequence of its first trade.
        var held: [String: (end: Int64, first: Int64, symbol: String)] = [:]
        var sequence: Int64 = 0
        var time: Int64 = 0
        var id = 0
        for _ in 0..<600 {
            time += Int64(rng.next() % 20_000)
            let symbol = "S\(rng.next() % 3)_USDT"
            let before = a.watermark
            let outcome = a.ingest(trade(id, "10", at: time, symbol: symbol), sequence: sequence, now: 0)
            #expect(outcome == .applied)
            for interval in configuration.intervals {
                let start = time - time % interval.milliseconds
                let key = Candle.kafkaKey(exchange: .poloniex, symbol: Symbol(normalizing: symbol), interval: interval, start: start)
                if held[key] == nil { held[key] = (start + interval.milliseconds, sequence, symbol) }
            }
            id += 1
            sequence += 1
            if rng.next() % 5 == 0 {
                let cp = a.checkpoint(now: 0).checkpoint
                let watermark = a.watermark
                held = held.filter { $0.value.end + lateness > watermark }
                #expect(a.windowCount == held.count, "watermark \(watermark), was \(before)")
                #expect(Set(a.currentCandles().map(\.kafkaKey)) == Set(held.keys))
                #expect(cp.replayFrom == held.values.map(\.first).min() ?? sequence)
                #expect(cp.emittedThrough == sequence)
            }
        }
        _ = a.checkpoint(now: 0)
        let watermark = a.watermark
        held = held.filter { $0.value.end + lateness > watermark }
        #expect(a.windowCount == held.count)
        // A trade into the oldest minute still held: a correction if that minute is final.
        let oldest = held.filter { $0.key.contains(":1m:") }.min { $0.value.end < $1.value.end }!.value
        let outcome = a.ingest(trade(id, "9", at: oldest.end - 1, symbol: oldest.symbol), sequence: sequence, now: 0)
        #expect(outcome == (oldest.end <= watermark ? .late : .applied))
        #expect(a.windowCount == held.count, "no window was created")
        id += 1
        sequence += 1
        // Older than the allowed lateness in every interval: dropped, nothing created.
        let gone = a.ingest(trade(id, "9", at: watermark - lateness - 360_001, symbol: oldest.symbol), sequence: sequence, now: 0)
        #expect(gone == .tooLate)
        #expect(a.windowCount == held.count)
    }
}
