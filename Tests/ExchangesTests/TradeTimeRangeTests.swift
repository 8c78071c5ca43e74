import ExchangeSimulator
import Foundation
import MarketData
import Testing

@testable import Exchanges

// A venue frame is untrusted input: a trade time near Int64's end used to pass the parsers and
// trap `tape ingest` (`last.time * 1000` in the lag metric). Every parser now refuses a time
// outside `Trade.validTimes` as an invalid trade: the frame is dead-lettered, never published.

private func parse<A: ExchangeAdapter>(_ adapter: A.Type, _ frame: String, markets: [ListedMarket] = []) throws(FrameParseError) -> [Trade] {
    var parser = adapter.makeFrameParser(markets: markets)
    var trades: [Trade] = []
    _ = try parser.parse(Array(frame.utf8), receivedAt: 7, into: &trades)
    return trades
}

private func error<A: ExchangeAdapter>(_ adapter: A.Type, _ frame: String, markets: [ListedMarket] = []) -> FrameParseError? {
    do {
        let trades = try parse(adapter, frame, markets: markets)
        Issue.record("accepted: \(trades.map(\.time))")
        return nil
    } catch {
        return error
    }
}

private let binanceMarkets = [ListedMarket(nativeSymbol: "BTCUSDT", symbol: Symbol(normalizing: "BTC-USDT"), isTrading: true)]

@Suite("Trade times out of range")
struct TradeTimeRangeTests {
    static let outOfRange: [String] = ["9223372036854775807", "9223372036854775800", "-9223372036854775808", "-1", "253402300800000"]

    @Test(arguments: outOfRange)
    func poloniexRefusesTheFrame(time: String) {
        let frame = Poloniex.sampleTradesFrame.replacingOccurrences(of: "1661123520381", with: time)
        for fastPath in [true, false] {
            var parser = PoloniexFrameParser(fastPath: fastPath)
            var trades: [Trade] = []
            do {
                _ = try parser.parse(frame, receivedAt: 7, into: &trades)
                Issue.record("accepted createTime \(time)")
            } catch {
                #expect(error.code == .invalidTrade, "\(error)")
                #expect(error.reason.contains(time), "\(error)")
            }
            #expect(trades.isEmpty)
        }
        // The lenient string form too.
        let quoted = Poloniex.sampleTradesFrame.replacingOccurrences(of: "1661123520381", with: "\"\(time)\"")
        #expect(error(Poloniex.self, quoted)?.code == .invalidTrade)
        // And REST.
        let rest = Poloniex.sampleRESTTrades.replacingOccurrences(of: "1661123542635", with: time)
        #expect(throws: FrameParseError.self) { try Poloniex.parseRecentTrades(Array(rest.utf8), nativeSymbol: "BTC_USDT", receivedAt: 0) }
    }

    @Test(arguments: outOfRange)
    func binanceRefusesTheFrame(time: String) {
        let frame = #"{"e":"trade","E":2,"s":"BTCUSDT","t":9,"p":"20000.01","q":"0.5","T":\#(time),"m":false,"M":true}"#
        #expect(error(Binance.self, frame, markets: binanceMarkets)?.code == .invalidTrade)
        let rest = #"[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":\#(time),"isBuyerMaker":true,"isBestMatch":true}]"#
        #expect(throws: FrameParseError.self) { try Binance.parseRecentTrades(Array(rest.utf8), market: binanceMarkets[0], receivedAt: 0) }
    }

    @Test(arguments: ["0001-08-14T20:42:27.265Z", "1969-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z"])
    func rfc3339VenuesRefuseTimesBefore1970(time: String) {
        let coinbase = Coinbase.sampleTradesFrame.replacingOccurrences(of: "2019-08-14T20:42:27.265Z", with: time)
        #expect(error(Coinbase.self, coinbase)?.code == .invalidTrade)
        let kraken = Kraken.sampleTradesFrame.replacingOccurrences(of: "2023-09-25T07:48:36.925533Z", with: time)
        #expect(error(Kraken.self, kraken)?.code == .invalidTrade)
        let coinbaseREST = Coinbase.sampleRESTTrades.replacingOccurrences(of: "2023-02-09T20:19:37.5Z", with: time)
        #expect(throws: FrameParseError.self) { try Coinbase.parseRecentTrades(Array(coinbaseREST.utf8), nativeSymbol: "BTC-USD", receivedAt: 0) }
    }

