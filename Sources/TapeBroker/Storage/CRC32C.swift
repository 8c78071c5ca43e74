import CTapeCRC32C

/// CRC-32C (Castagnoli), the checksum Kafka's RecordBatch v2 uses, for storage's crash recovery and
/// the offset store's record framing.
///
/// Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF, table-driven
/// slicing-by-8 (eight bytes per step).
///
/// Named `StorageCRC32C` and internal, not `public enum CRC32C`: KafkaProtocol (broker branch)
/// already has a public `CRC32C`, and two public types of that name in TapeBroker and KafkaProtocol
/// would make every file that imports both ambiguous (and an internal type named `CRC32C` would
/// still clash under `@testable import`). Once both branches are merged, storage can call
/// `KafkaProtocol.CRC32C` and this file can go.
enum StorageCRC32C {
    /// SSE4.2 `crc32` when the CPU has it (checked once), else the tables below.
    private static let usesHardware: Bool = tape_crc32c_hw_available() != 0

    /// Eight 256-entry tables; `tables[0]` is the classic byte-at-a-time table.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 {
                c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1
            }
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

    /// The CRC-32C of `bytes`.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        update(0, bytes)
    }

    /// The CRC-32C of `bytes`.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Same as KafkaProtocol's `CRC32C.checksum(_:continuing:)`.
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32) -> UInt32 {
        update(previous, bytes)
    }

    /// Continues a CRC-32C: `update(checksum(a), b) == checksum(a + b)`.
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        if usesHardware, let base = bytes.baseAddress, bytes.count > 0 {
            return ~tape_crc32c_hw_update(~crc, base, bytes.count)
        }
        return tableUpdate(crc, bytes)
    }

    /// The portable table-driven path.
    static func tableUpdate(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        var i = 0
        let n = bytes.count
        tables.withUnsafeBufferPointer { t in
            while n - i >= 8 {
                let lo = (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16
                    | UInt32(bytes[i + 3]) << 24) ^ c
                let b4 = Int(bytes[i + 4])
                let b5 = Int(bytes[i + 5])
                let b6 = Int(bytes[i + 6])
                let b7 = Int(bytes[i + 7])
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + b4] ^ t[2 * 256 + b5] ^ t[1 * 256 + b6] ^ t[b7]
                i += 8
            }
            while i < n {
                c = (c >> 8) ^ t[Int((c ^ UInt32(bytes[i])) & 0xFF)]
                i += 1
            }
        }
        return ~c
    }
}
