import Foundation
import KafkaProtocol
import Logging
import NIOCore

/// One segment of a partition log: `<baseOffset>.log` holding whole RecordBatch v2 byte sequences
/// back to back, plus its sparse `.index` (offset → position) and `.timeindex` (timestamp → offset).
/// Named by the 20-digit zero-padded base offset, as Kafka names them. Not thread-safe: `Log` locks.
final class LogSegment {
    let directory: String
    let baseOffset: Int64
    let log: DataFile
    let offsetIndex: OffsetIndex
    let timeIndex: TimeIndex
    let indexIntervalBytes: Int

    private var bytesSinceLastIndexEntry = 0
    /// Largest batch max-timestamp in the segment (-1 if none) and the last offset of that batch.
    private(set) var maxTimestamp: Int64 = -1
    private(set) var offsetOfMaxTimestamp: Int64 = -1
    /// Max timestamp of the first batch, the base for time-based rolling (-1 if empty / unknown).
    private(set) var firstBatchTimestamp: Int64 = -1
    /// Last offset of the last batch (baseOffset - 1 if empty). Exact for segments that were scanned
    /// or appended to; for closed segments opened from a consistent index it is not tracked.
    private(set) var lastOffset: Int64
    /// Wall-clock creation time (ms) when known, else the file's mtime.
    let createdAtMs: Int64

    var size: Int64 { log.size }
    var isEmpty: Bool { log.size == 0 }

    static func fileName(_ baseOffset: Int64, _ suffix: String) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// Parses a segment file name `00000000000000000042.log` into its base offset.
    static func baseOffset(fromFileName name: String, suffix: String = ".log") -> Int64? {
        guard name.hasSuffix(suffix) else { return nil }
        let stem = name.dropLast(suffix.count)
        guard stem.count == 20, stem.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int64(stem)
    }

    init(
        directory: String, baseOffset: Int64, indexIntervalBytes: Int, faults: StorageFaults?, nowMs: Int64, suffix: String = "",
        cache: OpenFileCache? = nil
    ) throws {
        self.directory = directory
        self.baseOffset = baseOffset
        self.indexIntervalBytes = indexIntervalBytes
        let base = (directory as NSString).appendingPathComponent(Self.fileName(baseOffset, ""))
        let existed = FileManager.default.fileExists(atPath: base + ".log" + suffix)
        log = try DataFile(path: base + ".log" + suffix, faults: faults, cache: cache)
        offsetIndex = try OffsetIndex(path: base + ".index" + suffix, faults: faults, cache: cache)
        timeIndex = try TimeIndex(path: base + ".timeindex" + suffix, faults: faults, cache: cache)
        lastOffset = baseOffset - 1
        createdAtMs = existed ? log.modificationTimeMs : nowMs
    }

    func close() {
        log.close()
        offsetIndex.file.close()
        timeIndex.file.close()
    }

    /// Deletes the segment's files (the `.log` first, so a crash leaves at worst orphan indexes).
    func delete() {
        close()
        for path in [log.path, offsetIndex.file.path, timeIndex.file.path] {
            unlink(path)
        }
    }

    // MARK: Appending

    /// Appends one batch whose baseOffset is already assigned. On failure nothing is left behind.
    func append(_ batch: UnsafeRawBufferPointer, header: StoredBatchHeader) throws {
        try append(head: UnsafeRawBufferPointer(start: nil, count: 0), batch, header: header)
    }

    /// Appends a batch given as `head` followed by `tail` (e.g. a rewritten baseOffset and the
    /// rest of the batch as received), written without joining them first.
    func append(head: UnsafeRawBufferPointer, _ tail: UnsafeRawBufferPointer, header: StoredBatchHeader) throws {
        let position = log.size
        let indexCount = offsetIndex.entries.count
        let timeCount = timeIndex.entries.count
        let saved = counters
        try log.append(head: head, tail)
        do {
            try noteAppended(header: header, position: position)
        } catch {
            // Undo: indexes back to their previous entries, log back to its previous size.
            offsetIndex.discard(toCount: indexCount)
            timeIndex.discard(toCount: timeCount)
            log.rollBack(to: position)
            restore(saved)
            throw error
        }
    }

