import MarketData

/// A Binance spot look-alike for `VenueSimulator`: websocket at `/ws` speaking SUBSCRIBE /
/// `{"result":null,"id":N}` and one `trade` event per trade (`m` = buyer is maker, so `m:true`
/// for a taker sell), REST `GET /api/v3/exchangeInfo` and `GET /api/v3/trades?symbol=&limit=`
/// (oldest first); order books as the `<symbol>@depth@100ms` diff depth stream (one `depthUpdate`
/// per instrument per publish, `U`/`u` = the first and last `MarketSimulator` book update id it
/// covers) and REST `GET /api/v3/depth?symbol=&limit=` (`lastUpdateId` = the book update id; the
/// book faults skip or swap depth events). Liveness is at the protocol level: the client's ping (or pong) frames count
/// as activity, as Binance requires pongs to its pings. Written independently of
/// `Exchanges.BinanceFrameParser`, so the two check each other.
public enum BinanceVenue: SimulatedVenue {
    public static let exchange = Exchange("binance")
    public static let websocketPath = "/ws"

    /// "BTC_USDT" → "BTCUSDT".
    public static func nativeSymbol(instrument: String) -> String {
        instrument.replacingUnderscores(with: "")
    }

    public static func makeSession(instruments: [String], configuration: SimulatedSessionConfiguration, connectedAt: Int64)
        -> BinanceSession
    {
        BinanceSession(instruments: instruments, configuration: configuration, connectedAt: connectedAt)
    }

