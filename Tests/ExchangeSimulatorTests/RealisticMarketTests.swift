import ExchangeSimulator
import Foundation
import MarketData
import Testing

/// The simulated markets look like real ones: prices in the real range, percentage volatility,
/// realistic trade sizes and books, and no invented markets.
@Suite struct RealisticMarketTests {
    /// Believable US-dollar price bands per asset (wide: real prices move, the bands catch a
    /// BTC at 21 or a DOGE at 893).
    static let usdBands: [String: ClosedRange<Double>] = [
        "BTC": 10_000...200_000, "ETH": 500...20_000, "SOL": 5...1_000, "XRP": 0.1...10, "DOGE": 0.01...2,
        "LTC": 10...1_000, "BCH": 50...3_000, "TRX": 0.01...1, "ADA": 0.05...10, "AVAX": 2...500, "DOT": 1...100,
        "LINK": 1...200, "BNB": 50...3_000, "XLM": 0.01...2, "ATOM": 1...100, "UNI": 1...100, "SHIB": 0.000001...0.001,
        "USDJ": 0.9...1.1, "USDC": 0.97...1.03, "EUR": 0.8...1.5,
    ]
    static let quoteBands: [String: ClosedRange<Double>] = [
        "USDT": 1...1, "USDC": 1...1, "USD": 1...1, "EUR": 0.8...1.5, "BTC": 10_000...200_000, "ETH": 500...20_000,
    ]

    /// Every market a venue simulator serves by default: the simulator's default market (all four
    /// venues serve it), `tape up`'s default symbols, and the venues' own spellings of their
    /// usual markets (Binance BTCUSDT, Coinbase BTC-USD, Kraken BTC/USD, XBT/EUR).
    static let venueDefaults: [String] =
        MarketSimulator.defaultSymbols + ["BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT", "DOGE_USDT", "LTC_USDT"]
        + [
            "BTCUSDT", "ETHUSDT", "ETHBTC", "BNBUSDT", "BTC-USD", "ETH-USD", "SOL-USD", "BTC-USDC", "BTC/USD", "ETH/USD", "XBT/EUR",
            "XDG/USD",
        ]

    static func band(_ instrument: SimulatedInstrument) -> ClosedRange<Double>? {
        let parts = instrument.nativeSymbol.split(separator: "_").map(String.init)
        guard parts.count == 2, let base = usdBands[parts[0]], let quote = quoteBands[parts[1]] else { return nil }
        return (base.lowerBound / quote.upperBound)...(base.upperBound / quote.lowerBound)
    }

    static func double(_ value: ExactDecimal) -> Double { Double(value.description) ?? .nan }
    static func double(_ text: String) -> Double { Double(text) ?? .nan }

    @Test func everyDefaultMarketHasABelievablePriceAndTick() throws {
        #expect(MarketSimulator.defaultInstruments.count == MarketSimulator.defaultSymbols.count)
        for symbol in Self.venueDefaults {
            let instrument = try #require(MarketCatalogue.instrument(symbol), "\(symbol) unknown")
            let band = try #require(Self.band(instrument), "no band for \(instrument.nativeSymbol)")
            let price = Self.double(instrument.startPrice)
            #expect(band.contains(price), "\(symbol): \(price) outside \(band)")
            // At least 4 significant digits, or 3 where 8 decimals (the venues' limit) allow no more.
            let tick = pow(10, -Double(instrument.startPrice.scale))
            let digits = instrument.startPrice.scale == 8 ? 100.0 : 1_000.0
            #expect(tick <= price / digits, "\(symbol): tick \(tick) too coarse for \(price)")
            #expect(instrument.startPrice.scale <= 8)
            #expect(instrument.quantityScale <= 8)
        }
        // Ticks of the well-known markets, as the venues have them.
        #expect(MarketCatalogue.instrument("BTC_USDT")?.startPrice.scale == 2)
        #expect(MarketCatalogue.instrument("DOGE_USDT")?.startPrice.scale == 5)
        #expect(MarketCatalogue.instrument("XRP_USDT")?.startPrice.scale == 4)
        #expect(MarketCatalogue.instrument("DOGE_BTC")?.startPrice.scale == 8)
        #expect(MarketCatalogue.instrument("DOGE_USDT")?.quantityScale == 0)
    }

