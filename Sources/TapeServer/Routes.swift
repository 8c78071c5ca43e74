import Foundation
import Hummingbird
import HummingbirdWebSocket
import MarketData
import NIOCore

/// The HTTP routes; JSON bodies are written by hand (decimals stay exact strings).
struct TapeRoutes: Sendable {
    let history: any CandleHistory
    let stats: any StatsSource
    let state: TapeServerState

    static let jsonType = "application/json; charset=utf-8"

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: jsonType, .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func queryItems(_ request: Request) -> [(key: String, value: String)] {
        request.uri.queryParameters.map { (key: String($0.key), value: String($0.value)) }
    }

    /// `ok` (200) or `degraded` (503) with one sentence per reason and the four checks; never needs a token.
    func health(_ request: Request) async throws -> Response {
        let report = state.health.refresh(state: state)
        state.health.export(report)  // the gauges agree with what was just answered
        let errors = state.feedErrors.withLock { $0 }
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"status\":", to: &out)
        JSONWriter.appendString(report.status, to: &out)
        JSONWriter.appendRaw(",\"reasons\":[", to: &out)
        for (i, reason) in report.reasons.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(reason, to: &out)
        }
        JSONWriter.appendRaw("],\"checks\":{", to: &out)
        for (i, check) in HealthCheck.allCases.enumerated() {
            guard let result = report.checks[check] else { continue }
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(check.rawValue, to: &out)
            JSONWriter.appendRaw(":{\"status\":", to: &out)
            JSONWriter.appendString(result.status.rawValue, to: &out)
            JSONWriter.appendRaw(",\"detail\":", to: &out)
            JSONWriter.appendString(result.detail, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        JSONWriter.appendRaw("},\"staleAfterSeconds\":", to: &out)
        JSONOut.appendDouble(Double(state.health.policy.staleAfterMilliseconds) / 1000, to: &out)
        JSONWriter.appendRaw(",\"lastTradeAgeSeconds\":", to: &out)
        JSONOut.appendDouble(report.lastTradeAgeSeconds, to: &out)
        JSONWriter.appendRaw(",\"lastCandleAgeSeconds\":", to: &out)
        JSONOut.appendDouble(report.lastCandleAgeSeconds, to: &out)
        JSONWriter.appendRaw(",\"uptimeSeconds\":", to: &out)
        JSONOut.appendDouble(state.uptimeSeconds, to: &out)
        JSONWriter.appendRaw(",\"tradesSeen\":", to: &out)
        JSONWriter.appendInt(state.tradesSeen.load(ordering: .relaxed), to: &out)
        JSONWriter.appendRaw(",\"candlesSeen\":", to: &out)
        JSONWriter.appendInt(state.candlesSeen.load(ordering: .relaxed), to: &out)
        JSONWriter.appendRaw(",\"wsClients\":", to: &out)
        JSONWriter.appendInt(Int64(state.hub.clientCount), to: &out)
        JSONWriter.appendRaw(",\"feedErrors\":{", to: &out)
        for (i, (name, error)) in errors.sorted(by: { $0.key < $1.key }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.appendString(error, to: &out)
        }
        JSONWriter.appendRaw("}}", to: &out)
        return Self.json(out, status: report.degraded ? .serviceUnavailable : .ok)
    }

    func gaps(_ request: Request) async throws -> Response {
        let query = try APIQuery.gaps(Self.queryItems(request))
        let gaps = state.gaps.list(exchange: query.exchange, symbol: query.symbol, openOnly: query.openOnly, limit: query.limit)
        var out: [UInt8] = []
        out.reserveCapacity(16 + gaps.count * 220)
        JSONWriter.appendRaw("{\"gaps\":[", to: &out)
        for (i, gap) in gaps.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            gap.appendJSON(to: &out)
        }
        JSONWriter.appendRaw("]}", to: &out)
        return Self.json(out)
    }

    func book(_ request: Request) async throws -> Response {
        let query = try APIQuery.book(Self.queryItems(request))
        guard let view = state.books.view(query.market, depth: query.depth) else {
            let known = state.books.markets.prefix(20).map(\.description).joined(separator: ", ")
            throw APIError(
                .notFound,
                "no order book for \(query.market) (yet): books come from tape.books once ingest runs with --channels book; books held: \(known.isEmpty ? "none" : known)")
        }
        var out: [UInt8] = []
        out.reserveCapacity(256 + (view.bids.count + view.asks.count) * 40)
        view.appendJSON(to: &out)
        return Self.json(out)
    }

    func markets(_ request: Request) async throws -> Response {
        try APIQuery.none(Self.queryItems(request))
        let fromHistory: [MarketID]
        do { fromHistory = try await history.markets() } catch {
            throw APIError(.historyUnavailable, "the candle history cannot be read: \(error)")
        }
        let all = Set(fromHistory).union(state.recentTrades.markets).sorted()
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"markets\":[", to: &out)
        for (i, market) in all.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"symbol\":", to: &out)
            JSONWriter.appendString(market.description, to: &out)
            JSONWriter.appendRaw(",\"exchange\":", to: &out)
            JSONWriter.appendString(market.exchange.name, to: &out)
            JSONWriter.appendRaw(",\"base\":", to: &out)
            JSONWriter.appendString(String(market.symbol.base), to: &out)
            JSONWriter.appendRaw(",\"quote\":", to: &out)
            JSONWriter.appendString(String(market.symbol.quote), to: &out)
            JSONWriter.appendRaw(",\"lastPrice\":", to: &out)
            let last = state.recentTrades.last(market)
            if let last { JSONWriter.appendDecimal(last.price, to: &out) } else { JSONWriter.appendRaw("null", to: &out) }
            JSONWriter.appendRaw(",\"lastTradeTime\":", to: &out)
            if let last { JSONWriter.appendInt(last.time, to: &out) } else { JSONWriter.appendRaw("null", to: &out) }
            out.append(UInt8(ascii: "}"))
        }
        JSONWriter.appendRaw("]}", to: &out)
        return Self.json(out)
    }

    var catalog: MarketCatalog { MarketCatalog(history: history, state: state) }

    func trades(_ request: Request) async throws -> Response {
        let query = try APIQuery.trades(Self.queryItems(request))
        if let market = query.market, let refusal = await catalog.refusal(market) { throw APIError(.notFound, refusal) }
        let trades = state.recentTrades.newest(market: query.market, limit: query.limit)
        var out: [UInt8] = []
        out.reserveCapacity(64 + trades.count * 280)
        JSONWriter.appendRaw("{\"symbol\":", to: &out)
        if let market = query.market { JSONWriter.appendString(market.description, to: &out) } else { JSONWriter.appendRaw("null", to: &out) }
        JSONWriter.appendRaw(",\"trades\":[", to: &out)
        for (i, trade) in trades.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            trade.appendJSON(to: &out)
        }
        JSONWriter.appendRaw("]}", to: &out)
        return Self.json(out)
    }

    func candles(_ request: Request) async throws -> Response {
        let query = try APIQuery.candles(Self.queryItems(request))
        if let refusal = await catalog.refusal(query.market) { throw APIError(.notFound, refusal) }
        let candles: [Candle]
        do {
            candles = try await history.candles(market: query.market, interval: query.interval, from: query.from, to: query.to, limit: query.limit)
        } catch {
            throw APIError(.historyUnavailable, "the candle history cannot be read: \(error)")
        }
        // Nothing of this interval in the history and never seen live: not computed here.
        if candles.isEmpty, let refusal = catalog.refusal(query.interval) { throw APIError(.notFound, refusal) }
        var out: [UInt8] = []
        out.reserveCapacity(64 + candles.count * 400)
        JSONWriter.appendRaw("{\"symbol\":", to: &out)
        JSONWriter.appendString(query.market.description, to: &out)
        JSONWriter.appendRaw(",\"interval\":", to: &out)
        JSONWriter.appendString(query.interval.description, to: &out)
        JSONWriter.appendRaw(",\"candles\":[", to: &out)
        for (i, candle) in candles.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            candle.appendJSON(to: &out)
        }
        JSONWriter.appendRaw("]}", to: &out)
        return Self.json(out)
    }

    func stats(_ request: Request) async throws -> Response {
        try APIQuery.none(Self.queryItems(request))
        let snapshot = await stats.stats()
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"exchanges\":[", to: &out)
        for (i, e) in snapshot.exchanges.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"exchange\":", to: &out)
            JSONWriter.appendString(e.exchange, to: &out)
            JSONWriter.appendRaw(",\"connected\":", to: &out)
            JSONOut.appendOptional(e.connected.map { $0 ? "true" : "false" }, to: &out)
            JSONWriter.appendRaw(",\"framesPerSecond\":", to: &out)
            JSONOut.appendOptionalDouble(e.framesPerSecond, to: &out)
            JSONWriter.appendRaw(",\"tradesPerSecond\":", to: &out)
            JSONOut.appendDouble(e.tradesPerSecond, to: &out)
            JSONWriter.appendRaw(",\"tradesTotal\":", to: &out)
            JSONWriter.appendInt(e.tradesTotal, to: &out)
            JSONWriter.appendRaw(",\"parseErrors\":", to: &out)
            JSONOut.appendOptional(e.parseErrors.map(String.init), to: &out)
            JSONWriter.appendRaw(",\"reconnects\":", to: &out)
            JSONOut.appendOptional(e.reconnects.map(String.init), to: &out)
            JSONWriter.appendRaw(",\"lagMilliseconds\":", to: &out)
            JSONOut.appendOptionalDouble(e.lagMilliseconds, to: &out)
            JSONWriter.appendRaw(",\"lastTradeTime\":", to: &out)
            JSONOut.appendOptional(e.lastTradeTime.map(String.init), to: &out)
            JSONWriter.appendRaw(",\"simulated\":", to: &out)
            JSONOut.appendOptional(e.simulated.map { $0 ? "true" : "false" }, to: &out)
            JSONWriter.appendRaw(",\"markets\":", to: &out)
            JSONOut.appendOptional(e.markets.map(String.init), to: &out)
            JSONWriter.appendRaw(",\"gapsOpen\":", to: &out)
            JSONWriter.appendInt(Int64(state.gaps.list(exchange: Exchange(e.exchange), openOnly: true).count), to: &out)
            out.append(UInt8(ascii: "}"))
        }
        JSONWriter.appendRaw("],\"consumerLag\":[", to: &out)
        for (i, lag) in snapshot.consumerLag.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"group\":", to: &out)
            JSONWriter.appendString(lag.group, to: &out)
            JSONWriter.appendRaw(",\"topic\":", to: &out)
            JSONWriter.appendString(lag.topic, to: &out)
            JSONWriter.appendRaw(",\"messages\":", to: &out)
            JSONWriter.appendInt(lag.messages, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        JSONWriter.appendRaw("],\"server\":{\"wsClients\":", to: &out)
        JSONWriter.appendInt(Int64(state.hub.clientCount), to: &out)
        JSONWriter.appendRaw(",\"tradesSeen\":", to: &out)
        JSONWriter.appendInt(state.tradesSeen.load(ordering: .relaxed), to: &out)
        JSONWriter.appendRaw(",\"candlesSeen\":", to: &out)
        JSONWriter.appendInt(state.candlesSeen.load(ordering: .relaxed), to: &out)
        JSONWriter.appendRaw(",\"uptimeSeconds\":", to: &out)
        JSONOut.appendDouble(state.uptimeSeconds, to: &out)
        JSONWriter.appendRaw("}}", to: &out)
        return Self.json(out)
    }

    func metrics(_ request: Request) async throws -> Response {
        let out = MetricsExporter.scrape()
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: out)))
    }

    func dashboard(_ request: Request) async throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
            body: .init(byteBuffer: ByteBuffer(string: Dashboard.html)))
    }

    func favicon(_ request: Request) async throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "image/x-icon", .cacheControl: "max-age=86400"],
            body: .init(byteBuffer: ByteBuffer(bytes: Dashboard.favicon)))
    }
}

