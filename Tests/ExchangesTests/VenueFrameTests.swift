import Exchanges
import Foundation
import MarketData
import TapeTestSupport
import Testing

/// Parses `frame` with a fresh parser of adapter `A`, stamped `receivedAt` 7.
private func parse<A: ExchangeAdapter>(_ adapter: A.Type, _ frame: String, markets: [ListedMarket] = []) throws(FrameParseError)
    -> (message: ExchangeMessage, trades: [Trade])
{
    var parser = adapter.makeFrameParser(markets: markets)
    var trades: [Trade] = []
    let message = try parser.parse(Array(frame.utf8), receivedAt: 7, into: &trades)
    return (message, trades)
}

private func parseError<A: ExchangeAdapter>(_ adapter: A.Type, _ frame: String) -> FrameParseError? {
    do {
        _ = try parse(adapter, frame)
        return nil
    } catch {
        return error
    }
}

private func decimal(_ text: String) -> ExactDecimal { try! ExactDecimal(text) }

// MARK: - Binance

@Suite struct BinanceFrameTests {
    let markets = [
        ListedMarket(nativeSymbol: "BNBBTC", symbol: Symbol(normalizing: "BNB-BTC"), isTrading: true),
        ListedMarket(nativeSymbol: "BTCUSDT", symbol: Symbol(normalizing: "BTC-USDT"), isTrading: true),
    ]

    @Test func documentedTradeEventEveryField() throws {
        let (message, trades) = try parse(Binance.self, Binance.sampleTradeEvent, markets: markets)
        #expect(message == .trades(count: 1))
        let trade = try #require(trades.first)
        #expect(trade.exchange == Exchange("binance"))
        #expect(trade.exchange.name == "binance")
        #expect(trade.symbol.rawValue == "BNB-BTC")
        #expect(trade.nativeSymbol == "BNBBTC")
        #expect(trade.tradeId == "12345")
        #expect(trade.price.description == "0.001")
        #expect(trade.quantity.description == "100")
        #expect(trade.quoteQuantity == decimal("0.1"))
        #expect(trade.side == .sell, "m:true: the buyer made, so the taker sold")
        #expect(trade.time == 123_456_785, "T (trade time), not E (event time)")
        #expect(trade.receivedAt == 7)
        #expect(trade.kafkaKey == "binance:BNB-BTC")
    }

    @Test func combinedStreamWrapperParsesTheSame() throws {
        let raw = try parse(Binance.self, Binance.sampleTradeEvent, markets: markets)
        let wrapped = try parse(Binance.self, Binance.sampleCombinedTradeEvent, markets: markets)
        #expect(wrapped.message == .trades(count: 1))
        #expect(wrapped.trades == raw.trades)
    }

    @Test func takerSideFromBuyerIsMaker() throws {
        let buy = #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"20000.01","q":"0.5","T":1,"m":false,"M":true}"#
        let sell = #"{"e":"trade","E":2,"s":"BTCUSDT","t":10,"p":"20000.01","q":"0.5","T":1,"m":true,"M":true}"#
        #expect(try parse(Binance.self, buy, markets: markets).trades.first?.side == .buy)
        #expect(try parse(Binance.self, sell, markets: markets).trades.first?.side == .sell)
        let trade = try #require(try parse(Binance.self, buy, markets: markets).trades.first)
        #expect(trade.quoteQuantity.description == "10000.005")
    }

    @Test func symbolSplitComesFromTheMarketListElseKnownQuotes() throws {
        // Listed with an unusual split: the list wins over suffix guessing.
        let odd = [ListedMarket(nativeSymbol: "ABCUSDT", symbol: Symbol(normalizing: "ABCU-SDT"), isTrading: true)]
        let frame = #"{"e":"trade","E":2,"s":"ABCUSDT","t":1,"p":"1","q":"1","T":1,"m":false,"M":true}"#
        #expect(try parse(Binance.self, frame, markets: odd).trades.first?.symbol.rawValue == "ABCU-SDT")
        #expect(try parse(Binance.self, frame).trades.first?.symbol.rawValue == "ABC-USDT")
        #expect(Binance.normalizedSymbol("ETHBTC").rawValue == "ETH-BTC")
        #expect(Binance.normalizedSymbol("ETHBTC", base: "ETH", quote: "BTC").rawValue == "ETH-BTC")
    }

