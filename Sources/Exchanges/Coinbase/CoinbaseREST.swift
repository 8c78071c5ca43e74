import MarketData

/// Parsers for Coinbase Advanced Trade public REST bodies.
public enum CoinbaseREST {
    /// Parses `GET /api/v3/brokerage/market/products/{id}/ticker`: `{"trades":[...],"best_bid":...,
    /// "best_ask":...}`, trades in the websocket's shape (same `side` meaning), order kept.
    public static func parseTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    {
        let product = CachedSymbol(native: nativeSymbol, symbol: Symbol(normalizing: nativeSymbol))
        return try parseBody(body) { (s: inout JSONScanner) throws(JSONError) -> [Trade] in
            var parser = CoinbaseFrameParser()
            var trades: [Trade] = []
            var sawTrades = false
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                guard s.token(key, equals: "trades") else {
                    try s.skipValue()
                    continue
                }
                sawTrades = true
                if try s.consumeNull() { continue }
                try s.beginArray()
                var firstTrade = true
                while try s.nextElement(first: &firstTrade) {
                    let trade = try parser.parseTrade(&s, receivedAt: receivedAt, restProduct: product)
                    guard trade.nativeSymbol == nativeSymbol else {
                        throw JSONError(.badValue, "trade of \(trade.nativeSymbol) in the \(nativeSymbol) answer", at: s.position)
                    }
                    trades.append(trade)
                }
            }
            guard sawTrades else { throw JSONError(.badValue, "body has no trades", at: 0) }
            return trades
        }
    }

    public static func parseTrades(_ body: String, nativeSymbol: String, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    {
        try parseTrades(Array(body.utf8), nativeSymbol: nativeSymbol, receivedAt: receivedAt)
    }

    /// Parses `GET /api/v3/brokerage/market/products`: `product_id` is the native symbol (already
    /// `BASE-QUOTE`); trading when `status` is "online" and `trading_disabled` is not true.
    public static func parseProducts(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket] {
        try parseBody(body) { (s: inout JSONScanner) throws(JSONError) -> [ListedMarket] in
            var markets: [ListedMarket] = []
            var sawProducts = false
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                guard s.token(key, equals: "products") else {
                    try s.skipValue()
                    continue
                }
                sawProducts = true
                try s.beginArray()
                var firstProduct = true
                while try s.nextElement(first: &firstProduct) {
                    let start = s.position
                    var id = ""
                    var status = ""
                    var disabled = false
                    try s.beginObject()
                    var firstField = true
                    while let field = try s.nextKey(first: &firstField) {
                        if s.token(field, equals: "product_id") {
                            id = try s.readStringValue()
                        } else if s.token(field, equals: "status") {
                            status = try s.readStringValue()
                        } else if s.token(field, equals: "trading_disabled") {
                            disabled = try s.consumeNull() ? false : try s.readBool()
                        } else {
                            try s.skipValue()
                        }
                    }
                    guard !id.isEmpty else { throw JSONError(.badValue, "product has no product_id", at: start) }
                    markets.append(
                        ListedMarket(nativeSymbol: id, symbol: Symbol(normalizing: id), isTrading: status == "online" && !disabled))
                }
            }
            guard sawProducts else { throw JSONError(.badValue, "body has no products", at: 0) }
            return markets
        }
    }
}
