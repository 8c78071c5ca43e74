import MarketData

/// Binance spot: endpoints, streams, messages and timing, as data.
///
/// Facts (Binance spot API docs, "WebSocket Streams" and "Market data endpoints", as stored in the
/// docs corpus; the trade payload shape is also what binance-sdk's generated `TradeResponse` model
/// lists — e, E, s, t, p, q, T, m, M):
/// - socket `wss://stream.binance.com:9443/ws`; subscribe with
///   `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}` (stream names lowercase), acked
///   with `{"result":null,"id":1}`; errors come back as `{"code":2,"msg":"...","id":1}` (or with
///   an `error` object).
/// - a `trade` event is `{"e":"trade","E":eventTime,"s":"BNBBTC","t":tradeId,"p":"0.001",
///   "q":"100","T":tradeTime,"m":true,"M":true}`: `T` is the trade time (`E` is the push time);
///   `m` is "is the buyer the market maker?", so `m:true` means the taker SOLD (takerSide sell),
///   `m:false` the taker bought.
/// - "The WebSocket server will send a ping frame every 20 seconds. If the WebSocket server does
///   not receive a pong frame back from the connection within a minute the connection will be
///   disconnected" ("General WebSocket Streams information"): liveness is at the protocol level —
///   `WebSocketClient` answers every ping with its payload; Tape also sends its own ping frames, and
///   counts every control frame as traffic. No application ping. A connection lasts at most 24 h,
///   and a `serverShutdown` event (parsed as ignored) precedes a shutdown: the loop reconnects.
/// - REST `GET /api/v3/trades?symbol=BTCUSDT&limit=1000` (oldest first; `id, price, qty, quoteQty,
///   time, isBuyerMaker`) fills gaps; `GET /api/v3/exchangeInfo` lists markets with `baseAsset` and
///   `quoteAsset` — needed because "BTCUSDT" has no separator to split on.
public enum Binance: Sendable {
    public static let exchange = Exchange("binance")

    /// The production endpoints.
    public static let endpoints = ExchangeEndpoints(
        websocket: "wss://stream.binance.com:9443/ws", rest: "https://api.binance.com")

    /// Ping frames every 20 s keep the connection: send ours at the same pace.
    public static let pingInterval: Duration = .seconds(20)

    /// Most streams one SUBSCRIBE request carries: all a connection may have (1024), so one
    /// request is sent — Binance also limits a client to 5 incoming messages a second.
    public static let streamsPerRequest = 1_024

    /// Most streams one connection may listen to.
    public static let maxStreamsPerConnection = 1_024

    /// Most trades one REST trades request returns.
    public static let restTradesLimit = 1_000

    /// The stream name of a native symbol's trades: "btcusdt@trade".
    public static func tradeStream(_ nativeSymbol: String) -> String {
        nativeSymbol.lowercased() + "@trade"
    }

