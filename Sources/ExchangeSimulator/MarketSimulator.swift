import MarketData
import TapeCommon

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One instrument of the simulated market.
public struct SimulatedInstrument: Sendable, Hashable {
    /// Native symbol, e.g. "BTC_USDT".
    public var nativeSymbol: String
    /// Opening price; its scale is the tick size ("21614.59" → ticks of 0.01).
    public var startPrice: ExactDecimal
    /// Fractional digits of quantities.
    public var quantityScale: Int
    /// Relative share of the order flow.
    public var weight: Int
    /// Annualized volatility of the price, as a fraction (0.6: 60 % a year, about 3 % a day and
    /// 0.25 % in 10 minutes). The price is a mean-reverting random walk in log space around
    /// `startPrice` (it stays within a third and three times of it).
    public var volatility: Double
    /// Median base quantity of one trade; sizes are log-normal around it (a tenth of a percent of
    /// trades over 100 times it), at least one lot and at most 2,000 times it.
    public var medianQuantity: Double

    public init(
        nativeSymbol: String, startPrice: ExactDecimal, quantityScale: Int, weight: Int = 1, volatility: Double = 0.6,
        medianQuantity: Double? = nil
    ) {
        self.nativeSymbol = nativeSymbol
        self.startPrice = startPrice
        self.quantityScale = max(0, min(12, quantityScale))
        self.weight = max(1, weight)
        self.volatility = volatility.isFinite ? max(0, min(10, volatility)) : 0
        // Default: about 100 quote units a trade.
        let price = max(1e-12, Double(startPrice.description) ?? 1)
        let median = medianQuantity ?? 100 / price
        self.medianQuantity = median.isFinite && median > 0 ? median : 1
    }
}

/// One trade of the simulated market, with everything a venue prints about it.
public struct SimulatedTrade: Sendable, Hashable {
    public var nativeSymbol: String
    /// Per-symbol sequential id.
    public var id: Int64
    public var price: ExactDecimal
    /// Base quantity.
    public var quantity: ExactDecimal
    /// Quote amount = price × quantity, exact, without trailing zeros.
    public var amount: ExactDecimal
    public var takerSide: Side
    /// Trade (match) time, ms.
    public var createTime: Int64
    /// Push time, ms (a few ms after `createTime`).
    public var pushTime: Int64

    /// The normalized trade a correct ingest must produce from this one.
    public func expectedTrade(exchange: Exchange, receivedAt: Int64) -> Trade {
        Trade(
            exchange: exchange, symbol: Symbol(normalizing: nativeSymbol), nativeSymbol: nativeSymbol,
            tradeId: String(id), price: price, quantity: quantity, quoteQuantity: amount, side: takerSide,
            time: createTime, receivedAt: receivedAt)
    }
}

/// One taker order and its fills against resting orders: what a venue pushes as one trades frame.
public struct SimulatedOrder: Sendable, Hashable {
    public var instrument: Int
    public var nativeSymbol: String
    public var takerSide: Side
    /// One or more fills, same `createTime`, prices walking away from the taker. May be empty
    /// when a fault knob withheld the fills but the order's book changes still go out.
    public var trades: [SimulatedTrade]
    /// The book levels this order changed, in order (fills consuming liquidity, makers refilling,
    /// modifying and cancelling); empty when the market keeps no books.
    public var bookChanges: [SimulatedBookChange] = []
    /// The instrument's book update id after these changes (see `MarketSimulator.bookUpdateId`).
    public var bookUpdateId: Int64 = 0
    /// The order's time, ms.
    public var time: Int64 = 0
}

