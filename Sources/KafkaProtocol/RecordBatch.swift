import NIOCore

/// Why a produced RecordBatch was rejected, with the Kafka error code to answer with.
public struct RecordBatchError: Error, Sendable, Equatable, CustomStringConvertible {
    public var errorCode: ErrorCode
    public var message: String
    public init(_ errorCode: ErrorCode, _ message: String) {
        self.errorCode = errorCode
        self.message = message
    }
    public var description: String { message }
}

/// The fixed 61-byte header of a RecordBatch v2 (magic 2).
public struct RecordBatchHeader: Sendable, Equatable {
    public static let size = 61
    /// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
    public static let logOverhead = 12
    /// Where the CRC-covered part starts (the attributes field).
    public static let crcCoveredStart = 21

    public var baseOffset: Int64
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordCount: Int32

    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    public var compression: Int { Int(attributes & 0x7) }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }
    public var totalSize: Int { Int(batchLength) + Self.logOverhead }

    public init(
        baseOffset: Int64, batchLength: Int32, partitionLeaderEpoch: Int32, magic: Int8, crc: UInt32, attributes: Int16, lastOffsetDelta: Int32,
        baseTimestamp: Int64, maxTimestamp: Int64, producerId: Int64, producerEpoch: Int16, baseSequence: Int32, recordCount: Int32
    ) {
        self.baseOffset = baseOffset
        self.batchLength = batchLength
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.lastOffsetDelta = lastOffsetDelta
        self.baseTimestamp = baseTimestamp
        self.maxTimestamp = maxTimestamp
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.recordCount = recordCount
    }

    /// Reads the header at the reader index without moving it.
    public static func peek(_ buffer: ByteBuffer) throws -> RecordBatchHeader {
        var b = buffer
        guard b.readableBytes >= size else {
            throw RecordBatchError(.corruptMessage, "record batch header needs \(size) bytes, \(b.readableBytes) present")
        }
        return RecordBatchHeader(
            baseOffset: try b.decodeInt64(), batchLength: try b.decodeInt32(), partitionLeaderEpoch: try b.decodeInt32(),
            magic: try b.decodeInt8(), crc: try b.decodeUInt32(), attributes: try b.decodeInt16(), lastOffsetDelta: try b.decodeInt32(),
            baseTimestamp: try b.decodeInt64(), maxTimestamp: try b.decodeInt64(), producerId: try b.decodeInt64(),
            producerEpoch: try b.decodeInt16(), baseSequence: try b.decodeInt32(), recordCount: try b.decodeInt32())
    }
}

/// One batch that passed validation, with its bytes (a slice of the request).
public struct ValidatedBatch: Sendable {
    public var header: RecordBatchHeader
    public var bytes: ByteBuffer
}

