import MarketData

/// Parsers for Binance REST bodies (same scanner as the websocket parser).
public enum BinanceREST {
    /// Parses `GET /api/v3/trades`: `[{"id":28457,"price":"4.00000100","qty":"12.00000000",
    /// "quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]`,
    /// oldest first as Binance returns them (order kept). `isBuyerMaker:true` → takerSide sell;
    /// `quoteQuantity` is price × qty computed exactly (`quoteQty` is read but not trusted).
    public static func parseTrades(_ body: [UInt8], market: ListedMarket, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    {
        try parseBody(body) { (s: inout JSONScanner) throws(JSONError) -> [Trade] in
            var trades: [Trade] = []
            try s.beginArray()
            var first = true
            while try s.nextElement(first: &first) {
                trades.append(try parseTrade(&s, market: market, receivedAt: receivedAt))
            }
            return trades
        }
    }

    public static func parseTrades(_ body: String, market: ListedMarket, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    {
        try parseTrades(Array(body.utf8), market: market, receivedAt: receivedAt)
    }

    static func parseTrade(_ s: inout JSONScanner, market: ListedMarket, receivedAt: Int64) throws(JSONError) -> Trade {
        let start = s.position
        var id: String?
        var price: ExactDecimal?
        var quantity: ExactDecimal?
        var quoteQuantity: ExactDecimal?
        var time: Int64?
        var buyerIsMaker: Bool?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "id") {
                id = try readIdText(&s)
            } else if s.token(key, equals: "price") {
                price = try s.readDecimal()
            } else if s.token(key, equals: "qty") {
                quantity = try s.readDecimal()
            } else if s.token(key, equals: "quoteQty") {
                quoteQuantity = try s.readDecimal()
            } else if s.token(key, equals: "time") {
                let at = s.position
                time = try validTradeTime(try s.readInt64(), at: at)
            } else if s.token(key, equals: "isBuyerMaker") {
                buyerIsMaker = try s.readBool()
            } else {
                try s.skipValue()
            }
        }
        func missing(_ field: String) -> JSONError { JSONError(.badValue, "trade has no \(field)", at: start) }
        guard let id else { throw missing("id") }
        guard let price else { throw missing("price") }
        guard let quantity else { throw missing("qty") }
        guard let time else { throw missing("time") }
        guard let buyerIsMaker else { throw missing("isBuyerMaker") }
        let quote = try exactQuote(price, quantity, at: start)
        // quoteQty may be rounded to the quote asset's precision: the exact product is kept, never it.
        _ = quoteQuantity
        return Trade(
            exchange: Binance.exchange, symbol: market.symbol, nativeSymbol: market.nativeSymbol, tradeId: id, price: price,
            quantity: quantity, quoteQuantity: quote, side: buyerIsMaker ? .sell : .buy, time: time, receivedAt: receivedAt)
    }

    /// Parses `GET /api/v3/depth`: `{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],
    /// "asks":[[...]]}` into a `.snapshot` frame whose `sequence` is `lastUpdateId`. The body has no
    /// time: the frame's `time` is the receive time (ms). Every level is checked; a bad one fails
    /// the body as `.invalidBook`.
    public static func parseDepth(_ body: [UInt8], market: ListedMarket, receivedAt: Int64) throws(FrameParseError)
        -> BookFrame
    {
        let result = body.withUnsafeBufferPointer { buffer in
            Result { () throws(FrameParseError) -> BookFrame in
                var s = JSONScanner(buffer)
                var lastUpdateId: Int64?
                var bids: [BookLevel]?
                var asks: [BookLevel]?
                do throws(JSONError) {
                    try s.beginObject()
                    var first = true
                    while let key = try s.nextKey(first: &first) {
                        if s.token(key, equals: "lastUpdateId") {
                            lastUpdateId = try s.readInt64()
                        } else if s.token(key, equals: "bids") {
                            bids = try s.readBookLevels()
                        } else if s.token(key, equals: "asks") {
                            asks = try s.readBookLevels()
                        } else {
                            try s.skipValue()
                        }
                    }
                    guard s.isAtEnd() else { throw JSONError(.unexpectedByte, "data after the depth object", at: s.position) }
                } catch {
                    throw BinanceFrameParser.bookError(error)
                }
                guard let lastUpdateId, lastUpdateId >= 0 else {
                    throw FrameParseError(.invalidBook, "depth has no valid lastUpdateId", offset: 0)
                }
                guard let bids, let asks else { throw FrameParseError(.invalidBook, "depth has no bids or asks", offset: 0) }
                return BookFrame(
                    nativeSymbol: market.nativeSymbol, kind: .snapshot, bids: bids, asks: asks, time: receivedAt / 1000,
                    receivedAt: receivedAt, sequence: lastUpdateId)
            }
        }
        return try result.get()
    }

    public static func parseDepth(_ body: String, market: ListedMarket, receivedAt: Int64) throws(FrameParseError)
        -> BookFrame
    {
        try parseDepth(Array(body.utf8), market: market, receivedAt: receivedAt)
    }

    /// Parses `GET /api/v3/exchangeInfo` into listed markets: native `symbol`, normalized
    /// `baseAsset-quoteAsset`, trading when `status` is "TRADING".
    public static func parseExchangeInfo(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket] {
        try parseBody(body) { (s: inout JSONScanner) throws(JSONError) -> [ListedMarket] in
            var markets: [ListedMarket] = []
            var sawSymbols = false
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                guard s.token(key, equals: "symbols") else {
                    try s.skipValue()
                    continue
                }
                sawSymbols = true
                try s.beginArray()
                var firstMarket = true
                while try s.nextElement(first: &firstMarket) {
                    let start = s.position
                    var symbol = ""
                    var status = ""
                    var base = ""
                    var quote = ""
                    try s.beginObject()
                    var firstField = true
                    while let field = try s.nextKey(first: &firstField) {
                        if s.token(field, equals: "symbol") {
                            symbol = try s.readStringValue()
                        } else if s.token(field, equals: "status") {
                            status = try s.readStringValue()
                        } else if s.token(field, equals: "baseAsset") {
                            base = try s.readStringValue()
                        } else if s.token(field, equals: "quoteAsset") {
                            quote = try s.readStringValue()
                        } else {
                            try s.skipValue()
                        }
                    }
                    guard !symbol.isEmpty else { throw JSONError(.badValue, "market has no symbol", at: start) }
                    markets.append(
                        ListedMarket(
                            nativeSymbol: symbol, symbol: Binance.normalizedSymbol(symbol, base: base, quote: quote),
                            isTrading: status == "TRADING"))
                }
            }
            guard sawSymbols else { throw JSONError(.badValue, "exchangeInfo has no symbols", at: 0) }
            return markets
        }
    }
}
