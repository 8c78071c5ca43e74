/// Turns one venue's websocket frames into trades; one value per connection (it may cache).
public protocol ExchangeFrameParser: Sendable {
    /// Parses one text frame; trades are appended to `trades` stamped with `receivedAt` (µs).
    /// On error nothing is appended.
    mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage
}

/// A market as a venue lists it, reduced to what the connection loop checks symbols against.
public struct ListedMarket: Sendable, Hashable {
    /// The venue's spelling ("BTC_USDT").
    public var nativeSymbol: String
    /// Tape's normalized symbol.
    public var symbol: Symbol
    /// True when the market trades now.
    public var isTrading: Bool

    public init(nativeSymbol: String, symbol: Symbol, isTrading: Bool) {
        self.nativeSymbol = nativeSymbol
        self.symbol = symbol
        self.isTrading = isTrading
    }
}

/// Everything the shared connection loop needs to know about one venue, as data and pure
/// functions: endpoints, subscribe and ping messages, the frame parser, and REST backfill.
/// Adding a venue means one folder with one conforming type.
public protocol ExchangeAdapter: Sendable {
    associatedtype FrameParser: ExchangeFrameParser

    static var exchange: Exchange { get }
    static var endpoints: ExchangeEndpoints { get }
    /// Application-level ping, if the venue wants one.
    static var applicationPing: String? { get }
    /// How often to send `applicationPing` (or to expect traffic).
    static var pingInterval: Duration { get }
    /// Requests that subscribe to trades of these native symbols.
    static func tradeSubscribeMessages(nativeSymbols: [String]) -> [String]
    /// A fresh parser for one connection.
    static func makeFrameParser() -> FrameParser
    /// The venue's spelling of a normalized symbol.
    static func nativeSymbol(_ symbol: Symbol) -> String
    /// Path and query of the recent-trades REST request.
    static func recentTradesPath(nativeSymbol: String, limit: Int) -> String
    /// Most trades one recent-trades request returns.
    static var recentTradesLimit: Int { get }
    /// Parses a recent-trades REST body.
    static func parseRecentTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    /// Path of the markets list.
    static var marketsPath: String { get }
    /// Parses the markets list.
    static func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket]
}

extension PoloniexFrameParser: ExchangeFrameParser {}

extension Poloniex: ExchangeAdapter {
    public static var applicationPing: String? { pingMessage }

    public static func tradeSubscribeMessages(nativeSymbols: [String]) -> [String] {
        [subscribeMessage(channel: tradesChannel, symbols: nativeSymbols)]
    }

    public static func makeFrameParser() -> PoloniexFrameParser { PoloniexFrameParser() }

    public static func recentTradesPath(nativeSymbol: String, limit: Int) -> String {
        restTradesPath(symbol: nativeSymbol, limit: limit)
    }

    public static var recentTradesLimit: Int { restTradesLimit }

    public static func parseRecentTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64)
        throws(FrameParseError) -> [Trade]
    {
        try PoloniexREST.parseTrades(body, nativeSymbol: nativeSymbol, receivedAt: receivedAt)
    }

    public static var marketsPath: String { restMarketsPath }

    public static func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket] {
        try PoloniexREST.parseMarkets(body).map {
            ListedMarket(nativeSymbol: $0.symbol, symbol: $0.normalizedSymbol, isTrading: $0.isTrading)
        }
    }
}
