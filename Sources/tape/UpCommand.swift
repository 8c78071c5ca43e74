import ArgumentParser
import ExchangeSimulator
import Exchanges
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
        abstract: "Run the whole pipeline: embedded Kafka broker, exchange ingestion, candles, order books, dashboard and API.",
        discussion: """
            Prints the dashboard URL and the Kafka bootstrap address. Ctrl-C stops ingestion first \
            (pending trades are flushed), then processing (offsets committed), then the server and the \
            broker (files synced). --exchanges picks the venues (one connection each); --offline runs \
            a built-in simulator of each instead of the live exchange. With --brokers, no embedded \
            broker starts and everything runs against that cluster.
            """
    )

    @Option(
        help: ArgumentHelp(
            "A YAML file with the same settings as these flags (see docs/configuration.md); flags on the command line win over it.",
            valueName: "FILE"))
    var config: String?
    @Flag(help: "Use a built-in, deterministic simulator of each exchange instead of the live ones.") var offline = false
    @Option(help: ArgumentHelp("Exchanges to ingest (comma-separated): poloniex, binance, coinbase, kraken.", valueName: "LIST"))
    var exchanges = "poloniex"
    @Option(name: .customLong("data-dir"), help: "Where the broker's log and the candle history live.") var dataDir = "./tape-data"
    @Option(help: "Address of the embedded Kafka broker, HOST:PORT.") var listen = "127.0.0.1:9092"
    @Option(help: ArgumentHelp("Address of the dashboard, API and metrics.", valueName: "HOST:PORT")) var http = "127.0.0.1:8080"
    @Option(
        help: ArgumentHelp(
            "Markets per exchange, e.g. binance:BTCUSDT,ETHUSDT (repeatable; a name without 'exchange:' belongs to the exchange before it, or to the only one), or 'all'. Default: BTC, ETH, SOL, XRP, DOGE and LTC against USDT (Coinbase and Kraken: USD).",
            valueName: "[EXCHANGE:]SYMBOLS"))
    var symbols: [String] = []
    @Option(help: "Candle intervals.") var intervals = "1m,5m,1h"
    @Option(help: "What to collect: trades,book (default), or trades alone.") var channels = "trades,book"
    @Option(help: "Simulated trades per second over all markets of all exchanges (with --offline).") var rate: Double = 50
    @Option(help: "Bearer token for the API and WebSocket (default: $TAPE_TOKEN, else none).") var token: String?
    @Option(help: "Broker fsync policy: always, interval or never.") var fsync: BrokerCommand.FsyncPolicyOption = .interval
    @Option(help: "Kafka bootstrap servers: use this cluster instead of the embedded broker.") var brokers: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("Raw librdkafka property key=value (repeatable).", valueName: "key=value"))
    var properties: [String] = []
    @Flag(help: "Debug logs.") var verbose = false
    @OptionGroup(title: "Security of the embedded broker (docs/security.md)")
    var security: BrokerSecurityOptions
    @Option(
        name: .customLong("stale-after"),
        help: ArgumentHelp(
            "/health is degraded after this many seconds without a trade while the exchange is connected (and without a candle while trades arrive).",
            valueName: "SECONDS"))
    var staleAfter: Double = 60
    @Option(
        help: ArgumentHelp(
            "How long the embedded broker keeps trades, books and dead letters: e.g. 12h, 3d, or forever (candles stay: tape.candles is compacted, and the history is in SQLite).",
            valueName: "DURATION"))
    var retention = "3d"
    @Option(
        name: .customLong("retention-size"),
        help: ArgumentHelp("At most this much of them on disk in all, e.g. 500MB, 5GB, or unlimited.", valueName: "SIZE"))
    var retentionSize = "5GB"
    @Option(
        help: ArgumentHelp(
            "Websocket URL speaking the exchange's format instead of the exchange's own (e.g. the one `tape simulate` prints); with one exchange.",
            valueName: "WS_URL"))
    var endpoint: String?
    @Option(
        name: .customLong("rest-endpoint"),
        help: ArgumentHelp("REST base URL speaking the exchange's format instead of the exchange's own (with --endpoint).", valueName: "URL"))
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

    /// `--exchanges` as venue names, checked and without repeats.
    static func parseExchanges(_ text: String) throws -> [String] {
        var names: [String] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !part.isEmpty {
            guard Venues.adapter(named: part) != nil else {
                throw ValidationError("--exchanges: unknown exchange '\(part)'; Tape ingests \(Venues.names.joined(separator: ", ")).")
            }
            if !names.contains(part) { names.append(part) }
        }
        guard !names.isEmpty else { throw ValidationError("--exchanges is empty; name one or more of \(Venues.names.joined(separator: ", ")).") }
        return names
    }

    /// `--symbols` values as markets per exchange: `binance:BTCUSDT,ETHUSDT` names Binance's; a name
    /// without a prefix belongs to the exchange named before it in the same value, or to the only
    /// exchange. Exchanges left out get their defaults.
    static func parseSymbols(_ values: [String], exchanges: [String]) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for value in values {
            var current: String? = exchanges.count == 1 ? exchanges[0] : nil
            for part in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
                var symbol = part
                if let colon = part.firstIndex(of: ":") {
                    let name = part[..<colon].lowercased()
                    guard exchanges.contains(name) else {
                        let known = Venues.adapter(named: name) != nil
                        throw ValidationError(
                            known
                                ? "--symbols names \(name), which --exchanges does not include (\(exchanges.joined(separator: ","))); add it there."
                                : "--symbols: unknown exchange '\(name)' in '\(part)'; Tape ingests \(Venues.names.joined(separator: ", ")).")
                    }
                    current = name
                    symbol = String(part[part.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                }
                guard let exchange = current else {
                    throw ValidationError(
                        "--symbols: say which exchange '\(part)' belongs to, e.g. \(exchanges[0]):\(part) (several exchanges are ingested).")
                }
                guard !symbol.isEmpty, symbol.count <= 40 else { throw ValidationError("--symbols: '\(part)' is not a market symbol.") }
                if !(result[exchange] ?? []).contains(symbol) { result[exchange, default: []].append(symbol) }
            }
        }
        for (exchange, list) in result where list.contains(where: { $0.lowercased() == "all" }) {
            guard list.count == 1 else { throw ValidationError("--symbols: \(exchange) has 'all' and named markets; give one or the other.") }
            result[exchange] = ["all"]
        }
        return result
    }

    /// The venues to ingest, each with its markets.
    func venues() throws -> [TapeVenue] {
        let names = try Self.parseExchanges(exchanges)
        let chosen = try Self.parseSymbols(symbols, exchanges: names)
        return names.map { name in
            TapeVenue(exchange: name, symbols: chosen[name], websocket: offline ? nil : endpoint, rest: offline ? nil : restEndpoint)
        }
    }

    func validate() throws {
        if config != nil {
            _ = try withConfigFile()
            return
        }
        _ = try Self.parseChannels(channels)
        let chosen = try venues()
        if endpoint != nil || restEndpoint != nil, chosen.count > 1 {
            throw ValidationError("--endpoint and --rest-endpoint replace one exchange's address; give them with a single --exchanges value.")
        }
        guard (try? BrokerCommand.parseListen(listen)) != nil else { throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:9092; got \(listen).") }
        try security.validate()
        if brokers != nil, let flag = security.embeddedBrokerFlag {
            throw ValidationError(
                "\(flag) configures the embedded broker, which --brokers replaces; give that cluster's client settings with -X (e.g. -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512)."
            )
        }
        do { _ = try TapeServerConfiguration.parseListenAddress(http) } catch { throw ValidationError("--http: \(error.message)") }
        _ = try parseIntervals(intervals)
        guard rate > 0, rate <= 10_000_000 else { throw ValidationError("--rate must be positive, at most 10000000; got \(rate.flagText).") }
        do { _ = try KafkaConfiguration.parseProperties(properties) } catch let error as KafkaError { throw ValidationError(error.message) }
        guard candleEmitMilliseconds > 0 else { throw ValidationError("--candle-emit-ms must be positive.") }
        guard staleAfter.isFinite, staleAfter >= 1, staleAfter <= 86_400 else {
            throw ValidationError("--stale-after must be from 1 to 86400 seconds; got \(staleAfter).")
        }
        guard TapeRetention.parseDuration(retention) != nil else {
            throw ValidationError("--retention takes a duration such as 12h, 3d or forever; got '\(retention)'.")
        }
        guard let size = TapeRetention.parseSize(retentionSize), size < 0 || size >= 100_000_000 else {
            throw ValidationError("--retention-size takes a size of at least 100MB such as 500MB, 5GB or unlimited; got '\(retentionSize)'.")
        }
        if offline, endpoint != nil || restEndpoint != nil {
            throw ValidationError("--endpoint and --rest-endpoint point at another exchange; --offline uses the built-in simulator. Give one or the other.")
        }
        if offline {
            // The simulators refuse a market they do not know rather than invent a price for it.
            let named = chosen.flatMap(\.symbols).filter { $0.lowercased() != "all" }
            let unknown = MarketCatalogue.unknown(named)
            if !unknown.isEmpty { throw ValidationError(UnknownSimulatedMarket(symbols: unknown).description) }
        }
    }

    /// Where the embedded broker keeps its log, users (credentials.json) and ACLs (acls.json).
    var brokerDataDir: String { (dataDir as NSString).appendingPathComponent("kafka") }

    /// The security flags as the embedded broker's settings (users and ACLs in `brokerDataDir`).
    var brokerSecurity: BrokerSecurity {
        var broker = BrokerConfiguration()
        security.apply(to: &broker, dataDir: brokerDataDir)
        return broker.security
    }

    /// The flags as the runtime's configuration.
    func tapeConfiguration(interactive: Bool) throws -> TapeConfiguration {
        var c = TapeConfiguration()
        c.dataDirectory = dataDir
        (c.brokerHost, c.brokerPort) = try BrokerCommand.parseListen(listen)
        c.fsync = fsync.policy
        c.brokerSecurity = brokerSecurity
        c.externalBrokers = brokers
        c.kafkaProperties = try KafkaConfiguration.parseProperties(properties)
        (c.httpHost, c.httpPort) = try TapeServerConfiguration.parseListenAddress(http)
        c.token = token ?? ProcessInfo.processInfo.environment["TAPE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        c.staleAfterMilliseconds = Int64(staleAfter * 1000)
        c.venues = try venues()
        c.retentionMilliseconds = TapeRetention.parseDuration(retention) ?? c.retentionMilliseconds
        c.retentionBytes = TapeRetention.parseSize(retentionSize) ?? c.retentionBytes
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
            c.exchange = .live
        }
        return c
    }

    func run() async throws {
        guard config != nil else { return try await start() }
        try await withConfigFile().start()
    }

    /// This command with `--config`'s settings: the file's settings become flags before the
    /// command line's (which win), parsed and validated as if typed. A bad file is a usage error.
    func withConfigFile() throws -> UpCommand {
        guard let config else { return self }
        let typed = Self.typedArguments()
        let fromFile = try UpConfigFile.arguments(path: config, overriddenBy: typed)
        do { return try UpCommand.parse(fromFile + typed) } catch {
            throw ValidationError("--config \(config): \(UpCommand.message(for: error))")
        }
    }

    /// The command line after `up`, without `--config FILE`.
    static func typedArguments() -> [String] {
        let all = CommandLineWords.joiningNegativeValues(Array(CommandLine.arguments.dropFirst()), root: Tape.self)
        var rest = all.firstIndex(of: "up").map { Array(all[($0 + 1)...]) } ?? []
        if let i = rest.firstIndex(of: "--config") {
            rest.removeSubrange(i..<min(rest.count, i + 2))
        }
        rest.removeAll { $0.hasPrefix("--config=") }
        return rest
    }

    /// How clients connect to an embedded broker that requires authentication or TLS, for the
    /// banner; nil for a plaintext listener without authentication.
    static func connectHint(_ security: BrokerSecurity, bootstrap: String, usersDir: String) -> (protocolLine: String, lines: [String])? {
        guard security.protocolName != "PLAINTEXT" else { return nil }
        var line = "security.protocol=\(security.protocolName)"
        var lines: [String] = []
        var kcat = "kcat -b \(bootstrap) -X security.protocol=\(security.protocolName)"
        if let mechanism = [SaslMechanism.scramSha512, .scramSha256, .plain].first(where: { security.saslMechanisms.contains($0) }) {
            line += ", sasl.mechanisms=\(security.saslMechanisms.map(\.rawValue).joined(separator: " or "))"
            lines.append("add users with `tape users add --data-dir \(usersDir) NAME`")
            kcat += " -X sasl.mechanisms=\(mechanism.rawValue) -X sasl.username=NAME -X sasl.password=..."
        }
        if let tls = security.tls {
            kcat += " -X ssl.ca.location=CA.pem"
            if tls.clientCAPath != nil {
                line += ", client certificate required"
                kcat += " -X ssl.certificate.location=CERT.pem -X ssl.key.location=KEY.pem"
            }
        }
        if security.aclAuthorizer {
            lines.append("ACLs enforced: grant with `tape acls add --data-dir \(usersDir) ...`")
        }
        lines.append("e.g. \(kcat) -C -t tape.trades")
        return (line, lines)
    }

    /// Seconds `tape up` still waits after a second Ctrl-C before it exits regardless.
    static let forcedStopGrace = 3

    func start() async throws {
        // An embedded broker without authentication: not on a reachable address unless asked for.
        if brokers == nil, let host = try? BrokerCommand.parseListen(listen).0,
            let refusal = BrokerSecurity.insecureListenerRefusal(
                host: host, authenticatesClients: brokerSecurity.authenticatesClients, insecure: security.insecure,
                remedy: "require authentication with --sasl scram-sha-512 (users: `tape users add --data-dir \(brokerDataDir)`) or --tls-client-ca, ")
        {
            printError("Error: \(refusal)")
            throw ExitCode(64)
        }
        // What the machine must give (a usable --data-dir, a free --http port): one sentence, exit 1.
        try Preflight.directory(dataDir, flag: "--data-dir")
        if let (host, port) = try? TapeServerConfiguration.parseListenAddress(http) { try Preflight.listen(host: host, port: port, flag: "--http") }
        tuneMallocForOneProcess()
        // Signal handling first, before librdkafka, NIO and SQLite start threads of their own: a
        // signal must not land on a thread that never asked for it.
        let shutdown = ShutdownSignals()
        defer { shutdown.cancel() }
        // Another cluster (--brokers) that does not answer: one sentence within 5 s, not a pipeline that waits.
        if let brokers {
            try await KafkaOptions.requireCluster(KafkaConfiguration(bootstrapServers: brokers, properties: try KafkaConfiguration.parseProperties(properties)))
        }
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
        } catch let error as TapeConfigurationError {
            printError("Error: \(error.message)")
            throw ExitCode(64)
        }
        let trimTask = releaseFreedMemoryPeriodically()
        defer { trimTask.cancel() }
        let running = Task { try await tape.run() }
        let kafkaSecurity = brokers == nil ? Self.connectHint(brokerSecurity, bootstrap: tape.bootstrapServers, usersDir: brokerDataDir) : nil
        let banner = Task { [tape, configuration, offline] in
            guard let port = await tape.server.port() else { return }
            let settings = TapeServerConfiguration(host: configuration.httpHost, port: port, token: configuration.token)
            let url = settings.dashboardURL(port: port)
            let bootstrap = tape.bootstrapServers
            var text = "\nTape is up.\n  Dashboard:       \(url)\n"
            if let kafkaSecurity {
                text += "  Kafka bootstrap: \(bootstrap)   (\(kafkaSecurity.protocolLine))\n"
                for line in kafkaSecurity.lines { text += "                   \(line)\n" }
            } else {
                text += "  Kafka bootstrap: \(bootstrap)   (e.g. kcat -b \(bootstrap) -C -t tape.trades)\n"
            }
            for (i, venue) in configuration.venues.enumerated() {
                let source = offline ? "built-in simulator" : venue.websocket.map { "its format at \($0)" } ?? "live"
                let markets = venue.symbols == ["all"] ? "all markets" : venue.symbols.joined(separator: ",")
                text += (i == 0 ? (configuration.venues.count == 1 ? "  Exchange:        " : "  Exchanges:       ") : "                   ")
                text += "\(venue.exchange), \(source): \(markets)\n"
            }
            text += "  Health:          \(url)health\n"
            if configuration.externalBrokers == nil {
                let kept = TapeRetention(milliseconds: configuration.retentionMilliseconds, totalBytes: configuration.retentionBytes)
                text +=
                    "  Disk:            \(configuration.dataDirectory) keeps trades, books and dead letters \(kept.description) (--retention, --retention-size)\n"
            }
            text += "  Stop with Ctrl-C.\n\n"
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
                    // Cancelling does not reach a Kafka client blocked in C: with the embedded broker
                    // already gone, the processor's flush (and its revocation's) would wait out their
                    // 60 s timeouts. "Now" means now: exit if still running shortly after. Nothing
                    // acknowledged is lost — the broker's files are in the page cache, as after a crash,
                    // which its recovery handles.
                    Task.detached {
                        try? await Task.sleep(for: .seconds(Self.forcedStopGrace))
                        logger.error("tape up: still stopping \(Self.forcedStopGrace) s after the second signal; exiting")
                        Foundation.exit(130)
                    }
                }
            }
        }
        defer { signals.cancel() }
        do {
            try await running.value
        } catch {
            // One sentence (Tape.main); a listener that failed late is the dashboard's.
            if let errno = listenErrno(error) { throw TapeFailure(FailureText.socketSentence(errno: errno, address: http, flag: "--http")) }
            throw error
        }
        printError("tape up: stopped; data is in \(dataDir).")
    }
}
