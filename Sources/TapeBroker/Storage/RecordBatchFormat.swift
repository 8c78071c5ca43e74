import KafkaProtocol

/// The parts of Kafka's RecordBatch v2 (magic 2) format that storage needs.
///
/// Layout (big-endian): baseOffset int64 @0, batchLength int32 @8 (bytes after this field),
/// partitionLeaderEpoch int32 @12, magic int8 @16, crc uint32 @17 (CRC-32C of bytes 21..<end),
/// attributes int16 @21, lastOffsetDelta int32 @23, baseTimestamp int64 @27, maxTimestamp int64 @35,
/// producerId int64 @43, producerEpoch int16 @51, baseSequence int32 @53, recordCount int32 @57,
/// records @61.
enum RecordBatchLayout {
    static let baseOffset = 0
    static let batchLength = 8
    static let partitionLeaderEpoch = 12
    static let magic = 16
    static let crc = 17
    static let attributes = 21
    static let lastOffsetDelta = 23
    static let baseTimestamp = 27
    static let maxTimestamp = 35
    static let producerId = 43
    static let producerEpoch = 51
    static let baseSequence = 53
    static let recordCount = 57
    static let records = 61
    /// Size of the fixed header; also the smallest valid batch.
    static let headerSize = 61
    /// Bytes before `batchLength` counts: baseOffset + batchLength itself.
    static let logOverhead = 12
}

/// A parsed RecordBatch v2 header.
struct StoredBatchHeader: Equatable, Sendable {
    var baseOffset: Int64
    var batchLength: Int32
    var magic: Int8
    var crc: UInt32
    var attributes: Int16
    var lastOffsetDelta: Int32
    var baseTimestamp: Int64
    var maxTimestamp: Int64
    var recordCount: Int32

    /// Total bytes of the batch including baseOffset and batchLength.
    var totalSize: Int { Int(batchLength) + RecordBatchLayout.logOverhead }
    /// baseOffset + lastOffsetDelta. Wraps instead of trapping on a corrupt header: code that reads
    /// headers from files checks `shapeProblem` first, and then it cannot wrap.
    var lastOffset: Int64 { baseOffset &+ Int64(lastOffsetDelta) }

    /// Why this header (read from a file or a request) cannot describe a stored batch, or nil:
    /// a batchLength smaller than the header, a negative lastOffsetDelta or baseOffset, or offsets
    /// past Int64.max (the last offset + 1 must still be an offset). (recordCount is not checked
    /// here: storage does not need it, and readers of records check it themselves.)
    var shapeProblem: String? {
        if batchLength < Int32(RecordBatchLayout.headerSize - RecordBatchLayout.logOverhead) {
            return "invalid batch length \(batchLength)"
        }
        if lastOffsetDelta < 0 { return "negative lastOffsetDelta \(lastOffsetDelta)" }
        if baseOffset < 0 { return "negative baseOffset \(baseOffset)" }
        if baseOffset > Int64.max - 1 - Int64(lastOffsetDelta) {
            return "baseOffset \(baseOffset) + lastOffsetDelta \(lastOffsetDelta) is past the largest offset"
        }
        return nil
    }
    /// Compression codec (attributes bits 0–2); 0 = none.
    var compression: Int { Int(attributes & 0x07) }
    var isControl: Bool { attributes & 0x20 != 0 }
    /// Part of a transaction (attributes bit 4).
    var isTransactional: Bool { attributes & 0x10 != 0 }

    /// Parses the header from the first 61 bytes of `bytes`. Returns nil if too short.
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= RecordBatchLayout.headerSize else { return nil }
        baseOffset = Int64(bitPattern: BigEndian.u64(bytes, RecordBatchLayout.baseOffset))
        batchLength = Int32(bitPattern: BigEndian.u32(bytes, RecordBatchLayout.batchLength))
        magic = Int8(bitPattern: bytes[RecordBatchLayout.magic])
        crc = BigEndian.u32(bytes, RecordBatchLayout.crc)
        attributes = Int16(bitPattern: BigEndian.u16(bytes, RecordBatchLayout.attributes))
        lastOffsetDelta = Int32(bitPattern: BigEndian.u32(bytes, RecordBatchLayout.lastOffsetDelta))
        baseTimestamp = Int64(bitPattern: BigEndian.u64(bytes, RecordBatchLayout.baseTimestamp))
        maxTimestamp = Int64(bitPattern: BigEndian.u64(bytes, RecordBatchLayout.maxTimestamp))
        recordCount = Int32(bitPattern: BigEndian.u32(bytes, RecordBatchLayout.recordCount))
    }

    init?(_ bytes: [UInt8]) {
        guard let h = bytes.withUnsafeBytes({ StoredBatchHeader($0) }) else { return nil }
        self = h
    }
}

