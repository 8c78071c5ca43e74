import ExchangeSimulator
import Exchanges
import Foundation
import Ingest
import KafkaClient
import Logging
import MarketData
import Processing
import ServiceLifecycle
import TapeBroker
import TapeMetrics
import TapeServer

/// The whole pipeline, built and ready to run: its stages as services in one `ServiceGroup`.
///
/// Stages start together and stop in reverse order of `services`: the status reporter, ingestion
/// (pending trades flushed), the simulator, processing (candles emitted, offsets committed), the
/// server (connections closed), the broker (files synced). A stage that fails or ends on its own
/// shuts the rest down gracefully, and `run()` throws its error.
public struct TapePipeline: Sendable {
    /// Run this (or `run()`); `triggerGracefulShutdown()` stops it in order.
    public let group: ServiceGroup
    /// The stages, in start order.
    public let services: [any Service]
    /// Where Kafka clients bootstrap from (the embedded broker, or `externalBrokers`).
    public let bootstrapServers: String
    public let broker: BrokerStage?
    /// One simulator per venue (`--offline`), in `configuration.venues` order; empty when live.
    public let simulators: [SimulatorStage]
    /// One ingest stage per venue, in `configuration.venues` order.
    public let ingest: [IngestStage]
    public let processor: ProcessorStage
    public let server: ServerStage
    /// The order in which the stages stopped.
    public let stopOrder: StageLog

    public func run() async throws { try await group.run() }
    public func triggerGracefulShutdown() async { await group.triggerGracefulShutdown() }
}

/// Builds Tape from `configuration`: creates the data directory, binds the embedded broker (unless
/// `externalBrokers`), builds the simulator (offline), creates Tape's topics, and puts every stage
/// into one `ServiceGroup`. Adding a stage is writing one `Service` and registering it here.
///
/// Bootstrap `LoggingSystem` and `MetricsExporter` before calling it if you want logs and `/metrics`.
public func buildTape(_ configuration: TapeConfiguration, logger: Logger = Logger(label: "tape.up")) async throws -> TapePipeline {
    try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
    let stopOrder = StageLog()

    // 1. Kafka: the embedded broker, or the cluster given.
    var kafka = KafkaConfiguration(bootstrapServers: configuration.externalBrokers ?? "", properties: configuration.kafkaProperties)
    kafka.produceLatencyMetric = .tape
    // Take the open-files limit's hard value (before storage sizes its file cache), and share it:
    // the HTTP server gets an eighth (at most its default cap), the broker's connections what the
    // descriptor budget leaves after that (docs/limits.md).
    DescriptorLimit.raiseSoftLimit()
    let httpConnections = httpConnectionBudget()
    var broker: BrokerStage?
    if configuration.externalBrokers == nil {
        // A broker that authenticates clients gets one more user, known only to this process: the stages.
        let client = try InternalClient(security: configuration.brokerSecurity, properties: configuration.kafkaProperties)
        kafka.properties = client.properties.merging(configuration.kafkaProperties) { _, given in given }
        let stage = try await BrokerStage(
            dataDirectory: configuration.dataDirectory + "/kafka", host: configuration.brokerHost, port: configuration.brokerPort,
            fsync: configuration.fsync,
            maxConnections: max(8, DescriptorLimit.connectionBudget(configured: BrokerConfiguration().maxConnections) - httpConnections),
            topics: tapeTopics,
            topicConfigs: TapeRetention(milliseconds: configuration.retentionMilliseconds, totalBytes: configuration.retentionBytes).topicConfigs(tapeTopics),
            security: client.security, stopped: stopOrder)
        kafka.bootstrapServers = stage.bootstrapServers
        broker = stage
    }
    do {
        return try await buildStages(configuration, kafka: kafka, broker: broker, httpConnections: httpConnections, stopOrder: stopOrder, logger: logger)
    } catch {
        // Nothing runs yet: close the broker's files.
        await broker?.closeUnstarted()
        throw error
    }
}

