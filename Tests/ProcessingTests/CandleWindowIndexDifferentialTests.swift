import MarketData
@testable import Processing
import TapeTestSupport
import Testing

// The indexed `CandleAggregator` against `ScanningCandleAggregator` (the same state machine before
// its windows were indexed by end): random streams, random ticks, checkpoints, revisions and idle
// clock jumps, allowed lateness from negative to an hour, with and without a replay prefix. Every
// outcome, emitted candle set, checkpoint, window count and counter must be the same.
@Suite("Indexed aggregator against the scanning one it replaced, call by call")
struct CandleWindowIndexDifferentialTests {
    @Test(arguments: TestBudget.seeds(1...200))
    func sameAsScanning(seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 31337)
        var options = TradeGenerator.Options()
        options.instruments = (0..<Int(rng.next() % 6 + 1)).map { ("poloniex", "C\($0)_USDT") }
        options.meanGapMilliseconds = Int64(rng.next() % 3_000) + 1
        options.duplicateProbability = Double(rng.next() % 20) / 100
        options.disorderProbability = Double(rng.next() % 40) / 100
        options.maxDisorderMilliseconds = Int64(rng.next() % 900_000)
        var generator = TradeGenerator(seed: seed, options: options)
        let all = ["1s", "5s", "1m", "90s", "5m", "1h"].map { CandleInterval($0)! }
        let intervals = all.filter { _ in rng.next() % 2 == 0 } + [all[Int(rng.next() % 6)]]
        let latenesses: [Int64] = [-60_000, -1, 0, 1, 30_000, 600_000, 3_600_000]
        let configuration = CandleAggregatorConfiguration(
            intervals: intervals, graceMilliseconds: Int64(rng.next() % 3) * 5_000, emitIntervalMilliseconds: 1_000,
            allowedLatenessMilliseconds: latenesses[Int(rng.next() % UInt64(latenesses.count))])
        let resume = rng.next() % 3 == 0 ? Int64(rng.next() % 500) : 0
        var new = CandleAggregator(configuration: configuration, startSequence: 0, resumeEmittingAt: resume)
        var old = ScanningCandleAggregator(configuration: configuration, startSequence: 0, resumeEmittingAt: resume)
        let n = Int(rng.next() % 2_500) + 1
        var now: Int64 = 1_700_000_000_000
        func sorted(_ c: [Candle]) -> [Candle] { c.sorted { $0.kafkaKey < $1.kafkaKey } }
        for i in 0..<n {
            now += Int64(rng.next() % 400)
            let t = generator.next()
            let a = new.ingest(t, sequence: Int64(i), now: now)
            let b = old.ingest(t, sequence: Int64(i), now: now)
            #expect("\(a)" == "\(b)")
            switch rng.next() % 20 {
            case 0, 1, 2:
                let x = new.tick(now: now)
                let y = old.tick(now: now)
                #expect(sorted(x) == sorted(y), "tick \(i)")
                #expect(x.count == y.count)
            case 3:
                let x = new.checkpoint(now: now)
                let y = old.checkpoint(now: now)
                #expect(sorted(x.candles) == sorted(y.candles), "checkpoint \(i)")
                #expect(x.checkpoint.replayFrom == y.checkpoint.replayFrom && x.checkpoint.emittedThrough == y.checkpoint.emittedThrough, "checkpoint point \(i)")
            case 4:
                let from = t.time - Int64(rng.next() % 600_000)
                let to = from + Int64(rng.next() % 600_000)
                #expect(new.revise(exchange: t.exchange, symbol: t.symbol, from: from, to: to) == old.revise(exchange: t.exchange, symbol: t.symbol, from: from, to: to))
            case 5:
                now += Int64(rng.next() % 120_000)  // idle clock
                #expect(sorted(new.tick(now: now)) == sorted(old.tick(now: now)))
            default: break
            }
            #expect(new.windowCount == old.windowCount, "windows \(i)")
        }
        let x = new.checkpoint(now: now)
        let y = old.checkpoint(now: now)
        #expect(sorted(x.candles) == sorted(y.candles))
        #expect(x.checkpoint.replayFrom == y.checkpoint.replayFrom && x.checkpoint.emittedThrough == y.checkpoint.emittedThrough)
        #expect(new.counters == old.counters)
        #expect(sorted(new.currentCandles()) == sorted(old.currentCandles()))
    }
}
