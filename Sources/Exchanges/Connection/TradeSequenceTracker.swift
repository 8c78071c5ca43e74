import MarketData

/// Finds trades a stream skipped, for venues that number each market's trades 1, 2, 3 … with no
/// holes (`ExchangeAdapter.tradeIdsAreConsecutive`): a trade whose id is more than one above the
/// highest seen opens a *hole* of the ids in between; trades arriving later (a REST repair, an
/// out-of-order frame) fill it. A value with no I/O and no clock; `ExchangeConnection` drives it.
///
/// A hole's identity is fixed when it opens — the ids it lacked and the times of the trades on
/// either side — so the `tape.gaps` records written for it (found, then repaired or given up)
/// share their `from`/`to`.
public struct TradeSequenceTracker: Sendable {
    /// Ids missing in one market.
    public struct Hole: Sendable, Hashable {
        public var market: String
        /// The ids missing when the hole opened.
        public var firstMissing: UInt64
        public var lastMissing: UInt64
        /// Time of the trade before the hole (ms).
        public var fromTime: Int64
        /// Time of the trade after the hole (ms).
        public var toTime: Int64
        /// Ids still missing, ascending, disjoint.
        public internal(set) var remaining: [ClosedRange<UInt64>]
        /// True once a `tape.gaps` record says it is open.
        public internal(set) var reported = false
        /// REST repairs tried.
        public internal(set) var attempts = 0

        /// Ids missing when the hole opened.
        public var missingCount: UInt64 { lastMissing - firstMissing + 1 }
        public var remainingCount: UInt64 { remaining.reduce(0) { $0 + ($1.upperBound - $1.lowerBound + 1) } }
        public var isFilled: Bool { remaining.isEmpty }

        mutating func fill(_ id: UInt64) -> Bool {
            guard let i = remaining.firstIndex(where: { $0.contains(id) }) else { return false }
            let range = remaining[i]
            var replacement: [ClosedRange<UInt64>] = []
            if range.lowerBound < id { replacement.append(range.lowerBound...(id - 1)) }
            if id < range.upperBound { replacement.append((id + 1)...range.upperBound) }
            remaining.replaceSubrange(i...i, with: replacement)
            return true
        }
    }

    /// What a REST page did to a market's holes.
    public struct Verdict: Sendable, Hashable {
        /// Holes now filled (they were reported open, or not).
        public var repaired: [Hole] = []
        /// Holes REST cannot fill (their ids are older than REST reaches back, or REST does not
        /// list them): given up, with the reason.
        public var abandoned: [(hole: Hole, reason: String)] = []
        /// True when REST's own page has holes: the venue does not number this market's trades
        /// consecutively, and tracking was turned off for it.
        public var disabled = false

        public static func == (a: Verdict, b: Verdict) -> Bool {
            a.repaired == b.repaired && a.disabled == b.disabled
                && a.abandoned.map(\.hole) == b.abandoned.map(\.hole) && a.abandoned.map(\.reason) == b.abandoned.map(\.reason)
        }
        public func hash(into hasher: inout Hasher) {
            hasher.combine(repaired)
            hasher.combine(disabled)
        }
    }

    struct Market: Sendable {
        var highest: UInt64
        var highestTime: Int64
        var holes: [Hole] = []
    }

    private var markets: [String: Market] = [:]
    private var disabledMarkets: Set<String> = []
    /// Most holes kept per market; past it the oldest is given up (returned by `observe`). Default 1,000.
    public let maxHolesPerMarket: Int

    public init(maxHolesPerMarket: Int = 1_000) { self.maxHolesPerMarket = max(1, maxHolesPerMarket) }

    /// Starts a market at a trade already published (the newest found in Kafka on restart).
    public mutating func seed(market: String, mark: TradeMark) {
        guard let id = mark.sequence, !disabledMarkets.contains(market) else { return }
        if let m = markets[market], m.highest >= id { return }
        markets[market, default: Market(highest: id, highestTime: mark.time)].highest = id
        markets[market]?.highestTime = mark.time
    }

