/// A set of trade ids that keeps the ids written as plain decimal numbers (Poloniex's, Binance's)
/// as `UInt64`s: hashing a number costs a fraction of hashing a `String`, and ingestion's
/// deduplication and the server's recent-trades ring look up, insert and evict an id per trade.
///
/// An id is still its exact text: "7", "07", "+7" and "7 " are four different ids (only the
/// canonical spelling, digits without a leading zero, is kept as a number).
public struct TradeIDSet: Sendable {
    private var numbers: Set<UInt64> = []
    private var others: Set<String> = []

    public init() {}

    /// Ids in the set.
    public var count: Int { numbers.count + others.count }

    public func contains(_ id: String) -> Bool {
        if let n = Self.canonicalNumber(id) { return numbers.contains(n) }
        return others.contains(id)
    }

    /// Adds `id`; false when it was there already.
    @discardableResult
    public mutating func insert(_ id: String) -> Bool {
        if let n = Self.canonicalNumber(id) { return numbers.insert(n).inserted }
        return others.insert(id).inserted
    }

    public mutating func remove(_ id: String) {
        if let n = Self.canonicalNumber(id) {
            numbers.remove(n)
        } else {
            others.remove(id)
        }
    }

    /// `id` as a number when it is written canonically: "0", or 1–20 digits without a leading
    /// zero that fit in a `UInt64`. Anything else (signs, spaces, leading zeros, overflow) is nil.
    public static func canonicalNumber(_ id: String) -> UInt64? {
        var id = id
        return id.withUTF8 { bytes -> UInt64? in
            guard let first = bytes.first, bytes.count <= 20 else { return nil }
            if first == UInt8(ascii: "0") { return bytes.count == 1 ? 0 : nil }
            var value: UInt64 = 0
            for byte in bytes {
                let digit = byte &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
                if o1 || o2 { return nil }
                value = sum
            }
            return value
        }
    }
}
