import MarketData

/// Turns one venue's websocket frames into trades; one value per connection (it may cache).
public protocol ExchangeFrameParser: Sendable {
    /// Parses one text frame; trades are appended to `trades` stamped with `receivedAt` (µs).
    /// On error nothing is appended.
    mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage

    /// Parses one text frame of a connection that may carry book channels too: trades go to
    /// `trades`, book messages to `books` (then the answer is `.books(count:)`). On error nothing
    /// is appended to either. Default: the trades-only parse (venues without books in Tape).
    mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage
}

extension ExchangeFrameParser {
    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        try parse(frame, receivedAt: receivedAt, into: &trades)
    }
}

/// A market as a venue lists it, reduced to what the connection loop checks symbols against.
public struct ListedMarket: Sendable, Hashable {
    /// The venue's spelling ("BTC_USDT").
    public var nativeSymbol: String
    /// Tape's normalized symbol.
    public var symbol: Symbol
    /// True when the market trades now.
    public var isTrading: Bool
    /// The venue's spelling in REST requests, when it differs from the websocket one (Kraken:
    /// "XBTUSD" on REST, "BTC/USD" on its v2 websocket). Defaults to `nativeSymbol`.
    public var restSymbol: String
    /// Decimals of the market's prices, where the venue lists them (Kraken `pair_decimals`: its
    /// book checksum formats prices to this many decimals). Nil when unknown.
    public var priceDecimals: Int?
    /// Decimals of the market's quantities, where the venue lists them (Kraken `lot_decimals`).
    public var quantityDecimals: Int?

    public init(
        nativeSymbol: String, symbol: Symbol, isTrading: Bool, restSymbol: String? = nil, priceDecimals: Int? = nil,
        quantityDecimals: Int? = nil
    ) {
        self.nativeSymbol = nativeSymbol
        self.symbol = symbol
        self.isTrading = isTrading
        self.restSymbol = restSymbol ?? nativeSymbol
        self.priceDecimals = priceDecimals
        self.quantityDecimals = quantityDecimals
    }

    /// A market known only by its native name, normalized with `Symbol(normalizing:)`.
    public init(nativeSymbol: String) {
        self.init(nativeSymbol: nativeSymbol, symbol: Symbol(normalizing: nativeSymbol), isTrading: true)
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
    /// True when liveness is kept with websocket ping frames instead (Binance): the loop sends a
    /// ping frame every `pingInterval`, and any control frame counts as traffic. Default false.
    static var protocolPing: Bool { get }
    /// How often to send `applicationPing` (or to expect traffic).
    static var pingInterval: Duration { get }
    /// Most symbols one connection may subscribe to (Binance: 1024 streams). Default: no limit.
    static var maxSymbolsPerConnection: Int { get }
    /// Requests that subscribe to trades of these native symbols.
    static func tradeSubscribeMessages(nativeSymbols: [String]) -> [String]
    /// A fresh parser for one connection.
    static func makeFrameParser() -> FrameParser
    /// A fresh parser for one connection that knows the subscribed markets (venues whose native
    /// symbols have no separator, like Binance's "BTCUSDT", need the list to split base and quote).
    /// Default: `makeFrameParser()`.
    static func makeFrameParser(markets: [ListedMarket]) -> FrameParser
    /// The venue's spelling of a normalized symbol.
    static func nativeSymbol(_ symbol: Symbol) -> String
    /// Path and query of the recent-trades REST request.
    static func recentTradesPath(nativeSymbol: String, limit: Int) -> String
    /// Most trades one recent-trades request returns.
    static var recentTradesLimit: Int { get }
    /// Parses a recent-trades REST body.
    static func parseRecentTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    /// Path and query of the recent-trades request for `market` (which may spell itself
    /// differently on REST), or nil when the venue has no such request (then nothing is
    /// backfilled). Default: `recentTradesPath(nativeSymbol:limit:)`.
    static func recentTradesPath(market: ListedMarket, limit: Int) -> String?
    /// Parses a recent-trades REST body of `market`. Default: `parseRecentTrades(_:nativeSymbol:receivedAt:)`.
    static func parseRecentTrades(_ body: [UInt8], market: ListedMarket, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    /// True when the venue numbers each market's trades 1, 2, 3 … with no holes, so a jump in ids
    /// means the stream skipped trades (checked against each venue's docs and captures). Default false.
    static var tradeIdsAreConsecutive: Bool { get }
    /// Least time between two REST requests of one connection's repairs and reconciliation, within
    /// the venue's published public rate limits. Default 1 s.
    static var restRequestSpacing: Duration { get }
    /// Path of the markets list.
    static var marketsPath: String { get }
    /// Parses the markets list.
    static func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket]

    // MARK: Order books (README "Order books"); a venue without them keeps the defaults.

    /// The per-market book synchronizer implementing the venue's documented rules.
    associatedtype BookSync: BookSynchronizer = NoBookSynchronizer
    /// True when Tape collects this venue's order books. Default false.
    static var supportsBooks: Bool { get }
    /// Requests that subscribe to the book channel of these native symbols (sent after the trade
    /// subscriptions, on the same connection). Default none.
    static func bookSubscribeMessages(nativeSymbols: [String]) -> [String]
    /// Requests that make the venue send a fresh snapshot of one market's book (unsubscribe then
    /// subscribe again); empty when the venue needs a REST snapshot instead. Default none.
    static func bookResubscribeMessages(nativeSymbol: String) -> [String]
    /// Path and query of the REST depth snapshot of `market`, for venues whose stream has no
    /// snapshot (Binance). Default nil.
    static func bookSnapshotPath(market: ListedMarket) -> String?
    /// Subscription streams the book channel adds per symbol, for venues that count streams
    /// against `maxSymbolsPerConnection` (Binance: one `<symbol>@depth@100ms` beside the trade
    /// stream). Default 0.
    static var bookStreamsPerSymbol: Int { get }
    /// Least time between two REST depth snapshot requests of one connection (the venue's
    /// request weight limits). Default `restRequestSpacing`.
    static var bookSnapshotSpacing: Duration { get }
    /// Parses a REST depth snapshot body into a `.snapshot` frame with its `sequence`.
    static func parseBookSnapshot(_ body: [UInt8], market: ListedMarket, receivedAt: Int64) throws(FrameParseError) -> BookFrame
}

extension ExchangeAdapter {
    public static var protocolPing: Bool { false }

