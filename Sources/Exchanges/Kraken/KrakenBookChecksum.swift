import MarketData

/// The CRC32 Kraken sends with every v2 `book` message, computed from a book Tape holds.
///
/// Kraken's guide ("Spot Websockets (v2) Book Checksum"): over the top 10 asks (lowest price
/// first) then the top 10 bids (highest first), append each level's price then quantity, each
/// with its '.' removed and its leading zeros stripped ("45285.2" → "452852", "0.00100000" →
/// "100000"), and take the CRC-32 (zlib's) of the string. The digits are those of the number
/// at the pair's full precision: v2 sends JSON numbers, which drop trailing zeros ("0.566" for a
/// 4-decimal pair is "0.5660", i.e. "5660"), so each text is padded with zeros to the pair's
/// decimals (`pair_decimals` for prices, `lot_decimals` for quantities) before the '.' is removed.
/// Surplus trailing zeros beyond the decimals are dropped; surplus non-zero digits are kept (then
/// the checksum cannot match, and the book is re-synchronized rather than trusted).
public enum KrakenBookChecksum {
    /// Levels per side the checksum covers.
    public static let levels = 10

    /// The checksum of `book` with prices at `priceDecimals` and quantities at `quantityDecimals`.
    public static func checksum(of book: OrderBook, priceDecimals: Int, quantityDecimals: Int) -> UInt32 {
        crcTable.withUnsafeBufferPointer { table in
            var digest = Digest(table: table)
            appendText(of: book, priceDecimals: priceDecimals, quantityDecimals: quantityDecimals, to: &digest)
            return digest.value
        }
    }

    /// The string the checksum is taken of (for tests and logs).
    public static func text(of book: OrderBook, priceDecimals: Int, quantityDecimals: Int) -> String {
        var text = TextSink()
        appendText(of: book, priceDecimals: priceDecimals, quantityDecimals: quantityDecimals, to: &text)
        return String(decoding: text.bytes, as: UTF8.self)
    }

    static func appendText<Sink: ChecksumSink>(of book: OrderBook, priceDecimals: Int, quantityDecimals: Int, to sink: inout Sink) {
        let priceDecimals = max(0, priceDecimals)
        let quantityDecimals = max(0, quantityDecimals)
        let asks = book.asksDescending
        var index = asks.count - 1
        while index >= 0 && index >= asks.count - levels {
            append(asks[index].price, decimals: priceDecimals, to: &sink)
            append(asks[index].quantity, decimals: quantityDecimals, to: &sink)
            index -= 1
        }
        let bids = book.bidsAscending
        index = bids.count - 1
        while index >= 0 && index >= bids.count - levels {
            append(bids[index].price, decimals: priceDecimals, to: &sink)
            append(bids[index].quantity, decimals: quantityDecimals, to: &sink)
            index -= 1
        }
    }

    /// Appends `decimal` (plain digits with at most one '.', as `BookLevel` holds them) written
    /// with exactly `decimals` (≥ 0) decimals where its digits allow, without '.' and leading zeros.
    static func append<Sink: ChecksumSink>(_ decimal: String, decimals: Int, to sink: inout Sink) {
        var copy = decimal
        copy.withUTF8 { bytes in
            var point = bytes.count
            for i in 0..<bytes.count where bytes[i] == UInt8(ascii: ".") {
                point = i
                break
            }
            let fractionStart = min(point + 1, bytes.count)
            var fractionEnd = bytes.count
            // Drop trailing zeros beyond the pair's decimals.
            while fractionEnd - fractionStart > decimals && bytes[fractionEnd - 1] == UInt8(ascii: "0") {
                fractionEnd -= 1
            }
            var leading = true
            for i in 0..<point {
                if leading && bytes[i] == UInt8(ascii: "0") { continue }
                leading = false
                sink.add(bytes[i])
            }
            for i in fractionStart..<fractionEnd {
                if leading && bytes[i] == UInt8(ascii: "0") { continue }
                leading = false
                sink.add(bytes[i])
            }
            var padding = decimals - (fractionEnd - fractionStart)
            if !leading {
                while padding > 0 {
                    sink.add(UInt8(ascii: "0"))
                    padding -= 1
                }
            }
        }
    }

    /// zlib's CRC-32 (reflected, polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF).
    public static func crc32<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
        crcTable.withUnsafeBufferPointer { table in
            var digest = Digest(table: table)
            for byte in bytes { digest.add(byte) }
            return digest.value
        }
    }

    /// The CRC of the bytes added so far, computed as they come (no string is built).
    struct Digest: ChecksumSink {
        let table: UnsafeBufferPointer<UInt32>
        var crc: UInt32 = 0xFFFF_FFFF

        init(table: UnsafeBufferPointer<UInt32>) { self.table = table }

        @inline(__always)
        mutating func add(_ byte: UInt8) {
            crc = (crc >> 8) ^ table[Int((crc ^ UInt32(byte)) & 0xFF)]
        }

        var value: UInt32 { crc ^ 0xFFFF_FFFF }
    }

    struct TextSink: ChecksumSink {
        var bytes: [UInt8] = []
        mutating func add(_ byte: UInt8) { bytes.append(byte) }
    }

    static let crcTable: [UInt32] = (0..<256).map { (n: Int) -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 {
            c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1
        }
        return c
    }
}

/// Where the checksum's digits go: the CRC, or a string for tests.
protocol ChecksumSink {
    mutating func add(_ byte: UInt8)
}
