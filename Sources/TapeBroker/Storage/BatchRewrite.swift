import KafkaProtocol
import NIOCore

/// Reading the records of compressed batches and rebuilding batches (recompression, LogAppendTime,
/// compaction).
extension StoredBatchHeader {
    /// How far a stored batch's records may inflate when read back: they were bounded when produced
    /// (by max.message.bytes), so this only guards against files damaged since.
    static let readInflateLimit = 64 << 20

    /// The batch's codec, or nil for the three unused codec values.
    var codec: CompressionCodec? { CompressionCodec(rawValue: compression) }

    /// Attributes bit 3: the batch's timestamps are the broker's append time.
    static let logAppendTimeFlag: Int16 = 0x08

    /// The records section of `batch` (everything after the 61-byte header), uncompressed.
    static func recordsSection(of batch: UnsafeRawBufferPointer, header: StoredBatchHeader, limit: Int) throws -> [UInt8] {
        guard header.totalSize <= batch.count, header.totalSize >= RecordBatchLayout.headerSize else {
            throw CompressionError("batch of \(batch.count) bytes is shorter than its batchLength says")
        }
        guard let codec = header.codec else { throw CompressionError("unknown compression codec \(header.compression)") }
        return try codec.decompress(UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.records..<header.totalSize]), limit: limit)
    }

    /// Every record of `batch`, compressed or not.
    static func records(of batch: UnsafeRawBufferPointer, header: StoredBatchHeader, limit: Int = readInflateLimit) throws -> [DecodedRecord] {
        if header.compression == 0 { return try DecodedRecord.decodeAll(batch: batch, count: Int(header.recordCount)) }
        let section = try recordsSection(of: batch, header: header, limit: limit)
        return try section.withUnsafeBytes { try DecodedRecord.decodeAll(batch: $0, count: Int(header.recordCount), start: 0) }
    }

    static func records(of batch: [UInt8], header: StoredBatchHeader, limit: Int = readInflateLimit) throws -> [DecodedRecord] {
        try batch.withUnsafeBytes { try records(of: $0, header: header, limit: limit) }
    }

    /// A batch with the first 61 bytes of `original` (offsets, timestamps, producer fields) and
    /// `section` (uncompressed encoded records) compressed with `codec`; the codec bits,
    /// batchLength, recordCount and CRC are set anew. `logAppendTime` sets the timestamp-type bit
    /// and the max timestamp to it.
    static func build(
        headerOf original: UnsafeRawBufferPointer, recordsSection section: [UInt8], recordCount: Int, codec: CompressionCodec,
        logAppendTime: Int64? = nil
    ) throws -> [UInt8] {
        var out = Array(original[0..<RecordBatchLayout.headerSize])
        out += try codec.compress(section)
        var attributes = BigEndian.u16(out, RecordBatchLayout.attributes) & ~0x07 | UInt16(codec.rawValue)
        if let logAppendTime {
            attributes |= UInt16(logAppendTimeFlag)
            BigEndian.put(UInt64(bitPattern: logAppendTime), into: &out, at: RecordBatchLayout.maxTimestamp)
        }
        BigEndian.put(attributes, into: &out, at: RecordBatchLayout.attributes)
        guard let length = UInt32(exactly: out.count - RecordBatchLayout.logOverhead), length <= UInt32(Int32.max) else {
            throw CompressionError("rebuilt batch of \(out.count) bytes is too large")
        }
        BigEndian.put(length, into: &out, at: RecordBatchLayout.batchLength)
        BigEndian.put(UInt32(truncatingIfNeeded: recordCount), into: &out, at: RecordBatchLayout.recordCount)
        setCRC(&out)
        return out
    }

    /// Recomputes the CRC-32C of a whole batch in place.
    static func setCRC(_ batch: inout [UInt8]) {
        let crc = batch.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchLayout.attributes...])) }
        BigEndian.put(crc, into: &batch, at: RecordBatchLayout.crc)
    }

    /// Rebuilds `original` keeping only `records`, compressed with the original batch's codec.
    static func reencode(original: [UInt8], keeping records: [DecodedRecord], codec: CompressionCodec) throws -> [UInt8] {
        var section: [UInt8] = []
        for r in records { r.encode(into: &section) }
        return try original.withUnsafeBytes { try build(headerOf: $0, recordsSection: section, recordCount: records.count, codec: codec) }
    }
}

