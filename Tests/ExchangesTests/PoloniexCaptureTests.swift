import Exchanges
import MarketData
import Testing

/// The real 2022-08-21 capture, every frame parsed, every trade field checked against values
/// read by hand from Fixtures/ws-capture-2022-08-21.txt.
@Suite struct PoloniexCaptureTests {
    struct Expected {
        var line: Int
        var nativeSymbol: String
        var symbol: String
        var tradeId: String
        var price: String
        var quantity: String
        var quoteQuantity: String
        var side: Side
        var time: Int64
        var receivedAt: Int64
    }

    /// The six trades frames (one trade each), by 1-based line number of the capture file.
    static let expected: [Expected] = [
        Expected(
            line: 51, nativeSymbol: "BTC_USDT", symbol: "BTC-USDT", tradeId: "60184114", price: "21614.59",
            quantity: "0.01149", quoteQuantity: "248.3516391", side: .sell, time: 1_661_123_520_381,
            receivedAt: 1_661_123_520_424_012),
        Expected(
            line: 113, nativeSymbol: "BCH_USDT", symbol: "BCH-USDT", tradeId: "60040539", price: "120.17",
            quantity: "0.270684", quoteQuantity: "32.52809628", side: .sell, time: 1_661_123_528_797,
            receivedAt: 1_661_123_528_832_445),
        Expected(
            line: 117, nativeSymbol: "BTC_USDT", symbol: "BTC-USDT", tradeId: "60184115", price: "21615.95",
            quantity: "0.006021", quoteQuantity: "130.14963495", side: .buy, time: 1_661_123_528_888,
            receivedAt: 1_661_123_528_925_163),
        Expected(
            line: 157, nativeSymbol: "USDJ_USDT", symbol: "USDJ-USDT", tradeId: "60013780", price: "0.9997",
            quantity: "8.1987", quoteQuantity: "8.19624039", side: .sell, time: 1_661_123_533_608,
            receivedAt: 1_661_123_533_643_982),
        Expected(
            line: 160, nativeSymbol: "BTC_USDT", symbol: "BTC-USDT", tradeId: "60184116", price: "21614.46",
            quantity: "0.000328", quoteQuantity: "7.08954288", side: .buy, time: 1_661_123_533_894,
            receivedAt: 1_661_123_533_929_507),
        Expected(
            line: 252, nativeSymbol: "BTC_USDT", symbol: "BTC-USDT", tradeId: "60184117", price: "21602.42",
            quantity: "0.002305", quoteQuantity: "49.7935781", side: .buy, time: 1_661_123_542_635,
            receivedAt: 1_661_123_542_671_989),
    ]

    @Test func everyFrameOfTheCaptureParses() throws {
        let lines = try FixtureFiles.lines("ws-capture-2022-08-21.txt")
        #expect(lines.count == 305)
        var parser = PoloniexFrameParser()
        var connected = 0
        var sent = 0
        var acks: [ExchangeMessage] = []
        var ignored = 0
        var tradeFrames: [Int] = []
        var trades: [Trade] = []
        for (index, line) in lines.enumerated() {
            guard let capture = CaptureLine(line) else {
                Issue.record("line \(index + 1) is not a capture line")
                continue
            }
            switch capture {
            case .connected(let url):
                #expect(url == Poloniex.endpoints.websocket)
                connected += 1
            case .sent(_, let text):
                // Our requests must be ones we can produce.
                #expect(text.hasPrefix(#"{"event":"subscribe""#))
                sent += 1
            case .received(let receivedAt, let text):
                let before = trades.count
                let message = try parser.parse(text, receivedAt: receivedAt, into: &trades)
                switch message {
                case .trades(let count):
                    #expect(count == trades.count - before)
                    tradeFrames.append(index + 1)
                case .subscribed: acks.append(message)
                case .ignored(let channel):
                    #expect(channel == "book_lv2")
                    ignored += 1
                default:
                    Issue.record("unexpected message \(message) on line \(index + 1)")
                }
            }
        }
        #expect(connected == 1)
        #expect(sent == 2)
        #expect(ignored == 11 + 283)
        #expect(tradeFrames == PoloniexCaptureTests.expected.map(\.line))
        let symbols = [
            "BCH_USDT", "EFI_USDT", "USDJ_USDT", "DYP_USDT", "SOL_USDT", "MDT_BTC", "GRT_USDT", "GF_USDT", "BCH_BTC",
            "ZEC_USDT", "BTC_USDT",
        ]
        #expect(
            acks == [
                .subscribed(channel: "trades", symbols: symbols), .subscribed(channel: "book_lv2", symbols: symbols),
            ])
        #expect(parser.amountMismatches == 0, "Poloniex's amount equals price × quantity in every captured trade")
        #expect(parser.missingAmounts == 0)