    @Test func krakenRESTSecondsBeyond9999AreRefused() throws {
        let far = Kraken.sampleRESTTrades.replacingOccurrences(of: "1688669597.8277369", with: "999999999999.5")
        #expect(throws: FrameParseError.self) { try Kraken.parseRecentTrades(Array(far.utf8), nativeSymbol: "BTC/USD", receivedAt: 0) }
        let last = Kraken.sampleRESTTrades.replacingOccurrences(of: "1688669597.8277369", with: "253402300799.9999")
        let trades = try Kraken.parseRecentTrades(Array(last.utf8), nativeSymbol: "BTC/USD", receivedAt: 0)
        #expect(trades.first?.time == Trade.validTimes.upperBound)
    }

    /// The range is what it says: the first millisecond of 1970 to the last of 9999.
    @Test func rangeIsTheCalendarRange() {
        #expect(RFC3339.milliseconds("1970-01-01T00:00:00Z") == Trade.validTimes.lowerBound)
        #expect(RFC3339.milliseconds("9999-12-31T23:59:59.999Z") == Trade.validTimes.upperBound)
        let end = Kraken.sampleTradesFrame.replacingOccurrences(of: "2023-09-25T07:48:36.925533Z", with: "9999-12-31T23:59:59.999999Z")
        #expect((try? parse(Kraken.self, end))?.first?.time == Trade.validTimes.upperBound)
    }

    /// The simulator's time-poisoning fault (malformed variant 3) yields, for every venue, a frame
    /// that parser refuses.
    @Test func poisonedSimulatorFramesAreRefusedByEveryVenue() {
        let poloniex = WireFaults.malformed(Poloniex.sampleTradesFrame, variant: 3)
        #expect(poloniex.contains("9223372036854775807"))
        #expect(error(Poloniex.self, poloniex)?.code == .invalidTrade)
        let binance = WireFaults.malformed(Binance.sampleTradeEvent.replacingOccurrences(of: "BNBBTC", with: "BTCUSDT"), variant: 3)
        #expect(binance.contains("9223372036854775807"))
        #expect(error(Binance.self, binance, markets: binanceMarkets)?.code == .invalidTrade)
        let coinbase = WireFaults.malformed(Coinbase.sampleTradesFrame, variant: 3)
        #expect(coinbase.contains("\"time\":\"0001-"))
        #expect(error(Coinbase.self, coinbase)?.code == .invalidTrade)
        let kraken = WireFaults.malformed(Kraken.sampleTradesFrame, variant: 3)
        #expect(kraken.contains("\"timestamp\":\"0001-"))
        #expect(error(Kraken.self, kraken)?.code == .invalidTrade)
    }

    /// Every fault variant (`WireFaults.malformed`, shared by the simulated venues) breaks every
    /// venue's frame in that venue's own text: each parser refuses it, and none gets another
    /// venue's message shape.
    @Test func everyFaultVariantBreaksEveryVenuesFrameInItsOwnText() {
        let binanceFrame = Binance.sampleTradeEvent.replacingOccurrences(of: "BNBBTC", with: "BTCUSDT")
        for variant in UInt64(0)..<8 {
            let frames = [
                WireFaults.malformed(Poloniex.sampleTradesFrame, variant: variant), WireFaults.malformed(binanceFrame, variant: variant),
                WireFaults.malformed(Coinbase.sampleTradesFrame, variant: variant), WireFaults.malformed(Kraken.sampleTradesFrame, variant: variant),
            ]
            #expect(error(Poloniex.self, frames[0]) != nil, "variant \(variant): \(frames[0])")
            #expect(error(Binance.self, frames[1], markets: binanceMarkets) != nil, "variant \(variant): \(frames[1])")
            #expect(error(Coinbase.self, frames[2]) != nil, "variant \(variant): \(frames[2])")
            #expect(error(Kraken.self, frames[3]) != nil, "variant \(variant): \(frames[3])")
            for frame in frames.dropFirst() { #expect(!frame.contains("\"channel\":\"trades\",\"data\":[{]"), "\(frame)") }
        }
        #expect(WireFaults.malformed(binanceFrame, variant: 2).contains("\"p\":\"x"))
    }

    /// The connection loop's own checks: its lag arithmetic saturates, and a trade with a bad time
    /// from any parser makes the frame invalid.
    @Test func connectionLoopArithmeticDoesNotTrap() throws {
        #expect(lagMicroseconds(receivedAt: 1_661_123_520_391_123, time: 1_661_123_520_381) == 10_123)
        #expect(lagMicroseconds(receivedAt: 1_661_123_520_391_123, time: .max) == Int.min)
        #expect(lagMicroseconds(receivedAt: 1_661_123_520_391_123, time: .min) == Int.max)
        #expect(lagMicroseconds(receivedAt: .min, time: 1) == Int.min)
        var trade = try #require(parse(Poloniex.self, Poloniex.sampleTradesFrame).first)
        #expect(invalidTradeTime(in: [trade]) == nil)
        trade.time = .max
        #expect(invalidTradeTime(in: [trade])?.code == .invalidTrade)
    }
}
