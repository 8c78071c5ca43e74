/// What the shared connection loop needs from a venue, as data and pure functions: where to
/// connect, what to send, how to read frames and REST bodies. One conformance per venue folder.
public protocol ExchangeAdapter: Sendable {
    associatedtype Parser: ExchangeFrameParser

    var exchange: Exchange { get }
    /// Production endpoints (overridable with `--endpoint` / `--rest-endpoint`).
    var defaultEndpoints: ExchangeEndpoints { get }
    /// A fresh frame parser for one connection.
    func makeParser() -> Parser
    /// Messages to send after connecting, for native symbols.
    func subscribeMessages(symbols: [String]) -> [String]
    /// The application ping, if the venue wants one.
    var pingMessage: String? { get }
    /// Recommended ping period.
    var pingInterval: Duration { get }
    /// The most trades one REST backfill request returns.
    var backfillLimit: Int { get }
    /// Path and query of the REST recent-trades request for a native symbol.
    func backfillPath(symbol: String) -> String
    /// Parses a REST recent-trades body.
    func parseBackfill(_ body: [UInt8], symbol: String, receivedAt: Int64) throws(FrameParseError) -> [Trade]
    /// Path of the REST markets list.
    var marketsPath: String { get }
    /// Parses the REST markets list.
    func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [MarketListing]
}

/// Turns one websocket frame into an `ExchangeMessage`, appending its trades.
public protocol ExchangeFrameParser: Sendable {
    mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade]
    ) throws(FrameParseError) -> ExchangeMessage
}

/// One market a venue lists.
public struct MarketListing: Sendable, Hashable {
    /// The venue's symbol ("BTC_USDT").
    public var native: String
    public var symbol: Symbol
    /// Whether it trades now (Poloniex: state NORMAL).
    public var isTrading: Bool

    public init(native: String, symbol: Symbol, isTrading: Bool) {
        self.native = native
        self.symbol = symbol
        self.isTrading = isTrading
    }
}

/// Checks requested symbols against a venue's market list.
public enum SymbolSelection {
    /// Resolves `requested` (native or normalized spellings, or the single word `all`) to native
    /// symbols: `all` is every trading market; an unknown symbol throws an error naming it.
    public static func resolve(_ requested: [String], markets: [MarketListing], exchange: Exchange) throws(ExchangeError)
        -> [String]
    {
        if requested.count == 1, requested[0].lowercased() == "all" {
            let trading = markets.filter(\.isTrading).map(\.native).sorted()
            guard !trading.isEmpty else {
                throw ExchangeError(.unknownSymbol, "\(exchange) lists no market in trading state")
            }
            return trading
        }
        var byName: [String: MarketListing] = [:]
        for market in markets {
            byName[market.native.uppercased()] = market
            byName[market.symbol.rawValue.uppercased()] = market
        }
        var resolved: [String] = []
        var unknown: [String] = []
        var notTrading: [String] = []
        for name in requested {
            guard let market = byName[name.uppercased()] else {
                unknown.append(name)
                continue
            }
            if !market.isTrading { notTrading.append(name) }
            if !resolved.contains(market.native) { resolved.append(market.native) }
        }
        if !unknown.isEmpty {
            throw ExchangeError(
                .unknownSymbol,
                "\(exchange) has no market \(unknown.joined(separator: ", ")) (it lists \(markets.count) markets; use names like \(markets.first?.native ?? "BTC_USDT"), or 'all')"
            )
        }
        if !notTrading.isEmpty {
            throw ExchangeError(
                .unknownSymbol, "\(exchange) market \(notTrading.joined(separator: ", ")) is not trading now")
        }
        return resolved
    }
}

/// An error talking to an exchange, with what a user needs to act on it.
public struct ExchangeError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// A requested symbol is not listed (or not trading).
        public static let unknownSymbol = Code(name: "unknownSymbol")
        /// Could not connect, or the connection failed.
        public static let unreachable = Code(name: "unreachable")
        /// An HTTP status other than 200, or a body that did not parse.
        public static let badResponse = Code(name: "badResponse")
        /// A URL Tape cannot use.
        public static let badURL = Code(name: "badURL")
        /// A request took too long.
        public static let timeout = Code(name: "timeout")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