    /// SUBSCRIBE requests for the trade streams of `symbols`, `streamsPerRequest` streams each,
    /// ids counting from 1.
    public static func subscribeMessages(symbols: [String]) -> [String] {
        var messages: [String] = []
        var start = 0
        while start < symbols.count {
            let chunk = symbols[start..<min(symbols.count, start + streamsPerRequest)]
            var out: [UInt8] = []
            JSONWriter.appendRaw("{\"method\":\"SUBSCRIBE\",\"params\":[", to: &out)
            for (i, symbol) in chunk.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(tradeStream(symbol), to: &out)
            }
            JSONWriter.appendRaw("],\"id\":", to: &out)
            JSONWriter.appendInt(Int64(messages.count + 1), to: &out)
            out.append(UInt8(ascii: "}"))
            messages.append(String(decoding: out, as: UTF8.self))
            start += streamsPerRequest
        }
        return messages
    }

    // MARK: Order books

    /// The event type of diff depth events.
    public static let depthEventType = "depthUpdate"

    /// Most price levels per side a REST depth snapshot returns (`limit` 5000, request weight 250).
    public static let restDepthLimit = 5_000

    /// The stream name of a native symbol's diff depth at 100 ms: "btcusdt@depth@100ms".
    public static func depthStream(_ nativeSymbol: String) -> String {
        nativeSymbol.lowercased() + "@depth@100ms"
    }

    /// SUBSCRIBE requests for the diff depth streams of `symbols`, `streamsPerRequest` streams each,
    /// ids counting from `firstId` (kept apart from the trade requests' ids, which count from 1).
    public static func depthSubscribeMessages(symbols: [String], firstId: Int64 = 1_000_001) -> [String] {
        var messages: [String] = []
        var start = 0
        while start < symbols.count {
            let chunk = symbols[start..<min(symbols.count, start + streamsPerRequest)]
            var out: [UInt8] = []
            JSONWriter.appendRaw("{\"method\":\"SUBSCRIBE\",\"params\":[", to: &out)
            for (i, symbol) in chunk.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(depthStream(symbol), to: &out)
            }
            JSONWriter.appendRaw("],\"id\":", to: &out)
            JSONWriter.appendInt(firstId &+ Int64(messages.count), to: &out)
            out.append(UInt8(ascii: "}"))
            messages.append(String(decoding: out, as: UTF8.self))
            start += streamsPerRequest
        }
        return messages
    }

    /// Levels per side Tape asks the REST depth snapshot for: 1,000 weighs 50 of the 6,000 request
    /// weight per minute per IP (5,000 weighs 250). Levels deeper than the snapshot appear in the
    /// book once they change (Binance's documented limitation of any snapshot size).
    public static let bookSnapshotLimit = 1_000

    /// Path and query of the REST depth snapshot: `/api/v3/depth?symbol=BNBBTC&limit=1000`.
    public static func restDepthPath(symbol: String, limit: Int = bookSnapshotLimit) -> String {
        "/api/v3/depth?symbol=\(symbol.uppercased())&limit=\(min(max(limit, 1), restDepthLimit))"
    }

    /// The diff depth event of Binance's documentation ("Diff. Depth Stream").
    public static let sampleDepthUpdate =
        #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#

    /// The same event through a combined stream.
    public static let sampleCombinedDepthUpdate =
        #"{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}"#

    /// The documented shape of `GET /api/v3/depth` ("Order book").
    public static let sampleRESTDepth =
        #"{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#

    /// Path and query of the recent-trades request: `/api/v3/trades?symbol=BTCUSDT&limit=1000`.
    public static func restTradesPath(symbol: String, limit: Int = restTradesLimit) -> String {
        "/api/v3/trades?symbol=\(symbol.uppercased())&limit=\(min(max(limit, 1), restTradesLimit))"
    }

    /// Path of the markets list.
    public static let restMarketsPath = "/api/v3/exchangeInfo"

    /// Binance's native spelling of a normalized symbol ("BTC-USDT" → "BTCUSDT").
    public static func nativeSymbol(_ symbol: Symbol) -> String {
        String(symbol.rawValue.filter { $0 != "-" })
    }

    /// Quote assets tried, in order, to split a native symbol missing from the market list.
    static let fallbackQuoteAssets = [
        "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY", "GBP", "AUD", "DAI",
    ]

    /// The normalized symbol of a native one, by the market list's base/quote split, else by a
    /// known quote-asset suffix, else the native text uppercased.
    public static func normalizedSymbol(_ native: String, base: String? = nil, quote: String? = nil) -> Symbol {
        if let base, let quote, !base.isEmpty, !quote.isEmpty {
            return Symbol(normalizing: base + "-" + quote)
        }
        let upper = native.uppercased()
        for quote in fallbackQuoteAssets where upper.hasSuffix(quote) && upper.count > quote.count {
            return Symbol(normalizing: String(upper.dropLast(quote.count)) + "-" + quote)
        }
        return Symbol(normalizing: upper)
    }

    /// The trade event of Binance's documentation ("Trade Streams"), kept next to the parser as its reference.
    public static let sampleTradeEvent =
        #"{"e":"trade","E":123456789,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":123456785,"m":true,"M":true}"#

    /// The same event through a combined stream (`/stream?streams=...`).
    public static let sampleCombinedTradeEvent =
        #"{"stream":"bnbbtc@trade","data":{"e":"trade","E":123456789,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":123456785,"m":true,"M":true}}"#

    /// The documented answer to a SUBSCRIBE request.
    public static let sampleSubscribeAck = #"{"result":null,"id":1}"#

    /// The documented shape of `GET /api/v3/trades` ("Recent trades list").
    public static let sampleRESTTrades =
        #"[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]"#

    /// A trimmed `GET /api/v3/exchangeInfo` body in the documented shape.
    public static let sampleExchangeInfo =
        #"{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[],"exchangeFilters":[],"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","baseAssetPrecision":8,"quoteAsset":"BTC","quotePrecision":8,"orderTypes":["LIMIT","MARKET"],"icebergAllowed":true,"filters":[{"filterType":"PRICE_FILTER","minPrice":"0.00000100","maxPrice":"100000.00000000","tickSize":"0.00000100"}],"permissions":["SPOT"]},{"symbol":"BTCUSDT","status":"BREAK","baseAsset":"BTC","baseAssetPrecision":8,"quoteAsset":"USDT","quotePrecision":8,"filters":[]}]}"#
}

