import Foundation
import MarketData
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// Settings of `PoloniexSimulator`.
public struct PoloniexSimulatorConfiguration: Sendable {
    /// Address to listen on. Default 127.0.0.1.
    public var host = "127.0.0.1"
    /// Port; 0 picks a free one. Default 0.
    public var port = 0
    /// Trades per second, over all markets. Default 50.
    public var rate: Double = 50
    /// Native symbols; nil = `MarketGenerator.defaultSymbols(count: 12)`.
    public var symbols: [String]?
    /// Seed of the market. Default 1.
    public var seed: UInt64 = 1
    /// Drop every websocket connection this often (fault injection). Default never.
    public var dropEvery: Duration?
    /// Send a malformed frame after every N frames to each client (fault injection). Default never.
    public var malformedEvery: Int?
    /// Drop a client that sent nothing for this long (Poloniex: 30 s).
    public var silenceTimeout: Duration = .seconds(30)
    /// Trades per market kept for REST (Poloniex returns at most 1000). Default 1000.
    public var historyLimit = 1000
    /// Stop generating after this many trades (the servers keep running). Default never.
    public var maxTrades: Int?
    /// Every Nth frame writes trade ids as JSON numbers instead of strings. Default 4.
    public var numericIDEvery = 4
    /// Listed markets in state PAUSE (never traded), to exercise `all`. Default one.
    public var pausedSymbols = ["PAUSED_USDT"]
    /// Append every generated trade (Tape's Trade JSON, `receivedAt` 0) to this file.
    public var tradesLog: String?
    /// Append every malformed frame sent to this file, one a line.
    public var malformedLog: String?

    public init() {}
}

/// A Poloniex look-alike on loopback, for `tape simulate`, `tape up --offline` and the tests:
/// a seeded market (`MarketGenerator`) served on a websocket at `/ws/public` and REST at
/// `/markets` and `/markets/{symbol}/trades?limit=` — subscribe acks with `channel` as a string,
/// several trades per frame, ids as strings (sometimes numbers), uppercase `takerSide` on REST,
/// `{"event":"ping"}` answered by `{"event":"pong"}`, clients silent for 30 s dropped — with
/// fault knobs (drop every connection every N seconds, malformed frames).
///
/// ```
/// let simulator = try await PoloniexSimulator.build(configuration)
/// print(simulator.websocketURL, simulator.restURL)
/// try await simulator.run()   // until cancelled
/// ```
public final class PoloniexSimulator: Sendable {
    public let configuration: PoloniexSimulatorConfiguration
    /// `ws://host:port/ws/public`
    public let websocketURL: String
    /// `http://host:port`
    public let restURL: String
    public let port: Int

    let server: NIOAsyncChannel<EventLoopFuture<Upgrade>, Never>
    let state: Mutex<State>
    let logs: Logs

