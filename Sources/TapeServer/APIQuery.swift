import MarketData

/// Query parameters of the REST API, parsed and checked (pure: tested without a server).
/// Every error names the parameter and says why.
public enum APIQuery {
    /// `GET /api/trades?symbol=&limit=`.
    public struct Trades: Sendable, Hashable {
        /// nil: the newest trades across all markets.
        public var market: MarketID?
        public var limit: Int
    }

    /// `GET /api/candles?symbol=&interval=&from=&to=&limit=`.
    public struct Candles: Sendable, Hashable {
        public var market: MarketID
        public var interval: CandleInterval
        /// Window start ≥ from (ms since the epoch).
        public var from: Int64?
        /// Window start < to (ms since the epoch).
        public var to: Int64?
        public var limit: Int
    }

    /// `GET /api/gaps?symbol=&open=&limit=`.
    public struct Gaps: Sendable, Hashable {
        /// nil: every exchange (no symbol, or a bare SYMBOL).
        public var exchange: Exchange?
        /// nil: every market.
        public var symbol: Symbol?
        /// Only gaps not repaired.
        public var openOnly: Bool
        public var limit: Int
    }

    /// `GET /api/book?symbol=&depth=`.
    public struct Book: Sendable, Hashable {
        public var market: MarketID
        /// Levels per side, best first.
        public var depth: Int
    }

    /// Limits of the API (documented in docs/openapi.yaml).
    public static let defaultTradeLimit = 100
    public static let maxTradeLimit = 1000
    public static let defaultCandleLimit = 500
    public static let maxCandleLimit = 5000
    public static let defaultGapLimit = 100
    public static let maxGapLimit = 1000
    public static let defaultBookDepth = 20
    public static let maxBookDepth = 5000
    /// `token` is accepted everywhere (bearer token for browsers' WebSockets).
    static let alwaysAllowed: Set<String> = ["token"]

    public static func trades(_ query: [(key: String, value: String)]) throws(APIError) -> Trades {
        try rejectUnknown(query, allowed: ["symbol", "limit"])
        let market = try value("symbol", in: query).map { text throws(APIError) in try parseMarket(text) }
        let limit = try parseLimit(value("limit", in: query), default: defaultTradeLimit, max: maxTradeLimit)
        return Trades(market: market, limit: limit)
    }

    public static func candles(_ query: [(key: String, value: String)]) throws(APIError) -> Candles {
        try rejectUnknown(query, allowed: ["symbol", "interval", "from", "to", "limit"])
        guard let symbolText = try value("symbol", in: query) else {
            throw .badParameter("symbol", "symbol is required: exchange:SYMBOL, e.g. poloniex:BTC-USDT (GET /api/markets lists them)")
        }
        let market = try parseMarket(symbolText)
        var interval = CandleInterval.oneMinute
        if let text = try value("interval", in: query) {
            guard let parsed = CandleInterval(text) else {
                throw .badParameter("interval", "interval \"\(text)\" is not a window length like 1m, 5m, 1h (1s to 1d)")
            }
            interval = parsed
        }
        let from = try parseTime("from", value("from", in: query))
        let to = try parseTime("to", value("to", in: query))
        if let from, let to, to <= from {
            throw .badParameter("to", "to (\(to)) must be greater than from (\(from))")
        }
        let limit = try parseLimit(value("limit", in: query), default: defaultCandleLimit, max: maxCandleLimit)
        return Candles(market: market, interval: interval, from: from, to: to, limit: limit)
    }

    public static func gaps(_ query: [(key: String, value: String)]) throws(APIError) -> Gaps {
        try rejectUnknown(query, allowed: ["symbol", "open", "limit"])
        var exchange: Exchange?
        var symbol: Symbol?
        if let text = try value("symbol", in: query) {
            if text.contains(":") {
                let market = try parseMarket(text)
                (exchange, symbol) = (market.exchange, market.symbol)
            } else {
                // A bare SYMBOL: the same characters a market's symbol part may have, any exchange.
                guard let market = MarketID("any:" + text) else {
                    throw .badParameter("symbol", "symbol \"\(text)\" is not exchange:SYMBOL or SYMBOL, e.g. poloniex:BTC-USDT or BTC-USDT")
                }
                symbol = market.symbol
            }
        }
        var openOnly = false
        if let text = try value("open", in: query) {
            switch text {
            case "true": openOnly = true
            case "false": openOnly = false
            default: throw .badParameter("open", "open \"\(text)\" must be true (unrepaired gaps only) or false")
            }
        }
        let limit = try parseLimit(value("limit", in: query), default: defaultGapLimit, max: maxGapLimit)
        return Gaps(exchange: exchange, symbol: symbol, openOnly: openOnly, limit: limit)
    }

    public static func book(_ query: [(key: String, value: String)]) throws(APIError) -> Book {
        try rejectUnknown(query, allowed: ["symbol", "depth"])
        guard let symbolText = try value("symbol", in: query) else {
            throw .badParameter("symbol", "symbol is required: exchange:SYMBOL, e.g. poloniex:BTC-USDT")
        }
        let market = try parseMarket(symbolText)
        var depth = defaultBookDepth
        if let text = try value("depth", in: query) {
            guard let n = Int(text), n >= 1, n <= maxBookDepth else {
                throw .badParameter("depth", "depth \"\(text)\" must be a whole number from 1 to \(maxBookDepth)")
            }
            depth = n
        }
        return Book(market: market, depth: depth)
    }

    /// For routes without parameters: anything but `token` is an error.
    public static func none(_ query: [(key: String, value: String)]) throws(APIError) {
        try rejectUnknown(query, allowed: [])
    }

    static func rejectUnknown(_ query: [(key: String, value: String)], allowed: Set<String>) throws(APIError) {
        for (key, _) in query where !allowed.contains(key) && !alwaysAllowed.contains(key) {
            let known = allowed.sorted().joined(separator: ", ")
            throw .badParameter(key, "unknown parameter \"\(key)\"; " + (known.isEmpty ? "this route takes none" : "this route takes \(known)"))
        }
    }

    static func value(_ name: String, in query: [(key: String, value: String)]) throws(APIError) -> String? {
        let values = query.filter { $0.key == name }.map(\.value)
        if values.count > 1 { throw .badParameter(name, "\(name) is given \(values.count) times; give it once") }
        guard let value = values.first else { return nil }
        if value.isEmpty { throw .badParameter(name, "\(name) is empty; leave it out or give a value") }
        return value
    }

    static func parseMarket(_ text: String) throws(APIError) -> MarketID {
        guard let market = MarketID(text) else {
            throw .badParameter("symbol", "symbol \"\(text)\" is not exchange:SYMBOL, e.g. poloniex:BTC-USDT")
        }
        return market
    }

    static func parseLimit(_ text: String?, default defaultValue: Int, max: Int) throws(APIError) -> Int {
        guard let text else { return defaultValue }
        guard let n = Int(text), n >= 1, n <= max else {
            throw .badParameter("limit", "limit \"\(text)\" must be a whole number from 1 to \(max)")
        }
        return n
    }

    static func parseTime(_ name: String, _ text: String?) throws(APIError) -> Int64? {
        guard let text else { return nil }
        guard let n = Int64(text), n >= 0 else {
            throw .badParameter(name, "\(name) \"\(text)\" must be a time in milliseconds since the Unix epoch (a whole number ≥ 0)")
        }
        return n
    }
}
