import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TapeMetrics

/// When `/health` calls the pipeline degraded. Every condition must last its threshold first, so
/// a reconnect that succeeds within a second or two does not flap the status.
public struct HealthPolicy: Sendable, Hashable {
    /// No trade for this long (while the exchange is connected, or on `tape.trades` as the server
    /// reads it) is degraded; so is no candle update for this long while trades keep arriving.
    /// `--stale-after`. Default 60 s.
    public var staleAfterMilliseconds: Int64 = 60_000
    /// An exchange websocket down, or ingestion not started, for this long is degraded. Default 5 s.
    public var disconnectedAfterMilliseconds: Int64 = 5_000
    /// Kafka acknowledging none of the ingester's records, or answering none of the server's
    /// readers, for this long is degraded. Default 10 s.
    public var kafkaAfterMilliseconds: Int64 = 10_000

    public init(staleAfterMilliseconds: Int64 = 60_000) {
        self.staleAfterMilliseconds = max(1, staleAfterMilliseconds)
    }
}

/// One exchange connection as the ingest stage reports it (`tape up`; a standalone `tape serve`
/// cannot see the exchange).
public struct ExchangeSample: Sendable, Hashable {
    public var exchange: String
    /// The websocket URL.
    public var endpoint: String
    /// False while ingestion has not started (market list not read, Kafka not reached yet).
    public var started: Bool
    public var connected: Bool
    /// Trades received so far (a counter: health watches it advance).
    public var trades: Int
    public var reconnects: Int
    /// Why ingestion has not started, or the last reason the connection failed or closed.
    public var lastError: String?

    public init(
        exchange: String, endpoint: String, started: Bool = true, connected: Bool, trades: Int, reconnects: Int = 0,
        lastError: String? = nil
    ) {
        self.exchange = exchange
        self.endpoint = endpoint
        self.started = started
        self.connected = connected
        self.trades = trades
        self.reconnects = reconnects
        self.lastError = lastError
    }
}

/// The ingester's Kafka producer as counters: records handed to it and records Kafka answered.
public struct ProducerSample: Sendable, Hashable {
    public var bootstrap: String
    /// Records queued so far (trades, dead letters, gaps).
    public var enqueued: Int
    /// Delivery reports so far (acknowledged or refused).
    public var acknowledged: Int

    public init(bootstrap: String, enqueued: Int, acknowledged: Int) {
        self.bootstrap = bootstrap
        self.enqueued = enqueued
        self.acknowledged = acknowledged
    }
}

/// What the stages beside the server report (`tape up`).
public struct PipelineSample: Sendable, Hashable {
    public var exchanges: [ExchangeSample]
    public var producer: ProducerSample?

    public init(exchanges: [ExchangeSample] = [], producer: ProducerSample? = nil) {
        self.exchanges = exchanges
        self.producer = producer
    }
}

/// The stages running beside the server, sampled about once a second (cheap: counters only).
public protocol PipelineProbe: Sendable {
    func sample() -> PipelineSample
}

/// One of the server's own Kafka readers: when Kafka last answered it.
public struct FeedSample: Sendable, Hashable {
    public var topic: String
    public var bootstrap: String
    /// Last time (ms since the epoch) Kafka answered this reader: a fetched batch or metadata.
    public var lastContact: Int64?
    /// The last error of a metadata probe; nil once one succeeds again.
    public var lastError: String?

    public init(topic: String, bootstrap: String, lastContact: Int64?, lastError: String?) {
        self.topic = topic
        self.bootstrap = bootstrap
        self.lastContact = lastContact
        self.lastError = lastError
    }
}

/// A feed that can say when Kafka last answered it and check again (the Kafka feeds).
public protocol FeedContactReporting: Sendable {
    var contact: FeedSample { get }
    /// Asks Kafka for metadata (bounded by a short timeout) and records the outcome.
    func probe() async
}

/// The four things `/health` judges.
public enum HealthCheck: String, Sendable, Hashable, CaseIterable {
    case exchange, kafka, trades, processor
}