/// Validation of RecordBatch v2 bytes as a producer sends them.
public enum RecordBatchValidator {
    /// Splits `records` into batches and validates each: magic 2, batchLength consistent with
    /// the bytes present, CRC-32C over attributes..end, recordCount against lastOffsetDelta,
    /// every record of an uncompressed batch well-formed, and size at most `maxBatchBytes`.
    public static func validate(records: ByteBuffer, maxBatchBytes: Int) throws -> [ValidatedBatch] {
        var rest = records
        var out: [ValidatedBatch] = []
        if rest.readableBytes == 0 { throw RecordBatchError(.corruptMessage, "empty record set") }
        while rest.readableBytes > 0 {
            // Message sets v0/v1 keep their magic byte at the same position as RecordBatch v2.
            if let magic = rest.getInteger(at: rest.readerIndex + 16, as: Int8.self), magic == 0 || magic == 1 {
                throw RecordBatchError(
                    .unsupportedForMessageFormat, "message format v\(magic) (magic \(magic)) is not supported; this broker stores RecordBatch v2 (magic 2) only"
                )
            }
            let header = try RecordBatchHeader.peek(rest)
            if header.magic != 2 {
                throw RecordBatchError(.corruptMessage, "record batch magic \(header.magic); only RecordBatch v2 (magic 2) is supported")
            }
            if header.batchLength < Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead) {
                throw RecordBatchError(.corruptMessage, "batchLength \(header.batchLength) is smaller than a batch header")
            }
            let total = header.totalSize
            if total > rest.readableBytes {
                throw RecordBatchError(.corruptMessage, "batchLength \(header.batchLength) says \(total) bytes, only \(rest.readableBytes) present")
            }
            if total > maxBatchBytes {
                throw RecordBatchError(.messageTooLarge, "record batch of \(total) bytes exceeds max.message.bytes \(maxBatchBytes)")
            }
            let batch = rest.readSlice(length: total)!
            let computed = batch.withUnsafeReadableBytes { raw in
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[RecordBatchHeader.crcCoveredStart...]))
            }
            if computed != header.crc {
                throw RecordBatchError(.corruptMessage, "record batch CRC-32C mismatch: header says \(header.crc), bytes give \(computed)")
            }
            if header.recordCount < 0 || header.lastOffsetDelta < 0 {
                throw RecordBatchError(.corruptMessage, "negative recordCount \(header.recordCount) or lastOffsetDelta \(header.lastOffsetDelta)")
            }
            if header.compression > 4 {
                throw RecordBatchError(.unsupportedCompressionType, "unknown compression codec \(header.compression)")
            }
            if header.compression == 0 {
                if Int64(header.recordCount) != Int64(header.lastOffsetDelta) + 1 {
                    throw RecordBatchError(.invalidRecord, "recordCount \(header.recordCount) does not match lastOffsetDelta \(header.lastOffsetDelta) + 1")
                }
                var body = batch
                body.moveReaderIndex(forwardBy: RecordBatchHeader.size)
                do {
                    try Record.validateAll(in: &body, count: Int(header.recordCount), baseTimestamp: header.baseTimestamp)
                } catch let e as KafkaProtocolError {
                    throw RecordBatchError(.corruptMessage, "malformed record in batch: \(e)")
                }
                if body.readableBytes != 0 {
                    throw RecordBatchError(.corruptMessage, "\(body.readableBytes) bytes after the last record of the batch")
                }
            } else if header.recordCount == 0 {
                throw RecordBatchError(.invalidRecord, "compressed batch with zero records")
            }
            out.append(ValidatedBatch(header: header, bytes: batch))
        }
        return out
    }
}

/// One record inside an uncompressed RecordBatch v2.
public struct Record: Sendable, Equatable {
    public struct Header: Sendable, Equatable {
        public var key: String
        public var value: [UInt8]?
        public init(key: String, value: [UInt8]?) {
            self.key = key
            self.value = value
        }
    }
    public var attributes: Int8 = 0
    public var timestampDelta: Int64
    public var offsetDelta: Int32
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [Header]

    public init(timestampDelta: Int64 = 0, offsetDelta: Int32, key: [UInt8]?, value: [UInt8]?, headers: [Header] = []) {
        self.timestampDelta = timestampDelta
        self.offsetDelta = offsetDelta
        self.key = key
        self.value = value
        self.headers = headers
    }

    static func decodeVarBytes(_ b: inout ByteBuffer) throws -> [UInt8]? {
        let n = try b.decodeVarint()
        if n < 0 { return nil }
        try b.need(Int(n), "record bytes")
        return b.readBytes(length: Int(n))
    }

    /// Walks `count` records without copying them: every length must fit in its record, every
    /// record must be consumed exactly, and offset deltas must run 0, 1, 2, ...
    /// Each record's timestamp (`baseTimestamp` + its timestampDelta) must fit in an Int64; a
    /// record whose sum overflows throws `RecordBatchError(.invalidTimestamp)`.
    public static func validateAll(in buffer: inout ByteBuffer, count: Int, baseTimestamp: Int64 = 0) throws {
        // Fast path over raw bytes; it accepts exactly what the checked path below accepts. When it
        // finds anything wrong, the checked path runs to throw the precise error.
        let consumed = buffer.withUnsafeReadableBytes { RecordScanner.validate($0, count: count, baseTimestamp: baseTimestamp) }
        if let consumed {
            buffer.moveReaderIndex(forwardBy: consumed)
            return
        }
        try validateAllChecked(in: &buffer, count: count, baseTimestamp: baseTimestamp)
    }

