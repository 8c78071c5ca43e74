import Exchanges
import MarketData
import XCTest

/// Deduplication and gap detection, without sockets.
final class TradeDeduplicatorTests: XCTestCase {
    func trade(_ id: Int, _ time: Int64, symbol: String = "BTC_USDT") -> Trade {
        Trade(
            exchange: .poloniex, symbol: Symbol(normalizing: symbol), nativeSymbol: symbol, tradeId: String(id),
            price: ExactDecimal(mantissa: 2_161_459, scale: 2), quantity: ExactDecimal(mantissa: 1149, scale: 5),
            side: .buy, time: time, receivedAt: time * 1000)
    }

    func trade(id: String, _ time: Int64, symbol: String = "BTC_USDT") -> Trade {
        var x = trade(1, time, symbol: symbol)
        x.tradeId = id
        return x
    }

    func testDropsRepeatsPerMarket() {
        var d = TradeDeduplicator(capacity: 100)
        XCTAssertTrue(d.admit(trade(1, 10)))
        XCTAssertFalse(d.admit(trade(1, 10)))
        XCTAssertTrue(d.admit(trade(1, 10, symbol: "ETH_USDT")), "ids are per market")
        XCTAssertTrue(d.admit(trade(2, 11)))
        XCTAssertEqual(d.newest(market: "BTC_USDT"), TradeMark(time: 11, id: "2"))
    }

    func testMemoryIsBoundedAndEvictedIdsStayDuplicates() {
        var d = TradeDeduplicator(capacity: 10)
        for i in 1...1000 { XCTAssertTrue(d.admit(trade(i, Int64(i)))) }
        // Every old id is still recognised, through the floor.
        for i in 1...1000 { XCTAssertFalse(d.admit(trade(i, Int64(i))), "id \(i)") }
        XCTAssertTrue(d.admit(trade(1001, 1001)))
    }

    func testBackfillAfterReconnectPublishesOnlyTheMissingTradesOldestFirst() {
        var d = TradeDeduplicator()
        for i in 1...50 { _ = d.admit(trade(i, Int64(i))) }
        // REST returns the latest 100 (newest first): ids 31...130.
        let rest = (31...130).reversed().map { trade($0, Int64($0)) }
        let (fresh, gap) = d.reconcileBackfill(rest, market: "BTC_USDT", limit: 100)
        XCTAssertNil(gap, "REST reaches back past the last trade seen")
        XCTAssertEqual(fresh.map(\.tradeId), (51...130).map(String.init))
        // Live frames repeating the backfill are dropped.
        XCTAssertFalse(d.admit(trade(130, 130)))
        XCTAssertTrue(d.admit(trade(131, 131)))
    }

