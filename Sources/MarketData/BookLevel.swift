/// Why a price level was refused.
public struct BookError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}

/// A price as a sort key: the integer part and the fraction in units of 10⁻¹⁹, so "0.1" and
/// "0.10" are one key and comparing two keys is two integer comparisons. Covers every price a
/// venue prints: up to 19 integer digits (below 1.8e19) and 19 decimals.
public struct BookPrice: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var integer: UInt64
    /// The fraction × 10¹⁹.
    public var fraction: UInt64

    public static let maximumFractionDigits = 19

    public init(integer: UInt64, fraction: UInt64) {
        self.integer = integer
        self.fraction = fraction
    }

    /// Parses plain decimal digits ("21614.59", "1", ".5" is refused): no sign, no exponent.
    @inlinable
    public init(utf8 bytes: UnsafeBufferPointer<UInt8>) throws(BookError) {
        var integer: UInt64 = 0
        var fraction: UInt64 = 0
        var index = 0
        var integerDigits = 0
        while index < bytes.count, bytes[index] != UInt8(ascii: ".") {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { throw BookError("price has a character other than digits and one '.'") }
            let (times10, o1) = integer.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
            guard !o1, !o2 else { throw BookError("price is too large") }
            integer = sum
            integerDigits += 1
            index += 1
        }
        guard integerDigits > 0 else { throw BookError("price has no integer digits") }
        if index < bytes.count {
            index += 1  // the point
            var scale: UInt64 = 1_000_000_000_000_000_000  // 10^18: the first decimal's unit
            var fractionDigits = 0
            while index < bytes.count {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { throw BookError("price has a character other than digits and one '.'") }
                fractionDigits += 1
                if fractionDigits > BookPrice.maximumFractionDigits {
                    guard digit == 0 else { throw BookError("price has more than 19 decimals") }
                } else {
                    fraction += UInt64(digit) * scale
                    scale /= 10
                }
                index += 1
            }
            guard fractionDigits > 0 else { throw BookError("price ends with '.'") }
        }
        self.integer = integer
        self.fraction = fraction
    }

    public init(_ text: String) throws(BookError) {
        var copy = text
        let result = copy.withUTF8 { bytes in Result { () throws(BookError) -> BookPrice in try BookPrice(utf8: bytes) } }
        self = try result.get()
    }

    @inlinable
    public static func < (a: BookPrice, b: BookPrice) -> Bool {
        a.integer != b.integer ? a.integer < b.integer : a.fraction < b.fraction
    }

    public var description: String {
        guard fraction != 0 else { return String(integer) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 19 - digits.count) + digits
        while digits.last == "0" { digits.removeLast() }
        return "\(integer).\(digits)"
    }
}

/// One price level as the venue printed it: `price` and `quantity` keep their exact digits
/// ("21614.590", "0.50000000"), `key` orders levels. A quantity of zero (any spelling: "0",
/// "0.00000000") means "no orders at this price" in an update.
public struct BookLevel: Sendable, Hashable, CustomStringConvertible {
    public var key: BookPrice
    public var price: String
    public var quantity: String
    /// True when `quantity` is zero.
    public var isEmpty: Bool

    /// Validates both texts: plain decimals, no sign, no exponent.
    @inlinable
    public init(price: UnsafeBufferPointer<UInt8>, quantity: UnsafeBufferPointer<UInt8>) throws(BookError) {
        key = try BookPrice(utf8: price)
        isEmpty = try BookLevel.quantityIsZero(quantity)
        self.price = String(decoding: price, as: UTF8.self)
        self.quantity = String(decoding: quantity, as: UTF8.self)
    }

    public init(price: String, quantity: String) throws(BookError) {
        var p = price
        var q = quantity
        let result = p.withUTF8 { pb in
            q.withUTF8 { qb in Result { () throws(BookError) -> BookLevel in try BookLevel(price: pb, quantity: qb) } }
        }
        self = try result.get()
    }

    /// Checks that `bytes` is a plain non-negative decimal and says whether it is zero.
    @inlinable
    static func quantityIsZero(_ bytes: UnsafeBufferPointer<UInt8>) throws(BookError) -> Bool {
        guard !bytes.isEmpty else { throw BookError("quantity is empty") }
        var zero = true
        var points = 0
        var digits = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                points += 1
                guard points == 1, digits > 0 else { throw BookError("quantity has a misplaced '.'") }
            } else {
                let digit = byte &- UInt8(ascii: "0")
                guard digit < 10 else { throw BookError("quantity has a character other than digits and one '.'") }
                if digit != 0 { zero = false }
                digits += 1
            }
        }
        guard bytes[bytes.count - 1] != UInt8(ascii: ".") else { throw BookError("quantity ends with '.'") }
        guard digits <= 40 else { throw BookError("quantity has more than 40 digits") }
        return zero
    }

    public var description: String { "[\(price), \(quantity)]" }

    /// Levels are equal when they print the same.
    public static func == (a: BookLevel, b: BookLevel) -> Bool { a.price == b.price && a.quantity == b.quantity }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(price)
        hasher.combine(quantity)
    }
}

/// The side of a book a level belongs to.
public enum BookSide: String, Sendable, Hashable, CaseIterable {
    case bid
    case ask
}
