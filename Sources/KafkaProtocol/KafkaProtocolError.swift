/// A request or response could not be decoded: truncated, inconsistent or hostile bytes.
///
/// Decoders throw this and never trap; the server closes the offending connection.
public struct KafkaProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem it was. New codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// Fewer bytes than a field needs.
        public static let truncated = Code(raw: "truncated")
        /// A length or count that is negative where it may not be, or larger than the bytes left.
        public static let invalidLength = Code(raw: "invalidLength")
        /// A length, count or frame beyond a configured cap.
        public static let tooLarge = Code(raw: "tooLarge")
        /// A value outside its domain (e.g. a varint longer than 10 bytes, bad UTF-8).
        public static let invalidValue = Code(raw: "invalidValue")
        /// An API key this broker does not implement.
        public static let unknownApiKey = Code(raw: "unknownApiKey")
        /// A version of a known API this broker does not implement.
        public static let unsupportedVersion = Code(raw: "unsupportedVersion")
        /// A RecordBatch failed validation (magic, CRC, lengths, counts).
        public static let corruptBatch = Code(raw: "corruptBatch")
        /// Bytes left over after a complete message.
        public static let trailingBytes = Code(raw: "trailingBytes")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
