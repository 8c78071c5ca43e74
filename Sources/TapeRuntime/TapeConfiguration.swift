import KafkaClient
import Logging
import MarketData
import TapeBroker

/// Everything `buildTape` needs to run the whole pipeline in one process: `tape up`'s flags as one
/// value. The defaults are `tape up`'s.
public struct TapeConfiguration: Sendable {
    /// Where the embedded broker's log (`kafka/`) and the candle history (`candles.sqlite`) live.
    public var dataDirectory = "./tape-data"
    /// The embedded broker's listen address (port 0: any free port). Unused with `externalBrokers`.
    public var brokerHost = "127.0.0.1"
    public var brokerPort = 9092
    /// The embedded broker's fsync policy.
    public var fsync: FsyncPolicy = .interval(milliseconds: 1000)
    /// A Kafka cluster to use instead of the embedded broker (bootstrap servers); nil = embedded.
    public var externalBrokers: String?
    /// Raw librdkafka properties for every client (`-X key=value`); they win over Tape's own.
    public var kafkaProperties: [String: String] = [:]
    /// The dashboard, API and metrics address (port 0: any free port).
    public var httpHost = "127.0.0.1"
    public var httpPort = 8080
    /// Bearer token for the API and WebSocket; nil = none.
    public var token: String?
    /// `/health` is degraded after this long without a trade while the exchange is connected.
    public var staleAfterMilliseconds: Int64 = 60_000
    /// The exchanges to ingest, each with its markets (one ingest stage per venue).
    public var venues: [TapeVenue] = [TapeVenue(exchange: "poloniex")]
    /// Where trades come from: the exchanges themselves, or one built-in simulator per venue.
    public var exchange = ExchangeSource.live
    /// What ingestion collects: trades and order books (`tape.books`) by default.
    public var channels: Set<Gap.Channel> = [.trades, .book]
    /// Candle intervals.
    public var intervals: [CandleInterval] = [.init("1m")!, .init("5m")!, .init("1h")!]
    /// Candle updates per key at most once per this many ms.
    public var candleEmitMilliseconds: Int64 = 1_000
    /// Where the processor's operator lines go (group membership, partitions taken over); nil: its log.
    public var processorConsole: Logger?
    /// The terminal status line (on a terminal) or a status log line every 30 s (otherwise).
    public var statusLine = StatusLine.log

    public init() {}

    /// Where trades come from.
    public enum ExchangeSource: Sendable {
        /// The venues themselves (or servers speaking their format at each venue's `websocket`/`rest`).
        case live
        /// One built-in, deterministic simulator per venue.
        case simulated(SimulatedExchange)

        public var isSimulated: Bool {
            if case .simulated = self { return true }
            return false
        }
    }

    /// Settings of the built-in simulator (`tape up --offline`).
    public struct SimulatedExchange: Sendable {
        /// Trades per second over all markets of all venues (split evenly between the venues).
        public var rate: Double = 50
        /// Append every simulated trade (Trade JSON) to this file (tests).
        public var tradesLog: String?
        /// How often the simulator sends what it generated; nil = its default (1 ms).
        public var tickMilliseconds: Int?
        /// Chance per simulated order that a burst starts; nil = the simulator's default.
        public var burstProbability: Double?

        public init(rate: Double = 50) { self.rate = rate }
    }

    /// How the status reporter shows progress.
    public enum StatusLine: Sendable {
        /// One line rewritten in place every second (a terminal).
        case terminal
        /// A log line every 30 s.
        case log
        /// Nothing (tests).
        case off
    }
}

/// One exchange `tape up` ingests: its markets and, optionally, where to reach it.
public struct TapeVenue: Sendable, Hashable {
    /// The venue's name: poloniex, binance, coinbase or kraken.
    public var exchange: String
    /// Symbols in the venue's spelling or Tape's (`BTC-USDT`), or `["all"]`.
    public var symbols: [String]
    /// A websocket URL speaking the venue's format instead of the venue's own (live only).
    public var websocket: String?
    /// A REST base URL speaking the venue's format instead of the venue's own (live only).
    public var rest: String?

    public init(exchange: String, symbols: [String]? = nil, websocket: String? = nil, rest: String? = nil) {
        self.exchange = exchange.lowercased()
        self.symbols = symbols ?? Self.defaultSymbols(exchange: exchange)
        self.websocket = websocket
        self.rest = rest
    }

    /// The markets `tape up` ingests from a venue when none are named: the same six coins
    /// everywhere, in the venue's spelling (Coinbase and Kraken quote them in USD).
    public static func defaultSymbols(exchange: String) -> [String] {
        let coins = ["BTC", "ETH", "SOL", "XRP", "DOGE", "LTC"]
        switch exchange.lowercased() {
        case "binance": return coins.map { $0 + "USDT" }
        case "coinbase": return coins.map { $0 + "-USD" }
        case "kraken": return coins.map { $0 + "/USD" }
        default: return coins.map { $0 + "_USDT" }
        }
    }
}

/// A configuration `buildTape` cannot run, as one sentence.
public struct TapeConfigurationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
