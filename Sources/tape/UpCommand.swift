import ArgumentParser
import Dispatch
import Exchanges
import ExchangeSimulator
import Foundation
import Ingest
import KafkaClient
import Logging
import MarketData
import Metrics
import Processing
import ServiceLifecycle
import Synchronization
import TapeBroker
import TapeMetrics
import TapeServer
import TapeCommon

/// `tape up`: the embedded broker, ingestion (live Poloniex or the built-in simulator), candle
/// processing and the HTTP server, in one process, stopped in order on Ctrl-C.
struct UpCommand: AsyncParsableCommand {
    /// HTTP connections `tape up` serves: an eighth of the open-files limit, at most the server's default cap.
    static func httpConnectionBudget() -> Int {
        let openFiles = DescriptorLimit.current
        return openFiles == .max ? HTTPLimits().maxConnections : min(HTTPLimits().maxConnections, max(16, openFiles / 8))
    }

    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the whole pipeline: embedded Kafka broker, Poloniex ingestion, candles, dashboard and API.",
        discussion: """
            Prints the dashboard URL and the Kafka bootstrap address. Ctrl-C stops ingestion first \
            (pending trades are flushed), then processing (offsets committed), then the server and the \
            broker (files synced). --offline uses the built-in Poloniex simulator instead of the live \
            exchange. With --brokers, no embedded broker starts and everything runs against that cluster.
            """
    )

    @Flag(help: "Use the built-in, deterministic Poloniex simulator instead of the live exchange.") var offline = false
    @Option(name: .customLong("data-dir"), help: "Where the broker's log and the candle history live.") var dataDir = "./tape-data"
    @Option(help: "Address of the embedded Kafka broker, HOST:PORT.") var listen = "127.0.0.1:9092"
    @Option(help: ArgumentHelp("Address of the dashboard, API and metrics.", valueName: "HOST:PORT")) var http = "127.0.0.1:8080"
    @Option(help: "Native symbols to ingest (comma-separated), or 'all'.") var symbols = "BTC_USDT,ETH_USDT,SOL_USDT,XRP_USDT,DOGE_USDT,LTC_USDT"
    @Option(help: "Candle intervals.") var intervals = "1m,5m,1h"
    @Option(help: "Simulated trades per second over all markets (with --offline).") var rate: Double = 50
    @Option(help: "Bearer token for the API and WebSocket (default: $TAPE_TOKEN, else none).") var token: String?
    @Option(help: "Broker fsync policy: always, interval or never.") var fsync: BrokerCommand.FsyncPolicyOption = .interval
    @Option(help: "Kafka bootstrap servers: use this cluster instead of the embedded broker.") var brokers: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("Raw librdkafka property key=value (repeatable).", valueName: "key=value"))
    var properties: [String] = []
    @Flag(help: "Debug logs.") var verbose = false
    @Option(name: .customLong("stale-after"), help: ArgumentHelp("/health is degraded after this many seconds without a trade while the exchange is connected (and without a candle while trades arrive).", valueName: "SECONDS"))
    var staleAfter: Double = 60
    @Option(help: ArgumentHelp("Poloniex-format websocket URL instead of Poloniex's (e.g. the one `tape simulate` prints).", valueName: "WS_URL"))
    var endpoint: String?
    @Option(name: .customLong("rest-endpoint"), help: ArgumentHelp("Poloniex-format REST base URL instead of Poloniex's (with --endpoint).", valueName: "URL"))
    var restEndpoint: String?
    @Option(name: .customLong("simulator-trades-log"), help: ArgumentHelp("With --offline: append every simulated trade (Trade JSON) to FILE (for tests).", visibility: .hidden))
    var simulatorTradesLog: String?
    @Option(name: .customLong("simulator-tick-ms"), help: ArgumentHelp("With --offline: how often the simulator sends what it generated, in ms (default 1).", visibility: .hidden))
    var simulatorTickMilliseconds: Int?
    @Option(name: .customLong("simulator-burst-probability"), help: ArgumentHelp("With --offline: chance per simulated order that a burst (20x rate) starts; 0 for a steady rate (for benchmarks).", visibility: .hidden))
    var simulatorBurstProbability: Double?
    @Option(name: .customLong("candle-emit-ms"), help: ArgumentHelp("Candle updates per key at most once per this many ms (for `tape bench e2e`).", visibility: .hidden))
    var candleEmitMilliseconds: Int64 = 1_000

    func validate() throws {
        guard (try? BrokerCommand.parseListen(listen)) != nil else { throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:9092; got \(listen).") }
        do { _ = try TapeServerConfiguration.parseListenAddress(http) } catch { throw ValidationError("--http: \(error.message)") }
        _ = try parseIntervals(intervals)
        guard rate > 0 else { throw ValidationError("--rate must be positive.") }
        guard candleEmitMilliseconds > 0 else { throw ValidationError("--candle-emit-ms must be positive.") }
        guard staleAfter.isFinite, staleAfter >= 1, staleAfter <= 86_400 else { throw ValidationError("--stale-after must be from 1 to 86400 seconds; got \(staleAfter).") }
        if offline, endpoint != nil || restEndpoint != nil {
            throw ValidationError("--endpoint and --rest-endpoint point at another exchange; --offline uses the built-in simulator. Give one or the other.")
        }
    }

    func run() async throws {
        tuneMallocForOneProcess()
        // Signal handling first, before librdkafka, NIO and SQLite start threads of their own: a
        // signal must not land on a thread that never asked for it.
        let shutdown = ShutdownSignals()
        defer { shutdown.cancel() }
        let signals = shutdown.received
        // Metrics before any stage creates a metric handle (handles made earlier stay no-ops).
        MetricsExporter.bootstrap()
        let interactive = isatty(STDERR_FILENO) == 1
        let level: Logger.Level = verbose ? .debug : .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "tape.up")
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)

        // 1. Kafka: the embedded broker, or the cluster given with --brokers.
        var kafka = KafkaConfiguration(bootstrapServers: brokers ?? listen, properties: try KafkaConfiguration.parseProperties(properties))
        var embedded: (server: BoundBrokerServer, close: @Sendable () async -> Void)?
        // Take the open-files limit's hard value (before storage sizes its file cache), and share
        // it: the HTTP server gets an eighth (at most its default cap), the broker's connections
        // what the descriptor budget leaves after that (docs/limits.md).
        DescriptorLimit.raiseSoftLimit()
        let httpConnections = Self.httpConnectionBudget()
        if brokers == nil {
            let stores = try BrokerCommand.buildStores(dataDir: dataDir + "/kafka", fsync: fsync, logger: Logger(label: "tape.broker"))
            var config = BrokerConfiguration()
            (config.host, config.port) = try BrokerCommand.parseListen(listen)
            config.numPartitions = 3
            config.maxConnections = max(8, DescriptorLimit.connectionBudget(configured: config.maxConnections) - httpConnections)
            let broker = Broker(configuration: config, topics: stores.topics, committedOffsets: stores.offsets, logger: Logger(label: "tape.broker"))
            let bound: BoundBrokerServer
            do {
                bound = try await BrokerServer(broker: broker, logger: Logger(label: "tape.broker")).bind()
            } catch let error as BrokerStartError {
                await stores.close()
                printError("Error: \(error.message)")
                throw ExitCode.failure
            }
            kafka.bootstrapServers = "\(config.host):\(bound.port)"
            embedded = (bound, stores.close)
        }
        let bootstrap = kafka.bootstrapServers
        let brokerTask = Task { [embedded] in try await embedded?.server.run() }

        do {
            try await runPipeline(kafka: kafka, bootstrap: bootstrap, traffic: embedded?.server.traffic, limits: embedded?.server.limits, interactive: interactive, signals: signals, logger: logger)
        } catch {
            brokerTask.cancel()
            _ = try? await brokerTask.value
            await embedded?.close()
            throw error
        }
        brokerTask.cancel()
        _ = try? await brokerTask.value
        await embedded?.close()
        printError("tape up: stopped; data is in \(dataDir).")
    }

    private func runPipeline(
        kafka: KafkaConfiguration, bootstrap: String, traffic: BrokerTraffic?, limits: ConnectionLimitCounters?, interactive: Bool,
        signals: AsyncStream<Int32>, logger: Logger
    ) async throws {
        // Topics (the broker would auto-create them; explicit creation gives them 3 partitions).
        await Self.ensureTopics(kafka: kafka, logger: logger)

        // Live data: producers wait at most 1 ms to batch (librdkafka's default is 5 ms). 5 ms was
        // most of a trade's way from the exchange to /ws; 0 (send each record at once) gave the
        // best median but, at 10k trades/s, every record woke librdkafka's, the broker's and two
        // consumers' threads: `tape bench e2e --steady` at 10k/s, linger 0 → 1 ms: trade p50/p99
        // 1.4/6–8 → 2.0/3.7–4.0 ms, candle 2.7/8.3–11.9 → 4.2/7.1–7.4 ms (at 1k/s the p50s rise
        // by ~1 ms, the p99s stay). `-X linger.ms=N` overrides it.
        var kafka = kafka
        if kafka.properties["linger.ms"] == nil && kafka.properties["queue.buffering.max.ms"] == nil {
            kafka.properties["linger.ms"] = "1"
        }
        // Small requests leave at once rather than wait for the previous one's TCP ack (Nagle):
        // `tape bench latency` at 10k records/s, p99 1.3–1.5 → 1.0–1.3 ms. `-X` overrides it.
        if kafka.properties["socket.nagle.disable"] == nil {
            kafka.properties["socket.nagle.disable"] = "true"
        }

        // 2. Exchange: the simulator (offline) or Poloniex itself.
        var simulatorBuilt: PoloniexSimulator?
        var ingestConfig = IngestConfiguration()
        ingestConfig.kafka = kafka
        ingestConfig.symbols = symbols.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        ingestConfig.websocket = endpoint
        ingestConfig.rest = restEndpoint
        if offline {
            var sim = PoloniexSimulatorConfiguration()
            sim.rate = rate
            sim.tradesLog = simulatorTradesLog
            if let simulatorBurstProbability { sim.burstProbability = simulatorBurstProbability }
            if let simulatorTickMilliseconds { sim.tick = .milliseconds(simulatorTickMilliseconds) }
            sim.instruments = PoloniexSimulatorConfiguration.instruments(symbols: ingestConfig.symbols.filter { $0 != "all" })
            if sim.instruments?.isEmpty == true { sim.instruments = nil }
            let built = try await PoloniexSimulator.build(sim)
            simulatorBuilt = built
            ingestConfig.websocket = built.websocketURL
            ingestConfig.rest = built.restURL
            // Each run of the simulator is a new market whose ids start above the last run's: the
            // jump across a restart is no gap (nothing traded while it was down).
            ingestConfig.resumeGapDetection = false
            if ingestConfig.symbols == ["all"] || ingestConfig.symbols.isEmpty { ingestConfig.symbols = built.symbols }
        }

        // 3. Processing, with the SQLite history the server reads.
        var processing = CandleProcessorConfiguration(kafka: kafka)
        processing.aggregation = CandleAggregatorConfiguration(intervals: try parseIntervals(intervals), graceMilliseconds: 5_000, emitIntervalMilliseconds: candleEmitMilliseconds, allowedLatenessMilliseconds: 3_600_000)
        processing.progressSeconds = nil
        // Static membership, as `tape process` has it: a `tape up --brokers` killed and restarted takes
        // its partitions back at once instead of waiting out its old session (the session and join
        // timing are picked for the cluster).
        processing.sessionTimeoutMilliseconds = nil
        let instance = try? ProcessorInstance.claim(statePath: dataDir + "/candles.sqlite", group: processing.group)
        processing.groupInstanceID = instance?.id
        defer { withExtendedLifetime(instance) {} }
        let store = try CandleStore(path: dataDir + "/candles.sqlite")
        // tape.gaps is read once, by the server's reader, which also feeds the processor's ledger
        // (one librdkafka client fewer: each costs threads and wake-ups on 2 cores).
        let processorGaps = GapFeed(topic: "tape.gaps")
        let processor = CandleProcessor(
            configuration: processing, store: store, logger: Logger(label: "tape.process"), gaps: processorGaps)

        // 4. The server: dashboard, REST, /ws, /metrics.
        let (host, port) = try TapeServerConfiguration.parseListenAddress(http)
        var serverConfig = TapeServerConfiguration(host: host, port: port)
        serverConfig.limits.maxConnections = Self.httpConnectionBudget()
        serverConfig.token = token ?? ProcessInfo.processInfo.environment["TAPE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        serverConfig.health = HealthPolicy(staleAfterMilliseconds: Int64(staleAfter * 1000))
        let state = TapeServerState(configuration: serverConfig)
        let feedStats = state.feedStats
        let trades = KafkaTradeFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.trades", start: .end, logger: Logger(label: "tape.serve.trades")) { feedStats.setConsumerLag($0) })
        let candles = KafkaCandleFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.candles", start: .end, logger: Logger(label: "tape.serve.candles")) { feedStats.setConsumerLag($0) })
        // tape.gaps from its beginning: the ledger needs every gap's latest state.
        let gaps = SharedGapFeed(
            base: KafkaGapFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.gaps", start: .beginning, logger: Logger(label: "tape.serve.gaps"), quietWhileMissing: true)),
            processor: processorGaps)
        let ingestHolder = IngestHolder()
        let stats = UpStats(ingest: ingestHolder, feed: feedStats, exchange: offline ? "poloniex (simulated)" : "poloniex")
        let probe = UpProbe(
            ingest: ingestHolder, bootstrap: bootstrap,
            endpoint: ingestConfig.websocket ?? Venues.adapter(named: "poloniex")?.endpoints.websocket ?? "Poloniex")
        let settings = serverConfig
        let offline = self.offline
        let exchangeLine = offline ? "built-in Poloniex simulator (--offline)" : endpoint.map { "Poloniex format at \($0)" } ?? "Poloniex (live)"
        let app = buildTapeServer(
            configuration: serverConfig, trades: trades, candles: candles, history: store, stats: stats, gaps: gaps, pipeline: probe, state: state,
            logger: Logger(label: "tape.serve")
        ) { boundPort in
            var banner = "\nTape is up.\n  Dashboard:       \(settings.dashboardURL(port: boundPort))\n  Kafka bootstrap: \(bootstrap)   (e.g. kcat -b \(bootstrap) -C -t tape.trades)\n"
            banner += "  Exchange:        \(exchangeLine)\n  Health:          \(settings.dashboardURL(port: boundPort))health\n  Stop with Ctrl-C.\n\n"
            FileHandle.standardError.write(Data(banner.utf8))
        }

        // Run; stop in order on SIGINT/SIGTERM.
        let simulator = simulatorBuilt
        let ingestSettings = ingestConfig
        let ingestTask = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let simulator { group.addTask { try await simulator.run() } }
                group.addTask { try await Self.runIngest(ingestSettings, holder: ingestHolder, offline: offline, logger: logger) }
                try await group.next()
                group.cancelAll()
            }
        }
        let processTask = Task { try await processor.run() }
        // In a service group so that stopping is a graceful shutdown (open connections are
        // closed), not a cancellation that Hummingbird logs as an error.
        let serverGroup = ServiceGroup(services: [app], logger: Logger(label: "tape.serve"))
        let serverTask = Task { try await serverGroup.run() }
        let trimTask = releaseFreedMemoryPeriodically()
        defer { trimTask.cancel() }
        let statusTask = Task {
            await Self.status(ingest: ingestHolder, stats: stats, server: state, processor: processor, traffic: traffic, limits: limits, interactive: interactive, logger: logger)
        }

        logger.debug("tape up: running; waiting for SIGINT/SIGTERM")
        // Wait for a signal, or for a stage to end on its own (the first event wins). The watchers
        // are plain tasks: a task group would wait for all of them before returning.
        let (events, eventSink) = AsyncStream<String?>.makeStream()
        let watchers = [
            Task { for await _ in signals { eventSink.yield(nil); return } },
            Task { do { try await processTask.value; eventSink.yield("processing stopped") } catch { eventSink.yield("processing failed: \(error)") } },
            Task { do { try await serverTask.value; eventSink.yield("the server stopped") } catch { eventSink.yield("the server failed: \(error)") } },
        ]
        var iterator = events.makeAsyncIterator()
        let reason = await iterator.next() ?? nil
        watchers.forEach { $0.cancel() }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        if let reason { logger.error("tape up: \(reason); shutting down") } else { logger.notice("tape up: shutting down (ingest, processing, server, broker)") }
        statusTask.cancel()
        ingestTask.cancel()
        _ = try? await ingestTask.value
        processTask.cancel()
        _ = try? await processTask.value
        await serverGroup.triggerGracefulShutdown()
        // A client that keeps its connection open (a dashboard's /ws) does not hold the exit up.
        let serverDeadline = Task {
            try await Task.sleep(for: .seconds(3))
            serverTask.cancel()
        }
        _ = try? await serverTask.value
        serverDeadline.cancel()
        if let reason { throw ValidationError(reason) }
    }

    /// Builds and runs ingestion; while the exchange cannot be reached, says so and retries.
    static func runIngest(_ configuration: IngestConfiguration, holder: IngestHolder, offline: Bool, logger: Logger) async throws {
        var delay = 5.0
        while true {
            try Task.checkCancellation()
            let service: IngestService
            do {
                service = try await IngestService.build(configuration, logger: Logger(label: "tape.ingest"))
            } catch is CancellationError {
                return
            } catch {
                holder.setStartError("\(error)")
                let what = offline ? "the built-in simulator" : "Poloniex"
                var message = "Cannot start ingestion from \(what): \(error)."
                if !offline { message += " If this machine has no internet access, run `tape up --offline` to use the built-in simulator." }
                logger.warning("\(message) Retrying in \(Int(delay)) s.")
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 60)
                continue
            }
            holder.set(service)
            try await service.run()
            return
        }
    }

    static func ensureTopics(kafka: KafkaConfiguration, logger: Logger) async {
        do {
            let admin = try KafkaAdmin(configuration: kafka, timeout: .seconds(10), logger: logger)
            let existing = Set(try await admin.listTopics().map(\.name))
            for (name, partitions) in [("tape.trades", Int32(3)), ("tape.deadletter", Int32(1)), ("tape.gaps", Int32(1))] where !existing.contains(name) {
                try await admin.createTopic(name, partitions: partitions)
            }
        } catch {
            logger.warning("Could not create Tape's topics (\(error)); they will be auto-created if the cluster allows it.")
        }
    }

    /// A compact live line on a terminal; a log line every 30 s otherwise.
    static func status(
        ingest: IngestHolder, stats: UpStats, server: TapeServerState, processor: CandleProcessor, traffic: BrokerTraffic?, limits: ConnectionLimitCounters?, interactive: Bool,
        logger: Logger
    ) async {
        var last: (time: ContinuousClock.Instant, trades: Int) = (.now, 0)
        var tick = 0
        // The stages count with plain atomics; their deltas feed the Prometheus counters.
        let exported = MetricsBridge(exchange: "poloniex")
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            tick += 1
            stats.sample()
            let now = ContinuousClock.now
            let snapshot = ingest.service?.metrics.connection.snapshot
            let trades = snapshot?.trades ?? 0
            let elapsed = (now - last.time).seconds
            let rate = elapsed > 0 ? Double(trades - last.trades) / elapsed : 0
            last = (now, trades)
            // Candle updates as they appear on tape.candles (the server reads every one).
            let candleUpdates = Int(server.candlesSeen.load(ordering: .relaxed))
            exported.update(connection: snapshot, candlesEmitted: candleUpdates)
            exported.update(processing: processor.counters)
            if let traffic { exported.update(traffic: traffic) }
            if let limits { exported.update(limits: limits) }
            let lag = Double(snapshot?.lastLagMicros ?? 0) / 1000
            let line = String(format: "trades %d (%.0f/s) | candle updates %d | lag %.0f ms | reconnects %d | %@",
                              trades, rate, candleUpdates, lag, snapshot?.reconnects ?? 0, snapshot?.connected == true ? "connected" : "not connected")
            if interactive {
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            } else if tick % 30 == 0 {
                logger.notice("status: \(line)")
            }
        }
    }
}