    /// Updates indexes and counters for a batch now stored at `position` (append and recovery).
    private func noteAppended(header: StoredBatchHeader, position: Int64) throws {
        if firstBatchTimestamp < 0 && position == 0 { firstBatchTimestamp = header.maxTimestamp }
        if header.maxTimestamp > maxTimestamp {
            maxTimestamp = header.maxTimestamp
            offsetOfMaxTimestamp = header.lastOffset
        }
        // Index positions are UInt32 (Kafka's format); a segment never grows past segment.bytes
        // (<= Int32.max) except by one oversized batch, whose position still fits.
        if bytesSinceLastIndexEntry > indexIntervalBytes, let indexPosition = UInt32(exactly: position) {
            try offsetIndex.append(.init(relativeOffset: relative(header.lastOffset), position: indexPosition))
            if maxTimestamp >= 0 {
                try timeIndex.maybeAppend(.init(timestamp: maxTimestamp, relativeOffset: relative(offsetOfMaxTimestamp)))
            }
            bytesSinceLastIndexEntry = 0
        }
        bytesSinceLastIndexEntry += header.totalSize
        lastOffset = header.lastOffset
    }

    private typealias Counters = (Int, Int64, Int64, Int64, Int64)
    private var counters: Counters {
        (bytesSinceLastIndexEntry, maxTimestamp, offsetOfMaxTimestamp, firstBatchTimestamp, lastOffset)
    }
    private func restore(_ c: Counters) {
        (bytesSinceLastIndexEntry, maxTimestamp, offsetOfMaxTimestamp, firstBatchTimestamp, lastOffset) = c
    }

    func relative(_ offset: Int64) -> UInt32 { UInt32(truncatingIfNeeded: offset - baseOffset) }

    /// Called when the segment stops being the active one: records its max timestamp in the time
    /// index (so it is known after a restart) and flushes everything.
    func seal() throws {
        if maxTimestamp >= 0 {
            try timeIndex.maybeAppend(.init(timestamp: maxTimestamp, relativeOffset: relative(offsetOfMaxTimestamp)))
        }
        try sync()
    }

    func sync() throws {
        try log.sync()
        try offsetIndex.file.sync()
        try timeIndex.file.sync()
    }

    // MARK: Reading

    /// Header of the batch at `position`, or nil past the end / short.
    func header(at position: Int64) throws -> StoredBatchHeader? {
        guard position >= 0, position <= log.size - Int64(RecordBatchLayout.headerSize) else { return nil }
        return StoredBatchHeader(try log.read(at: position, count: RecordBatchLayout.headerSize))
    }

    /// Like `header(at:)`, for walks over batches that recovery did not check in this run (closed
    /// segments trusted by their index): a header that cannot be a stored batch throws instead of
    /// sending the walk backwards, into a loop, or into offsets that overflow.
    func checkedHeader(at position: Int64) throws -> StoredBatchHeader? {
        guard let h = try header(at: position) else { return nil }
        if let problem = h.shapeProblem { throw corrupt(at: position, problem) }
        return h
    }

    func corrupt(at position: Int64, _ problem: String) -> StorageError {
        StorageError(
            .corruptSegment,
            "corrupt segment \(log.path) at byte \(position): \(problem). The broker cuts a corrupt tail of the "
                + "active segment at start; a closed segment this damaged needs the partition restored from a copy")
    }

