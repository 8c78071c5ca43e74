import Foundation
import MarketData
import Synchronization

/// Candle history kept in memory: the latest revision of each window, per market and interval,
/// at most `capacityPerSeries` windows each (the oldest go first).
///
/// Tests and embedders fill it directly, or hand it to `buildTapeServer`, which then records every
/// update of its candle feed into it. `tape serve` keeps a `TopicCandleHistory` instead (on disk).
public final class InMemoryCandleHistory: CandleHistory, Sendable {
    private struct SeriesKey: Hashable {
        var market: MarketID
        var interval: CandleInterval
    }

    private let series = Mutex<[SeriesKey: [Candle]]>([:])
    /// Windows kept per market and interval. Default 1000 (1m: ~17 h, 5m: ~3.5 days, 1h: ~6 weeks).
    public let capacityPerSeries: Int

    public init(capacityPerSeries: Int = 1000) {
        self.capacityPerSeries = max(1, capacityPerSeries)
    }

    /// Stores a candle update: it replaces the stored window when its revision is not older.
    public func record(_ candle: Candle) {
        let key = SeriesKey(market: candle.market, interval: candle.interval)
        let capacity = capacityPerSeries
        series.withLock { all in
            // In place: copying the list out and back would copy every stored window per update.
            Self.record(candle, in: &all[key, default: []], capacity: capacity)
        }
    }

    private static func record(_ candle: Candle, in list: inout [Candle], capacity: Int) {
        if let last = list.last, last.start < candle.start {
            list.append(candle)
        } else {
            let i = firstIndex(in: list, startingAtOrAfter: candle.start)
            if i < list.count, list[i].start == candle.start {
                if candle.revision >= list[i].revision || candle.isFinal { list[i] = candle }
            } else {
                list.insert(candle, at: i)
            }
        }
        if list.count > capacity { list.removeFirst(list.count - capacity) }
    }

    public func candles(market: MarketID, interval: CandleInterval, from: Int64?, to: Int64?, limit: Int) async throws
        -> [Candle]
    {
        let key = SeriesKey(market: market, interval: interval)
        return series.withLock { all in
            guard let list = all[key] else { return [] }
            let lower = from.map { Self.firstIndex(in: list, startingAtOrAfter: $0) } ?? 0
            let upper = to.map { Self.firstIndex(in: list, startingAtOrAfter: $0) } ?? list.count
            guard lower < upper else { return [] }
            let slice = list[lower..<upper]
            return Array(slice.suffix(max(0, limit)))
        }
    }

    public func markets() async throws -> [MarketID] {
        let keys = series.withLock { Set($0.keys.map(\.market)) }
        return keys.sorted()
    }