/// A deterministic market: seeded random walks of many instruments, taker orders arriving as a
/// Poisson process, multi-fill orders, and bursts (rate and volatility spikes).
///
/// Pure value, no clock and no I/O: a server asks for `advance(to:)` with its own clock's time and
/// sends what comes out; tests call `nextOrder()`. The sequence depends only on the configuration
/// (seed included), not on how time is stepped. Recent trades are kept per symbol for REST.
public struct MarketSimulator: Sendable {
    /// Knobs of the simulated market.
    public struct Configuration: Sendable {
        /// Seed of everything random. Default 1.
        public var seed: UInt64 = 1
        /// Instruments. Default: `MarketSimulator.defaultInstruments`.
        public var instruments: [SimulatedInstrument] = MarketSimulator.defaultInstruments
        /// Average trades per second over all instruments, outside bursts. Default 50.
        public var tradesPerSecond: Double = 50
        /// Market start, ms since the epoch. Default 2022-08-21T23:12:00Z.
        public var startTime: Int64 = 1_661_123_520_000
        /// Most fills per taker order. Default 8.
        public var maxFillsPerOrder: Int = 8
        /// Chance per order that a burst starts. Default 0.002.
        public var burstProbability: Double = 0.002
        /// Orders per burst, on average. Default 200.
        public var burstLength: Int = 200
        /// Rate multiplier during a burst. Default 20.
        public var burstRateMultiplier: Double = 20
        /// Volatility multiplier during a burst. Default 4.
        public var burstVolatilityMultiplier: Int64 = 4
        /// Trades kept per symbol for REST answers. Default 1000.
        public var recentTradesKept: Int = 1_000
        /// Where trade ids start: each instrument's first id is this plus a seeded offset below
        /// 1,000,000, and ids then count up by one per trade of that instrument. Default 60,000,000.
        /// `VenueSimulator` sets the wall clock in microseconds, so a restarted simulator goes on
        /// above every id it gave before (while an instrument trades less than 1,000,000 times
        /// a second) and an ingest resuming from Kafka takes its trades as new.
        public var firstTradeId: Int64 = 60_000_000
        /// Levels kept near the price on each side of every instrument's book; 0 keeps no books.
        /// Default 20.
        public var bookDepth: Int = 20

        public init() {}
    }

    /// The default market: `tape up`'s six markets (BTC, ETH, SOL, XRP, DOGE and LTC against
    /// USDT), then two BTC-quoted pairs with tiny prices (BCH_BTC, DOGE_BTC at 8 decimals).
    public static let defaultSymbols = [
        "BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT", "DOGE_USDT", "LTC_USDT", "BCH_BTC", "DOGE_BTC",
    ]

    /// The instruments of `defaultSymbols` (`MarketCatalogue`).
    public static let defaultInstruments: [SimulatedInstrument] = defaultSymbols.compactMap(MarketCatalogue.instrument)

    /// Mean-reversion time of prices toward their opening price, s (4 days: the walk looks free
    /// over hours, and a long run stays within a few tens of percent).
    static let reversionSeconds = 4.0 * 86_400

    public let configuration: Configuration
    var random: SplitMix64
    /// Current price of each instrument, in ticks.
    var ticks: [Int64]
    /// Each instrument's log price minus its opening log price (the walk's state).
    var logOffsets: [Double]
    /// Each instrument's opening price and tick, as numbers.
    var startPrices: [Double]
    var tickSizes: [Double]
    /// Time of each instrument's last price move, µs.
    var lastMoveMicros: [Int64]
    var priceScales: [Int]
    var nextIds: [Int64]
    /// Time of the next order, µs.
    var nextOrderMicros: Int64
    var burstRemaining = 0
    var cumulativeWeights: [Int]
    var recent: [RecentTrades]
    var symbolIndex: [String: Int]
    /// Each instrument's resting orders (empty when `bookDepth` is 0); their randomness has its
    /// own generator, so trades are the same with and without books.
    var books: [SimulatedBook] = []
    var bookRandom: SplitMix64

    /// Orders generated so far.
    public private(set) var orderCount = 0
    /// Trades generated so far.
    public private(set) var tradeCount = 0
    /// Bursts started, trades generated inside them, and the simulated time they spanned (µs):
    /// what a benchmark's load really was.
    public private(set) var burstsStarted = 0
    public private(set) var burstTradeCount = 0
    public private(set) var burstMicros: Int64 = 0

    public init(configuration: Configuration = Configuration()) {
        precondition(!configuration.instruments.isEmpty, "a market needs at least one instrument")
        precondition(configuration.tradesPerSecond > 0, "tradesPerSecond must be positive")
        self.configuration = configuration
        random = SplitMix64(seed: configuration.seed)
        ticks = []
        logOffsets = []
        startPrices = []
        tickSizes = []
        lastMoveMicros = []
        priceScales = []
        nextIds = []
        cumulativeWeights = []
        recent = []
        symbolIndex = [:]
        bookRandom = SplitMix64(seed: configuration.seed ^ 0x5EED_B00C)
        var total = 0
        for (i, instrument) in configuration.instruments.enumerated() {
            let scale = Int(instrument.startPrice.scale)
            priceScales.append(scale)
            ticks.append(MarketSimulator.ticks(of: instrument.startPrice))
            logOffsets.append(0)
            let tick = 1 / MarketCatalogue.pow10(scale)
            tickSizes.append(tick)
            startPrices.append(Double(max(1, ticks[i])) * tick)
            lastMoveMicros.append(configuration.startTime &* 1_000)
            nextIds.append(configuration.firstTradeId &+ Int64(random.below(1_000_000)))
            total += instrument.weight
            cumulativeWeights.append(total)
            recent.append(RecentTrades(capacity: max(1, configuration.recentTradesKept)))
            symbolIndex[instrument.nativeSymbol] = i
        }
        nextOrderMicros = configuration.startTime * 1_000
        nextOrderMicros += interArrivalMicros()
        if configuration.bookDepth > 0 {
            for (i, instrument) in configuration.instruments.enumerated() {
                books.append(
                    SimulatedBook(
                        priceScale: priceScales[i], quantityScale: instrument.quantityScale,
                        medianQuantity: instrument.medianQuantity, depth: configuration.bookDepth,
                        center: ticks[i], updateId: 1_000_000 + Int64(bookRandom.below(1_000_000)), random: &bookRandom))
            }
        }
    }

