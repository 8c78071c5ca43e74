import Foundation
import MarketData

/// The processing core without Kafka: JSON trade values → `CandleAggregator` → candles, timed.
public enum ProcessBenchmark {
    /// One measurement.
    public struct Result: Sendable {
        public var trades: Int
        public var seconds: Double
        public var candles: Int
        public var tradesPerSecond: Double { Double(trades) / seconds }
    }

    /// Encoded trade values from the seeded generator (as `tape.trades` would hold them).
    public static func encodedTrades(count: Int, instruments: Int = 20, seed: UInt64 = 1) -> [[UInt8]] {
        var options = TradeGenerator.Options()
        options.instruments = (0..<instruments).map { i in ("poloniex", "C\(i)_USDT") }
        options.meanGapMilliseconds = 5
        var generator = TradeGenerator(seed: seed, options: options)
        return (0..<count).map { _ in generator.next().jsonBytes }
    }

    /// Decodes and aggregates every value (one partition), with a checkpoint every `checkpointEvery`
    /// trades (as the processor does once per emit interval) and, if `tickEvery` is set, a tick
    /// every that many trades (as the processor does every 100 ms).
    public static func decodeAndAggregate(
        _ values: [[UInt8]], configuration: CandleAggregatorConfiguration, checkpointEvery: Int = 100_000, tickEvery: Int? = nil
    ) -> Result {
        var aggregator = CandleAggregator(configuration: configuration)
        var candles = 0
        let tickEvery = max(1, tickEvery ?? Int.max)
        let start = DispatchTime.now().uptimeNanoseconds
        for (i, value) in values.enumerated() {
            aggregator.ingest(value: value, sequence: Int64(i), now: 0)
            if i % checkpointEvery == checkpointEvery - 1 {
                candles += aggregator.checkpoint(now: 0).candles.count
            } else if i % tickEvery == tickEvery - 1 {
                candles += aggregator.tick(now: 0).count
            }
        }
        candles += aggregator.checkpoint(now: 0).candles.count
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(trades: values.count, seconds: seconds, candles: candles)
    }

    /// Aggregates already-decoded trades (the state machine alone).
    public static func aggregate(_ trades: [Trade], configuration: CandleAggregatorConfiguration, checkpointEvery: Int = 100_000) -> Result {
        var aggregator = CandleAggregator(configuration: configuration)
        var candles = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for (i, trade) in trades.enumerated() {
            aggregator.ingest(trade, sequence: Int64(i), now: 0)
            if i % checkpointEvery == checkpointEvery - 1 { candles += aggregator.checkpoint(now: 0).candles.count }
        }
        candles += aggregator.checkpoint(now: 0).candles.count
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(trades: trades.count, seconds: seconds, candles: candles)
    }

    /// The fast field decoder alone (what the processor uses; `Trade(json:)` only as fallback).
    public static func decodeFields(_ values: [[UInt8]]) -> Result {
        var sum: Int64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for value in values {
            value.withUnsafeBufferPointer { b in
                if let f = TradeFields.decode(b) { sum &+= f.time }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(trades: values.count, seconds: seconds, candles: Int(sum & 1))
    }

    /// Decoding alone with the reference decoder.
    public static func decode(_ values: [[UInt8]]) -> Result {
        var sum: Int64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for value in values {
            if let trade = try? Trade(json: value) { sum &+= trade.time }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(trades: values.count, seconds: seconds, candles: Int(sum & 1))
    }
}
