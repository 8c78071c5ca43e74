import MarketData
import Processing

/// The processing stage's SQLite candle store as the server's history (`tape serve --db FILE`,
/// and `tape up`). Reads are short SQLite queries through GRDB's pool, run inline.
extension CandleStore: CandleHistory {
    public func candles(market: MarketID, interval: CandleInterval, from: Int64?, to: Int64?, limit: Int) async throws -> [Candle] {
        try candles(exchange: market.exchange, symbol: market.symbol, interval: interval, from: from, to: to, limit: limit)
    }

    public func markets() async throws -> [MarketID] {
        try symbols().map { MarketID(exchange: $0.exchange, symbol: $0.symbol) }
    }
}