    /// The current book of a symbol (nil for an unknown symbol, or when the market keeps none).
    public func book(nativeSymbol: String) -> OrderBook? {
        guard let k = symbolIndex[nativeSymbol], k < books.count else { return nil }
        return books[k].orderBook
    }

    /// The symbol's book update id: one more for every order that changed its book (0 when unknown).
    public func bookUpdateId(nativeSymbol: String) -> Int64 {
        guard let k = symbolIndex[nativeSymbol], k < books.count else { return 0 }
        return books[k].updateId
    }

    /// Time of the next order, ms.
    public var nextOrderTime: Int64 { nextOrderMicros / 1_000 }

    /// Native symbols of the market, in configuration order.
    public var nativeSymbols: [String] { configuration.instruments.map(\.nativeSymbol) }

    /// All orders whose time is ≤ `time` (ms), in time order.
    public mutating func advance(to time: Int64) -> [SimulatedOrder] {
        var orders: [SimulatedOrder] = []
        while nextOrderMicros / 1_000 <= time {
            orders.append(nextOrder())
        }
        return orders
    }

    /// The next taker order and its fills; moves time to it.
    public mutating func nextOrder() -> SimulatedOrder {
        let time = nextOrderMicros / 1_000
        if burstRemaining > 0 {
            burstRemaining -= 1
        } else if random.unit() < configuration.burstProbability {
            burstRemaining = 1 + Int(random.below(UInt64(max(1, configuration.burstLength * 2))))
            burstsStarted += 1
        }
        let inBurst = burstRemaining > 0
        let k = pickInstrument()
        let instrument = configuration.instruments[k]
        movePrice(k, volatility: instrument.volatility, at: nextOrderMicros)
        let side: Side = random.below(2) == 0 ? .buy : .sell
        // Fill count: mostly 1, sometimes several (a taker sweeping levels).
        let roll = random.below(100)
        let maxFills = max(1, configuration.maxFillsPerOrder)
        let fills = roll < 60 ? 1 : min(maxFills, 2 + Int(random.below(UInt64(maxFills))))
        var trades: [SimulatedTrade] = []
        trades.reserveCapacity(fills)
        var level = ticks[k]
        var lastFill = level
        let pushTime = time + 3 + Int64(random.below(5))
        for _ in 0..<fills {
            let price = ExactDecimal(mantissa: level, scale: priceScales[k])
            let quantity = randomQuantity(median: instrument.medianQuantity, scale: instrument.quantityScale)
            let trade = SimulatedTrade(
                nativeSymbol: instrument.nativeSymbol, id: nextIds[k], price: price, quantity: quantity,
                amount: (price * quantity).normalized(), takerSide: side, createTime: time, pushTime: pushTime)
            nextIds[k] += 1
            trades.append(trade)
            lastFill = level
            recent[k].append(trade)
            // The next resting order is at the same or a worse price for the taker.
            let step = Int64(random.below(2))
            level = side == .buy ? level + step : max(1, level - step)
        }
        orderCount += 1
        tradeCount += trades.count
        let gap = interArrivalMicros()
        if inBurst {
            burstTradeCount += trades.count
            burstMicros += gap
        }
        nextOrderMicros += gap
        var order = SimulatedOrder(instrument: k, nativeSymbol: instrument.nativeSymbol, takerSide: side, trades: trades)
        order.time = time
        if k < books.count {
            order.bookChanges = books[k].apply(center: ticks[k], takerSide: side, lastFill: lastFill, random: &bookRandom)
            order.bookUpdateId = books[k].updateId
        }
        return order
    }

