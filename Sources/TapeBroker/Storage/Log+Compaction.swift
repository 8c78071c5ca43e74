import Foundation
import Logging
import NIOConcurrencyHelpers

/// Compaction of a `Log` whose cleanup policy includes `compact`.
extension Log {
    /// Compacts the closed segments (never the active one), keeping at least the latest record per
    /// key over the whole log; the latest record of a key that is a tombstone (null value) is kept,
    /// older values of that key are dropped. Records keep their offsets: surviving records are
    /// re-encoded into a batch with the same baseOffset, lastOffsetDelta, timestamps and producer
    /// fields, a new recordCount, batchLength and CRC. Batches left with no record are dropped.
    ///
    /// Compressed batches are decompressed, cleaned and recompressed with their own codec.
    /// Limits: control batches and transactional batches are kept whole and their keys do not take
    /// part (so a record of an aborted transaction never replaces a committed value); records
    /// without a key are kept; segments are not merged.
    /// Appends and reads go on while it runs: closed segments are immutable, so they are read and the
    /// cleaned copy written without the log's lock; only the swap of each segment takes the lock.
    /// Retention, compaction and `close()` exclude each other.
    /// Returns the number of records removed.
    ///
    /// Topic configs applied: `min.cleanable.dirty.ratio` when `respectingDirtyRatio` (the
    /// maintenance thread sets it): nothing is rewritten unless at least that share of the keyed
    /// records in closed segments is superseded; `min.compaction.lag.ms`: batches whose max timestamp
    /// is newer than that are kept whole; `delete.retention.ms`: the latest tombstone of a key is
    /// dropped once its segment was last written longer ago than that.
    @discardableResult
    public func compact(respectingDirtyRatio: Bool = false) throws -> Int {
        try maintenanceLock.withLock {
            let snapshot: (closed: [LogSegment], active: LogSegment, activeSize: Int64)? = lock.withLock {
                guard !closed, segments.count > 1 else { return nil }
                let active = segments[segments.count - 1]
                return (Array(segments.dropLast()), active, active.size)
            }
            guard let snapshot else { return 0 }
            // Pass 1: the latest offset of every key, over all segments (the active one included, up to
            // its size at the start, since a newer value there makes older ones removable).
            var latest: [[UInt8]: Int64] = [:]
            func collectKeys(_ segment: LogSegment, limit: Int64) throws {
                try forEachBatch(in: segment, limit: limit) { header, bytes in
                    guard !header.isControl, !header.isTransactional, let records = try? StoredBatchHeader.records(of: bytes, header: header) else { return }
                    for r in records {
                        if let key = r.key, let offset = r.offset(base: header.baseOffset) { latest[key] = offset }
                    }
                }
            }
            for segment in snapshot.closed { try collectKeys(segment, limit: segment.size) }
            try collectKeys(snapshot.active, limit: snapshot.activeSize)
            if respectingDirtyRatio {
                var keyed = 0
                var superseded = 0
                for segment in snapshot.closed {
                    try forEachBatch(in: segment, limit: segment.size) { header, bytes in
                        guard !header.isControl, let records = try? StoredBatchHeader.records(of: bytes, header: header) else { return }
                        for r in records {
                            guard let key = r.key, let offset = r.offset(base: header.baseOffset) else { continue }
                            keyed += 1
                            if latest[key] != offset { superseded += 1 }
                        }
                    }
                }
                let ratio = lock.withLock { _config.minCleanableDirtyRatio }
                if keyed == 0 || Double(superseded) / Double(keyed) < ratio { return 0 }
            }
            // Pass 2: rewrite each closed segment that has something to drop, then swap it in.
            var removed = 0
            for segment in snapshot.closed {
                guard let dropped = try writeCleaned(segment, latest: latest) else { continue }
                try lock.withLock { try swapInCleaned(segment) }
                removed += dropped
            }
            if removed > 0 {
                logger.info("compacted", metadata: ["recordsRemoved": "\(removed)"])
            }
            return removed
        }
    }

    /// Calls `body` for each whole batch in `segment` below byte `limit`. Uses positional reads that
    /// do not look at the file's mutable size, so it may run without the log's lock on closed segments
    /// and on the active segment's already-written prefix.
    func forEachBatch(
        in segment: LogSegment, limit: Int64, _ body: (StoredBatchHeader, [UInt8]) throws -> Void
    ) throws {
        var position: Int64 = 0
        while position + Int64(RecordBatchLayout.headerSize) <= limit {
            let head = try segment.log.readRaw(at: position, count: RecordBatchLayout.headerSize)
            guard let h = StoredBatchHeader(head), h.shapeProblem == nil, position + Int64(h.totalSize) <= limit else { break }
            try body(h, try segment.log.readRaw(at: position, count: h.totalSize))
            position += Int64(h.totalSize)
        }
    }