/// Big-endian integer access on raw bytes.
enum BigEndian {
    @inline(__always)
    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
        UInt16(b[at]) << 8 | UInt16(b[at + 1])
    }
    @inline(__always)
    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
    @inline(__always)
    static func u64(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(u32(b, at)) << 32 | UInt64(u32(b, at + 4))
    }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        b.withUnsafeBytes { u32($0, at) }
    }
    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 {
        b.withUnsafeBytes { u64($0, at) }
    }
    static func put(_ v: UInt16, into b: inout [UInt8], at: Int) {
        b[at] = UInt8(truncatingIfNeeded: v >> 8)
        b[at + 1] = UInt8(truncatingIfNeeded: v)
    }
    static func put(_ v: UInt32, into b: inout [UInt8], at: Int) {
        for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
    }
    static func put(_ v: UInt64, into b: inout [UInt8], at: Int) {
        for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64(i))) }
    }
    static func append(_ v: UInt16, to b: inout [UInt8]) {
        b.append(UInt8(truncatingIfNeeded: v >> 8))
        b.append(UInt8(truncatingIfNeeded: v))
    }
    static func append(_ v: UInt32, to b: inout [UInt8]) {
        for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i)))) }
    }
    static func append(_ v: UInt64, to b: inout [UInt8]) {
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64(i)))) }
    }
}

/// Zig-zag varints as Kafka records use them.
enum Varint {
    struct Malformed: Error {}

    /// Reads a zig-zag varlong at `index`, advancing it.
    static func readVarlong(_ b: UnsafeRawBufferPointer, _ index: inout Int) throws -> Int64 {
        var raw: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < b.count, shift < 64 else { throw Malformed() }
            let byte = b[index]
            index += 1
            raw |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    static func readVarint(_ b: UnsafeRawBufferPointer, _ index: inout Int) throws -> Int32 {
        let v = try readVarlong(b, &index)
        guard let r = Int32(exactly: v) else { throw Malformed() }
        return r
    }

    static func append(_ value: Int64, to b: inout [UInt8]) {
        var raw = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        while raw >= 0x80 {
            b.append(UInt8(truncatingIfNeeded: raw) | 0x80)
            raw >>= 7
        }
        b.append(UInt8(raw))
    }
}

/// One record decoded from an uncompressed batch (only compaction and timestamp lookup need this).
struct DecodedRecord: Equatable, Sendable {
    /// The record's timestamp (the batch's base timestamp + its delta), or nil if the sum does not fit
    /// in an Int64 (stored by older versions, which did not check it at produce).
    func timestamp(base: Int64) -> Int64? {
        let (t, overflow) = base.addingReportingOverflow(timestampDelta)
        return overflow ? nil : t
    }

    /// The record's offset (the batch's base offset + its delta), or nil if it does not fit.
    func offset(base: Int64) -> Int64? {
        let (o, overflow) = base.addingReportingOverflow(Int64(offsetDelta))
        return overflow ? nil : o
    }

    var attributes: Int8
    var timestampDelta: Int64
    var offsetDelta: Int32
    var key: [UInt8]?
    var value: [UInt8]?
    /// The encoded headers section (count varint + headers), kept verbatim.
    var rawHeaders: [UInt8]

    /// Decodes all records of an uncompressed batch (`batch` = the whole batch bytes).
    static func decodeAll(batch: UnsafeRawBufferPointer, count: Int, start: Int = RecordBatchLayout.records) throws -> [DecodedRecord] {
        // A count read from a corrupt header may be negative or absurd; each record takes >= 1 byte.
        guard count >= 0, count <= batch.count else { throw Varint.Malformed() }
        var records: [DecodedRecord] = []
        records.reserveCapacity(max(0, min(count, 100_000)))
        var i = start
        for _ in 0..<count {
            let length = try Varint.readVarint(batch, &i)
            guard length >= 0, i + Int(length) <= batch.count else { throw Varint.Malformed() }
            let end = i + Int(length)
            let record = UnsafeRawBufferPointer(rebasing: batch[i..<end])
            var j = 0
            guard record.count >= 1 else { throw Varint.Malformed() }
            let attributes = Int8(bitPattern: record[j])
            j += 1
            let tsDelta = try Varint.readVarlong(record, &j)
            let offDelta = try Varint.readVarint(record, &j)
            let key = try readBytes(record, &j)
            let value = try readBytes(record, &j)
            guard j <= record.count else { throw Varint.Malformed() }
            let rawHeaders = Array(record[j..<record.count])
            records.append(
                DecodedRecord(
                    attributes: attributes, timestampDelta: tsDelta, offsetDelta: offDelta,
                    key: key, value: value, rawHeaders: rawHeaders))
            i = end
        }
        return records
    }

    private static func readBytes(_ b: UnsafeRawBufferPointer, _ j: inout Int) throws -> [UInt8]? {
        let len = try Varint.readVarint(b, &j)
        if len < 0 { return nil }
        guard j + Int(len) <= b.count else { throw Varint.Malformed() }
        defer { j += Int(len) }
        return Array(b[j..<j + Int(len)])
    }

    /// Appends this record's encoding (length-prefixed) to `out`.
    func encode(into out: inout [UInt8]) {
        var body: [UInt8] = [UInt8(bitPattern: attributes)]
        Varint.append(timestampDelta, to: &body)
        Varint.append(Int64(offsetDelta), to: &body)
        if let key {
            Varint.append(Int64(key.count), to: &body)
            body += key
        } else {
            Varint.append(-1, to: &body)
        }
        if let value {
            Varint.append(Int64(value.count), to: &body)
            body += value
        } else {
            Varint.append(-1, to: &body)
        }
        body += rawHeaders
        Varint.append(Int64(body.count), to: &out)
        out += body
    }
}