    enum Upgrade: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case http(NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>)
    }

    struct State: Sendable {
        var generator: MarketGenerator
        var history: [String: [Trade]] = [:]
        var clients: [Int: Client] = [:]
        var nextClientID = 0
        var generated = 0
        var framesSent = 0
        var malformedSent = 0
        var dropped = 0
    }

    struct Client: Sendable {
        var channel: any Channel
        var outbox: AsyncStream<String>.Continuation
        var symbols: Set<String> = []
        var lastHeard: ContinuousClock.Instant
        var framesSinceMalformed = 0
        var malformedCount = 0
    }

    /// Binds the servers; `run` serves them.
    public static func build(_ configuration: PoloniexSimulatorConfiguration) async throws -> PoloniexSimulator {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketServerUpgrader<Upgrade>(
                        maxFrameSize: 1 << 20,
                        shouldUpgrade: { channel, head in
                            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
                            return channel.eventLoop.makeSucceededFuture(path == "/ws/public" ? HTTPHeaders() : nil)
                        },
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                .websocket(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                            }
                        })
                    let configuration = NIOTypedHTTPServerUpgradeConfiguration(
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                .http(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                            }
                        })
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                        configuration: .init(upgradeConfiguration: configuration))
                }
            }
        return try PoloniexSimulator(configuration: configuration, server: server)
    }

    private init(configuration: PoloniexSimulatorConfiguration, server: NIOAsyncChannel<EventLoopFuture<Upgrade>, Never>) throws {
        self.configuration = configuration
        self.server = server
        let port = server.channel.localAddress?.port ?? configuration.port
        self.port = port
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        websocketURL = "ws://\(host):\(port)/ws/public"
        restURL = "http://\(host):\(port)"
        state = Mutex(State(generator: MarketGenerator(seed: configuration.seed, symbols: configuration.symbols)))
        logs = try Logs(trades: configuration.tradesLog, malformed: configuration.malformedLog)
    }

    // MARK: - observation (tests, tape up)

    /// Trades generated so far.
    public var tradesGenerated: Int { state.withLock { $0.generated } }
    /// Malformed frames sent so far (all clients).
    public var malformedFramesSent: Int { state.withLock { $0.malformedSent } }
    /// Websocket connections dropped by the fault knob or for silence.
    public var connectionsDropped: Int { state.withLock { $0.dropped } }
    /// Websocket clients connected now.
    public var clientCount: Int { state.withLock { $0.clients.count } }
    /// The native symbols traded.
    public var symbols: [String] { state.withLock { $0.generator.markets.map(\.native) } }
    /// The newest `limit` trades of a market, newest first (what REST serves).
    public func recentTrades(symbol: String, limit: Int = 1000) -> [Trade] {
        state.withLock { state in Array((state.history[symbol] ?? []).suffix(limit).reversed()) }
    }

    // MARK: - running

    /// Serves until the task is cancelled.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.generate() }
            group.addTask { try await self.superviseClients() }
            try await server.executeThenClose { inbound in
                for try await upgrade in inbound {
                    group.addTask { await self.serve(upgrade) }
                }
            }
        }
    }

    func generate() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        var frameIndex = 0
        while true {
            try await clock.sleep(for: .milliseconds(10))
            let elapsed = start.duration(to: clock.now).secondsValue
            var target = Int(elapsed * configuration.rate)
            if let max = configuration.maxTrades { target = min(target, max) }
            let due = target - state.withLock { $0.generated }
            guard due > 0 else { continue }
            let time = Int64(Date().timeIntervalSince1970 * 1000)
            let limit = configuration.historyLimit
            let batch: [Trade] = state.withLock { state in
                let trades = state.generator.next(count: due, time: time)
                state.generated += trades.count
                // Group consecutive trades of one market into one frame.
                var start = trades.startIndex
                var malformed: [String] = []
                while start < trades.endIndex {
                    var end = start + 1
                    while end < trades.endIndex && trades[end].nativeSymbol == trades[start].nativeSymbol { end += 1 }
                    let symbol = trades[start].nativeSymbol
                    var history = state.history[symbol] ?? []
                    history.append(contentsOf: trades[start..<end])
                    if history.count > limit * 2 { history.removeFirst(history.count - limit) }
                    state.history[symbol] = history
                    frameIndex += 1
                    let frame = PoloniexWire.tradesFrame(
                        trades[start..<end], numericIDs: configuration.numericIDEvery > 0 && frameIndex % configuration.numericIDEvery == 0,
                        pushTime: time + 2)
                    for id in state.clients.keys {
                        guard var client = state.clients[id], client.symbols.contains(symbol) else { continue }
                        client.outbox.yield(frame)
                        state.framesSent += 1
                        client.framesSinceMalformed += 1
                        if let every = configuration.malformedEvery, every > 0, client.framesSinceMalformed >= every {
                            client.framesSinceMalformed = 0
                            let bad = PoloniexWire.malformedFrame(state.malformedSent, symbol: symbol, time: time)
                            client.outbox.yield(bad)
                            client.malformedCount += 1
                            state.malformedSent += 1
                            malformed.append(bad)
                        }
                        state.clients[id] = client
                    }
                    start = end
                }
                logs.malformed(malformed)
                return trades
            }
            logs.trades(batch)
        }
    }

    func superviseClients() async throws {
        let clock = ContinuousClock()
        var lastDrop = clock.now
        while true {
            try await clock.sleep(for: .milliseconds(250))
            let now = clock.now
            var toClose: [any Channel] = []
            let dropAll = configuration.dropEvery.map { lastDrop.duration(to: now) >= $0 } ?? false
            if dropAll { lastDrop = now }
            state.withLock { state in
                for (_, client) in state.clients
                where dropAll || client.lastHeard.duration(to: now) >= configuration.silenceTimeout {
                    toClose.append(client.channel)
                    state.dropped += 1
                }
            }
            for channel in toClose { channel.close(promise: nil) }
        }
    }

    func serve(_ upgrade: EventLoopFuture<Upgrade>) async {
        do {
            switch try await upgrade.get() {
            case .websocket(let channel): try await serveWebSocket(channel)
            case .http(let channel): try await serveHTTP(channel)
            }
        } catch {
            // One bad client never stops the server.
        }
    }

    // MARK: - websocket

    func serveWebSocket(_ channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>) async throws {
        let (outbox, continuation) = AsyncStream.makeStream(of: String.self)
        let id = state.withLock { state in
            let id = state.nextClientID
            state.nextClientID += 1
            state.clients[id] = Client(channel: channel.channel, outbox: continuation, lastHeard: ContinuousClock().now)
            return id
        }
        defer {
            _ = state.withLock { $0.clients.removeValue(forKey: id) }
            continuation.finish()
        }
        try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await text in outbox {
                        var buffer = channel.channel.allocator.buffer(capacity: text.utf8.count)
                        buffer.writeString(text)
                        try await outbound.write(WebSocketFrame(fin: true, opcode: .text, data: buffer))
                    }
                }
                group.addTask {
                    var message: [UInt8] = []
                    for try await frame in inbound {
                        switch frame.opcode {
                        case .text, .continuation:
                            if frame.opcode == .text { message.removeAll() }
                            message.append(contentsOf: frame.unmaskedData.readableBytesView)
                            if frame.fin { self.clientSent(message, client: id) }
                        case .ping:
                            self.touch(id)
                            try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
                        case .connectionClose:
                            return
                        default:
                            self.touch(id)
                        }
                    }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }

    func touch(_ id: Int) {
        state.withLock { $0.clients[id]?.lastHeard = ContinuousClock().now }
    }

    /// Handles a client message: ping, subscribe, unsubscribe (as Poloniex answers them).
    func clientSent(_ bytes: [UInt8], client id: Int) {
        let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
        state.withLock { state in
            guard var client = state.clients[id] else { return }
            client.lastHeard = ContinuousClock().now
            defer { state.clients[id] = client }
            guard let object, let event = object["event"] as? String else {
                client.outbox.yield(PoloniexWire.error("Invalid request"))
                return
            }
            switch event {
            case "ping":
                client.outbox.yield(PoloniexWire.pong)
            case "subscribe", "unsubscribe":
                let channels = (object["channel"] as? [String]) ?? [(object["channel"] as? String) ?? ""]
                guard channels == ["trades"] else {
                    client.outbox.yield(PoloniexWire.error("Simulator serves the trades channel only"))
                    return
                }
                let known = Set(state.generator.markets.map(\.native))
                var requested = (object["symbols"] as? [String]) ?? []
                if requested.map({ $0.lowercased() }) == ["all"] { requested = known.sorted() }
                if let unknown = requested.first(where: { !known.contains($0) }) {
                    client.outbox.yield(PoloniexWire.error("Invalid symbol: \(unknown)"))
                    return
                }
                if event == "subscribe" {
                    client.symbols.formUnion(requested)
                    client.outbox.yield(PoloniexWire.subscribeAck(symbols: requested))
                } else {
                    client.symbols.subtract(requested)
                    client.outbox.yield(PoloniexWire.unsubscribeAck(symbols: requested))
                }
            default:
                client.outbox.yield(PoloniexWire.error("Unknown event \(event)"))
            }
        }
    }

    // MARK: - REST

    func serveHTTP(_ channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await channel.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let h): head = h
                case .body: break
                case .end:
                    guard let request = head else { continue }
                    let (status, body) = respond(to: request)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: "application/json")
                    headers.add(name: "Content-Length", value: String(body.count))
                    let keepAlive = request.isKeepAlive
                    if !keepAlive { headers.add(name: "Connection", value: "close") }
                    try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                    var buffer = channel.channel.allocator.buffer(capacity: body.count)
                    buffer.writeBytes(body)
                    try await outbound.write(.body(.byteBuffer(buffer)))
                    try await outbound.write(.end(nil))
                    if !keepAlive { return }
                }
            }
        }
    }

    func respond(to request: HTTPRequestHead) -> (HTTPResponseStatus, [UInt8]) {
        guard request.method == .GET else {
            return (.methodNotAllowed, Array(#"{"code":405,"message":"GET only"}"#.utf8))
        }
        let pieces = request.uri.split(separator: "?", maxSplits: 1)
        let path = pieces.first.map(String.init) ?? "/"
        var query: [String: String] = [:]
        if pieces.count > 1 {
            for pair in pieces[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                query[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
            }
        }
        let segments = path.split(separator: "/").map(String.init)
        if segments == ["markets"] {
            let markets = state.withLock { $0.generator.markets }
            return (.ok, PoloniexWire.markets(markets, paused: configuration.pausedSymbols, listedSince: 1_659_018_816_626))
        }
        if segments.count == 3, segments[0] == "markets", segments[2] == "trades" {
            let symbol = segments[1]
            guard symbols.contains(symbol) || configuration.pausedSymbols.contains(symbol) else {
                return (.badRequest, Array(#"{"code":21707,"message":"Invalid symbol!"}"#.utf8))
            }
            let limit = min(max(Int(query["limit"] ?? "") ?? 500, 1), 1000)
            return (.ok, PoloniexWire.restTrades(recentTrades(symbol: symbol, limit: limit)))
        }
        return (.notFound, Array(#"{"code":404,"message":"Not found"}"#.utf8))
    }
}

/// Append-only log files of what the simulator generated and sent.
final class Logs: Sendable {
    let tradesFile: Mutex<FileHandle?>
    let malformedFile: Mutex<FileHandle?>

    init(trades: String?, malformed: String?) throws {
        tradesFile = Mutex(try Logs.open(trades))
        malformedFile = Mutex(try Logs.open(malformed))
    }

    static func open(_ path: String?) throws -> FileHandle? {
        guard let path else { return nil }
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw SimulatorError("cannot write \(path)")
        }
        return handle
    }

    func trades(_ trades: [Trade]) {
        guard !trades.isEmpty else { return }
        tradesFile.withLock { file in
            guard let file else { return }
            var out: [UInt8] = []
            for t in trades {
                t.appendJSON(to: &out)
                out.append(10)
            }
            file.write(Data(out))
        }
    }

    func malformed(_ frames: [String]) {
        guard !frames.isEmpty else { return }
        malformedFile.withLock { file in
            file?.write(Data(frames.map { $0 + "\n" }.joined().utf8))
        }
    }
}

/// A simulator setup error (bad path, port taken).
public struct SimulatorError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    var secondsValue: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
