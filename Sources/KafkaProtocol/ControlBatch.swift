import NIOCore

/// Transaction markers (KIP-98): a control batch (attributes: control 0x20 | transactional 0x10)
/// of one record whose key is `version i16 = 0, type i16` (0 abort, 1 commit) and whose value is
/// `version i16 = 0, coordinator_epoch i32`, written to every partition of a transaction when it ends.
public enum ControlBatch {
    public static let controlAttribute: Int16 = 0x20
    public static let transactionalAttribute: Int16 = 0x10

    /// The whole batch (baseOffset 0; the log assigns the real one).
    public static func marker(producerId: Int64, producerEpoch: Int16, commit: Bool, coordinatorEpoch: Int32 = 0, timestamp: Int64) -> ByteBuffer {
        var key = ByteBuffer()
        key.encodeInt16(0)
        key.encodeInt16(commit ? 1 : 0)
        var value = ByteBuffer()
        value.encodeInt16(0)
        value.encodeInt32(coordinatorEpoch)
        let record = Record(offsetDelta: 0, key: Array(key.readableBytesView), value: Array(value.readableBytesView))
        var b = ByteBuffer()
        b.encodeInt64(0)
        b.encodeInt32(0)  // batchLength, patched
        b.encodeInt32(0)  // partitionLeaderEpoch
        b.encodeInt8(2)
        b.encodeUInt32(0)  // crc, patched
        b.encodeInt16(controlAttribute | transactionalAttribute)
        b.encodeInt32(0)  // lastOffsetDelta
        b.encodeInt64(timestamp)
        b.encodeInt64(timestamp)
        b.encodeInt64(producerId)
        b.encodeInt16(producerEpoch)
        b.encodeInt32(-1)  // baseSequence: markers carry none
        b.encodeInt32(1)
        record.encode(into: &b)
        b.setInteger(Int32(b.readableBytes - RecordBatchHeader.logOverhead), at: 8, endianness: .big)
        let crc = b.withUnsafeReadableBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[RecordBatchHeader.crcCoveredStart...]))
        }
        b.setInteger(crc, at: 17, endianness: .big)
        return b
    }

    /// For a control batch (`batch` starts at its header): true for a commit marker, false for an
    /// abort marker, nil when the batch is not a control batch or its record cannot be read.
    public static func isCommit(_ batch: ByteBuffer) -> Bool? {
        guard let header = try? RecordBatchHeader.peek(batch), header.isControl, header.recordCount >= 1,
            header.totalSize >= RecordBatchHeader.size, header.totalSize <= batch.readableBytes,
            var body = batch.getSlice(at: batch.readerIndex + RecordBatchHeader.size, length: header.totalSize - RecordBatchHeader.size)
        else { return nil }
        guard let records = try? Record.decodeAll(from: &body, count: 1), let key = records.first?.key, key.count >= 4 else { return nil }
        let type = Int16(key[2]) << 8 | Int16(key[3])
        switch type {
        case 0: return false
        case 1: return true
        default: return nil
        }
    }
}
