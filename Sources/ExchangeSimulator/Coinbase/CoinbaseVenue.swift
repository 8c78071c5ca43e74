import MarketData

/// A Coinbase Advanced Trade look-alike for `VenueSimulator`: websocket at `/` (one channel per
/// subscribe, `subscriptions` confirmations, `market_trades` update events with every fill of a
/// taker order, `heartbeats` every second, no client traffic required after subscribing; `level2`
/// as `l2_data`: a `snapshot` event on subscribe, then one `update` event per order that changed
/// the book; one connection-wide `sequence_num` for every message, so a book fault that leaves a
/// message out skips a number, and one that swaps two sends a number late) and the
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

    /// An `l2_data` message with one event of `instrument`: `bids` and `asks` (`offer`) in order.
    public static func level2Message(
        instrument: String, type: String, bids: [BookLevel], asks: [BookLevel], sequence: Int, time: Int64
    ) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"channel\":\"l2_data\",\"client_id\":\"\",\"timestamp\":", to: &out)
        JSONWriter.appendString(rfc3339(milliseconds: time, extraDigits: "000"), to: &out)
        JSONWriter.appendRaw(",\"sequence_num\":", to: &out)
        JSONWriter.appendInt(Int64(sequence), to: &out)
        JSONWriter.appendRaw(",\"events\":[{\"type\":", to: &out)
        JSONWriter.appendString(type, to: &out)
        JSONWriter.appendRaw(",\"product_id\":", to: &out)
        JSONWriter.appendString(nativeSymbol(instrument: instrument), to: &out)
        JSONWriter.appendRaw(",\"updates\":[", to: &out)
        // Snapshot levels carry a zero event time, as Coinbase's do.
        let eventTime = type == "snapshot" ? "1970-01-01T00:00:00Z" : rfc3339(milliseconds: time)
        var first = true
        for (side, levels) in [("bid", bids), ("offer", asks)] {
            for level in levels {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSONWriter.appendRaw("{\"side\":", to: &out)
                JSONWriter.appendString(side, to: &out)
                JSONWriter.appendRaw(",\"event_time\":", to: &out)
                JSONWriter.appendString(eventTime, to: &out)
                JSONWriter.appendRaw(",\"price_level\":", to: &out)
                JSONWriter.appendString(level.price, to: &out)
                JSONWriter.appendRaw(",\"new_quantity\":", to: &out)
                JSONWriter.appendString(level.quantity, to: &out)
                out.append(UInt8(ascii: "}"))
            }
        }
        JSONWriter.appendRaw("]}]}", to: &out)
        return String(decoding: out, as: UTF8.self)
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
    /// Time of the last publish (the clock of snapshot messages).
    var lastPublish: Int64
    /// Products subscribed on `market_trades`, as instruments ("BTC_USDT").
    public private(set) var subscribed: Set<String> = []
    var subscribedProducts: [String] = []
    var snapshotsOwed: [String] = []
    /// Products subscribed on `level2`, as instruments, and the order they were subscribed in.
    public private(set) var level2Subscribed: Set<String> = []
    var level2Products: [String] = []
    var bookSnapshotsOwed: [String] = []
    /// Book updates produced (sent, skipped or held); the book fault knobs count these.
    public private(set) var bookUpdatesProduced = 0
    /// Book updates left out on purpose (their `sequence_num` is used: a lost message).
    public private(set) var bookUpdatesSkipped = 0
    /// Book updates sent after the next message on purpose.
    public private(set) var bookUpdatesSwapped = 0
    var heldBookUpdate: String?
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
        lastPublish = connectedAt
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
        case "level2":
            for product in request.list {
                let instrument = toInstrument[product]!
                if request.method == "subscribe" {
                    if level2Subscribed.insert(instrument).inserted { level2Products.append(product) }
                    // A snapshot on every subscribe: it is how a client resynchronizes.
                    bookSnapshotsOwed.append(instrument)
                } else {
                    level2Subscribed.remove(instrument)
                    level2Products.removeAll { $0 == product }
                    bookSnapshotsOwed.removeAll { $0 == instrument }
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
        if !level2Products.isEmpty { channels.append(("level2", level2Products)) }
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

    public mutating func takeBookSnapshotRequests() -> [String] {
        defer { bookSnapshotsOwed = [] }
        return bookSnapshotsOwed
    }

    /// An `l2_data` message with the `snapshot` event of `book`, best levels first.
    public mutating func bookSnapshot(_ book: OrderBook, updateId: Int64, instrument: String) -> [SessionAction] {
        guard !closed, level2Subscribed.contains(instrument) else { return [] }
        sequence += 1
        return [
            .send(
                CoinbaseVenue.level2Message(
                    instrument: instrument, type: "snapshot", bids: book.bids(), asks: book.asks(), sequence: sequence,
                    time: lastPublish))
        ]
    }

    /// A `market_trades` message with a `snapshot` event of recent trades, newest first.
    public mutating func snapshot(_ trades: [SimulatedTrade], instrument: String) -> [SessionAction] {
        guard !closed, !trades.isEmpty else { return [] }
        sequence += 1
        return [.send(CoinbaseVenue.tradesMessage(trades, sequence: sequence, pushTime: trades[0].pushTime, type: "snapshot"))]
    }

    public mutating func publish(_ orders: [SimulatedOrder], at time: Int64) -> [SessionAction] {
        guard !closed else { return [] }
        lastPublish = max(lastPublish, time)
        // Coinbase disconnects a client that has not subscribed within 5 s; nothing is expected after.
        if subscribed.isEmpty && level2Subscribed.isEmpty && !heartbeats && time - connectedAt >= 5_000 {
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
        for order in orders where level2Subscribed.contains(order.nativeSymbol) && !order.bookChanges.isEmpty {
            sequence += 1
            var bids: [BookLevel] = []
            var asks: [BookLevel] = []
            for change in order.bookChanges {
                if change.side == .bid { bids.append(change.level) } else { asks.append(change.level) }
            }
            let message = CoinbaseVenue.level2Message(
                instrument: order.nativeSymbol, type: "update", bids: bids, asks: asks, sequence: sequence, time: time)
            bookUpdatesProduced += 1
            if let every = configuration.skipBookUpdateEvery, every > 0, bookUpdatesProduced % every == 0 {
                bookUpdatesSkipped += 1  // its number is spent: the client sees a gap
                continue
            }
            if let every = configuration.swapBookUpdatesEvery, every > 0, bookUpdatesProduced % every == 0, heldBookUpdate == nil {
                heldBookUpdate = message
                bookUpdatesSwapped += 1
                continue
            }
            actions.append(.send(message))
            if let held = heldBookUpdate {
                actions.append(.send(held))
                heldBookUpdate = nil
            }
        }
        return actions
    }
}
