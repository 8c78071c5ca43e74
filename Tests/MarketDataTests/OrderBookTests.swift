import MarketData
import Testing

@Suite struct OrderBookTests {
    func level(_ price: String, _ quantity: String) throws -> BookLevel { try BookLevel(price: price, quantity: quantity) }

    @Test func pricesSortByValueNotByText() throws {
        #expect(try BookPrice("9.5") < BookPrice("10"))
        #expect(try BookPrice("0.1") == BookPrice("0.10"))
        #expect(try BookPrice("0.00000312") < BookPrice("0.0000032"))
        #expect(try BookPrice("21614.59").description == "21614.59")
        #expect(try BookPrice("18446744073709551615.9999999999999999999").integer == UInt64.max)
        #expect(throws: BookError.self) { try BookPrice("18446744073709551616") }
        #expect(throws: BookError.self) { try BookPrice("-1") }
        #expect(throws: BookError.self) { try BookPrice("1e5") }
        #expect(throws: BookError.self) { try BookPrice("1.") }
        #expect(throws: BookError.self) { try BookPrice(".5") }
        #expect(throws: BookError.self) { try BookPrice("") }
        #expect(throws: BookError.self) { try BookPrice("0.12345678901234567891") }
        #expect(try BookPrice("0.12345678901234567890") == BookPrice("0.1234567890123456789"))
    }

    @Test func quantitiesKeepTheirTextAndZeroRemoves() throws {
        #expect(try level("1", "0.00000000").isEmpty)
        #expect(try level("1", "0").isEmpty)
        #expect(try !level("1", "0.50").isEmpty)
        #expect(try level("1", "0.50").quantity == "0.50")
        for bad in ["", "-1", "1e3", "1.2.3", ".5", "5.", "abc", "0x10"] {
            #expect(throws: BookError.self, "\(bad)") { try BookLevel(price: "1", quantity: bad) }
        }
    }

    @Test func applyKeepsSidesSortedBestFirst() throws {
        var book = OrderBook(
            bids: [try level("100.5", "1"), try level("99", "2"), try level("100", "3")],
            asks: [try level("101", "1"), try level("102.25", "4")])
        #expect(book.bids().map(\.price) == ["100.5", "100", "99"])
        #expect(book.asks().map(\.price) == ["101", "102.25"])
        book.apply(try level("100.50", "7"), side: .bid)  // same price, other spelling: replaces
        #expect(book.bestBid?.quantity == "7")
        book.apply(try level("100", "0"), side: .bid)
        #expect(book.bids().map(\.price) == ["100.50", "99"])
        book.apply(try level("100.75", "1"), side: .bid)
        book.apply(try level("103", "1"), side: .ask)
        book.apply(try level("100.9", "1"), side: .ask)
        #expect(book.bids(top: 2).map(\.price) == ["100.75", "100.50"])
        #expect(book.asks().map(\.price) == ["100.9", "101", "102.25", "103"])
        book.apply(try level("55", "0"), side: .ask)  // removing a missing level is a no-op
        #expect(book.depth.asks == 4)
        #expect(!book.isCrossed)
        #expect(book.spread == (try ExactDecimal("0.15")))
        #expect(book.mid == (try ExactDecimal("100.825")))
        book.apply(try level("100.9", "2"), side: .bid)
        #expect(book.isCrossed)
    }

    /// A random sequence of changes gives the same book as a dictionary model.
    @Test func matchesADictionaryModel() throws {
        var random = SystemRandomNumberGenerator()
        var book = OrderBook()
        var model: [BookSide: [String: String]] = [.bid: [:], .ask: [:]]
        for _ in 0..<5_000 {
            let side: BookSide = Bool.random(using: &random) ? .bid : .ask
            let tick = Int.random(in: 1...200, using: &random)
            let price = "\(tick / 100).\(String(format: "%02d", tick % 100))"
            let quantity = Int.random(in: 0...3, using: &random) == 0 ? "0" : "\(Int.random(in: 1...999, using: &random))"
            book.apply(try level(price, quantity), side: side)
            model[side]![price] = quantity == "0" ? nil : quantity
        }
        let bids = model[.bid]!.sorted { try! BookPrice($0.key) > BookPrice($1.key) }.map { "\($0.key):\($0.value)" }
        let asks = model[.ask]!.sorted { try! BookPrice($0.key) < BookPrice($1.key) }.map { "\($0.key):\($0.value)" }
        #expect(book.bids().map { "\($0.price):\($0.quantity)" } == bids)
        #expect(book.asks().map { "\($0.price):\($0.quantity)" } == asks)
    }

    @Test func eventsRoundTripAndApply() throws {
        let snapshot = BookEvent(
            exchange: Exchange("binance"), symbol: Symbol(normalizing: "BTC-USDT"), nativeSymbol: "BTCUSDT", kind: .snapshot,
            sequence: "1027024", bids: [try level("21614.59", "0.5"), try level("21614.58", "1.2")],
            asks: [try level("21614.60", "0.3")], time: 1_661_123_520_381, receivedAt: 1_661_123_520_391_123)
        #expect(
            snapshot.jsonString
                == #"{"v":1,"exchange":"binance","symbol":"BTC-USDT","nativeSymbol":"BTCUSDT","type":"snapshot","sequence":"1027024","bids":[["21614.59","0.5"],["21614.58","1.2"]],"asks":[["21614.60","0.3"]],"time":1661123520381,"receivedAt":1661123520391123}"#
        )
        #expect(try BookEvent(json: snapshot.jsonBytes) == snapshot)
        var update = snapshot
        update.kind = .update
        update.sequence = nil
        update.bids = [try level("21614.59", "0")]
        update.asks = [try level("21614.61", "2")]
        #expect(update.jsonString.contains(#""sequence":null"#))
        #expect(try BookEvent(json: update.jsonBytes) == update)
        var book = OrderBook()
        book.apply(snapshot)
        book.apply(update)
        #expect(book.bids().map(\.price) == ["21614.58"])
        #expect(book.asks().map(\.price) == ["21614.60", "21614.61"])
    }

    @Test func badRecordsAreRefused() {
        let bad = [
            #"{"v":2,"exchange":"x","symbol":"A-B","type":"update","bids":[],"asks":[],"time":1}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","type":"delta","bids":[],"asks":[],"time":1}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","type":"update","bids":[["1"]],"asks":[],"time":1}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","type":"update","bids":[["-1","2"]],"asks":[],"time":1}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","type":"update","bids":[["1","2"]],"time":1}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","type":"update","bids":[],"asks":[],"time":-5}"#,
            #"{"v":1,"exchange":"x","symbol":"A-B","type":"update","bids":[["1","x"]],"asks":[],"time":1}"#,
        ]
        for text in bad {
            #expect(throws: JSONError.self, "\(text)") { try BookEvent(json: text) }
        }
    }
}
