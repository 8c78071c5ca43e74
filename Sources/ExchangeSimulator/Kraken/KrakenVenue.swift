import MarketData

/// A Kraken websocket v2 look-alike for `VenueSimulator`: websocket at `/v2` (a `status` message
/// on connect, one subscribe acknowledgement per symbol, `trade` updates with every fill of a
/// taker order — `price` and `qty` as JSON **numbers**, `timestamp` RFC 3339 with µs —,
/// `heartbeat` every second, `ping` → `pong`, clients silent for `idleTimeout` dropped) and REST
/// `GET /0/public/AssetPairs` and `GET /0/public/Trades?pair=&count=` (oldest first, rows under
/// the pair's canonical name, time as seconds with a fraction). REST spells Bitcoin XBT and
/// Dogecoin XDG, as Kraken does; v2 says BTC and DOGE.
///
/// Books: the v2 `book` channel at depth 10, 25, 100, 500 or 1000 (`KrakenBookStream`: a snapshot
/// on subscribe, one update per order that changed the visible book, CRC32 checksums, numbers
/// printed as JSON numbers); AssetPairs lists `pair_decimals` (the instrument's price scale) and
/// `lot_decimals` (`lotDecimals`), which the checksum uses. Book fault knobs: leave out every Nth
/// update, corrupt every Nth checksum, send every Nth update after the next one of its symbol.
public enum KrakenVenue: SimulatedVenue {
    public static let exchange = Exchange("kraken")
    public static let websocketPath = "/v2"

    /// Quantity decimals of every simulated pair (Kraken's `lot_decimals` for most pairs).
    public static let lotDecimals = 8

    /// Book depths Kraken accepts.
    public static let bookDepths: Set<Int> = [10, 25, 100, 500, 1000]

    /// "BTC_USDT" → "BTC/USDT".
    public static func nativeSymbol(instrument: String) -> String {
        instrument.replacingUnderscores(with: "/")
    }

    /// Kraken's REST spelling of an asset (XBT, XDG).
    static func restAsset(_ asset: String) -> String {
        switch asset {
        case "BTC": "XBT"
        case "DOGE": "XDG"
        default: asset
        }
    }

    /// "BTC_USDT" → altname "XBTUSDT".
    static func altname(_ instrument: String) -> String {
        let (base, quote) = split(instrument)
        return restAsset(base) + restAsset(quote)
    }

    /// "BTC_USDT" → the canonical pair name REST answers under, "XXBTZUSDT".
    static func canonicalName(_ instrument: String) -> String {
        let (base, quote) = split(instrument)
        return "X" + restAsset(base) + "Z" + restAsset(quote)
    }

    public static func makeSession(instruments: [String], configuration: SimulatedSessionConfiguration, connectedAt: Int64)
        -> KrakenSession
    {
        KrakenSession(instruments: instruments, configuration: configuration, connectedAt: connectedAt)
    }