    @Test func acksErrorsAndOtherEvents() throws {
        #expect(try parse(Binance.self, Binance.sampleSubscribeAck).message == .subscribed(channel: "trade", symbols: []))
        #expect(
            try parse(Binance.self, #"{"code":2,"msg":"Invalid request: unknown stream","id":1}"#).message
                == .error(message: "code 2: Invalid request: unknown stream"))
        #expect(
            try parse(Binance.self, #"{"error":{"code":3,"msg":"Invalid JSON"},"id":null}"#).message
                == .error(message: "code 3: Invalid JSON"))
        #expect(try parse(Binance.self, #"{"e":"aggTrade","E":1,"s":"BTCUSDT"}"#).message == .ignored(channel: "aggTrade"))
    }

    @Test func badTradesAreRefused() {
        for frame in [
            #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"0","q":"0.5","T":1,"m":false}"#,
            #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"1","q":"0.5","m":false}"#,
            #"{"e":"trade","E":2,"s":"BTCUSDT","t":"9","p":"1","q":"0.5","T":1,"m":false}"#,
            #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"abc","q":"0.5","T":1,"m":false}"#,
            #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"1","q":"0.5","T":1}"#,
            #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"1","q":"0.5","T":1,"m":"yes"}"#,
            #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"1","q":"0.5","T":1,"m":true"#,
            #"{"e":"trade"} x"#, "", "[]", "{}",
        ] {
            #expect(parseError(Binance.self, frame) != nil, "accepted: \(frame)")
        }
    }

    @Test func restTradesAndExchangeInfo() throws {
        let market = ListedMarket(nativeSymbol: "BTCUSDT", symbol: Symbol(normalizing: "BTC-USDT"), isTrading: true)
        let trades = try Binance.parseRecentTrades(Array(Binance.sampleRESTTrades.utf8), market: market, receivedAt: 3)
        let trade = try #require(trades.first)
        #expect(trades.count == 1)
        #expect(trade.tradeId == "28457")
        #expect(trade.price.description == "4.00000100")
        #expect(trade.quantity.description == "12.00000000")
        #expect(trade.quoteQuantity == decimal("48.000012"))
        #expect(trade.side == .sell, "isBuyerMaker:true → the taker sold")
        #expect(trade.time == 1_499_865_549_590)
        #expect(trade.symbol.rawValue == "BTC-USDT")
        #expect(trade.nativeSymbol == "BTCUSDT")
        #expect(trade.exchange.name == "binance")
        #expect(trade.receivedAt == 3)
        #expect(Binance.recentTradesPath(market: market, limit: 5000) == "/api/v3/trades?symbol=BTCUSDT&limit=1000")

        let listed = try Binance.parseMarkets(Array(Binance.sampleExchangeInfo.utf8))
        #expect(listed.map(\.nativeSymbol) == ["ETHBTC", "BTCUSDT"])
        #expect(listed.map(\.symbol.rawValue) == ["ETH-BTC", "BTC-USDT"])
        #expect(listed.map(\.isTrading) == [true, false])
        #expect(throws: FrameParseError.self) { try Binance.parseMarkets(Array(#"{"symbols":[{"status":"TRADING"}]}"#.utf8)) }
        #expect(throws: FrameParseError.self) { try Binance.parseRecentTrades(Array("[{\"id\":1}]".utf8), market: market, receivedAt: 0) }
    }

    @Test func subscribeRequestsAreChunkedLowercaseStreams() {
        #expect(
            Binance.tradeSubscribeMessages(nativeSymbols: ["BTCUSDT", "ETHBTC"]) == [
                #"{"method":"SUBSCRIBE","params":["btcusdt@trade","ethbtc@trade"],"id":1}"#
            ])
        let many = (0..<1_500).map { "S\($0)USDT" }
        let messages = Binance.tradeSubscribeMessages(nativeSymbols: many)
        #expect(messages.count == 2)
        #expect(messages[1].hasSuffix(#""id":2}"#))
        #expect(Binance.maxSymbolsPerConnection == 1_024)
        #expect(Kraken.maxSymbolsPerConnection == .max)
        #expect(Binance.applicationPing == nil)
        #expect(Binance.protocolPing)
    }
}

// MARK: - Coinbase