/// The verdict: `ok`, or `degraded` with one sentence per reason.
public struct HealthReport: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// Nothing has been wrong for its threshold.
        case ok
        /// This check cannot be judged here (a standalone `tape serve` does not see the exchange).
        case unknown
        case failing
    }

    public struct CheckResult: Sendable, Hashable {
        public var status: Status
        /// Sentences: the reasons when failing, what was seen otherwise.
        public var detail: String
        public var reasons: [String]
    }

    public var checks: [HealthCheck: CheckResult]
    /// Seconds since the server last read a trade (since it started, when none yet).
    public var lastTradeAgeSeconds: Double
    /// Seconds since the server last read a candle update (since it started, when none yet).
    public var lastCandleAgeSeconds: Double

    public var degraded: Bool { checks.values.contains { $0.status == .failing } }
    /// Every failing check's reasons, in check order.
    public var reasons: [String] { HealthCheck.allCases.flatMap { checks[$0]?.reasons ?? [] } }
    public var status: String { degraded ? "degraded" : "ok" }
}

/// What health knows, fed with samples and judged at a given time: a plain value, so tests drive
/// it with their own clock. Times are ms since the epoch.
///
/// It remembers since when each state holds (connected/disconnected, the last time a counter
/// advanced), because samples only carry counters and flags.
public struct HealthTracker: Sendable {
    public let policy: HealthPolicy
    public let startedAt: Int64

    struct ExchangeTrack: Sendable {
        var sample: ExchangeSample
        /// Since when `started`/`connected` hold their current values.
        var since: Int64
        /// When the trade counter last advanced.
        var lastTradeAt: Int64?
    }

    struct ProducerTrack: Sendable {
        var sample: ProducerSample
        /// The first sample at which records were queued with no acknowledgement since.
        var unacknowledgedSince: Int64?
    }

    var exchanges: [String: ExchangeTrack] = [:]
    var exchangeOrder: [String] = []
    var producer: ProducerTrack?
    var feeds: [FeedSample] = []
    var feedErrors: [String: String] = [:]
    var trades: (count: Int64, lastAt: Int64?) = (0, nil)
    /// When trades started arriving after none for `staleAfter` (or the first): candles are
    /// expected from then on.
    var tradesFlowingSince: Int64?
    var candles: (count: Int64, lastAt: Int64?) = (0, nil)

    public init(policy: HealthPolicy = HealthPolicy(), startedAt: Int64) {
        self.policy = policy
        self.startedAt = startedAt
    }

    /// Takes what the stages report now.
    public mutating func record(pipeline: PipelineSample?, at now: Int64) {
        for sample in pipeline?.exchanges ?? [] {
            guard var track = exchanges[sample.exchange] else {
                // Until a first sample, nothing is known: a connection first seen down has been
                // down since the server started, one first seen up counts as up from now.
                let since = sample.started && sample.connected ? now : startedAt
                exchanges[sample.exchange] = ExchangeTrack(sample: sample, since: since, lastTradeAt: sample.trades > 0 ? now : nil)
                exchangeOrder.append(sample.exchange)
                continue
            }
            if track.sample.started != sample.started || track.sample.connected != sample.connected { track.since = now }
            if sample.trades != track.sample.trades { track.lastTradeAt = now }
            track.sample = sample
            exchanges[sample.exchange] = track
        }
        if let sample = pipeline?.producer {
            if var track = producer {
                if sample.acknowledged != track.sample.acknowledged {
                    track.unacknowledgedSince = nil
                } else if sample.enqueued != track.sample.enqueued, track.unacknowledgedSince == nil {
                    track.unacknowledgedSince = now
                }
                track.sample = sample
                producer = track
            } else {
                producer = ProducerTrack(sample: sample, unacknowledgedSince: nil)
            }
        }
    }

    /// Takes what the server itself sees: events read so far, its readers' contact with Kafka,
    /// and feeds that stopped.
    public mutating func record(
        tradesSeen: Int64, candlesSeen: Int64, feeds: [FeedSample] = [], feedErrors: [String: String] = [:], at now: Int64
    ) {
        if tradesSeen != trades.count {
            if trades.lastAt.map({ now - $0 >= policy.staleAfterMilliseconds }) ?? true { tradesFlowingSince = now }
            trades = (tradesSeen, now)
        }
        if candlesSeen != candles.count { candles = (candlesSeen, now) }
        self.feeds = feeds
        self.feedErrors = feedErrors
    }