/// Answers 405 (not 404) when a known path is asked with another method than GET or HEAD.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let paths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method != .get, request.method != .head, paths.contains(request.uri.path) {
            throw APIError(.methodNotAllowed, "\(request.uri.path) only answers GET")
        }
        return try await next(request, context)
    }
}

extension RouterMethods {
    /// GET, and HEAD answering the same status and headers without the body.
    @discardableResult
    func getAndHead(_ path: RouterPath, _ handler: @escaping @Sendable (Request) async throws -> Response) -> Self {
        on(path, method: .head) { request, _ in
            var response = try await handler(request)
            response.body = .init()
            return response
        }
        return on(path, method: .get) { request, _ in try await handler(request) }
    }
}

extension Router where Context == BasicWebSocketRequestContext {
    func addRoutes(_ routes: TapeRoutes, token: String?) {
        add(
            middleware: MethodNotAllowedMiddleware(paths: [
                "/", "/favicon.ico", "/health", "/metrics", "/api/markets", "/api/trades", "/api/candles", "/api/stats", "/api/gaps", "/api/book", "/ws",
            ]))
        getAndHead("/") { try await routes.dashboard($0) }
        getAndHead("/favicon.ico") { try await routes.favicon($0) }
        getAndHead("/health") { try await routes.health($0) }
        let protected = group()
        if let token { protected.add(middleware: BearerTokenMiddleware(token: token)) }
        protected.getAndHead("/metrics") { try await routes.metrics($0) }
        let api = protected.group("api")
        api.getAndHead("markets") { try await routes.markets($0) }
        api.getAndHead("trades") { try await routes.trades($0) }
        api.getAndHead("candles") { try await routes.candles($0) }
        api.getAndHead("stats") { try await routes.stats($0) }
        api.getAndHead("gaps") { try await routes.gaps($0) }
        api.getAndHead("book") { try await routes.book($0) }
        api.get("**") { request, _ -> Response in
            throw APIError(.notFound, "no route \(request.uri.path); the API has /api/markets, /api/trades, /api/candles, /api/stats, /api/gaps, /api/book")
        }
    }
}

/// Small JSON helpers beyond MarketData's writer.
enum JSONOut {
    static func appendDouble(_ value: Double, to out: inout [UInt8]) {
        guard value.isFinite else {
            out.append(contentsOf: "null".utf8)
            return
        }
        let rounded = (value * 1000).rounded() / 1000
        if rounded == rounded.rounded(), abs(rounded) < 1e15 {
            out.append(contentsOf: String(Int64(rounded)).utf8)
        } else {
            out.append(contentsOf: String(rounded).utf8)
        }
    }

    static func appendOptionalDouble(_ value: Double?, to out: inout [UInt8]) {
        if let value { appendDouble(value, to: &out) } else { out.append(contentsOf: "null".utf8) }
    }

    /// A raw JSON literal, or null.
    static func appendOptional(_ literal: String?, to out: inout [UInt8]) {
        out.append(contentsOf: (literal ?? "null").utf8)
    }
}