/// What the broker does to a produced batch before it is appended.
enum ProducedBatch {
    /// Validates the records inside a compressed batch (bounded by `inflateLimit`) and applies the
    /// topic's `compression.type` (`target`: nil = producer, keep the batch's codec) and
    /// `message.timestamp.type=LogAppendTime` (`logAppendTime`: the append time). Returns the bytes
    /// to append, or nil when the batch is appended as sent.
    /// Throws `RecordBatchError` (CORRUPT_MESSAGE for bad compressed data, INVALID_RECORD for bad
    /// records inside it).
    static func prepare(
        _ batch: UnsafeRawBufferPointer, target: CompressionCodec?, logAppendTime: Int64?, inflateLimit: Int
    ) throws -> [UInt8]? {
        guard let header = StoredBatchHeader(batch), header.totalSize == batch.count else {
            throw RecordBatchError(.corruptMessage, "record batch shorter than its header")
        }
        guard let codec = header.codec else {
            throw RecordBatchError(.unsupportedCompressionType, "unknown compression codec \(header.compression)")
        }
        var section: [UInt8]? = nil
        if codec != .none {
            let inflated: [UInt8]
            do {
                inflated = try StoredBatchHeader.recordsSection(of: batch, header: header, limit: inflateLimit)
            } catch let e as CompressionError {
                throw RecordBatchError(.corruptMessage, "\(codec.name)-compressed record batch is corrupt: \(e.message)")
            }
            guard Int64(header.recordCount) == Int64(header.lastOffsetDelta) + 1 else {
                throw RecordBatchError(.invalidRecord, "recordCount \(header.recordCount) does not match lastOffsetDelta \(header.lastOffsetDelta) + 1")
            }
            var body = ByteBuffer(bytes: inflated)
            do {
                try Record.validateAll(in: &body, count: Int(header.recordCount), baseTimestamp: header.baseTimestamp)
            } catch let e as RecordBatchError {
                throw e
            } catch {
                throw RecordBatchError(.corruptMessage, "malformed record in a \(codec.name)-compressed batch: \(error)")
            }
            if body.readableBytes != 0 {
                throw RecordBatchError(.corruptMessage, "\(body.readableBytes) bytes after the last record of a \(codec.name)-compressed batch")
            }
            section = inflated
        }
        // Control batches (transaction markers) are never compressed, as in Kafka.
        let recompress = target != nil && target != codec && !header.isControl
        if !recompress {
            guard let logAppendTime else { return nil }
            // Only the header changes (as Kafka does): the timestamp-type bit and the max timestamp.
            var out = Array(batch)
            let attributes = BigEndian.u16(out, RecordBatchLayout.attributes) | UInt16(StoredBatchHeader.logAppendTimeFlag)
            BigEndian.put(attributes, into: &out, at: RecordBatchLayout.attributes)
            BigEndian.put(UInt64(bitPattern: logAppendTime), into: &out, at: RecordBatchLayout.maxTimestamp)
            StoredBatchHeader.setCRC(&out)
            return out
        }
        let records = section ?? Array(batch[RecordBatchLayout.records..<header.totalSize])
        do {
            return try StoredBatchHeader.build(
                headerOf: batch, recordsSection: records, recordCount: Int(header.recordCount), codec: target ?? codec, logAppendTime: logAppendTime)
        } catch {
            throw RecordBatchError(.corruptMessage, "could not recompress the batch: \(error)")
        }
    }
}

extension BigEndian {
    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 {
        b.withUnsafeBytes { u16($0, at) }
    }
}
