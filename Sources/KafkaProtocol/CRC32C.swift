import CTapeCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Kafka RecordBatch v2.
///
/// Uses the SSE4.2 `crc32` instruction when the CPU has it (checked once at run time), else a
/// table-driven slicing-by-8 loop.
public enum CRC32C {
    /// Whether the hardware path is used.
    public static let usesHardware: Bool = tape_crc32c_hw_available() != 0

    /// Eight 256-entry tables for slicing-by-8, flattened: table k starts at k * 256.
    static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return t
    }()

    /// The checksum of `bytes`, optionally continuing from a previous checksum.
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return previous }
        if usesHardware { return ~tape_crc32c_hw_update(~previous, base, bytes.count) }
        return tableChecksum(bytes, continuing: previous)
    }

    /// The portable table-driven path (also used by tests to cross-check the hardware path).
    public static func tableChecksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return previous }
        var crc = ~previous
        let n = bytes.count
        table.withUnsafeBufferPointer { tb in
            let t = tb.baseAddress!
            var i = 0
            // Eight bytes per step (one little-endian load, eight table lookups).
            while i + 8 <= n {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let lo = crc ^ UInt32(truncatingIfNeeded: word)
                let hi = UInt32(truncatingIfNeeded: word &>> 32)
                let a = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo &>> 8) & 0xFF)]
                let b = t[5 * 256 + Int((lo &>> 16) & 0xFF)] ^ t[4 * 256 + Int(lo &>> 24)]
                let c = t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi &>> 8) & 0xFF)]
                let d = t[256 + Int((hi &>> 16) & 0xFF)] ^ t[Int(hi &>> 24)]
                crc = a ^ b ^ c ^ d
                i &+= 8
            }
            while i < n {
                crc = t[Int((crc ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (crc &>> 8)
                i &+= 1
            }
        }
        return ~crc
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
