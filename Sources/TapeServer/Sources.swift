import MarketData

/// One instrument the server knows about: `exchange:SYMBOL` in the API ("poloniex:BTC-USDT").
public struct MarketID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var exchange: Exchange
    public var symbol: Symbol

    public init(exchange: Exchange, symbol: Symbol) {
        self.exchange = exchange
        self.symbol = symbol
    }

    /// Parses `exchange:SYMBOL` (the exchange lowercased, the symbol normalized with
    /// `Symbol(normalizing:)`); nil when either part is missing or has odd characters.
    public init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let exchange = text[..<colon].lowercased()
        let symbol = text[text.index(after: colon)...]
        guard !exchange.isEmpty, exchange.count <= 32, !symbol.isEmpty, symbol.count <= 40 else { return nil }
        guard exchange.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" })
        else { return nil }
        guard
            symbol.unicodeScalars.allSatisfy({
                ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "/"
            })
        else { return nil }
        self.init(exchange: Exchange(String(exchange)), symbol: Symbol(normalizing: String(symbol)))
    }

    /// `exchange:SYMBOL`, the same text as a trade's Kafka key.
    public var description: String { exchange.name + ":" + symbol.rawValue }

    public static func < (a: MarketID, b: MarketID) -> Bool { a.description < b.description }
}

extension Trade {
    /// The market this trade belongs to.
    public var market: MarketID { MarketID(exchange: exchange, symbol: symbol) }
}

extension Candle {
    /// The market this candle belongs to.
    public var market: MarketID { MarketID(exchange: exchange, symbol: symbol) }
}

/// Candle history the REST API reads: the processing stage's SQLite `CandleStore` (`tape up`,
/// `tape serve --db`), the server's own `TopicCandleHistory` filled from `tape.candles` (`tape serve`),
/// or `InMemoryCandleHistory` (tests, embedding).
public protocol CandleHistory: Sendable {
    /// Candles of one market and interval whose window starts in `from ..< to` (ms since the
    /// epoch; nil = unbounded), the latest revision of each window, oldest first, at most
    /// `limit` — the most recent ones when there are more.
    func candles(market: MarketID, interval: CandleInterval, from: Int64?, to: Int64?, limit: Int) async throws -> [Candle]

    /// Every market that has candles, sorted.
    func markets() async throws -> [MarketID]
}

/// Live trades, in order per market: `tape.trades` in production (`KafkaTradeFeed`), `PushFeed` in
/// tests or when `tape up` hands trades over in-process. The server iterates it exactly once.
public protocol TradeFeed: AsyncSequence, Sendable where Element == Trade {}

/// Live candle updates (every revision), in order per key: `tape.candles` in production
/// (`KafkaCandleFeed`), `PushFeed` in tests. The server iterates it exactly once.
public protocol CandleFeed: AsyncSequence, Sendable where Element == Candle {}

/// Health of one exchange connection, as `/api/stats` and the dashboard show it.
/// Fields a source cannot know are nil (a standalone `tape serve` sees trades, not frames).
public struct ExchangeStats: Sendable, Hashable {
    public var exchange: String
    /// Whether the exchange socket is up (nil: unknown to this source).
    public var connected: Bool?
    /// Websocket frames per second over the last few seconds.
    public var framesPerSecond: Double?
    /// Trades per second over the last few seconds.
    public var tradesPerSecond: Double
    /// Trades seen since start.
    public var tradesTotal: Int64
    /// Frames that failed to parse since start.
    public var parseErrors: Int64?
    /// Reconnects since start.
    public var reconnects: Int64?
    /// Latency of the latest trade: exchange trade time → seen here, in ms.
    public var lagMilliseconds: Double?
    /// Exchange time (ms) of the latest trade.
    public var lastTradeTime: Int64?
    /// Whether the venue is the built-in simulator (nil: unknown to this source).
    public var simulated: Bool?
    /// Markets ingested from it (nil: unknown to this source).
    public var markets: Int?

    public init(
        exchange: String, connected: Bool? = nil, framesPerSecond: Double? = nil, tradesPerSecond: Double = 0,
        tradesTotal: Int64 = 0, parseErrors: Int64? = nil, reconnects: Int64? = nil, lagMilliseconds: Double? = nil,
        lastTradeTime: Int64? = nil, simulated: Bool? = nil, markets: Int? = nil
    ) {
        self.simulated = simulated
        self.markets = markets
        self.exchange = exchange
        self.connected = connected
        self.framesPerSecond = framesPerSecond
        self.tradesPerSecond = tradesPerSecond
        self.tradesTotal = tradesTotal
        self.parseErrors = parseErrors
        self.reconnects = reconnects
        self.lagMilliseconds = lagMilliseconds
        self.lastTradeTime = lastTradeTime
    }
}

/// Consumer lag of one topic as the server (or `tape up`) knows it.
public struct ConsumerLag: Sendable, Hashable {
    public var group: String
    public var topic: String
    /// Messages behind the high watermark, summed over partitions.
    public var messages: Int64

    public init(group: String, topic: String, messages: Int64) {
        self.group = group
        self.topic = topic
        self.messages = messages
    }
}

/// A snapshot for `GET /api/stats`.
public struct PipelineStats: Sendable, Hashable {
    public var exchanges: [ExchangeStats]
    public var consumerLag: [ConsumerLag]

    public init(exchanges: [ExchangeStats] = [], consumerLag: [ConsumerLag] = []) {
        self.exchanges = exchanges
        self.consumerLag = consumerLag
    }
}

/// Where `/api/stats` gets rates, lag and reconnects. `tape up` passes the ingest stage's counters
/// (exchange connection, frames, reconnects) with what the server sees; `tape serve` alone uses
/// `FeedStats` (trade rates and lag seen on `tape.trades`).
public protocol StatsSource: Sendable {
    func stats() async -> PipelineStats
}
