import MarketData

/// The markets the simulator knows: real assets with prices, ticks, lot sizes, volatility and
/// trade sizes in the range of the real markets, so a simulated chart looks like a real one.
///
/// A market is `BASE_QUOTE` with a known base asset and one of the known quotes (USDT, USDC, USD,
/// EUR, BTC, ETH). Its opening price is the base's reference price in the quote; its tick is the
/// base's usual tick for dollar and euro quotes, and five significant digits (at most 8 decimals)
/// for BTC and ETH quotes. Names the catalogue does not know are refused, never invented.
public enum MarketCatalogue {
    /// One asset as the simulator prices it.
    public struct Asset: Sendable, Hashable {
        public var name: String
        /// Reference price in US dollars, as text; its scale is the tick of the asset's dollar
        /// markets ("67214.35" → ticks of 0.01).
        public var usdPrice: String
        /// Fractional digits of quantities (lot size 10^-quantityScale).
        public var quantityScale: Int
        /// Annualized volatility of the price, as a fraction (0.6 = 60 % a year).
        public var volatility: Double
        /// Median size of one trade, in the asset (trade sizes are log-normal around it).
        public var medianQuantity: Double
        /// Relative share of the order flow of its dollar markets.
        public var weight: Int
    }

    /// The assets, by name. Prices: late-2024 levels, rounded.
    public static let assets: [Asset] = [
        Asset(name: "BTC", usdPrice: "67214.35", quantityScale: 5, volatility: 0.60, medianQuantity: 0.01, weight: 30),
        Asset(name: "ETH", usdPrice: "3456.78", quantityScale: 4, volatility: 0.70, medianQuantity: 0.15, weight: 20),
        Asset(name: "SOL", usdPrice: "152.34", quantityScale: 3, volatility: 0.90, medianQuantity: 3, weight: 8),
        Asset(name: "XRP", usdPrice: "0.5873", quantityScale: 1, volatility: 0.85, medianQuantity: 800, weight: 6),
        Asset(name: "DOGE", usdPrice: "0.15234", quantityScale: 0, volatility: 0.95, medianQuantity: 4_000, weight: 6),
        Asset(name: "LTC", usdPrice: "83.47", quantityScale: 3, volatility: 0.75, medianQuantity: 4, weight: 4),
        Asset(name: "BCH", usdPrice: "412.35", quantityScale: 4, volatility: 0.80, medianQuantity: 0.6, weight: 5),
        Asset(name: "TRX", usdPrice: "0.12345", quantityScale: 1, volatility: 0.65, medianQuantity: 3_000, weight: 4),
        Asset(name: "ADA", usdPrice: "0.4567", quantityScale: 1, volatility: 0.85, medianQuantity: 1_500, weight: 4),
        Asset(name: "AVAX", usdPrice: "35.12", quantityScale: 2, volatility: 0.95, medianQuantity: 30, weight: 3),
        Asset(name: "DOT", usdPrice: "6.543", quantityScale: 2, volatility: 0.85, medianQuantity: 100, weight: 3),
        Asset(name: "LINK", usdPrice: "14.56", quantityScale: 2, volatility: 0.85, medianQuantity: 40, weight: 3),
        Asset(name: "BNB", usdPrice: "575.23", quantityScale: 3, volatility: 0.60, medianQuantity: 1, weight: 4),
        Asset(name: "XLM", usdPrice: "0.1123", quantityScale: 0, volatility: 0.70, medianQuantity: 3_000, weight: 2),
        Asset(name: "ATOM", usdPrice: "6.789", quantityScale: 2, volatility: 0.80, medianQuantity: 50, weight: 2),
        Asset(name: "UNI", usdPrice: "8.765", quantityScale: 2, volatility: 0.90, medianQuantity: 40, weight: 2),
        Asset(name: "SHIB", usdPrice: "0.00001789", quantityScale: 0, volatility: 1.00, medianQuantity: 5_000_000, weight: 2),
        Asset(name: "USDJ", usdPrice: "0.9997", quantityScale: 2, volatility: 0.02, medianQuantity: 150, weight: 2),
        Asset(name: "USDC", usdPrice: "1.0000", quantityScale: 2, volatility: 0.01, medianQuantity: 500, weight: 3),
        Asset(name: "EUR", usdPrice: "1.0834", quantityScale: 2, volatility: 0.07, medianQuantity: 500, weight: 2),
    ]

    /// Quotes a market may have.
    public static let quotes = ["USDT", "USDC", "USD", "EUR", "BTC", "ETH"]

    /// Other spellings of an asset (Kraken's XBT and XDG).
    static let aliases = ["XBT": "BTC", "XDG": "DOGE"]

    static let assetsByName: [String: Asset] = Dictionary(uniqueKeysWithValues: assets.map { ($0.name, $0) })

