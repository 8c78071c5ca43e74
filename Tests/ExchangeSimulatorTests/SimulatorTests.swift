import ExchangeSimulator
import Exchanges
import MarketData
import Testing

@Suite struct MarketSimulatorTests {
    @Test func sameSeedSameMarket() {
        var a = MarketSimulator()
        var b = MarketSimulator()
        var config = MarketSimulator.Configuration()
        config.seed = 2
        var c = MarketSimulator(configuration: config)
        let ordersA = (0..<2_000).map { _ in a.nextOrder() }
        let ordersB = (0..<2_000).map { _ in b.nextOrder() }
        let ordersC = (0..<2_000).map { _ in c.nextOrder() }
        #expect(ordersA == ordersB)
        #expect(ordersA != ordersC)
    }

    /// Ids start at `firstTradeId` (VenueSimulator: the wall clock in µs, so a restarted simulator
    /// goes on above its earlier ids); the market itself does not depend on it.
    @Test func tradeIdsStartAtTheConfiguredFirstId() {
        var config = MarketSimulator.Configuration()
        config.firstTradeId = 1_796_000_000_000_000
        var shifted = MarketSimulator(configuration: config)
        var plain = MarketSimulator()
        for _ in 0..<2_000 {
            let a = shifted.nextOrder()
            let b = plain.nextOrder()
            #expect(a.trades.map { $0.id - config.firstTradeId } == b.trades.map { $0.id - 60_000_000 })
            #expect(a.trades.map(\.price) == b.trades.map(\.price))
            #expect(a.trades.allSatisfy { $0.id >= config.firstTradeId && $0.id < config.firstTradeId + 1_000_000 + 2_000 * 8 })
        }
    }

    @Test func steppingDoesNotChangeTheMarket() {
        var stepped = MarketSimulator()
        var jumped = MarketSimulator()
        let start = MarketSimulator.Configuration().startTime
        var small: [SimulatedOrder] = []
        for t in stride(from: start, through: start + 20_000, by: 7) {
            small += stepped.advance(to: t)
        }
        small += stepped.advance(to: start + 20_000)
        let big = jumped.advance(to: start + 20_000)
        #expect(!big.isEmpty)
        #expect(small == big)
        #expect(big.allSatisfy { $0.trades.allSatisfy { $0.createTime <= start + 20_000 } })
        #expect(jumped.nextOrderTime > start + 20_000)
    }

    @Test func rateIsNearTheConfiguredOne() {
        var config = MarketSimulator.Configuration()
        config.burstProbability = 0
        config.tradesPerSecond = 200
        var market = MarketSimulator(configuration: config)
        let orders = market.advance(to: config.startTime + 60_000)
        let trades = orders.reduce(0) { $0 + $1.trades.count }
        #expect(trades > 9_600 && trades < 14_400, "\(trades) trades in 60 s at 200/s")
        #expect(market.tradeCount == trades)
        #expect(orders.contains { $0.trades.count > 1 }, "some orders sweep several levels")
        #expect(Set(orders.map(\.nativeSymbol)).count == config.instruments.count)
    }

    @Test func burstsRaiseTheRate() {
        var calm = MarketSimulator.Configuration()
        calm.burstProbability = 0
        var bursty = calm
        bursty.burstProbability = 0.05
        var a = MarketSimulator(configuration: calm)
        var b = MarketSimulator(configuration: bursty)
        let calmCount = a.advance(to: calm.startTime + 120_000).count
        let burstCount = b.advance(to: calm.startTime + 120_000).count
        #expect(burstCount > calmCount * 2, "\(burstCount) vs \(calmCount)")
    }