@Suite struct CoinbaseFrameTests {
    @Test func documentedMarketTradesEveryField() throws {
        let (message, trades) = try parse(Coinbase.self, Coinbase.sampleTradesFrame)
        #expect(message == .trades(count: 1))
        let trade = try #require(trades.first)
        #expect(trade.exchange.name == "coinbase")
        #expect(trade.symbol.rawValue == "ETH-USD")
        #expect(trade.nativeSymbol == "ETH-USD")
        #expect(trade.tradeId == "000000000")
        #expect(trade.price.description == "1260.01")
        #expect(trade.quantity.description == "0.3")
        #expect(trade.quoteQuantity == decimal("378.003"))
        #expect(trade.side == .sell, "side BUY is the maker's: the taker sold")
        #expect(trade.time == 1_565_815_347_265, "2019-08-14T20:42:27.265Z, not the envelope's timestamp")
        #expect(trade.receivedAt == 7)
        #expect(trade.kafkaKey == "coinbase:ETH-USD")
    }

    @Test func everyTradeOfEveryEventIsRead() throws {
        let (message, trades) = try parse(Coinbase.self, Coinbase.sampleUpdateFrame)
        #expect(message == .trades(count: 2))
        #expect(trades.map(\.tradeId) == ["571290391", "571290392"])
        #expect(trades.map(\.side) == [.buy, .sell], "maker SELL → taker buy; maker BUY → taker sell")
        #expect(trades.map(\.time) == [1_675_973_975_954, 1_675_973_975_960], "fraction truncated to ms")
        #expect(trades.map(\.quoteQuantity.description) == ["99.743917", "2192.175"])
        let two =
            #"{"events":[{"type":"snapshot","trades":[{"trade_id":"1","product_id":"BTC-USD","price":"1","size":"2","side":"SELL","time":"2023-01-01T00:00:00Z"}]},{"type":"update","trades":[{"trade_id":"2","product_id":"ETH-USD","price":"3","size":"4","side":"BUY","time":"2023-01-01T00:00:01.5Z"}]}],"channel":"market_trades"}"#
        let parsed = try parse(Coinbase.self, two)
        #expect(parsed.message == .trades(count: 2), "events before channel are read too")
        #expect(parsed.trades.map(\.symbol.rawValue) == ["BTC-USD", "ETH-USD"])
        #expect(parsed.trades.map(\.time) == [1_672_531_200_000, 1_672_531_201_500])
    }

