import MarketData
import Processing
import TapeTestSupport
import Testing

/// An exact decimal literal (shared by this target's tests).
func d(_ text: String) -> ExactDecimal {
    do { return try ExactDecimal(text) } catch { fatalError("bad literal \(text)") }
}

private func trade(_ id: String, _ price: String, _ quantity: String, _ side: Side, at time: Int64, symbol: String = "BTC_USDT") -> Trade {
    Trade(
        exchange: .poloniex, symbol: Symbol(normalizing: symbol), nativeSymbol: symbol, tradeId: id,
        price: d(price), quantity: d(quantity), side: side, time: time, receivedAt: time * 1000)
}

/// Latest value per key of a stream of emitted candles.
func latest(_ candles: [Candle]) -> [String: Candle] {
    var out: [String: Candle] = [:]
    for c in candles { out[c.kafkaKey] = c }
    return out
}

/// Compares streamed latest values with the reference; returns readable differences.
func mismatches(_ streamed: [String: Candle], _ reference: [String: Candle]) -> [String] {
    var problems: [String] = []
    for (key, ref) in reference {
        guard let got = streamed[key] else {
            problems.append("\(key): missing")
            continue
        }
        if let diff = BatchCandles.difference(got, ref) { problems.append("\(key): \(diff)") }
    }
    for key in streamed.keys where reference[key] == nil { problems.append("\(key): not in reference") }
    return problems
}

private let allIntervals = ["1s", "5s", "15s", "1m", "90s", "5m", "7m", "1h", "4h", "1d"].map { CandleInterval($0)! }

