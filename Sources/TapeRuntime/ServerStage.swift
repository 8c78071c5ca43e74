import Exchanges
import Foundation
import Ingest
import Logging
import MarketData
import Processing
import ServiceLifecycle
import Synchronization
import TapeCommon
import TapeServer

/// The HTTP server (dashboard, REST, `/ws`, `/metrics`, `/health`) as a service. On graceful
/// shutdown it stops accepting and closes its connections; a client that keeps a connection open
/// (a dashboard's `/ws`) holds the stop up for at most `closeDeadline`.
public final class ServerStage: Service, Sendable {
    let application: any Service
    let closeDeadline: Duration
    private let boundPort = Mutex<(port: Int?, stopped: Bool, waiting: [CheckedContinuation<Int?, Never>])>((nil, false, []))
    private let stopped: StageLog

    /// Builds the stage around the application `build` returns, given the callback it must call
    /// with the bound port.
    init(stopped: StageLog, closeDeadline: Duration = .seconds(3), application build: (@escaping @Sendable (Int) -> Void) -> any Service) {
        self.closeDeadline = closeDeadline
        self.stopped = stopped
        let box = PortBox()
        application = build { port in box.stage?.bound(port) }
        box.stage = self
    }

    /// The port the server listens on, once it does (nil if the stage stopped first).
    public func port() async -> Int? {
        await withCheckedContinuation { continuation in
            let ready: Int?? = boundPort.withLock { state in
                if state.port != nil || state.stopped { return .some(state.port) }
                state.waiting.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Records the bound port, or (nil) that the stage stopped, and answers whoever waits.
    private func bound(_ port: Int?) {
        let (waiting, answer) = boundPort.withLock { state -> ([CheckedContinuation<Int?, Never>], Int?) in
            if state.port == nil { state.port = port }
            if port == nil { state.stopped = true }
            defer { state.waiting = [] }
            return (state.waiting, state.port)
        }
        waiting.forEach { $0.resume(returning: answer) }
    }

    public func run() async throws {
        defer {
            stopped.append("server")
            bound(nil)
        }
        let application = self.application
        let deadline = closeDeadline
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await application.run()
                return true
            }
            group.addTask {
                // After graceful shutdown began, wait `deadline` for the connections to close.
                try? await gracefulShutdown()
                try await Task.sleep(for: deadline)
                return false
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }
}

/// Lets the application's on-bound callback reach the stage built around it.
private final class PortBox: @unchecked Sendable {  // written once, before the server can run
    weak var stage: ServerStage?
}

/// `tape.gaps` read once: every gap the server's reader yields is also applied to the processor's
/// ledger.
struct SharedGapFeed<Base: GapRecordFeed>: GapRecordFeed {
    typealias Element = Gap
    let base: Base
    let processor: GapFeed

    struct AsyncIterator: AsyncIteratorProtocol {
        var inner: Base.AsyncIterator
        let processor: GapFeed

        mutating func next() async throws -> Gap? {
            let gap = try await inner.next()
            if let gap { processor.apply(gap) }
            return gap
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inner: base.makeAsyncIterator(), processor: processor) }
}

/// `/health`'s view of ingestion: each venue's connection flags and counters, the producers'.
struct IngestProbe: PipelineProbe {
    let ingest: [IngestStage]
    let bootstrap: String

    func sample() -> PipelineSample {
        var exchanges: [ExchangeSample] = []
        var enqueued = 0
        var answered = 0
        for stage in ingest {
            guard let service = stage.service else {
                let configured = stage.configuration
                let endpoint = configured.websocket ?? Venues.adapter(named: configured.exchange)?.endpoints.websocket ?? configured.exchange
                exchanges.append(
                    ExchangeSample(exchange: configured.exchange, endpoint: endpoint, started: false, connected: false, trades: 0, lastError: stage.lastStartError))
                continue
            }
            let c = service.metrics.connection.snapshot
            let m = service.metrics
            enqueued += m.produced.load(ordering: .relaxed) + m.deadLetters.load(ordering: .relaxed)
            answered += m.delivered.load(ordering: .relaxed) + m.deliveryFailures.load(ordering: .relaxed)
            exchanges.append(
                ExchangeSample(
                    exchange: service.adapter.exchange.name, endpoint: service.websocket.description, connected: c.connected, trades: c.trades,
                    reconnects: c.reconnects, lastError: service.metrics.connection.lastFailure))
        }
        return PipelineSample(exchanges: exchanges, producer: ProducerSample(bootstrap: bootstrap, enqueued: enqueued, acknowledged: answered))
    }
}

/// `/api/stats`: each ingest stage's own counters plus what the server sees on the topics.
final class IngestStats: StatsSource {
    let ingest: [IngestStage]
    let feed: FeedStats
    /// Whether the venues are the built-in simulators.
    let simulated: Bool
    /// Per stage, (time, frames, trades) samples of the last few seconds, taken every second by
    /// `sample()`: rates are measured over them, so the first `/api/stats` call already has one.
    private let samples: Mutex<[[(time: ContinuousClock.Instant, frames: Int, trades: Int)]]>
    static let rateWindow: Duration = .seconds(5)

    init(ingest: [IngestStage], feed: FeedStats, simulated: Bool) {
        self.ingest = ingest
        self.feed = feed
        self.simulated = simulated
        samples = Mutex(Array(repeating: [], count: ingest.count))
    }

    /// Records the ingest counters now (called every second by the status reporter).
    func sample() {
        let now = ContinuousClock.now
        let snapshots = ingest.map { $0.service?.metrics.connection.snapshot }
        samples.withLock { samples in
            for (i, snapshot) in snapshots.enumerated() {
                guard let s = snapshot else { continue }
                samples[i].append((now, s.frames, s.trades))
                samples[i].removeAll { now - $0.time > Self.rateWindow + .seconds(1) }
            }
        }
    }

    func stats() async -> PipelineStats {
        var base = await feed.stats()
        // The server's view (the latest trade time on tape.trades) by exchange.
        var seen: [String: ExchangeStats] = [:]
        for e in base.exchanges { seen[e.exchange] = e }
        let now = ContinuousClock.now
        base.exchanges = ingest.enumerated().map { index, stage in
            let exchange = stage.configuration.exchange
            guard let service = stage.service else {
                return ExchangeStats(exchange: exchange, connected: false, lastTradeTime: seen[exchange]?.lastTradeTime, simulated: simulated)
            }
            let s = service.metrics.connection.snapshot
            // Over the oldest sample still in the window (at least half a second back).
            let (fps, tps) = samples.withLock { samples -> (Double?, Double) in
                guard let p = samples[index].first(where: { now - $0.time <= Self.rateWindow && now - $0.time >= .milliseconds(500) }) else {
                    return (nil, 0)
                }
                let dt = (now - p.time).seconds
                return (Double(s.frames - p.frames) / dt, Double(s.trades - p.trades) / dt)
            }
            return ExchangeStats(
                exchange: exchange, connected: s.connected, framesPerSecond: fps, tradesPerSecond: tps, tradesTotal: Int64(s.trades),
                parseErrors: Int64(s.unparseableFrames), reconnects: Int64(s.reconnects), lagMilliseconds: Double(s.lastLagMicros) / 1000,
                lastTradeTime: seen[exchange]?.lastTradeTime, simulated: simulated, markets: service.symbols.count)
        }
        return base
    }
}
