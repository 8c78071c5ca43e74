import MarketData

/// A deterministic market: the same seed and the same sequence of `next` calls give the same
/// trades (symbols, ids, prices, quantities, sides), whatever the machine. Prices walk in ticks
/// with occasional jumps; trades come in bursts (several fills of one taker order at one
/// millisecond, same side, walking the book), which is why venues send several trades per frame.
/// Times are given by the caller (the servers pass wall-clock milliseconds).
public struct MarketGenerator: Sendable {
    /// One simulated market.
    public struct Market: Sendable, Hashable {
        /// Native symbol, "BTC_USDT".
        public var native: String
        public var symbol: Symbol
        /// Price in ticks of 10^-priceScale.
        public var priceTicks: Int64
        public var priceScale: Int
        public var quantityScale: Int
        /// Typical quantity in units of 10^-quantityScale.
        public var typicalQuantity: Int64
        /// Relative share of the market's trades.
        public var weight: Double
    }

    public private(set) var markets: [Market]
    /// The next trade id (ids are global across markets and increase, as Poloniex's do).
    public private(set) var nextID: UInt64
    private var random: SeededRandom
    private let cumulativeWeights: [Double]

    /// A market of `symbols` (native names; nil = `defaultSymbols(count:)`).
    public init(seed: UInt64, symbols: [String]? = nil, firstID: UInt64 = 100_000_000) {
        var random = SeededRandom(seed: seed)
        let names = symbols ?? MarketGenerator.defaultSymbols(count: 12)
        var markets: [Market] = []
        for (i, name) in names.enumerated() {
            let reference = MarketGenerator.referencePrice(for: name)
            // priceScale chosen so a tick is ~1e-5 of the price.
            var priceScale = 0
            var p = reference
            while p < 100_000 && priceScale < 10 {
                p *= 10
                priceScale += 1
            }
            let jitter = 0.9 + 0.2 * random.nextUnit()
            let ticks = Int64(p * jitter)
            let quantityScale = reference > 1000 ? 6 : (reference > 1 ? 4 : 2)
            var typical: Int64 = 1
            for _ in 0..<quantityScale { typical *= 10 }
            // About 100 quote units a trade.
            let typicalQuantity = max(1, Int64(Double(typical) * 100 / reference))
            markets.append(
                Market(
                    native: name, symbol: Symbol(normalizing: name), priceTicks: max(1, ticks), priceScale: priceScale,
                    quantityScale: quantityScale, typicalQuantity: typicalQuantity, weight: 1 / Double(i + 1)))
        }
        var sum = 0.0
        var cumulative: [Double] = []
        for m in markets {
            sum += m.weight
            cumulative.append(sum)
        }
        self.markets = markets
        self.cumulativeWeights = cumulative.map { $0 / sum }
        self.random = random
        self.nextID = firstID
    }

    /// `count` native symbols: well-known USDT markets first, then BTC crosses, then made-up ones.
    public static func defaultSymbols(count: Int) -> [String] {
        let bases = [
            "BTC", "ETH", "SOL", "XRP", "DOGE", "TRX", "LTC", "BCH", "ADA", "DOT", "LINK", "AVAX", "ATOM", "XMR", "ETC",
            "UNI", "AAVE", "FIL", "NEAR", "APT",
        ]
        var out: [String] = []
        for base in bases where out.count < count { out.append("\(base)_USDT") }
        for base in bases.dropFirst() where out.count < count { out.append("\(base)_BTC") }
        var n = 0
        while out.count < count {
            out.append("SIM\(n)_USDT")
            n += 1
        }
        return out
    }

    static func referencePrice(for native: String) -> Double {
        let table: [String: Double] = [
            "BTC_USDT": 21_600, "ETH_USDT": 1_620, "SOL_USDT": 35.5, "XRP_USDT": 0.345, "DOGE_USDT": 0.068,
            "TRX_USDT": 0.067, "LTC_USDT": 56, "BCH_USDT": 130, "ADA_USDT": 0.45, "DOT_USDT": 7.6, "LINK_USDT": 7.2,
            "AVAX_USDT": 21, "ATOM_USDT": 12, "XMR_USDT": 155, "ETC_USDT": 33, "UNI_USDT": 6.5, "AAVE_USDT": 95,
            "FIL_USDT": 6.3, "NEAR_USDT": 3.9, "APT_USDT": 8.1,
        ]
        if let p = table[native] { return p }
        if native.hasSuffix("_BTC") {
            let base = native.dropLast(4)
            if let usdt = table["\(base)_USDT"] { return usdt / 21_600 }
            return 0.0001
        }
        var h: UInt64 = 1469598103934665603
        for b in native.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        return Double(h % 10_000) / 100 + 0.5
    }

    /// The next `count` trades, all at `time` (ms). Trades come in bursts of 1 to 8 fills.
    public mutating func next(count: Int, time: Int64) -> [Trade] {
        var trades: [Trade] = []
        trades.reserveCapacity(count)
        while trades.count < count {
            let index = pickMarket()
            let burst = min(count - trades.count, random.nextUnit() < 0.15 ? 2 + Int(random.next() % 7) : 1)
            let side: Side = random.next() & 1 == 0 ? .buy : .sell
            var market = markets[index]
            // Random walk: ±3 ticks per step, a rare jump of up to 0.2 %.
            var step = Int64(random.next() % 7) - 3
            if random.nextUnit() < 0.01 { step += (Int64(random.next() % 41) - 20) * max(1, market.priceTicks / 10_000) }
            market.priceTicks = max(1, market.priceTicks + step)
            for _ in 0..<burst {
                // A taker walks the book: each fill is at a price no better than the last.
                if random.next() % 3 == 0 { market.priceTicks = max(1, market.priceTicks + (side == .buy ? 1 : -1)) }
                let quantityUnits = max(1, Int64(Double(market.typicalQuantity) * (0.05 + 2 * random.nextUnit())))
                let price = ExactDecimal(mantissa: market.priceTicks, scale: market.priceScale)
                let quantity = ExactDecimal(mantissa: quantityUnits, scale: market.quantityScale)
                trades.append(
                    Trade(
                        exchange: .poloniex, symbol: market.symbol, nativeSymbol: market.native, tradeId: String(nextID),
                        price: price, quantity: quantity, side: side, time: time, receivedAt: 0))
                nextID += 1
            }
            markets[index] = market
        }
        return trades
    }

    private mutating func pickMarket() -> Int {
        let u = random.nextUnit()
        var lo = 0
        var hi = cumulativeWeights.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulativeWeights[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// SplitMix64: small, fast, seedable; the same sequence on every platform.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