@Suite("Candle aggregation against the batch reference")
struct CandleAggregatorPropertyTests {
    /// Random streams (duplicates, out-of-order, edge times, many intervals), random tick and
    /// checkpoint moments: after a final checkpoint the latest candle per key equals the reference.
    @Test(arguments: TestBudget.seeds(1...24))
    func streamEqualsBatch(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 7919)
        var options = TradeGenerator.Options()
        options.meanGapMilliseconds = Int64(rng.next() % 2_000) + 1
        options.duplicateProbability = Double(rng.next() % 30) / 100
        options.disorderProbability = Double(rng.next() % 40) / 100
        options.maxDisorderMilliseconds = Int64(rng.next() % 600_000)
        var generator = TradeGenerator(seed: seed, options: options)
        let trades = generator.trades(Int(rng.next() % 3_000) + 1)
        let intervals = allIntervals.filter { _ in rng.next() % 2 == 0 } + [allIntervals[Int(rng.next() % UInt64(allIntervals.count))]]
        let grace = Int64(rng.next() % 3) * 5_000
        let configuration = CandleAggregatorConfiguration(
            intervals: intervals, graceMilliseconds: grace, emitIntervalMilliseconds: 1_000,
            allowedLatenessMilliseconds: options.maxDisorderMilliseconds + 86_400_000)
        var aggregator = CandleAggregator(configuration: configuration)
        var emitted: [Candle] = []
        var now = trades[0].time
        for (offset, t) in trades.enumerated() {
            now += Int64(rng.next() % 50)
            // Both entry points: decoded trades, and record bytes through the fast decoder.
            if rng.next() % 2 == 0 {
                aggregator.ingest(t, sequence: Int64(offset), now: now)
            } else {
                let ok = aggregator.ingest(value: t.jsonBytes, sequence: Int64(offset), now: now)
                #expect(ok)
            }
            switch rng.next() % 20 {
            case 0: emitted += aggregator.tick(now: now)
            case 1: emitted += aggregator.checkpoint(now: now).candles
            default: break
            }
        }
        emitted += aggregator.checkpoint(now: now + 10 * 86_400_000).candles
        let reference = BatchCandles.compute(trades.enumerated().map { .init(trade: $1, sequence: Int64($0)) }, intervals: configuration.intervals)
        let problems = mismatches(latest(emitted), reference)
        #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5))")
        let allFinal = latest(emitted).values.allSatisfy { $0.isFinal }
        #expect(allFinal, "all windows final once the clock has moved a day on")
        #expect(aggregator.counters.droppedTooLate == 0)
        let distinct = Set(trades.map { "\($0.exchange):\($0.symbol):\($0.tradeId)" }).count
        #expect(aggregator.counters.trades == Int64(distinct))
        #expect(aggregator.counters.duplicates == Int64(trades.count - distinct))
        // The per-interval counts (tape_candles_emitted_total{interval}) are the candles handed out.
        var byInterval: [CandleInterval: Int64] = [:]
        for c in emitted { byInterval[c.interval, default: 0] += 1 }
        #expect(aggregator.counters.candlesEmittedByInterval == byInterval)
        #expect(aggregator.counters.candlesEmitted == Int64(emitted.count))
    }

    /// The recovery protocol, simulated: the process crashes at random points; emissions after the
    /// last checkpoint may or may not have reached the topic; a new owner replays from the
    /// committed `replayFrom` and emits from the committed `emittedThrough` on. The latest value
    /// per key equals the reference — also with a small allowed lateness, where windows are evicted
    /// and the replay start moves forward.
    @Test(arguments: TestBudget.seeds(1...24))
    func crashesAndReplaysEqualBatch(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 104_729)
        var options = TradeGenerator.Options()
        options.meanGapMilliseconds = Int64(rng.next() % 3_000) + 1
        options.maxDisorderMilliseconds = Int64(rng.next() % 120_000)
        // Occasionally jump far ahead in time, so old windows are evicted between checkpoints.
        var generator = TradeGenerator(seed: seed, options: options)
        var trades: [Trade] = []
        for i in 0..<(Int(rng.next() % 4_000) + 50) {
            var t = generator.next()
            if i > 0 && rng.next() % 500 == 0 { generator.options.startTime += 0 }
            if rng.next() % 700 == 0 { t.time += 5 * 3_600_000 }
            trades.append(t)
        }
        let intervals = [allIntervals[Int(rng.next() % 6)], allIntervals[Int(rng.next() % UInt64(allIntervals.count))]]
        let configuration = CandleAggregatorConfiguration(
            intervals: intervals, graceMilliseconds: 5_000, emitIntervalMilliseconds: 1_000,
            allowedLatenessMilliseconds: options.maxDisorderMilliseconds + 3_600_000)
        // Trades later than the allowed lateness are dropped by design; the reference is computed
        // over what a single uninterrupted run keeps, so compare the crashing run with that run.
        var topic: [Candle] = []
        var committed = CandleAggregator.Checkpoint(replayFrom: 0, emittedThrough: 0)
        var now = trades[0].time
        var crashes = 0
        var aggregator = CandleAggregator(configuration: configuration)
        var unacknowledged: [Candle] = []
        var offset = 0
        while offset < trades.count {
            now += Int64(rng.next() % 100)
            aggregator.ingest(trades[offset], sequence: Int64(offset), now: now)
            offset += 1
            if rng.next() % 10 == 0 { unacknowledged += aggregator.tick(now: now) }
            if rng.next() % 25 == 0 {
                let (candles, checkpoint) = aggregator.checkpoint(now: now)
                topic += unacknowledged + candles  // producer flush: all acknowledged
                unacknowledged = []
                if !aggregator.isSuppressing { committed = checkpoint }
            }
            if rng.next() % 300 == 0 {
                // kill -9: some unacknowledged records made it, the rest did not.
                topic += unacknowledged.filter { _ in rng.next() % 2 == 0 }
                unacknowledged = []
                crashes += 1
                aggregator = CandleAggregator(configuration: configuration, startSequence: committed.replayFrom, resumeEmittingAt: committed.emittedThrough)
                offset = Int(committed.replayFrom)
            }
        }
        topic += unacknowledged + aggregator.checkpoint(now: now + 10 * 86_400_000).candles

        var clean = CandleAggregator(configuration: configuration)
        var cleanOut: [Candle] = []
        for (i, t) in trades.enumerated() { clean.ingest(t, sequence: Int64(i), now: trades[0].time) }
        cleanOut += clean.checkpoint(now: now + 10 * 86_400_000).candles
        let cleanLatest = latest(cleanOut)
        let problems = mismatches(latest(topic), cleanLatest)
        #expect(problems.isEmpty, "seed \(seed), \(crashes) crashes: \(problems.prefix(5))")
        if clean.counters.droppedTooLate == 0 {
            let reference = BatchCandles.compute(trades.enumerated().map { .init(trade: $1, sequence: Int64($0)) }, intervals: configuration.intervals)
            #expect(mismatches(cleanLatest, reference).isEmpty)
        }
    }
}

@Suite("Candle aggregation rules")
struct CandleAggregatorRuleTests {
    let minute = CandleAggregatorConfiguration(
        intervals: [.oneMinute], graceMilliseconds: 5_000, emitIntervalMilliseconds: 1_000, allowedLatenessMilliseconds: 600_000)

