import MarketData

/// Why an exchange frame or REST body could not be turned into messages: the error a dead-letter
/// record carries. `reason` is short and says what was wrong; `offset` is the byte where it was seen.
public struct FrameParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong; new codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// Not JSON (truncated, bad token, too deep, ...).
        public static let malformedJSON = Code(name: "malformedJSON")
        /// JSON, but a trade lacks a field or has a bad value (price "abc", takerSide "up", ...).
        public static let invalidTrade = Code(name: "invalidTrade")
        /// JSON, but a book message lacks a field or has a bad level (price "-1", quantity "abc", ...).
        public static let invalidBook = Code(name: "invalidBook")
        /// JSON, but not a message shape this venue sends.
        public static let unexpectedMessage = Code(name: "unexpectedMessage")
    }

    public var code: Code
    public var reason: String
    public var offset: Int

    public init(_ code: Code, _ reason: String, offset: Int) {
        self.code = code
        self.reason = reason
        self.offset = offset
    }

    init(_ error: JSONError) {
        let code: Code =
            (error.code == .badValue || error.code == .wrongType || error.code == .outOfRange) ? .invalidTrade : .malformedJSON
        self.init(code, error.reason, offset: error.offset)
    }

    public var description: String { "\(code): \(reason) at byte \(offset)" }
}

/// What one websocket frame from an exchange meant, after parsing. Trades themselves are
/// appended to the caller's array (so a hot loop reuses one buffer); `.trades` says how many.
public enum ExchangeMessage: Sendable, Hashable {
    /// A trades frame; `count` trades were appended (Poloniex frames can hold several).
    case trades(count: Int)
    /// A book frame; `count` book messages were appended (a frame may batch several markets).
    case books(count: Int)
    /// The venue confirmed a subscription.
    case subscribed(channel: String, symbols: [String])
    /// The venue confirmed an unsubscription.
    case unsubscribed(channel: String, symbols: [String])
    /// Answer to our application-level ping.
    case pong
    /// The venue reported an error (bad symbol, bad request, ...).
    case error(message: String)
    /// Data of a channel Tape does not consume (order books, ...), recognised and skipped.
    case ignored(channel: String)
    /// An event name this adapter does not know.
    case otherEvent(String)
}
