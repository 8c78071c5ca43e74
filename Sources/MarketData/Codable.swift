// Codable as single strings, for stores and APIs that use Codable (GRDB records, Hummingbird
// responses). The Kafka values use the hand-written encoders of `Trade` and `Candle` instead.

extension ExactDecimal: Codable {
    /// Decodes from a string ("21614.59") exactly.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try ExactDecimal(text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "bad decimal \"\(text)\": \(error)")
        }
    }

    /// Encodes `description` as a string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension Symbol: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(normalizing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension Exchange: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}

extension CandleInterval: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let interval = CandleInterval(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "bad candle interval \"\(text)\"")
        }
        self = interval
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension Side: Codable {}
