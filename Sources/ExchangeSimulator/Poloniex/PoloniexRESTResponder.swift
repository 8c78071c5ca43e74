import MarketData

/// Answers the simulated Poloniex REST API from a `MarketSimulator`, as a pure function of the
/// request path: an HTTP server only has to pass the path (with query) in and write the answer out.
///
/// - `GET /markets` → every instrument, state "NORMAL".
/// - `GET /markets/{symbol}/trades?limit=N` → the latest N (default 500, at most 1000) trades,
///   newest first, uppercase `takerSide`.
/// - anything else → 404; unknown symbol or bad limit → 400 with a Poloniex-style
///   `{"code":...,"message":...}` body.
public enum PoloniexRESTResponder {
    /// An HTTP answer: status code and JSON body.
    public typealias Response = SimulatedRESTResponse

    public static func respond(toPath path: String, market: MarketSimulator) -> Response {
        let (route, query) = split(path)
        let segments = route.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if segments == ["markets"] {
            return Response(
                status: 200, body: PoloniexWire.markets(market.configuration.instruments, listedAt: market.configuration.startTime))
        }
        if segments.count == 3, segments[0] == "markets", segments[2] == "trades" {
            var limit = 500
            if let text = query["limit"] {
                guard let parsed = Int(text), parsed >= 1 else {
                    return Response(status: 400, body: #"{"code":400,"message":"Param error limit"}"#)
                }
                limit = min(parsed, 1_000)
            }
            guard let trades = market.recentTrades(nativeSymbol: segments[1], limit: limit) else {
                return Response(status: 400, body: #"{"code":21709,"message":"Invalid symbol!"}"#)
            }
            return Response(status: 200, body: PoloniexWire.restTrades(trades))
        }
        return Response(status: 404, body: #"{"code":404,"message":"Not found"}"#)
    }

    static func split(_ path: String) -> (String, [String: String]) {
        guard let mark = path.firstIndex(of: "?") else { return (path, [:]) }
        var query: [String: String] = [:]
        for pair in path[path.index(after: mark)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            query[kv[0]] = kv.count > 1 ? kv[1] : ""
        }
        return (String(path[..<mark]), query)
    }
}
