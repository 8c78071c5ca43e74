import Exchanges
import Foundation
import KafkaClient
import Logging
import MarketData
import Synchronization
import TapeCommon

/// Settings of `IngestService` (`tape ingest`).
public struct IngestConfiguration: Sendable {
    /// Venue: poloniex, binance, coinbase or kraken (`Venues.names`). Default "poloniex".
    public var exchange = "poloniex"
    /// Symbols (native or normalized spelling) or `["all"]`. Default BTC_USDT.
    public var symbols = ["BTC_USDT"]
    /// Websocket URL; nil = the venue's production endpoint.
    public var websocket: String?
    /// REST base URL; nil = the venue's production endpoint.
    public var rest: String?
    /// TLS for `wss://`/`https://` endpoints (extra CA file).
    public var tls = TLSOptions()
    /// Trades topic. Default tape.trades.
    public var topic = "tape.trades"
    /// Dead-letter topic (unparseable frames, failed backfills). Default tape.deadletter.
    public var deadLetterTopic = "tape.deadletter"
    /// Gap ledger topic (intervals in which trades may be missing, and their repair). Default tape.gaps.
    public var gapsTopic = "tape.gaps"
    /// What to collect (`--channels`): trades, order books, or both. Default trades.
    public var channels: Set<Gap.Channel> = [.trades]
    /// Order book topic. Default tape.books.
    public var booksTopic = "tape.books"
    /// Every synchronized book is also published whole this often (`--book-snapshot-interval`);
    /// nil = only on (re)synchronization. Default 5 min.
    public var bookSnapshotInterval: Duration? = .seconds(300)
    /// Every market is re-read over REST once per this interval to find trades the stream skipped;
    /// nil = off. Default 60 s.
    public var reconcileInterval: Duration? = .seconds(60)
    /// Start gap detection at the newest trade of each market read back from the topic, so trades
    /// made while nothing ran show up as a gap when REST cannot fill them. Off for a venue whose
    /// history does not outlive it (the built-in simulator of `tape up --offline`: the trades
    /// between two of its runs never existed). Default true.
    public var resumeGapDetection = true
    /// The Kafka cluster and raw librdkafka properties.
    public var kafka = KafkaConfiguration()
    /// How long the trades producer waits to batch records (`linger.ms`), in ms; a raw
    /// `linger.ms` in `kafka` wins. Default 5.
    public var lingerMilliseconds: Double = 5
    /// Records held in memory while Kafka is slow or unreachable; when full the websocket reader
    /// waits (back-pressure) instead of dropping. Default 200,000.
    public var bufferLimit = 200_000
    /// Records read back per partition of `topic` on start to learn what was already published. Default 5,000.
    public var tailRecords = 5_000
    /// Trade ids remembered per market for deduplication. Default 10,000.
    public var dedupWindow = 10_000
    /// Connection loop timing.
    public var connection = ConnectionStateMachine.Configuration()
    /// Warn when Kafka has acknowledged nothing for this long while records wait. Default 10 s.
    public var stallWarning: Duration = .seconds(10)
    /// Makes the producer records go through instead of a `KafkaProducer` on `kafka` (`tape up`
    /// appends to its embedded broker in-process), given `bufferLimit`. nil: a Kafka producer.
    public var makeProducer: (@Sendable (_ bufferLimit: Int, _ logger: Logger) throws -> any RecordProducer)?

    public init() {}
}

/// Counters of the ingest pipeline beyond the connection's own.
public final class IngestMetrics: Sendable {
    public let connection = ConnectionMetrics()
    public let produced = Atomic<Int>(0)
    public let delivered = Atomic<Int>(0)
    public let deliveryFailures = Atomic<Int>(0)
    /// Records written to the dead-letter topic: all, and those two kinds.
    public let deadLetters = Atomic<Int>(0)
    public let deadLetteredFrames = Atomic<Int>(0)
    public let deadLetteredBackfillFailures = Atomic<Int>(0)
    public let restoredTrades = Atomic<Int>(0)
    public init() {}
}