    @Test func tradesAreCoherent() {
        var market = MarketSimulator()
        var lastId: [String: Int64] = [:]
        var lastTime = Int64.min
        for _ in 0..<5_000 {
            let order = market.nextOrder()
            #expect(!order.trades.isEmpty)
            for trade in order.trades {
                #expect(trade.nativeSymbol == order.nativeSymbol)
                #expect(trade.takerSide == order.takerSide)
                #expect(trade.price > .zero)
                #expect(trade.quantity > .zero)
                #expect(trade.amount == trade.price * trade.quantity)
                #expect(trade.pushTime >= trade.createTime)
                #expect(trade.createTime >= lastTime)
                if let previous = lastId[trade.nativeSymbol] { #expect(trade.id == previous + 1) }
                lastId[trade.nativeSymbol] = trade.id
                lastTime = trade.createTime
            }
            // a sweep never improves the price for the taker
            let prices = order.trades.map(\.price)
            for (p, q) in zip(prices, prices.dropFirst()) {
                #expect(order.takerSide == .buy ? q >= p : q <= p)
            }
        }
    }

    @Test func everySimulatedFrameParsesBackExactly() throws {
        var market = MarketSimulator()
        var parser = PoloniexFrameParser()
        var total = 0
        for i in 0..<3_000 {
            let order = market.nextOrder()
            let frame = PoloniexWire.tradesFrame(order.trades, numericIds: i % 7 == 0)
            let (message, trades) = try parser.parse(frame, receivedAt: 42)
            #expect(message == .trades(count: order.trades.count))
            let expected = order.trades.map { $0.expectedTrade(exchange: .poloniex, receivedAt: 42) }
            #expect(trades == expected)
            // exact text, not only equal values
            #expect(trades.map(\.jsonString) == expected.map(\.jsonString))
            total += trades.count
        }
        #expect(parser.amountMismatches == 0)
        #expect(total > 3_000)
    }

    @Test func restAnswersNewestFirstAndParseBack() throws {
        var config = MarketSimulator.Configuration()
        config.recentTradesKept = 50
        var market = MarketSimulator(configuration: config)
        var all: [SimulatedTrade] = []
        for _ in 0..<2_000 { all += market.nextOrder().trades }
        let btc = all.filter { $0.nativeSymbol == "BTC_USDT" }
        let recent = try #require(market.recentTrades(nativeSymbol: "BTC_USDT", limit: 1_000))
        #expect(recent.count == 50)
        #expect(recent == Array(btc.suffix(50).reversed()))
        #expect(market.recentTrades(nativeSymbol: "BTC_USDT", limit: 3) == Array(btc.suffix(3).reversed()))
        #expect(market.recentTrades(nativeSymbol: "NOPE_USDT", limit: 3) == nil)

        let body = PoloniexWire.restTrades(recent)
        #expect(body.contains(#""takerSide":"BUY""#) || body.contains(#""takerSide":"SELL""#))
        let parsed = try PoloniexREST.parseTrades(body, nativeSymbol: "BTC_USDT", receivedAt: 1)
        #expect(parsed == recent.map { $0.expectedTrade(exchange: .poloniex, receivedAt: 1) })

        let markets = try PoloniexREST.parseMarkets(PoloniexWire.markets(config.instruments, listedAt: 1))
        #expect(markets.map(\.symbol) == market.nativeSymbols)
        #expect(markets.allSatisfy { $0.isTrading })
        #expect(markets.first?.priceScale == 2)
    }
}

@Suite struct PoloniexSessionTests {
    let symbols = MarketSimulator().nativeSymbols

    @Test func subscribeAckPingAndErrors() throws {
        var session = PoloniexSession(knownSymbols: symbols, connectedAt: 0)
        var parser = PoloniexFrameParser()
        func messages(_ actions: [PoloniexSession.Action]) throws -> [ExchangeMessage] {
            try actions.map { action in
                guard case .send(let text) = action else { throw FrameParseError(.unexpectedMessage, "close", offset: 0) }
                return try parser.parse(text, receivedAt: 0).message
            }
        }
        let subscribe = Poloniex.subscribeMessage(symbols: ["BTC_USDT", "ETH_USDT"])
        #expect(
            session.received(subscribe, at: 1) == [
                .send(#"{"event":"subscribe","channel":"trades","symbols":["BTC_USDT","ETH_USDT"]}"#)
            ])
        #expect(try messages(session.received(Poloniex.pingMessage, at: 2)) == [.pong])
        #expect(
            try messages(session.received(Poloniex.subscribeMessage(symbols: ["NOPE_USDT"]), at: 3)) == [
                .error(message: "Invalid symbol: NOPE_USDT")
            ])
        let garbage = try messages(session.received("hello", at: 4))
        #expect(garbage.count == 1)
        if case .error = garbage[0] {} else { Issue.record("garbage should get an error event") }
        #expect(session.tradeSymbols == ["BTC_USDT", "ETH_USDT"])
        _ = session.received(Poloniex.unsubscribeMessage(symbols: ["ETH_USDT"]), at: 5)
        #expect(session.tradeSymbols == ["BTC_USDT"])
    }