    /// The verdict at `now`.
    public func evaluate(at now: Int64) -> HealthReport {
        let tracks = exchangeOrder.compactMap { exchanges[$0] }
        let stale = policy.staleAfterMilliseconds
        let staleText = "--stale-after \(Self.seconds(stale))"
        var checks: [HealthCheck: HealthReport.CheckResult] = [:]

        // Exchange connections.
        if tracks.isEmpty {
            checks[.exchange] = .init(
                status: .unknown,
                detail: "This server does not see the exchange connections (tape ingest runs apart); the trades check watches what reaches tape.trades.",
                reasons: [])
        } else {
            var reasons: [String] = []
            var fine: [String] = []
            for t in tracks {
                let s = t.sample
                let down = now - t.since
                if !s.started {
                    if down >= policy.disconnectedAfterMilliseconds {
                        reasons.append(
                            "\(s.exchange) ingestion from \(s.endpoint) has not started for \(Self.seconds(down))\(s.lastError.map { ": \(Self.sentence($0))" } ?? " (still reading the market list and reaching Kafka)")."
                        )
                    } else {
                        fine.append("\(s.exchange) ingestion is starting.")
                    }
                } else if !s.connected {
                    if down >= policy.disconnectedAfterMilliseconds {
                        let why = s.lastError.map { ": \(Self.sentence($0))" } ?? " (\(s.reconnects) reconnects so far)"
                        reasons.append("\(s.exchange) websocket \(s.endpoint) disconnected for \(Self.seconds(down))\(why).")
                    } else {
                        fine.append("\(s.exchange) websocket \(s.endpoint) is reconnecting.")
                    }
                } else {
                    fine.append("\(s.exchange) websocket \(s.endpoint) connected for \(Self.seconds(down)).")
                }
            }
            checks[.exchange] = .init(
                status: reasons.isEmpty ? .ok : .failing, detail: (reasons.isEmpty ? fine : reasons).joined(separator: " "), reasons: reasons)
        }

        // Trades: from the exchange while connected, and on tape.trades as the server reads it.
        let tradeAge = now - (trades.lastAt ?? startedAt)
        do {
            var reasons: [String] = []
            for t in tracks where t.sample.started && t.sample.connected {
                let quiet = now - max(t.since, t.lastTradeAt ?? t.since)
                if quiet >= stale {
                    reasons.append("No trade from \(t.sample.exchange) for \(Self.seconds(quiet)) while connected to \(t.sample.endpoint) (\(staleText)).")
                }
            }
            if tradeAge >= stale {
                let never = trades.lastAt == nil ? " since the server started" : ""
                if tracks.isEmpty {
                    reasons.append("No trade on tape.trades for \(Self.seconds(tradeAge))\(never) (\(staleText)).")
                } else if let busy = tracks.first(where: { $0.lastTradeAt.map { now - $0 < stale } ?? false }) {
                    reasons.append(
                        "\(busy.sample.exchange) trades arrive from the exchange but none reached the server on tape.trades for \(Self.seconds(tradeAge))\(never)."
                    )
                } else if reasons.isEmpty {
                    let down = tracks.filter { !($0.sample.started && $0.sample.connected) }.map(\.sample.exchange)
                    reasons.append(
                        "No trade for \(Self.seconds(tradeAge))\(never) (\(staleText))\(down.isEmpty ? "" : ": \(down.joined(separator: ", ")) not connected")."
                    )
                }
            }
            let seen = trades.lastAt == nil ? "No trade read yet." : "Last trade read \(Self.seconds(tradeAge)) ago."
            checks[.trades] = .init(status: reasons.isEmpty ? .ok : .failing, detail: reasons.isEmpty ? seen : reasons.joined(separator: " "), reasons: reasons)
        }

        // Kafka: the ingester's producer, the server's readers, feeds that stopped.
        let candleAge = now - (candles.lastAt ?? startedAt)
        do {
            var reasons: [String] = []
            if let p = producer, let since = p.unacknowledgedSince, now - since >= policy.kafkaAfterMilliseconds {
                let waiting = max(0, p.sample.enqueued - p.sample.acknowledged)
                reasons.append(
                    "Kafka at \(p.sample.bootstrap) has acknowledged none of the ingester's records for \(Self.seconds(now - since)) (\(waiting) waiting in memory)."
                )
            }
            // Readers of one cluster fail together: one sentence per cluster.
            let silentFeeds = feeds.filter { f in f.lastError != nil && now - (f.lastContact ?? startedAt) >= policy.kafkaAfterMilliseconds }
            for bootstrap in silentFeeds.map(\.bootstrap).reduce(into: [String](), { if !$0.contains($1) { $0.append($1) } }) {
                let group = silentFeeds.filter { $0.bootstrap == bootstrap }
                let silent = group.map { now - ($0.lastContact ?? startedAt) }.min() ?? 0
                let readers = group.count == 1 ? "reader of \(group[0].topic) has" : "readers of \(group.map(\.topic).joined(separator: ", ")) have"
                reasons.append(
                    "The server's \(readers) had no answer from Kafka at \(bootstrap) for \(Self.seconds(silent)): \(Self.sentence(group.last?.lastError ?? ""))."
                )
            }
            for (name, error) in feedErrors.sorted(by: { $0.key < $1.key }) {
                reasons.append("The server's \(name) feed stopped: \(Self.sentence(error)).")
            }
            let status: HealthReport.Status = !reasons.isEmpty ? .failing : (producer == nil && feeds.isEmpty ? .unknown : .ok)
            var answered: [String] = []
            if producer != nil { answered.append("the ingester's producer") }
            if !feeds.isEmpty { answered.append("the server's readers of " + feeds.map(\.topic).joined(separator: ", ")) }
            let fine = answered.isEmpty ? "The server reads no Kafka topic itself." : "Kafka answers " + answered.joined(separator: " and ") + "."
            checks[.kafka] = .init(status: status, detail: reasons.isEmpty ? fine : reasons.joined(separator: " "), reasons: reasons)
        }

        // Processing: candles keep coming while trades do.
        do {
            var reasons: [String] = []
            let expectedSince = max(candles.lastAt ?? startedAt, tradesFlowingSince ?? now)
            if let lastTrade = trades.lastAt, now - lastTrade < stale, now - expectedSince >= stale {
                let never = candles.lastAt == nil ? " since the server started" : ""
                reasons.append(
                    "No candle update on tape.candles for \(Self.seconds(candleAge))\(never) while trades keep arriving (the last \(Self.seconds(max(0, now - lastTrade))) ago): candle processing is stopped or stuck."
                )
            }
            let seen = candles.lastAt == nil ? "No candle update read yet." : "Last candle update read \(Self.seconds(candleAge)) ago."
            checks[.processor] = .init(
                status: reasons.isEmpty ? .ok : .failing, detail: reasons.isEmpty ? seen : reasons.joined(separator: " "), reasons: reasons)
        }

        return HealthReport(checks: checks, lastTradeAgeSeconds: Double(tradeAge) / 1000, lastCandleAgeSeconds: Double(candleAge) / 1000)
    }