    @Test func subscriptionsHeartbeatsAndErrors() throws {
        #expect(
            try parse(Coinbase.self, Coinbase.sampleSubscriptions).message
                == .subscribed(channel: "market_trades", symbols: ["BTC-USD", "ETH-USD"]))
        #expect(try parse(Coinbase.self, Coinbase.sampleHeartbeat).message == .ignored(channel: "heartbeats"))
        #expect(try parse(Coinbase.self, Coinbase.sampleError).message == .error(message: "failure to subscribe"))
        let heartbeatsOnly = #"{"channel":"subscriptions","events":[{"subscriptions":{"heartbeats":["heartbeats"]}}]}"#
        #expect(try parse(Coinbase.self, heartbeatsOnly).message == .ignored(channel: "subscriptions"))
    }

    @Test func takerSideIsTheOppositeOfTheReportedSide() {
        #expect(Coinbase.sideIsMakerSide)
        #expect(Coinbase.takerSide(fromReported: .buy) == .sell)
        #expect(Coinbase.takerSide(fromReported: .sell) == .buy)
    }

    @Test func badTradesFailTheWholeFrame() {
        let good = #"{"trade_id":"1","product_id":"BTC-USD","price":"1","size":"2","side":"SELL","time":"2023-01-01T00:00:00Z"}"#
        for bad in [
            #"{"trade_id":"2","product_id":"BTC-USD","price":"1","size":"2","side":"UP","time":"2023-01-01T00:00:00Z"}"#,
            #"{"trade_id":"2","product_id":"BTC-USD","price":"1","size":"2","side":"BUY","time":"2023-02-30T00:00:00Z"}"#,
            #"{"trade_id":"2","product_id":"BTC-USD","price":"1","size":"2","side":"BUY","time":"1672531200"}"#,
            #"{"trade_id":"2","product_id":"BTC-USD","price":"-1","size":"2","side":"BUY","time":"2023-01-01T00:00:00Z"}"#,
            #"{"trade_id":"2","product_id":"BTC-USD","size":"2","side":"BUY","time":"2023-01-01T00:00:00Z"}"#,
        ] {
            let frame = #"{"channel":"market_trades","events":[{"type":"update","trades":["# + good + "," + bad + "]}]}"
            var parser = CoinbaseFrameParser()
            var trades: [Trade] = []
            #expect(throws: FrameParseError.self) { try parser.parse(frame, receivedAt: 0, into: &trades) }
            #expect(trades.isEmpty, "a failed frame appends nothing")
        }
        #expect(parseError(Coinbase.self, #"{"channel":"market_trades"}"#)?.code == .unexpectedMessage)
        #expect(parseError(Coinbase.self, #"{"channel":"market_trades","events":[{"trades":[{]}]}"#)?.code == .malformedJSON)
    }

    @Test func restTickerAndProducts() throws {
        let trades = try Coinbase.parseRecentTrades(Array(Coinbase.sampleRESTTrades.utf8), nativeSymbol: "BTC-USD", receivedAt: 3)
        #expect(trades.map(\.tradeId) == ["571290393", "571290392"])
        #expect(trades.map(\.side) == [.buy, .sell])
        #expect(trades.map(\.time) == [1_675_973_977_500, 1_675_973_975_960])
        #expect(trades.map(\.price.description) == ["21921.76", "21921.75"])
        #expect(trades.map(\.quantity.description) == ["0.25", "0.1"])
        #expect(trades.map(\.quoteQuantity.description) == ["5480.44", "2192.175"])
        #expect(trades.allSatisfy { $0.nativeSymbol == "BTC-USD" && $0.symbol.rawValue == "BTC-USD" && $0.receivedAt == 3 })
        #expect(
            Coinbase.recentTradesPath(market: ListedMarket(nativeSymbol: "BTC-USD"), limit: 50)
                == "/api/v3/brokerage/market/products/BTC-USD/ticker?limit=50")
        let products = try Coinbase.parseMarkets(Array(Coinbase.sampleProducts.utf8))
        #expect(products.map(\.nativeSymbol) == ["BTC-USD", "OLD-USD"])
        #expect(products.map(\.isTrading) == [true, false])
        #expect(throws: FrameParseError.self) {
            try Coinbase.parseRecentTrades(Array(#"{"best_bid":"1"}"#.utf8), nativeSymbol: "BTC-USD", receivedAt: 0)
        }
    }

    @Test func subscribeMessagesIncludeHeartbeats() {
        #expect(
            Coinbase.tradeSubscribeMessages(nativeSymbols: ["BTC-USD"]) == [
                #"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}"#,
                #"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"heartbeats"}"#,
            ])
        #expect(Coinbase.applicationPing == nil)
    }
}

// MARK: - Kraken

@Suite struct KrakenFrameTests {
    @Test func documentedSnapshotEveryField() throws {
        let (message, trades) = try parse(Kraken.self, Kraken.sampleTradesFrame)
        #expect(message == .trades(count: 2))
        #expect(trades.map(\.exchange.name) == ["kraken", "kraken"])
        #expect(trades.map(\.symbol.rawValue) == ["MATIC-USD", "MATIC-USD"])
        #expect(trades.map(\.nativeSymbol) == ["MATIC/USD", "MATIC/USD"])
        #expect(trades.map(\.tradeId) == ["4665846", "4665847"])
        #expect(trades.map(\.price.description) == ["0.5147", "0.5147"])
        #expect(trades.map(\.quantity.description) == ["6423.46326", "1136.19677815"])
        #expect(trades.map(\.quoteQuantity.description) == ["3306.156539922", "584.800481713805"])
        #expect(trades.map(\.side) == [.buy, .buy])
        #expect(trades.map(\.time) == [1_695_628_116_925, 1_695_628_176_925], "µs truncated to ms")
        #expect(trades.allSatisfy { $0.receivedAt == 7 })
        let update = try parse(Kraken.self, Kraken.sampleUpdateFrame)
        #expect(update.trades.first?.side == .sell, "side is the taker's")
        #expect(update.trades.first?.quantity.description == "40.0")
        #expect(update.trades.first?.quoteQuantity.description == "20.468")
    }

