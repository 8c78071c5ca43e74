import ArgumentParser
import Foundation
import KafkaClient
import Logging
import Processing
import TapeServer

/// `tape serve`: the REST API, WebSocket feed, dashboard and /metrics over Kafka topics.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the dashboard, REST API, WebSocket feed and Prometheus metrics from tape.trades, tape.candles and tape.gaps.",
        discussion: """
            Without --db, the server builds its own candle history: it reads tape.candles from its \
            beginning into <data-dir>/serve-candles.sqlite (the highest revision of each window wins), \
            then follows it live; restarted, it keeps that history and resumes where it stopped. It \
            needs no file of the processor's, so it may run on another machine. With --db, history \
            comes from the SQLite file `tape process --db` writes (same machine), and tape.candles is \
            followed from its end for live updates only. tape.gaps is read from its beginning (a missing topic is waited for). \
            /health judges what this server sees: Kafka answering its readers, the age of the last \
            trade on tape.trades (--stale-after) and candles keeping up with trades.
            """
    )

    @OptionGroup var kafka: KafkaOptions
    @Option(help: ArgumentHelp("Address to serve HTTP on. Anything but loopback prints a warning.", valueName: "HOST:PORT"))
    var http: String = "127.0.0.1:8080"
    @Option(
        help: ArgumentHelp(
            "Candle history written by `tape process --db` (SQLite) on this machine. Without it, the server keeps its own history from tape.candles under --data-dir.",
            valueName: "FILE"))
    var db: String?
    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp(
            "Where the server keeps its own candle history (serve-candles.sqlite) when --db is not given (default: ./tape-data).", valueName: "DIR"))
    var dataDir: String?
    @Option(help: "Bearer token required on /api, /ws and /metrics (default: $TAPE_TOKEN, else none).")
    var token: String?
    @Option(name: .customLong("trades-topic"), help: "Topic of trades.") var tradesTopic = "tape.trades"
    @Option(name: .customLong("candles-topic"), help: "Topic of candles.") var candlesTopic = "tape.candles"
    @Option(name: .customLong("gaps-topic"), help: "Topic of gap records.") var gapsTopic = "tape.gaps"
    @Option(name: .customLong("books-topic"), help: "Topic of order book records (served on /api/book and the book channel of /ws).")
    var booksTopic = "tape.books"
    @Option(
        name: .customLong("book-replay"),
        help: "Read --books-topic from SECONDS ago to rebuild every book (at least one periodic snapshot interval of tape ingest; its default is 300).")
    var bookReplay: Double = 600
    @Option(
        name: .customLong("stale-after"),
        help: ArgumentHelp(
            "/health is degraded after this many seconds without a trade on the trades topic (and without a candle while trades arrive).", valueName: "SECONDS")
    )
    var staleAfter: Double = 60

    func validate() throws {
        do { _ = try TapeServerConfiguration.parseListenAddress(http) } catch { throw ValidationError("--http: \(error.message)") }
        if let token, token.isEmpty { throw ValidationError("--token is empty; give a value or leave it out.") }
        guard bookReplay >= 0, bookReplay <= 86_400 * 365 else { throw ValidationError("--book-replay must be between 0 and 31536000 seconds.") }
        if db != nil, dataDir != nil {
            throw ValidationError("--db and --data-dir exclude each other: --db reads a processor's candle file, --data-dir is where the server keeps its own.")
        }
        if let dataDir, dataDir.isEmpty { throw ValidationError("--data-dir is empty; give a directory or leave it out.") }
        guard staleAfter.isFinite, staleAfter >= 1, staleAfter <= 86_400 else {
            throw ValidationError("--stale-after must be from 1 to 86400 seconds; got \(staleAfter).")
        }
    }

    func run() async throws {
        let (host, port) = try TapeServerConfiguration.parseListenAddress(http)
        var configuration = TapeServerConfiguration(host: host, port: port)
        configuration.token = token ?? ProcessInfo.processInfo.environment["TAPE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        configuration.health = HealthPolicy(staleAfterMilliseconds: Int64(staleAfter * 1000))
        // A busy port is found before anything else starts (one sentence, exit 1).
        try Preflight.listen(host: host, port: port, flag: "--http")
        var logger = Logger(label: "tape.serve")
        logger.logLevel = kafka.verbose ? .debug : .info
        let history: any CandleHistory
        var ownHistory: TopicCandleHistory?
        if let db {
            try Preflight.fileParent(db, flag: "--db")
            if !FileManager.default.fileExists(atPath: db) {
                printError("note: \(db) does not exist yet; it is created empty and fills as `tape process --db \(db)` writes candles.")
            }
            do { history = try CandleStore(path: db) } catch let error as CandleStoreError { throw error } catch {
                throw TapeFailure("--db \(db) cannot be opened as a candle store: \(FailureText.sentence(for: error))")
            }
        } else {
            try Preflight.directory(dataDir ?? "./tape-data", flag: "--data-dir")
            let path = (dataDir ?? "./tape-data") + "/serve-candles.sqlite"
            do {
                let own = try TopicCandleHistory(path: path, topic: candlesTopic, logger: logger)
                ownHistory = own
                history = own
            } catch {
                throw TapeFailure("Cannot open the server's candle history \(path): \(FailureText.sentence(for: error))")
            }
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
            reader: try KafkaTopicReader(
                kafka: kafkaConfiguration, topic: candlesTopic, start: ownHistory?.start ?? .end, logger: kafka.logger("tape.serve.candles")
            ) { [ownHistory] lag in
                stats.setConsumerLag(lag)
                ownHistory?.noteLag(lag)
            },
            recordingInto: ownHistory)
        let gaps = KafkaGapFeed(
            reader: try KafkaTopicReader(
                kafka: kafkaConfiguration, topic: gapsTopic, start: .beginning, logger: kafka.logger("tape.serve.gaps"), quietWhileMissing: true))
        let books = KafkaBookFeed(
            reader: try KafkaTopicReader(
                kafka: kafkaConfiguration, topic: booksTopic,
                start: .since(Int64(Date().timeIntervalSince1970 * 1000) - Int64(bookReplay * 1000)),
                logger: kafka.logger("tape.serve.books"), quietWhileMissing: true))
        let app = buildTapeServer(
            configuration: configuration, trades: trades, candles: candles, history: history, gaps: gaps, books: books, state: state,
            logger: logger
        ) { boundPort in
            let line = "Tape dashboard: \(settings.dashboardURL(port: boundPort))  (Kafka: \(kafkaConfiguration.bootstrapServers))\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        do {
            try await app.runService()
        } catch {
            if let errno = listenErrno(error) {
                throw TapeFailure(FailureText.socketSentence(errno: errno, address: http, flag: "--http"))
            }
            throw error
        }
    }
}
