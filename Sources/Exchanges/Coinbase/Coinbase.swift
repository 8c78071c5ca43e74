import MarketData

/// Coinbase Advanced Trade (public market data): endpoints, channels, messages and timing, as data.
///
/// Facts (Coinbase Advanced Trade docs, "WebSocket Overview" / "WebSocket Channels", and the
/// REST "Get Public Market Trades" / "List Public Products" pages, as stored in the docs corpus):
/// - socket `wss://advanced-trade-ws.coinbase.com`; one channel per subscribe message:
///   `{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}`; a client that
///   does not subscribe within 5 s is disconnected; the server confirms with a `subscriptions`
///   message listing what is subscribed.
/// - "Most channels close within 60-90 seconds if no updates are sent. Subscribe to heartbeats to
///   keep all subscriptions open": Tape subscribes to `heartbeats` too (one message a second), and
///   sends no application ping (there is none).
/// - `market_trades` messages batch the trades of the last 250 ms:
///   `{"channel":"market_trades","client_id":"","timestamp":"...","sequence_num":0,"events":[{"type":
///   "snapshot"|"update","trades":[{"trade_id":"...","product_id":"BTC-USD","price":"...","size":"...",
///   "side":"BUY"|"SELL","time":"2019-08-14T20:42:27.265Z"}]}]}` — a `snapshot` event right after
///   subscribing carries recent trades (deduplication drops the overlap with the backfill).
/// - `time` is the trade time (RFC 3339); the envelope's `timestamp` is push time.
///
/// **`side` is the maker's side, so the taker side is its opposite** (`sideIsMakerSide`). The
/// evidence, which is not unanimous:
/// - Coinbase's legacy Exchange API says so explicitly for the same matching engine: "The side of a
///   trade indicates the maker order side" (docs.cloud.coinbase.com, exchange-api, Get product
///   trades), and for the websocket `match` channel "the side field indicates the maker order side".
/// - NautilusTrader's Advanced Trade adapter first took `side` as the aggressor's (its
///   `crates/adapters/coinbase/src/http/parse.rs`, `coinbase_side_to_aggressor`, mapped BUY → buyer
///   from April to at least July 2026), and later reversed it: its current docs say "Converts a
///   Coinbase market trade side to a Nautilus aggressor side. Coinbase reports the maker side on
///   public market trades, so the aggressor is the opposite side" (nautilustrader.io,
///   rust-api-latest) — a correction made by people running it against the venue.
/// - Independent clients of the `market_trades` channel say the same ("Coinbase `market_trades.side`
///   reports the maker side of the matched order"; "Coinbase reports the MAKER side; aggressor is
///   opposite").
/// - Against: a schema derived from Coinbase's OpenAPI by a third party (api-evangelist
///   `coinbase-trade-schema.json`, schemas.apis.io) describes `side` as "Taker side of the trade";
///   Coinbase's own Advanced Trade pages found do not define it either way.
/// This is the one fact here not confirmed against live data; it is a single constant.
public enum Coinbase: Sendable {
    public static let exchange = Exchange("coinbase")

    /// The production endpoints.
    public static let endpoints = ExchangeEndpoints(
        websocket: "wss://advanced-trade-ws.coinbase.com", rest: "https://api.coinbase.com")

    /// The channel carrying trades.
    public static let tradesChannel = "market_trades"

    /// The channel that keeps subscriptions open (one heartbeat a second).
    public static let heartbeatsChannel = "heartbeats"

    /// True: a trade's `side` is the maker's; the taker's side is the opposite (see above).
    public static let sideIsMakerSide = true

    /// The channel to subscribe to for order books ("level2"); its messages say `l2_data`.
    public static let level2Channel = "level2"

    /// The `channel` of level2 messages.
    public static let level2DataChannel = "l2_data"

    /// Heartbeats arrive every second; no ping is sent, the interval only paces the timer.
    public static let pingInterval: Duration = .seconds(15)

    /// Most trades one REST ticker request asks for.
    public static let restTradesLimit = 1_000

    /// The taker side of a trade whose `side` field says `side`.
    @inline(__always)
    public static func takerSide(fromReported side: Side) -> Side {
        guard sideIsMakerSide else { return side }
        return side == .buy ? .sell : .buy
    }

    /// The subscribe request for `channel` and `productIds`.
    public static func subscribeMessage(channel: String = tradesChannel, productIds: [String]) -> String {
        subscription("subscribe", channel: channel, productIds: productIds)
    }

    /// The unsubscribe request for `channel` and `productIds` (same shape as subscribe).
    public static func unsubscribeMessage(channel: String, productIds: [String]) -> String {
        subscription("unsubscribe", channel: channel, productIds: productIds)
    }