    /// The reference validation, with a precise error for every way a record can be malformed.
    static func validateAllChecked(in buffer: inout ByteBuffer, count: Int, baseTimestamp: Int64 = 0) throws {
        if count > buffer.readableBytes {
            throw KafkaProtocolError(.invalidLength, "record count \(count) exceeds the \(buffer.readableBytes) bytes left")
        }
        func skipVarBytes(_ r: inout ByteBuffer, nullable: Bool, _ what: StaticString) throws {
            let n = Int(try r.decodeVarint())
            if n < 0 {
                if n == -1 && nullable { return }
                throw KafkaProtocolError(.invalidLength, "\(what) length \(n)")
            }
            try r.need(n, what)
            r.moveReaderIndex(forwardBy: n)
        }
        for i in 0..<count {
            let length = Int(try buffer.decodeVarint())
            if length < 0 { throw KafkaProtocolError(.invalidLength, "record length \(length)") }
            try buffer.need(length, "record")
            var r = buffer.readSlice(length: length)!
            _ = try r.decodeInt8()
            let timestampDelta = try r.decodeVarlong()
            if baseTimestamp.addingReportingOverflow(timestampDelta).overflow {
                throw RecordBatchError(
                    .invalidTimestamp,
                    "record \(i) has timestamp baseTimestamp \(baseTimestamp) + timestampDelta \(timestampDelta), which overflows a 64-bit timestamp")
            }
            let offsetDelta = try r.decodeVarint()
            if offsetDelta != Int32(i) { throw KafkaProtocolError(.invalidValue, "record \(i) has offsetDelta \(offsetDelta)") }
            try skipVarBytes(&r, nullable: true, "record key")
            try skipVarBytes(&r, nullable: true, "record value")
            let headerCount = Int(try r.decodeVarint())
            if headerCount < 0 || headerCount > r.readableBytes { throw KafkaProtocolError(.invalidLength, "record header count \(headerCount)") }
            for _ in 0..<headerCount {
                try skipVarBytes(&r, nullable: false, "header key")
                try skipVarBytes(&r, nullable: true, "header value")
            }
            if r.readableBytes != 0 { throw KafkaProtocolError(.trailingBytes, "\(r.readableBytes) bytes after a record's headers") }
        }
    }

    /// Decodes `count` records; each length is checked against the bytes left.
    public static func decodeAll(from buffer: inout ByteBuffer, count: Int) throws -> [Record] {
        if count > buffer.readableBytes {
            throw KafkaProtocolError(.invalidLength, "record count \(count) exceeds the \(buffer.readableBytes) bytes left")
        }
        var out: [Record] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let length = Int(try buffer.decodeVarint())
            if length < 0 { throw KafkaProtocolError(.invalidLength, "record length \(length)") }
            try buffer.need(length, "record")
            var r = buffer.readSlice(length: length)!
            let attributes = try r.decodeInt8()
            let tsDelta = try r.decodeVarlong()
            let offDelta = try r.decodeVarint()
            let key = try decodeVarBytes(&r)
            let value = try decodeVarBytes(&r)
            let headerCount = Int(try r.decodeVarint())
            if headerCount < 0 || headerCount > r.readableBytes {
                throw KafkaProtocolError(.invalidLength, "record header count \(headerCount)")
            }
            var headers: [Header] = []
            for _ in 0..<headerCount {
                let kn = Int(try r.decodeVarint())
                if kn < 0 { throw KafkaProtocolError(.invalidLength, "header key length \(kn)") }
                try r.need(kn, "header key")
                let k = r.readString(length: kn) ?? ""
                headers.append(Header(key: k, value: try decodeVarBytes(&r)))
            }
            if r.readableBytes != 0 { throw KafkaProtocolError(.trailingBytes, "\(r.readableBytes) bytes after a record's headers") }
            var rec = Record(timestampDelta: tsDelta, offsetDelta: offDelta, key: key, value: value, headers: headers)
            rec.attributes = attributes
            out.append(rec)
        }
        return out
    }

    func encode(into buffer: inout ByteBuffer) {
        var body = ByteBuffer()
        body.encodeInt8(attributes)
        body.encodeVarlong(timestampDelta)
        body.encodeVarint(offsetDelta)
        func varBytes(_ v: [UInt8]?) {
            if let v {
                body.encodeVarint(Int32(v.count))
                body.writeBytes(v)
            } else {
                body.encodeVarint(-1)
            }
        }
        varBytes(key)
        varBytes(value)
        body.encodeVarint(Int32(headers.count))
        for h in headers {
            body.encodeVarint(Int32(h.key.utf8.count))
            body.writeString(h.key)
            varBytes(h.value)
        }
        buffer.encodeVarint(Int32(body.readableBytes))
        buffer.writeBuffer(&body)
    }
}

