/// Poloniex for the shared connection loop (`ExchangeConnection`).
public struct PoloniexAdapter: ExchangeAdapter {
    public init() {}
    public var exchange: Exchange { Poloniex.exchange }
    public var defaultEndpoints: ExchangeEndpoints { Poloniex.endpoints }
    public func makeParser() -> PoloniexFrameParser { PoloniexFrameParser() }
    public func subscribeMessages(symbols: [String]) -> [String] { [Poloniex.subscribeMessage(symbols: symbols)] }
    public var pingMessage: String? { Poloniex.pingMessage }
    public var pingInterval: Duration { Poloniex.pingInterval }
    public var backfillLimit: Int { Poloniex.restTradesLimit }
    public func backfillPath(symbol: String) -> String { Poloniex.restTradesPath(symbol: symbol) }
    public func parseBackfill(_ body: [UInt8], symbol: String, receivedAt: Int64) throws(FrameParseError) -> [Trade] {
        try PoloniexREST.parseTrades(body, nativeSymbol: symbol, receivedAt: receivedAt)
    }
    public var marketsPath: String { Poloniex.restMarketsPath }
    public func parseMarkets(_ body: [UInt8]) throws(FrameParseError) -> [MarketListing] {
        try PoloniexREST.parseMarkets(body).map {
            MarketListing(native: $0.symbol, symbol: $0.normalizedSymbol, isTrading: $0.isTrading)
        }
    }
}

extension PoloniexFrameParser: ExchangeFrameParser {}