    func testGapTooLargeToFillIsReported() {
        var d = TradeDeduplicator()
        for i in 1...50 { _ = d.admit(trade(i, Int64(i))) }
        let rest = (500...599).reversed().map { trade($0, Int64($0)) }
        let (fresh, gap) = d.reconcileBackfill(rest, market: "BTC_USDT", limit: 100)
        XCTAssertEqual(fresh.count, 100)
        let g = try! XCTUnwrap(gap)
        XCTAssertEqual(g.lastSeen, TradeMark(time: 50, id: "50"))
        XCTAssertEqual(g.oldestBackfilled, TradeMark(time: 500, id: "500"))
        XCTAssertEqual(g.backfilled, 100)
        XCTAssertEqual(g.symbol.rawValue, "BTC-USDT")
        let json = String(decoding: g.jsonBytes, as: UTF8.self)
        XCTAssertTrue(json.contains(#""lastSeenId":"50""#), json)
        XCTAssertTrue(json.contains(#""firstAfterGapId":"500""#), json)
    }

    func testAShortPageIsNeverAGap() {
        var d = TradeDeduplicator()
        _ = d.admit(trade(1, 1))
        // Fewer than `limit` trades: REST returned everything it has.
        let (fresh, gap) = d.reconcileBackfill([trade(900, 900)], market: "BTC_USDT", limit: 100)
        XCTAssertNil(gap)
        XCTAssertEqual(fresh.count, 1)
    }

    func testNoHistoryNoGap() {
        var d = TradeDeduplicator()
        let (fresh, gap) = d.reconcileBackfill((1...100).map { trade($0, Int64($0)) }, market: "BTC_USDT", limit: 100)
        XCTAssertNil(gap)
        XCTAssertEqual(fresh.count, 100)
    }

    func testRestoreFromKafkaTailMakesOlderTradesDuplicates() {
        var d = TradeDeduplicator(capacity: 1000)
        // The tail held ids 400...450 of this market (older ones were published before).
        d.restore((400...450).map { trade($0, Int64($0)) })
        XCTAssertEqual(d.newest(market: "BTC_USDT"), TradeMark(time: 450, id: "450"))
        let rest = (351...1350).reversed().map { trade($0, Int64($0)) }
        let (fresh, gap) = d.reconcileBackfill(rest, market: "BTC_USDT", limit: 1000)
        XCTAssertNil(gap)
        XCTAssertEqual(fresh.first?.tradeId, "451")
        XCTAssertEqual(fresh.count, 900)
    }

    func testNonNumericIdsFallBackToTime() {
        var d = TradeDeduplicator(capacity: 2)
        let t = { (id: String, time: Int64) in self.trade(id: id, time) }
        XCTAssertTrue(d.admit(t("a", 1)))
        XCTAssertTrue(d.admit(t("b", 2)))
        XCTAssertTrue(d.admit(t("c", 3)))
        XCTAssertFalse(d.admit(t("a", 1)), "older than the floor")
        XCTAssertFalse(d.admit(t("c", 3)))
        XCTAssertTrue(d.admit(t("d", 4)))
    }

    /// Numeric ids are kept as numbers inside; an id is still its exact text.
    func testIdsSpelledDifferentlyAreDifferentTrades() {
        var d = TradeDeduplicator(capacity: 100)
        let t = { (id: String, time: Int64) in self.trade(id: id, time) }
        XCTAssertTrue(d.admit(t("7", 7)))
        for spelling in ["07", "+7", "007"] {
            XCTAssertTrue(d.admit(t(spelling, 7)), spelling)
            XCTAssertFalse(d.admit(t(spelling, 7)), "\(spelling) again")
        }
        XCTAssertFalse(d.admit(t("7", 7)))
        XCTAssertTrue(d.admit(t("0", 1)))
        XCTAssertTrue(d.admit(t("-0", 1)))
        XCTAssertFalse(d.admit(t("0", 1)))
    }

    /// Against the plain model (ids as strings in a set, the same window and floor) over random
    /// streams with repeats, reordering, eviction and the same number spelled several ways.
    func testAgreesWithAModelKeepingIdsAsStrings() {
        struct Model {
            let capacity: Int
            var ids: [String: Set<String>] = [:]
            var order: [String: [TradeMark]] = [:]
            var floor: [String: TradeMark] = [:]
            mutating func admit(_ market: String, _ mark: TradeMark) -> Bool {
                if ids[market, default: []].contains(mark.id) { return false }
                if let f = floor[market], !(f < mark) { return false }
                ids[market, default: []].insert(mark.id)
                order[market, default: []].append(mark)
                if order[market]!.count > capacity {
                    let evicted = order[market]!.removeFirst()
                    ids[market]!.remove(evicted.id)
                    if floor[market].map({ $0 < evicted }) ?? true { floor[market] = evicted }
                }
                return true
            }
        }
        var generator = SystemRandomNumberGenerator()
        for round in 0..<20 {
            let capacity = [1, 3, 16, 100][round % 4]
            var d = TradeDeduplicator(capacity: capacity)
            var model = Model(capacity: capacity)
            var next = 1
            var admitted = 0
            for _ in 0..<3_000 {
                let market = ["BTC_USDT", "ETH_USDT"][Int.random(in: 0...1, using: &generator)]
                let n = Int.random(in: 0...9, using: &generator) < 7 ? next : max(0, next - Int.random(in: 1...40, using: &generator))
                if n == next { next += 1 }
                let id = ["\(n)", "\(n)", "\(n)", "0\(n)", "+\(n)", "x\(n)"][Int.random(in: 0...5, using: &generator)]
                let x = trade(id: id, Int64(n), symbol: market)
                let expected = model.admit(market, TradeMark(x))
                XCTAssertEqual(d.admit(x), expected, "round \(round), \(market) id \(id)")
                if expected { admitted += 1 }
            }
            XCTAssertGreaterThan(admitted, 1_000, "the stream admits most trades")
        }
    }
}
