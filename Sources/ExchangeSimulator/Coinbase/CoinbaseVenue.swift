import MarketData

/// A Coinbase Advanced Trade look-alike for `VenueSimulator`: websocket at `/` (one channel per
/// subscribe, `subscriptions` confirmations, `market_trades` update events with every fill of a
/// taker order, `heartbeats` every second, no client traffic required after subscribing) and the
/// public REST `GET /api/v3/brokerage/market/products` and `.../products/{id}/ticker?limit=`
/// (newest first). A trade's `side` is written as the **maker's** side — the opposite of the
/// taker's — which is what Tape's adapter assumes Coinbase does (see `Coinbase` in Exchanges).
public enum CoinbaseVenue: SimulatedVenue {
    public static let exchange = Exchange("coinbase")
    public static let websocketPath = "/"

    /// "BTC_USDT" → "BTC-USDT".
    public static func nativeSymbol(instrument: String) -> String {
        instrument.replacingUnderscores(with: "-")
    }

    public static func makeSession(instruments: [String], configuration: SimulatedSessionConfiguration, connectedAt: Int64)
        -> CoinbaseSession
    {
        CoinbaseSession(instruments: instruments, configuration: configuration, connectedAt: connectedAt)
    }

    public static func respond(toPath path: String, market: MarketSimulator) -> SimulatedRESTResponse {
        let (route, query) = splitQuery(path)
        let prefix = "/api/v3/brokerage/market/products"
        if route == prefix {
            var out: [UInt8] = []
            JSONWriter.appendRaw("{\"products\":[", to: &out)
            for (i, instrument) in market.nativeSymbols.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                let (base, quote) = split(instrument)
                JSONWriter.appendRaw("{\"product_id\":", to: &out)
                JSONWriter.appendString(nativeSymbol(instrument: instrument), to: &out)
                JSONWriter.appendRaw(",\"base_currency_id\":", to: &out)
                JSONWriter.appendString(base, to: &out)
                JSONWriter.appendRaw(",\"quote_currency_id\":", to: &out)
                JSONWriter.appendString(quote, to: &out)
                JSONWriter.appendRaw(",\"status\":\"online\",\"trading_disabled\":false,\"product_type\":\"SPOT\"}", to: &out)
            }
            JSONWriter.appendRaw("],\"num_products\":", to: &out)
            JSONWriter.appendInt(Int64(market.nativeSymbols.count), to: &out)
            out.append(UInt8(ascii: "}"))
            return SimulatedRESTResponse(status: 200, body: String(decoding: out, as: UTF8.self))
        }
        let segments = route.split(separator: "/").map(String.init)
        if route.hasPrefix(prefix + "/"), segments.count == 7, segments[6] == "ticker" {
            let maps = symbolMaps(market.nativeSymbols)
            guard let instrument = maps.toInstrument[segments[5]] else {
                return SimulatedRESTResponse(status: 404, body: #"{"error":"NOT_FOUND","message":"ProductID is invalid"}"#)
            }
            guard let limitText = query["limit"], let limit = Int(limitText), limit >= 1 else {
                return SimulatedRESTResponse(status: 400, body: #"{"error":"INVALID_ARGUMENT","message":"limit is required"}"#)
            }
            let trades = market.recentTrades(nativeSymbol: instrument, limit: min(limit, 1_000)) ?? []
            var out: [UInt8] = []
            JSONWriter.appendRaw("{\"trades\":[", to: &out)
            for (i, trade) in trades.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendTrade(trade, to: &out)
            }
            JSONWriter.appendRaw("],\"best_bid\":\"\",\"best_ask\":\"\"}", to: &out)
            return SimulatedRESTResponse(status: 200, body: String(decoding: out, as: UTF8.self))
        }
        return SimulatedRESTResponse(status: 404, body: #"{"error":"NOT_FOUND","message":"Not found"}"#)
    }

    static func appendTrade(_ trade: SimulatedTrade, to out: inout [UInt8]) {
        JSONWriter.appendRaw("{\"trade_id\":\"", to: &out)
        JSONWriter.appendInt(trade.id, to: &out)
        JSONWriter.appendRaw("\",\"product_id\":", to: &out)
        JSONWriter.appendString(nativeSymbol(instrument: trade.nativeSymbol), to: &out)
        JSONWriter.appendRaw(",\"price\":", to: &out)
        JSONWriter.appendDecimal(trade.price, to: &out)
        JSONWriter.appendRaw(",\"size\":", to: &out)
        JSONWriter.appendDecimal(trade.quantity, to: &out)
        // The maker's side: the opposite of the taker's.
        JSONWriter.appendRaw(trade.takerSide == .buy ? ",\"side\":\"SELL\"" : ",\"side\":\"BUY\"", to: &out)
        JSONWriter.appendRaw(",\"time\":", to: &out)
        JSONWriter.appendString(rfc3339(milliseconds: trade.createTime), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// A `market_trades` message with one `update` (or `snapshot`) event holding `trades`.
    public static func tradesMessage(_ trades: [SimulatedTrade], sequence: Int, pushTime: Int64, type: String = "update")
        -> String
    {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"channel\":\"market_trades\",\"client_id\":\"\",\"timestamp\":", to: &out)
        JSONWriter.appendString(rfc3339(milliseconds: pushTime, extraDigits: "000"), to: &out)
        JSONWriter.appendRaw(",\"sequence_num\":", to: &out)
        JSONWriter.appendInt(Int64(sequence), to: &out)
        JSONWriter.appendRaw(",\"events\":[{\"type\":", to: &out)
        JSONWriter.appendString(type, to: &out)
        JSONWriter.appendRaw(",\"trades\":[", to: &out)
        for (i, trade) in trades.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendTrade(trade, to: &out)
        }
        JSONWriter.appendRaw("]}]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// One client of the simulated Coinbase websocket.
public struct CoinbaseSession: VenueSession {
    public let configuration: SimulatedSessionConfiguration
    let toInstrument: [String: String]
    let connectedAt: Int64
    var closed = false
    var sequence = 0
    var heartbeats = false
    var heartbeatCounter = 0
    var lastHeartbeat: Int64 = 0
    /// Products subscribed on `market_trades`, as instruments ("BTC_USDT").
    public private(set) var subscribed: Set<String> = []
    var subscribedProducts: [String] = []
    var snapshotsOwed: [String] = []
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
        toInstrument = CoinbaseVenue.symbolMaps(instruments).toInstrument
    }

    public mutating func received(_ text: String, at time: Int64) -> [SessionAction] {
        guard !closed else { return [] }
        guard let request = try? SimpleRequest.parse(text, method: "type", list: "product_ids") else {
            return [.send(#"{"type":"error","message":"malformed request"}"#)]
        }
        guard request.method == "subscribe" || request.method == "unsubscribe" else {
            return [.send(#"{"type":"error","message":"unknown message type"}"#)]
        }
        if let unknown = request.list.first(where: { toInstrument[$0] == nil }) {
            return [.send("{\"type\":\"error\",\"message\":\"failure to subscribe: unknown product \(unknown)\"}")]
        }
        switch request.channel {
        case "market_trades":
            for product in request.list {
                if request.method == "subscribe" {
                    if subscribed.insert(toInstrument[product]!).inserted {
                        subscribedProducts.append(product)
                        snapshotsOwed.append(toInstrument[product]!)
                    }
                } else {
                    subscribed.remove(toInstrument[product]!)
                    subscribedProducts.removeAll { $0 == product }
                }
            }
        case "heartbeats":
            heartbeats = request.method == "subscribe"
        default:
            return [.send(#"{"type":"error","message":"unknown channel"}"#)]
        }
        sequence += 1
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"channel\":\"subscriptions\",\"client_id\":\"\",\"timestamp\":", to: &out)
        JSONWriter.appendString(rfc3339(milliseconds: time), to: &out)
        JSONWriter.appendRaw(",\"sequence_num\":", to: &out)
        JSONWriter.appendInt(Int64(sequence), to: &out)
        JSONWriter.appendRaw(",\"events\":[{\"subscriptions\":{", to: &out)
        var channels: [(String, [String])] = []
        if !subscribedProducts.isEmpty { channels.append(("market_trades", subscribedProducts)) }
        if heartbeats { channels.append(("heartbeats", ["heartbeats"])) }
        for (i, (channel, products)) in channels.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(channel, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(UInt8(ascii: "["))
            for (j, product) in products.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(product, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        JSONWriter.appendRaw("}}]}", to: &out)
        return [.send(String(decoding: out, as: UTF8.self))]
    }

    public mutating func takeSnapshotRequests() -> [String] {
        defer { snapshotsOwed = [] }
        return snapshotsOwed
    }

    /// A `market_trades` message with a `snapshot` event of recent trades, newest first.
    public mutating func snapshot(_ trades: [SimulatedTrade], instrument: String) -> [SessionAction] {
        guard !closed, !trades.isEmpty else { return [] }
        sequence += 1
        return [.send(CoinbaseVenue.tradesMessage(trades, sequence: sequence, pushTime: trades[0].pushTime, type: "snapshot"))]
    }

    public mutating func publish(_ orders: [SimulatedOrder], at time: Int64) -> [SessionAction] {
        guard !closed else { return [] }
        // Coinbase disconnects a client that has not subscribed within 5 s; nothing is expected after.
        if subscribed.isEmpty && !heartbeats && time - connectedAt >= 5_000 {
            closed = true
            return [.close(reason: "no subscribe within 5 s")]
        }
        if let close = lifetimeCheck(&closed, lastReceived: time, connectedAt: connectedAt, configuration, at: time, checkIdle: false) {
            return [close]
        }
        var actions: [SessionAction] = []
        if heartbeats && time - lastHeartbeat >= 1_000 {
            lastHeartbeat = time
            heartbeatCounter += 1
            sequence += 1
            actions.append(
                .send(
                    "{\"channel\":\"heartbeats\",\"client_id\":\"\",\"timestamp\":\"\(rfc3339(milliseconds: time))\",\"sequence_num\":\(sequence),\"events\":[{\"current_time\":\"\(rfc3339(milliseconds: time))\",\"heartbeat_counter\":\"\(heartbeatCounter)\"}]}"
                ))
        }
        for order in orders where subscribed.contains(order.nativeSymbol) && !order.trades.isEmpty {
            framesSent += 1
            sequence += 1
            var frame = CoinbaseVenue.tradesMessage(order.trades, sequence: sequence, pushTime: order.trades.first?.pushTime ?? time)
            if let every = configuration.malformedFrameEvery, every > 0, framesSent % every == 0 {
                frame = WireFaults.malformed(frame, variant: UInt64(framesSent / every))
                malformedFramesSent += 1
                malformedFrames.append(frame)
            }
            actions.append(.send(frame))
        }
        return actions
    }
}