/// The ingest service once it has started (nil while the exchange cannot be reached).
final class IngestHolder: Sendable {
    private let value = Mutex<IngestService?>(nil)
    private let startError = Mutex<String?>(nil)
    var service: IngestService? { value.withLock { $0 } }
    func set(_ service: IngestService) { value.withLock { $0 = service } }
    /// Why the last attempt to start ingestion failed.
    var lastStartError: String? { startError.withLock { $0 } }
    func setStartError(_ text: String) { startError.withLock { $0 = text } }
}

/// The last reason the exchange connection failed or closed, as the ingester logs it
/// (`connection to <endpoint> failed or ended: <reason>`, metadata `reason`).
/// `/health`'s view of ingestion in `tape up`: the connection's flags and counters, the producer's.
struct UpProbe: PipelineProbe {
    let ingest: IngestHolder
    let bootstrap: String
    let endpoint: String

    func sample() -> PipelineSample {
        guard let service = ingest.service else {
            return PipelineSample(exchanges: [
                ExchangeSample(exchange: "poloniex", endpoint: endpoint, started: false, connected: false, trades: 0, lastError: ingest.lastStartError)
            ])
        }
        let c = service.metrics.connection.snapshot
        let m = service.metrics
        let enqueued = m.produced.load(ordering: .relaxed) + m.deadLetters.load(ordering: .relaxed)
        let answered = m.delivered.load(ordering: .relaxed) + m.deliveryFailures.load(ordering: .relaxed)
        return PipelineSample(
            exchanges: [
                ExchangeSample(
                    exchange: service.adapter.exchange.name, endpoint: service.websocket.description, connected: c.connected, trades: c.trades,
                    reconnects: c.reconnects, lastError: service.metrics.connection.lastFailure)
            ],
            producer: ProducerSample(bootstrap: bootstrap, enqueued: enqueued, acknowledged: answered))
    }
}