    public static func respond(toPath path: String, market: MarketSimulator) -> SimulatedRESTResponse {
        let (route, query) = splitQuery(path)
        let maps = symbolMaps(market.nativeSymbols)
        switch route {
        case "/api/v3/exchangeInfo":
            var out: [UInt8] = []
            JSONWriter.appendRaw("{\"timezone\":\"UTC\",\"serverTime\":", to: &out)
            JSONWriter.appendInt(market.configuration.startTime, to: &out)
            JSONWriter.appendRaw(",\"rateLimits\":[],\"exchangeFilters\":[],\"symbols\":[", to: &out)
            for (i, instrument) in market.nativeSymbols.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                let (base, quote) = split(instrument)
                JSONWriter.appendRaw("{\"symbol\":", to: &out)
                JSONWriter.appendString(nativeSymbol(instrument: instrument), to: &out)
                JSONWriter.appendRaw(",\"status\":\"TRADING\",\"baseAsset\":", to: &out)
                JSONWriter.appendString(base, to: &out)
                JSONWriter.appendRaw(",\"baseAssetPrecision\":8,\"quoteAsset\":", to: &out)
                JSONWriter.appendString(quote, to: &out)
                JSONWriter.appendRaw(",\"quotePrecision\":8,\"orderTypes\":[\"LIMIT\",\"MARKET\"],\"filters\":[],\"permissions\":[\"SPOT\"]}", to: &out)
            }
            JSONWriter.appendRaw("]}", to: &out)
            return SimulatedRESTResponse(status: 200, body: String(decoding: out, as: UTF8.self))
        case "/api/v3/trades":
            guard let symbol = query["symbol"], let instrument = maps.toInstrument[symbol] else {
                return SimulatedRESTResponse(status: 400, body: #"{"code":-1121,"msg":"Invalid symbol."}"#)
            }
            var limit = 500
            if let text = query["limit"] {
                guard let parsed = Int(text), parsed >= 1 else {
                    return SimulatedRESTResponse(status: 400, body: #"{"code":-1100,"msg":"Illegal characters found in parameter 'limit'."}"#)
                }
                limit = min(parsed, 1_000)
            }
            let trades = (market.recentTrades(nativeSymbol: instrument, limit: limit) ?? []).reversed()
            var out: [UInt8] = [UInt8(ascii: "[")]
            for (i, trade) in trades.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendRaw("{\"id\":", to: &out)
                JSONWriter.appendInt(trade.id, to: &out)
                JSONWriter.appendRaw(",\"price\":", to: &out)
                JSONWriter.appendDecimal(trade.price, to: &out)
                JSONWriter.appendRaw(",\"qty\":", to: &out)
                JSONWriter.appendDecimal(trade.quantity, to: &out)
                JSONWriter.appendRaw(",\"quoteQty\":", to: &out)
                JSONWriter.appendDecimal(trade.amount, to: &out)
                JSONWriter.appendRaw(",\"time\":", to: &out)
                JSONWriter.appendInt(trade.createTime, to: &out)
                JSONWriter.appendRaw(trade.takerSide == .sell ? ",\"isBuyerMaker\":true" : ",\"isBuyerMaker\":false", to: &out)
                JSONWriter.appendRaw(",\"isBestMatch\":true}", to: &out)
            }
            out.append(UInt8(ascii: "]"))
            return SimulatedRESTResponse(status: 200, body: String(decoding: out, as: UTF8.self))
        case "/api/v3/depth":
            guard let symbol = query["symbol"], let instrument = maps.toInstrument[symbol],
                let book = market.book(nativeSymbol: instrument)
            else {
                return SimulatedRESTResponse(status: 400, body: #"{"code":-1121,"msg":"Invalid symbol."}"#)
            }
            var limit = 100
            if let text = query["limit"] {
                guard let parsed = Int(text), parsed >= 1, parsed <= 5_000 else {
                    return SimulatedRESTResponse(status: 400, body: #"{"code":-1100,"msg":"Illegal characters found in parameter 'limit'."}"#)
                }
                limit = parsed
            }
            return SimulatedRESTResponse(
                status: 200,
                body: depthSnapshot(
                    bids: book.bids(top: limit), asks: book.asks(top: limit), lastUpdateId: market.bookUpdateId(nativeSymbol: instrument)))
        default:
            return SimulatedRESTResponse(status: 404, body: #"{"code":-1,"msg":"Not found"}"#)
        }
    }

    /// The `GET /api/v3/depth` body: `{"lastUpdateId":N,"bids":[["p","q"],...],"asks":[...]}`, best first.
    public static func depthSnapshot(bids: [BookLevel], asks: [BookLevel], lastUpdateId: Int64) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"lastUpdateId\":", to: &out)
        JSONWriter.appendInt(lastUpdateId, to: &out)
        JSONWriter.appendRaw(",\"bids\":", to: &out)
        JSONWriter.appendBookLevels(bids, to: &out)
        JSONWriter.appendRaw(",\"asks\":", to: &out)
        JSONWriter.appendBookLevels(asks, to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// One `depthUpdate` event, keys in Binance's order.
    public static func depthEvent(
        instrument: String, firstUpdateId: Int64, finalUpdateId: Int64, bids: [BookLevel], asks: [BookLevel], time: Int64
    ) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"e\":\"depthUpdate\",\"E\":", to: &out)
        JSONWriter.appendInt(time, to: &out)
        JSONWriter.appendRaw(",\"s\":", to: &out)
        JSONWriter.appendString(nativeSymbol(instrument: instrument), to: &out)
        JSONWriter.appendRaw(",\"U\":", to: &out)
        JSONWriter.appendInt(firstUpdateId, to: &out)
        JSONWriter.appendRaw(",\"u\":", to: &out)
        JSONWriter.appendInt(finalUpdateId, to: &out)
        JSONWriter.appendRaw(",\"b\":", to: &out)
        JSONWriter.appendBookLevels(bids, to: &out)
        JSONWriter.appendRaw(",\"a\":", to: &out)
        JSONWriter.appendBookLevels(asks, to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }


    /// One `trade` event, keys in Binance's order.
    public static func tradeEvent(_ trade: SimulatedTrade) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"e\":\"trade\",\"E\":", to: &out)
        JSONWriter.appendInt(trade.pushTime, to: &out)
        JSONWriter.appendRaw(",\"s\":", to: &out)
        JSONWriter.appendString(nativeSymbol(instrument: trade.nativeSymbol), to: &out)
        JSONWriter.appendRaw(",\"t\":", to: &out)
        JSONWriter.appendInt(trade.id, to: &out)
        JSONWriter.appendRaw(",\"p\":", to: &out)
        JSONWriter.appendDecimal(trade.price, to: &out)
        JSONWriter.appendRaw(",\"q\":", to: &out)
        JSONWriter.appendDecimal(trade.quantity, to: &out)
        JSONWriter.appendRaw(",\"T\":", to: &out)
        JSONWriter.appendInt(trade.createTime, to: &out)
        JSONWriter.appendRaw(trade.takerSide == .sell ? ",\"m\":true,\"M\":true}" : ",\"m\":false,\"M\":true}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// One client of the simulated Binance websocket.
public struct BinanceSession: VenueSession {
    public let configuration: SimulatedSessionConfiguration
    let toInstrument: [String: String]
    /// "btcusdt@depth@100ms" (and "btcusdt@depth") → instrument.
    let toDepthInstrument: [String: String]
    let connectedAt: Int64
    var lastReceived: Int64
    var closed = false
    /// Instruments subscribed ("BTC_USDT").
    public private(set) var subscribed: Set<String> = []
    /// Instruments whose diff depth stream is subscribed.
    public private(set) var depthSubscribed: Set<String> = []
    /// Depth events produced (sent, skipped or held); the book fault knobs count these.
    public private(set) var bookUpdatesProduced = 0
    /// Depth events left out on purpose (`skipBookUpdateEvery`).
    public private(set) var bookUpdatesSkipped = 0
    /// Depth events sent after the next one on purpose (`swapBookUpdatesEvery`).
    public private(set) var bookUpdatesSwapped = 0
    /// An event held back to go out after the next one.
    var heldDepthEvent: String?
    public private(set) var framesSent = 0
    public private(set) var malformedFramesSent = 0
    var malformedFrames: [String] = []

    public mutating func takeMalformedFrames() -> [String] {
        defer { malformedFrames = [] }
        return malformedFrames
    }

    public init(instruments: [String], configuration: SimulatedSessionConfiguration, connectedAt: Int64) {
        self.configuration = configuration
        self.connectedAt = connectedAt
        self.lastReceived = connectedAt
        var map: [String: String] = [:]
        var depth: [String: String] = [:]
        for instrument in instruments {
            let lower = BinanceVenue.nativeSymbol(instrument: instrument).lowercased()
            map[lower + "@trade"] = instrument
            depth[lower + "@depth@100ms"] = instrument
            depth[lower + "@depth"] = instrument
        }
        toInstrument = map
        toDepthInstrument = depth
    }

    public mutating func controlFrameReceived(at time: Int64) { lastReceived = time }

    public mutating func received(_ text: String, at time: Int64) -> [SessionAction] {
        guard !closed else { return [] }
        lastReceived = time
        guard let request = try? SimpleRequest.parse(text, method: "method", list: "params"), let id = request.id else {
            return [.send(#"{"error":{"code":3,"msg":"Invalid JSON: expected a request object"},"id":null}"#)]
        }
        switch request.method {
        case "SUBSCRIBE", "UNSUBSCRIBE":
            if let unknown = request.list.first(where: { toInstrument[$0] == nil && toDepthInstrument[$0] == nil }) {
                return [.send("{\"error\":{\"code\":2,\"msg\":\"Invalid request: unknown stream \(unknown)\"},\"id\":\(id)}")]
            }
            let subscribing = request.method == "SUBSCRIBE"
            for stream in request.list {
                if let instrument = toInstrument[stream] {
                    if subscribing { subscribed.insert(instrument) } else { subscribed.remove(instrument) }
                } else if let instrument = toDepthInstrument[stream] {
                    if subscribing { depthSubscribed.insert(instrument) } else { depthSubscribed.remove(instrument) }
                }
            }
            return [.send("{\"result\":null,\"id\":\(id)}")]
        default:
            return [.send("{\"error\":{\"code\":2,\"msg\":\"Invalid request: unknown method\"},\"id\":\(id)}")]
        }
    }

    public mutating func publish(_ orders: [SimulatedOrder], at time: Int64) -> [SessionAction] {
        guard !closed else { return [] }
        if let close = lifetimeCheck(&closed, lastReceived: lastReceived, connectedAt: connectedAt, configuration, at: time) {
            return [close]
        }
        var actions: [SessionAction] = []
        for order in orders where subscribed.contains(order.nativeSymbol) && !order.trades.isEmpty {
            for trade in order.trades {
                framesSent += 1
                var frame = BinanceVenue.tradeEvent(trade)
                if let every = configuration.malformedFrameEvery, every > 0, framesSent % every == 0 {
                    frame = WireFaults.malformed(frame, variant: UInt64(framesSent / every))
                    malformedFramesSent += 1
                    malformedFrames.append(frame)
                }
                actions.append(.send(frame))
            }
        }
        actions += depthEvents(orders, at: time)
        return actions
    }

    /// One `depthUpdate` per depth-subscribed instrument that `orders` changed, covering their
    /// update ids; the book faults leave out or hold back every Nth one.
    mutating func depthEvents(_ orders: [SimulatedOrder], at time: Int64) -> [SessionAction] {
        var batches: [(instrument: String, first: Int64, last: Int64, bids: [BookLevel], asks: [BookLevel])] = []
        var index: [String: Int] = [:]
        for order in orders where depthSubscribed.contains(order.nativeSymbol) && !order.bookChanges.isEmpty {
            let at: Int
            if let known = index[order.nativeSymbol] {
                at = known
            } else {
                at = batches.count
                index[order.nativeSymbol] = at
                batches.append((order.nativeSymbol, order.bookUpdateId, order.bookUpdateId, [], []))
            }
            batches[at].last = order.bookUpdateId
            for change in order.bookChanges {
                if change.side == .bid { batches[at].bids.append(change.level) } else { batches[at].asks.append(change.level) }
            }
        }
        var actions: [SessionAction] = []
        for batch in batches {
            let event = BinanceVenue.depthEvent(
                instrument: batch.instrument, firstUpdateId: batch.first, finalUpdateId: batch.last, bids: batch.bids,
                asks: batch.asks, time: time)
            bookUpdatesProduced += 1
            if let every = configuration.skipBookUpdateEvery, every > 0, bookUpdatesProduced % every == 0 {
                bookUpdatesSkipped += 1
                continue
            }
            if let every = configuration.swapBookUpdatesEvery, every > 0, bookUpdatesProduced % every == 0, heldDepthEvent == nil {
                heldDepthEvent = event
                bookUpdatesSwapped += 1
                continue
            }
            actions.append(.send(event))
            if let held = heldDepthEvent {
                actions.append(.send(held))
                heldDepthEvent = nil
            }
        }
        return actions
    }
}

/// Drops a client silent for `idleTimeout` (when `checkIdle`) or whose planned lifetime is over.
func lifetimeCheck(
    _ closed: inout Bool, lastReceived: Int64, connectedAt: Int64, _ configuration: SimulatedSessionConfiguration,
    at time: Int64, checkIdle: Bool = true
) -> SessionAction? {
    if checkIdle && time - lastReceived >= configuration.idleTimeout {
        closed = true
        return .close(reason: "no message from the client for \(configuration.idleTimeout) ms")
    }
    if let after = configuration.dropConnectionAfter, time - connectedAt >= after {
        closed = true
        return .close(reason: "simulated connection drop after \(after) ms")
    }
    return nil
}

/// A client request reduced to a method name, a list of strings and an id.
struct SimpleRequest {
    var method = ""
    var list: [String] = []
    var id: Int64?
    var channel = ""
    /// Kraken's `params.snapshot` (its default is false).
    var snapshot = false

    /// Reads `{"<method>":"...","<list>":[...],"id":N,"channel":"..."}`; `list` may also be nested
    /// in a `params` object (Kraken: `params.symbol`).
    static func parse(_ text: String, method methodKey: StaticString, list listKey: StaticString) throws(JSONError)
        -> SimpleRequest
    {
        try JSONScanner.withScanner(over: text) { (s: inout JSONScanner) throws(JSONError) -> SimpleRequest in
            var request = SimpleRequest()
            try read(&s, into: &request, methodKey: methodKey, listKey: listKey, depth: 0)
            guard s.isAtEnd(), !request.method.isEmpty else { throw JSONError(.badValue, "not a request", at: s.position) }
            return request
        }
    }

    static func read(
        _ s: inout JSONScanner, into request: inout SimpleRequest, methodKey: StaticString, listKey: StaticString, depth: Int
    ) throws(JSONError) {
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: methodKey) {
                request.method = try s.readStringValue()
            } else if s.token(key, equals: listKey) {
                if try s.peek() == UInt8(ascii: "[") {
                    try s.beginArray()
                    var firstItem = true
                    while try s.nextElement(first: &firstItem) { request.list.append(try s.readStringValue()) }
                } else {
                    request.list = [try s.readStringValue()]
                }
            } else if s.token(key, equals: "id") || s.token(key, equals: "req_id") {
                request.id = try s.readInt64()
            } else if s.token(key, equals: "channel") {
                request.channel = try s.readStringValue()
            } else if s.token(key, equals: "snapshot"), try s.peek() != UInt8(ascii: "\"") {
                request.snapshot = try s.readBool()
            } else if s.token(key, equals: "params"), depth == 0, try s.peek() == UInt8(ascii: "{") {
                try read(&s, into: &request, methodKey: "_", listKey: "symbol", depth: 1)
            } else {
                try s.skipValue()
            }
        }
    }
}

extension String {
    func replacingUnderscores(with replacement: String) -> String {
        split(separator: "_", omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