    /// Index of the first candle whose start is ≥ `start` (binary search; the list is sorted).
    private static func firstIndex(in list: [Candle], startingAtOrAfter start: Int64) -> Int {
        var low = 0
        var high = list.count
        while low < high {
            let mid = (low + high) / 2
            if list[mid].start < start { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

/// The most recent trades of each market, in bounded rings, for `GET /api/trades`. A trade whose
/// id is already in its market's ring is not added again (two ingesters of the same market both
/// publish every trade: docs/ingest.md).
public final class RecentTrades: Sendable {
    private struct Ring {
        var items: [Trade] = []
        var ids = TradeIDSet()
        var head = 0  // index of the oldest once full

        mutating func append(_ trade: Trade, capacity: Int) -> Bool {
            guard ids.insert(trade.tradeId) else { return false }
            if items.count < capacity {
                items.append(trade)
            } else {
                ids.remove(items[head].tradeId)
                items[head] = trade
                head = (head + 1) % capacity
            }
            return true
        }

        /// Newest first, at most `limit`.
        func newest(_ limit: Int) -> [Trade] {
            let n = min(limit, items.count)
            var out: [Trade] = []
            out.reserveCapacity(n)
            var i = (head + items.count - 1) % max(1, items.count)
            for _ in 0..<n {
                out.append(items[i])
                i = (i + items.count - 1) % items.count
            }
            return out
        }
    }

    private let rings = Mutex<[MarketID: Ring]>([:])
    /// Trades kept per market. Default 1000.
    public let capacityPerMarket: Int

    public init(capacityPerMarket: Int = 1000) {
        self.capacityPerMarket = max(1, capacityPerMarket)
    }

    /// Adds `trade`; false when its market's ring already holds a trade with its id.
    @discardableResult
    public func append(_ trade: Trade) -> Bool {
        let capacity = capacityPerMarket
        return rings.withLock { $0[trade.market, default: Ring()].append(trade, capacity: capacity) }
    }

    /// Newest first: one market's trades, or (market nil) the newest across all markets by trade time.
    public func newest(market: MarketID?, limit: Int) -> [Trade] {
        rings.withLock { all in
            if let market { return all[market]?.newest(limit) ?? [] }
            var merged = all.values.flatMap { $0.newest(limit) }
            merged.sort { ($0.time, $0.receivedAt) > ($1.time, $1.receivedAt) }
            return Array(merged.prefix(limit))
        }
    }

    /// Markets that have had trades.
    public var markets: [MarketID] { rings.withLock { Array($0.keys) }.sorted() }

    /// The latest trade of a market.
    public func last(_ market: MarketID) -> Trade? { rings.withLock { $0[market]?.newest(1).first } }
}

/// A feed that code pushes into: tests, or `tape up` handing events over in-process.
///
/// ```swift
/// let (trades, input) = PushFeed<Trade>.make()
/// input.yield(trade)
/// ```
public struct PushFeed<Element: Sendable>: AsyncSequence, Sendable {
    public typealias Failure = Never
    private let stream: AsyncStream<Element>

    /// A feed and its input. The buffer keeps the newest `buffer` events when the server falls behind.
    public static func make(buffer: Int = 100_000) -> (PushFeed<Element>, AsyncStream<Element>.Continuation) {
        let (stream, continuation) = AsyncStream.makeStream(of: Element.self, bufferingPolicy: .bufferingNewest(buffer))
        return (PushFeed(stream: stream), continuation)
    }

    public func makeAsyncIterator() -> AsyncStream<Element>.AsyncIterator { stream.makeAsyncIterator() }
}

extension PushFeed: TradeFeed where Element == Trade {}
extension PushFeed: CandleFeed where Element == Candle {}

/// Stats computed from the trades the server itself sees: trades/s over the last 5 s, totals,
/// and lag (exchange trade time → seen here). Frames, parse errors and reconnects are unknown
/// to it (nil); `tape up` should merge the ingest stage's own numbers.
public final class FeedStats: StatsSource, Sendable {
    private struct PerExchange {
        var total: Int64 = 0
        var buckets: [(second: Int64, count: Int64)] = []
        var lastTradeTime: Int64?
        var lagMilliseconds: Double?
    }

    private let state = Mutex<[String: PerExchange]>([:])
    private let lag = Mutex<[ConsumerLag]>([])
    private let nowMilliseconds: @Sendable () -> Int64
    /// Seconds the rate is averaged over. Default 5.
    public let window: Int64

    /// - Parameter nowMilliseconds: the clock (ms since the epoch); tests inject one.
    public init(window: Int64 = 5, nowMilliseconds: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.window = max(1, window)
        self.nowMilliseconds = nowMilliseconds
    }

    /// Counts one trade seen now.
    public func record(_ trade: Trade) {
        let now = nowMilliseconds()
        let second = now / 1000
        let window = self.window
        state.withLock { all in
            var e = all[trade.exchange.name, default: PerExchange()]
            e.total += 1
            if let last = e.buckets.last, last.second == second {
                e.buckets[e.buckets.count - 1].count += 1
            } else {
                e.buckets.append((second, 1))
                e.buckets.removeAll { $0.second < second - window - 1 }
            }
            if trade.time >= (e.lastTradeTime ?? .min) {
                e.lastTradeTime = trade.time
                e.lagMilliseconds = Double(now - trade.time)
            }
            all[trade.exchange.name] = e
        }
    }

    /// Replaces the consumer-lag figures (the Kafka feeds report theirs here).
    public func setConsumerLag(_ value: ConsumerLag) {
        lag.withLock { all in
            all.removeAll { $0.group == value.group && $0.topic == value.topic }
            all.append(value)
            all.sort { ($0.topic, $0.group) < ($1.topic, $1.group) }
        }
    }

    public func stats() async -> PipelineStats {
        let now = nowMilliseconds()
        let second = now / 1000
        let window = self.window
        let exchanges = state.withLock { all in
            all.map { name, e -> ExchangeStats in
                // whole seconds [second - window, second): the current second is still filling
                let count = e.buckets.filter { $0.second >= second - window && $0.second < second }.reduce(0) { $0 + $1.count }
                return ExchangeStats(
                    exchange: name, tradesPerSecond: Double(count) / Double(window), tradesTotal: e.total,
                    lagMilliseconds: e.lagMilliseconds, lastTradeTime: e.lastTradeTime)
            }.sorted { $0.exchange < $1.exchange }
        }
        return PipelineStats(exchanges: exchanges, consumerLag: lag.withLock { $0 })
    }
}

/// Fixed stats, for tests and demos.
public struct StaticStats: StatsSource {
    public var value: PipelineStats
    public init(_ value: PipelineStats) { self.value = value }
    public func stats() async -> PipelineStats { value }
}

/// Several stats sources as one: per exchange, each field comes from the first source that
/// knows it (non-nil); consumer lag is the union (first wins per group and topic). `tape up`
/// can pass `MergedStats([ingestStats, state.feedStats])` so frames/s and reconnects come from
/// the ingest stage and the rest from what the server sees.
public struct MergedStats: StatsSource {
    public let sources: [any StatsSource]

    public init(_ sources: [any StatsSource]) { self.sources = sources }

    public func stats() async -> PipelineStats {
        var byExchange: [String: ExchangeStats] = [:]
        var order: [String] = []
        var lag: [ConsumerLag] = []
        for source in sources {
            let snapshot = await source.stats()
            for e in snapshot.exchanges {
                guard var merged = byExchange[e.exchange] else {
                    byExchange[e.exchange] = e
                    order.append(e.exchange)
                    continue
                }
                merged.connected = merged.connected ?? e.connected
                merged.framesPerSecond = merged.framesPerSecond ?? e.framesPerSecond
                merged.parseErrors = merged.parseErrors ?? e.parseErrors
                merged.reconnects = merged.reconnects ?? e.reconnects
                merged.lagMilliseconds = merged.lagMilliseconds ?? e.lagMilliseconds
                merged.lastTradeTime = merged.lastTradeTime ?? e.lastTradeTime
                byExchange[e.exchange] = merged
            }
            for l in snapshot.consumerLag where !lag.contains(where: { $0.group == l.group && $0.topic == l.topic }) {
                lag.append(l)
            }
        }
        return PipelineStats(exchanges: order.sorted().compactMap { byExchange[$0] }, consumerLag: lag)
    }
}