    /// The simulator's name of a market: "btc-usdt", "BTC/USD", "XBTUSD", "BTCUSDT" → "BTC_USDT",
    /// "XBT_USD" → "BTC_USD"; nil when it is no pair of a known asset and a known quote.
    public static func canonicalName(_ symbol: String) -> String? {
        let upper = String(symbol.filter { $0 != " " && $0 != "\t" }).uppercased()
        var parts = upper.split(whereSeparator: { $0 == "_" || $0 == "-" || $0 == "/" }).map(String.init)
        if parts.count == 1 {
            // No separator: a known quote at the end ("BTCUSDT", "XBTUSD").
            guard let quote = quotes.sorted(by: { $0.count > $1.count }).first(where: { upper.hasSuffix($0) && upper.count > $0.count })
            else { return nil }
            parts = [String(upper.dropLast(quote.count)), quote]
        }
        guard parts.count == 2 else { return nil }
        let base = aliases[parts[0]] ?? parts[0]
        let quote = aliases[parts[1]] ?? parts[1]
        guard base != quote, assetsByName[base] != nil, quotes.contains(quote) else { return nil }
        return base + "_" + quote
    }

    /// The instrument of a market (any spelling `canonicalName` takes), or nil for one the simulator
    /// does not know.
    public static func instrument(_ symbol: String) -> SimulatedInstrument? {
        guard let name = canonicalName(symbol) else { return nil }
        let parts = name.split(separator: "_").map(String.init)
        guard parts.count == 2, let base = assetsByName[parts[0]], let basePrice = Double(base.usdPrice),
            let baseTick = try? ExactDecimal(base.usdPrice)
        else { return nil }
        let quote = parts[1]
        let quoteUSD: Double
        let quoteVolatility: Double
        switch quote {
        case "USDT", "USDC", "USD": (quoteUSD, quoteVolatility) = (1, 0)
        default:
            guard let asset = assetsByName[quote], let price = Double(asset.usdPrice) else { return nil }
            (quoteUSD, quoteVolatility) = (price, asset.volatility)
        }
        let price = basePrice / quoteUSD
        let scale: Int
        let weight: Int
        if quote == "BTC" || quote == "ETH" {
            // Five significant digits, at most 8 decimals (the venues' satoshi limit).
            var digits = 4
            var p = price
            while p < 1 && digits < 8 {
                p *= 10
                digits += 1
            }
            while p >= 10 && digits > 0 {
                p /= 10
                digits -= 1
            }
            scale = min(8, max(0, digits))
            weight = max(1, base.weight / 3)
        } else {
            scale = Int(baseTick.scale)
            weight = quote == "USDT" ? base.weight : max(1, base.weight / 2)
        }
        // Volatility of a cross: both legs, correlated (ρ ≈ 0.7 among crypto assets).
        let volatility =
            quoteVolatility == 0
            ? base.volatility
            : max(0.05, (base.volatility * base.volatility + quoteVolatility * quoteVolatility - 1.4 * base.volatility * quoteVolatility).squareRoot())
        let mantissa = Int64(max(1, (price * pow10(scale)).rounded()))
        return SimulatedInstrument(
            nativeSymbol: name, startPrice: ExactDecimal(mantissa: mantissa, scale: scale), quantityScale: base.quantityScale,
            weight: weight, volatility: volatility, medianQuantity: base.medianQuantity)
    }

    /// The instruments of `symbols`, in order; throws naming every unknown one and what the
    /// simulator knows.
    public static func instruments(symbols: [String]) throws -> [SimulatedInstrument] {
        var known: [SimulatedInstrument] = []
        var unknown: [String] = []
        for symbol in symbols {
            if let instrument = instrument(symbol) { known.append(instrument) } else { unknown.append(symbol) }
        }
        guard unknown.isEmpty else { throw UnknownSimulatedMarket(symbols: unknown) }
        return known
    }

    /// The symbols among `symbols` the simulator does not know.
    public static func unknown(_ symbols: [String]) -> [String] {
        symbols.filter { instrument($0) == nil }
    }

    static func pow10(_ n: Int) -> Double {
        var v = 1.0
        for _ in 0..<max(0, n) { v *= 10 }
        return v
    }
}

/// Markets the simulator does not know (it refuses to invent a price).
public struct UnknownSimulatedMarket: Error, CustomStringConvertible, Sendable, Equatable {
    public var symbols: [String]

    public init(symbols: [String]) { self.symbols = symbols }

    public var description: String {
        let names = symbols.map { "'\($0)'" }.joined(separator: ", ")
        return
            "The simulator has no market \(names): it simulates BASE_QUOTE with BASE one of \(MarketCatalogue.assets.map(\.name).joined(separator: ", ")) and QUOTE one of \(MarketCatalogue.quotes.joined(separator: ", ")) (e.g. BTC_USDT, ETH_BTC, SOL-USD)."
    }
}