        try #require(trades.count == PoloniexCaptureTests.expected.count)
        for (trade, e) in zip(trades, PoloniexCaptureTests.expected) {
            #expect(trade.exchange == .poloniex)
            #expect(trade.exchange.name == "poloniex")
            #expect(trade.nativeSymbol == e.nativeSymbol)
            #expect(trade.symbol.rawValue == e.symbol)
            #expect(trade.tradeId == e.tradeId)
            #expect(trade.price.description == e.price)
            #expect(trade.quantity.description == e.quantity)
            #expect(trade.quoteQuantity.description == e.quoteQuantity)
            #expect(trade.side == e.side)
            #expect(trade.time == e.time)
            #expect(trade.receivedAt == e.receivedAt)
            #expect(trade.kafkaKey == "poloniex:\(e.symbol)")
        }
    }

    @Test func firstTradeEncodesAsDesignSaysApartFromReceiveTime() throws {
        var parser = PoloniexFrameParser()
        let (_, trades) = try parser.parse(Poloniex.sampleTradesFrame, receivedAt: 1_661_123_520_391_123)
        #expect(
            trades.map(\.jsonString) == [
                #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","nativeSymbol":"BTC_USDT","tradeId":"60184114","#
                    + #""price":"21614.59","quantity":"0.01149","quoteQuantity":"248.3516391","side":"sell","#
                    + #""time":1661123520381,"receivedAt":1661123520391123}"#
            ])
    }

    @Test func ourSubscribeRequestIsTheOneInTheCapture() throws {
        let lines = try FixtureFiles.lines("ws-capture-2022-08-21.txt")
        guard case .sent(_, let text) = CaptureLine(lines[1]) else {
            Issue.record("line 2 is not a sent line")
            return
        }
        let symbols = [
            "BCH_USDT", "EFI_USDT", "USDJ_USDT", "DYP_USDT", "SOL_USDT", "MDT_BTC", "GRT_USDT", "GF_USDT", "BCH_BTC",
            "ZEC_USDT", "BTC_USDT",
        ]
        #expect(Poloniex.subscribeMessage(symbols: symbols) == text)
        #expect(
            Poloniex.subscribeMessage(channel: "book_lv2", symbols: symbols)
                == CaptureLine(lines[2]).map {
                    if case .sent(_, let t) = $0 { return t } else { return "" }
                })
    }

    @Test func restMarketsFixture() throws {
        let lines = try FixtureFiles.lines("rest-markets-2022-08-21.txt")
        let body = String(lines[0][lines[0].range(of: ": ")!.upperBound...])
        #expect(lines[0].hasPrefix("https://api.poloniex.com/markets -> "))
        let markets = try PoloniexREST.parseMarkets(body)
        #expect(markets.count == 524)
        #expect(markets.filter { !$0.isTrading }.count == 11)
        #expect(markets.filter { $0.state == "PAUSE" }.count == 11)
        #expect(Set(markets.map(\.symbol)).count == 524)

        let first = markets[0]
        #expect(first.symbol == "BTS_BTC")
        #expect(first.baseCurrencyName == "BTS")
        #expect(first.quoteCurrencyName == "BTC")
        #expect(first.displayName == "BTS/BTC")
        #expect(first.state == "NORMAL")
        #expect(first.visibleStartTime == 1_659_018_816_626)
        #expect(first.tradableStartTime == 1_659_018_816_626)
        #expect(first.priceScale == 10)
        #expect(first.quantityScale == 0)
        #expect(first.amountScale == 8)
        #expect(first.minQuantity?.description == "100")
        #expect(first.minAmount?.description == "0.00001")

        let btc = try #require(markets.first { $0.symbol == "BTC_USDT" })
        #expect(btc.normalizedSymbol.rawValue == "BTC-USDT")
        #expect(btc.isTrading)
        #expect(btc.priceScale == 2)
        #expect(btc.quantityScale == 6)
        #expect(btc.minQuantity?.description == "0.000001")
        #expect(btc.minAmount?.description == "1")

        let paused = try #require(markets.first { $0.symbol == "DEXT_USDT" })
        #expect(paused.state == "PAUSE")
        #expect(!paused.isTrading)
        #expect(markets.last?.symbol == "LUNA_USDD")
    }
}

/// The connection loop will be generic over `ExchangeAdapter`; check Poloniex through it.
@Suite struct ExchangeAdapterTests {
    func firstTrade<A: ExchangeAdapter>(_ adapter: A.Type, frame: String) throws -> Trade? {
        var parser = A.makeFrameParser()
        var trades: [Trade] = []
        var bytes = Array(frame.utf8)
        _ = try bytes.withUnsafeMutableBufferPointer { buffer throws(FrameParseError) in
            try parser.parse(UnsafeBufferPointer(buffer), receivedAt: 1, into: &trades)
        }
        return trades.first
    }

    @Test func poloniexThroughTheProtocol() throws {
        #expect(Poloniex.exchange == .poloniex)
        #expect(Poloniex.endpoints.websocket == "wss://ws.poloniex.com/ws/public")
        #expect(Poloniex.endpoints.rest == "https://api.poloniex.com")
        #expect(Poloniex.applicationPing == #"{"event":"ping"}"#)
        #expect(Poloniex.pingInterval == .seconds(20))
        #expect(
            Poloniex.tradeSubscribeMessages(nativeSymbols: ["BTC_USDT"]) == [
                #"{"event":"subscribe","channel":["trades"],"symbols":["BTC_USDT"]}"#
            ])
        #expect(try firstTrade(Poloniex.self, frame: Poloniex.sampleTradesFrame)?.tradeId == "60184114")
        #expect(Poloniex.recentTradesPath(nativeSymbol: "ETH_USDT", limit: 5000) == "/markets/ETH_USDT/trades?limit=1000")
        #expect(Poloniex.marketsPath == "/markets")

        let line = try FixtureFiles.lines("rest-markets-2022-08-21.txt")[0]
        let body = Array(line[line.range(of: ": ")!.upperBound...].utf8)
        let markets = try Poloniex.parseMarkets(body)
        #expect(markets.count == 524)
        #expect(markets.filter(\.isTrading).count == 513)
        #expect(markets.first == ListedMarket(nativeSymbol: "BTS_BTC", symbol: Symbol(normalizing: "BTS-BTC"), isTrading: true))
        let recent = try Poloniex.parseRecentTrades(Array(Poloniex.sampleRESTTrades.utf8), nativeSymbol: "BTC_USDT", receivedAt: 3)
        #expect(recent.map(\.tradeId) == ["60184117"])
    }
}