    /// Streams a cleaned copy of `segment` into `<base>.{log,index,timeindex}.cleaned` (synced).
    /// Returns the number of records dropped, or nil (and no files) if nothing would change.
    func writeCleaned(_ segment: LogSegment, latest: [[UInt8]: Int64]) throws -> Int? {
        let (interval, now, config) = lock.withLock { (_config.indexIntervalBytes, clock(), _config) }
        let lagHorizon = config.minCompactionLagMs > 0 ? saturatingDifference(now, config.minCompactionLagMs) : Int64.max
        let tombstonesExpire = saturatingDifference(now, segment.log.modificationTimeMs) > config.deleteRetentionMs
        let cleaned = try LogSegment(
            directory: directory, baseOffset: segment.baseOffset, indexIntervalBytes: interval,
            faults: nil, nowMs: now, suffix: ".cleaned", cache: fileCache)
        var dropped = 0
        do {
            try cleaned.log.truncate(to: 0)
            try cleaned.offsetIndex.rewrite([])
            try cleaned.timeIndex.rewrite([])
            try forEachBatch(in: segment, limit: segment.size) { header, bytes in
                guard !header.isControl, !header.isTransactional, header.maxTimestamp <= lagHorizon, let codec = header.codec,
                    let records = try? StoredBatchHeader.records(of: bytes, header: header)
                else {
                    try bytes.withUnsafeBytes { try cleaned.append($0, header: header) }
                    return
                }
                let kept = records.filter { r in
                    guard let key = r.key, let offset = r.offset(base: header.baseOffset) else { return true }
                    return latest[key] == offset && !(r.value == nil && tombstonesExpire)
                }
                dropped += records.count - kept.count
                if kept.count == records.count {
                    try bytes.withUnsafeBytes { try cleaned.append($0, header: header) }
                } else if !kept.isEmpty {
                    let rebuilt = try StoredBatchHeader.reencode(original: bytes, keeping: kept, codec: codec)
                    try rebuilt.withUnsafeBytes { try cleaned.append($0, header: StoredBatchHeader(rebuilt)!) }
                }
            }
            guard dropped > 0 else {
                cleaned.delete()
                return nil
            }
            try cleaned.seal()
        } catch {
            cleaned.delete()
            throw error
        }
        cleaned.close()
        return dropped
    }

    /// Replaces `segment` by its `.cleaned` files. Caller holds `lock` (and `maintenanceLock`).
    /// Crash-safe order: remove the old indexes, rename the log (atomic), rename the indexes, fsync
    /// the directory. A crash before the log rename leaves the old segment (`.cleaned` files are
    /// removed on open); after it, missing indexes are rebuilt.
    func swapInCleaned(_ segment: LogSegment) throws {
        guard let index = segments.firstIndex(where: { $0 === segment }) else {
            for suffix in [".log", ".index", ".timeindex"] {
                unlink((directory as NSString).appendingPathComponent(LogSegment.fileName(segment.baseOffset, suffix)) + ".cleaned")
            }
            return
        }
        let finalPaths = [segment.log.path, segment.offsetIndex.file.path, segment.timeIndex.file.path]
        let cleanedSize = fileSizeOf(finalPaths[0] + ".cleaned")
        if cleanedSize == 0 && index > 0 {
            // Nothing survived: drop the segment (not the first one, which fixes logStartOffset).
            // Reads of offsets in its range move on to the next segment.
            for path in finalPaths { unlink(path + ".cleaned") }
            segments.remove(at: index)
            segment.delete()
            try syncDirectory(directory)
            return
        }
        segment.close()
        unlink(finalPaths[1])
        unlink(finalPaths[2])
        for path in finalPaths {
            guard rename(path + ".cleaned", path) == 0 else {
                throw storageError(errno: errno, operation: "renaming cleaned segment to", path: path)
            }
        }
        try syncDirectory(directory)
        let reopened = try LogSegment(
            directory: directory, baseOffset: segment.baseOffset, indexIntervalBytes: _config.indexIntervalBytes,
            faults: faults, nowMs: clock(), cache: fileCache)
        if !reopened.indexesLookConsistent() || reopened.isEmpty {
            _ = try reopened.recover(sealed: true)
        } else {
            try reopened.loadFromIndexes()
        }
        segments[index] = reopened
    }

    func fileSizeOf(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : -1
    }
}
