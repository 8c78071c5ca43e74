import Foundation
import KafkaProtocol
import XCTest

@testable import TapeBroker

/// A record to put in a test batch.
struct TestRecord: Equatable {
    var key: [UInt8]?
    var value: [UInt8]?
    var timestampDelta: Int64 = 0
    var offsetDelta: Int32? = nil
    var headers: [(String, [UInt8])] = []

    static func == (a: TestRecord, b: TestRecord) -> Bool {
        a.key == b.key && a.value == b.value && a.timestampDelta == b.timestampDelta
    }

    init(key: String?, value: String?, timestampDelta: Int64 = 0, headers: [(String, [UInt8])] = []) {
        self.key = key.map { Array($0.utf8) }
        self.value = value.map { Array($0.utf8) }
        self.timestampDelta = timestampDelta
        self.headers = headers
    }
}

/// Writes varints the way Kafka does (zig-zag), independently of the code under test.
func putVarint(_ v: Int64, _ out: inout [UInt8]) {
    var u = UInt64(bitPattern: (v << 1) ^ (v >> 63))
    while u & ~0x7F != 0 {
        out.append(UInt8(u & 0x7F) | 0x80)
        u >>= 7
    }
    out.append(UInt8(u))
}

func putBE<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
    withUnsafeBytes(of: v.bigEndian) { out += $0 }
}

/// Builds a RecordBatch v2. `baseOffset` is what the producer sends (the broker rewrites it).
/// `compression` sets attribute bits 0–2 only (the records are left as plain bytes, which the
/// storage must then treat as opaque).
func makeBatch(
    baseOffset: Int64 = 0, baseTimestamp: Int64 = 1_700_000_000_000, records: [TestRecord],
    compression: Int16 = 0, lastOffsetDelta: Int32? = nil, maxTimestamp: Int64? = nil, recordCount: Int32? = nil
) -> [UInt8] {
    var body: [UInt8] = []
    for (i, r) in records.enumerated() {
        var rec: [UInt8] = [0]
        putVarint(r.timestampDelta, &rec)
        putVarint(Int64(r.offsetDelta ?? Int32(i)), &rec)
        if let k = r.key {
            putVarint(Int64(k.count), &rec)
            rec += k
        } else {
            putVarint(-1, &rec)
        }
        if let v = r.value {
            putVarint(Int64(v.count), &rec)
            rec += v
        } else {
            putVarint(-1, &rec)
        }
        putVarint(Int64(r.headers.count), &rec)
        for (hk, hv) in r.headers {
            putVarint(Int64(hk.utf8.count), &rec)
            rec += Array(hk.utf8)
            putVarint(Int64(hv.count), &rec)
            rec += hv
        }
        putVarint(Int64(rec.count), &body)
        body += rec
    }
    let maxTs = maxTimestamp ?? baseTimestamp &+ (records.map(\.timestampDelta).max() ?? 0)  // wraps: tests store overflowing batches
    var afterCRC: [UInt8] = []
    putBE(compression, &afterCRC)  // attributes
    putBE(lastOffsetDelta ?? Int32(records.count - 1), &afterCRC)
    putBE(baseTimestamp, &afterCRC)
    putBE(maxTs, &afterCRC)
    putBE(Int64(-1), &afterCRC)  // producerId
    putBE(Int16(-1), &afterCRC)  // producerEpoch
    putBE(Int32(-1), &afterCRC)  // baseSequence
    putBE(recordCount ?? Int32(records.count), &afterCRC)
    afterCRC += body
    var out: [UInt8] = []
    putBE(baseOffset, &out)
    putBE(Int32(4 + 1 + 4 + afterCRC.count), &out)  // epoch + magic + crc + rest
    putBE(Int32(0), &out)  // partitionLeaderEpoch
    out.append(2)
    putBE(CRC32C.checksum(afterCRC), &out)
    out += afterCRC
    return out
}

/// A decoded batch, as a test sees it.
struct ParsedBatch {
    var baseOffset: Int64
    var lastOffsetDelta: Int32
    var maxTimestamp: Int64
    var size: Int
    var crcValid: Bool
    /// (absolute offset, timestamp, key, value); empty for "compressed" batches.
    var records: [(offset: Int64, timestamp: Int64, key: String?, value: String?)]
}