/// An ingest error a user can act on.
public struct IngestError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Exchange → Kafka: resolves symbols against the venue's market list, learns what was already
/// published from the tail of the trades topic, then runs the shared connection loop with a Kafka
/// sink (idempotent producer, acks=all, key `exchange:SYMBOL`, record time = trade time).
///
/// ```
/// let service = try await IngestService.build(configuration, logger: logger)
/// try await service.run()   // until cancelled; flushes on the way out
/// ```
public final class IngestService: Sendable {
    public let configuration: IngestConfiguration
    public let metrics: IngestMetrics
    /// Native symbols subscribed to.
    public let symbols: [String]
    /// The listed markets of `symbols` (normalized symbol, REST spelling).
    public let markets: [ListedMarket]
    /// The venue's adapter.
    public let adapter: any ExchangeAdapter.Type
    public let websocket: Endpoint
    public let rest: Endpoint
    let producer: any RecordProducer
    let deduplicator: TradeDeduplicator
    let logger: Logger

    /// Checks the venue and Kafka, and reads the trades topic's tail. Throws `IngestError` or
    /// `ExchangeError` with one clear sentence when something is wrong.
    public static func build(_ configuration: IngestConfiguration, logger: Logger) async throws -> IngestService {
        guard let adapter = Venues.adapter(named: configuration.exchange) else {
            throw IngestError(
                "Unknown exchange '\(configuration.exchange)'; supported: \(Venues.names.joined(separator: ", ")).")
        }
        let websocket = try Endpoint(configuration.websocket ?? adapter.endpoints.websocket)
        let rest = try Endpoint(configuration.rest ?? adapter.endpoints.rest)
        let markets = try await MarketDirectory.resolveMarkets(
            configuration.symbols, adapter: adapter, rest: rest, tls: configuration.tls)
        // With books on, venues that count streams (Binance) spend more than one per symbol.
        let books = configuration.channels.contains(.book) && adapter.supportsBooks
        let streamsPerSymbol = (configuration.channels.contains(.trades) ? 1 : 0) + (books ? adapter.bookStreamsPerSymbol : 0)
        let maxSymbols =
            adapter.maxSymbolsPerConnection == .max ? Int.max : adapter.maxSymbolsPerConnection / max(1, streamsPerSymbol)
        guard markets.count <= maxSymbols else {
            throw IngestError(
                "\(adapter.exchange) allows \(maxSymbols) symbols on one connection\(streamsPerSymbol > 1 ? " with trades and books (two streams each)" : "") and \(markets.count) were asked for; pass at most \(maxSymbols) with --symbols (run several tape ingest for more)."
            )
        }

        let producer = try await makeProducer(configuration, logger: logger)
        let metrics = IngestMetrics()
        var dedup = TradeDeduplicator(capacity: configuration.dedupWindow)
        let restored = try await TopicTail.read(
            topic: configuration.topic, exchange: adapter.exchange, markets: markets.map(\.nativeSymbol),
            recordsPerPartition: configuration.tailRecords, kafka: configuration.kafka, logger: logger)
        for (_, trades) in restored { dedup.restore(trades) }
        let restoredCount = restored.values.reduce(0) { $0 + $1.count }
        metrics.restoredTrades.store(restoredCount, ordering: .relaxed)
        if restoredCount > 0 {
            logger.info(
                "resuming after what \(configuration.topic) already holds",
                metadata: [
                    "trades_read": "\(restoredCount)", "markets": "\(restored.count)",
                    "last":
                        "\(restored.sorted { $0.key < $1.key }.prefix(5).map { "\($0.key)=\($0.value.last.map { TradeMark($0).description } ?? "-")" }.joined(separator: " "))",
                ])
        }
        return IngestService(
            configuration: configuration, metrics: metrics, adapter: adapter, markets: markets, websocket: websocket,
            rest: rest, producer: producer, deduplicator: dedup, logger: logger)
    }