    @Test func numbersAreReadExactlyNeverThroughDouble() throws {
        let (_, trades) = try parse(Kraken.self, Kraken.sampleSnapshotFrame)
        #expect(trades.count == 2)
        #expect(trades[0].quantity.description == "0.1000000000000000055511151231257827")
        #expect(trades[0].quantity != decimal("0.1"))
        #expect(trades[0].quoteQuantity == decimal("413.64000000000002296163259529748756028"))
        #expect(trades[1].price.description == "12345678.123456789")
        #expect(trades[1].quantity == decimal("0.00000001"), "1e-8 shifted exactly")
        #expect(trades[1].quoteQuantity == decimal("0.12345678123456789"))
        #expect(trades[1].time == 1_671_960_659_999, ".9999 truncated, not rounded up")
        let exponents =
            #"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1.5E+3,"qty":25e-1,"ord_type":"limit","trade_id":1,"timestamp":"2022-12-25T09:30:59Z"}]}"#
        let parsed = try parse(Kraken.self, exponents).trades
        #expect(parsed.first?.price == decimal("1500"))
        #expect(parsed.first?.quantity == decimal("2.5"))
    }

    @Test func acksPongHeartbeatStatusAndErrors() throws {
        #expect(try parse(Kraken.self, Kraken.sampleSubscribeAck).message == .subscribed(channel: "trade", symbols: ["BTC/USD"]))
        #expect(
            try parse(Kraken.self, Kraken.sampleSubscribeError).message
                == .error(message: "Currency pair not supported NOPE/USD (NOPE/USD)"))
        #expect(try parse(Kraken.self, Kraken.samplePong).message == .pong)
        #expect(try parse(Kraken.self, Kraken.sampleHeartbeat).message == .ignored(channel: "heartbeat"))
        #expect(try parse(Kraken.self, Kraken.sampleStatus).message == .ignored(channel: "status"))
        #expect(Kraken.applicationPing == #"{"method":"ping"}"#)
        #expect(
            Kraken.tradeSubscribeMessages(nativeSymbols: ["BTC/USD", "ETH/EUR"]) == [
                #"{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/EUR"],"snapshot":true}}"#
            ])
    }

    @Test func dataBeforeChannelAndBadTrades() throws {
        let reordered =
            #"{"data":[{"symbol":"BTC/USD","side":"sell","price":1,"qty":2,"ord_type":"limit","trade_id":5,"timestamp":"2022-12-25T09:30:59.1Z"}],"type":"update","channel":"trade"}"#
        let parsed = try parse(Kraken.self, reordered)
        #expect(parsed.message == .trades(count: 1))
        #expect(parsed.trades.first?.time == 1_671_960_659_100)
        for bad in [
            #""price":"abc""#, #""price":0"#, #""price":-1"#, #""price":1e"#, #""price":01"#, #""price":null"#,
        ] {
            let frame =
                #"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",\#(bad),"qty":2,"ord_type":"limit","trade_id":5,"timestamp":"2022-12-25T09:30:59Z"}]}"#
            #expect(parseError(Kraken.self, frame) != nil, "accepted \(bad)")
        }
        #expect(parseError(Kraken.self, #"{"channel":"trade","type":"update"}"#)?.code == .unexpectedMessage)
        #expect(
            parseError(
                Kraken.self, #"{"channel":"trade","data":[{"symbol":"BTC/USD","side":"up","price":1,"qty":2,"trade_id":5,"timestamp":"2022-12-25T09:30:59Z"}]}"#
            )?.code == .invalidTrade)
    }

    @Test func restTradesAndAssetPairs() throws {
        let trades = try Kraken.parseRecentTrades(Array(Kraken.sampleRESTTrades.utf8), nativeSymbol: "BTC/USD", receivedAt: 3)
        #expect(trades.map(\.tradeId) == ["61044952", "61044953", "61044956"])
        #expect(trades.map(\.price.description) == ["30243.40000", "30243.30000", "30243.30000"])
        #expect(trades.map(\.quantity.description) == ["0.34507674", "0.00376960", "0.01235716"])
        #expect(trades.map(\.side) == [.buy, .sell, .sell])
        #expect(trades.map(\.time) == [1_688_669_597_827, 1_688_669_598_280, 1_688_669_602_698])
        #expect(trades[0].quoteQuantity == decimal("30243.40000") * decimal("0.34507674"))
        #expect(trades.allSatisfy { $0.symbol.rawValue == "BTC-USD" && $0.nativeSymbol == "BTC/USD" && $0.exchange.name == "kraken" })
        #expect(throws: FrameParseError.self) {
            try Kraken.parseRecentTrades(Array(#"{"error":["EQuery:Unknown asset pair"]}"#.utf8), nativeSymbol: "BTC/USD", receivedAt: 0)
        }
        #expect(throws: FrameParseError.self) {
            try Kraken.parseRecentTrades(
                Array(#"{"error":[],"result":{"XXBTZUSD":[["1","2",1688669597.8277369,"b","m",""]],"last":"1"}}"#.utf8),
                nativeSymbol: "BTC/USD", receivedAt: 0)
        }

        let pairs = try Kraken.parseMarkets(Array(Kraken.sampleAssetPairs.utf8))
        #expect(pairs.map(\.nativeSymbol) == ["BTC/USD", "ETH/EUR", "DOGE/USD"], "v2 names: XBT → BTC, XDG → DOGE")
        #expect(pairs.map(\.symbol.rawValue) == ["BTC-USD", "ETH-EUR", "DOGE-USD"])
        #expect(pairs.map(\.restSymbol) == ["XBTUSD", "ETHEUR", "XDGUSD"])
        #expect(pairs.map(\.isTrading) == [true, false, true])
        #expect(Kraken.recentTradesPath(market: pairs[0], limit: 1000) == "/0/public/Trades?pair=XBTUSD&count=1000")
        #expect(Kraken.recentTradesPath(nativeSymbol: "BTC/USD", limit: 10) == "/0/public/Trades?pair=XBTUSD&count=10")
    }
}