    /// The latest trades of a symbol, newest first (what REST `/markets/{symbol}/trades` returns),
    /// or nil for an unknown symbol.
    public func recentTrades(nativeSymbol: String, limit: Int) -> [SimulatedTrade]? {
        guard let k = symbolIndex[nativeSymbol] else { return nil }
        return recent[k].newestFirst(limit: limit)
    }

    /// An instrument index drawn by weight.
    mutating func pickInstrument() -> Int {
        let r = Int(random.below(UInt64(cumulativeWeights[cumulativeWeights.count - 1])))
        var low = 0
        var high = cumulativeWeights.count - 1
        while low < high {
            let mid = (low + high) / 2
            if cumulativeWeights[mid] > r { high = mid } else { low = mid + 1 }
        }
        return low
    }

    mutating func interArrivalMicros() -> Int64 {
        let meanFills = 0.6 + 0.4 * (2.0 + Double(max(1, configuration.maxFillsPerOrder) - 1) / 2.0)
        var ordersPerSecond = configuration.tradesPerSecond / meanFills
        if burstRemaining > 0 { ordersPerSecond *= configuration.burstRateMultiplier }
        let u = 1.0 - random.unit()  // (0, 1]
        let micros = -log(u) / ordersPerSecond * 1_000_000
        return max(1, Int64(min(micros, 3_600_000_000)))
    }

    /// A standard normal draw (Box–Muller).
    mutating func gaussian() -> Double {
        let u = 1.0 - random.unit()  // (0, 1]
        let v = random.unit()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }

    /// Moves instrument `k`'s price to time `micros`: an Ornstein–Uhlenbeck step of its log price
    /// around the opening price (annualized `volatility`, times the burst multiplier in a burst),
    /// bounded to a third .. three times the opening price.
    mutating func movePrice(_ k: Int, volatility: Double, at micros: Int64) {
        let z = gaussian()
        let elapsed = Double(max(0, min(micros &- lastMoveMicros[k], 3_600_000_000))) / 1_000_000
        lastMoveMicros[k] = max(lastMoveMicros[k], micros)
        guard volatility > 0, elapsed > 0 else { return }
        let burst = burstRemaining > 0 ? Double(max(1, configuration.burstVolatilityMultiplier)) : 1
        let perSecond = volatility / (365.25 * 86_400).squareRoot() * burst
        let decay = exp(-elapsed / MarketSimulator.reversionSeconds)
        let bound = log(3.0)
        logOffsets[k] = max(-bound, min(bound, logOffsets[k] * decay + perSecond * elapsed.squareRoot() * z))
        let price = startPrices[k] * exp(logOffsets[k])
        let newTicks = (price / tickSizes[k]).rounded()
        ticks[k] = newTicks.isFinite ? Int64(max(1, min(newTicks, 1e15))) : ticks[k]
    }

    /// Log-normal quantity around `median` (σ 1.5: a tenth of a percent of trades over 100 times
    /// the median), at least one lot, at most 2,000 times the median.
    mutating func randomQuantity(median: Double, scale: Int) -> ExactDecimal {
        let size = min(median * 2_000, median * exp(1.5 * gaussian()))
        let units = (size * MarketCatalogue.pow10(scale)).rounded()
        let mantissa = units.isFinite ? Int64(max(1, min(units, 1e15))) : 1
        return ExactDecimal(mantissa: mantissa, scale: scale).normalized()
    }

    static func ticks(of price: ExactDecimal) -> Int64 {
        // price = ticks × 10^-scale; the text has exactly `scale` fractional digits.
        var digits = price.description.filter { $0 != "." }
        while digits.count > 1 && digits.first == "0" { digits.removeFirst() }
        return Int64(digits) ?? 1
    }
}

/// The last N trades of one symbol (a ring).
struct RecentTrades: Sendable {
    var storage: [SimulatedTrade] = []
    var next = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    mutating func append(_ trade: SimulatedTrade) {
        if storage.count < capacity {
            storage.append(trade)
        } else {
            storage[next] = trade
        }
        next = (next + 1) % capacity
    }

    func newestFirst(limit: Int) -> [SimulatedTrade] {
        let n = min(max(0, limit), storage.count)
        var result: [SimulatedTrade] = []
        result.reserveCapacity(n)
        var i = (next - 1 + capacity) % capacity
        if storage.count < capacity { i = storage.count - 1 }
        for _ in 0..<n {
            result.append(storage[i])
            i = (i - 1 + storage.count) % storage.count
        }
        return result
    }
}
