import MarketData
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a venue's market list over REST and resolves requested symbols against it.
public enum MarketDirectory {
    /// Like `resolve`, but returns the listed markets (normalized symbol, REST spelling) of the
    /// resolved native symbols, in order.
    public static func resolveMarkets(
        _ requested: [String], adapter: (some ExchangeAdapter).Type, rest: Endpoint, timeout: Duration = .seconds(10),
        tls: TLSOptions = TLSOptions()
    ) async throws -> [ListedMarket] {
        let markets = try await list(adapter: adapter, rest: rest, timeout: timeout, tls: tls)
        let resolved = try SymbolSelection.resolve(requested, markets: markets, exchange: adapter.exchange)
        var byNative: [String: ListedMarket] = [:]
        for market in markets where byNative[market.nativeSymbol] == nil { byNative[market.nativeSymbol] = market }
        return resolved.map { byNative[$0] ?? ListedMarket(nativeSymbol: $0) }
    }

    /// The venue's market list.
    public static func list(
        adapter: (some ExchangeAdapter).Type, rest: Endpoint, timeout: Duration = .seconds(10), tls: TLSOptions = TLSOptions()
    ) async throws -> [ListedMarket] {
        let endpoint = rest.appending(path: adapter.marketsPath)
        let response = try await HTTPClient.get(endpoint, timeout: timeout, tls: tls)
        guard response.status == 200 else {
            throw ExchangeError(.badResponse, "GET \(endpoint) answered HTTP \(response.status)")
        }
        do { return try adapter.parseMarkets(response.body) } catch {
            throw ExchangeError(.badResponse, "GET \(endpoint): \(error)")
        }
    }

    public static func resolve(
        _ requested: [String], adapter: (some ExchangeAdapter).Type, rest: Endpoint, timeout: Duration = .seconds(10),
        tls: TLSOptions = TLSOptions()
    ) async throws -> [String] {
        let endpoint = rest.appending(path: adapter.marketsPath)
        let response = try await HTTPClient.get(endpoint, timeout: timeout, tls: tls)
        guard response.status == 200 else {
            throw ExchangeError(.badResponse, "GET \(endpoint) answered HTTP \(response.status)")
        }
        let markets: [ListedMarket]
        do { markets = try adapter.parseMarkets(response.body) } catch {
            throw ExchangeError(.badResponse, "GET \(endpoint): \(error)")
        }
        return try SymbolSelection.resolve(requested, markets: markets, exchange: adapter.exchange)
    }
}