// MARK: - shared

@Suite struct WireValueTests {
    @Test func rfc3339ToMilliseconds() {
        #expect(RFC3339.milliseconds("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.milliseconds("2019-08-14T20:42:27.265Z") == 1_565_815_347_265)
        #expect(RFC3339.milliseconds("2022-12-25T09:30:59.123456Z") == 1_671_960_659_123)
        #expect(RFC3339.milliseconds("2023-06-23T20:31:26.122969572Z") == 1_687_552_286_122)
        #expect(RFC3339.milliseconds("2023-02-09T20:19:35.9Z") == 1_675_973_975_900)
        #expect(RFC3339.milliseconds("2024-02-29T23:59:59.999Z") == 1_709_251_199_999)
        #expect(RFC3339.milliseconds("2024-03-01T01:00:00+01:00") == 1_709_251_200_000)
        #expect(RFC3339.milliseconds("1969-12-31T23:59:59Z") == -1_000)
        for bad in [
            "2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-01-01T24:00:00Z", "2023-01-01T00:00:00",
            "2023-01-01T00:00:00.Z", "2023-01-01 00:00:00 +0000 UTC", "1672531200", "", "2023-01-01T00:00:00Zjunk",
        ] {
            #expect(RFC3339.milliseconds(bad) == nil, "accepted \(bad)")
        }
    }

