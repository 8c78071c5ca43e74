import ArgumentParser
import ExchangeSimulator
import Foundation

/// `tape simulate`: a look-alike of one venue's market on loopback (websocket + REST), seeded.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Serve a deterministic (seeded) simulated exchange: a venue's websocket and REST wire format, with fault knobs.",
        discussion: """
            Prints "<websocket URL> <REST URL>" on the first line of stdout, then serves until Ctrl-C.
            Point `tape ingest --endpoint <websocket URL> --rest-endpoint <REST URL>` at it.
            """
    )

    @Option(help: "Exchange whose wire format to speak: poloniex, binance, coinbase or kraken.") var exchange: String = "poloniex"
    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).") var listen: String = "127.0.0.1:0"
    @Option(help: "Trades per second over all markets.") var rate: Double = 50
    @Option(
        help:
            "Markets: a comma-separated list of symbols (BTC_USDT,ETH_USDT or BTC-USDT,...; BASE_QUOTE of a known asset and USDT, USDC, USD, EUR, BTC or ETH) or a count of markets (default: the 8 default markets)."
    )
    var symbols: String = "8"
    @Option(help: "Seed of the market (same seed, same trades).") var seed: UInt64 = 1
    @Option(name: .customLong("drop-every"), help: "Drop each websocket connection SECONDS after it opened (fault injection).")
    var dropEvery: Double?
    @Option(name: .customLong("malformed-every"), help: "Break every Nth trades frame sent to each client (fault injection; its trades are then only on REST).")
    var malformedEvery: Int?
    @Option(
        name: .customLong("skip-every"),
        help: "Leave every Nth trade out of the websocket push; it stays on REST (fault injection: a venue that silently skips).")
    var skipEvery: Int?
    @Option(name: .customLong("silence-timeout"), help: "Drop a client that sent nothing for SECONDS (Poloniex: 30; Coinbase expects nothing and ignores it).")
    var silenceTimeout: Double = 30
    @Option(name: .customLong("max-trades"), help: "Stop generating after N trades (keeps serving).") var maxTrades: Int?
    @Option(
        name: .customLong("burst-probability"),
        help: "Chance per order that a burst (a rate and volatility spike, as in a liquidation cascade) starts; 0 for a steady rate.")
    var burstProbability: Double = 0.002
    @Option(name: .customLong("burst-length"), help: "Orders per burst, on average (each burst is 1 to twice this).") var burstLength: Int = 200
    @Option(name: .customLong("burst-rate"), help: "The order rate inside a burst, as a multiple of --rate.") var burstRate: Double = 20
    @Option(name: .customLong("trades-log"), help: "Append every generated trade (Tape Trade JSON) to FILE.") var tradesLog: String?
    @Option(name: .customLong("malformed-log"), help: "Append every malformed frame sent to FILE.") var malformedLog: String?
    @Option(name: .customLong("book-depth"), help: "Levels per side of each simulated order book (0: no books).") var bookDepth: Int = 20
    @Option(name: .customLong("skip-book-update-every"), help: "Leave out every Nth book update sent to each client (fault: a sequence break).")
    var skipBookUpdateEvery: Int?
    @Option(name: .customLong("corrupt-checksum-every"), help: "Send a wrong checksum with every Nth book update (fault; Kraken).")
    var corruptChecksumEvery: Int?
    @Option(name: .customLong("swap-book-updates-every"), help: "Send every Nth book update after the one that follows it (fault: out of order).")
    var swapBookUpdatesEvery: Int?
    @Option(name: .customLong("final-books"), help: "With --max-trades: once reached, write every market's final book to FILE (tape.books snapshot records).")
    var finalBooks: String?
    @Option(name: .customLong("tls-cert"), help: "Serve wss:// and https:// with this PEM certificate chain (needs --tls-key).")
    var tlsCertificate: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?

    func validate() throws {
        guard SimulateCommand.venues.contains(exchange.lowercased()) else {
            throw ValidationError(
                "Unknown exchange '\(exchange)'; the simulator speaks: \(SimulateCommand.venues.joined(separator: ", ")).")
        }
        guard rate > 0, rate <= 10_000_000 else { throw ValidationError("--rate must be positive, at most 10000000; got \(rate.flagText).") }
        for (flag, value) in [("silence-timeout", silenceTimeout as Double?), ("drop-every", dropEvery)] {
            if let value, !(value.isFinite && value <= 86_400) { throw ValidationError("--\(flag) must be at most 86400 seconds; got \(value.flagText).") }
        }
        guard silenceTimeout > 0 else { throw ValidationError("--silence-timeout must be positive; got \(silenceTimeout.flagText).") }
        if let maxTrades, maxTrades < 0 { throw ValidationError("--max-trades must be 0 or more; got \(maxTrades).") }
        guard (0...1).contains(burstProbability) else {
            throw ValidationError("--burst-probability must be from 0 to 1; got \(burstProbability.flagText).")
        }
        guard (1...1_000_000).contains(burstLength) else { throw ValidationError("--burst-length must be from 1 to 1000000; got \(burstLength).") }
        guard burstRate >= 1, burstRate <= 10_000 else { throw ValidationError("--burst-rate must be from 1 to 10000; got \(burstRate.flagText).") }
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together.") }
        if let count = Int(symbols), !(1...10_000).contains(count) { throw ValidationError("--symbols as a count must be from 1 to 10000; got \(count).") }
        guard HostPort(listen) != nil else { throw ValidationError("--listen expects HOST:PORT, got '\(listen)'.") }
        if let dropEvery, dropEvery <= 0 { throw ValidationError("--drop-every must be positive; got \(dropEvery.flagText).") }
        if let malformedEvery, malformedEvery <= 0 { throw ValidationError("--malformed-every must be positive; got \(malformedEvery).") }
        if let skipEvery, skipEvery <= 0 { throw ValidationError("--skip-every must be positive; got \(skipEvery).") }
        guard bookDepth >= 0, bookDepth <= 1000 else { throw ValidationError("--book-depth must be from 0 to 1000; got \(bookDepth).") }
        for (flag, value) in [
            ("skip-book-update-every", skipBookUpdateEvery), ("corrupt-checksum-every", corruptChecksumEvery),
            ("swap-book-updates-every", swapBookUpdatesEvery),
        ] {
            if let value, value <= 1 { throw ValidationError("--\(flag) must be at least 2; got \(value).") }
        }
        if Int(symbols) == nil {
            let unknown = MarketCatalogue.unknown(symbols.split(separator: ",").map(String.init))
            if !unknown.isEmpty { throw ValidationError(UnknownSimulatedMarket(symbols: unknown).description) }
        }
        if finalBooks != nil && maxTrades == nil { throw ValidationError("--final-books needs --max-trades (the books are final once it is reached).") }
    }

    static let venues = ["poloniex", "binance", "coinbase", "kraken"]

    func run() async throws {
        switch exchange.lowercased() {
        case "binance": try await serve(BinanceVenue.self)
        case "coinbase": try await serve(CoinbaseVenue.self)
        case "kraken": try await serve(KrakenVenue.self)
        default: try await serve(PoloniexVenue.self)
        }
    }

    func serve<Venue: SimulatedVenue>(_ venue: Venue.Type) async throws {
        let address = HostPort(listen)!
        var configuration = SimulatorConfiguration()
        configuration.host = address.host
        configuration.port = address.port
        configuration.rate = rate
        if let count = Int(symbols) {
            configuration.instruments = SimulatorConfiguration.instruments(count: max(1, count))
        } else {
            // Instruments are named BASE_QUOTE whatever the venue spells them (validate() refused unknown ones).
            configuration.instruments = try SimulatorConfiguration.instruments(symbols: symbols.split(separator: ",").map(String.init))
        }
        configuration.seed = seed
        configuration.dropEvery = dropEvery.map { .milliseconds(Int64($0 * 1000)) }
        configuration.malformedEvery = malformedEvery
        configuration.skipPushEvery = skipEvery
        configuration.silenceTimeout = .milliseconds(Int64(silenceTimeout * 1000))
        configuration.maxTrades = maxTrades
        configuration.burstProbability = burstProbability
        configuration.burstLength = burstLength
        configuration.burstRateMultiplier = burstRate
        configuration.tradesLog = tradesLog
        configuration.malformedLog = malformedLog
        configuration.bookDepth = bookDepth
        configuration.skipBookUpdateEvery = skipBookUpdateEvery
        configuration.corruptChecksumEvery = corruptChecksumEvery
        configuration.swapBookUpdatesEvery = swapBookUpdatesEvery
        configuration.finalBooksLog = finalBooks
        configuration.tlsCertificateFile = tlsCertificate
        configuration.tlsKeyFile = tlsKey
        let simulator: VenueSimulator<Venue>
        do {
            simulator = try await VenueSimulator<Venue>.build(configuration)
        } catch {
            if let tlsCertificate, let tlsKey, listenErrno(error) == nil {
                throw TapeFailure(
                    "Cannot load --tls-cert \(tlsCertificate) and --tls-key \(tlsKey) (\(error)): give a PEM certificate chain and its unencrypted private key."
                )
            }
            guard let errno = listenErrno(error) else { throw error }
            throw TapeFailure(FailureText.socketSentence(errno: errno, address: listen, flag: "--listen") + " Port 0 picks a free one.")
        }
        let out = OutputBuffer()
        out.write("\(simulator.websocketURL) \(simulator.restURL)\n")
        out.flush()
        printError(
            "simulating \(Venue.exchange): \(simulator.symbols.count) markets, \(rate) trades/s, "
                + (burstProbability > 0
                    ? "bursts at \(burstRate.flagText)x the rate (chance \(burstProbability.flagText) per order, ~\(burstLength) orders each), "
                    : "no bursts, ")
                + "seed \(seed); websocket \(simulator.websocketURL), REST \(simulator.restURL)"
        )
        let interactive = isatty(STDERR_FILENO) == 1
        try await runUntilSignalled {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await simulator.run() }
                group.addTask {
                    var last = 0
                    while true {
                        try await Task.sleep(for: .seconds(interactive ? 1 : 10))
                        let generated = simulator.tradesGenerated
                        let bursts = simulator.bursts
                        let line =
                            "trades \(generated) (+\(generated - last)), bursts \(bursts.started) (\(bursts.trades) trades), "
                            + "clients \(simulator.clientCount), dropped \(simulator.connectionsDropped), malformed sent \(simulator.malformedFramesSent)"
                        last = generated
                        if interactive {
                            FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
                        } else {
                            printError("simulate: \(line)")
                        }
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }
}

/// "host:port" or "[v6]:port".
struct HostPort {
    var host: String
    var port: Int
    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }
}