extension BinanceFrameParser: ExchangeFrameParser {}

extension Binance: ExchangeAdapter {
    public static var applicationPing: String? { nil }
    public static var protocolPing: Bool { true }
    public static var maxSymbolsPerConnection: Int { maxStreamsPerConnection }

    /// `t`, the trade id of the `<symbol>@trade` stream, counts each symbol's trades one by one
    /// (the same ids `/api/v3/trades` and `historicalTrades?fromId=` list).
    public static var tradeIdsAreConsecutive: Bool { true }

    /// `GET /api/v3/trades?limit=1000` weighs 25 of the 6,000 request weight per minute per IP
    /// (REQUEST_WEIGHT in exchangeInfo's rateLimits): one every 2 s uses under a tenth.
    public static var restRequestSpacing: Duration { .seconds(2) }

    public static func tradeSubscribeMessages(nativeSymbols: [String]) -> [String] {
        subscribeMessages(symbols: nativeSymbols)
    }

    public static func makeFrameParser() -> BinanceFrameParser { BinanceFrameParser() }

    public static func makeFrameParser(markets: [ListedMarket]) -> BinanceFrameParser {
        BinanceFrameParser(markets: markets)
    }

    public static func recentTradesPath(nativeSymbol: String, limit: Int) -> String {
        restTradesPath(symbol: nativeSymbol, limit: limit)
    }

    public static var recentTradesLimit: Int { restTradesLimit }

    public static func parseRecentTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64)
        throws(FrameParseError) -> [Trade]
    {
        try BinanceREST.parseTrades(
            body, market: ListedMarket(nativeSymbol: nativeSymbol, symbol: normalizedSymbol(nativeSymbol), isTrading: true),
            receivedAt: receivedAt)
    }

    public static func parseRecentTrades(_ body: [UInt8], market: ListedMarket, receivedAt: Int64)
        throws(FrameParseError) -> [Trade]
    {
        try BinanceREST.parseTrades(body, market: market, receivedAt: receivedAt)
    }

    public static var marketsPath: String { restMarketsPath }

    public static func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket] {
        try BinanceREST.parseExchangeInfo(body)
    }

    // MARK: Order books: the diff depth stream plus REST snapshots (`BinanceBookSynchronizer`).

    public typealias BookSync = BinanceBookSynchronizer

    public static var supportsBooks: Bool { true }

    public static func bookSubscribeMessages(nativeSymbols: [String]) -> [String] {
        depthSubscribeMessages(symbols: nativeSymbols)
    }

    /// None: the stream has no snapshot; a resync fetches `bookSnapshotPath` instead.
    public static func bookResubscribeMessages(nativeSymbol: String) -> [String] { [] }

    /// `GET /api/v3/depth?limit=1000` weighs 50 of the 6,000 request weight per minute per IP: one
    /// a second uses half, leaving room for the trades requests (25 each, at most one a second).
    /// (With books on, each symbol takes two of the connection's 1,024 streams.)
    public static var bookSnapshotSpacing: Duration { .seconds(1) }

    /// Each symbol's `@depth@100ms` stream counts against the 1,024 streams of a connection.
    public static var bookStreamsPerSymbol: Int { 1 }

    public static func bookSnapshotPath(market: ListedMarket) -> String? {
        restDepthPath(symbol: market.restSymbol)
    }

    public static func parseBookSnapshot(_ body: [UInt8], market: ListedMarket, receivedAt: Int64) throws(FrameParseError)
        -> BookFrame
    {
        try BinanceREST.parseDepth(body, market: market, receivedAt: receivedAt)
    }
}
