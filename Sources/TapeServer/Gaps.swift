import CoreMetrics
import MarketData
import Synchronization
import TapeMetrics

/// Gap records in log order: `tape.gaps` in production (`KafkaGapFeed`), `PushFeed<Gap>` in tests.
/// The server iterates it exactly once.
public protocol GapRecordFeed: AsyncSequence, Sendable where Element == Gap {}

extension PushFeed: GapRecordFeed where Element == Gap {}

/// The server's `GapLedger`, fed from `tape.gaps`: what `/api/gaps`, the dashboard and the gap
/// metrics show.
public final class GapBook: Sendable {
    private struct State {
        var ledger: GapLedger
        /// The ledger changed since the open-gap gauges were last set.
        var dirty = false
        /// (exchange, channel) pairs ever seen: their gauges are set to 0 when nothing is open.
        var labels: Set<[String]> = []
    }

    private let state: Mutex<State>
    private let counters = Mutex<[String: Counter]>([:])
    private let gauges = Mutex<[[String]: Gauge]>([:])

    public init(capacity: Int = 100_000) {
        state = Mutex(State(ledger: GapLedger(capacity: capacity)))
    }

    /// What one record changed.
    public struct Change: Sendable, Hashable {
        /// The gap was not known before.
        public var found: Bool
        /// The gap turned repaired with this record.
        public var repaired: Bool
    }

    /// Records a gap's latest state, and counts it (`tape_gaps_total`, `tape_gaps_repaired_total`).
    @discardableResult
    public func apply(_ gap: Gap) -> Change {
        let previous = state.withLock { s -> Gap? in
            s.dirty = true
            s.labels.insert([gap.exchange.name, gap.channel.rawValue])
            return s.ledger.apply(gap)
        }
        let change = Change(found: previous == nil, repaired: gap.repaired && previous?.repaired != true)
        if change.found { counter(TapeMetrics.gaps, gap).increment() }
        if change.repaired { counter(TapeMetrics.gapsRepaired, gap).increment() }
        return change
    }

    /// Newest `to` first; `exchange`/`symbol` nil = any; `openOnly`: unrepaired ones only.
    public func list(exchange: Exchange? = nil, symbol: Symbol? = nil, openOnly: Bool = false, limit: Int = .max) -> [Gap] {
        Array(state.withLock { $0.ledger.list(exchange: exchange, symbol: symbol, unrepairedOnly: openOnly) }.prefix(max(0, limit)))
    }

    public var count: Int { state.withLock { $0.ledger.count } }

    /// Sets `tape_gaps_open{exchange,channel}` when the ledger changed (called every second).
    func exportOpenGauges() {
        let snapshot = state.withLock { s -> (open: [Gap], labels: Set<[String]>)? in
            guard s.dirty else { return nil }
            s.dirty = false
            return (s.ledger.list(unrepairedOnly: true), s.labels)
        }
        guard let snapshot else { return }
        var open: [[String]: Int] = [:]
        for gap in snapshot.open { open[[gap.exchange.name, gap.channel.rawValue], default: 0] += 1 }
        gauges.withLock { gauges in
            for label in snapshot.labels {
                let gauge = gauges[label] ?? TapeMetrics.gapsOpen(exchange: label[0], channel: label[1])
                gauges[label] = gauge
                gauge.record(open[label] ?? 0)
            }
        }
    }

    private func counter(_ name: String, _ gap: Gap) -> Counter {
        let key = name + "\u{0}" + gap.exchange.name + "\u{0}" + gap.channel.rawValue
        return counters.withLock { all in
            if let c = all[key] { return c }
            let c =
                name == TapeMetrics.gaps
                ? TapeMetrics.gapsFound(exchange: gap.exchange.name, channel: gap.channel.rawValue)
                : TapeMetrics.gapsRepaired(exchange: gap.exchange.name, channel: gap.channel.rawValue)
            all[key] = c
            return c
        }
    }
}

extension Gap {
    /// The market this gap belongs to.
    public var market: MarketID { MarketID(exchange: exchange, symbol: symbol) }
}