    public static func respond(toPath path: String, market: MarketSimulator) -> SimulatedRESTResponse {
        let (route, query) = splitQuery(path)
        switch route {
        case "/0/public/AssetPairs":
            var out: [UInt8] = []
            JSONWriter.appendRaw("{\"error\":[],\"result\":{", to: &out)
            for (i, instrument) in market.nativeSymbols.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                let (base, quote) = split(instrument)
                JSONWriter.appendString(canonicalName(instrument), to: &out)
                JSONWriter.appendRaw(":{\"altname\":", to: &out)
                JSONWriter.appendString(altname(instrument), to: &out)
                JSONWriter.appendRaw(",\"wsname\":", to: &out)
                JSONWriter.appendString(restAsset(base) + "/" + restAsset(quote), to: &out)
                JSONWriter.appendRaw(",\"aclass_base\":\"currency\",\"base\":", to: &out)
                JSONWriter.appendString("X" + restAsset(base), to: &out)
                JSONWriter.appendRaw(",\"aclass_quote\":\"currency\",\"quote\":", to: &out)
                JSONWriter.appendString("Z" + restAsset(quote), to: &out)
                JSONWriter.appendRaw(",\"pair_decimals\":", to: &out)
                JSONWriter.appendInt(Int64(i < market.priceScales.count ? market.priceScales[i] : 0), to: &out)
                JSONWriter.appendRaw(",\"lot_decimals\":", to: &out)
                JSONWriter.appendInt(Int64(lotDecimals), to: &out)
                JSONWriter.appendRaw(",\"status\":\"online\"}", to: &out)
            }
            JSONWriter.appendRaw("}}", to: &out)
            return SimulatedRESTResponse(status: 200, body: String(decoding: out, as: UTF8.self))
        case "/0/public/Trades":
            guard let pair = query["pair"], let instrument = market.nativeSymbols.first(where: { altname($0) == pair }) else {
                return SimulatedRESTResponse(status: 200, body: #"{"error":["EQuery:Unknown asset pair"]}"#)
            }
            let count = query["count"].flatMap(Int.init).map { max(1, min($0, 1_000)) } ?? 1_000
            let trades = (market.recentTrades(nativeSymbol: instrument, limit: count) ?? []).reversed()
            var out: [UInt8] = []
            JSONWriter.appendRaw("{\"error\":[],\"result\":{", to: &out)
            JSONWriter.appendString(canonicalName(instrument), to: &out)
            JSONWriter.appendRaw(":[", to: &out)
            var last: Int64 = 0
            for (i, trade) in trades.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "["))
                JSONWriter.appendDecimal(trade.price, to: &out)
                out.append(UInt8(ascii: ","))
                JSONWriter.appendDecimal(trade.quantity, to: &out)
                out.append(UInt8(ascii: ","))
                // Seconds with four fraction digits: the fourth (sub-millisecond) must be truncated away.
                let seconds = trade.createTime / 1_000
                let millis = trade.createTime % 1_000
                JSONWriter.appendInt(seconds, to: &out)
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: Array(String(1_000 + millis).utf8.dropFirst()))
                out.append(UInt8(ascii: "0") + UInt8(trade.id % 10))
                JSONWriter.appendRaw(trade.takerSide == .buy ? ",\"b\"" : ",\"s\"", to: &out)
                JSONWriter.appendRaw(trade.id % 3 == 0 ? ",\"m\",\"\"," : ",\"l\",\"\",", to: &out)
                JSONWriter.appendInt(trade.id, to: &out)
                out.append(UInt8(ascii: "]"))
                last = trade.createTime * 1_000_000
            }
            JSONWriter.appendRaw("],\"last\":\"", to: &out)
            JSONWriter.appendInt(last, to: &out)
            JSONWriter.appendRaw("\"}}", to: &out)
            return SimulatedRESTResponse(status: 200, body: String(decoding: out, as: UTF8.self))
        default:
            return SimulatedRESTResponse(status: 404, body: #"{"error":["EGeneral:Unknown method"]}"#)
        }
    }

    /// A `trade` message with `trades`; prices and quantities written as bare JSON numbers.
    public static func tradesMessage(_ trades: [SimulatedTrade], type: String = "update") -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"channel\":\"trade\",\"type\":", to: &out)
        JSONWriter.appendString(type, to: &out)
        JSONWriter.appendRaw(",\"data\":[", to: &out)
        for (i, trade) in trades.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"symbol\":", to: &out)
            JSONWriter.appendString(nativeSymbol(instrument: trade.nativeSymbol), to: &out)
            JSONWriter.appendRaw(trade.takerSide == .buy ? ",\"side\":\"buy\"" : ",\"side\":\"sell\"", to: &out)
            JSONWriter.appendRaw(",\"price\":", to: &out)
            trade.price.appendText(to: &out)
            JSONWriter.appendRaw(",\"qty\":", to: &out)
            trade.quantity.appendText(to: &out)
            JSONWriter.appendRaw(trade.id % 3 == 0 ? ",\"ord_type\":\"market\"" : ",\"ord_type\":\"limit\"", to: &out)
            JSONWriter.appendRaw(",\"trade_id\":", to: &out)
            JSONWriter.appendInt(trade.id, to: &out)
            JSONWriter.appendRaw(",\"timestamp\":", to: &out)
            // Microseconds: three digits below the millisecond, to be truncated by the reader.
            let micros = String(1_000 + (trade.id &* 389) % 1_000).dropFirst()
            JSONWriter.appendString(rfc3339(milliseconds: trade.createTime, extraDigits: String(micros)), to: &out)
            out.append(UInt8(ascii: "}"))
        }
        JSONWriter.appendRaw("]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// One client of the simulated Kraken v2 websocket.
public struct KrakenSession: VenueSession {
    public let configuration: SimulatedSessionConfiguration
    let toInstrument: [String: String]
    let connectedAt: Int64
    var lastReceived: Int64
    var closed = false
    var greeted = false
    var lastHeartbeat: Int64 = 0
    /// Instruments subscribed ("BTC_USDT").
    public private(set) var subscribed: Set<String> = []
    var snapshotsOwed: [String] = []
    /// Instruments subscribed on `book`, with their depth.
    public private(set) var bookDepths: [String: Int] = [:]
    /// Book streams whose snapshot went out.
    var bookStreams: [String: KrakenBookStream] = [:]
    var bookSnapshotsOwed: [String] = []
    /// Book updates the session built (sent, skipped, corrupted or held back).
    public private(set) var bookUpdates = 0
    public private(set) var bookUpdatesSkipped = 0
    public private(set) var checksumsCorrupted = 0
    public private(set) var bookUpdatesSwapped = 0
    var heldBookUpdates: [String: String] = [:]
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
        toInstrument = KrakenVenue.symbolMaps(instruments).toInstrument
    }

    public mutating func takeSnapshotRequests() -> [String] {
        defer { snapshotsOwed = [] }
        return snapshotsOwed
    }

    /// A `trade` snapshot of the most recent trades, oldest first as in Kraken's example.
    public mutating func snapshot(_ trades: [SimulatedTrade], instrument: String) -> [SessionAction] {
        guard !closed, !trades.isEmpty else { return [] }
        return [.send(KrakenVenue.tradesMessage(trades.reversed(), type: "snapshot"))]
    }

    public mutating func received(_ text: String, at time: Int64) -> [SessionAction] {
        guard !closed else { return [] }
        lastReceived = time
        guard let request = try? SimpleRequest.parse(text, method: "method", list: "symbol") else {
            return [.send(#"{"error":"Malformed request","method":"","success":false}"#)]
        }
        let stamps = "\"time_in\":\"\(rfc3339(milliseconds: time, extraDigits: "000"))\",\"time_out\":\"\(rfc3339(milliseconds: time, extraDigits: "001"))\""
        let reqID = request.id.map { ",\"req_id\":\($0)" } ?? ""
        switch request.method {
        case "ping":
            return [.send("{\"method\":\"pong\"\(reqID),\(stamps)}")]
        case "subscribe" where request.channel == "book", "unsubscribe" where request.channel == "book":
            return bookRequest(request, depth: KrakenSession.requestedDepth(text), stamps: stamps, reqID: reqID)
        case "subscribe", "unsubscribe":
            guard request.channel == "trade" else {
                return [.send("{\"error\":\"Channel not supported by the simulator\",\"method\":\"\(request.method)\",\"success\":false\(reqID),\(stamps)}")]
            }
            var actions: [SessionAction] = []
            for symbol in request.list {
                guard let instrument = toInstrument[symbol] else {
                    actions.append(
                        .send(
                            "{\"error\":\"Currency pair not supported \(symbol)\",\"method\":\"\(request.method)\",\"success\":false,\"symbol\":\"\(symbol)\"\(reqID),\(stamps)}"
                        ))
                    continue
                }
                if request.method == "subscribe" {
                    if subscribed.insert(instrument).inserted, request.snapshot { snapshotsOwed.append(instrument) }
                } else {
                    subscribed.remove(instrument)
                }
                actions.append(
                    .send(
                        "{\"method\":\"\(request.method)\",\"result\":{\"channel\":\"trade\",\"snapshot\":true,\"symbol\":\"\(symbol)\"},\"success\":true\(reqID),\(stamps)}"
                    ))
            }
            return actions
        default:
            return [.send("{\"error\":\"Method not found\",\"method\":\"\(request.method)\",\"success\":false\(reqID),\(stamps)}")]
        }
    }

    /// A `book` subscribe or unsubscribe: one acknowledgement per symbol.
    mutating func bookRequest(_ request: SimpleRequest, depth: Int?, stamps: String, reqID: String) -> [SessionAction] {
        let depth = depth ?? 10
        guard KrakenVenue.bookDepths.contains(depth) else {
            return [.send("{\"error\":\"Invalid depth \(depth)\",\"method\":\"\(request.method)\",\"success\":false\(reqID),\(stamps)}")]
        }
        var actions: [SessionAction] = []
        for symbol in request.list {
            guard let instrument = toInstrument[symbol] else {
                actions.append(
                    .send(
                        "{\"error\":\"Currency pair not supported \(symbol)\",\"method\":\"\(request.method)\",\"success\":false,\"symbol\":\"\(symbol)\"\(reqID),\(stamps)}"
                    ))
                continue
            }
            if request.method == "subscribe" {
                if bookDepths[instrument] == nil {
                    bookDepths[instrument] = depth
                    bookSnapshotsOwed.append(instrument)
                }
            } else {
                bookDepths[instrument] = nil
                bookStreams[instrument] = nil
                heldBookUpdates[instrument] = nil
                bookSnapshotsOwed.removeAll { $0 == instrument }
            }
            actions.append(
                .send(
                    "{\"method\":\"\(request.method)\",\"result\":{\"channel\":\"book\",\"depth\":\(depth),\"snapshot\":true,\"symbol\":\"\(symbol)\"},\"success\":true\(reqID),\(stamps)}"
                ))
        }
        return actions
    }

    /// `params.depth` of a request, if it has one.
    static func requestedDepth(_ text: String) -> Int? {
        try? JSONScanner.withScanner(over: text) { (s: inout JSONScanner) throws(JSONError) -> Int? in
            var depth: Int?
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                guard s.token(key, equals: "params"), try s.peek() == UInt8(ascii: "{") else {
                    try s.skipValue()
                    continue
                }
                try s.beginObject()
                var firstParam = true
                while let param = try s.nextKey(first: &firstParam) {
                    if s.token(param, equals: "depth"), try s.peek() != UInt8(ascii: "\"") {
                        let value = try s.readInt64()
                        depth = value >= 0 && value <= 1_000_000 ? Int(value) : -1
                    } else {
                        try s.skipValue()
                    }
                }
            }
            return depth
        }
    }

    public mutating func takeBookSnapshotRequests() -> [String] {
        defer { bookSnapshotsOwed = [] }
        return bookSnapshotsOwed
    }

    /// The `book` snapshot of an instrument subscribed and still owed one.
    public mutating func bookSnapshot(_ book: OrderBook, updateId: Int64, instrument: String) -> [SessionAction] {
        guard !closed, let depth = bookDepths[instrument], bookStreams[instrument] == nil else { return [] }
        let stream = KrakenBookStream(
            book: book, updateId: updateId, depth: depth, priceDecimals: KrakenBookStream.decimals(of: book),
            quantityDecimals: KrakenVenue.lotDecimals)
        bookStreams[instrument] = stream
        return [.send(stream.snapshotMessage(symbol: KrakenVenue.nativeSymbol(instrument: instrument)))]
    }

    /// One `book` update for an order that changed the visible book of a streamed instrument.
    mutating func appendBookUpdate(_ order: SimulatedOrder, to actions: inout [SessionAction]) {
        guard !order.bookChanges.isEmpty, var stream = bookStreams[order.nativeSymbol], order.bookUpdateId > stream.updateId else {
            return
        }
        let update = stream.apply(order.bookChanges, updateId: order.bookUpdateId)
        bookStreams[order.nativeSymbol] = stream
        guard let update else { return }
        bookUpdates += 1
        var checksum = update.checksum
        if let every = configuration.corruptChecksumEvery, every > 0, bookUpdates % every == 0 {
            checksum ^= 0x0000_0400
            checksumsCorrupted += 1
        }
        let micros = String(1_000 + (order.bookUpdateId &* 389) % 1_000).dropFirst()
        let frame = KrakenBookStream.message(
            type: "update", symbol: KrakenVenue.nativeSymbol(instrument: order.nativeSymbol), bids: update.bids, asks: update.asks,
            checksum: checksum, timestamp: rfc3339(milliseconds: order.time, extraDigits: String(micros)))
        if let every = configuration.skipBookUpdateEvery, every > 0, bookUpdates % every == 0 {
            bookUpdatesSkipped += 1
            return
        }
        if let every = configuration.swapBookUpdatesEvery, every > 0, bookUpdates % every == 0,
            heldBookUpdates[order.nativeSymbol] == nil
        {
            bookUpdatesSwapped += 1
            heldBookUpdates[order.nativeSymbol] = frame
            return
        }
        actions.append(.send(frame))
        if let held = heldBookUpdates.removeValue(forKey: order.nativeSymbol) { actions.append(.send(held)) }
    }

    public mutating func publish(_ orders: [SimulatedOrder], at time: Int64) -> [SessionAction] {
        guard !closed else { return [] }
        if let close = lifetimeCheck(&closed, lastReceived: lastReceived, connectedAt: connectedAt, configuration, at: time) {
            return [close]
        }
        var actions: [SessionAction] = []
        if !greeted {
            greeted = true
            actions.append(
                .send(#"{"channel":"status","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.0"}],"type":"update"}"#))
        }
        if !(subscribed.isEmpty && bookDepths.isEmpty) && time - lastHeartbeat >= 1_000 {
            lastHeartbeat = time
            actions.append(.send(#"{"channel":"heartbeat"}"#))
        }
        for order in orders where subscribed.contains(order.nativeSymbol) && !order.trades.isEmpty {
            framesSent += 1
            var frame = KrakenVenue.tradesMessage(order.trades)
            if let every = configuration.malformedFrameEvery, every > 0, framesSent % every == 0 {
                frame = WireFaults.malformed(frame, variant: UInt64(framesSent / every))
                malformedFramesSent += 1
                malformedFrames.append(frame)
            }
            actions.append(.send(frame))
        }
        for order in orders { appendBookUpdate(order, to: &actions) }
        return actions
    }
}

/// `BinanceSimulator`, `CoinbaseSimulator`, `KrakenSimulator`: `VenueSimulator` speaking each venue's wire format.
public typealias BinanceSimulator = VenueSimulator<BinanceVenue>
public typealias CoinbaseSimulator = VenueSimulator<CoinbaseVenue>
public typealias KrakenSimulator = VenueSimulator<KrakenVenue>