/// Record validation over raw bytes, without ByteBuffer bookkeeping per field: the produce hot
/// path. Same rules as `Record.validateAllChecked`; answers only "valid, N bytes long" or "not".
enum RecordScanner {
    /// Bytes taken by `count` well-formed records at the start of `bytes`, or nil if they are not.
    static func validate(_ bytes: UnsafeRawBufferPointer, count: Int, baseTimestamp: Int64 = 0) -> Int? {
        guard count <= bytes.count else { return nil }
        guard count > 0 else { return 0 }
        guard let base = bytes.baseAddress else { return nil }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let end = bytes.count
        var i = 0
        for index in 0..<count {
            guard let length = varint(p, &i, end), length >= 0, length <= end - i else { return nil }
            let recordEnd = i + Int(length)
            // attributes
            guard i < recordEnd else { return nil }
            i += 1
            guard let timestampDelta = varlong(p, &i, recordEnd), !baseTimestamp.addingReportingOverflow(timestampDelta).overflow
            else { return nil }
            guard let offsetDelta = varint(p, &i, recordEnd), offsetDelta == Int32(truncatingIfNeeded: index) else { return nil }
            guard skipBytes(p, &i, recordEnd, nullable: true), skipBytes(p, &i, recordEnd, nullable: true) else { return nil }
            guard let headers = varint(p, &i, recordEnd), headers >= 0, Int(headers) <= recordEnd - i else { return nil }
            for _ in 0..<Int(headers) {
                guard skipBytes(p, &i, recordEnd, nullable: false), skipBytes(p, &i, recordEnd, nullable: true) else { return nil }
            }
            guard i == recordEnd else { return nil }
        }
        return i
    }

    /// Zigzag varint of at most 5 bytes (as `ByteBuffer.decodeVarint`), or nil.
    @inline(__always)
    static func varint(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Int32? {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while i < end {
            let byte = p[i]
            i += 1
            if shift == 28 && byte & 0xF0 != 0 { return nil }
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return Int32(bitPattern: (result >> 1) ^ (0 &- (result & 1))) }
            shift += 7
        }
        return nil
    }

    /// Zigzag varlong of at most 10 bytes (as `ByteBuffer.decodeVarlong`), or nil.
    @inline(__always)
    static func varlong(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Int64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while i < end {
            let byte = p[i]
            i += 1
            if shift == 63 && byte & 0xFE != 0 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return Int64(bitPattern: (result >> 1) ^ (0 &- (result & 1))) }
            shift += 7
        }
        return nil
    }

    /// Skips a varint-length-prefixed byte string (-1 is null when `nullable`); false if malformed.
    @inline(__always)
    static func skipBytes(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, nullable: Bool) -> Bool {
        guard let n = varint(p, &i, end) else { return false }
        if n < 0 { return n == -1 && nullable }
        guard Int(n) <= end - i else { return false }
        i += Int(n)
        return true
    }
}

/// Builds uncompressed RecordBatch v2 bytes (for tests, tools and fuzz seeds).
public enum RecordBatchBuilder {
    public static func build(
        records: [Record], baseOffset: Int64 = 0, baseTimestamp: Int64, producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1
    ) -> ByteBuffer {
        var b = ByteBuffer()
        b.encodeInt64(baseOffset)
        b.encodeInt32(0)  // batchLength, patched
        b.encodeInt32(0)  // partitionLeaderEpoch
        b.encodeInt8(2)
        b.encodeUInt32(0)  // crc, patched
        b.encodeInt16(0)  // attributes: no compression, create time
        b.encodeInt32(Int32(max(records.count - 1, 0)))
        b.encodeInt64(baseTimestamp)
        b.encodeInt64(baseTimestamp &+ (records.map(\.timestampDelta).max() ?? 0))  // wraps for tests that build overflowing batches
        b.encodeInt64(producerId)
        b.encodeInt16(producerEpoch)
        b.encodeInt32(baseSequence)
        b.encodeInt32(Int32(records.count))
        for r in records { r.encode(into: &b) }
        b.setInteger(Int32(b.readableBytes - RecordBatchHeader.logOverhead), at: 8, endianness: .big)
        let crc = b.withUnsafeReadableBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[RecordBatchHeader.crcCoveredStart...]))
        }
        b.setInteger(crc, at: 17, endianness: .big)
        return b
    }
}
