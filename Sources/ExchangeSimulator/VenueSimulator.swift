import Foundation
import MarketData
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization
import TapeCommon

/// Settings of a simulated venue (`VenueSimulator`, e.g. `PoloniexSimulator`).
public struct SimulatorConfiguration: Sendable {
    /// Address to listen on. Default 127.0.0.1.
    public var host = "127.0.0.1"
    /// Port; 0 picks a free one. Default 0.
    public var port = 0
    /// Trades per second, over all markets. Default 50.
    public var rate: Double = 50
    /// Instruments; nil = `MarketSimulator.defaultInstruments`.
    public var instruments: [SimulatedInstrument]?
    /// Seed of the market. Default 1.
    public var seed: UInt64 = 1
    /// Drop each websocket connection this long after it opened (fault injection). Default never.
    public var dropEvery: Duration?
    /// Send every Nth trades frame of each client malformed (fault injection; its trades are then
    /// only available over REST). Default never.
    public var malformedEvery: Int?
    /// Leave every Nth trade out of the websocket push (fault injection: the venue silently skips
    /// it — its id is never pushed, it exists only over REST). Default never.
    public var skipPushEvery: Int?
    /// Drop a client that sent nothing for this long (Poloniex: 30 s; venues that expect nothing
    /// from a subscribed client, like Coinbase, ignore it).
    public var silenceTimeout: Duration = .seconds(30)
    /// Trades per market kept for REST (Poloniex returns at most 1000). Default 1000.
    public var historyLimit = 1000
    /// How often the market advances to the wall clock and sends what it generated meanwhile.
    /// Default 1 ms (a longer tick delivers trades in clumps a real venue does not make).
    public var tick: Duration = .milliseconds(1)
    /// Frames queued for one websocket client before it is cut off as too slow (real venues
    /// disconnect consumers that do not keep up). Default 100,000 (about 20 MB of trade frames).
    public var outboxCapacity = 100_000
    /// Bursts (rate and volatility spikes): chance per order that one starts. Default 0.002.
    public var burstProbability = 0.002
    /// Orders per burst, on average (each burst's length is drawn from 1 to twice this). Default 200.
    public var burstLength = 200
    /// The order rate inside a burst, as a multiple of `rate`. Default 20.
    public var burstRateMultiplier: Double = 20
    /// Stop generating once this many trades exist (the order that reaches it keeps all its
    /// fills, so a few more may come); the servers keep running. Default never.
    public var maxTrades: Int?
    /// Every Nth frame writes trade ids as JSON numbers instead of strings. Default 4.
    public var numericIDEvery = 4
    /// Where trade ids start (`MarketSimulator.Configuration.firstTradeId`). Default nil: the wall
    /// clock in microseconds when the simulator is built, so that the ids of a restarted simulator
    /// continue above those of its earlier runs.
    public var firstTradeId: Int64?
    /// Append every generated trade (Tape's Trade JSON, `receivedAt` 0) to this file.
    public var tradesLog: String?
    /// Append every malformed frame sent to this file, one a line.
    public var malformedLog: String?
    /// Serve TLS (`wss://`, `https://`) with this PEM certificate chain and key. Default: plain.
    /// Book faults (`--skip-book-update-every`, `--corrupt-checksum-every`, `--swap-book-updates-every`):
    /// every Nth book update left out, sent with a wrong checksum, or sent after the next one.
    public var skipBookUpdateEvery: Int?
    public var corruptChecksumEvery: Int?
    public var swapBookUpdatesEvery: Int?
    /// Levels per side of each simulated book (0: no books). Default 20.
    public var bookDepth = 20
    /// Once `maxTrades` is reached, write every instrument's final book to FILE (`tape.books`
    /// snapshot records, one a line, spelled as the venue does) — what a correct consumer must hold.
    public var finalBooksLog: String?
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?

    public init() {}
}

/// The settings of `PoloniexSimulator` (the same for every venue).
public typealias PoloniexSimulatorConfiguration = SimulatorConfiguration

