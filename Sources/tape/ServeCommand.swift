import ArgumentParser
import Foundation
import KafkaClient
import Logging
import TapeServer

/// `tape serve`: the REST API, WebSocket feed, dashboard and /metrics over Kafka topics.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the dashboard, REST API, WebSocket feed and Prometheus metrics from tape.trades and tape.candles.",
        discussion: """
            History comes from what the server reads of tape.candles (from its beginning, kept in \
            memory) until the processing stage's SQLite candle store is wired in; --db is accepted \
            for that and not used yet.
            """
    )

    @OptionGroup var kafka: KafkaOptions
    @Option(help: ArgumentHelp("Address to serve HTTP on. Anything but loopback prints a warning.", valueName: "HOST:PORT"))
    var http: String = "127.0.0.1:8080"
    @Option(help: ArgumentHelp("Candle database of `tape process` (not used yet: history is read from tape.candles).", valueName: "FILE"))
    var db: String?
    @Option(help: "Bearer token required on /api, /ws and /metrics (default: $TAPE_TOKEN, else none).")
    var token: String?
    @Option(name: .customLong("trades-topic"), help: "Topic of trades.") var tradesTopic = "tape.trades"
    @Option(name: .customLong("candles-topic"), help: "Topic of candles.") var candlesTopic = "tape.candles"

    func validate() throws {
        do { _ = try TapeServerConfiguration.parseListenAddress(http) } catch { throw ValidationError("--http: \(error.message)") }
        if let token, token.isEmpty { throw ValidationError("--token is empty; give a value or leave it out.") }
    }

    func run() async throws {
        let (host, port) = try TapeServerConfiguration.parseListenAddress(http)
        var configuration = TapeServerConfiguration(host: host, port: port)
        configuration.token = token ?? ProcessInfo.processInfo.environment["TAPE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        var logger = Logger(label: "tape.serve")
        logger.logLevel = kafka.verbose ? .debug : .info
        if let db {
            printError("note: --db \(db) is not used yet; candle history comes from \(candlesTopic), kept in memory.")
        }
        let state = TapeServerState(configuration: configuration)
        let settings = configuration
        let kafkaConfiguration = try kafka.configuration()
        let stats = state.feedStats
        let trades = KafkaTradeFeed(
            reader: try KafkaTopicReader(kafka: kafkaConfiguration, topic: tradesTopic, start: .end, logger: kafka.logger("tape.serve.trades")) {
                stats.setConsumerLag($0)
            })
        let candles = KafkaCandleFeed(
            reader: try KafkaTopicReader(kafka: kafkaConfiguration, topic: candlesTopic, start: .beginning, logger: kafka.logger("tape.serve.candles")) {
                stats.setConsumerLag($0)
            })
        let app = buildTapeServer(
            configuration: configuration, trades: trades, candles: candles, history: InMemoryCandleHistory(), state: state,
            logger: logger
        ) { boundPort in
            let line = "Tape dashboard: \(settings.dashboardURL(port: boundPort))  (Kafka: \(kafkaConfiguration.bootstrapServers))\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        do {
            try await app.runService()
        } catch {
            guard let sentence = configuration.explainStartupError(error) else { throw error }
            printError("Error: " + sentence)
            throw ExitCode.failure
        }
    }
}