    public static var maxSymbolsPerConnection: Int { .max }

    public static var tradeIdsAreConsecutive: Bool { false }

    public static var restRequestSpacing: Duration { .seconds(1) }

    public static func makeFrameParser(markets: [ListedMarket]) -> FrameParser { makeFrameParser() }

    public static var supportsBooks: Bool { false }

    public static func bookSubscribeMessages(nativeSymbols: [String]) -> [String] { [] }

    public static func bookResubscribeMessages(nativeSymbol: String) -> [String] { [] }

    public static func bookSnapshotPath(market: ListedMarket) -> String? { nil }

    public static var bookSnapshotSpacing: Duration { restRequestSpacing }

    public static var bookStreamsPerSymbol: Int { 0 }

    public static func parseBookSnapshot(_ body: [UInt8], market: ListedMarket, receivedAt: Int64) throws(FrameParseError)
        -> BookFrame
    {
        throw FrameParseError(.unexpectedMessage, "\(exchange.name) has no REST book snapshot in Tape", offset: 0)
    }

    public static func recentTradesPath(market: ListedMarket, limit: Int) -> String? {
        recentTradesPath(nativeSymbol: market.nativeSymbol, limit: limit)
    }

    public static func parseRecentTrades(_ body: [UInt8], market: ListedMarket, receivedAt: Int64)
        throws(FrameParseError) -> [Trade]
    {
        try parseRecentTrades(body, nativeSymbol: market.nativeSymbol, receivedAt: receivedAt)
    }
}

extension PoloniexFrameParser: ExchangeFrameParser {}

extension Poloniex: ExchangeAdapter {
    public static var applicationPing: String? { pingMessage }

    /// `id` increases by one per trade of a market (the capture in Tests/ExchangesTests/Fixtures:
    /// BTC_USDT 60184114, 60184115, 60184116, 60184117 in one frame).
    public static var tradeIdsAreConsecutive: Bool { true }

    /// Public REST: 200 requests/s per IP for market data; Tape stays far below.
    public static var restRequestSpacing: Duration { .milliseconds(200) }

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

    // MARK: Order books: `book_lv2` (see PoloniexBookFrames.swift)

    public typealias BookSync = PoloniexBookSynchronizer

    public static var supportsBooks: Bool { true }

    public static func bookSubscribeMessages(nativeSymbols: [String]) -> [String] {
        [subscribeMessage(channel: bookChannel, symbols: nativeSymbols)]
    }

    /// Unsubscribe then subscribe: Poloniex answers a subscription with a fresh snapshot.
    public static func bookResubscribeMessages(nativeSymbol: String) -> [String] {
        [unsubscribeMessage(channel: bookChannel, symbols: [nativeSymbol]), subscribeMessage(channel: bookChannel, symbols: [nativeSymbol])]
    }
}

extension ExchangeFrameParser {
    /// Parses one frame given as text.
    public mutating func parse(
        _ frame: String, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        try parse(Array(frame.utf8), receivedAt: receivedAt, into: &trades)
    }

