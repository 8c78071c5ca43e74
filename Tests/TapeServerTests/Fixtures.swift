import Foundation
import Hummingbird
import Logging
import MarketData
import TapeServer

/// In-memory data and a server built over it, shared by the tests.
struct Fixture {
    static let btc = MarketID("poloniex:BTC-USDT")!
    static let eth = MarketID("poloniex:ETH-USDT")!
    /// 2022-08-21T23:00:00Z, a minute boundary.
    static let t0: Int64 = 1_661_122_800_000

    let history = InMemoryCandleHistory()
    let state: TapeServerState
    let tradeInput: AsyncStream<Trade>.Continuation
    let candleInput: AsyncStream<Candle>.Continuation
    let gapInput: AsyncStream<Gap>.Continuation
    let bookInput: AsyncStream<BookEvent>.Continuation
    let app: any ApplicationProtocol

    /// `candlesPerMarket` one-minute candles for BTC and ETH, plus 5m candles for BTC, and a few
    /// trades; `gaps` are in the ledger from the start.
    init(
        token: String? = nil, candlesPerMarket: Int = 40, stats: (any StatsSource)? = nil, gaps: [Gap] = [],
        health: HealthPolicy = HealthPolicy(), incomplete: Set<Int> = []
    ) {
        var configuration = TapeServerConfiguration(host: "127.0.0.1", port: 0, token: token)
        configuration.recentTradesPerMarket = 50
        configuration.health = health
        state = TapeServerState(configuration: configuration)
        for (market, base) in [(Self.btc, 21_600.0), (Self.eth, 1_610.0)] {
            for i in 0..<candlesPerMarket {
                var candle = Self.candle(market, .oneMinute, index: i, base: base)
                candle.complete = !incomplete.contains(i)
                history.record(candle)
            }
        }
        for i in 0..<6 { history.record(Self.candle(Self.btc, .fiveMinutes, index: i, base: 21_600)) }
        for i in 0..<5 { state.accept(Self.trade(Self.btc, id: i, price: "21614.5\(i)", time: Self.t0 + Int64(i) * 1000)) }
        state.accept(Self.trade(Self.eth, id: 100, price: "1612.1", time: Self.t0 + 2500))
        for gap in gaps { state.accept(gap) }
        let (trades, tradeInput) = PushFeed<Trade>.make()
        let (candles, candleInput) = PushFeed<Candle>.make()
        let (gapFeed, gapInput) = PushFeed<Gap>.make()
        self.tradeInput = tradeInput
        self.candleInput = candleInput
        self.gapInput = gapInput
        let (bookFeed, bookInput) = PushFeed<BookEvent>.make()
        self.bookInput = bookInput
        var logger = Logger(label: "test.tape.serve")
        logger.logLevel = .warning
        app = buildTapeServer(
            configuration: configuration, trades: trades, candles: candles, history: history, stats: stats, gaps: gapFeed, books: bookFeed,
            state: state,
            logger: logger)
    }

    /// A trades gap of `market` over minutes `from...to` of the candle series (from t0 + 5 s).
    static func gap(_ market: MarketID, minutes: ClosedRange<Int>, repaired: Bool = false, reason: String = "trade ids jumped") -> Gap {
        Gap(
            exchange: market.exchange, symbol: market.symbol, channel: .trades, from: t0 + Int64(minutes.lowerBound) * 60_000 + 5_000,
            to: t0 + Int64(minutes.upperBound) * 60_000 + 10_000, reason: reason, repaired: repaired, missing: 12, detected: t0 + 3_600_000)
    }

    static func trade(_ market: MarketID, id: Int, price: String, quantity: String = "0.01149", side: Side = .sell, time: Int64) -> Trade {
        Trade(
            exchange: market.exchange, symbol: market.symbol, nativeSymbol: market.symbol.rawValue.replacingOccurrences(of: "-", with: "_"),
            tradeId: String(id), price: try! ExactDecimal(price), quantity: try! ExactDecimal(quantity), side: side, time: time,
            receivedAt: time * 1000 + 10)
    }

    /// A deterministic wavy candle series.
    /// `amplitude`: relative size of the wave; `decimals`: of the prices.
    static func candle(
        _ market: MarketID, _ interval: CandleInterval, index i: Int, base: Double, revision: Int64 = 1, isFinal: Bool = true,
        amplitude: Double = 0.004, decimals: Int = 2
    ) -> Candle {
        let start = t0 + Int64(i) * interval.milliseconds
        let open = base * (1 + amplitude * sin(Double(i) / 3))
        let close = base * (1 + amplitude * sin(Double(i + 1) / 3))
        let high = max(open, close) * (1 + amplitude * 0.3)
        let low = min(open, close) * (1 - amplitude * 0.3)
        func d(_ x: Double) -> ExactDecimal { try! ExactDecimal(String(format: "%.\(decimals)f", x)) }
        let volume = try! ExactDecimal(String(format: "%.4f", 1.5 + Double(i % 7) * 0.37))
        return Candle(
            exchange: market.exchange, symbol: market.symbol, interval: interval, start: start, end: start + interval.milliseconds,
            open: d(open), high: d(high), low: d(low), close: d(close), volume: volume, quoteVolume: (volume * d(close)).normalized(),
            buyVolume: volume, sellVolume: ExactDecimal(0), trades: Int64(3 + i % 5), vwap: d(close), revision: revision, isFinal: isFinal)
    }
}

extension Data {
    var jsonObject: [String: Any] { (try? JSONSerialization.jsonObject(with: self)) as? [String: Any] ?? [:] }
}

extension ByteBuffer {
    var json: [String: Any] { Data(buffer: self).jsonObject }
    var text: String { String(buffer: self) }
}
