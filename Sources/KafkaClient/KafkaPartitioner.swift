/// librdkafka's default partitioner (`partitioner=consistent_random`): a record with a key goes to
/// partition CRC-32(key) mod the partition count (CRC-32 as zlib computes it); one without a key
/// (or with an empty one) to any partition. Tape's in-process producer uses it so that a key lands
/// on the same partition whichever way it was produced.
public enum KafkaPartitioner {
    /// The partition of `key` among `partitions` (> 0); nil for a nil or empty key (any partition will do).
    public static func consistent(key: [UInt8]?, partitions: Int) -> Int32? {
        guard let key, !key.isEmpty, partitions > 0 else { return nil }
        return Int32(truncatingIfNeeded: Int(crc32(key) % UInt32(truncatingIfNeeded: partitions)))
    }

    /// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int(UInt8(truncatingIfNeeded: crc) ^ byte)] ^ (crc >> 8) }
        return ~crc
    }

    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
}
