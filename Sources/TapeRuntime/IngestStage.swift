import ExchangeSimulator
import Exchanges
import Ingest
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import TapeMetrics

/// One built-in venue simulator as a service (`tape up --offline`): serves its websocket and REST
/// on loopback until graceful shutdown.
public final class SimulatorStage: Service, Sendable {
    /// The venue it speaks ("binance").
    public let exchange: String
    public let websocketURL: String
    public let restURL: String
    /// Its markets, as the simulator names them (BASE_QUOTE).
    public let symbols: [String]
    private let serve: @Sendable () async throws -> Void
    private let generated: @Sendable () -> Int
    private let bursts: @Sendable () -> (started: Int, trades: Int, seconds: Double)
    private let stopped: StageLog

    /// Trades generated so far.
    public var tradesGenerated: Int { generated() }

    /// Binds a simulator of `exchange` (poloniex, binance, coinbase or kraken) on loopback.
    static func build(exchange: String, configuration: SimulatorConfiguration, stopped: StageLog) async throws -> SimulatorStage {
        switch exchange {
        case "binance": return try await SimulatorStage(VenueSimulator<BinanceVenue>.build(configuration), stopped: stopped)
        case "coinbase": return try await SimulatorStage(VenueSimulator<CoinbaseVenue>.build(configuration), stopped: stopped)
        case "kraken": return try await SimulatorStage(VenueSimulator<KrakenVenue>.build(configuration), stopped: stopped)
        case "poloniex": return try await SimulatorStage(VenueSimulator<PoloniexVenue>.build(configuration), stopped: stopped)
        default: throw TapeConfigurationError("The built-in simulator does not speak \(exchange)'s format; it speaks \(Venues.names.joined(separator: ", ")).")
        }
    }

    init<Venue: SimulatedVenue>(_ simulator: VenueSimulator<Venue>, stopped: StageLog) {
        exchange = Venue.exchange.name
        websocketURL = simulator.websocketURL
        restURL = simulator.restURL
        symbols = simulator.symbols
        serve = { try await simulator.run() }
        generated = { simulator.tradesGenerated }
        bursts = { simulator.bursts }
        self.stopped = stopped
    }

    public func run() async throws {
        defer { stopped.append("simulator:\(exchange)") }
        let (generated, bursts) = (self.generated, self.bursts)
        // What load the pipeline really got (`tape bench e2e` reads it): trades in and out of
        // bursts, bursts, and their simulated length.
        try await withMetricsReporter(SimulatorCounters(exchange: exchange)) { c in
            let b = bursts()
            c.burstTrades.record(total: b.trades)
            c.calmTrades.record(total: generated() - b.trades)
            c.bursts.record(total: b.started)
            if b.seconds > c.lastBurstSeconds {
                c.burstSeconds.increment(by: b.seconds - c.lastBurstSeconds)
                c.lastBurstSeconds = b.seconds
            }
        } work: {
            do {
                try await cancelWhenGracefulShutdown { try await self.serve() }
            } catch is CancellationError {}
        }
    }
}

/// One venue's ingestion as a service: builds `IngestService` (retrying, with the reason kept for
/// `/health`, while the exchange cannot be reached), runs it until graceful shutdown, then flushes
/// what is queued. Reports `tape_frames_in_total`, `tape_trades_in_total`,
/// `tape_parse_errors_total` and `tape_reconnects_total` for its exchange.
public final class IngestStage: Service, Sendable {
    public let configuration: IngestConfiguration
    /// Words for the exchange in log lines ("Poloniex", "the built-in simulator").
    let venueDescription: String
    /// Whether to suggest `--offline` when the exchange cannot be reached.
    let suggestOffline: Bool
    private let state = Mutex<(service: IngestService?, startError: String?)>((nil, nil))
    private let stopped: StageLog

    init(configuration: IngestConfiguration, venueDescription: String, suggestOffline: Bool, stopped: StageLog) {
        self.configuration = configuration
        self.venueDescription = venueDescription
        self.suggestOffline = suggestOffline
        self.stopped = stopped
    }

    /// The ingest service once it has started (nil while the exchange cannot be reached).
    public var service: IngestService? { state.withLock { $0.service } }
    /// Why the last attempt to start ingestion failed.
    public var lastStartError: String? { state.withLock { $0.startError } }

