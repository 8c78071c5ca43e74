import MarketData

/// One client connection to the simulated Poloniex websocket, as a value (no sockets): feed it
/// what the client sent, the market's new orders and the clock; it answers with actions for the
/// server to carry out. Behaves like the venue: acks echo `channel` as a string, `ping` gets
/// `pong`, unknown symbols and bad requests get `{"event":"error",...}`, a client silent for
/// `idleTimeout` is dropped. Fault knobs: drop the connection every N ms, break every Nth trades
/// frame, write ids as numbers every Nth frame.
public struct PoloniexSession: VenueSession {
    /// Behaviour and fault knobs.
    public typealias Configuration = SimulatedSessionConfiguration

    /// What the server must do.
    public typealias Action = SessionAction

    public let configuration: Configuration
    let knownSymbols: Set<String>
    let connectedAt: Int64
    var lastReceived: Int64
    var closed = false
    var allSymbols = false
    /// Symbols subscribed on the `trades` channel.
    public private(set) var tradeSymbols: Set<String> = []
    /// Trades frames sent (malformed ones included).
    public private(set) var framesSent = 0
    /// Malformed frames sent on purpose.
    public private(set) var malformedFramesSent = 0
    var malformedFrames: [String] = []

    public mutating func takeMalformedFrames() -> [String] {
        defer { malformedFrames = [] }
        return malformedFrames
    }

    public init(knownSymbols: [String], configuration: Configuration = Configuration(), connectedAt: Int64) {
        self.knownSymbols = Set(knownSymbols)
        self.configuration = configuration
        self.connectedAt = connectedAt
        self.lastReceived = connectedAt
    }

    /// True once the session decided to close.
    public var isClosed: Bool { closed }

    /// A text frame from the client.
    public mutating func received(_ text: String, at time: Int64) -> [Action] {
        guard !closed else { return [] }
        lastReceived = time
        guard let request = try? PoloniexSession.parseRequest(text) else {
            return [.send(PoloniexWire.error(message: "Invalid request: not a JSON object with an event"))]
        }
        switch request.event {
        case "ping":
            return [.send(PoloniexWire.pong)]
        case "subscribe", "unsubscribe":
            guard !request.channels.isEmpty else {
                return [.send(PoloniexWire.error(message: "Missing channel"))]
            }
            let wantsAll = request.symbols.contains { $0.lowercased() == "all" }
            if !wantsAll {
                if request.symbols.isEmpty { return [.send(PoloniexWire.error(message: "Missing symbols"))] }
                if let unknown = request.symbols.first(where: { !knownSymbols.contains($0) }) {
                    return [.send(PoloniexWire.error(message: "Invalid symbol: \(unknown)"))]
                }
            }
            var actions: [Action] = []
            for channel in request.channels {
                if channel == "trades" {
                    if request.event == "subscribe" {
                        if wantsAll { allSymbols = true } else { tradeSymbols.formUnion(request.symbols) }
                    } else {
                        if wantsAll {
                            allSymbols = false
                            tradeSymbols = []
                        } else {
                            tradeSymbols.subtract(request.symbols)
                        }
                    }
                }
                actions.append(
                    .send(PoloniexWire.subscribeAck(channel: channel, symbols: request.symbols, event: request.event)))
            }
            return actions
        default:
            return [.send(PoloniexWire.error(message: "Unsupported event: \(request.event)"))]
        }
    }

    /// New market orders: one trades frame per order on a subscribed symbol.
    public mutating func publish(_ orders: [SimulatedOrder], at time: Int64) -> [Action] {
        var actions = tick(at: time)
        guard !closed else { return actions }
        for order in orders where !order.trades.isEmpty && (allSymbols || tradeSymbols.contains(order.nativeSymbol)) {
            framesSent += 1
            let numeric = configuration.numericIdsEvery.map { $0 > 0 && framesSent % $0 == 0 } ?? false
            var frame = PoloniexWire.tradesFrame(order.trades, numericIds: numeric)
            if let every = configuration.malformedFrameEvery, every > 0, framesSent % every == 0 {
                frame = WireFaults.malformed(frame, variant: UInt64(framesSent / every))
                malformedFramesSent += 1
                malformedFrames.append(frame)
            }
            actions.append(.send(frame))
        }
        return actions
    }

    /// The clock moved: drop a silent client, or a connection whose planned lifetime is over.
    public mutating func tick(at time: Int64) -> [Action] {
        guard !closed else { return [] }
        if time - lastReceived >= configuration.idleTimeout {
            closed = true
            return [.close(reason: "no message from the client for \(configuration.idleTimeout) ms")]
        }
        if let after = configuration.dropConnectionAfter, time - connectedAt >= after {
            closed = true
            return [.close(reason: "simulated connection drop after \(after) ms")]
        }
        return []
    }

    struct Request {
        var event: String
        var channels: [String]
        var symbols: [String]
    }

    static func parseRequest(_ text: String) throws(JSONError) -> Request {
        try JSONScanner.withScanner(over: text) { (s: inout JSONScanner) throws(JSONError) -> Request in
            var request = Request(event: "", channels: [], symbols: [])
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                if s.token(key, equals: "event") {
                    request.event = try s.readStringValue()
                } else if s.token(key, equals: "channel") {
                    request.channels = try readStrings(&s)
                } else if s.token(key, equals: "symbols") {
                    request.symbols = try readStrings(&s)
                } else {
                    try s.skipValue()
                }
            }
            guard s.isAtEnd(), !request.event.isEmpty else {
                throw JSONError(.badValue, "not a request", at: s.position)
            }
            return request
        }
    }

    /// A string or an array of strings.
    static func readStrings(_ s: inout JSONScanner) throws(JSONError) -> [String] {
        if try s.peek() != UInt8(ascii: "[") { return [try s.readStringValue()] }
        var result: [String] = []
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) { result.append(try s.readStringValue()) }
        return result
    }
}