    @Test func windowEdgesAreStartInclusiveEndExclusive() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 60_000), sequence: 0, now: 0)
        a.ingest(trade("2", "11", "1", .buy, at: 119_999), sequence: 1, now: 0)
        a.ingest(trade("3", "12", "1", .sell, at: 120_000), sequence: 2, now: 0)
        let candles = latest(a.checkpoint(now: 0).candles)
        let first = candles["poloniex:BTC-USDT:1m:60000"]
        let second = candles["poloniex:BTC-USDT:1m:120000"]
        #expect(first?.trades == 2)
        #expect(first?.open == d("10"))
        #expect(first?.close == d("11"))
        #expect(first?.end == 120_000)
        #expect(second?.trades == 1)
        #expect(second?.sellVolume == d("1"))
        #expect(candles.count == 2)
    }

    @Test func ohlcvAndVwapAreExact() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "21614.59", "0.01149", .sell, at: 1_000), sequence: 0, now: 0)
        a.ingest(trade("2", "21620.00", "0.5", .buy, at: 2_000), sequence: 1, now: 0)
        a.ingest(trade("3", "21610.10", "0.3", .sell, at: 500), sequence: 2, now: 0)  // out of order: new open
        a.ingest(trade("2", "21620.00", "0.5", .buy, at: 2_000), sequence: 3, now: 0)  // duplicate
        let c = a.checkpoint(now: 0).candles[0]
        #expect(c.open == d("21610.10"))
        #expect(c.close == d("21620.00"))
        #expect(c.high == d("21620.00"))
        #expect(c.low == d("21610.10"))
        #expect(c.volume == d("0.81149"))
        #expect(c.buyVolume == d("0.5"))
        #expect(c.sellVolume == d("0.31149"))
        // 248.3516391 + 10810 + 6483.03 = 17541.3816391; / 0.81149 = 21616.2388... (10 digits, half even)
        #expect(c.quoteVolume == d("17541.3816391"))
        let expected = try? d("17541.3816391").divided(by: d("0.81149"), scale: 10)
        #expect(c.vwap == expected)
        #expect(c.trades == 3)
        #expect(a.counters.duplicates == 1)
        #expect(!c.isFinal)
    }

    @Test func equalTimesBreakTiesByLogPosition() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 1_000), sequence: 0, now: 0)
        a.ingest(trade("2", "20", "1", .buy, at: 1_000), sequence: 1, now: 0)
        let c = a.checkpoint(now: 0).candles[0]
        #expect(c.open == d("10"))
        #expect(c.close == d("20"))
    }

    @Test func finalWhenWatermarkPassesEndThenLateTradeCorrectsWithRevision() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 10_000), sequence: 0, now: 0)
        #expect(a.checkpoint(now: 0).candles.map(\.isFinal) == [false])
        // 64 999 - 5 000 grace < 60 000: not yet final.
        a.ingest(trade("2", "10", "1", .buy, at: 64_999), sequence: 1, now: 0)
        #expect(a.tick(now: 0).isEmpty)
        a.ingest(trade("3", "10", "1", .buy, at: 65_000), sequence: 2, now: 0)
        let finals = a.tick(now: 0)
        #expect(finals.count == 1)
        #expect(finals.first?.isFinal == true)
        #expect(finals.first?.revision == 0)
        #expect(finals.first?.trades == 1)
        #expect(a.tick(now: 0).isEmpty, "a final goes out once")
        let outcome = a.ingest(trade("4", "9", "2", .sell, at: 59_999), sequence: 3, now: 0)
        #expect(outcome == .late)
        #expect(a.counters.lateTrades == 1)
        let corrected = a.tick(now: 0)
        #expect(corrected.count == 1)
        #expect(corrected.first?.revision == 1)
        #expect(corrected.first?.trades == 2)
        #expect(corrected.first?.low == d("9"))
        #expect(corrected.first?.close == d("9"))
        #expect(corrected.first?.isFinal == true)
    }

    @Test func tradesBeyondAllowedLatenessAreDroppedAndCounted() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 10_000), sequence: 0, now: 0)
        a.ingest(trade("2", "10", "1", .buy, at: 60_000 + 600_000 + 5_000), sequence: 1, now: 0)
        _ = a.checkpoint(now: 0)
        #expect(a.ingest(trade("3", "10", "1", .buy, at: 20_000), sequence: 2, now: 0) == .tooLate)
        #expect(a.counters.droppedTooLate == 1)
        #expect(a.windowCount == 1, "the old window was forgotten")
    }

    @Test func reviseReEmitsTheWindowsAGapOverlaps() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 10_000), sequence: 0, now: 0)
        a.ingest(trade("2", "10", "1", .buy, at: 70_000), sequence: 1, now: 0)
        a.ingest(trade("3", "10", "1", .buy, at: 10_000, symbol: "ETH_USDT"), sequence: 2, now: 0)
        a.ingest(trade("4", "10", "1", .buy, at: 66_000), sequence: 3, now: 0)
        let first = a.checkpoint(now: 0).candles
        #expect(first.count == 3)
        #expect(a.checkpoint(now: 0).candles.isEmpty)
        // A gap from 50 s to 65 s in BTC: both BTC minutes, not ETH's.
        #expect(a.revise(exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), from: 50_000, to: 65_000) == 2)
        let again = a.checkpoint(now: 0).candles
        #expect(again.map(\.start).sorted() == [0, 60_000])
        #expect(again.allSatisfy { $0.symbol.rawValue == "BTC-USDT" })
        let finalMinute = again.first { $0.start == 0 }
        #expect(finalMinute?.isFinal == true && finalMinute?.revision == 1, "a final window gets a new revision")
        #expect(finalMinute?.trades == 1, "nothing else changes")
        #expect(a.revise(exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), from: 200_000, to: 300_000) == 0)
        #expect(a.revise(exchange: Exchange("kraken"), symbol: Symbol(normalizing: "BTC_USDT"), from: 0, to: 300_000) == 0)
    }

    @Test func openWindowsEmitOnlyAtCheckpoints() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 1_000), sequence: 0, now: 0)
        #expect(a.tick(now: 0).isEmpty, "open windows wait for the emit interval")
        #expect(a.checkpoint(now: 0).candles.count == 1)
        #expect(a.checkpoint(now: 1_000).candles.isEmpty, "unchanged: nothing to emit")
        a.ingest(trade("2", "11", "1", .buy, at: 2_000), sequence: 1, now: 1_000)
        a.ingest(trade("3", "12", "1", .buy, at: 3_000), sequence: 2, now: 1_000)
        let update = a.checkpoint(now: 2_000).candles
        #expect(update.count == 1)
        #expect(update.first?.trades == 3)
    }

    @Test func idlePartitionAdvancesWithTheClock() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 50_000), sequence: 0, now: 1_000_000)
        #expect(a.tick(now: 1_000_000).isEmpty)
        // Watermark 45 000 + 14 999 ms of silence < 60 000.
        #expect(a.tick(now: 1_014_999).isEmpty)
        let finals = a.tick(now: 1_015_000)
        #expect(finals.map(\.isFinal) == [true])
    }

    @Test func checkpointTellsWhereToReplayFrom() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("1", "10", "1", .buy, at: 10_000), sequence: 100, now: 0)
        a.ingest(trade("2", "10", "1", .buy, at: 70_000), sequence: 101, now: 0)
        var cp = a.checkpoint(now: 0).checkpoint
        #expect(cp == .init(replayFrom: 100, emittedThrough: 102))
        a.ingest(trade("3", "10", "1", .buy, at: 60_000 + 600_000 + 5_000), sequence: 102, now: 0)
        cp = a.checkpoint(now: 0).checkpoint
        #expect(cp == .init(replayFrom: 101, emittedThrough: 103), "the first window was evicted")
    }

    @Test func replayBeforeResumePointEmitsNothing() {
        var a = CandleAggregator(configuration: minute, startSequence: 0, resumeEmittingAt: 2)
        a.ingest(trade("1", "10", "1", .buy, at: 10_000), sequence: 0, now: 0)
        #expect(a.checkpoint(now: 0).candles.isEmpty)
        a.ingest(trade("2", "11", "1", .buy, at: 11_000), sequence: 1, now: 0)
        #expect(a.checkpoint(now: 0).candles.isEmpty)
        a.ingest(trade("3", "12", "1", .buy, at: 12_000), sequence: 2, now: 0)
        let out = a.checkpoint(now: 0).candles
        #expect(out.count == 1)
        #expect(out.first?.trades == 3)
    }

    @Test func numericAndTextIdsDeduplicateExactly() {
        var a = CandleAggregator(configuration: minute)
        a.ingest(trade("007", "10", "1", .buy, at: 1_000), sequence: 0, now: 0)
        a.ingest(trade("7", "10", "1", .buy, at: 1_000), sequence: 1, now: 0)
        a.ingest(trade("abc-1", "10", "1", .buy, at: 1_000), sequence: 2, now: 0)
        a.ingest(trade("abc-1", "10", "1", .buy, at: 1_000), sequence: 3, now: 0)
        a.ingest(trade("7", "10", "1", .buy, at: 1_000, symbol: "ETH_USDT"), sequence: 4, now: 0)
        #expect(a.counters.trades == 4)
        #expect(a.counters.duplicates == 1)
    }
}
