import CoreMetrics
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import MarketData
import NIOCore
import ServiceLifecycle
import Synchronization
import TapeCommon
import TapeMetrics

/// Settings of the HTTP server (`tape serve`, and the server inside `tape up`).
public struct TapeServerConfiguration: Sendable {
    /// Address to bind. Default "127.0.0.1" (loopback only); anything else logs a warning.
    public var host: String = "127.0.0.1"
    /// TCP port. Default 8080; 0 picks a free port.
    public var port: Int = 8080
    /// Bearer token required on `/api/*`, `/ws` and `/metrics` (not `/` or `/health`); nil = open. Default nil.
    public var token: String?
    /// Recent trades kept per market for `/api/trades`. Default 500.
    public var recentTradesPerMarket: Int = 500
    /// Messages queued per WebSocket client before the oldest are dropped. Default 4096.
    public var webSocketQueue: Int = 4096
    /// Largest WebSocket message accepted from a client, bytes. Default 16384.
    public var maxClientMessage: Int = 16_384
    /// Request-line, header, timeout and connection limits (docs/limits.md).
    public var limits = HTTPLimits()
    /// When `/health` says degraded (`--stale-after` and fixed thresholds).
    public var health = HealthPolicy()

    public init(host: String = "127.0.0.1", port: Int = 8080, token: String? = nil) {
        self.host = host
        self.port = port
        self.token = token
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (loopback); the error says what was wrong.
    public static func parseListenAddress(_ text: String) throws(APIError) -> (host: String, port: Int) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw APIError.badParameter("http", "\(text) is not [IPv6]:PORT, e.g. [::1]:8080")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw APIError.badParameter("http", "\(text) has no port; use HOST:PORT, e.g. 127.0.0.1:8080")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        if host.isEmpty { host = "127.0.0.1" }
        guard let port = Int(portText), (0...65_535).contains(port) else {
            throw APIError.badParameter("http", "port \"\(portText)\" in \(text) must be a number from 0 to 65535")
        }
        return (String(host), port)
    }

    /// Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost).
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// One sentence for an error thrown while starting to listen (address in use, not allowed,
    /// not on this machine); nil for other errors.
    public func explainStartupError(_ error: any Error) -> String? {
        guard let io = error as? IOError else { return nil }
        let address = "\(host):\(port)"
        switch io.errnoCode {
        case EADDRINUSE: return "Cannot listen on \(address): something else (another tape?) already uses it. Pick another with --http HOST:PORT."
        case EACCES: return "Cannot listen on \(address): permission denied (ports below 1024 need privileges). Pick another with --http HOST:PORT."
        case EADDRNOTAVAIL: return "Cannot listen on \(address): that address does not belong to this machine. Use 127.0.0.1."
        default: return nil
        }
    }

    /// The URL to print for people: a wildcard address is shown as loopback.
    public func dashboardURL(port boundPort: Int) -> String {
        let shown = (host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(boundPort)/"
    }

    /// The warning printed when binding beyond loopback (nil when bound to loopback).
    public var exposureWarning: String? {
        guard !Self.isLoopback(host) else { return nil }
        let auth =
            token == nil
            ? "No --token is set: anyone who can reach it can read the API and WebSocket."
            : "The API and WebSocket require the bearer token; traffic is plain HTTP (no TLS)."
        return "Serving on \(host):\(port), which is reachable from other machines. \(auth) Use --http 127.0.0.1:\(port) to stay local."
    }
}

/// Shared live state of one server: the WebSocket hub, recent trades, stats seen on the feeds,
/// known gaps and health. Create it before anything increments metrics (it bootstraps the metrics system).
public final class TapeServerState: Sendable {
    public let hub: LiveHub
    public let recentTrades: RecentTrades
    public let feedStats: FeedStats
    /// Gaps read from `tape.gaps` (latest state of each).
    public let gaps: GapBook
    /// Order books rebuilt from `tape.books`.
    public let books = LiveBooks()
    /// What `/health` judges.
    public let health: HealthMonitor
    let startedAt = ContinuousClock.now
    public let tradesSeen = Atomic<Int64>(0)
    /// Connections refused and requests rejected by the HTTP limits.
    public let httpLimits: HTTPLimitCounters
    public let candlesSeen = Atomic<Int64>(0)
    /// Intervals of the live candle updates seen (to refuse one never computed).
    let intervalsSeen = Mutex<Set<CandleInterval>>([])
    /// Why a feed stopped, if one did (shown on /health).
    let feedErrors = Mutex<[String: String]>([:])
    let tradesSeenCounter: Counter
    let candlesSeenCounter: Counter
    /// Ingestion's receipt → this server's read, per live trade.
    let tradeDelay: CoreMetrics.Timer