    @Test func spellingsNameTheSameMarket() {
        for spelling in ["BTC_USDT", "btc-usdt", "BTC/USDT", "BTCUSDT", "XBT/USDT", "XBTUSDT"] {
            #expect(MarketCatalogue.canonicalName(spelling) == "BTC_USDT", "\(spelling)")
        }
        #expect(MarketCatalogue.canonicalName("XDG/USD") == "DOGE_USD")
        #expect(MarketCatalogue.canonicalName("BTC_BTC") == nil)
        #expect(MarketCatalogue.canonicalName("BTC_USDT_X") == nil)
        #expect(MarketCatalogue.canonicalName("") == nil)
        #expect(MarketCatalogue.canonicalName("USDT") == nil)
    }

    @Test func unknownMarketsAreRefusedNotInvented() throws {
        #expect(throws: UnknownSimulatedMarket(symbols: ["FOO_USDT", "BTC_XYZ"])) {
            try SimulatorConfiguration.instruments(symbols: ["BTC_USDT", "FOO_USDT", "BTC_XYZ"])
        }
        do {
            _ = try SimulatorConfiguration.instruments(symbols: ["NOPE_USDT"])
            Issue.record("NOPE_USDT accepted")
        } catch let error as UnknownSimulatedMarket {
            let text = error.description
            #expect(text.contains("'NOPE_USDT'"))
            #expect(text.contains("BTC, ETH"), "lists the known assets: \(text)")
            #expect(text.contains("USDT, USDC, USD, EUR, BTC, ETH"), "lists the quotes: \(text)")
            #expect(!text.contains("\n"), "one sentence")
        }
        let known = try SimulatorConfiguration.instruments(symbols: ["eth-btc", "SOL_USD"])
        #expect(known.map(\.nativeSymbol) == ["ETH_BTC", "SOL_USD"])
        #expect(MarketCatalogue.unknown(["BTC_USDT", "ZZZ_USDT"]) == ["ZZZ_USDT"])
    }

    /// BTC's log return over 10-minute windows, at the default rate with bursts: tenths of a
    /// percent typically (60 %/yr ≈ 0.25 % per 10 min), never 10 %; and the median is far above
    /// the 0.01 % a tick-sized walk gave.
    @Test func tenMinutesMoveBitcoinByTenthsOfAPercent() {
        var config = MarketSimulator.Configuration()
        config.bookDepth = 0
        config.seed = 7
        var market = MarketSimulator(configuration: config)
        let window: Int64 = 600_000
        var closes: [Double] = []
        var last = Self.double(config.instruments[0].startPrice)
        closes.append(last)
        for w in 1...12 {
            for order in market.advance(to: config.startTime + Int64(w) * window) where order.nativeSymbol == "BTC_USDT" {
                if let price = order.trades.last?.price { last = Self.double(price) }
            }
            closes.append(last)
        }
        let moves = zip(closes, closes.dropFirst()).map { abs(log($1 / $0)) * 100 }.sorted()
        let median = moves[moves.count / 2]
        #expect(median > 0.03, "median 10-minute move \(median) % (\(moves))")
        #expect(median < 2, "median 10-minute move \(median) %")
        #expect(moves.last! < 10, "largest 10-minute move \(moves.last!) %")
        let day = abs(log(closes.last! / closes.first!)) * 100
        #expect(day < 20, "2-hour move \(day) %")
    }

    /// Over a simulated month (a slow rate, so it stays cheap) prices neither vanish nor explode.
    @Test func longRunsStayBounded() {
        var config = MarketSimulator.Configuration()
        config.bookDepth = 0
        config.tradesPerSecond = 0.05
        config.burstProbability = 0
        var market = MarketSimulator(configuration: config)
        var low = Double.infinity
        var high = 0.0
        for order in market.advance(to: config.startTime + 30 * 86_400_000) where order.nativeSymbol == "BTC_USDT" {
            for trade in order.trades {
                let p = Self.double(trade.price)
                low = min(low, p)
                high = max(high, p)
            }
        }
        let start = Self.double(MarketCatalogue.instrument("BTC_USDT")!.startPrice)
        #expect(low >= start / 3 && high <= start * 3, "BTC ranged \(low)..\(high) from \(start)")
        #expect(high / low > 1.02, "the price moved at all over a month: \(low)..\(high)")
    }

    /// `tape up`'s six markets at 50 trades/s: BTC trades a few dozen BTC a minute (real
    /// BTC-USDT on a big venue: tens to hundreds), median trade about 0.01 BTC, the largest
    /// trades a few BTC; DOGE trades thousands of coins at a time.
    @Test func tradeSizesAndMinuteVolumesAreRealistic() throws {
        var config = MarketSimulator.Configuration()
        config.bookDepth = 0
        config.instruments = try SimulatorConfiguration.instruments(symbols: [
            "BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT", "DOGE_USDT", "LTC_USDT",
        ])
        var market = MarketSimulator(configuration: config)
        var minuteVolumes = [Double](repeating: 0, count: 10)
        var btcSizes: [Double] = []
        var dogeSizes: [Double] = []
        for order in market.advance(to: config.startTime + 600_000 - 1) {
            for trade in order.trades {
                let q = Self.double(trade.quantity)
                let minute = Int((trade.createTime - config.startTime) / 60_000)
                switch trade.nativeSymbol {
                case "BTC_USDT":
                    btcSizes.append(q)
                    if (0..<10).contains(minute) { minuteVolumes[minute] += q }
                case "DOGE_USDT": dogeSizes.append(q)
                default: break
                }
            }
        }
        btcSizes.sort()
        dogeSizes.sort()
        let btcMedian = btcSizes[btcSizes.count / 2]
        #expect(btcMedian >= 0.004 && btcMedian <= 0.03, "BTC median trade \(btcMedian)")
        #expect(btcSizes.last! >= 0.3 && btcSizes.last! <= 25, "largest BTC trade \(btcSizes.last!)")
        let dogeMedian = dogeSizes[dogeSizes.count / 2]
        #expect(dogeMedian >= 1_000 && dogeMedian <= 20_000, "DOGE median trade \(dogeMedian)")
        for (minute, volume) in minuteVolumes.enumerated() {
            #expect(volume >= 3 && volume <= 600, "BTC volume in minute \(minute): \(volume)")
        }
    }

    /// Books sit on the instrument's ticks around the price, a spread of a few ticks, and levels
    /// of a plausible size (BTC: hundredths to tens of BTC).
    @Test func booksMatchPricesAndTicks() throws {
        var market = MarketSimulator()
        for _ in 0..<3_000 { _ = market.nextOrder() }
        for symbol in MarketSimulator.defaultSymbols {
            let book = try #require(market.book(nativeSymbol: symbol))
            let bids = book.bids(top: 20)
            let asks = book.asks(top: 20)
            let bid = try #require(bids.first)
            let ask = try #require(asks.first)
            let instrument = try #require(MarketCatalogue.instrument(symbol))
            let tick = pow(10, -Double(instrument.startPrice.scale))
            let spreadTicks = ((Self.double(ask.price) - Self.double(bid.price)) / tick).rounded()
            #expect(spreadTicks >= 1 && spreadTicks <= 8, "\(symbol) spread \(spreadTicks) ticks")
            let band = try #require(Self.band(instrument))
            #expect(band.contains(Self.double(bid.price)), "\(symbol) bid \(bid.price)")
            if symbol == "BTC_USDT" {
                let sizes = (bids + asks).map { Self.double($0.quantity) }
                #expect(sizes.allSatisfy { $0 >= 0.00001 && $0 <= 50 }, "BTC level sizes \(sizes)")
                let total = sizes.reduce(0, +)
                #expect(total > 0.2 && total < 200, "BTC top-20 depth \(total)")
            }
        }
    }

    @Test func benchmarkCountsUseKnownMarketsFirst() {
        let many = SimulatorConfiguration.instruments(count: 30)
        #expect(many.count == 30)
        #expect(Array(many.prefix(8)) == MarketSimulator.defaultInstruments)
        #expect(Set(many.map(\.nativeSymbol)).count == 30)
        #expect(many.allSatisfy { MarketCatalogue.instrument($0.nativeSymbol) == $0 })
        let huge = SimulatorConfiguration.instruments(count: 300)
        #expect(huge.count == 300)
        #expect(huge.last?.nativeSymbol.hasPrefix("SIM") == true)
    }
}
