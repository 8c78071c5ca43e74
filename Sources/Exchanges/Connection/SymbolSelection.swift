import MarketData

/// Checks requested symbols against a venue's market list.
public enum SymbolSelection {
    /// Resolves `requested` (native or normalized spellings, or the single word `all`) to native
    /// symbols: `all` is every trading market; an unknown symbol throws an error naming it.
    public static func resolve(_ requested: [String], markets: [ListedMarket], exchange: Exchange) throws(ExchangeError)
        -> [String]
    {
        if requested.count == 1, requested[0].lowercased() == "all" {
            let trading = markets.filter(\.isTrading).map(\.nativeSymbol).sorted()
            guard !trading.isEmpty else {
                throw ExchangeError(.unknownSymbol, "\(exchange) lists no market in trading state")
            }
            return trading
        }
        var byName: [String: ListedMarket] = [:]
        for market in markets {
            byName[market.nativeSymbol.uppercased()] = market
            byName[market.symbol.rawValue.uppercased()] = market
        }
        var resolved: [String] = []
        var unknown: [String] = []
        var notTrading: [String] = []
        for name in requested {
            // Any spelling of the pair: native ("BTCUSDT", "BTC/USD") or normalized ("BTC-USDT", "BTC_USDT").
            guard let market = byName[name.uppercased()] ?? byName[Symbol(normalizing: name).rawValue] else {
                unknown.append(name)
                continue
            }
            if !market.isTrading { notTrading.append(name) }
            if !resolved.contains(market.nativeSymbol) { resolved.append(market.nativeSymbol) }
        }
        if !unknown.isEmpty {
            throw ExchangeError(
                .unknownSymbol,
                "\(exchange) has no market \(unknown.joined(separator: ", ")) (it lists \(markets.count) markets; use names like \(markets.first?.nativeSymbol ?? "BTC_USDT"), or 'all')"
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