private func buildStages(
    _ configuration: TapeConfiguration, kafka base: KafkaConfiguration, broker: BrokerStage?, httpConnections: Int, stopOrder: StageLog, logger: Logger
) async throws -> TapePipeline {
    let kafka = liveDataKafka(base)
    let bootstrap = kafka.bootstrapServers
    if broker == nil { await ensureTopics(kafka: kafka, topics: tapeTopics, logger: logger) }

    // 2. Exchanges: one ingest stage per venue, each against its simulator (offline) or the venue
    // (or a server speaking its format).
    guard !configuration.venues.isEmpty else { throw TapeConfigurationError("No exchange to ingest: name at least one.") }
    var simulators: [SimulatorStage] = []
    var ingestStages: [IngestStage] = []
    let offline = configuration.exchange.isSimulated
    for (index, venue) in configuration.venues.enumerated() {
        guard Venues.adapter(named: venue.exchange) != nil else {
            throw TapeConfigurationError("Unknown exchange '\(venue.exchange)'; Tape ingests \(Venues.names.joined(separator: ", ")).")
        }
        var ingest = IngestConfiguration()
        ingest.exchange = venue.exchange
        ingest.kafka = kafka
        ingest.lingerMilliseconds = liveDataLingerMilliseconds
        if let embedded = broker?.broker {
            // Appended to the embedded broker in-process: no Kafka client, socket or linger per venue.
            ingest.makeProducer = { limit, logger in
                EmbeddedProducer(broker: embedded, limit: limit, logger: logger, linger: .milliseconds(liveDataLingerMilliseconds))
            }
        }
        ingest.symbols = venue.symbols
        ingest.channels = configuration.channels
        switch configuration.exchange {
        case .live:
            ingest.websocket = venue.websocket
            ingest.rest = venue.rest
        case .simulated(let settings):
            var sim = SimulatorConfiguration()
            sim.rate = settings.rate / Double(configuration.venues.count)
            // Each venue its own market: the same coins, their own prices and trades.
            sim.seed = UInt64(index + 1)
            sim.tradesLog = settings.tradesLog.map { index == 0 ? $0 : "\($0).\(venue.exchange)" }
            if let p = settings.burstProbability { sim.burstProbability = p }
            if let ms = settings.tickMilliseconds { sim.tick = .milliseconds(ms) }
            if !(venue.symbols.isEmpty || venue.symbols == ["all"]) {
                sim.instruments = try MarketCatalogue.instruments(symbols: venue.symbols)
            }
            let stage = try await SimulatorStage.build(exchange: venue.exchange, configuration: sim, stopped: stopOrder)
            simulators.append(stage)
            ingest.websocket = stage.websocketURL
            ingest.rest = stage.restURL
            // Each run of the simulator is a new market whose ids start above the last run's: the jump
            // across a restart is no gap (nothing traded while it was down).
            ingest.resumeGapDetection = false
            if ingest.symbols == ["all"] || ingest.symbols.isEmpty { ingest.symbols = stage.symbols }
        }
        let name = Venues.adapter(named: venue.exchange).map { "\($0.exchange)" } ?? venue.exchange
        ingestStages.append(
            IngestStage(
                configuration: ingest, venueDescription: offline ? "the built-in \(venue.exchange) simulator" : venue.websocket ?? name,
                suggestOffline: !offline, stopped: stopOrder))
    }
    let bookSnapshotInterval = ingestStages[0].configuration.bookSnapshotInterval

    // 3. Processing, with the SQLite history the server reads.
    var processing = CandleProcessorConfiguration(kafka: kafka)
    processing.aggregation = CandleAggregatorConfiguration(
        intervals: configuration.intervals, graceMilliseconds: 5_000, emitIntervalMilliseconds: configuration.candleEmitMilliseconds,
        allowedLatenessMilliseconds: 3_600_000)
    processing.progressSeconds = nil
    processing.lingerMilliseconds = liveDataLingerMilliseconds
    // Static membership, as `tape process` has it: a `tape up --brokers` killed and restarted takes
    // its partitions back at once instead of waiting out its old session (the session and join
    // timing are picked for the cluster).
    processing.sessionTimeoutMilliseconds = nil
    let historyPath = configuration.dataDirectory + "/candles.sqlite"
    let instance = try? ProcessorInstance.claim(statePath: historyPath, group: processing.group)
    processing.groupInstanceID = instance?.id
    let store = try CandleStore(path: historyPath)
    // tape.gaps is read once, by the server's reader, which also feeds the processor's ledger (one
    // librdkafka client fewer: each costs threads and wake-ups on 2 cores).
    let processorGaps = GapFeed(topic: "tape.gaps")
    let processorStage = ProcessorStage(
        processor: CandleProcessor(
            configuration: processing, store: store, logger: Logger(label: "tape.process"), console: configuration.processorConsole, gaps: processorGaps),
        instance: instance, stopped: stopOrder)

    // 4. The server: dashboard, REST, /ws, /metrics, /health.
    var serverConfig = TapeServerConfiguration(host: configuration.httpHost, port: configuration.httpPort)
    serverConfig.limits.maxConnections = httpConnections
    serverConfig.token = configuration.token
    serverConfig.health = HealthPolicy(staleAfterMilliseconds: configuration.staleAfterMilliseconds)
    let state = TapeServerState(configuration: serverConfig)
    let feedStats = state.feedStats
    // Each topic through the embedded broker in-process when there is one (no Kafka client, socket
    // or request encoding per topic), else through a Kafka consumer.
    func reader(_ topic: String, _ start: KafkaTopicReader.Start, quietWhileMissing: Bool = false, onLag: @escaping @Sendable (ConsumerLag) -> Void = { _ in })
        throws -> any TopicRecordSource
    {
        let logger = Logger(label: "tape.serve.\(topic.dropFirst("tape.".count))")
        if let broker {
            return EmbeddedTopicReader(broker: broker.broker, topic: topic, start: start, logger: logger, quietWhileMissing: quietWhileMissing, onLag: onLag)
        }
        return try KafkaTopicReader(kafka: kafka, topic: topic, start: start, logger: logger, quietWhileMissing: quietWhileMissing, onLag: onLag)
    }
    let trades = KafkaTradeFeed(reader: try reader("tape.trades", .end) { feedStats.setConsumerLag($0) })
    let candles = KafkaCandleFeed(reader: try reader("tape.candles", .end) { feedStats.setConsumerLag($0) })
    // tape.gaps from its beginning: the ledger needs every gap's latest state.
    let gaps = SharedGapFeed(base: KafkaGapFeed(reader: try reader("tape.gaps", .beginning, quietWhileMissing: true)), processor: processorGaps)
    // tape.books from the recent past: two periodic-snapshot intervals hold a snapshot of every book.
    let books = KafkaBookFeed(reader: try reader("tape.books", .since(bookReplayStart(snapshotInterval: bookSnapshotInterval)), quietWhileMissing: true))
    let stats = IngestStats(ingest: ingestStages, feed: feedStats, simulated: offline)
    let probe = IngestProbe(ingest: ingestStages, bootstrap: bootstrap)
    let server = ServerStage(stopped: stopOrder) { onBound in
        buildTapeServer(
            configuration: serverConfig, trades: trades, candles: candles, history: store, stats: stats, gaps: gaps, books: books, pipeline: probe,
            state: state,
            logger: Logger(label: "tape.serve")
        ) { port in onBound(port) }
    }
    let status = StatusReporter(ingest: ingestStages, stats: stats, server: state, mode: configuration.statusLine, logger: logger)

    // Start order; graceful shutdown runs in reverse.
    let stages: [(any Service)?] = [broker, server, processorStage] + simulators + ingestStages + [status]
    let services = stages.compactMap { $0 }
    var groupConfiguration = ServiceGroupConfiguration(
        services: services.map {
            .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        },
        logger: Logger(label: "tape.up.services"))
    groupConfiguration.maximumGracefulShutdownDuration = .seconds(60)
    return TapePipeline(
        group: ServiceGroup(configuration: groupConfiguration), services: services, bootstrapServers: bootstrap, broker: broker,
        simulators: simulators, ingest: ingestStages, processor: processorStage, server: server, stopOrder: stopOrder)
}