/// `/api/stats` for `tape up`: the ingest stage's own counters plus what the server sees.
final class UpStats: StatsSource {
    let ingest: IngestHolder
    let feed: FeedStats
    let exchange: String
    /// (time, frames, trades) samples of the last few seconds, taken every second by `sample()`:
    /// rates are measured over them, so the first `/api/stats` call already has one.
    private let samples = Mutex<[(time: ContinuousClock.Instant, frames: Int, trades: Int)]>([])
    static let rateWindow: Duration = .seconds(5)

    init(ingest: IngestHolder, feed: FeedStats, exchange: String) {
        self.ingest = ingest
        self.feed = feed
        self.exchange = exchange
    }

    /// Records the ingest counters now (called every second by the status loop).
    func sample() {
        guard let s = ingest.service?.metrics.connection.snapshot else { return }
        let now = ContinuousClock.now
        samples.withLock { samples in
            samples.append((now, s.frames, s.trades))
            samples.removeAll { now - $0.time > Self.rateWindow + .seconds(1) }
        }
    }

    func stats() async -> PipelineStats {
        var base = await feed.stats()
        guard let service = ingest.service else {
            base.exchanges = [ExchangeStats(exchange: exchange, connected: false, tradesPerSecond: 0, tradesTotal: 0)]
            return base
        }
        let s = service.metrics.connection.snapshot
        let now = ContinuousClock.now
        // Over the oldest sample still in the window (at least half a second back).
        let (fps, tps) = samples.withLock { samples -> (Double?, Double) in
            guard let p = samples.first(where: { now - $0.time <= Self.rateWindow && now - $0.time >= .milliseconds(500) }) else { return (nil, 0) }
            let dt = (now - p.time).seconds
            return (Double(s.frames - p.frames) / dt, Double(s.trades - p.trades) / dt)
        }
        base.exchanges = [
            ExchangeStats(
                exchange: exchange, connected: s.connected, framesPerSecond: fps, tradesPerSecond: tps, tradesTotal: Int64(s.trades),
                parseErrors: Int64(s.unparseableFrames), reconnects: Int64(s.reconnects), lagMilliseconds: Double(s.lastLagMicros) / 1000)
        ]
        return base
    }
}