    /// "42 s", "1.5 s".
    static func seconds(_ ms: Int64) -> String {
        if ms >= 10_000 || ms % 1000 == 0 { return "\(ms / 1000) s" }
        return String(format: "%.1f s", Double(ms) / 1000)
    }

    /// An error text as a clause: its first sentence (periods inside parentheses kept), without a
    /// trailing period, at most 300 characters.
    public static func sentence(_ text: String) -> String {
        var depth = 0
        var end = text.endIndex
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == "(" { depth += 1 } else if c == ")" { depth = max(0, depth - 1) }
            let next = text.index(after: i)
            if c == ".", depth == 0, next < text.endIndex, text[next] == " " {
                end = i
                break
            }
            i = next
        }
        var clause = text[..<end].trimmingCharacters(in: .whitespacesAndNewlines)
        while clause.hasSuffix(".") { clause.removeLast() }
        return clause.count > 300 ? String(clause.prefix(300)) + "…" : clause
    }
}

/// Health of one server: samples what it can see (its own counters and readers, the stages beside
/// it through a `PipelineProbe`) and judges it. `/health` refreshes it on each request; the
/// `HealthSampler` service every second (transitions, Prometheus gauges).
public final class HealthMonitor: Sendable {
    public let policy: HealthPolicy
    private let tracker: Mutex<HealthTracker>
    private let pipeline = Mutex<(any PipelineProbe)?>(nil)
    private let feeds = Mutex<[any FeedContactReporting]>([])
    let now: @Sendable () -> Int64

