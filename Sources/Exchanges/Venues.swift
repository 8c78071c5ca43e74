/// The venues Tape ingests from, by name: each is one folder with one `ExchangeAdapter`.
public enum Venues {
    /// Every supported venue.
    public static let all: [any ExchangeAdapter.Type] = [Poloniex.self, Binance.self, Coinbase.self, Kraken.self]

    /// Their names, lower case ("poloniex", "binance", ...).
    public static var names: [String] { all.map { $0.exchange.name } }

    /// The adapter of a venue name (any case), nil when unknown.
    public static func adapter(named name: String) -> (any ExchangeAdapter.Type)? {
        all.first { $0.exchange.name == name.lowercased() }
    }
}
