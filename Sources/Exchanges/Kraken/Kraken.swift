import MarketData

/// Kraken spot, websocket API v2: endpoints, channels, messages and timing, as data.
///
/// Facts (Kraken docs, "Spot WebSocket" v2 `trade` / `ping` / `heartbeat` pages and the REST
/// "Get Recent Trades" / "Get Tradable Asset Pairs" pages, as stored in the docs corpus):
/// - socket `wss://ws.kraken.com/v2`; subscribe with
///   `{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true}}`;
///   each symbol is acknowledged by its own `{"method":"subscribe","result":{...},"success":true}`
///   (`"success":false,"error":"..."` when refused).
/// - trade data `{"channel":"trade","type":"snapshot"|"update","data":[{"symbol":"BTC/USD","side":
///   "buy","price":4136.4,"qty":0.23374249,"ord_type":"limit","trade_id":123,"timestamp":
///   "2022-12-25T09:30:59.123456Z"}]}`: `side` is the **taker's** side (the v2 trade page: "The
///   side of the taker order"; v1: "Taker side"), `ord_type` "The order type of the taker order",
///   `trade_id` "a sequence number, unique per book", `timestamp` the trade time (RFC 3339, µs).
///   The snapshot (off by default, so Tape asks for it) "reflects the most recent 50 trades". `price` and `qty` are JSON **numbers**: read exactly from their
///   text, never through Double.
/// - v2 spells Bitcoin "BTC" (v1 and REST say "XBT") and Dogecoin "DOGE" (REST "XDG").
/// - `{"channel":"heartbeat"}` every second while subscribed; application ping
///   `{"method":"ping"}` answered by `{"method":"pong",...}`.
/// - REST `GET /0/public/Trades?pair=XBTUSD&count=1000` returns `[price, volume, time (seconds with
///   a fraction), "b"|"s" (taker side), "m"|"l", misc, trade_id]` rows under the pair's name;
///   `GET /0/public/AssetPairs` lists pairs with `altname` (REST) and `wsname` ("XBT/USD").
public enum Kraken: Sendable {
    public static let exchange = Exchange("kraken")

    /// The production endpoints.
    public static let endpoints = ExchangeEndpoints(websocket: "wss://ws.kraken.com/v2", rest: "https://api.kraken.com")

    /// The channel carrying trades.
    public static let tradesChannel = "trade"

    /// Application-level ping; the answer parses as `ExchangeMessage.pong`.
    public static let pingMessage = #"{"method":"ping"}"#

    /// How often to ping.
    public static let pingInterval: Duration = .seconds(20)

    /// Most trades one REST trades request returns.
    public static let restTradesLimit = 1_000

    /// The subscribe request for the trades of v2 `symbols` ("BTC/USD"), with the snapshot of
    /// recent trades (deduplication drops the overlap with the backfill).
    public static func subscribeMessage(symbols: [String], snapshot: Bool = true) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"method\":\"subscribe\",\"params\":{\"channel\":\"trade\",\"symbol\":[", to: &out)
        for (i, symbol) in symbols.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(symbol, to: &out)
        }
        JSONWriter.appendRaw(snapshot ? "],\"snapshot\":true}}" : "],\"snapshot\":false}}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Path and query of the recent-trades request: `/0/public/Trades?pair=XBTUSD&count=1000`.
    public static func restTradesPath(pair: String, limit: Int = restTradesLimit) -> String {
        "/0/public/Trades?pair=\(pair)&count=\(min(max(limit, 1), restTradesLimit))"
    }

    /// Path of the asset pairs list.
    public static let restMarketsPath = "/0/public/AssetPairs"

    /// Kraken v2's spelling of a normalized symbol ("BTC-USD" → "BTC/USD").
    public static func nativeSymbol(_ symbol: Symbol) -> String {
        String(symbol.rawValue.map { $0 == "-" ? "/" : $0 })
    }

    /// The v2 name of a v1/REST `wsname` ("XBT/USD" → "BTC/USD", "XDG/EUR" → "DOGE/EUR").
    public static func v2Symbol(wsname: String) -> String {
        wsname.split(separator: "/", omittingEmptySubsequences: false).map { part in
            switch part {
            case "XBT": "BTC"
            case "XDG": "DOGE"
            default: String(part)
            }
        }.joined(separator: "/")
    }

    /// The trade snapshot of Kraken's v2 `trade` page (docs.kraken.com, spot-websocket-v2/trade),
    /// compacted, kept next to the parser as its reference.
    public static let sampleTradesFrame =
        #"{"channel":"trade","type":"snapshot","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":6423.46326,"ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":1136.19677815,"ord_type":"limit","trade_id":4665847,"timestamp":"2023-09-25T07:49:36.925603Z"}]}"#

    /// An update with a sell (the shape of the page's update message).
    public static let sampleUpdateFrame =
        #"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#

    /// A snapshot with values Double would round, to pin exact number reading.
    public static let sampleSnapshotFrame =
        #"{"channel":"trade","type":"snapshot","data":[{"symbol":"BTC/USD","side":"buy","price":4136.4,"qty":0.1000000000000000055511151231257827,"ord_type":"limit","trade_id":123,"timestamp":"2022-12-25T09:30:59.123456Z"},{"symbol":"BTC/USD","side":"sell","price":12345678.123456789,"qty":1e-8,"ord_type":"market","trade_id":124,"timestamp":"2022-12-25T09:30:59.9999Z"}]}"#

    /// The subscribe acknowledgement (one per symbol).
    public static let sampleSubscribeAck =
        #"{"method":"subscribe","result":{"channel":"trade","snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#

    /// A refused subscription.
    public static let sampleSubscribeError =
        #"{"error":"Currency pair not supported NOPE/USD","method":"subscribe","success":false,"symbol":"NOPE/USD","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#

    public static let sampleHeartbeat = #"{"channel":"heartbeat"}"#

    public static let sampleStatus =
        #"{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,"system":"online","version":"2.0.0"}],"type":"update"}"#

    public static let samplePong = #"{"method":"pong","time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}"#

    /// The example body of "Get Recent Trades".
    public static let sampleRESTTrades =
        #"{"error":[],"result":{"XXBTZUSD":[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952],["30243.30000","0.00376960",1688669598.2804112,"s","l","",61044953],["30243.30000","0.01235716",1688669602.698379,"s","m","",61044956]],"last":"1688671969993150842"}}"#

    /// A trimmed "Get Tradable Asset Pairs" body.
    public static let sampleAssetPairs =
        #"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","aclass_base":"currency","base":"XXBT","aclass_quote":"currency","quote":"ZUSD","pair_decimals":1,"lot_decimals":8,"status":"online"},"XETHZEUR":{"altname":"ETHEUR","wsname":"ETH/EUR","base":"XETH","quote":"ZEUR","status":"cancel_only"},"XDGUSD":{"altname":"XDGUSD","wsname":"XDG/USD","base":"XXDG","quote":"ZUSD","status":"online"}}}"#
}