    public init(configuration: TapeServerConfiguration = .init(), feedStats: FeedStats = FeedStats()) {
        _ = MetricsExporter.registry  // bootstraps swift-metrics before the handles below are made
        httpLimits = HTTPLimitCounters(metrics: true)
        hub = LiveHub(queueCapacity: configuration.webSocketQueue)
        recentTrades = RecentTrades(capacityPerMarket: configuration.recentTradesPerMarket)
        self.feedStats = feedStats
        gaps = GapBook()
        health = HealthMonitor(policy: configuration.health)
        tradesSeenCounter = Counter(label: TapeMetrics.serverTradesSeen)
        candlesSeenCounter = Counter(label: TapeMetrics.serverCandlesSeen)
        tradeDelay = TapeMetrics.serverTradeDelayTimer()
    }

    /// Takes one live trade: ring, stats, WebSocket subscribers. A trade already taken (the same
    /// exchange, market and id: two ingesters of one market both publish it) is passed over.
    public func accept(_ trade: Trade) {
        guard recentTrades.append(trade) else { return }
        feedStats.record(trade)
        tradesSeen.add(1, ordering: .relaxed)
        tradesSeenCounter.increment()
        recordDelay(of: trade)
        hub.publish(trade)
    }

    /// Records `tape_server_trade_delay_seconds` for a trade read now. `receivedAt` comes from a
    /// record (untrusted): a stamp at or before the Unix epoch, in the future, or more than an hour
    /// back is not recorded.
    func recordDelay(of trade: Trade) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let (delay, overflow) = now.subtractingReportingOverflow(trade.receivedAt)
        guard trade.receivedAt > 0, !overflow, (0...3_600_000_000).contains(delay) else { return }
        tradeDelay.recordNanoseconds(delay * 1000)
    }

    /// Takes one live candle update: WebSocket subscribers (history is written by its owner).
    public func accept(_ candle: Candle) {
        candlesSeen.add(1, ordering: .relaxed)
        intervalsSeen.withLock { _ = $0.insert(candle.interval) }
        candlesSeenCounter.increment()
        hub.publish(candle)
    }

    /// Takes one book record (subscribers get the book's top at most every `LiveHub.bookInterval`).
    public func accept(_ book: BookEvent) {
        books.apply(book)
    }

    /// Sends changed books to their subscribers.
    func publishChangedBooks() {
        let wanted = hub.bookSubscriptions()
        guard !wanted.isEmpty else { return }
        for view in books.takeChanged(depth: LiveHub.bookDepth, only: { wanted.contains($0) }) { hub.publish(view) }
    }

    /// Takes one gap record: the ledger, its metrics, WebSocket subscribers.
    public func accept(_ gap: Gap) {
        gaps.apply(gap)
        hub.publish(gap)
    }

    /// Trades and candles read from the feeds since start.
    public var eventsSeen: (trades: Int64, candles: Int64) {
        (tradesSeen.load(ordering: .relaxed), candlesSeen.load(ordering: .relaxed))
    }

    var uptimeSeconds: Double {
        let d = ContinuousClock.now - startedAt
        return d.seconds
    }
}

/// A candle history the server writes itself (the in-memory one); a SQLite store written by the
/// processing stage does not conform, so the server only reads it.
public protocol WritableCandleHistory: CandleHistory {
    func record(_ candle: Candle)
}

extension InMemoryCandleHistory: WritableCandleHistory {}

/// Reads the feeds into the server state for as long as the application runs.
struct FeedPump<Trades: TradeFeed, Candles: CandleFeed>: Service {
    let trades: Trades
    let candles: Candles
    let gaps: (any GapRecordFeed)?
    let books: (any BookRecordFeed)?
    let history: any CandleHistory
    let state: TapeServerState
    let logger: Logger

    func run() async throws {
        let writable = history as? any WritableCandleHistory
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.pump("trades") {
                    for try await trade in trades { state.accept(trade) }
                }
            }
            group.addTask {
                await self.pump("candles") {
                    for try await candle in candles {
                        writable?.record(candle)
                        state.accept(candle)
                    }
                }
            }
            if let gaps {
                group.addTask {
                    await self.pump("gaps") { try await Self.read(gaps, into: state) }
                }
            }
            if let books {
                group.addTask {
                    await self.pump("books") { try await Self.read(books, into: state) }
                }
                group.addTask {
                    // Throttled book pushes: the top of each changed book, at most every bookInterval.
                    while !Task.isCancelled && !Task.isShuttingDownGracefully {
                        try? await Task.sleep(for: LiveHub.bookInterval)
                        state.publishChangedBooks()
                    }
                }
            }
        }
    }

    /// Every gap record into the state (opens the feed's existential).
    static func read<G: GapRecordFeed>(_ feed: G, into state: TapeServerState) async throws {
        for try await gap in feed { state.accept(gap) }
    }

    /// Every book record into the state (opens the feed's existential).
    static func read<B: BookRecordFeed>(_ feed: B, into state: TapeServerState) async throws {
        for try await book in feed { state.accept(book) }
    }

    /// Runs one feed until graceful shutdown; a feed that ends or fails is logged and shown on
    /// /health, and the server keeps serving what it has.
    private func pump(_ name: String, _ body: @escaping @Sendable () async throws -> Void) async {
        do {
            try await cancelWhenGracefulShutdown { try await body() }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            state.feedErrors.withLock { $0[name] = "feed ended" }
            logger.warning("The \(name) feed ended; the server keeps serving what it has.")
        } catch {
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            state.feedErrors.withLock { $0[name] = "\(error)" }
            logger.error("The \(name) feed failed: \(error). The server keeps serving what it has.")
        }
        try? await gracefulShutdown()
    }
}

