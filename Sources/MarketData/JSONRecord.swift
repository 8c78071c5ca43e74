/// A record value with a hand-written JSON layout (`Trade`, `Candle`, `Gap`): it appends itself
/// with `JSONWriter` and reads itself from a `JSONScanner`; the conversions to and from bytes and
/// strings are shared.
public protocol JSONRecord: Sendable {
    /// Bytes reserved when encoding one value.
    static var typicalJSONSize: Int { get }
    /// Appends the value's JSON (one line, no spaces, fields in schema order).
    func appendJSON(to out: inout [UInt8])
    /// Decodes one object from the scanner, then requires the input to end.
    init(from scanner: inout JSONScanner) throws(JSONError)
}

extension JSONRecord {
    /// The JSON value as UTF-8 bytes.
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.typicalJSONSize)
        appendJSON(to: &out)
        return out
    }

    /// The JSON value as a string.
    public var jsonString: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// Decodes a value from UTF-8 bytes (see `init(from:)` for what each type accepts).
    public init(json bytes: [UInt8]) throws(JSONError) {
        self = try JSONScanner.withScanner(over: bytes) { (s: inout JSONScanner) throws(JSONError) in try Self(from: &s) }
    }

    /// Decodes a value from a string.
    public init(json text: String) throws(JSONError) {
        self = try JSONScanner.withScanner(over: text) { (s: inout JSONScanner) throws(JSONError) in try Self(from: &s) }
    }
}

extension JSONScanner {
    /// Runs `body` with a scanner over a string's UTF-8 bytes.
    public static func withScanner<R>(
        over text: String,
        _ body: (inout JSONScanner) throws(JSONError) -> R
    ) throws(JSONError) -> R {
        var copy = text
        let result: Result<R, JSONError> = copy.withUTF8 { buffer in
            var scanner = JSONScanner(buffer)
            return Result { () throws(JSONError) -> R in try body(&scanner) }
        }
        return try result.get()
    }

    /// Runs `body` with a scanner over bytes.
    public static func withScanner<R>(
        over bytes: [UInt8],
        _ body: (inout JSONScanner) throws(JSONError) -> R
    ) throws(JSONError) -> R {
        let result: Result<R, JSONError> = bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            return Result { () throws(JSONError) -> R in try body(&scanner) }
        }
        return try result.get()
    }
}