    /// Parses one frame given as bytes.
    public mutating func parse(
        _ frame: [UInt8], receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage {
        let result = frame.withUnsafeBufferPointer { buffer in
            Result { () throws(FrameParseError) -> ExchangeMessage in
                try parse(buffer, receivedAt: receivedAt, into: &trades)
            }
        }
        return try result.get()
    }

    /// Convenience for tests and tools: the message and the trades of one frame.
    public mutating func parse(_ frame: String, receivedAt: Int64) throws(FrameParseError) -> (
        message: ExchangeMessage, trades: [Trade]
    ) {
        var trades: [Trade] = []
        let message = try parse(frame, receivedAt: receivedAt, into: &trades)
        return (message, trades)
    }

    /// Parses one frame given as text into trades and book messages (tests and tools).
    public mutating func parse(
        _ frame: String, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        var copy = frame
        let result = copy.withUTF8 { buffer in
            Result { () throws(FrameParseError) -> ExchangeMessage in
                try parse(buffer, receivedAt: receivedAt, into: &trades, books: &books)
            }
        }
        return try result.get()
    }
}

/// Runs `body`, which appends one frame's trades to `trades`; if it throws, whatever it appended is
/// removed again: a frame that fails anywhere appends nothing.
func appendingAllOrNothing(
    to trades: inout [Trade], _ body: (inout [Trade]) throws(FrameParseError) -> ExchangeMessage
) throws(FrameParseError) -> ExchangeMessage {
    let countBefore = trades.count
    do {
        return try body(&trades)
    } catch {
        trades.removeSubrange(countBefore...)
        throw error
    }
}

/// `appendingAllOrNothing(to:_:)` for a frame that may carry trades and book messages: if `body`
/// throws, whatever it appended to either array is removed again.
func appendingAllOrNothing(
    to trades: inout [Trade], and books: inout [BookFrame],
    _ body: (inout [Trade], inout [BookFrame]) throws(FrameParseError) -> ExchangeMessage
) throws(FrameParseError) -> ExchangeMessage {
    let booksBefore = books.count
    do {
        return try appendingAllOrNothing(to: &trades) { trades throws(FrameParseError) in try body(&trades, &books) }
    } catch {
        books.removeSubrange(booksBefore...)
        throw error
    }
}

/// Runs a scanner-based body over a REST body's bytes, turning scanner errors into `FrameParseError`.
func parseBody<R>(_ body: [UInt8], _ read: (inout JSONScanner) throws(JSONError) -> R) throws(FrameParseError) -> R {
    let result = body.withUnsafeBufferPointer { buffer in
        Result { () throws(FrameParseError) -> R in
            var s = JSONScanner(buffer)
            do throws(JSONError) {
                let value = try read(&s)
                guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the value", at: s.position) }
                return value
            } catch {
                throw FrameParseError(error)
            }
        }
    }
    return try result.get()
}

/// price × quantity, exact and normalized, or a parse error naming the trade.
func exactQuote(_ price: ExactDecimal, _ quantity: ExactDecimal, at offset: Int) throws(JSONError) -> ExactDecimal {
    guard price > .zero else { throw JSONError(.badValue, "trade price must be positive", at: offset) }
    guard quantity > .zero else { throw JSONError(.badValue, "trade quantity must be positive", at: offset) }
    do {
        return try price.multiplied(by: quantity).normalized()
    } catch {
        throw JSONError(.badValue, "price × quantity overflows", at: offset)
    }
}

/// A JSON string or number token read as text (trade ids: "123" or 123 both keep their digits).
func readIdText(_ s: inout JSONScanner) throws(JSONError) -> String {
    let start = s.position
    if try s.peek() == UInt8(ascii: "\"") {
        let value = try s.readStringValue()
        guard !value.isEmpty, value.utf8.count <= 64 else { throw JSONError(.badValue, "bad trade id", at: start) }
        return value
    }
    let range = try s.readNumber()
    let text = UnsafeBufferPointer(rebasing: s.bytes[range])
    guard text.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
        throw JSONError(.badValue, "trade id must be a non-negative integer", at: start)
    }
    return String(decoding: text, as: UTF8.self)
}

/// `time` (ms) if it is a valid trade time (`Trade.validTimes`: 1970 through 9999); otherwise the
/// trade is malformed (`.outOfRange`, an `invalidTrade` frame: dead-lettered, never published).
/// Every parser checks its trade times with it, so nothing downstream (lag, windows) sees a time
/// whose arithmetic could overflow.
@inline(__always)
func validTradeTime(_ time: Int64, at offset: Int) throws(JSONError) -> Int64 {
    guard Trade.validTimes.contains(time) else { throw JSONError(.outOfRange, Trade.invalidTimeReason(time), at: offset) }
    return time
}
