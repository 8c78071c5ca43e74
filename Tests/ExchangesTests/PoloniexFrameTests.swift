import ExchangeSimulator
import Exchanges
import Foundation
import MarketData
import TapeTestSupport
import Testing

private func parse(_ frame: String) throws -> (message: ExchangeMessage, trades: [Trade]) {
    var parser = PoloniexFrameParser()
    return try parser.parse(frame, receivedAt: 7)
}

private func parseError(_ frame: String) -> FrameParseError? {
    do {
        _ = try parse(frame)
        return nil
    } catch {
        return error as? FrameParseError
    }
}

@Suite struct PoloniexFrameTests {
    @Test func everyTradeOfAMultiTradeFrameIsRead() throws {
        let frame = #"""
            {"channel":"trades","data":[
            {"symbol":"BTC_USDT","amount":"248.3516391","quantity":"0.01149","takerSide":"sell","createTime":1661123520381,"price":"21614.59","id":"60184114","ts":1661123520386},
            {"symbol":"ETH_USDT","amount":"16.2345","quantity":"0.01","takerSide":"buy","createTime":1661123520382,"price":"1623.45","id":"7001","ts":1661123520386},
            {"symbol":"BTC_USDT","amount":"21614.6","quantity":"1","takerSide":"buy","createTime":1661123520383,"price":"21614.60","id":"60184115","ts":1661123520386}
            ]}
            """#
        let (message, trades) = try parse(frame)
        #expect(message == .trades(count: 3))
        #expect(trades.map(\.tradeId) == ["60184114", "7001", "60184115"])
        #expect(trades.map(\.symbol.rawValue) == ["BTC-USDT", "ETH-USDT", "BTC-USDT"])
        #expect(trades.map(\.side) == [.sell, .buy, .buy])
        #expect(trades.map(\.time) == [1_661_123_520_381, 1_661_123_520_382, 1_661_123_520_383])
        #expect(trades.map(\.price.description) == ["21614.59", "1623.45", "21614.60"])
        #expect(trades.map(\.quoteQuantity.description) == ["248.3516391", "16.2345", "21614.6"])
        #expect(trades.allSatisfy { $0.receivedAt == 7 })
    }

    @Test func quantityIsBaseAndTimeIsCreateTime() throws {
        // amount (quote) and ts (push time) deliberately far from quantity and createTime.
        let frame =
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"43229.18","quantity":"2","takerSide":"buy","createTime":1000,"price":"21614.59","id":"1","ts":999999}]}"#
        var parser = PoloniexFrameParser()
        let (_, trades) = try parser.parse(frame, receivedAt: 0)
        #expect(trades[0].quantity.description == "2")
        #expect(trades[0].quoteQuantity.description == "43229.18")
        #expect(trades[0].time == 1000)
        #expect(parser.amountMismatches == 0)
    }

    @Test func amountIsCheckedNotTrusted() throws {
        let frame =
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"1","quantity":"0.01149","takerSide":"sell","createTime":1,"price":"21614.59","id":"1","ts":2}]}"#
        var parser = PoloniexFrameParser()
        let (_, trades) = try parser.parse(frame, receivedAt: 0)
        #expect(trades[0].quoteQuantity.description == "248.3516391")
        #expect(parser.amountMismatches == 1)
    }

    @Test func idMayBeANumberAndKeepsItsText() throws {
        let frame =
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"248.3516391","quantity":"0.01149","takerSide":"sell","createTime":1661123520381,"price":"21614.59","id":60184114,"ts":1661123520386},{"symbol":"BTC_USDT","quantity":"1","takerSide":"SELL","createTime":1,"price":"1","id":123456789012345678901234567890}]}"#
        var parser = PoloniexFrameParser()
        let (message, trades) = try parser.parse(frame, receivedAt: 0)
        #expect(message == .trades(count: 2))
        #expect(trades.map(\.tradeId) == ["60184114", "123456789012345678901234567890"])
        #expect(trades[1].side == .sell)
        #expect(parser.missingAmounts == 1)
    }

    @Test func memberOrderDoesNotMatter() throws {
        let frame =
            #"{"data":[{"ts":2,"id":"9","price":"1.5","createTime":1,"takerSide":"buy","quantity":"2","amount":"3.0","symbol":"eth_btc","extra":{"a":[1,2,{"b":null}]}}],"channel":"trades","extra":true}"#
        let (message, trades) = try parse(frame)
        #expect(message == .trades(count: 1))
        #expect(trades[0].symbol.rawValue == "ETH-BTC")
        #expect(trades[0].nativeSymbol == "eth_btc")
        #expect(trades[0].quoteQuantity.description == "3")
        #expect(trades[0].tradeId == "9")
    }

    @Test func mixedOrRepeatedFramesAreRefusedWhole() throws {
        let trade =
            #"{"symbol":"BTC_USDT","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"1"}"#
        for frame in [
            #"{"channel":"trades","data":["# + trade + #"],"event":"pong"}"#,
            #"{"event":"subscribe","channel":"trades","data":["# + trade + "]}",
            #"{"channel":"trades","data":["# + trade + #"],"channel":"book_lv2"}"#,
            #"{"channel":"trades","data":["# + trade + #"],"data":[]}"#,
        ] {
            var parser = PoloniexFrameParser()
            var trades: [Trade] = []
            #expect(throws: FrameParseError.self, "\(frame)") { try parser.parse(frame, receivedAt: 0, into: &trades) }
            #expect(trades.isEmpty)
        }
        // The channel as a one-element array still means trades.
        #expect(try parse(#"{"channel":["trades"],"data":["# + trade + "]}").message == .trades(count: 1))
        #expect(try parse(#"{"data":["# + trade + #"],"channel":["trades"]}"#).trades.count == 1)
    }

    @Test func emptyTradesFrame() throws {
        #expect(try parse(#"{"channel":"trades","data":[]}"#).message == .trades(count: 0))
    }

    @Test func eventsAndOtherChannels() throws {
        #expect(try parse(#"{"event":"pong"}"#).message == .pong)
        #expect(try parse(#" { "event" : "pong" } "#).message == .pong)
        #expect(
            try parse(#"{"event":"error","message":"Subscription failed: symbol NOPE_USDT"}"#).message
                == .error(message: "Subscription failed: symbol NOPE_USDT"))
        #expect(try parse(#"{"event":"error"}"#).message == .error(message: ""))
        #expect(
            try parse(Poloniex.sampleSubscribeAck).message
                == .subscribed(
                    channel: "trades",
                    symbols: [
                        "BCH_USDT", "EFI_USDT", "USDJ_USDT", "DYP_USDT", "SOL_USDT", "MDT_BTC", "GRT_USDT", "GF_USDT",
                        "BCH_BTC", "ZEC_USDT", "BTC_USDT",
                    ]))
        #expect(
            try parse(#"{"event":"unsubscribe","channel":"trades","symbols":["BTC_USDT"]}"#).message
                == .unsubscribed(channel: "trades", symbols: ["BTC_USDT"]))
        #expect(try parse(#"{"event":"somethingNew"}"#).message == .otherEvent("somethingNew"))
        #expect(
            try parse(#"{"channel":"book_lv2","data":[{"symbol":"X","asks":[["1","2"]],"bids":[]}],"action":"update"}"#)
                .message == .ignored(channel: "book_lv2"))
        #expect(try parse(#"{"channel":"ticker","data":[]}"#).message == .ignored(channel: "ticker"))
    }

    @Test func pingMessageIsWhatPoloniexExpects() {
        #expect(Poloniex.pingMessage == #"{"event":"ping"}"#)
        #expect(Poloniex.pingInterval <= .seconds(20))
        #expect(Poloniex.restTradesPath(symbol: "BTC_USDT") == "/markets/BTC_USDT/trades?limit=1000")
        #expect(Poloniex.nativeSymbol(Symbol(normalizing: "BTC-USDT")) == "BTC_USDT")
    }

    @Test func badTradesSayWhatIsWrong() {
        let good =
            #"{"symbol":"BTC_USDT","amount":"248.3516391","quantity":"0.01149","takerSide":"sell","createTime":1661123520381,"price":"21614.59","id":"60184114","ts":1661123520386}"#
        func frame(_ trade: String) -> String { #"{"channel":"trades","data":["# + trade + "]}" }
        func without(_ member: String) -> String {
            var t = good
            let range = t.range(of: member)!
            t.removeSubrange(range)
            return t
        }
        let cases: [(String, String)] = [
            (frame(without(#""quantity":"0.01149","#)), "quantity"),
            (frame(without(#""symbol":"BTC_USDT","#)), "symbol"),
            (frame(without(#""takerSide":"sell","#)), "takerSide"),
            (frame(without(#""createTime":1661123520381,"#)), "createTime"),
            (frame(without(#""price":"21614.59","#)), "price"),
            (frame(without(#","id":"60184114""#)), "id"),
            (frame(good.replacingFirst(#""sell""#, #""up""#)), "takerSide"),
            (frame(good.replacingFirst(#""21614.59""#, #""2.1e4""#)), "decimal"),
            (frame(good.replacingFirst(#""21614.59""#, #""""#)), "decimal"),
            (frame(good.replacingFirst("1661123520381", "1.5")), "integer"),
            (frame(good.replacingFirst(#""60184114""#, #""""#)), "id"),
            (frame(good.replacingFirst(#""21614.59""#, #""0.00""#)), "price"),
            (frame(good.replacingFirst(#""21614.59""#, #""-21614.59""#)), "price"),
            (frame(good.replacingFirst(#""0.01149""#, #""0""#)), "quantity"),
            (frame(good.replacingFirst(#""0.01149""#, #""-0.01149""#)), "quantity"),
        ]
        for (text, word) in cases {
            let error = parseError(text)
            #expect(error?.code == .invalidTrade, "\(text)")
            #expect(error?.reason.contains(word) == true, "\(String(describing: error)) should mention \(word)")
        }
        #expect(parseError(#"{"channel":"trades"}"#)?.code == .unexpectedMessage)
        #expect(parseError(#"{"foo":1}"#)?.code == .unexpectedMessage)
        #expect(parseError(#"{"channel":"trades","data":{}}"#)?.code == .malformedJSON)
        #expect(parseError(String(frame(good).dropLast()))?.code == .malformedJSON)
        #expect(parseError(frame(good) + "{}")?.code == .malformedJSON)
    }

    @Test func aFailingFrameAppendsNoTrades() {
        let frame =
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"1"},{"symbol":"BTC_USDT","quantity":"x","takerSide":"buy","createTime":1,"price":"1","id":"2"}]}"#
        var parser = PoloniexFrameParser()
        var trades: [Trade] = [
            Trade(
                exchange: .poloniex, symbol: Symbol(normalizing: "A_B"), nativeSymbol: "A_B", tradeId: "0",
                price: .zero, quantity: .zero, side: .buy, time: 0, receivedAt: 0)
        ]
        #expect(throws: FrameParseError.self) { try parser.parse(frame, receivedAt: 0, into: &trades) }
        #expect(trades.count == 1)
    }

    @Test(arguments: [
        "", " ", "x", "[]", "null", "{", "}", "{]", #"{"channel""#, #"{"channel":}"#, #"{"channel":"trades","data":[{"#,
        #"{"channel":"trades","data":[1,2]}"#, #"{"channel":1}"#, #"{"event":1}"#, "\u{0}\u{1}\u{2}",
        String(repeating: "[", count: 100_000), String(repeating: #"{"a":"#, count: 10_000),
        #"{"channel":"book_lv2","data":"# + String(repeating: "[", count: 5_000) + "}",
        #"{"event":"pong""#, #"{"event":"pong"}}"#, "{\"event\":\"po\ng\"}", #"{"event":"\ud800"}"#,
        #"{"event":"\u12"}"#, #"{"event":"pong",}"#, #"{"event":tru}"#, #"{"x":-}"#, #"{"x":01}"#, #"{"x":1.}"#,
        #"{"x":1e}"#,
    ])
    func garbageThrowsATypedError(text: String) {
        #expect(throws: FrameParseError.self) { try parse(text) }
    }

    @Test func restTradesUseUppercaseTakerSide() throws {
        let trades = try PoloniexREST.parseTrades(Poloniex.sampleRESTTrades, nativeSymbol: "BTC_USDT", receivedAt: 5)
        #expect(trades.count == 1)
        let t = trades[0]
        #expect(t.exchange == .poloniex)
        #expect(t.symbol.rawValue == "BTC-USDT")
        #expect(t.nativeSymbol == "BTC_USDT")
        #expect(t.tradeId == "60184117")
        #expect(t.price.description == "21602.42")
        #expect(t.quantity.description == "0.002305")
        #expect(t.quoteQuantity.description == "49.7935781")
        #expect(t.side == .buy)
        #expect(t.time == 1_661_123_542_635)
        #expect(t.receivedAt == 5)

        let two = try PoloniexREST.parseTrades(
            #"[{"id":"2","price":"1.0","quantity":"3","amount":"3","takerSide":"SELL","ts":9,"createTime":8},{"id":1,"price":"2","quantity":"1","amount":"2","takerSide":"BUY","ts":7,"createTime":6}]"#,
            nativeSymbol: "ETH_USDT", receivedAt: 0)
        #expect(two.map(\.tradeId) == ["2", "1"])
        #expect(two.map(\.side) == [.sell, .buy])
        #expect(two.map(\.time) == [8, 6])
        #expect(try PoloniexREST.parseTrades("[]", nativeSymbol: "ETH_USDT", receivedAt: 0).isEmpty)
        #expect(throws: FrameParseError.self) {
            try PoloniexREST.parseTrades(#"{"code":400,"message":"bad"}"#, nativeSymbol: "X_Y", receivedAt: 0)
        }
    }
}

/// Seeded mutations of real frames: the parser must never trap, and must either parse or throw
/// `FrameParseError`. Fixed budget so the test is fast and reproducible; set
/// `TAPE_FUZZ_ITERATIONS` (and optionally `TAPE_FUZZ_SEED`) for a longer or different run.
@Suite struct PoloniexFuzzTests {
    @Test func mutatedCaptureFramesNeverCrash() throws {
        let environment = ProcessInfo.processInfo.environment
        let budget = environment["TAPE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? TestBudget.iterations(30_000)
        let seed = environment["TAPE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_220_821
        let lines = try FixtureFiles.lines("ws-capture-2022-08-21.txt")
        let frames: [[UInt8]] = lines.compactMap {
            if case .received(_, let text) = CaptureLine($0) { return Array(text.utf8) } else { return nil }
        }
        let seeds: [[UInt8]] =
            frames.filter { String(decoding: $0, as: UTF8.self).contains(#""trades""#) } + Array(frames.prefix(20))
            + [Array(Poloniex.sampleRESTTrades.utf8)]
        var random = SplitMix64(seed: seed)
        var parser = PoloniexFrameParser()
        var trades: [Trade] = []
        var parsed = 0
        var failed = 0
        for _ in 0..<budget {
            var frame = seeds[Int(random.next() % UInt64(seeds.count))]
            random.mutateFrame(&frame)
            trades.removeAll(keepingCapacity: true)
            do {
                _ = try parser.parse(frame, receivedAt: 0, into: &trades)
                parsed += 1
                for trade in trades {
                    // whatever parsed must be a coherent trade
                    #expect(trade.quoteQuantity == (trade.price * trade.quantity))
                }
            } catch {
                failed += 1
                #expect(trades.isEmpty)
                #expect(!error.reason.isEmpty)
            }
        }
        #expect(parsed + failed == budget)
        #expect(failed > budget / 3, "mutations should break most frames")
        #expect(parsed > budget / 300, "some mutations keep frames valid")
    }
}

extension String {
    fileprivate func replacingFirst(_ target: String, _ replacement: String) -> String {
        guard let range = range(of: target) else { fatalError("\(target) not in \(self)") }
        var copy = self
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}

/// The speculative fast path must give exactly what the general parser gives — same trades
/// (same text), same message, same error, same counters — on real, simulated and mutated frames.
@Suite struct PoloniexFastPathTests {
    enum Outcome: Equatable {
        case parsed(ExchangeMessage, [String], mismatches: Int, missing: Int)
        case failed(String)
    }

    static func outcome(_ frame: [UInt8], fastPath: Bool) -> Outcome {
        var parser = PoloniexFrameParser(fastPath: fastPath)
        var trades: [Trade] = []
        do {
            let message = try parser.parse(frame, receivedAt: 99, into: &trades)
            return .parsed(
                message, trades.map(\.jsonString), mismatches: parser.amountMismatches, missing: parser.missingAmounts)
        } catch {
            return .failed(error.description)
        }
    }

    @Test func fastAndGeneralPathsAgree() throws {
        let lines = try FixtureFiles.lines("ws-capture-2022-08-21.txt")
        var frames: [[UInt8]] = lines.compactMap {
            if case .received(_, let text) = CaptureLine($0) { return Array(text.utf8) } else { return nil }
        }
        var market = MarketSimulator()
        for i in 0..<300 {
            frames.append(Array(PoloniexWire.tradesFrame(market.nextOrder().trades, numericIds: i % 5 == 0).utf8))
        }
        frames += [
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"1","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"1","ts":1}],"extra":1}"#,
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"9","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"1","ts":1}],"x":}"#,
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"1","quantity":"1","takerSide":"buy","createTime":01,"price":"1","id":"1","ts":1}]}"#,
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"1","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":-1,"ts":1.5}]}"#,
            #"{"channel":"trades","data":[{"symbol":"B\u0054C_USDT","amount":"1","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"1","ts":1}]}"#,
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"1","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"","ts":1}]}"#,
            #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"1e1","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"1","ts":1}]}"#,
            #"{"channel":"trades","data":[ {"symbol":"BTC_USDT","amount":"1","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"1","ts":1} ] }"#,
        ].map { Array($0.utf8) }
        var seeds = frames
        var random = SplitMix64(seed: 7)
        for _ in 0..<20_000 {
            var frame = seeds[Int(random.next() % UInt64(seeds.count))]
            if !frame.isEmpty {
                let at = Int(random.next() % UInt64(frame.count))
                switch random.next() % 3 {
                case 0: frame[at] = Array(#"{}[]",:.-0123456789e\ "#.utf8)[Int(random.next() % 22)]
                case 1: frame.remove(at: at)
                default: frame.insert(frame[at], at: at)
                }
            }
            frames.append(frame)
            if random.next() % 4 == 0 { seeds.append(frame) }
        }
        var agreed = 0
        var parsedTrades = 0
        for frame in frames {
            let fast = PoloniexFastPathTests.outcome(frame, fastPath: true)
            let general = PoloniexFastPathTests.outcome(frame, fastPath: false)
            #expect(fast == general, "\(String(decoding: frame, as: UTF8.self))")
            if fast == general { agreed += 1 }
            if case .parsed(_, let trades, _, _) = fast { parsedTrades += trades.count }
        }
        #expect(agreed == frames.count)
        #expect(parsedTrades > 1_000)
    }
}

@Suite struct SymbolCacheTests {
    @Test func manyAndLongSymbolsKeepTheirOwnStrings() throws {
        var parser = PoloniexFrameParser()
        var names: [String] = (0..<5_000).map { "S\($0)_USDT" }  // beyond the cache's capacity
        names += ["ABCDEFGHIJK_USDT", "ABCDEFGHIJ_USDT", "ABCDEFGHIJKLMNOPQRSTUV_USDT", "a_b", "x"]  // 16, 15, 27 bytes
        for round in 0..<2 {
            for name in names {
                let frame =
                    #"{"channel":"trades","data":[{"symbol":""# + name
                    + #"","amount":"1","quantity":"1","takerSide":"buy","createTime":1,"price":"1","id":"\#(round)","ts":1}]}"#
                let (_, trades) = try parser.parse(frame, receivedAt: 0)
                #expect(trades.first?.nativeSymbol == name)
                #expect(trades.first?.symbol == Symbol(normalizing: name))
            }
        }
    }
}