    init(
        configuration: IngestConfiguration, metrics: IngestMetrics, adapter: any ExchangeAdapter.Type, markets: [ListedMarket],
        websocket: Endpoint, rest: Endpoint, producer: any RecordProducer, deduplicator: TradeDeduplicator, logger: Logger
    ) {
        self.configuration = configuration
        self.metrics = metrics
        self.adapter = adapter
        self.markets = markets
        self.symbols = markets.map(\.nativeSymbol)
        self.websocket = websocket
        self.rest = rest
        self.producer = producer
        self.deduplicator = deduplicator
        self.logger = logger
    }

    /// Runs until cancelled, then flushes what is queued (up to 30 s).
    public func run() async throws {
        logger.info(
            "ingesting",
            metadata: [
                "exchange": "\(configuration.exchange)", "symbols": "\(symbols.count)", "websocket": "\(websocket)", "rest": "\(rest)",
                "topic": "\(configuration.topic)",
            ])
        var connectionConfiguration = ExchangeConnectionConfiguration(websocket: websocket, rest: rest, markets: markets)
        connectionConfiguration.machine = configuration.connection
        connectionConfiguration.tls = configuration.tls
        connectionConfiguration.reconcileInterval = configuration.reconcileInterval
        connectionConfiguration.channels = configuration.channels
        connectionConfiguration.bookSnapshotInterval = configuration.bookSnapshotInterval
        if configuration.channels.contains(.book) && !adapter.supportsBooks {
            logger.warning("\(adapter.exchange) has no order books in Tape yet: collecting its trades only")
        }
        let sink = KafkaTradeSink(
            producer: producer, topic: configuration.topic, deadLetterTopic: configuration.deadLetterTopic,
            gapsTopic: configuration.gapsTopic, booksTopic: configuration.booksTopic, exchange: adapter.exchange,
            metrics: metrics, logger: logger)
        // Delivery reports are counted until the producer closes (its stream then ends).
        let deliveries = Task { await self.watchDeliveries() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watchKafka() }
            await Self.runConnection(
                adapter, configuration: connectionConfiguration, metrics: metrics.connection, sink: sink,
                deduplicator: deduplicator, resumeSequences: configuration.resumeGapDetection)
            group.cancelAll()
        }
        logger.info("stopping: flushing queued records", metadata: ["queued": "\(producer.outstanding)"])
        do {
            try await producer.close(timeout: .seconds(30))
            await deliveries.value
        } catch {
            deliveries.cancel()
            logger.error("records still undelivered at exit", metadata: ["queued": "\(producer.outstanding)", "error": "\(error)"])
            throw error
        }
    }

    /// The producer `configuration.makeProducer` makes, or an idempotent Kafka producer (acks=all,
    /// records never expire while queued), checked against the cluster.
    static func makeProducer(_ configuration: IngestConfiguration, logger: Logger) async throws -> any RecordProducer {
        if let make = configuration.makeProducer { return try make(configuration.bufferLimit, logger) }
        var producerConfiguration = KafkaProducerConfiguration(kafka: configuration.kafka)
        producerConfiguration.acks = -1
        producerConfiguration.idempotence = true
        producerConfiguration.maxQueuedMessages = configuration.bufferLimit
        producerConfiguration.lingerMilliseconds = configuration.lingerMilliseconds
        // Never expire a queued record: while Kafka is down records wait (bounded by bufferLimit).
        if producerConfiguration.kafka.properties["message.timeout.ms"] == nil {
            producerConfiguration.kafka.properties["message.timeout.ms"] = "0"
        }
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        do {
            _ = try await producer.metadata(timeout: .seconds(10))
        } catch {
            throw IngestError("\(error)")
        }
        return producer
    }

    /// The shared connection loop for one venue's adapter (opened from the existential).
    static func runConnection<A: ExchangeAdapter>(
        _ adapter: A.Type, configuration: ExchangeConnectionConfiguration, metrics: ConnectionMetrics,
        sink: some TradeSink, deduplicator: TradeDeduplicator, resumeSequences: Bool
    ) async {
        let connection = ExchangeConnection(adapter: adapter, configuration: configuration, clock: ContinuousClock(), metrics: metrics)
        await connection.run(sink: sink, deduplicator: deduplicator, resumeSequences: resumeSequences)
    }

    func watchDeliveries() async {
        for await batch in producer.deliveryReports {
            var failed = 0
            for report in batch {
                if let error = report.error {
                    failed += 1
                    if failed <= 3 {
                        logger.error("Kafka refused a record", metadata: ["topic": "\(report.topic)", "error": "\(error)"])
                    }
                }
            }
            metrics.delivered.add(batch.count - failed, ordering: .relaxed)
            if failed > 0 { metrics.deliveryFailures.add(failed, ordering: .relaxed) }
        }
    }

    /// Warns when records wait and Kafka acknowledges nothing; says when it recovers.
    func watchKafka() async {
        var lastDelivered = metrics.delivered.load(ordering: .relaxed)
        var lastProgress = ContinuousClock.now
        var warned = false
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
            let delivered = metrics.delivered.load(ordering: .relaxed)
            let queued = producer.outstanding
            if delivered != lastDelivered || queued == 0 {
                if warned {
                    logger.warning("Kafka is accepting records again", metadata: ["queued": "\(queued)"])
                    warned = false
                }
                lastDelivered = delivered
                lastProgress = .now
            } else if !warned && lastProgress.duration(to: .now) >= configuration.stallWarning {
                warned = true
                logger.warning(
                    "Kafka at \(configuration.kafka.bootstrapServers) acknowledged nothing for \(Int(configuration.stallWarning.components.seconds)) s: holding \(queued) records in memory (bound \(configuration.bufferLimit)); at the bound the exchange reader pauses (back-pressure) rather than drop anything"
                )
            }
        }
    }
}