extension KrakenFrameParser: ExchangeFrameParser {}

extension Kraken: ExchangeAdapter {
    public static var applicationPing: String? { pingMessage }

    /// v2 `trade_id` is "sequential per pair" (Kraken's v2 docs: "Trade ID: Sequential int"); the
    /// REST `Trades` rows end with the same id.
    public static var tradeIdsAreConsecutive: Bool { true }

    /// Public REST endpoints allow about one call per second per IP; Tape asks at most every 2 s.
    public static var restRequestSpacing: Duration { .seconds(2) }

    public static func tradeSubscribeMessages(nativeSymbols: [String]) -> [String] {
        [subscribeMessage(symbols: nativeSymbols)]
    }

    public static func makeFrameParser() -> KrakenFrameParser { KrakenFrameParser() }

    /// Without the asset pair list: the v2 name without its slash, XBT for BTC ("BTC/USD" → "XBTUSD").
    public static func recentTradesPath(nativeSymbol: String, limit: Int) -> String {
        let pair = nativeSymbol.split(separator: "/").map { $0 == "BTC" ? "XBT" : $0 == "DOGE" ? "XDG" : String($0) }.joined()
        return restTradesPath(pair: pair, limit: limit)
    }

    /// The pair's REST name from the asset pair list (`altname`).
    public static func recentTradesPath(market: ListedMarket, limit: Int) -> String? {
        market.restSymbol == market.nativeSymbol
            ? recentTradesPath(nativeSymbol: market.nativeSymbol, limit: limit)
            : restTradesPath(pair: market.restSymbol, limit: limit)
    }

    public static var recentTradesLimit: Int { restTradesLimit }

    public static func parseRecentTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64)
        throws(FrameParseError) -> [Trade]
    {
        try KrakenREST.parseTrades(body, nativeSymbol: nativeSymbol, receivedAt: receivedAt)
    }

    public static var marketsPath: String { restMarketsPath }

    public static func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket] {
        try KrakenREST.parseAssetPairs(body)
    }

    // MARK: Order books: v2 `book` (see KrakenBookFrames.swift)

    public typealias BookSync = KrakenBookSynchronizer

    public static var supportsBooks: Bool { true }

    public static func bookSubscribeMessages(nativeSymbols: [String]) -> [String] {
        [bookSubscribeMessage(symbols: nativeSymbols)]
    }

    /// Unsubscribe then subscribe: Kraken answers a subscription with a fresh snapshot.
    public static func bookResubscribeMessages(nativeSymbol: String) -> [String] {
        [bookUnsubscribeMessage(symbols: [nativeSymbol]), bookSubscribeMessage(symbols: [nativeSymbol])]
    }
}
