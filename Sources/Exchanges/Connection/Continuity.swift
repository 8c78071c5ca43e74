import MarketData
import Synchronization

/// What one exchange connection knows about the trades it has published — the deduplicator, the
/// holes in each market's trade ids, and which markets are due for a REST request — shared by the
/// websocket reader and the REST repair loop of `ExchangeConnection`, and kept across reconnects.
final class Continuity: Sendable {
    struct State: Sendable {
        var dedup: TradeDeduplicator
        var sequences = TradeSequenceTracker()
        /// Markets to re-read over REST, and from when.
        var repairs: [String: Duration] = [:]
        var lastREST: Duration?
        var reconcileCursor = 0
        var nextReconcile: Duration = .zero
    }

    private let state: Mutex<State>

    /// `resumeSequences`: the newest trade of each market in `deduplicator` (read back from Kafka)
    /// starts gap detection, so trades made while Tape was down show as a jump.
    init(deduplicator: TradeDeduplicator, resumeSequences: Bool = true) {
        var state = State(dedup: deduplicator)
        for market in deduplicator.knownMarkets where resumeSequences {
            if let newest = deduplicator.newest(market: market) { state.sequences.seed(market: market, mark: newest) }
        }
        self.state = Mutex(state)
    }

    /// The trades of a frame not seen before, in frame order. With `tracksIds`, a jump in a market's
    /// ids that the frame itself does not close schedules a REST repair of that market at `repairDue`.
    func admit(_ trades: [Trade], tracksIds: Bool, repairDue: Duration) -> [Trade] {
        state.withLock { s in
            var fresh: [Trade] = []
            fresh.reserveCapacity(trades.count)
            for trade in trades {
                let mark = TradeMark(trade)  // parses the id once for both
                guard s.dedup.admit(market: trade.nativeSymbol, mark: mark) else { continue }
                fresh.append(trade)
                if tracksIds { s.sequences.observe(market: trade.nativeSymbol, mark: mark) }
            }
            if tracksIds {
                // A frame holds one market or a few: a list is cheaper than a set here.
                var checked: [String] = []
                for trade in fresh where !checked.contains(trade.nativeSymbol) {
                    checked.append(trade.nativeSymbol)
                    if s.sequences.hasOpenHoles(market: trade.nativeSymbol), s.repairs[trade.nativeSymbol] == nil {
                        s.repairs[trade.nativeSymbol] = repairDue
                    }
                }
            }
            return fresh
        }
    }

    /// Schedules REST re-reads of `markets` (an earlier schedule is kept).
    func requestRepair(_ markets: Set<String>, due: Duration) {
        state.withLock { s in
            for market in markets where s.repairs[market].map({ $0 > due }) ?? true { s.repairs[market] = due }
        }
    }

    /// Schedules another attempt at `market` (a hole REST did not list yet, a failed request).
    func retryLater(market: String, due: Duration) {
        state.withLock { s in
            if s.repairs[market].map({ $0 > due }) ?? true { s.repairs[market] = due }
        }
    }

    /// Drops scheduled repairs: the backfill after a subscribe re-reads every market anyway.
    func cancelRepairs() { state.withLock { $0.repairs = [:] } }

    /// The first periodic reconciliation happens at `at`.
    func startReconciling(at: Duration) { state.withLock { $0.nextReconcile = at } }

    /// The market to request now, if any: the earliest due repair, else the next market of the
    /// periodic reconciliation when it is due; never sooner than `spacing` after the last request.
    func nextRESTMarket(now: Duration, symbols: [String], spacing: Duration, reconcileEvery: Duration?) -> String? {
        state.withLock { s in
            if let last = s.lastREST, now - last < spacing { return nil }
            if let (market, _) = s.repairs.filter({ $0.value <= now }).min(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
                s.repairs[market] = nil
                s.lastREST = now
                return market
            }
            guard let every = reconcileEvery, !symbols.isEmpty, now >= s.nextReconcile else { return nil }
            let market = symbols[s.reconcileCursor % symbols.count]
            s.reconcileCursor = (s.reconcileCursor + 1) % symbols.count
            s.nextReconcile = now + every
            s.lastREST = now
            return market
        }
    }

    /// Open holes of `market` not yet written down; they count as written from now on.
    func takeUnreported(market: String) -> [TradeSequenceTracker.Hole] {
        state.withLock { $0.sequences.takeUnreported(market: market) }
    }

    struct Outcome: Sendable {
        var fresh: [Trade]
        var verdict: TradeSequenceTracker.Verdict
        /// Without id tracking: REST could not reach back to the last trade seen.
        var pageGap: TradeGap?
        /// Holes REST may still fill later.
        var stillOpen: Bool
    }

    /// Folds a REST page of `market` in: the trades not seen yet (oldest first), and what it did to
    /// the market's holes.
    func reconcile(market: String, trades: [Trade], limit: Int, tracksIds: Bool, maxAttempts: Int) -> Outcome {
        state.withLock { s in
            let (fresh, pageGap) = s.dedup.reconcileBackfill(trades, market: market, limit: limit)
            guard tracksIds, !s.sequences.disabled.contains(market) else {
                return Outcome(fresh: fresh, verdict: .init(), pageGap: pageGap, stillOpen: false)
            }
            for trade in fresh { s.sequences.observe(market: market, mark: TradeMark(trade)) }
            let ids = trades.compactMap { UInt64($0.tradeId) }
            var verdict = s.sequences.judge(market: market, ids: ids, fullPage: trades.count >= limit, maxAttempts: maxAttempts)
            // Holes whose ids REST lists nowhere yet stay for another attempt.
            let stillOpen = s.sequences.hasOpenHoles(market: market)
            if verdict.disabled {
                // Ids are not consecutive here after all: fall back to the page check.
                verdict.abandoned = []
                return Outcome(fresh: fresh, verdict: verdict, pageGap: pageGap, stillOpen: false)
            }
            return Outcome(fresh: fresh, verdict: verdict, pageGap: nil, stillOpen: stillOpen)
        }
    }
}