/// Publishes what the connection loop delivers: trades to the trades topic, gaps to the gaps topic,
/// unparseable frames and failed backfills to the dead-letter topic (never dropped: `enqueue` waits
/// while the bounded queue is full).
struct KafkaTradeSink: TradeSink {
    let producer: any RecordProducer
    let topic: String
    let deadLetterTopic: String
    let gapsTopic: String
    let booksTopic: String
    let exchange: Exchange
    let metrics: IngestMetrics
    let logger: Logger

    func publish(_ trades: [Trade]) async {
        for trade in trades {
            let message = ProducerMessage(
                topic: topic, key: Array(trade.kafkaKey.utf8), value: trade.jsonBytes, timestamp: trade.time)
            await enqueue(message)
        }
        metrics.produced.add(trades.count, ordering: .relaxed)
    }

    func publishBooks(_ events: [BookEvent]) async {
        for event in events {
            await enqueue(
                ProducerMessage(topic: booksTopic, key: Array(event.kafkaKey.utf8), value: event.jsonBytes, timestamp: event.time))
        }
        metrics.produced.add(events.count, ordering: .relaxed)
    }

    func deadLetter(frame: [UInt8], error: FrameParseError) async {
        metrics.deadLetters.add(1, ordering: .relaxed)
        metrics.deadLetteredFrames.add(1, ordering: .relaxed)
        logger.warning(
            "unparseable frame sent to \(deadLetterTopic)",
            metadata: ["error": "\(error)", "frame": "\(String(decoding: frame.prefix(160), as: UTF8.self))"])
        await enqueue(
            ProducerMessage(
                topic: deadLetterTopic, key: Array(exchange.name.utf8), value: frame,
                headers: [
                    KafkaHeader(key: "type", value: Array("unparseable-frame".utf8)),
                    KafkaHeader(key: "error", value: Array(error.description.utf8)),
                    KafkaHeader(key: "error.code", value: Array(error.code.description.utf8)),
                    KafkaHeader(key: "exchange", value: Array(exchange.name.utf8)),
                ], timestamp: WallClock.milliseconds()))
    }