    static func subscription(_ type: String, channel: String, productIds: [String]) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"type\":", to: &out)
        JSONWriter.appendString(type, to: &out)
        JSONWriter.appendRaw(",\"product_ids\":[", to: &out)
        for (i, product) in productIds.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(product, to: &out)
        }
        JSONWriter.appendRaw("],\"channel\":", to: &out)
        JSONWriter.appendString(channel, to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Path and query of the public recent-trades request:
    /// `/api/v3/brokerage/market/products/BTC-USD/ticker?limit=1000`.
    public static func restTradesPath(productId: String, limit: Int = restTradesLimit) -> String {
        "/api/v3/brokerage/market/products/\(productId)/ticker?limit=\(min(max(limit, 1), restTradesLimit))"
    }

    /// Path of the public products list.
    public static let restMarketsPath = "/api/v3/brokerage/market/products"

    /// Coinbase's spelling of a normalized symbol: the same ("BTC-USD").
    public static func nativeSymbol(_ symbol: Symbol) -> String { symbol.rawValue }

    /// The `market_trades` example of the Advanced Trade docs, kept next to the parser as its reference.
    public static let sampleTradesFrame =
        #"{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z","sequence_num":0,"events":[{"type":"snapshot","trades":[{"trade_id":"000000000","product_id":"ETH-USD","price":"1260.01","size":"0.3","side":"BUY","time":"2019-08-14T20:42:27.265Z"}]}]}"#

    /// An update event with two trades (the shape of live updates).
    public static let sampleUpdateFrame =
        #"{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:36.1Z","sequence_num":4,"events":[{"type":"update","trades":[{"trade_id":"571290391","product_id":"BTC-USD","price":"21921.74","size":"0.00455","side":"SELL","time":"2023-02-09T20:19:35.954Z"},{"trade_id":"571290392","product_id":"BTC-USD","price":"21921.75","size":"0.1","side":"BUY","time":"2023-02-09T20:19:35.96012Z"}]}]}"#

    /// A `level2` snapshot (Advanced Trade docs, Level2 channel: `side` "bid"/"offer", absolute
    /// `new_quantity`; snapshot levels carry a zero `event_time`).
    public static let sampleLevel2Snapshot =
        #"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.06317902"},{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.3","new_quantity":"0.02"},{"side":"offer","event_time":"1970-01-01T00:00:00Z","price_level":"21921.74","new_quantity":"1.5"}]}]}"#

    /// A `level2` update: quantity "0" removes the level.
    public static let sampleLevel2Update =
        #"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:51.1Z","sequence_num":1,"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"2023-02-09T20:32:50.982Z","price_level":"21921.3","new_quantity":"0"},{"side":"offer","event_time":"2023-02-09T20:32:50.982Z","price_level":"21921.75","new_quantity":"0.25"}]}]}"#

    /// The `subscriptions` confirmation.
    public static let sampleSubscriptions =
        #"{"channel":"subscriptions","client_id":"","timestamp":"2023-02-09T20:19:35.1Z","sequence_num":1,"events":[{"subscriptions":{"market_trades":["BTC-USD","ETH-USD"]}}]}"#

    /// A heartbeat (Advanced Trade docs, heartbeats channel).
    public static let sampleHeartbeat =
        #"{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z","sequence_num":0,"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105","heartbeat_counter":"3049"}]}"#

    /// An error answer.
    public static let sampleError = #"{"type":"error","message":"failure to subscribe"}"#

    /// The documented shape of the public ticker (recent trades) body.
    public static let sampleRESTTrades =
        #"{"trades":[{"trade_id":"571290393","product_id":"BTC-USD","price":"21921.76","size":"0.25","time":"2023-02-09T20:19:37.5Z","side":"SELL","bid":"","ask":"","exchange":"coinbase"},{"trade_id":"571290392","product_id":"BTC-USD","price":"21921.75","size":"0.1","time":"2023-02-09T20:19:35.96012Z","side":"BUY","bid":"","ask":"","exchange":"coinbase"}],"best_bid":"21921.74","best_ask":"21921.77"}"#

    /// A trimmed public products body.
    public static let sampleProducts =
        #"{"products":[{"product_id":"BTC-USD","price":"21921.75","base_currency_id":"BTC","quote_currency_id":"USD","status":"online","trading_disabled":false,"product_type":"SPOT"},{"product_id":"OLD-USD","base_currency_id":"OLD","quote_currency_id":"USD","status":"delisted","trading_disabled":true,"product_type":"SPOT"}],"num_products":2}"#
}

extension CoinbaseFrameParser: ExchangeFrameParser {}

extension Coinbase: ExchangeAdapter {
    public static var applicationPing: String? { nil }

    /// `trade_id` counts each product's trades one by one (the REST `ticker` trades list the same ids).
    public static var tradeIdsAreConsecutive: Bool { true }

    /// Public endpoints allow 10 requests/s per IP; Tape asks at most four times a second.
    public static var restRequestSpacing: Duration { .milliseconds(250) }

    public static func tradeSubscribeMessages(nativeSymbols: [String]) -> [String] {
        [
            subscribeMessage(channel: tradesChannel, productIds: nativeSymbols),
            subscribeMessage(channel: heartbeatsChannel, productIds: nativeSymbols),
        ]
    }

    public static func makeFrameParser() -> CoinbaseFrameParser { CoinbaseFrameParser() }

    public static func recentTradesPath(nativeSymbol: String, limit: Int) -> String {
        restTradesPath(productId: nativeSymbol, limit: limit)
    }

    public static var recentTradesLimit: Int { restTradesLimit }

    public static func parseRecentTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64)
        throws(FrameParseError) -> [Trade]
    {
        try CoinbaseREST.parseTrades(body, nativeSymbol: nativeSymbol, receivedAt: receivedAt)
    }

    public static var marketsPath: String { restMarketsPath }

    public static func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket] {
        try CoinbaseREST.parseProducts(body)
    }

    // MARK: Order books: the level2 channel (`CoinbaseBookSynchronizer`).

    public typealias BookSync = CoinbaseBookSynchronizer

    public static var supportsBooks: Bool { true }

    public static func bookSubscribeMessages(nativeSymbols: [String]) -> [String] {
        nativeSymbols.isEmpty ? [] : [subscribeMessage(channel: level2Channel, productIds: nativeSymbols)]
    }

    /// Unsubscribe then subscribe the product's level2 channel: the venue answers with a fresh snapshot.
    public static func bookResubscribeMessages(nativeSymbol: String) -> [String] {
        [
            unsubscribeMessage(channel: level2Channel, productIds: [nativeSymbol]),
            subscribeMessage(channel: level2Channel, productIds: [nativeSymbol]),
        ]
    }
}
