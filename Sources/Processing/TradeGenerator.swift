import MarketData
import TapeCommon

/// A seeded, deterministic generator of trade streams for tests and benchmarks: several
/// instruments, prices on a random walk, and (by configuration) duplicates, out-of-order and
/// late trades, and trades exactly on window edges.
public struct TradeGenerator: Sendable {
    /// What to generate.
    public struct Options: Sendable {
        /// Instruments, as (exchange, native symbol). Default three Poloniex markets.
        public var instruments: [(exchange: String, symbol: String)] = [("poloniex", "BTC_USDT"), ("poloniex", "ETH_USDT"), ("binance", "BTCUSDT")]
        /// First trade time (ms). Default 2022-08-21T23:12:00Z.
        public var startTime: Int64 = 1_661_123_520_000
        /// Mean gap between consecutive trade times (ms). Default 250.
        public var meanGapMilliseconds: Int64 = 250
        /// Probability that a trade is re-sent later (a duplicate). Default 0.05.
        public var duplicateProbability = 0.05
        /// Probability that a trade's time lies before the newest time (out of order, within
        /// `maxDisorderMilliseconds`). Default 0.1.
        public var disorderProbability = 0.1
        /// Largest backwards jump of an out-of-order trade (ms). Default 20 000.
        public var maxDisorderMilliseconds: Int64 = 20_000
        /// Probability that a trade lands exactly on a minute boundary (or one ms before one). Default 0.05.
        public var edgeProbability = 0.05
        /// Added to every trade id, so that several generators can write one topic without
        /// reusing ids (instrument i's ids start at `idBase + (i + 1) × 1 000 000`). Default 0.
        public var idBase: UInt64 = 0
        public init() {}
    }

    public var options: Options
    private var rng: SplitMix64
    private var time: Int64
    private var nextID: [UInt64]
    private var prices: [Int64]
    private var recent: [Trade] = []
    private var receivedAt: Int64 = 1_661_123_520_000_000

    public init(seed: UInt64, options: Options = Options()) {
        self.options = options
        rng = SplitMix64(seed: seed)
        time = options.startTime
        nextID = options.instruments.indices.map { options.idBase + UInt64($0 + 1) * 1_000_000 }
        prices = options.instruments.map { _ in 2_000_000 }  // 20000.00 at scale 2
    }

    /// The next trade to append to the log.
    public mutating func next() -> Trade {
        if !recent.isEmpty, chance(options.duplicateProbability) {
            return recent[Int(rng.next() % UInt64(recent.count))]
        }
        let i = Int(rng.next() % UInt64(options.instruments.count))
        time += Int64(rng.next() % UInt64(2 * options.meanGapMilliseconds + 1))
        var t = time
        if chance(options.disorderProbability) {
            t -= Int64(rng.next() % UInt64(options.maxDisorderMilliseconds + 1))
        } else if chance(options.edgeProbability) {
            t = t - t % 60_000 - (chance(0.5) ? 1 : 0)
        }
        prices[i] = max(1, prices[i] + Int64(rng.next() % 201) - 100)
        let price = ExactDecimal(mantissa: prices[i], scale: 2)
        let quantity = ExactDecimal(mantissa: Int64(rng.next() % 100_000) + 1, scale: Int(rng.next() % 6))
        nextID[i] += 1
        receivedAt += 1_000
        let (exchange, native) = options.instruments[i]
        let trade = Trade(
            exchange: Exchange(exchange), symbol: Symbol(normalizing: native), nativeSymbol: native,
            tradeId: String(nextID[i]), price: price, quantity: quantity, side: chance(0.5) ? .buy : .sell,
            time: t, receivedAt: receivedAt)
        if recent.count < 256 { recent.append(trade) } else { recent[Int(rng.next() % 256)] = trade }
        return trade
    }

    /// `count` trades.
    public mutating func trades(_ count: Int) -> [Trade] {
        (0..<count).map { _ in next() }
    }

    private mutating func chance(_ p: Double) -> Bool {
        p > 0 && Double(rng.next() % 1_000_000) < p * 1_000_000
    }
}