/// Producers of live data wait at most this long to batch (librdkafka's default is 5 ms). 5 ms was
/// most of a trade's way from the exchange to /ws; 0 (send each record at once) gave the best
/// median but, at 10k trades/s, every record woke librdkafka's, the broker's and two consumers'
/// threads: `tape bench e2e --steady` at 10k/s, linger 0 → 1 ms: trade p50/p99 1.4/6–8 → 2.0/3.7–4.0
/// ms, candle 2.7/8.3–11.9 → 4.2/7.1–7.4 ms (at 1k/s the p50s rise by ~1 ms, the p99s stay). Set as
/// the producers' typed linger; a raw `-X linger.ms` still wins (raw properties apply last).
let liveDataLingerMilliseconds: Double = 1

/// Small requests leave at once rather than wait for the previous one's TCP ack (Nagle), unless
/// `-X` says otherwise: `tape bench latency` at 10k records/s, p99 1.3–1.5 → 1.0–1.3 ms.
func liveDataKafka(_ base: KafkaConfiguration) -> KafkaConfiguration {
    var kafka = base
    if kafka.properties["socket.nagle.disable"] == nil {
        kafka.properties["socket.nagle.disable"] = "true"
    }
    return kafka
}

/// Where a reader of `tape.books` starts to rebuild every book: two periodic-snapshot intervals
/// back (ms since the epoch), or 10 minutes without periodic snapshots.
public func bookReplayStart(snapshotInterval: Duration?, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> Int64 {
    let interval = snapshotInterval.map { Int64($0.components.seconds) * 1000 } ?? 300_000
    return max(0, now - 2 * max(interval, 1000))
}

/// The topics ingestion writes, with their partition counts, created before any stage runs (a
/// broker would auto-create them with its own count).
let tapeTopics: [(name: String, partitions: Int32)] = [
    ("tape.trades", 3), ("tape.deadletter", 1), ("tape.gaps", 1), ("tape.books", 3),
]

/// Creates `topics` where missing (a broker would auto-create them with its own partition count).
func ensureTopics(kafka: KafkaConfiguration, topics: [(name: String, partitions: Int32)], logger: Logger) async {
    do {
        let admin = try KafkaAdmin(configuration: kafka, timeout: .seconds(10), logger: logger)
        let existing = Set(try await admin.listTopics().map(\.name))
        for topic in topics where !existing.contains(topic.name) {
            try await admin.createTopic(topic.name, partitions: topic.partitions)
        }
    } catch {
        logger.warning(
            "Could not create the topics \(topics.map(\.name).joined(separator: ", ")) (\(error)); they will be auto-created if the cluster allows it.")
    }
}

/// HTTP connections `tape up` serves: an eighth of the open-files limit, at most the server's default cap.
public func httpConnectionBudget() -> Int {
    let openFiles = DescriptorLimit.current
    return openFiles == .max ? HTTPLimits().maxConnections : min(HTTPLimits().maxConnections, max(16, openFiles / 8))
}

extension ProduceLatencyMetric {
    /// Tape's producer latency series, `tape_produce_latency_seconds{topic}` (TapeMetrics).
    public static let tape = ProduceLatencyMetric(label: TapeMetrics.produceLatency, topicDimension: "topic")
}