/// Feeds the stages' own counters into the `TapeMetrics` Prometheus counters, by delta.
final class MetricsBridge {
    private let frames, trades, parseErrors, reconnects, candles, brokerIn, brokerOut: Counter
    private var last = (frames: 0, trades: 0, parseErrors: 0, reconnects: 0, candles: 0, brokerIn: 0, brokerOut: 0)

    init(exchange: String) {
        frames = TapeMetrics.framesIn(exchange: exchange)
        trades = TapeMetrics.tradesIn(exchange: exchange)
        parseErrors = TapeMetrics.parseErrors(exchange: exchange)
        reconnects = TapeMetrics.reconnects(exchange: exchange)
        candles = TapeMetrics.candlesEmitted(interval: "all")
        brokerIn = TapeMetrics.brokerBytesInCounter()
        brokerOut = TapeMetrics.brokerBytesOutCounter()
    }

    private var deadLetterCounters: [(reason: String, counter: Counter, last: Int64)] = []

    /// The processor's rejected records, as `tape_process_dead_letters_total{reason}`.
    func update(processing c: ProcessingCounters) {
        if deadLetterCounters.isEmpty {
            deadLetterCounters = ["not-a-trade", "time-out-of-range", "overflow", "deadletter-failed"].map {
                ($0, TapeMetrics.processDeadLetters(reason: $0), 0)
            }
        }
        let values = [c.unparseable, c.rejectedTimes, c.rejectedOverflows, c.deadLetterFailures]
        for i in deadLetterCounters.indices {
            deadLetterCounters[i].counter.increment(by: Int(max(0, values[i] - deadLetterCounters[i].last)))
            deadLetterCounters[i].last = values[i]
        }
    }

