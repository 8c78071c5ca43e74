import MarketData
import Synchronization

/// What the server has of each market, to refuse names it has nothing of (a typo answered with `[]`
/// looks like a quiet market): a trade since start, a book, or candles in the history.
///
/// A server that has nothing at all yet (just started) refuses nothing: every name may still come.
struct MarketCatalog: Sendable {
    let history: any CandleHistory
    let state: TapeServerState

    /// Every market the server has something of, sorted.
    func all() async -> [MarketID] {
        let fromHistory = (try? await history.markets()) ?? []
        return Set(fromHistory).union(state.recentTrades.markets).union(state.books.markets).sorted()
    }

    /// nil when `market` is known (or nothing is known yet); otherwise the sentence to answer with.
    func refusal(_ market: MarketID) async -> String? {
        if state.recentTrades.last(market) != nil { return nil }
        let all = await all()
        if all.isEmpty || all.contains(market) { return nil }
        return "unknown market \(market): this server has no trade, candle or book of it; markets: \(Self.list(all.map(\.description)))"
    }

    /// nil when live candles of `interval` were seen (or none of any interval yet); otherwise the
    /// sentence. Asked only when the history has none of it either.
    func refusal(_ interval: CandleInterval) -> String? {
        let seen = state.intervalsSeen.withLock { $0 }
        if seen.isEmpty || seen.contains(interval) { return nil }
        return "interval \(interval) is not computed here; intervals: \(seen.sorted { $0.milliseconds < $1.milliseconds }.map(\.description).joined(separator: ", "))"
    }

    /// The refusal of a live subscription, if any.
    func refusal(_ topic: LiveTopic) async -> String? {
        switch topic {
        case .trades(let m), .gaps(let m), .book(let m): return await refusal(m)
        case .candles(let m, let i):
            if let r = await refusal(m) { return r }
            return refusal(i)
        }
    }

    /// At most 12 names, then how many more.
    static func list(_ names: [String]) -> String {
        names.count <= 12 ? names.joined(separator: ", ") : names.prefix(12).joined(separator: ", ") + " and \(names.count - 12) more (/api/markets)"
    }
}
