import MarketData

/// What a simulated venue's websocket session tells the server to do.
public enum SessionAction: Sendable, Hashable {
    /// Send this text frame.
    case send(String)
    /// Close the connection.
    case close(reason: String)
}

/// Behaviour and fault knobs of a simulated websocket session (every venue).
public struct SimulatedSessionConfiguration: Sendable {
    /// Silence (nothing received) after which the client is dropped, ms. Default 30 000.
    public var idleTimeout: Int64 = 30_000
    /// Close the connection this long after it opened, ms (fault). Default nil: never.
    public var dropConnectionAfter: Int64? = nil
    /// Send every Nth trades frame malformed (fault). Default nil: never.
    public var malformedFrameEvery: Int? = nil
    /// Write trade ids as JSON numbers in every Nth trades frame (venues whose ids may be
    /// either). Default nil: always their usual type.
    public var numericIdsEvery: Int? = nil
    /// Leave out every Nth book update the session would send (fault: a sequence break). Default nil.
    public var skipBookUpdateEvery: Int? = nil
    /// Send a wrong checksum with every Nth book update (fault, venues with checksums). Default nil.
    public var corruptChecksumEvery: Int? = nil
    /// Send every Nth book update after the one that follows it (fault: out of order). Default nil.
    public var swapBookUpdatesEvery: Int? = nil

    public init() {}
}

/// One client connection to a simulated venue's websocket, as a value (no sockets): feed it what
/// the client sent, the market's new orders and the clock; it answers with actions.
public protocol VenueSession: Sendable {
    /// A text frame from the client.
    mutating func received(_ text: String, at time: Int64) -> [SessionAction]
    /// New market orders (possibly none: the clock moved), for the subscribed symbols.
    mutating func publish(_ orders: [SimulatedOrder], at time: Int64) -> [SessionAction]
    /// A ping or pong frame from the client.
    mutating func controlFrameReceived(at time: Int64)
    /// Instruments whose snapshot of recent trades the session owes the client since the last
    /// call (venues that send one on subscribe); the server answers with `snapshot`.
    mutating func takeSnapshotRequests() -> [String]
    /// The frames carrying `trades` (an instrument's most recent, newest first) as a snapshot.
    mutating func snapshot(_ trades: [SimulatedTrade], instrument: String) -> [SessionAction]
    /// Trades frames sent (malformed ones included).
    var framesSent: Int { get }
    /// Malformed frames sent on purpose.
    var malformedFramesSent: Int { get }
    /// Instruments whose book snapshot the session owes its client since the last call (venues
    /// that send one on subscribe); the server answers with `bookSnapshot`.
    mutating func takeBookSnapshotRequests() -> [String]
    /// The frames carrying `book` (the instrument's whole book, as of `updateId`) as the venue's
    /// snapshot message.
    mutating func bookSnapshot(_ book: OrderBook, updateId: Int64, instrument: String) -> [SessionAction]
    /// The malformed frames sent since the last call (for the simulator's malformed log).
    mutating func takeMalformedFrames() -> [String]
}

extension VenueSession {
    /// Default: control frames are not activity (the venue expects application messages).
    public mutating func controlFrameReceived(at time: Int64) {}
    /// Default: no snapshots.
    public mutating func takeSnapshotRequests() -> [String] { [] }
    public mutating func snapshot(_ trades: [SimulatedTrade], instrument: String) -> [SessionAction] { [] }
    /// Default: no book snapshots.
    public mutating func takeBookSnapshotRequests() -> [String] { [] }
    public mutating func bookSnapshot(_ book: OrderBook, updateId: Int64, instrument: String) -> [SessionAction] { [] }
}

/// An HTTP answer of a simulated REST API: status code and JSON body.
public struct SimulatedRESTResponse: Sendable, Hashable {
    public var status: Int
    public var body: String

    public init(status: Int, body: String) {
        self.status = status
        self.body = body
    }
}