    /// Position and header of the first batch whose last offset is >= `offset`, or nil if none here.
    func findBatch(containing offset: Int64) throws -> (position: Int64, header: StoredBatchHeader)? {
        var position: Int64 = 0
        if offset > baseOffset, offset - baseOffset <= Int64(UInt32.max),
            let e = offsetIndex.floor(relative(offset))
        {
            position = Int64(e.position)
        }
        while let h = try checkedHeader(at: position) {
            if h.lastOffset >= offset { return (position, h) }
            position += Int64(h.totalSize)
        }
        return nil
    }

    /// Appends the whole batches from `position` to `buffer`, at most `maxBytes` unless the first
    /// batch alone is larger (with `mustReturnOne`); returns the bytes appended.
    func readBatches(from position: Int64, maxBytes: Int, mustReturnOne: Bool, appendingTo buffer: inout ByteBuffer) throws -> Int {
        let available = log.size - position
        guard available > 0 else { return 0 }
        let want = Int(min(Int64(max(maxBytes, RecordBatchLayout.logOverhead)), available))
        let base = buffer.writerIndex
        let got = try log.read(at: position, count: want, appendingTo: &buffer)
        let end = buffer.withUnsafeReadableBytes { raw -> Int in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[(base - buffer.readerIndex)...])
            var end = 0
            while end + RecordBatchLayout.logOverhead <= got {
                let length = Int(Int32(bitPattern: BigEndian.u32(bytes, end + RecordBatchLayout.batchLength)))
                // A length smaller than a header is damage: stop before it (it is reported when it comes first).
                if length < RecordBatchLayout.headerSize - RecordBatchLayout.logOverhead { break }
                let total = length + RecordBatchLayout.logOverhead
                if end + total > got || end + total > maxBytes { break }
                end += total
            }
            return end
        }
        buffer.moveWriterIndex(to: base + end)
        if end == 0 {
            guard mustReturnOne, let h = try checkedHeader(at: position) else { return 0 }
            return try log.read(at: position, count: h.totalSize, appendingTo: &buffer)
        }
        return end
    }

    /// The first offset whose record timestamp is >= `timestamp` in this segment, if any.
    func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        guard maxTimestamp >= timestamp else { return nil }
        var position: Int64 = 0
        if let t = timeIndex.lastBefore(timestamp), let e = offsetIndex.floor(t.relativeOffset) {
            position = Int64(e.position)
        }
        while let h = try checkedHeader(at: position) {
            if h.maxTimestamp >= timestamp {
                let isLogAppendTime = h.attributes & 0x08 != 0
                if !isLogAppendTime {
                    let bytes = try log.read(at: position, count: h.totalSize)
                    if let records = try? StoredBatchHeader.records(of: bytes, header: h) {
                        // Records whose timestamp or offset does not fit (stored by versions that did
                        // not check timestamps at produce) are skipped, not summed into a trap.
                        for r in records {
                            guard let t = r.timestamp(base: h.baseTimestamp), t >= timestamp,
                                let o = r.offset(base: h.baseOffset), o >= h.baseOffset, o <= h.lastOffset
                            else { continue }
                            return (o, t)
                        }
                    }
                }
                // LogAppendTime (every record has the batch's max timestamp) or an undecodable
                // batch: the batch's first offset — at or before the exact answer, never after it.
                return (h.baseOffset, h.maxTimestamp)
            }
            position += Int64(h.totalSize)
        }
        return nil
    }

    /// The record with the largest timestamp in this segment (the first one if several share it),
    /// or nil if the segment has no record with a timestamp.
    func recordWithMaxTimestamp() throws -> (offset: Int64, timestamp: Int64)? {
        var position: Int64 = 0
        var best: (position: Int64, header: StoredBatchHeader)? = nil
        while let h = try checkedHeader(at: position) {
            if h.maxTimestamp >= 0, best == nil || h.maxTimestamp > best!.header.maxTimestamp { best = (position, h) }
            position += Int64(h.totalSize)
        }
        guard let best else { return nil }
        let (at, h) = best
        if h.attributes & StoredBatchHeader.logAppendTimeFlag == 0 {
            let bytes = try log.read(at: at, count: h.totalSize)
            if let records = try? StoredBatchHeader.records(of: bytes, header: h) {
                var found: (offset: Int64, timestamp: Int64)? = nil
                for r in records {
                    guard let t = r.timestamp(base: h.baseTimestamp), let o = r.offset(base: h.baseOffset) else { continue }
                    if found == nil || t > found!.timestamp { found = (o, t) }
                }
                if let found { return found }
            }
        }
        return (h.baseOffset, h.maxTimestamp)
    }

    // MARK: Recovery

    /// What a recovery scan found.
    struct RecoveryResult {
        var validBytes: Int64
        var truncatedBytes: Int64
        var batches: Int
        var reason: String?
        var indexRebuilt: Bool
    }

    /// Scans the whole `.log` batch by batch (lengths, magic, offsets, CRC-32C), cuts it at the first
    /// partial or corrupt batch, and rewrites the indexes if they differ from what the scan derives.
    /// `sealed`: the segment is closed, so its time index should end with its max timestamp.
    func recover(sealed: Bool) throws -> RecoveryResult {
        var position: Int64 = 0
        var batches = 0
        var reason: String?
        var offsetEntries: [OffsetIndex.Entry] = []
        var timeEntries: [TimeIndex.Entry] = []
        var sinceIndex = 0
        var maxTs: Int64 = -1
        var offsetOfMaxTs: Int64 = -1
        var firstTs: Int64 = -1
        var prevLast = baseOffset - 1
        let fileSize = log.size
        while position < fileSize {
            guard position + Int64(RecordBatchLayout.headerSize) <= fileSize else {
                reason = "partial batch header (\(fileSize - position) bytes)"
                break
            }
            let head = try log.read(at: position, count: RecordBatchLayout.headerSize)
            guard let h = StoredBatchHeader(head) else {
                reason = "unreadable header"
                break
            }
            if let problem = h.shapeProblem {
                reason = problem
                break
            }
            guard position + Int64(h.totalSize) <= fileSize else {
                reason = "partial batch (\(fileSize - position) of \(h.totalSize) bytes present)"
                break
            }
            guard h.magic == 2 else {
                reason = "magic \(h.magic) (expected 2)"
                break
            }
            guard h.baseOffset > prevLast, h.lastOffsetDelta >= 0, h.lastOffset - baseOffset <= Int64(UInt32.max)
            else {
                reason = "offset \(h.baseOffset) out of sequence (previous last offset \(prevLast))"
                break
            }
            let batch = try log.read(at: position, count: h.totalSize)
            let crc = batch.withUnsafeBytes {
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchLayout.attributes...]))
            }
            guard crc == h.crc else {
                reason = "CRC mismatch at offset \(h.baseOffset) (stored \(h.crc), computed \(crc))"
                break
            }
            if position == 0 { firstTs = h.maxTimestamp }
            if h.maxTimestamp > maxTs {
                maxTs = h.maxTimestamp
                offsetOfMaxTs = h.lastOffset
            }
            if sinceIndex > indexIntervalBytes, let indexPosition = UInt32(exactly: position) {
                offsetEntries.append(.init(relativeOffset: relative(h.lastOffset), position: indexPosition))
                if maxTs >= 0, maxTs > (timeEntries.last?.timestamp ?? Int64.min) {
                    timeEntries.append(.init(timestamp: maxTs, relativeOffset: relative(offsetOfMaxTs)))
                }
                sinceIndex = 0
            }
            sinceIndex += h.totalSize
            prevLast = h.lastOffset
            batches += 1
            position += Int64(h.totalSize)
        }
        let truncated = fileSize - position
        if truncated > 0 { try log.truncate(to: position) }
        // A sealed segment also carries a final time-index entry with its max timestamp; accept
        // the existing file if it equals the derived entries, optionally plus that final entry.
        var rebuilt = false
        if offsetIndex.entries != offsetEntries || !offsetIndex.wellFormed {
            try offsetIndex.rewrite(offsetEntries)
            rebuilt = true
        }
        var sealedTime = timeEntries
        if maxTs >= 0, maxTs > (sealedTime.last?.timestamp ?? Int64.min) {
            sealedTime.append(.init(timestamp: maxTs, relativeOffset: relative(offsetOfMaxTs)))
        }
        let timeMatches =
            sealed
            ? timeIndex.entries == sealedTime
            : (timeIndex.entries == timeEntries || timeIndex.entries == sealedTime)
        if !timeIndex.wellFormed || !timeMatches {
            try timeIndex.rewrite(sealed ? sealedTime : timeEntries)
            rebuilt = true
        }
        bytesSinceLastIndexEntry = sinceIndex
        maxTimestamp = maxTs
        offsetOfMaxTimestamp = offsetOfMaxTs
        firstBatchTimestamp = firstTs
        lastOffset = prevLast
        return RecoveryResult(
            validBytes: position, truncatedBytes: truncated, batches: batches, reason: reason, indexRebuilt: rebuilt)
    }

    /// Consistency check of a closed segment's indexes against its `.log` without a full scan:
    /// both files existed and are well-formed; the last offset-index entry points at a batch whose last
    /// offset matches; walking the batch headers after it reaches exactly the end of the file with no
    /// place where the append rule would have added another entry; the last time-index entry names a
    /// batch whose max timestamp and last offset match it.
    func indexesLookConsistent() -> Bool {
        guard offsetIndex.wellFormed, timeIndex.wellFormed,
            offsetIndex.file.existedBeforeOpen, timeIndex.file.existedBeforeOpen
        else { return false }
        if log.size == 0 { return offsetIndex.entries.isEmpty && timeIndex.entries.isEmpty }
        var entryPosition: Int64 = 0
        if let last = offsetIndex.entries.last {
            entryPosition = Int64(last.position)
            guard let h = try? header(at: entryPosition), h.magic == 2, h.shapeProblem == nil,
                relative(h.lastOffset) == last.relativeOffset
            else { return false }
        }
        var position = entryPosition
        var lastStart = entryPosition
        var previousLast = baseOffset - 1
        while position < log.size {
            guard let h = try? header(at: position), h.magic == 2, h.shapeProblem == nil,
                h.baseOffset > previousLast || position == entryPosition
            else { return false }
            lastStart = position
            previousLast = h.lastOffset
            position += Int64(h.totalSize)
        }
        guard position == log.size, lastStart - entryPosition <= Int64(indexIntervalBytes) else { return false }
        guard let t = timeIndex.entries.last else { return false }
        let (offset, overflow) = baseOffset.addingReportingOverflow(Int64(t.relativeOffset))
        guard !overflow, let found = try? findBatch(containing: offset), found.header.lastOffset == offset,
            found.header.maxTimestamp == t.timestamp
        else { return false }
        walkResult = (previousLast, log.size - entryPosition)
        return true
    }

    /// What the last successful `indexesLookConsistent()` walk found: last offset, bytes since the
    /// last index entry.
    private var walkResult: (lastOffset: Int64, bytesSinceEntry: Int64)?

    /// Loads counters of a segment whose indexes were just found consistent (closed segments, and
    /// the active segment after a clean shutdown).
    func loadFromIndexes() throws {
        if let t = timeIndex.entries.last {
            maxTimestamp = t.timestamp
            offsetOfMaxTimestamp = baseOffset &+ Int64(t.relativeOffset)  // checked by indexesLookConsistent
        }
        if let h = try header(at: 0) { firstBatchTimestamp = h.maxTimestamp }
        if let walk = walkResult {
            lastOffset = walk.lastOffset
            bytesSinceLastIndexEntry = Int(walk.bytesSinceEntry)
        }
    }
}
