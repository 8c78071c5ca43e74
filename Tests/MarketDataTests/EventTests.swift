import MarketData
import Testing

private func d(_ text: String) -> ExactDecimal {
    do { return try ExactDecimal(text) } catch { fatalError("test literal \(text) does not parse: \(error)") }
}

/// The contract's trade value (docs/contracts.md), verbatim (joined to one line).
private let designTradeJSON =
    #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","nativeSymbol":"BTC_USDT","tradeId":"60184114","#
    + #""price":"21614.59","quantity":"0.01149","quoteQuantity":"248.3516391","side":"sell","#
    + #""time":1661123520381,"receivedAt":1661123520391123}"#

/// The contract's candle value (docs/contracts.md), verbatim (joined to one line), with the `complete` member of its
/// "Continuity" section.
private let designCandleJSON =
    #"{"v":1,"exchange":"poloniex","symbol":"BTC-USDT","interval":"1m","start":1661123520000,"end":1661123580000,"#
    + #""open":"21614.59","high":"21620.00","low":"21610.10","close":"21611.00","volume":"1.23456","#
    + #""quoteVolume":"26680.1234","buyVolume":"0.5","sellVolume":"0.73456","trades":17,"vwap":"21611.2345678901","#
    + #""revision":3,"final":true,"complete":true}"#

private func designTrade() -> Trade {
    Trade(
        exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), nativeSymbol: "BTC_USDT", tradeId: "60184114",
        price: d("21614.59"), quantity: d("0.01149"), side: .sell, time: 1_661_123_520_381,
        receivedAt: 1_661_123_520_391_123)
}

@Suite struct SymbolTests {
    @Test func normalizesNativeSpellings() {
        #expect(Symbol(normalizing: "BTC_USDT").rawValue == "BTC-USDT")
        #expect(Symbol(normalizing: "btc_usdt").rawValue == "BTC-USDT")
        #expect(Symbol(normalizing: "ETH/BTC").rawValue == "ETH-BTC")
        #expect(Symbol(normalizing: "BTC-USDT").rawValue == "BTC-USDT")
        #expect(Symbol(normalizing: "USDJ_USDT").base == "USDJ")
        #expect(Symbol(normalizing: "USDJ_USDT").quote == "USDT")
        #expect(Symbol(normalizing: "BTC_USDT") == Symbol(normalizing: "btc-usdt"))
    }

    @Test func sideParsesAnyCase() {
        let cases: [(String, Side?)] = [
            ("buy", .buy), ("BUY", .buy), ("sell", .sell), ("SELL", .sell), ("Sell", .sell),
            ("bid", nil), ("", nil), ("buyy", nil), ("sel", nil),
        ]
        for (text, expected) in cases {
            var copy = text
            let parsed = copy.withUTF8 { Side(utf8: $0) }
            #expect(parsed == expected, "\(text)")
        }
    }
}

@Suite struct TradeJSONTests {
    @Test func encodesExactlyDesignLayout() {
        let trade = designTrade()
        #expect(trade.quoteQuantity.description == "248.3516391")
        #expect(trade.jsonString == designTradeJSON)
        #expect(trade.kafkaKey == "poloniex:BTC-USDT")
    }

    @Test func decodesWhatItEncodes() throws {
        let decoded = try Trade(json: designTradeJSON)
        #expect(decoded == designTrade())
        #expect(decoded.jsonString == designTradeJSON)
        #expect(try Trade(json: Array(designTradeJSON.utf8)) == designTrade())
    }