private func be<T: FixedWidthInteger>(_ b: [UInt8], _ at: Int, _: T.Type) -> T {
    var v: T = 0
    for i in 0..<MemoryLayout<T>.size { v = v << 8 | T(truncatingIfNeeded: b[at + i]) }
    return v
}

private func getVarint(_ b: [UInt8], _ i: inout Int) -> Int64 {
    var u: UInt64 = 0
    var shift: UInt64 = 0
    while true {
        let byte = b[i]
        i += 1
        u |= UInt64(byte & 0x7F) << shift
        if byte & 0x80 == 0 { break }
        shift += 7
    }
    return Int64(bitPattern: u >> 1) ^ -Int64(bitPattern: u & 1)
}

/// Splits concatenated batches and decodes uncompressed records.
func parseBatches(_ bytes: [UInt8]) -> [ParsedBatch] {
    var out: [ParsedBatch] = []
    var p = 0
    while p + 12 <= bytes.count {
        let size = Int(be(bytes, p + 8, Int32.self)) + 12
        precondition(p + size <= bytes.count, "partial batch in read result")
        let b = Array(bytes[p..<p + size])
        let base = be(b, 0, Int64.self)
        let attributes = be(b, 21, Int16.self)
        let lastDelta = be(b, 23, Int32.self)
        let baseTs = be(b, 27, Int64.self)
        let maxTs = be(b, 35, Int64.self)
        let count = Int(be(b, 57, Int32.self))
        let crc = be(b, 17, UInt32.self)
        let crcValid = CRC32C.checksum(Array(b[21...])) == crc
        var records: [(Int64, Int64, String?, String?)] = []
        if attributes & 7 == 0 {
            var i = 61
            for _ in 0..<count {
                _ = getVarint(b, &i)
                i += 1
                let tsd = getVarint(b, &i)
                let od = getVarint(b, &i)
                let kl = Int(getVarint(b, &i))
                let key = kl < 0 ? nil : String(decoding: b[i..<i + kl], as: UTF8.self)
                i += max(0, kl)
                let vl = Int(getVarint(b, &i))
                let value = vl < 0 ? nil : String(decoding: b[i..<i + vl], as: UTF8.self)
                i += max(0, vl)
                let hc = getVarint(b, &i)
                for _ in 0..<hc {
                    let hk = Int(getVarint(b, &i))
                    i += hk
                    let hv = Int(getVarint(b, &i))
                    i += max(0, hv)
                }
                records.append((base &+ od, baseTs &+ tsd, key, value))
            }
        }
        out.append(
            ParsedBatch(
                baseOffset: base, lastOffsetDelta: lastDelta, maxTimestamp: maxTs, size: size, crcValid: crcValid,
                records: records.map { (offset: $0.0, timestamp: $0.1, key: $0.2, value: $0.3) }))
        p += size
    }
    XCTAssertEqual(p, bytes.count, "read result must be whole batches")
    return out
}

/// A fresh temporary directory, removed by the test case's tearDown.
class StorageTestCase: XCTestCase {
    var directories: [String] = []

    func temporaryDirectory() -> String {
        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("tape-storage-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        directories.append(dir)
        return dir
    }

    override func tearDown() {
        for d in directories { try? FileManager.default.removeItem(atPath: d) }
        directories = []
        super.tearDown()
    }

    /// Reads the whole log from `from` to the end, batch list.
    func readAll(_ log: Log, from: Int64? = nil) throws -> [ParsedBatch] {
        var offset = from ?? log.logStartOffset
        var batches: [ParsedBatch] = []
        while offset < log.logEndOffset {
            let r = try log.read(from: offset, maxBytes: 1 << 20)
            let parsed = parseBatches(r.records)
            guard let last = parsed.last else { break }
            batches += parsed
            offset = last.baseOffset + Int64(last.lastOffsetDelta) + 1
        }
        return batches
    }

    func fileSize(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? -1
    }
}

func values(_ n: Int, prefix: String = "v", keyPrefix: String? = nil, size: Int = 0) -> [TestRecord] {
    (0..<n).map { i in
        let pad = size > 0 ? String(repeating: "x", count: size) : ""
        return TestRecord(key: keyPrefix.map { "\($0)\(i)" }, value: "\(prefix)\(i)\(pad)")
    }
}
