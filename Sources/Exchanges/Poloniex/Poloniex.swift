import MarketData

/// Where and how an exchange is reached, as data: what the shared connection loop needs to know.
public struct ExchangeEndpoints: Sendable, Hashable {
    /// Public websocket URL.
    public var websocket: String
    /// REST base URL (no trailing slash).
    public var rest: String

    public init(websocket: String, rest: String) {
        self.websocket = websocket
        self.rest = rest
    }
}

/// Poloniex (current spot API, v3): endpoints, channels, messages and timing, as data.
///
/// Facts: subscribe with `{"event":"subscribe","channel":["trades"],"symbols":[...]}`; the ack echoes
/// `channel` as a string; the server drops a client silent for 30 s, so send `{"event":"ping"}`
/// (answered by `{"event":"pong"}`) at least every 20 s; REST `GET /markets/{symbol}/trades?limit=1000`
/// fills gaps (uppercase `takerSide` there); `GET /markets` lists markets.
public enum Poloniex: Sendable {
    public static let exchange = Exchange.poloniex

    /// The production endpoints.
    public static let endpoints = ExchangeEndpoints(
        websocket: "wss://ws.poloniex.com/ws/public", rest: "https://api.poloniex.com")

    /// The websocket channel carrying trades.
    public static let tradesChannel = "trades"

    /// Application-level ping; the answer parses as `ExchangeMessage.pong`.
    public static let pingMessage = #"{"event":"ping"}"#

    /// How often to ping (the server drops a client silent for `idleTimeout`).
    public static let pingInterval: Duration = .seconds(20)

    /// Silence after which the server drops a client.
    public static let idleTimeout: Duration = .seconds(30)

    /// Most trades one REST trades request returns.
    public static let restTradesLimit = 1_000

    /// The subscribe request for `channel` and native `symbols` ("BTC_USDT").
    public static func subscribeMessage(channel: String = tradesChannel, symbols: [String]) -> String {
        channelRequest(event: "subscribe", channel: channel, symbols: symbols)
    }

    /// The unsubscribe request for `channel` and native `symbols`.
    public static func unsubscribeMessage(channel: String = tradesChannel, symbols: [String]) -> String {
        channelRequest(event: "unsubscribe", channel: channel, symbols: symbols)
    }

    static func channelRequest(event: String, channel: String, symbols: [String]) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"event\":", to: &out)
        JSONWriter.appendString(event, to: &out)
        JSONWriter.appendRaw(",\"channel\":[", to: &out)
        JSONWriter.appendString(channel, to: &out)
        JSONWriter.appendRaw("],\"symbols\":[", to: &out)
        for (i, symbol) in symbols.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(symbol, to: &out)
        }
        JSONWriter.appendRaw("]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Path and query of the recent-trades request: `/markets/BTC_USDT/trades?limit=1000`.
    public static func restTradesPath(symbol: String, limit: Int = restTradesLimit) -> String {
        "/markets/\(symbol)/trades?limit=\(min(max(limit, 1), restTradesLimit))"
    }

    /// Path of the markets list.
    public static let restMarketsPath = "/markets"

    /// Poloniex's native spelling of a normalized symbol ("BTC-USDT" → "BTC_USDT").
    public static func nativeSymbol(_ symbol: Symbol) -> String {
        String(symbol.rawValue.map { $0 == "-" ? "_" : $0 })
    }

    /// A real trades frame (capture of 2022-08-21), kept next to the parser as its reference.
    public static let sampleTradesFrame =
        #"{"channel":"trades","data":[{"symbol":"BTC_USDT","amount":"248.3516391","quantity":"0.01149","takerSide":"sell","createTime":1661123520381,"price":"21614.59","id":"60184114","ts":1661123520386}]}"#

    /// The real subscribe ack of the same capture (note `channel` is a string here).
    public static let sampleSubscribeAck =
        #"{"event":"subscribe","channel":"trades","symbols":["BCH_USDT","EFI_USDT","USDJ_USDT","DYP_USDT","SOL_USDT","MDT_BTC","GRT_USDT","GF_USDT","BCH_BTC","ZEC_USDT","BTC_USDT"]}"#

    /// A REST trades body in the documented shape (`takerSide` uppercase, no `symbol`).
    public static let sampleRESTTrades =
        #"[{"id":"60184117","price":"21602.42","quantity":"0.002305","amount":"49.7935781","takerSide":"BUY","ts":1661123542641,"createTime":1661123542635}]"#
}