    @Test func decoderKeepsDecimalTextAndSkipsUnknownMembers() throws {
        let json = #"""
            { "future": {"nested": [1, 2.5e3, null, true, "x\"y"]}, "v": 1, "exchange": "poloniex",
              "symbol": "BTC-USDT", "nativeSymbol": "BTC_USDT", "tradeId": "7", "price": "21620.00",
              "quantity": "0.50", "quoteQuantity": "10810.0000", "side": "buy", "time": 1, "receivedAt": 2 }
            """#
        let trade = try Trade(json: json)
        #expect(trade.price.description == "21620.00")
        #expect(trade.quantity.description == "0.50")
        #expect(trade.quoteQuantity.description == "10810.0000")
        #expect(trade.side == .buy)
        #expect(trade.jsonString.contains(#""price":"21620.00""#))
    }

    @Test func escapesStringsWhenEncoding() throws {
        var trade = designTrade()
        trade.tradeId = "a\"b\\c\nd\u{1}é"
        let json = trade.jsonString
        #expect(json.contains(#""tradeId":"a\"b\\c\nd\u0001é""#))
        #expect(try Trade(json: json).tradeId == trade.tradeId)
    }

    @Test(arguments: [
        "", "{", "[]", "null", designTradeJSON + "x", designTradeJSON + "{}",
        String(designTradeJSON.dropLast()),
        designTradeJSON.replacingOccurrences(#""v":1"#, #""v":2"#),
        designTradeJSON.replacingOccurrences(#""side":"sell""#, #""side":"ask""#),
        designTradeJSON.replacingOccurrences(#""price":"21614.59""#, #""price":"2e4""#),
        designTradeJSON.replacingOccurrences(#""price":"21614.59""#, #""price":"""#),
        designTradeJSON.replacingOccurrences(#""time":1661123520381"#, #""time":"1661123520381""#),
        designTradeJSON.replacingOccurrences(#""time":1661123520381"#, #""time":99999999999999999999"#),
        designTradeJSON.replacingOccurrences(#""tradeId":"60184114","#, ""),
        designTradeJSON.replacingOccurrences(#""quoteQuantity":"248.3516391","#, ""),
    ])
    func decoderThrowsOnBadInput(json: String) {
        #expect(throws: JSONError.self) { try Trade(json: json) }
    }

    /// Times outside 1970...9999 are malformed trades (their window arithmetic could overflow
    /// downstream), with their own error code; the range's ends are accepted.
    @Test(arguments: ["9223372036854775807", "9223372036854775802", "-9223372036854775808", "-1", "253402300800000"])
    func outOfRangeTimeIsRejected(time: String) {
        let json = designTradeJSON.replacingOccurrences(#""time":1661123520381"#, #""time":"# + time)
        do {
            _ = try Trade(json: json)
            Issue.record("accepted time \(time)")
        } catch {
            #expect(error.code == .outOfRange)
            #expect(error.reason.contains(time))
        }
    }

    @Test func timeRangeEndsAreAccepted() throws {
        for time in [Trade.validTimes.lowerBound, Trade.validTimes.upperBound] {
            let json = designTradeJSON.replacingOccurrences(#""time":1661123520381"#, #""time":"# + String(time))
            #expect(try Trade(json: json).time == time)
        }
    }
}

@Suite struct CandleTests {
    private func designCandle() -> Candle {
        Candle(
            exchange: .poloniex, symbol: Symbol(normalizing: "BTC-USDT"), interval: .oneMinute,
            start: 1_661_123_520_000, end: 1_661_123_580_000, open: d("21614.59"), high: d("21620.00"),
            low: d("21610.10"), close: d("21611.00"), volume: d("1.23456"), quoteVolume: d("26680.1234"),
            buyVolume: d("0.5"), sellVolume: d("0.73456"), trades: 17, vwap: d("21611.2345678901"), revision: 3,
            isFinal: true)
    }

    @Test func encodesExactlyDesignLayout() {
        #expect(designCandle().jsonString == designCandleJSON)
        #expect(designCandle().kafkaKey == "poloniex:BTC-USDT:1m:1661123520000")
    }

    @Test func decodesWhatItEncodes() throws {
        let candle = try Candle(json: designCandleJSON)
        #expect(candle == designCandle())
        #expect(candle.jsonString == designCandleJSON)
    }

    /// Volumes are sums: twelve 38-digit quantities make a 39-digit volume. What the processor
    /// writes must decode (it did not: the decoder used the 38-digit limit of one quantity).
    @Test func sumsBeyond38DigitsRoundTrip() throws {
        let huge = try ExactDecimal(String(repeating: "9", count: 38))
        var candle = designCandle()
        candle.volume = huge * ExactDecimal(12)
        candle.quoteVolume = huge * huge  // 76 digits
        candle.buyVolume = candle.volume
        candle.vwap = try ExactDecimal("1" + String(repeating: "0", count: 37) + ".0123456789", allowingSignificantDigits: 78)  // 48 digits
        let decoded = try Candle(json: candle.jsonBytes)
        #expect(decoded == candle)
        #expect(decoded.quoteVolume.description == candle.quoteVolume.description)
        // One trade's decimal keeps the 38-digit limit; a sum is bounded by 256 bits.
        #expect(throws: DecimalError.self) { try ExactDecimal(String(repeating: "9", count: 39)) }
        #expect(throws: DecimalError.self) {
            try ExactDecimal(String(repeating: "9", count: 78), allowingSignificantDigits: ExactDecimal.maximumSumDigits)
        }
        let max256 = "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        #expect(try ExactDecimal(max256, allowingSignificantDigits: ExactDecimal.maximumSumDigits).description == max256)
        #expect(throws: DecimalError.self) {
            try ExactDecimal("115792089237316195423570985008687907853269984665640564039457584007913129639936", allowingSignificantDigits: 78)
        }
    }

    /// Window starts never trap, even for times whose window would start below Int64.min.
    @Test func windowStartSaturates() {
        #expect(CandleInterval.oneMinute.windowStart(containing: .min) == .min)
        #expect(CandleInterval.oneDay.windowStart(containing: .min + 1) == .min)
        #expect(CandleInterval.oneMinute.windowStart(containing: .max) == Int64.max - Int64.max % 60_000)
        #expect(CandleInterval.oneMinute.windowStart(containing: -1) == -60_000)
    }

    @Test func vwapMayBeNull() throws {
        var candle = designCandle()
        candle.vwap = nil
        #expect(candle.jsonString.contains(#""vwap":null,"#))
        #expect(try Candle(json: candle.jsonString).vwap == nil)
    }

    @Test func vwapHelperUsesTenDigitsHalfEven() {
        #expect(Candle.vwap(quoteVolume: d("26680.1234"), volume: d("1.23456"))?.description == "21611.0382646449")
        #expect(Candle.vwap(quoteVolume: d("0"), volume: d("0.0")) == nil)
    }

    @Test(arguments: [
        designCandleJSON.replacingOccurrences(#""interval":"1m""#, #""interval":"1w""#),
        designCandleJSON.replacingOccurrences(#""final":true"#, #""final":1"#),
        designCandleJSON.replacingOccurrences(#""high":"21620.00","#, ""),
        designCandleJSON.replacingOccurrences(#""vwap":"21611.2345678901","#, ""),
        String(designCandleJSON.prefix(100)),
    ])
    func decoderThrowsOnBadInput(json: String) {
        #expect(throws: JSONError.self) { try Candle(json: json) }
    }
}

@Suite struct CandleIntervalTests {
    @Test func parsesCommonIntervals() {
        let expected: [(String, Int64)] = [
            ("1s", 1), ("5s", 5), ("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3_600), ("4h", 14_400),
            ("1d", 86_400), ("90s", 90), ("7m", 420),
        ]
        for (text, seconds) in expected {
            #expect(CandleInterval(text)?.seconds == seconds, "\(text)")
            #expect(CandleInterval(text)?.description == text, "\(text)")
        }
    }

    @Test func printsCanonically() {
        #expect(CandleInterval("60s")?.description == "1m")
        #expect(CandleInterval("86400s")?.description == "1d")
        #expect(CandleInterval("24h")?.description == "1d")
        #expect(CandleInterval("120m")?.description == "2h")
    }

    @Test(arguments: ["", "0s", "2d", "1441m", "1w", "01m", "m", "1", "-1m", "1.5m", "1M", " 1m", "99999999999s"])
    func rejects(text: String) {
        #expect(CandleInterval(text) == nil)
    }

    @Test func windowsAreEpochAligned() {
        let minute = CandleInterval.oneMinute
        #expect(minute.windowStart(containing: 1_661_123_520_381) == 1_661_123_520_000)
        #expect(minute.windowStart(containing: 1_661_123_520_000) == 1_661_123_520_000)
        #expect(minute.windowStart(containing: 1_661_123_579_999) == 1_661_123_520_000)
        #expect(minute.windowStart(containing: -1) == -60_000)
        #expect(CandleInterval.oneDay.windowStart(containing: 1_661_123_520_381) == 1_661_040_000_000)
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        guard let range = range(of: target) else { fatalError("\(target) not in \(self)") }
        return replaceSubrange(range, replacement)
    }

    private func range(of target: String) -> Range<String.Index>? {
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(target) { return index..<self.index(index, offsetBy: target.count) }
            index = self.index(after: index)
        }
        return nil
    }

    private func replaceSubrange(_ range: Range<String.Index>, _ replacement: String) -> String {
        var copy = self
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}