/// A Poloniex look-alike on loopback, for `tape simulate`, `tape up --offline` and the tests:
/// the seeded `MarketSimulator`, with one `PoloniexSession` per client and `PoloniexRESTResponder`
/// for REST (the pure parts), served on a websocket at `/ws/public` and REST at
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
public typealias PoloniexSimulator = VenueSimulator<PoloniexVenue>

/// A simulated venue on loopback: the seeded `MarketSimulator` behind one venue's websocket and
/// REST wire format (`Venue`: its per-client session and its REST responder, both pure values),
/// with the fault knobs of `SimulatorConfiguration`. `PoloniexSimulator`, `BinanceSimulator`,
/// `CoinbaseSimulator` and `KrakenSimulator` are its instances.
public final class VenueSimulator<Venue: SimulatedVenue>: Sendable {
    public let configuration: SimulatorConfiguration
    /// `ws://host:port` + the venue's websocket path
    public let websocketURL: String
    /// `http://host:port`
    public let restURL: String
    public let port: Int

    let server: NIOAsyncChannel<EventLoopFuture<Upgrade>, Never>
    let state: Mutex<State>
    let logs: Logs
    let finalBooksWritten = Atomic<Bool>(false)

    enum Upgrade: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case http(NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>)
    }

    struct State: Sendable {
        var market: MarketSimulator
        var clients: [Int: Client] = [:]
        var nextClientID = 0
        var framesSent = 0
        var malformedSent = 0
        /// Trades generated so far, for `skipPushEvery`.
        var pushCounter = 0
        var pushSkipped = 0
        var dropped = 0
        /// Clients cut off because their outbox was full (they did not read fast enough).
        var slowClientsDropped = 0
    }

    struct Client: Sendable {
        var channel: any Channel
        var outbox: FrameOutbox
        var session: Venue.Session
    }

    /// Binds the servers; `run` serves them.
    public static func build(_ configuration: SimulatorConfiguration) async throws -> VenueSimulator {
        let tls: NIOSSLContext?
        if let certificate = configuration.tlsCertificateFile, let key = configuration.tlsKeyFile {
            let certificates = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
            tls = try NIOSSLContext(
                configuration: .makeServerConfiguration(certificateChain: certificates, privateKey: .privateKey(privateKey)))
        } else {
            tls = nil
        }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    let upgrader = NIOTypedWebSocketServerUpgrader<Upgrade>(
                        maxFrameSize: 1 << 20,
                        shouldUpgrade: { channel, head in
                            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
                            return channel.eventLoop.makeSucceededFuture(path == Venue.websocketPath ? HTTPHeaders() : nil)
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
        return try VenueSimulator(configuration: configuration, server: server)
    }

    /// The market engine's configuration for `configuration`, started at `now` (seconds since the epoch).
    static func marketConfiguration(_ configuration: SimulatorConfiguration, now: Double) -> MarketSimulator.Configuration {
        var market = MarketSimulator.Configuration()
        market.seed = configuration.seed
        market.tradesPerSecond = configuration.rate
        market.startTime = Int64(now * 1000)
        // Ids from the wall clock (µs): a simulator restarted on the same Kafka data goes on above
        // the ids of its previous runs, as a venue's would, instead of starting below them.
        market.firstTradeId = configuration.firstTradeId ?? Int64(now * 1_000_000)
        market.recentTradesKept = configuration.historyLimit
        market.burstProbability = configuration.burstProbability
        market.burstLength = configuration.burstLength
        market.burstRateMultiplier = configuration.burstRateMultiplier
        market.bookDepth = configuration.bookDepth
        if let instruments = configuration.instruments { market.instruments = instruments }
        return market
    }

    private init(configuration: SimulatorConfiguration, server: NIOAsyncChannel<EventLoopFuture<Upgrade>, Never>) throws {
        self.configuration = configuration
        self.server = server
        let port = server.channel.localAddress?.port ?? configuration.port
        self.port = port
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        let secure = configuration.tlsCertificateFile != nil && configuration.tlsKeyFile != nil
        websocketURL = "\(secure ? "wss" : "ws")://\(host):\(port)\(Venue.websocketPath)"
        restURL = "\(secure ? "https" : "http")://\(host):\(port)"
        let market = Self.marketConfiguration(configuration, now: Date().timeIntervalSince1970)
        state = Mutex(State(market: MarketSimulator(configuration: market)))
        logs = try Logs(trades: configuration.tradesLog, malformed: configuration.malformedLog)
    }

    // MARK: - observation (tests, tape up)

    /// Trades generated so far.
    public var tradesGenerated: Int { state.withLock { $0.market.tradeCount } }
    /// Bursts started, trades inside them, and the simulated seconds they spanned.
    public var bursts: (started: Int, trades: Int, seconds: Double) {
        state.withLock { ($0.market.burstsStarted, $0.market.burstTradeCount, Double($0.market.burstMicros) / 1e6) }
    }
    /// Malformed frames sent so far (all clients).
    public var malformedFramesSent: Int { state.withLock { $0.malformedSent } }
    /// Trades left out of the websocket push (`skipPushEvery`).
    public var tradesSkipped: Int { state.withLock { $0.pushSkipped } }
    /// Websocket connections dropped by the fault knob or for silence.
    public var connectionsDropped: Int { state.withLock { $0.dropped } }
    /// Websocket clients cut off because they fell `outboxCapacity` frames behind.
    public var slowClientsDropped: Int { state.withLock { $0.slowClientsDropped } }
    /// Websocket clients connected now.
    public var clientCount: Int { state.withLock { $0.clients.count } }
    /// The instruments traded, by their simulator names ("BTC_USDT").
    public var symbols: [String] { state.withLock { $0.market.nativeSymbols } }
    /// The instruments traded, spelled as the venue does ("BTCUSDT" on Binance).
    public var venueSymbols: [String] { symbols.map(Venue.nativeSymbol(instrument:)) }
    /// The newest `limit` trades of an instrument (simulator name), newest first.
    public func recentTrades(symbol: String, limit: Int = 1000) -> [SimulatedTrade] {
        state.withLock { $0.market.recentTrades(nativeSymbol: symbol, limit: limit) ?? [] }
    }
    /// An instrument's book now (simulator name), nil for an unknown one.
    public func book(symbol: String) -> OrderBook? { state.withLock { $0.market.book(nativeSymbol: symbol) } }

    /// The book records a correct `tape.books` consumer must hold now, one per instrument.
    public func bookSnapshots() -> [BookEvent] {
        state.withLock { state in
            state.market.nativeSymbols.compactMap { instrument in
                guard let book = state.market.book(nativeSymbol: instrument) else { return nil }
                let expected = Venue.expectedTrade(
                    SimulatedTrade(
                        nativeSymbol: instrument, id: 0, price: .zero, quantity: .zero, amount: .zero, takerSide: .buy, createTime: 0,
                        pushTime: 0), receivedAt: 0)
                return BookEvent(
                    snapshotOf: book, exchange: expected.exchange, symbol: expected.symbol, nativeSymbol: expected.nativeSymbol,
                    sequence: String(state.market.bookUpdateId(nativeSymbol: instrument)), time: 0, receivedAt: 0)
            }
        }
    }

    /// The trade a correct ingest of this venue must produce from a simulated one.
    public func expectedTrade(_ trade: SimulatedTrade, receivedAt: Int64 = 0) -> Trade {
        Venue.expectedTrade(trade, receivedAt: receivedAt)
    }

    // MARK: - running

    /// Serves until the task is cancelled.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.generate() }
            try await server.executeThenClose { inbound in
                for try await upgrade in inbound {
                    group.addTask { await self.serve(upgrade) }
                }
            }
        }
    }

    /// Advances the market with the wall clock and hands each order to every session.
    func generate() async throws {
        let clock = ContinuousClock()
        while true {
            try await clock.sleep(for: configuration.tick)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var malformed: [String] = []
            let orders: [SimulatedOrder] = state.withLock { state in
                var orders: [SimulatedOrder] = []
                while state.market.nextOrderTime <= now {
                    if let max = configuration.maxTrades, state.market.tradeCount >= max { break }
                    orders.append(state.market.nextOrder())
                }
                var pushed = orders
                if let every = configuration.skipPushEvery, every > 0 {
                    pushed = []
                    for var order in orders {
                        order.trades = order.trades.filter { _ in
                            state.pushCounter += 1
                            if state.pushCounter % every == 0 {
                                state.pushSkipped += 1
                                return false
                            }
                            return true
                        }
                        // The fills are withheld; the book changes still go out.
                        if !order.trades.isEmpty || !order.bookChanges.isEmpty { pushed.append(order) }
                    }
                }
                for id in state.clients.keys {
                    guard var client = state.clients[id] else { continue }
                    let actions = client.session.publish(pushed, at: now)
                    // The session says which frames it broke (heartbeats and other frames it sends
                    // between trades frames make counting sends here wrong).
                    malformed.append(contentsOf: client.session.takeMalformedFrames())
                    for action in actions {
                        switch action {
                        case .send(let text):
                            switch client.outbox.push(text) {
                            case .queued: state.framesSent += 1
                            case .overflowed: state.slowClientsDropped += 1
                            case .finished: break
                            }
                        case .close:
                            // Ending the outbox closes the connection once what was queued is
                            // written: a frame counted as sent (or logged as malformed) is delivered.
                            client.outbox.finish()
                            state.dropped += 1
                        }
                    }
                    state.malformedSent += client.session.malformedFramesSent - (state.clients[id]?.session.malformedFramesSent ?? 0)
                    state.clients[id] = client
                }
                return orders
            }
            logs.malformed(malformed)
            if let path = configuration.finalBooksLog, let max = configuration.maxTrades, !finalBooksWritten.load(ordering: .relaxed),
                state.withLock({ $0.market.tradeCount >= max })
            {
                finalBooksWritten.store(true, ordering: .relaxed)
                var out: [UInt8] = []
                for event in bookSnapshots() {
                    event.appendJSON(to: &out)
                    out.append(10)
                }
                // Written whole, then renamed: a reader never sees half a file.
                let temporary = path + ".tmp"
                if FileManager.default.createFile(atPath: temporary, contents: Data(out)) {
                    _ = try? FileManager.default.replaceItemAt(URL(fileURLWithPath: path), withItemAt: URL(fileURLWithPath: temporary))
                    if !FileManager.default.fileExists(atPath: path) { try? FileManager.default.moveItem(atPath: temporary, toPath: path) }
                }
            }
            if !orders.isEmpty {
                let receivedAt = Int64(0)
                logs.trades(orders.flatMap { $0.trades.map { Venue.expectedTrade($0, receivedAt: receivedAt) } })
            }
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
        let outbox = FrameOutbox(capacity: configuration.outboxCapacity)
        let id = state.withLock { state in
            let id = state.nextClientID
            state.nextClientID += 1
            var session = SimulatedSessionConfiguration()
            session.idleTimeout = Int64(configuration.silenceTimeout.seconds * 1000)
            session.dropConnectionAfter = configuration.dropEvery.map { Int64($0.seconds * 1000) }
            session.malformedFrameEvery = configuration.malformedEvery
            session.numericIdsEvery = configuration.numericIDEvery > 0 ? configuration.numericIDEvery : nil
            session.skipBookUpdateEvery = configuration.skipBookUpdateEvery
            session.corruptChecksumEvery = configuration.corruptChecksumEvery
            session.swapBookUpdatesEvery = configuration.swapBookUpdatesEvery
            let client = Venue.makeSession(
                instruments: state.market.nativeSymbols, configuration: session,
                connectedAt: Int64(Date().timeIntervalSince1970 * 1000))
            state.clients[id] = Client(channel: channel.channel, outbox: outbox, session: client)
            return id
        }
        defer {
            _ = state.withLock { $0.clients.removeValue(forKey: id) }
            outbox.finish()
        }
        try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Each tick's frames in one write: one flush (and one wake-up of the reader)
                    // per batch, not per frame.
                    let allocator = channel.channel.allocator
                    while let batch = await outbox.next() {
                        try await outbound.write(
                            contentsOf: batch.map { text in
                                var buffer = allocator.buffer(capacity: text.utf8.count)
                                buffer.writeString(text)
                                return WebSocketFrame(fin: true, opcode: .text, data: buffer)
                            })
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
                            self.clientSentControlFrame(client: id)
                            try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
                        case .pong:
                            self.clientSentControlFrame(client: id)
                        case .connectionClose:
                            return
                        default:
                            break
                        }
                    }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }

    /// Hands a client message to its session and carries out the answer.
    func clientSent(_ bytes: [UInt8], client id: Int) {
        let text = String(decoding: bytes, as: UTF8.self)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        state.withLock { state in
            guard var client = state.clients[id] else { return }
            defer { state.clients[id] = client }
            var actions = client.session.received(text, at: now)
            // Venues that send recent trades on subscribe (Coinbase, Kraken): after the ack.
            for instrument in client.session.takeSnapshotRequests() {
                let recent = state.market.recentTrades(nativeSymbol: instrument, limit: Venue.snapshotSize) ?? []
                actions += client.session.snapshot(recent, instrument: instrument)
            }
            // Venues that send the book on subscribe (Poloniex, Kraken, Coinbase).
            for instrument in client.session.takeBookSnapshotRequests() {
                guard let book = state.market.book(nativeSymbol: instrument) else { continue }
                actions += client.session.bookSnapshot(
                    book, updateId: state.market.bookUpdateId(nativeSymbol: instrument), instrument: instrument)
            }
            for action in actions {
                switch action {
                case .send(let frame):
                    if client.outbox.push(frame) == .overflowed { state.slowClientsDropped += 1 }
                case .close:
                    client.outbox.finish()  // closes after the queued frames are written
                    state.dropped += 1
                }
            }
        }
    }

    /// A ping or pong frame from a client: activity for venues that keep liveness at the protocol level.
    func clientSentControlFrame(client id: Int) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        state.withLock { state in
            guard var client = state.clients[id] else { return }
            client.session.controlFrameReceived(at: now)
            state.clients[id] = client
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
        let response = state.withLock { Venue.respond(toPath: request.uri, market: $0.market) }
        return (HTTPResponseStatus(statusCode: response.status), Array(response.body.utf8))
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

extension SimulatorConfiguration {
    /// Instruments for `symbols` (any spelling `MarketCatalogue.canonicalName` takes: BTC_USDT,
    /// btc-usdt, BTC/USD, XBTUSD); throws `UnknownSimulatedMarket` naming every symbol the simulator
    /// does not know (it never invents a market).
    public static func instruments(symbols: [String]) throws -> [SimulatedInstrument] {
        try MarketCatalogue.instruments(symbols: symbols)
    }

    /// `count` instruments (benchmarks): the default market first, then the catalogue's other
    /// markets, then made-up `SIMn_USDT` markets (a dollar-priced asset with a name-derived price
    /// between 1 and 1,000, so the same name gives the same market).
    public static func instruments(count: Int) -> [SimulatedInstrument] {
        var result = Array(MarketSimulator.defaultInstruments.prefix(max(1, count)))
        guard count > result.count else { return result }
        var names = Set(result.map(\.nativeSymbol))
        outer: for quote in ["USDT", "BTC", "USD", "USDC", "EUR", "ETH"] {
            for asset in MarketCatalogue.assets {
                guard result.count < count else { break outer }
                guard let instrument = MarketCatalogue.instrument(asset.name + "_" + quote), names.insert(instrument.nativeSymbol).inserted
                else { continue }
                result.append(instrument)
            }
        }
        var n = 0
        while result.count < count {
            let name = "SIM\(n)_USDT"
            n += 1
            var hash: UInt64 = 1_469_598_103_934_665_603
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
            let price = ExactDecimal(mantissa: Int64(10_000 + hash % 9_990_000), scale: 4)
            result.append(
                SimulatedInstrument(
                    nativeSymbol: name, startPrice: price, quantityScale: 2, weight: 1 + Int(hash % 5), volatility: 0.8))
        }
        return result
    }
}
