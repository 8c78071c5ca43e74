import ArgumentParser
import Exchanges
import Foundation
import Ingest
import KafkaClient
import Logging
import MarketData
import TapeCommon

/// `tape ingest`: exchange trades into Kafka, nothing lost, doubled or misread.
struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Stream an exchange's trades into Kafka (deduplicated, gaps backfilled over REST, resumable).",
        discussion: """
            Produces Trade JSON to --topic with key exchange:SYMBOL and the trade time as record time
            (idempotent producer, acks=all). A jump in a market's trade ids triggers a REST repair at
            once, and every market is re-read over REST each --reconcile-interval; every interval in
            which trades may be missing, and its repair, is a record in --gaps-topic. Unparseable
            frames and failed backfills go to --deadletter-topic. Restarted, it reads the tail of
            --topic and carries on without duplicates. Shows a status line on a terminal, structured logs otherwise.
            """
    )

    @Option(help: "Exchange: poloniex, binance, coinbase or kraken.") var exchange: String = "poloniex"
    @Option(help: "Comma-separated symbols (BTC-USDT, or the venue's spelling: BTC_USDT, BTCUSDT, BTC/USD), or 'all' for every trading market.")
    var symbols: String = "BTC_USDT"
    @Option(help: "Websocket URL (default: the exchange's own; e.g. the one `tape simulate` prints).") var endpoint: String?
    @Option(name: .customLong("rest-endpoint"), help: "REST base URL (default: the exchange's own).") var restEndpoint: String?
    @Option(help: "Trades topic.") var topic: String = "tape.trades"
    @Option(name: .customLong("deadletter-topic"), help: "Topic for unparseable frames and failed backfills.")
    var deadLetterTopic: String = "tape.deadletter"
    @Option(name: .customLong("gaps-topic"), help: "Topic of the gap ledger: intervals in which trades may be missing, and their repair.")
    var gapsTopic: String = "tape.gaps"
    @Option(help: "What to collect: trades, book, or trades,book (order books go to --books-topic).")
    var channels: String = "trades"
    @Option(name: .customLong("books-topic"), help: "Order book topic (snapshot and update records, key exchange:SYMBOL).")
    var booksTopic: String = "tape.books"
    @Option(
        name: .customLong("book-snapshot-interval"),
        help: "Also publish every book whole once per SECONDS, so a consumer can start from the recent past; 0 = only on (re)synchronization.")
    var bookSnapshotInterval: Double = 300
    @Option(
        name: .customLong("reconcile-interval"),
        help: "Re-read every market over REST once per SECONDS (spread out, within the venue's rate limits) to find trades the stream skipped; 0 = off.")
    var reconcileInterval: Double = 60
    @Option(name: .customLong("buffer"), help: "Records held in memory while Kafka is slow or down; at the bound reading pauses.")
    var bufferLimit: Int = 200_000
    @Option(name: .customLong("tail-records"), help: "Records read back per partition of --topic on start, to resume without duplicates.")
    var tailRecords: Int = 5_000
    @Option(name: .customLong("ping-interval"), help: "Seconds between application pings.") var pingInterval: Double = 15
    @Option(name: .customLong("silence-timeout"), help: "Replace a connection that sent nothing for SECONDS.")
    var silenceTimeout: Double = 30
    @Option(name: .customLong("ca-file"), help: "PEM file of extra trusted certificates for wss:// and https:// endpoints.")
    var caFile: String?
    @Option(name: .customLong("stall-warning"), help: "Warn when Kafka acknowledged nothing for SECONDS while records wait.")
    var stallWarning: Double = 10
    @Option(
        name: .customLong("mock-brokers"),
        help: ArgumentHelp("Run an in-process librdkafka mock cluster with N brokers instead of --brokers (benchmarks, demos).", visibility: .hidden))
    var mockBrokers: Int?
    @OptionGroup var kafka: KafkaOptions

    func validate() throws {
        guard Venues.adapter(named: exchange) != nil else {
            throw ValidationError("Unknown exchange '\(exchange)'; supported: \(Venues.names.joined(separator: ", ")).")
        }
        if let mockBrokers, !(1...100).contains(mockBrokers) { throw ValidationError("--mock-brokers must be from 1 to 100; got \(mockBrokers).") }
        guard !symbols.isEmpty else { throw ValidationError("--symbols is empty; give BTC_USDT,ETH_USDT or all.") }
        guard bufferLimit > 0, tailRecords >= 0 else { throw ValidationError("--buffer must be positive, --tail-records not negative.") }
        guard pingInterval > 0, silenceTimeout > 0 else { throw ValidationError("--ping-interval and --silence-timeout must be positive.") }
        // Seconds become Int64 milliseconds: inf, nan or 1e300 would trap there.
        guard pingInterval <= 86_400, silenceTimeout <= 86_400, stallWarning.isFinite, stallWarning <= 86_400 else {
            throw ValidationError("--ping-interval, --silence-timeout and --stall-warning must be at most 86400 seconds.")
        }
        _ = try parsedChannels()
        guard bookSnapshotInterval >= 0, bookSnapshotInterval <= 86_400 else {
            throw ValidationError("--book-snapshot-interval must be between 0 (off) and 86400 seconds.")
        }
        guard reconcileInterval >= 0, reconcileInterval <= 86_400 else {
            throw ValidationError("--reconcile-interval must be between 0 (off) and 86400 seconds.")
        }
    }

    /// `--channels` as a set: "trades", "book" (or "books"), comma-separated.
    func parsedChannels() throws -> Set<Gap.Channel> {
        var result: Set<Gap.Channel> = []
        for part in channels.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !part.isEmpty {
            switch part {
            case "trades", "trade": result.insert(.trades)
            case "book", "books": result.insert(.book)
            default: throw ValidationError("--channels takes trades, book or trades,book; '\(part)' is neither.")
            }
        }
        guard !result.isEmpty else { throw ValidationError("--channels is empty; give trades, book or trades,book.") }
        return result
    }

    func run() async throws {
        var configuration = IngestConfiguration()
        configuration.exchange = exchange.lowercased()
        configuration.symbols = symbols.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        configuration.websocket = endpoint
        configuration.rest = restEndpoint
        configuration.topic = topic
        configuration.deadLetterTopic = deadLetterTopic
        configuration.gapsTopic = gapsTopic
        configuration.channels = try parsedChannels()
        configuration.booksTopic = booksTopic
        configuration.bookSnapshotInterval = bookSnapshotInterval > 0 ? .milliseconds(Int64(bookSnapshotInterval * 1000)) : nil
        configuration.reconcileInterval = reconcileInterval > 0 ? .milliseconds(Int64(reconcileInterval * 1000)) : nil
        configuration.kafka = try kafka.configuration()
        var mock: MockKafkaCluster?
        if let mockBrokers {
            let cluster = try MockKafkaCluster(brokers: max(1, mockBrokers))
            try cluster.createTopic(topic, partitions: 3)
            try cluster.createTopic(deadLetterTopic, partitions: 1)
            try cluster.createTopic(gapsTopic, partitions: 1)
            try cluster.createTopic(booksTopic, partitions: 3)
            configuration.kafka.bootstrapServers = cluster.bootstrapServers
            printError("in-process mock cluster: \(cluster.bootstrapServers)")
            mock = cluster
        }
        defer { withExtendedLifetime(mock) {} }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw TapeFailure("Cannot read --ca-file \(caFile): give a readable PEM file of certificates.")
        }
        // An unreachable cluster within 5 s, in one sentence (the producer would retry for longer).
        if mock == nil { try await KafkaOptions.requireCluster(configuration.kafka) }
        configuration.bufferLimit = bufferLimit
        configuration.tailRecords = tailRecords
        configuration.connection.pingInterval = .milliseconds(Int64(pingInterval * 1000))
        configuration.connection.silenceTimeout = .milliseconds(Int64(silenceTimeout * 1000))
        configuration.tls = TLSOptions(caFile: caFile)
        configuration.stallWarning = .milliseconds(Int64(max(0.1, stallWarning) * 1000))
        var ingestLogger = Logger(label: "tape.ingest")
        ingestLogger.logLevel = kafka.verbose ? .trace : .info
        let logger = ingestLogger

        let service: IngestService
        do {
            service = try await IngestService.build(configuration, logger: logger)
        } catch let error as ExchangeError {
            printError("Error: \(error.message). Check --symbols, --endpoint and --rest-endpoint.")
            throw ExitCode.failure
        } catch let error as IngestError {
            printError("Error: \(error.description)")
            throw ExitCode.failure
        }
        let interactive = isatty(STDERR_FILENO) == 1
        try await runUntilSignalled {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                group.addTask { try await IngestStatus(metrics: service.metrics, interactive: interactive, logger: logger).run() }
                try await group.next()
                group.cancelAll()
            }
        }
        let m = service.metrics
        let c = m.connection.snapshot
        printError(
            "ingest stopped: \(c.frames) frames, \(c.trades) trades (\(c.backfilledTrades) from REST backfill, \(c.duplicates) duplicates dropped), \(m.delivered.load(ordering: .relaxed)) records delivered, \(c.unparseableFrames) unparseable frames, \(c.gaps) gaps (\(c.gapsRepaired) repaired, \(c.gapsUnrepaired) lost; \(c.repairedTrades) trades recovered over REST), \(c.reconnects) reconnects\(c.bookEvents > 0 || c.bookResyncs > 0 ? ", \(c.bookEvents) book records (\(c.bookResyncs) resyncs: \(c.bookSequenceBreaks) sequence breaks, \(c.bookChecksumFailures) checksum failures, \(c.bookCrossed) crossed)" : "")"
        )
    }
}

