import NIOConcurrencyHelpers

/// A `PartitionLog` kept in memory (lost on restart), for unit tests and brokers that need no
/// durability; `tape broker` serves the durable `Log`. Thread-safe.
public final class InMemoryPartitionLog: PartitionLog {
    private struct StoredBatch {
        var baseOffset: Int64
        var lastOffset: Int64
        var maxTimestamp: Int64
        var bytes: [UInt8]
    }
    private struct Contents {
        var batches: [StoredBatch] = []
        var logStartOffset: Int64 = 0
        var logEndOffset: Int64 = 0
    }

    public let topic: String
    public let partition: Int32
    private let contents = NIOLockedValueBox(Contents())

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var logStartOffset: Int64 { contents.withLockedValue { $0.logStartOffset } }
    public var logEndOffset: Int64 { contents.withLockedValue { $0.logEndOffset } }

    public func append(batch: [UInt8]) throws -> LogAppendInfo {
        guard batch.count >= 61 else { throw StorageError(.corruptBatch, "batch of \(batch.count) bytes is shorter than a header") }
        func int32(_ at: Int) -> Int32 { batch[at..<at + 4].reduce(0) { $0 << 8 | Int32($1) } }
        func int64(_ at: Int) -> Int64 { batch[at..<at + 8].reduce(0) { $0 << 8 | Int64($1) } }
        let count = int32(57)
        let lastDelta = int32(23)
        let maxTimestamp = int64(35)
        guard count > 0 else { throw StorageError(.corruptBatch, "batch with no records") }
        return contents.withLockedValue { c in
            let base = c.logEndOffset
            var bytes = batch
            withUnsafeBytes(of: base.bigEndian) { raw in
                for i in 0..<8 { bytes[i] = raw[i] }
            }
            let last = base + Int64(max(lastDelta, count - 1))
            c.batches.append(StoredBatch(baseOffset: base, lastOffset: last, maxTimestamp: maxTimestamp, bytes: bytes))
            c.logEndOffset = last + 1
            return LogAppendInfo(baseOffset: base, lastOffset: last, maxTimestamp: maxTimestamp, logStartOffset: c.logStartOffset)
        }
    }

    public func read(from offset: Int64, maxBytes: Int) throws -> LogReadResult {
        try contents.withLockedValue { c in
            guard offset >= c.logStartOffset && offset <= c.logEndOffset else {
                throw StorageError.offsetOutOfRange("offset \(offset) is outside \(c.logStartOffset)...\(c.logEndOffset) of \(topic)-\(partition)")
            }
            // First batch whose lastOffset >= offset.
            var lo = 0
            var hi = c.batches.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if c.batches[mid].lastOffset < offset { lo = mid + 1 } else { hi = mid }
            }
            var out: [UInt8] = []
            var i = lo
            while i < c.batches.count {
                let b = c.batches[i].bytes
                if !out.isEmpty && out.count + b.count > maxBytes { break }
                out += b
                i += 1
            }
            return LogReadResult(records: out, highWatermark: c.logEndOffset, logStartOffset: c.logStartOffset)
        }
    }

    public func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        contents.withLockedValue { c in
            // Batch granularity: the first batch whose max timestamp reaches the target.
            guard let b = c.batches.first(where: { $0.maxTimestamp >= timestamp }) else { return nil }
            return (max(b.baseOffset, c.logStartOffset), b.maxTimestamp)
        }
    }

    public func sync() throws {}

    public func deleteRecords(before offset: Int64) throws -> Int64 {
        try contents.withLockedValue { c in
            let target = offset == -1 ? c.logEndOffset : offset
            guard target >= 0, target <= c.logEndOffset else {
                throw StorageError.offsetOutOfRange(
                    "cannot delete records before offset \(offset) of \(topic)-\(partition): it is outside \(c.logStartOffset)...\(c.logEndOffset)")
            }
            guard target > c.logStartOffset else { return c.logStartOffset }
            c.logStartOffset = target
            c.batches.removeAll { $0.lastOffset < target }
            return target
        }
    }
}