    private let degradedGauge: Gauge
    private let checkGauges: [HealthCheck: Gauge]
    private let tradeAgeGauge: Gauge

    public init(policy: HealthPolicy = HealthPolicy(), now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.policy = policy
        self.now = now
        tracker = Mutex(HealthTracker(policy: policy, startedAt: now()))
        degradedGauge = TapeMetrics.healthDegradedGauge()
        checkGauges = Dictionary(uniqueKeysWithValues: HealthCheck.allCases.map { ($0, TapeMetrics.healthCheckGauge(check: $0.rawValue)) })
        tradeAgeGauge = TapeMetrics.lastTradeAgeGauge()
    }

    /// The stages beside the server (`tape up`); nil for a standalone server.
    public func setPipelineProbe(_ probe: (any PipelineProbe)?) { pipeline.withLock { $0 = probe } }

    func addFeed(_ feed: any FeedContactReporting) { feeds.withLock { $0.append(feed) } }

    var contactFeeds: [any FeedContactReporting] { feeds.withLock { $0 } }

    /// Samples everything (counters only, no I/O) and returns the verdict now.
    func refresh(state: TapeServerState) -> HealthReport {
        let sample = pipeline.withLock { $0 }?.sample()
        let feedSamples = contactFeeds.map(\.contact)
        let errors = state.feedErrors.withLock { $0 }
        let (trades, candles) = state.eventsSeen
        let at = now()
        return tracker.withLock { t in
            t.record(pipeline: sample, at: at)
            t.record(tradesSeen: trades, candlesSeen: candles, feeds: feedSamples, feedErrors: errors, at: at)
            return t.evaluate(at: at)
        }
    }

    /// Exports a verdict as `tape_health_degraded`, `tape_health_check{check}` and `tape_last_trade_age_seconds`.
    func export(_ report: HealthReport) {
        degradedGauge.record(report.degraded ? 1 : 0)
        for check in HealthCheck.allCases {
            checkGauges[check]?.record(report.checks[check]?.status == .failing ? 1 : 0)
        }
        tradeAgeGauge.record(report.lastTradeAgeSeconds)
    }
}

/// Samples health every second (so transitions are timed even when nobody asks) and probes the
/// server's Kafka readers every few seconds, apart from the feeds.
struct HealthSampler: Service {
    let state: TapeServerState
    let logger: Logger
    var probeEvery: Duration = .seconds(3)

    func run() async throws {
        let monitor = state.health
        let probing = ProbeFlag()
        let (state, logger, probeEvery) = (self.state, self.logger, self.probeEvery)
        // Ends (returns, never throws) when the server shuts down.
        await cancelWhenGracefulShutdown {
            var lastDegraded = false
            var lastProbe = ContinuousClock.now - probeEvery
            while !Task.isCancelled {
                if ContinuousClock.now - lastProbe >= probeEvery, !probing.value.exchange(true, ordering: .acquiringAndReleasing) {
                    lastProbe = .now
                    let feeds = monitor.contactFeeds
                    // Apart: a probe waits up to its timeout for a broker that has gone away.
                    Task.detached {
                        await withTaskGroup(of: Void.self) { group in
                            for feed in feeds { group.addTask { await feed.probe() } }
                        }
                        probing.value.store(false, ordering: .releasing)
                    }
                }
                let report = monitor.refresh(state: state)
                monitor.export(report)
                state.gaps.exportOpenGauges()
                if report.degraded != lastDegraded {
                    lastDegraded = report.degraded
                    if report.degraded {
                        logger.warning("Health: degraded: \(report.reasons.joined(separator: " "))")
                    } else {
                        logger.notice("Health: ok again")
                    }
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Whether a round of reader probes is still running.
private final class ProbeFlag: Sendable {
    let value = Atomic<Bool>(false)
}