/// One venue's wire format for `VenueSimulator`: its websocket path, its session, its REST
/// answers, and how it spells the simulator's instruments (named "BTC_USDT").
public protocol SimulatedVenue: Sendable {
    associatedtype Session: VenueSession
    static var exchange: Exchange { get }
    /// Path of the websocket ("/ws/public").
    static var websocketPath: String { get }
    /// The venue's spelling of an instrument ("BTC_USDT" → "BTCUSDT", "BTC-USDT", "BTC/USDT").
    static func nativeSymbol(instrument: String) -> String
    /// A session for a client that just connected.
    static func makeSession(instruments: [String], configuration: SimulatedSessionConfiguration, connectedAt: Int64)
        -> Session
    /// The REST answer to a GET of `path` (with query).
    static func respond(toPath path: String, market: MarketSimulator) -> SimulatedRESTResponse
    /// Trades in a snapshot sent on subscribe (venues that send one). Default 50.
    static var snapshotSize: Int { get }
}

extension SimulatedVenue {
    public static var snapshotSize: Int { 50 }

    /// The normalized trade a correct ingest of this venue must produce from a simulated trade.
    public static func expectedTrade(_ trade: SimulatedTrade, receivedAt: Int64) -> Trade {
        Trade(
            exchange: exchange, symbol: Symbol(normalizing: trade.nativeSymbol),
            nativeSymbol: nativeSymbol(instrument: trade.nativeSymbol), tradeId: String(trade.id), price: trade.price,
            quantity: trade.quantity, quoteQuantity: trade.amount, side: trade.takerSide, time: trade.createTime,
            receivedAt: receivedAt)
    }

    /// Instrument name → venue spelling, and back.
    static func symbolMaps(_ instruments: [String]) -> (toVenue: [String: String], toInstrument: [String: String]) {
        var toVenue: [String: String] = [:]
        var toInstrument: [String: String] = [:]
        for instrument in instruments {
            let native = nativeSymbol(instrument: instrument)
            toVenue[instrument] = native
            toInstrument[native] = instrument
        }
        return (toVenue, toInstrument)
    }

    /// "BTC_USDT" → ("BTC", "USDT").
    static func split(_ instrument: String) -> (base: String, quote: String) {
        let parts = instrument.split(separator: "_", maxSplits: 1).map(String.init)
        return (parts.first ?? instrument, parts.count > 1 ? parts[1] : "")
    }
}

/// Poloniex (the reference venue): `PoloniexSession`, `PoloniexRESTResponder`, `/ws/public`.
public enum PoloniexVenue: SimulatedVenue {
    public static let exchange = Exchange.poloniex
    public static let websocketPath = "/ws/public"
    public static func nativeSymbol(instrument: String) -> String { instrument }

    public static func makeSession(instruments: [String], configuration: SimulatedSessionConfiguration, connectedAt: Int64)
        -> PoloniexSession
    {
        PoloniexSession(knownSymbols: instruments, configuration: configuration, connectedAt: connectedAt)
    }

    public static func respond(toPath path: String, market: MarketSimulator) -> SimulatedRESTResponse {
        PoloniexRESTResponder.respond(toPath: path, market: market)
    }
}

/// Query string of a request path: ("/a/b", ["k": "v"]).
func splitQuery(_ path: String) -> (String, [String: String]) {
    guard let mark = path.firstIndex(of: "?") else { return (path, [:]) }
    var query: [String: String] = [:]
    for pair in path[path.index(after: mark)...].split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
        query[kv[0]] = kv.count > 1 ? kv[1] : ""
    }
    return (String(path[..<mark]), query)
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds ("2019-08-14T20:42:27.265Z"),
/// plus `extraDigits` more fraction digits (Kraken prints µs).
func rfc3339(milliseconds ms: Int64, extraDigits: String = "") -> String {
    let days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
    let inDay = ms - days * 86_400_000
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
    func pad(_ v: Int64, _ width: Int) -> String {
        let text = String(v)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    let h = inDay / 3_600_000
    let m = inDay / 60_000 % 60
    let s = inDay / 1_000 % 60
    let frac = inDay % 1_000
    return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(h, 2)):\(pad(m, 2)):\(pad(s, 2)).\(pad(frac, 3))\(extraDigits)Z"
}