    /// Takes a trade seen for the first time. Returns a hole given up because the market holds
    /// too many, if any.
    @discardableResult
    public mutating func observe(market: String, mark: TradeMark) -> Hole? {
        guard let id = mark.sequence, !disabledMarkets.contains(market) else { return nil }
        guard var m = markets[market] else {
            markets[market] = Market(highest: id, highestTime: mark.time)
            return nil
        }
        var dropped: Hole?
        if id > m.highest {
            if id > m.highest &+ 1 {
                m.holes.append(
                    Hole(
                        market: market, firstMissing: m.highest + 1, lastMissing: id - 1, fromTime: m.highestTime,
                        toTime: mark.time, remaining: [(m.highest + 1)...(id - 1)]))
                if m.holes.count > maxHolesPerMarket { dropped = m.holes.removeFirst() }
            }
            m.highest = id
            m.highestTime = mark.time
        } else if id < m.highest {
            for i in m.holes.indices where m.holes[i].firstMissing <= id && id <= m.holes[i].lastMissing {
                _ = m.holes[i].fill(id)
                break
            }
        }
        markets[market] = m
        return dropped
    }

    /// Holes of `market` (all markets when nil), oldest first.
    public func holes(market: String? = nil) -> [Hole] {
        if let market { return markets[market]?.holes ?? [] }
        return markets.keys.sorted().flatMap { markets[$0]!.holes }
    }

    /// Holes opened but never reported that are still open; they are marked reported. Holes filled
    /// before they were reported (trades that merely arrived out of order) are forgotten.
    public mutating func takeUnreported(market: String) -> [Hole] {
        guard var m = markets[market] else { return [] }
        m.holes.removeAll { !$0.reported && $0.isFilled }
        var out: [Hole] = []
        for i in m.holes.indices where !m.holes[i].reported {
            m.holes[i].reported = true
            out.append(m.holes[i])
        }
        markets[market] = m
        return out
    }

    /// True when `market` has an open hole.
    public func hasOpenHoles(market: String) -> Bool { markets[market]?.holes.contains { !$0.isFilled } ?? false }

    /// Judges `market`'s holes after a REST page (`ids`: the numeric ids it listed, any order;
    /// `fullPage`: it returned as many as asked, so older trades exist beyond it) whose trades were
    /// already `observe`d. Filled holes are repaired; holes with an id REST should have listed but
    /// did not (older than its oldest on a full page, or within its range) are given up; holes
    /// whose ids are all newer than REST's newest wait for another attempt, until `maxAttempts`.
    public mutating func judge(market: String, ids: [UInt64], fullPage: Bool, maxAttempts: Int) -> Verdict {
        var verdict = Verdict()
        guard var m = markets[market] else { return verdict }
        if let oldest = ids.min(), let newest = ids.max(), newest - oldest != UInt64(ids.count - 1) || Set(ids).count != ids.count {
            // REST's own page skips ids: they are not consecutive here. Stop judging this market.
            markets[market] = nil
            disabledMarkets.insert(market)
            verdict.disabled = true
            return verdict
        }
        let newest = ids.max()
        var kept: [Hole] = []
        for var hole in m.holes {
            hole.attempts += 1
            if hole.isFilled {
                if hole.reported { verdict.repaired.append(hole) }
                continue
            }
            let lowestMissing = hole.remaining.first!.lowerBound
            let missing = hole.remainingCount
            if let newest, lowestMissing <= newest {
                let oldest = ids.min()!
                let reason =
                    lowestMissing < oldest && fullPage
                    ? "the stream skipped \(missing) trade ids (\(lowestMissing)…) and REST reaches back only to id \(oldest)"
                    : "the stream skipped \(missing) trade ids (\(lowestMissing)…) and REST does not list them"
                verdict.abandoned.append((hole, reason))
            } else if hole.attempts >= maxAttempts {
                verdict.abandoned.append(
                    (hole, "the stream skipped \(missing) trade ids (\(lowestMissing)…) and REST did not list them after \(hole.attempts) attempts"))
            } else {
                kept.append(hole)
            }
        }
        m.holes = kept
        markets[market] = m
        return verdict
    }

    /// Markets whose ids turned out not to be consecutive.
    public var disabled: Set<String> { disabledMarkets }
}

extension TradeSequenceTracker.Hole {
    /// The `tape.gaps` value of this hole.
    public func gap(exchange: Exchange, symbol: Symbol, repaired: Bool, reason: String? = nil, detected: Int64) -> Gap {
        Gap(
            exchange: exchange, symbol: symbol, channel: .trades, from: fromTime, to: toTime,
            reason: reason ?? "the stream skipped trade ids \(firstMissing)…\(lastMissing)", repaired: repaired,
            missing: Int64(clamping: missingCount), detected: detected)
    }
}