/// Checks `Authorization: Bearer <token>` (or `?token=` for browsers' WebSockets).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var presented: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { presented = String(parts[1]) }
        }
        if presented == nil, let q = request.uri.queryParameters["token"] { presented = String(q) }
        guard let presented else {
            throw APIError(.unauthorized, "this server needs a bearer token: send Authorization: Bearer <token> (or ?token= on /ws)")
        }
        guard Self.constantTimeEquals(Array(presented.utf8), Array(token.utf8)) else {
            throw APIError(.unauthorized, "the bearer token is wrong")
        }
        return try await next(request, context)
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

/// Builds the Tape HTTP server: REST API, `/ws`, `/metrics`, `/health` and the dashboard at `/`.
///
/// The returned application is a swift-service-lifecycle `Service`: run it alone with
/// `runService()`, or put it in `tape up`'s `ServiceGroup`. It reads `trades` and `candles`
/// (each iterated once) while it runs; `history` answers `/api/candles` and `/api/markets` (an
/// `InMemoryCandleHistory` is also filled from `candles`; a `TopicCandleHistory` is filled by its
/// `KafkaCandleFeed`); `stats` answers `/api/stats` (nil: the
/// rates and lag the server sees on its own trade feed). `gaps` (read from its beginning) fills
/// the gap ledger of `/api/gaps`; `pipeline` lets `/health` see the stages beside the server
/// (`tape up`: exchange connection, the ingester's producer); without it health judges only what
/// the server reads. Kafka feeds are also probed for `/health`.
///
/// - Parameter onServerRunning: called with the bound port once listening (useful with port 0).
public func buildTapeServer<Trades: TradeFeed, Candles: CandleFeed>(
    configuration: TapeServerConfiguration,
    trades: Trades,
    candles: Candles,
    history: any CandleHistory,
    stats: (any StatsSource)? = nil,
    gaps: (any GapRecordFeed)? = nil,
    books: (any BookRecordFeed)? = nil,
    pipeline: (any PipelineProbe)? = nil,
    state: TapeServerState? = nil,
    logger: Logger = Logger(label: "tape.serve"),
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let state = state ?? TapeServerState(configuration: configuration)
    let stats = stats ?? state.feedStats
    if let pipeline { state.health.setPipelineProbe(pipeline) }
    let feeds: [Any?] = [trades, candles, gaps, books]
    for case let feed as any FeedContactReporting in feeds.compactMap({ $0 }) { state.health.addFeed(feed) }
    if let warning = configuration.exposureWarning {
        logger.warning("\(warning)")
    }

    let router = Router(context: BasicWebSocketRequestContext.self)
    router.addRoutes(TapeRoutes(history: history, stats: stats, state: state), token: configuration.token)

    let wsRouter = Router(context: BasicWebSocketRequestContext.self)
    if let token = configuration.token { wsRouter.add(middleware: BearerTokenMiddleware(token: token)) }
    let maxMessage = configuration.maxClientMessage
    wsRouter.ws("/ws") { inbound, outbound, context in
        try await LiveSession.run(
            inbound: inbound, outbound: outbound, hub: state.hub, catalog: MarketCatalog(history: history, state: state), maxMessage: maxMessage,
            logger: context.logger)
    }

    let webSocketResponder = wsRouter.buildResponder()
    let limits = configuration.limits
    let counters = state.httpLimits
    var app = Application(
        router: router,
        server: HTTPServerBuilder { responder in
            GuardedChildChannel(
                inner: HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: webSocketResponder, configuration: .init()),
                limits: limits, counters: counters)
        },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Tape"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
    app.addServices(
        FeedPump(trades: trades, candles: candles, gaps: gaps, books: books, history: history, state: state, logger: logger),
        HealthSampler(state: state, logger: logger))
    return app
}