    @Test func rfc3339AgreesWithFoundationOnManyInstants() {
        var random = SplitMix64(seed: 42)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        for _ in 0..<2_000 {
            let seconds = Int64(random.next() % 4_102_444_800)  // 1970 ... 2100
            let millis = Int64(random.next() % 1_000)
            let base = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))  // ...Z
            let text = base.dropLast() + "." + String(String(1_000 + millis).dropFirst()) + "417Z"
            #expect(RFC3339.milliseconds(String(text)) == seconds * 1_000 + millis, "\(text)")
        }
    }

    @Test func parseBenchmarkRunsEveryVenuesParser() throws {
        let samples: [(Exchange, String, Int)] = [
            (Binance.exchange, Binance.sampleTradeEvent, 1), (Coinbase.exchange, Coinbase.sampleUpdateFrame, 2),
            (Kraken.exchange, Kraken.sampleTradesFrame, 2),
        ]
        for (exchange, frame, perFrame) in samples {
            let result = try ParseBenchmark.run(lines: [frame, frame, "garbage"], exchange: exchange, minimumSeconds: 0)
            #expect(result.trades == perFrame * 2 * (result.frames / 3), "\(exchange)")
            #expect(result.errors == result.frames / 3, "\(exchange)")
        }
    }

    @Test func venuesByName() {
        #expect(Venues.names == ["poloniex", "binance", "coinbase", "kraken"])
        #expect(Venues.adapter(named: "KRAKEN")?.exchange == Kraken.exchange)
        #expect(Venues.adapter(named: "ftx") == nil)
    }

    @Test func symbolSelectionAcceptsAnySpelling() throws {
        let markets = [
            ListedMarket(nativeSymbol: "BTCUSDT", symbol: Symbol(normalizing: "BTC-USDT"), isTrading: true),
            ListedMarket(nativeSymbol: "BTC/USD", symbol: Symbol(normalizing: "BTC-USD"), isTrading: true),
        ]
        #expect(try SymbolSelection.resolve(["BTC_USDT", "btc/usd"], markets: markets, exchange: Binance.exchange) == ["BTCUSDT", "BTC/USD"])
        #expect(try SymbolSelection.resolve(["btcusdt", "BTC-USD"], markets: markets, exchange: Binance.exchange) == ["BTCUSDT", "BTC/USD"])
    }
}

/// Garbage, truncated and mutated frames of every new venue: never a crash, always a
/// `FrameParseError` or a coherent result; a failed frame appends nothing.
@Suite struct VenueFuzzTests {
    func fuzz<A: ExchangeAdapter>(_ adapter: A.Type, seeds: [String], rest: ([UInt8]) throws -> Void) {
        let budget = ProcessInfo.processInfo.environment["TAPE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? TestBudget.iterations(20_000)
        var random = SplitMix64(seed: 20_231_125)
        let seedBytes = seeds.map { Array($0.utf8) }
        var parser = adapter.makeFrameParser(markets: [])
        var trades: [Trade] = []
        var failures = 0
        for i in 0..<budget {
            var frame = seedBytes[Int(random.next() % UInt64(seedBytes.count))]
            random.mutateFrame(&frame)
            trades.removeAll(keepingCapacity: true)
            do {
                _ = try parser.parse(frame, receivedAt: 0, into: &trades)
                for trade in trades {
                    #expect(trade.quoteQuantity == trade.price * trade.quantity)
                    #expect(trade.price > .zero && trade.quantity > .zero)
                }
            } catch {
                failures += 1
                #expect(trades.isEmpty, "a failed frame appended trades")
            }
            if i % 4 == 0 { _ = try? rest(frame) }
        }
        #expect(failures > budget / 4, "mutations should mostly break frames")
        // Every truncation of every seed is refused, never a crash.
        for seed in seedBytes {
            for end in 0..<seed.count {
                trades.removeAll()
                #expect(throws: FrameParseError.self) { try parser.parse(Array(seed[..<end]), receivedAt: 0, into: &trades) }
            }
        }
    }

    @Test func binance() {
        let market = ListedMarket(nativeSymbol: "BTCUSDT")
        fuzz(
            Binance.self,
            seeds: [Binance.sampleTradeEvent, Binance.sampleCombinedTradeEvent, Binance.sampleSubscribeAck, Binance.sampleRESTTrades],
            rest: {
                _ = try? Binance.parseRecentTrades($0, market: market, receivedAt: 0)
                _ = try Binance.parseMarkets($0)
            })
    }

    @Test func coinbase() {
        fuzz(
            Coinbase.self,
            seeds: [Coinbase.sampleTradesFrame, Coinbase.sampleUpdateFrame, Coinbase.sampleSubscriptions, Coinbase.sampleRESTTrades],
            rest: {
                _ = try? Coinbase.parseRecentTrades($0, nativeSymbol: "BTC-USD", receivedAt: 0)
                _ = try Coinbase.parseMarkets($0)
            })
    }

    @Test func kraken() {
        fuzz(
            Kraken.self,
            seeds: [Kraken.sampleTradesFrame, Kraken.sampleSnapshotFrame, Kraken.sampleSubscribeAck, Kraken.sampleRESTTrades],
            rest: {
                _ = try? Kraken.parseRecentTrades($0, nativeSymbol: "BTC/USD", receivedAt: 0)
                _ = try Kraken.parseMarkets($0)
            })
    }
}