    @Test func onlySubscribedSymbolsArePublished() throws {
        var market = MarketSimulator()
        var session = PoloniexSession(knownSymbols: symbols, connectedAt: 0)
        _ = session.received(Poloniex.subscribeMessage(symbols: ["ETH_USDT"]), at: 0)
        let orders = (0..<500).map { _ in market.nextOrder() }
        let actions = session.publish(orders, at: 1)
        let eth = orders.filter { $0.nativeSymbol == "ETH_USDT" }
        #expect(actions.count == eth.count)
        #expect(actions == eth.map { .send(PoloniexWire.tradesFrame($0.trades)) })

        var all = PoloniexSession(knownSymbols: symbols, connectedAt: 0)
        _ = all.received(#"{"event":"subscribe","channel":["trades"],"symbols":["all"]}"#, at: 0)
        #expect(all.publish(orders, at: 1).count == orders.count)
    }

    @Test func silentClientIsDroppedAfterThirtySeconds() {
        var session = PoloniexSession(knownSymbols: symbols, connectedAt: 1_000)
        #expect(session.tick(at: 20_000).isEmpty)
        _ = session.received(Poloniex.pingMessage, at: 20_000)
        #expect(session.tick(at: 49_999).isEmpty)
        let actions = session.tick(at: 50_000)
        #expect(actions.count == 1)
        if case .close = actions.first {} else { Issue.record("expected close, got \(actions)") }
        #expect(session.isClosed)
        #expect(session.received(Poloniex.pingMessage, at: 50_001).isEmpty)
    }

    @Test func faultsMalformedFramesAndDrops() throws {
        var config = PoloniexSession.Configuration()
        config.malformedFrameEvery = 5
        config.numericIdsEvery = 3
        config.dropConnectionAfter = 10_000
        var session = PoloniexSession(knownSymbols: symbols, configuration: config, connectedAt: 0)
        _ = session.received(#"{"event":"subscribe","channel":["trades"],"symbols":["all"]}"#, at: 0)
        var market = MarketSimulator()
        let orders = (0..<100).map { _ in market.nextOrder() }
        var parser = PoloniexFrameParser()
        var good = 0
        var bad = 0
        for action in session.publish(orders, at: 1) {
            guard case .send(let text) = action else { continue }
            do {
                _ = try parser.parse(text, receivedAt: 0)
                good += 1
            } catch {
                bad += 1
            }
        }
        #expect(bad == 20)
        #expect(good == 80)
        #expect(session.malformedFramesSent == 20)
        #expect(session.tick(at: 9_999).isEmpty)
        #expect(session.tick(at: 10_000).count == 1)
        #expect(session.isClosed)
    }
}

@Suite struct PoloniexRESTResponderTests {
    @Test func answersMarketsAndTradesLikePoloniex() throws {
        var market = MarketSimulator()
        for _ in 0..<3_000 { _ = market.nextOrder() }
        let markets = PoloniexRESTResponder.respond(toPath: Poloniex.restMarketsPath, market: market)
        #expect(markets.status == 200)
        #expect(try PoloniexREST.parseMarkets(markets.body).map(\.symbol) == market.nativeSymbols)

        let path = Poloniex.restTradesPath(symbol: "BTC_USDT")
        let answer = PoloniexRESTResponder.respond(toPath: path, market: market)
        #expect(answer.status == 200)
        let trades = try PoloniexREST.parseTrades(answer.body, nativeSymbol: "BTC_USDT", receivedAt: 0)
        let expected = try #require(market.recentTrades(nativeSymbol: "BTC_USDT", limit: 1_000))
        #expect(trades == expected.map { $0.expectedTrade(exchange: .poloniex, receivedAt: 0) })
        #expect(trades.count == 1_000)

        let five = PoloniexRESTResponder.respond(toPath: "/markets/ETH_USDT/trades?limit=5", market: market)
        #expect(try PoloniexREST.parseTrades(five.body, nativeSymbol: "ETH_USDT", receivedAt: 0).count == 5)
        #expect(PoloniexRESTResponder.respond(toPath: "/markets/NOPE_USDT/trades", market: market).status == 400)
        #expect(PoloniexRESTResponder.respond(toPath: "/markets/BTC_USDT/trades?limit=x", market: market).status == 400)
        #expect(PoloniexRESTResponder.respond(toPath: "/nothing", market: market).status == 404)
    }
}