/// The live status: a line redrawn every second on a terminal, a log line every 10 s otherwise.
struct IngestStatus {
    let metrics: IngestMetrics
    let interactive: Bool
    let logger: Logger

    func run() async throws {
        var last = metrics.connection.snapshot
        var lastTime = ContinuousClock.now
        let period: Duration = interactive ? .seconds(1) : .seconds(10)
        while true {
            try await Task.sleep(for: period)
            let now = ContinuousClock.now
            let seconds = max(0.001, lastTime.duration(to: now).seconds)
            let s = metrics.connection.snapshot
            let framesPerSecond = Double(s.frames - last.frames) / seconds
            let tradesPerSecond = Double(s.trades - last.trades) / seconds
            let lagMs = Double(s.lastLagMicros) / 1000
            let delivered = metrics.delivered.load(ordering: .relaxed)
            let queued = metrics.produced.load(ordering: .relaxed) - delivered - metrics.deliveryFailures.load(ordering: .relaxed)
            if interactive {
                let line = String(
                    format:
                        "%@ frames/s %.0f  trades/s %.0f  lag %.1f ms  trades %d  delivered %d  queued %d  reconnects %d  dead-letters %d  gaps %d (lost %d)",
                    s.connected ? "●" : "○", framesPerSecond, tradesPerSecond, lagMs, s.trades, delivered, max(0, queued),
                    s.reconnects, metrics.deadLetters.load(ordering: .relaxed), s.gaps, s.gapsUnrepaired)
                FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
            } else {
                logger.info(
                    "status",
                    metadata: [
                        "connected": "\(s.connected)", "frames_per_s": "\(Int(framesPerSecond))",
                        "trades_per_s": "\(Int(tradesPerSecond))", "lag_ms": "\(lagMs)", "trades": "\(s.trades)",
                        "delivered": "\(delivered)", "queued": "\(max(0, queued))", "reconnects": "\(s.reconnects)",
                        "duplicates": "\(s.duplicates)", "unparseable": "\(s.unparseableFrames)", "gaps": "\(s.gaps)",
                    ])
            }
            last = s
            lastTime = now
        }
    }
}