    private var closedCounters: [(counter: Counter, last: Int)] = []
    private var connectionsGauge: Gauge?

    /// The embedded broker's connection limits, as `tape_broker_connections` and
    /// `tape_broker_connections_closed_total{reason}`.
    func update(limits: ConnectionLimitCounters) {
        if closedCounters.isEmpty {
            closedCounters = ["refused", "evicted", "idle", "read-timeout"].map { (TapeMetrics.brokerConnectionsClosed(reason: $0), 0) }
            connectionsGauge = TapeMetrics.brokerConnectionsGauge()
        }
        let values = [
            limits.rejected.load(ordering: .relaxed), limits.evicted.load(ordering: .relaxed), limits.idleClosed.load(ordering: .relaxed),
            limits.readTimeouts.load(ordering: .relaxed),
        ]
        for i in closedCounters.indices {
            closedCounters[i].counter.increment(by: max(0, values[i] - closedCounters[i].last))
            closedCounters[i].last = values[i]
        }
        connectionsGauge?.record(limits.open.load(ordering: .relaxed))
    }

    /// The embedded broker's socket bytes, as `tape_broker_bytes_in_total` / `_out_total`.
    func update(traffic: BrokerTraffic) {
        let bytesIn = traffic.bytesIn.load(ordering: .relaxed)
        let bytesOut = traffic.bytesOut.load(ordering: .relaxed)
        brokerIn.increment(by: max(0, bytesIn - last.brokerIn))
        brokerOut.increment(by: max(0, bytesOut - last.brokerOut))
        last.brokerIn = bytesIn
        last.brokerOut = bytesOut
    }

    func update(connection s: ConnectionMetrics.Snapshot?, candlesEmitted: Int) {
        if let s {
            frames.increment(by: max(0, s.frames - last.frames))
            trades.increment(by: max(0, s.trades - last.trades))
            parseErrors.increment(by: max(0, s.unparseableFrames - last.parseErrors))
            reconnects.increment(by: max(0, s.reconnects - last.reconnects))
            last.frames = s.frames
            last.trades = s.trades
            last.parseErrors = s.unparseableFrames
            last.reconnects = s.reconnects
        }
        candles.increment(by: max(0, candlesEmitted - last.candles))
        last.candles = candlesEmitted
    }
}

/// `tape.gaps` read once in `tape up`: every gap the server's reader yields is also applied to the
/// processor's ledger.
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
