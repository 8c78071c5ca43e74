import MarketData
import Testing

@Suite struct GapTests {
    let gap = Gap(
        exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), channel: .trades, from: 1_000, to: 2_000,
        reason: "trade ids jumped from 10 to 15", repaired: false, missing: 4, detected: 3_000)

    @Test func writesTheContractLayout() {
        #expect(
            gap.jsonString
                == #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","channel":"trades","from":1000,"to":2000,"reason":"trade ids jumped from 10 to 15","repaired":false,"missing":4,"detected":3000}"#
        )
        #expect(gap.kafkaKey == "poloniex:BTC-USDT:trades")
    }

    @Test func roundTrips() throws {
        #expect(try Gap(json: gap.jsonBytes) == gap)
        let minimal = try Gap(
            json: #"{"v":1,"exchange":"kraken","symbol":"ETH/USD","channel":"book","from":5,"to":3,"repaired":true}"#)
        #expect(minimal.symbol.rawValue == "ETH-USD")
        #expect(minimal.from == 3 && minimal.to == 5)
        #expect(minimal.missing == nil && minimal.reason.isEmpty && minimal.repaired)
    }

    @Test func rejectsWhatIsNotAGap() {
        let bad = [
            #"{"v":2,"exchange":"x","symbol":"A-B","channel":"trades","from":1,"to":2,"repaired":false}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","channel":"quotes","from":1,"to":2,"repaired":false}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","channel":"trades","to":2,"repaired":false}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","channel":"trades","from":1,"to":2}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","channel":"trades","from":1,"to":2,"repaired":false} x"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","channel":"trades","from":1e400,"to":2,"repaired":false}"#,
        ]
        for text in bad { #expect(throws: JSONError.self) { try Gap(json: text) } }
    }

    @Test func ledgerTracksOpenGapsPerMarket() {
        var ledger = GapLedger()
        ledger.apply(gap)
        let btc = Symbol(normalizing: "BTC_USDT")
        #expect(!ledger.isComplete(exchange: .poloniex, symbol: btc, start: 0, end: 60_000))
        #expect(!ledger.isComplete(exchange: .poloniex, symbol: btc, start: 2_000, end: 3_000))  // `to` is inclusive
        #expect(ledger.isComplete(exchange: .poloniex, symbol: btc, start: 2_001, end: 3_000))
        #expect(ledger.isComplete(exchange: .poloniex, symbol: btc, start: 0, end: 1_000))  // `end` is exclusive
        #expect(ledger.isComplete(exchange: .poloniex, symbol: Symbol(normalizing: "ETH_USDT"), start: 0, end: 60_000))
        #expect(ledger.unrepairedCount == 1)
        var repaired = gap
        repaired.repaired = true
        #expect(ledger.apply(repaired) == gap)
        #expect(ledger.isComplete(exchange: .poloniex, symbol: btc, start: 0, end: 60_000))
        #expect(ledger.count == 1 && ledger.unrepairedCount == 0)
        #expect(ledger.list(unrepairedOnly: true).isEmpty)
        #expect(ledger.list(exchange: .poloniex) == [repaired])
    }

    @Test func ledgerIsBounded() {
        var ledger = GapLedger(capacity: 100)
        for i in 0..<1_000 {
            ledger.apply(
                Gap(
                    exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), channel: .trades, from: Int64(i * 10),
                    to: Int64(i * 10 + 5), reason: "", repaired: i % 2 == 0))
        }
        #expect(ledger.count <= 100)
        // The newest unrepaired gap is kept.
        #expect(!ledger.isComplete(exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), start: 9_990, end: 9_996))
    }

    @Test func candleWithoutCompleteReadsAsComplete() throws {
        let old =
            #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","interval":"1m","start":0,"end":60000,"open":"1","high":"1","low":"1","close":"1","volume":"1","quoteVolume":"1","buyVolume":"1","sellVolume":"0","trades":1,"vwap":"1","revision":0,"final":false}"#
        var candle = try Candle(json: old)
        #expect(candle.complete)
        candle.complete = false
        #expect(candle.jsonString.hasSuffix(#""final":false,"complete":false}"#))
        #expect(try Candle(json: candle.jsonBytes).complete == false)
    }
}
