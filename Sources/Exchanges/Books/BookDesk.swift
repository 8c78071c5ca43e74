import MarketData
import Synchronization

/// The books of one exchange connection: one synchronizer per subscribed market, kept across
/// reconnects (so the gap of an outage spans it), and the markets waiting for a REST snapshot.
/// Shared by the websocket reader, the snapshot fetcher and the periodic-snapshot timer.
final class BookDesk<Sync: BookSynchronizer>: Sendable {
    struct State: Sendable {
        var syncs: [String: Sync] = [:]
        /// Markets whose REST snapshot is due, in request order.
        var pendingSnapshots: [String] = []
        var lastSnapshotRequest: Duration?
        /// Periodic-snapshot bookkeeping per market: receive time (ms) of the last full record.
        var lastFull: [String: Int64] = [:]
    }

    let exchange: Exchange
    let markets: [String: ListedMarket]
    private let state: Mutex<State>

    init(exchange: Exchange, markets: [ListedMarket]) {
        self.exchange = exchange
        var byNative: [String: ListedMarket] = [:]
        var syncs: [String: Sync] = [:]
        for market in markets where byNative[market.nativeSymbol] == nil {
            byNative[market.nativeSymbol] = market
            syncs[market.nativeSymbol] = Sync(exchange: exchange, market: market)
        }
        self.markets = byNative
        state = Mutex(State(syncs: syncs))
    }

    /// Feeds a frame to its market's synchronizer; nil for a market not subscribed (a venue's
    /// stray or hostile message is not allowed to create books).
    func receive(_ frame: BookFrame) -> BookSyncStep? {
        state.withLock { s in
            // Mutated in place (`syncs[key]?.receive`): a copy taken out of the dictionary would
            // share the book's storage, and its first change would copy every level of the book.
            guard let step = s.syncs[frame.nativeSymbol]?.receive(frame) else { return nil }
            note(step, market: frame.nativeSymbol, in: &s)
            return step
        }
    }

    func snapshotArrived(_ frame: BookFrame, market: String) -> BookSyncStep? {
        state.withLock { s in
            var copy = frame
            copy.nativeSymbol = market
            guard let step = s.syncs[market]?.receiveSnapshot(copy) else { return nil }
            note(step, market: market, in: &s)
            return step
        }
    }

    func snapshotFailed(market: String, reason: String, receivedAt: Int64) -> BookSyncStep? {
        state.withLock { s in
            guard let step = s.syncs[market]?.snapshotFailed(reason: reason, receivedAt: receivedAt) else { return nil }
            note(step, market: market, in: &s)
            return step
        }
    }

    /// Every book is unknown again (a new connection); returns each market's step. Snapshot
    /// requests still queued stay in their place (a market asking again is not queued twice), so
    /// connections that drop before every market got its snapshot do not starve the last ones.
    func resetAll(receivedAt: Int64) -> [(market: String, step: BookSyncStep)] {
        state.withLock { s in
            var steps: [(String, BookSyncStep)] = []
            for market in s.syncs.keys.sorted() {
                guard let step = s.syncs[market]?.reset(receivedAt: receivedAt) else { continue }
                note(step, market: market, in: &s)
                steps.append((market, step))
            }
            return steps
        }
    }

    /// Remembers what a step needs later: a REST snapshot request, a new full record.
    private func note(_ step: BookSyncStep, market: String, in s: inout State) {
        if step.action == .fetchSnapshot, !s.pendingSnapshots.contains(market) { s.pendingSnapshots.append(market) }
        for event in step.events where event.kind == .snapshot { s.lastFull[market] = event.receivedAt / 1000 }
    }

    /// The next market whose REST snapshot to request, never sooner than `spacing` after the last.
    func nextSnapshotRequest(now: Duration, spacing: Duration) -> String? {
        state.withLock { s in
            guard !s.pendingSnapshots.isEmpty else { return nil }
            if let last = s.lastSnapshotRequest, now - last < spacing { return nil }
            s.lastSnapshotRequest = now
            return s.pendingSnapshots.removeFirst()
        }
    }

    /// Full snapshot records of every synchronized book whose last one is `interval` ms old.
    func periodicSnapshots(nowMs: Int64, receivedAt: Int64, interval: Int64) -> [BookEvent] {
        guard interval > 0 else { return [] }
        return state.withLock { s in
            var events: [BookEvent] = []
            for market in s.syncs.keys.sorted() {
                guard let sync = s.syncs[market], let book = sync.book, let listed = markets[market] else { continue }
                let last = s.lastFull[market] ?? nowMs
                if s.lastFull[market] == nil { s.lastFull[market] = nowMs }
                guard nowMs - last >= interval else { continue }
                s.lastFull[market] = nowMs
                events.append(
                    BookEvent(
                        snapshotOf: book, exchange: exchange, symbol: listed.symbol, nativeSymbol: listed.nativeSymbol,
                        sequence: sync.sequence, time: nowMs, receivedAt: receivedAt))
            }
            return events
        }
    }

    /// The book Tape holds for `market` now (nil while unsynchronized).
    func book(_ market: String) -> OrderBook? { state.withLock { $0.syncs[market]?.book } }

    /// Markets currently synchronized / subscribed.
    var synchronizedCount: Int { state.withLock { s in s.syncs.values.filter { $0.book != nil }.count } }
}