    public func run() async throws {
        defer { stopped.append("ingest:\(configuration.exchange)") }
        let exchange = configuration.exchange
        try await withMetricsReporter(IngestCounters(exchange: exchange)) { [weak self] c in
            guard let s = self?.service?.metrics.connection.snapshot else { return }
            c.frames.record(total: s.frames)
            c.trades.record(total: s.trades)
            c.parseErrors.record(total: s.unparseableFrames)
            c.reconnects.record(total: s.reconnects)
            c.bookUpdates.record(total: s.bookEvents)
            c.sequenceBreaks.record(total: s.bookSequenceBreaks)
            c.checksumResyncs.record(total: s.bookChecksumFailures)
            c.checksumFailures.record(total: s.bookChecksumFailures)
            c.crossed.record(total: s.bookCrossed)
            c.otherResyncs.record(total: s.bookOtherResyncs)
            if let metrics = self?.service?.metrics { c.continuity.record(metrics) }
            if s.lastBookEventTime > 0 {
                c.bookAge.record(Double(WallClock.milliseconds() - Int64(s.lastBookEventTime)) / 1000)
            }
        } work: {
            do {
                try await cancelWhenGracefulShutdown { try await self.ingest() }
            } catch is CancellationError {}
        }
    }

    private func ingest() async throws {
        let logger = Logger(label: "tape.ingest")
        var delay = 5.0
        while true {
            try Task.checkCancellation()
            let service: IngestService
            do {
                service = try await IngestService.build(configuration, logger: logger)
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                state.withLock { $0.startError = "\(error)" }
                var message = "Cannot start ingestion from \(venueDescription): \(error)."
                if suggestOffline { message += " If this machine has no internet access, run `tape up --offline` to use the built-in simulator." }
                logger.warning("\(message) Retrying in \(Int(delay)) s.")
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 60)
                continue
            }
            state.withLock { $0.service = service }
            // Runs until cancelled, then flushes what is queued.
            try await service.run()
            return
        }
    }
}

/// `tape_simulator_*{exchange}`.
struct SimulatorCounters: Sendable {
    var burstTrades, calmTrades, bursts: DeltaCounter
    let burstSeconds: FloatingPointCounter
    var lastBurstSeconds = 0.0

    init(exchange: String) {
        burstTrades = DeltaCounter(TapeMetrics.simulatorTrades(exchange: exchange, phase: "burst"))
        calmTrades = DeltaCounter(TapeMetrics.simulatorTrades(exchange: exchange, phase: "calm"))
        bursts = DeltaCounter(TapeMetrics.simulatorBursts(exchange: exchange))
        burstSeconds = TapeMetrics.simulatorBurstSeconds(exchange: exchange)
    }
}

/// The connection counters of one exchange as swift-metrics counters.
struct IngestCounters: Sendable {
    var frames, trades, parseErrors, reconnects: DeltaCounter
    var bookUpdates, sequenceBreaks, checksumResyncs, checksumFailures, crossed, otherResyncs: DeltaCounter
    let bookAge: Gauge
    var continuity: ContinuityCounters

    init(exchange: String) {
        bookUpdates = DeltaCounter(TapeMetrics.bookUpdates(exchange: exchange))
        sequenceBreaks = DeltaCounter(TapeMetrics.bookResyncs(exchange: exchange, reason: BookResyncReason.sequenceBreak.rawValue))
        checksumResyncs = DeltaCounter(TapeMetrics.bookResyncs(exchange: exchange, reason: BookResyncReason.checksum.rawValue))
        checksumFailures = DeltaCounter(TapeMetrics.bookChecksumFailures(exchange: exchange))
        crossed = DeltaCounter(TapeMetrics.bookResyncs(exchange: exchange, reason: BookResyncReason.crossed.rawValue))
        otherResyncs = DeltaCounter(TapeMetrics.bookResyncs(exchange: exchange, reason: "other"))
        bookAge = TapeMetrics.bookAge(exchange: exchange)
        frames = DeltaCounter(TapeMetrics.framesIn(exchange: exchange))
        trades = DeltaCounter(TapeMetrics.tradesIn(exchange: exchange))
        parseErrors = DeltaCounter(TapeMetrics.parseErrors(exchange: exchange))
        reconnects = DeltaCounter(TapeMetrics.reconnects(exchange: exchange))
        continuity = ContinuityCounters(exchange: exchange)
    }
}
