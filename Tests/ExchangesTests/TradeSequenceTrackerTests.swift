import Exchanges
import MarketData
import Testing

/// Holes in consecutive trade ids, without sockets.
@Suite struct TradeSequenceTrackerTests {
    func mark(_ id: Int, _ time: Int64) -> TradeMark { TradeMark(time: time, id: String(id)) }

    @Test func aJumpOpensAHoleWithTheTimesAroundIt() {
        var t = TradeSequenceTracker()
        t.observe(market: "BTC_USDT", mark: mark(10, 1_000))
        t.observe(market: "BTC_USDT", mark: mark(11, 1_001))
        #expect(t.holes().isEmpty)
        t.observe(market: "BTC_USDT", mark: mark(15, 1_500))
        let hole = try! #require(t.holes(market: "BTC_USDT").first)
        #expect(hole.firstMissing == 12 && hole.lastMissing == 14 && hole.missingCount == 3)
        #expect(hole.fromTime == 1_001 && hole.toTime == 1_500)
        #expect(t.holes(market: "ETH_USDT").isEmpty, "markets are apart")
        let gap = hole.gap(exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), repaired: false, detected: 7)
        #expect(gap.from == 1_001 && gap.to == 1_500 && gap.missing == 3 && gap.channel == .trades)
    }

    @Test func lateTradesFillTheHoleAndUnreportedFilledHolesAreForgotten() {
        var t = TradeSequenceTracker()
        t.observe(market: "M", mark: mark(1, 1))
        t.observe(market: "M", mark: mark(4, 4))
        t.observe(market: "M", mark: mark(3, 3))
        #expect(t.hasOpenHoles(market: "M"))
        #expect(t.holes(market: "M").first?.remaining == [2...2])
        t.observe(market: "M", mark: mark(2, 2))
        #expect(!t.hasOpenHoles(market: "M"))
        #expect(t.takeUnreported(market: "M").isEmpty, "out of order is not a gap")
        #expect(t.holes(market: "M").isEmpty)
    }

    @Test func aReportedHoleRESTFillsIsRepaired() {
        var t = TradeSequenceTracker()
        t.observe(market: "M", mark: mark(100, 1))
        t.observe(market: "M", mark: mark(105, 5))
        #expect(t.takeUnreported(market: "M").map(\.firstMissing) == [101])
        #expect(t.takeUnreported(market: "M").isEmpty, "reported once")
        for id in 101...104 { t.observe(market: "M", mark: mark(id, Int64(id - 99))) }
        let verdict = t.judge(market: "M", ids: Array(96...105), fullPage: true, maxAttempts: 3)
        #expect(verdict.repaired.map(\.firstMissing) == [101])
        #expect(verdict.abandoned.isEmpty && !verdict.disabled)
        #expect(t.holes(market: "M").isEmpty)
    }

    @Test func idsOlderThanRESTReachesAreGivenUpWithTheReason() {
        var t = TradeSequenceTracker()
        t.observe(market: "M", mark: mark(1, 1))
        t.observe(market: "M", mark: mark(5_000, 50))
        // A full page that starts after the hole: REST cannot reach back.
        for id in 4_001...4_999 { t.observe(market: "M", mark: mark(id, 40)) }
        let verdict = t.judge(market: "M", ids: Array(4_001...5_000), fullPage: true, maxAttempts: 3)
        #expect(verdict.abandoned.count == 1)
        #expect(verdict.abandoned.first?.reason.contains("reaches back only to id 4001") == true)
        #expect(verdict.abandoned.first?.hole.remaining == [2...4_000])
        #expect(t.holes(market: "M").isEmpty, "given up once")
    }

    @Test func holesNewerThanRESTWaitThenAreGivenUp() {
        var t = TradeSequenceTracker()
        t.observe(market: "M", mark: mark(10, 1))
        t.observe(market: "M", mark: mark(13, 3))
        // REST has not caught up yet: it lists only up to id 10.
        let first = t.judge(market: "M", ids: Array(1...10), fullPage: false, maxAttempts: 3)
        #expect(first.repaired.isEmpty && first.abandoned.isEmpty && !first.disabled)
        #expect(t.hasOpenHoles(market: "M"))
        _ = t.judge(market: "M", ids: Array(1...10), fullPage: false, maxAttempts: 3)
        let third = t.judge(market: "M", ids: Array(1...10), fullPage: false, maxAttempts: 3)
        #expect(third.abandoned.first?.reason.contains("after 3 attempts") == true)
    }

    @Test func restPagesWithHolesTurnTrackingOff() {
        var t = TradeSequenceTracker()
        t.observe(market: "M", mark: mark(10, 1))
        t.observe(market: "M", mark: mark(20, 2))
        let verdict = t.judge(market: "M", ids: [10, 12, 14, 20], fullPage: false, maxAttempts: 3)
        #expect(verdict.disabled)
        #expect(t.disabled == ["M"])
        t.observe(market: "M", mark: mark(40, 3))
        #expect(t.holes(market: "M").isEmpty)
    }

    @Test func seededFromKafkaATradeAfterDowntimeShowsTheOutage() {
        var t = TradeSequenceTracker()
        t.seed(market: "M", mark: mark(500, 5_000))
        t.observe(market: "M", mark: mark(900, 9_000))
        #expect(t.holes(market: "M").first.map { ($0.firstMissing, $0.lastMissing, $0.fromTime) } ?? (0, 0, 0) == (501, 899, 5_000))
    }

    @Test func nonNumericIdsAreIgnoredAndHolesAreBounded() {
        var t = TradeSequenceTracker(maxHolesPerMarket: 3)
        t.observe(market: "M", mark: TradeMark(time: 1, id: "a-b"))
        #expect(t.holes().isEmpty)
        var dropped = 0
        for i in 0..<10 where t.observe(market: "M", mark: mark(i * 3, Int64(i))) != nil { dropped += 1 }
        #expect(t.holes(market: "M").count == 3)
        #expect(dropped == 6)
        // Absurd ids never trap.
        t.observe(market: "X", mark: mark(0, 0))
        t.observe(market: "X", mark: TradeMark(time: 1, id: String(UInt64.max)))
        #expect(t.holes(market: "X").first?.lastMissing == UInt64.max - 1)
        // A REST page spanning every id (0 and 2^64-1) is judged, not a trap.
        #expect(t.judge(market: "X", ids: [0, UInt64.max], fullPage: true, maxAttempts: 3).disabled)
    }
}