    func gap(_ gap: Gap) async {
        if gap.repaired {
            logger.info("\(gap.description)")
        } else {
            logger.warning("\(gap.description)")
        }
        await enqueue(
            ProducerMessage(
                topic: gapsTopic, key: Array(gap.kafkaKey.utf8), value: gap.jsonBytes,
                timestamp: gap.detected ?? WallClock.milliseconds()))
    }

    func event(_ event: ConnectionEvent) async {
        switch event {
        case .connecting(let endpoint, let attempt):
            logger.info("connecting", metadata: ["endpoint": "\(endpoint)", "attempt": "\(attempt)"])
        case .subscribed(let endpoint, let symbols):
            logger.info("subscribed", metadata: ["endpoint": "\(endpoint)", "symbols": "\(symbols)"])
        case .reconnectScheduled(let endpoint, let delay, let attempt, let reason):
            logger.warning(
                "connection to \(endpoint) failed or ended: \(reason); reconnecting in \(delay.secondsText) s",
                metadata: ["endpoint": "\(endpoint)", "attempt": "\(attempt)", "reason": "\(reason)"])
        case .backfilled(let symbol, let fetched, let fresh):
            logger.debug("backfilled", metadata: ["symbol": "\(symbol)", "fetched": "\(fetched)", "new": "\(fresh)"])
        case .backfillFailed(let endpoint, let symbol, let reason):
            logger.error(
                "backfill of \(symbol) from \(endpoint) failed: \(reason); trades missed while disconnected may be lost",
                metadata: ["symbol": "\(symbol)"])
            metrics.deadLetters.add(1, ordering: .relaxed)
            metrics.deadLetteredBackfillFailures.add(1, ordering: .relaxed)
            var value: [UInt8] = []
            JSONWriter.appendRaw("{\"type\":\"backfill-failed\",\"exchange\":", to: &value)
            JSONWriter.appendString(exchange.name, to: &value)
            JSONWriter.appendRaw(",\"nativeSymbol\":", to: &value)
            JSONWriter.appendString(symbol, to: &value)
            JSONWriter.appendRaw(",\"reason\":", to: &value)
            JSONWriter.appendString(reason, to: &value)
            value.append(UInt8(ascii: "}"))
            await enqueue(
                ProducerMessage(
                    topic: deadLetterTopic, key: Array(exchange.name.utf8), value: value,
                    headers: [
                        KafkaHeader(key: "type", value: Array("backfill-failed".utf8)),
                        KafkaHeader(key: "error", value: Array(reason.utf8)),
                    ], timestamp: WallClock.milliseconds()))
        case .exchangeError(let endpoint, let message):
            logger.error("exchange reported an error", metadata: ["endpoint": "\(endpoint)", "message": "\(message)"])
        case .bookResync(let symbol, let reason, let detail):
            logger.warning(
                "\(symbol)'s book is being re-synchronized (\(reason.rawValue)): \(detail)",
                metadata: ["symbol": "\(symbol)", "reason": "\(reason.rawValue)"])
        case .bookSnapshotFailed(let endpoint, let symbol, let reason):
            logger.error(
                "book snapshot of \(symbol) from \(endpoint) failed: \(reason); retrying",
                metadata: ["symbol": "\(symbol)"])
        case .idsNotConsecutive(let symbol):
            logger.warning(
                "REST lists \(symbol)'s trade ids with holes: they are not consecutive there, so its gaps are found by periodic reconciliation only",
                metadata: ["symbol": "\(symbol)"])
        }
    }

    private func enqueue(_ message: ProducerMessage) async {
        while true {
            do {
                try await producer.enqueue(message)
                return
            } catch is CancellationError {
                // Shutting down: still hand the record to librdkafka so the final flush delivers it.
                if (try? producer.tryEnqueue(message)) != nil { return }
                return
            } catch {
                logger.error("could not queue a record; retrying", metadata: ["topic": "\(message.topic)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(500))
                if Task.isCancelled { return }
            }
        }
    }
}

extension Duration {
    var secondsText: String {
        let ms = wholeMilliseconds
        return "\(ms / 1000).\(String(ms % 1000 / 10).leftPadded(2))"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
