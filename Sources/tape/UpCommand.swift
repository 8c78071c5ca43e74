import ArgumentParser
import ExchangeSimulator
import Foundation
import KafkaClient
import Logging
import MarketData
import TapeBroker
import TapeRuntime
import TapeServer

/// `tape up`: the embedded broker, ingestion (live Poloniex or the built-in simulator), candle
/// processing and the HTTP server, in one process, stopped in order on Ctrl-C.
struct UpCommand: AsyncParsableCommand {
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
    @Option(help: "What to collect: trades,book (default), or trades alone.") var channels = "trades,book"
    @Option(help: "Simulated trades per second over all markets (with --offline).") var rate: Double = 50
    @Option(help: "Bearer token for the API and WebSocket (default: $TAPE_TOKEN, else none).") var token: String?
    @Option(help: "Broker fsync policy: always, interval or never.") var fsync: BrokerCommand.FsyncPolicyOption = .interval
    @Option(help: "Kafka bootstrap servers: use this cluster instead of the embedded broker.") var brokers: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("Raw librdkafka property key=value (repeatable).", valueName: "key=value"))
    var properties: [String] = []
    @Flag(help: "Debug logs.") var verbose = false
    @Flag(help: "Let the embedded broker listen on a non-loopback address, where it has no authentication.") var insecure = false
    @Option(
        name: .customLong("stale-after"),
        help: ArgumentHelp(
            "/health is degraded after this many seconds without a trade while the exchange is connected (and without a candle while trades arrive).",
            valueName: "SECONDS"))
    var staleAfter: Double = 60
    @Option(help: ArgumentHelp("Poloniex-format websocket URL instead of Poloniex's (e.g. the one `tape simulate` prints).", valueName: "WS_URL"))
    var endpoint: String?
    @Option(name: .customLong("rest-endpoint"), help: ArgumentHelp("Poloniex-format REST base URL instead of Poloniex's (with --endpoint).", valueName: "URL"))
    var restEndpoint: String?
    @Option(
        name: .customLong("simulator-trades-log"),
        help: ArgumentHelp("With --offline: append every simulated trade (Trade JSON) to FILE (for tests).", visibility: .hidden))
    var simulatorTradesLog: String?
    @Option(
        name: .customLong("simulator-tick-ms"),
        help: ArgumentHelp("With --offline: how often the simulator sends what it generated, in ms (default 1).", visibility: .hidden))
    var simulatorTickMilliseconds: Int?
    @Option(
        name: .customLong("simulator-burst-probability"),
        help: ArgumentHelp(
            "With --offline: chance per simulated order that a burst (20x rate) starts; 0 for a steady rate (for benchmarks).", visibility: .hidden))
    var simulatorBurstProbability: Double?
    @Option(
        name: .customLong("candle-emit-ms"),
        help: ArgumentHelp("Candle updates per key at most once per this many ms (for `tape bench e2e`).", visibility: .hidden))
    var candleEmitMilliseconds: Int64 = 1_000

    /// `--channels`: trades (always) and optionally book.
    static func parseChannels(_ text: String) throws -> Set<Gap.Channel> {
        var result: Set<Gap.Channel> = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !part.isEmpty {
            switch part {
            case "trades", "trade": result.insert(.trades)
            case "book", "books": result.insert(.book)
            default: throw ValidationError("--channels takes trades or trades,book; '\(part)' is neither.")
            }
        }
        guard result.contains(.trades) else {
            throw ValidationError("--channels must include trades: tape up's candles and dashboard are built from them.")
        }
        return result
    }

    func validate() throws {
        _ = try Self.parseChannels(channels)
        guard (try? BrokerCommand.parseListen(listen)) != nil else { throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:9092; got \(listen).") }
        do { _ = try TapeServerConfiguration.parseListenAddress(http) } catch { throw ValidationError("--http: \(error.message)") }
        _ = try parseIntervals(intervals)
        guard rate > 0 else { throw ValidationError("--rate must be positive.") }
        guard candleEmitMilliseconds > 0 else { throw ValidationError("--candle-emit-ms must be positive.") }
        guard staleAfter.isFinite, staleAfter >= 1, staleAfter <= 86_400 else {
            throw ValidationError("--stale-after must be from 1 to 86400 seconds; got \(staleAfter).")
        }
        if offline, endpoint != nil || restEndpoint != nil {
            throw ValidationError("--endpoint and --rest-endpoint point at another exchange; --offline uses the built-in simulator. Give one or the other.")
        }
        if offline {
            let named = symbols.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && $0 != "all" }
            let unknown = MarketCatalogue.unknown(named)
            if !unknown.isEmpty { throw ValidationError(UnknownSimulatedMarket(symbols: unknown).description) }
        }
    }

    /// The flags as the runtime's configuration.
    func tapeConfiguration(interactive: Bool) throws -> TapeConfiguration {
        var c = TapeConfiguration()
        c.dataDirectory = dataDir
        (c.brokerHost, c.brokerPort) = try BrokerCommand.parseListen(listen)
        c.fsync = fsync.policy
        c.externalBrokers = brokers
        c.kafkaProperties = try KafkaConfiguration.parseProperties(properties)
        (c.httpHost, c.httpPort) = try TapeServerConfiguration.parseListenAddress(http)
        c.token = token ?? ProcessInfo.processInfo.environment["TAPE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        c.staleAfterMilliseconds = Int64(staleAfter * 1000)
        c.symbols = symbols.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        c.intervals = try parseIntervals(intervals)
        c.channels = try Self.parseChannels(channels)
        c.candleEmitMilliseconds = candleEmitMilliseconds
        c.statusLine = interactive ? .terminal : .log
        c.processorConsole = consoleLogger("tape.process", prefix: "process: ")
        if offline {
            var sim = TapeConfiguration.SimulatedExchange(rate: rate)
            sim.tradesLog = simulatorTradesLog
            sim.tickMilliseconds = simulatorTickMilliseconds
            sim.burstProbability = simulatorBurstProbability
            c.exchange = .simulated(sim)
        } else {
            c.exchange = .live(websocket: endpoint, rest: restEndpoint)
        }
        return c
    }

    func run() async throws {
        // The embedded broker has no authentication: not on a reachable address unless asked for.
        if brokers == nil, let host = try? BrokerCommand.parseListen(listen).0,
            let refusal = BrokerSecurity.insecureListenerRefusal(host: host, authenticatesClients: false, insecure: insecure, remedy: "")
        {
            printError("Error: \(refusal)")
            throw ExitCode(64)
        }
        tuneMallocForOneProcess()
        // Signal handling first, before librdkafka, NIO and SQLite start threads of their own: a
        // signal must not land on a thread that never asked for it.
        let shutdown = ShutdownSignals()
        defer { shutdown.cancel() }
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
        let configuration = try tapeConfiguration(interactive: interactive)
        let tape: TapePipeline
        do {
            tape = try await buildTape(configuration, logger: logger)
        } catch let error as BrokerStartError {
            printError("Error: \(error.message)")
            throw ExitCode.failure
        }
        let trimTask = releaseFreedMemoryPeriodically()
        defer { trimTask.cancel() }
        let running = Task { try await tape.run() }
        let banner = Task { [tape, configuration, offline, endpoint] in
            guard let port = await tape.server.port() else { return }
            let settings = TapeServerConfiguration(host: configuration.httpHost, port: port, token: configuration.token)
            let url = settings.dashboardURL(port: port)
            let bootstrap = tape.bootstrapServers
            let exchange = offline ? "built-in Poloniex simulator (--offline)" : endpoint.map { "Poloniex format at \($0)" } ?? "Poloniex (live)"
            var text = "\nTape is up.\n  Dashboard:       \(url)\n  Kafka bootstrap: \(bootstrap)   (e.g. kcat -b \(bootstrap) -C -t tape.trades)\n"
            text += "  Exchange:        \(exchange)\n  Health:          \(url)health\n  Stop with Ctrl-C.\n\n"
            FileHandle.standardError.write(Data(text.utf8))
        }
        defer { banner.cancel() }
        // The first signal stops the stages in order; a second one cancels whatever still runs.
        let signals = Task {
            var received = 0
            for await _ in shutdown.received {
                received += 1
                if received == 1 {
                    if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
                    logger.notice("tape up: shutting down (ingest, processing, server, broker)")
                    await tape.triggerGracefulShutdown()
                } else {
                    logger.warning("tape up: second signal; stopping now")
                    running.cancel()
                }
            }
        }
        defer { signals.cancel() }
        do {
            try await running.value
        } catch {
            logger.error("tape up: \(error); stopped")
            throw ExitCode.failure
        }
        printError("tape up: stopped; data is in \(dataDir).")
    }
}
