import Foundation
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
    /// The embedded broker's authentication, encryption and ACLs (none by default). When it
    /// authenticates clients, the pipeline's own stages log in as `internalUser` (see
    /// `InternalClient`). Unused with `externalBrokers`.
    public var brokerSecurity = BrokerSecurity()
    /// A Kafka cluster to use instead of the embedded broker (bootstrap servers); nil = embedded.
    public var externalBrokers: String?
    /// Raw librdkafka properties for every client (`-X key=value`); they win over Tape's own.
    public var kafkaProperties: [String: String] = [:]
    /// How long the embedded broker keeps trades, books and dead letters (-1: forever).
    public var retentionMilliseconds: Int64 = 3 * 86_400_000
    /// At most this many bytes of them in all (-1: no limit), shared out per partition.
    public var retentionBytes: Int64 = 5_000_000_000
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

/// What the embedded broker keeps of Tape's topics: `retention` (ms, -1 forever) and at most
/// `totalBytes` (-1 no limit) over all their partitions.
public struct TapeRetention: Sendable, Hashable {
    public var milliseconds: Int64
    public var totalBytes: Int64

    public init(milliseconds: Int64, totalBytes: Int64) {
        self.milliseconds = milliseconds
        self.totalBytes = totalBytes
    }

    /// Topic configs for each of `topics`. The gap ledger is kept whole (it is small and its
    /// readers need every gap's latest state); the others get the time limit and an equal share of
    /// the byte limit per partition, in segments small enough (an eighth of either limit) that
    /// retention, which deletes whole closed segments, can keep to them.
    public func topicConfigs(_ topics: [(name: String, partitions: Int32)]) -> [String: [String: String]] {
        let capped = topics.filter { $0.name != "tape.gaps" }
        let partitions = Int64(max(1, capped.reduce(0) { $0 + Int($1.partitions) }))
        let perPartition = totalBytes < 0 ? -1 : max(1_048_576, totalBytes / partitions)
        var result: [String: [String: String]] = ["tape.gaps": ["retention.ms": "-1", "retention.bytes": "-1"]]
        for topic in capped {
            var configs = ["retention.ms": String(milliseconds), "retention.bytes": String(perPartition)]
            if perPartition > 0 { configs["segment.bytes"] = String(max(1_048_576, min(1 << 30, perPartition / 8))) }
            if milliseconds > 0 { configs["segment.ms"] = String(max(60_000, min(7 * 86_400_000, milliseconds / 8))) }
            result[topic.name] = configs
        }
        return result
    }

    /// "3 days, at most 5.0 GB" for `tape up`'s banner.
    public var description: String {
        let time = milliseconds < 0 ? "forever" : Self.duration(milliseconds)
        let size = totalBytes < 0 ? "no size limit" : "at most " + Self.bytes(totalBytes)
        return "\(time), \(size)"
    }

    static func duration(_ ms: Int64) -> String {
        if ms % 86_400_000 == 0 { return "\(ms / 86_400_000) day\(ms == 86_400_000 ? "" : "s")" }
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000) h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000) min" }
        return "\(ms / 1000) s"
    }

    static func bytes(_ n: Int64) -> String {
        if n >= 1_000_000_000 { return String(format: "%.1f GB", Double(n) / 1e9) }
        if n >= 1_000_000 { return String(format: "%.0f MB", Double(n) / 1e6) }
        return "\(n) bytes"
    }

    /// Parses "3d", "12h", "90m", "45s", "500ms" or "forever" as milliseconds (-1 for forever).
    public static func parseDuration(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "forever" || t == "-1" { return -1 }
        let units: [(String, Int64)] = [("ms", 1), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            guard let n = Int64(t.dropLast(suffix.count)), n > 0, n <= Int64.max / factor else { return nil }
            return n * factor
        }
        return nil
    }

    /// Parses "5GB", "500MB", "2GiB", "1000000" (bytes) or "unlimited" (-1).
    public static func parseSize(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        if t == "UNLIMITED" || t == "-1" { return -1 }
        let units: [(String, Int64)] = [
            ("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("TIB", 1 << 40), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
            ("TB", 1_000_000_000_000), ("B", 1),
        ]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            guard let n = Double(number), n.isFinite, n > 0, n * Double(factor) < 9e18 else { return nil }
            return Int64(n * Double(factor))
        }
        guard let n = Int64(t), n > 0 else { return nil }
        return n
    }
}
