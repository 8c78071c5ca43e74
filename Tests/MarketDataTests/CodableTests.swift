import Foundation
import MarketData
import Testing

@Suite struct CodableTests {
    struct Row: Codable, Equatable {
        var price: ExactDecimal
        var symbol: Symbol
        var exchange: Exchange
        var interval: CandleInterval
        var side: Side
    }

    @Test func valuesCodeAsStrings() throws {
        let row = Row(
            price: try ExactDecimal("21620.00"), symbol: Symbol(normalizing: "BTC_USDT"), exchange: .poloniex,
            interval: .oneMinute, side: .sell)
        let data = try JSONEncoder().encode(row)
        let json = String(decoding: data, as: UTF8.self)
        #expect(json.contains(#""price":"21620.00""#))
        #expect(json.contains(#""symbol":"BTC-USDT""#))
        #expect(json.contains(#""interval":"1m""#))
        #expect(json.contains(#""side":"sell""#))
        let back = try JSONDecoder().decode(Row.self, from: data)
        #expect(back == row)
        #expect(back.price.description == "21620.00")
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Row.self, from: Data(json.replacingOccurrences(of: "21620.00", with: "2e4").utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Row.self, from: Data(json.replacingOccurrences(of: "\"1m\"", with: "\"1w\"").utf8))
        }
    }
}
