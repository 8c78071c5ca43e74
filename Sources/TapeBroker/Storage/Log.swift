import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One topic-partition's durable log: a directory of `LogSegment`s (`<topic>-<partition>/`).
///
/// Thread-safe (one lock around all state). Appends go to the last ("active") segment, which rolls
/// by size and age; retention deletes whole old segments; `compact()` cleans closed segments of
/// compacted topics. Opening the directory recovers it (see `init`).
public final class Log: PartitionLog, @unchecked Sendable {
    public let topic: String
    public let partition: Int32
    /// The partition directory.
    public let directory: String

    let lock = NIOLock()
    /// Serializes `sync()` calls; never held together with `lock` except briefly inside.
    private let syncLock = NIOLock()
    /// Excludes retention, compaction and close from each other (they delete or replace closed
    /// segments). Lock order: maintenanceLock → syncLock → lock.
    let maintenanceLock = NIOLock()
    var _durableEndOffset: Int64 = 0
    var _config: LogConfig
    var segments: [LogSegment] = []
    var _logStartOffset: Int64 = 0
    var _logEndOffset: Int64 = 0
    /// Appended (or rolled) since the last `sync()`.
    private var dirty = false
    /// Segments rolled since the last sync (they were sealed = synced at roll; kept for the directory).
    var directoryDirty = false
    private var _syncCount = 0
    /// Messages appended since the last fsync claimed them, and when the oldest of those appends was
    /// (ms, `clock`); for the topic's `flush.messages` / `flush.ms`.
    private var unflushedMessages: Int64 = 0
    private var oldestUnflushedAt: Int64? = nil
    /// A `flush.ms` timer is waiting to fsync this log.
    private var flushTimerPending = false
    /// The log end when `flushDue` last answered `.now`: until the durable end reaches it, every
    /// caller waits too (its append may be in the fsync another caller started, not yet finished).
    private var flushRequiredUpTo: Int64 = 0
    var closed = false
    /// Page-cache release after fsync (guarded by `syncLock`): the active segment it refers to and
    /// the byte position below which its clean pages were already released.
    /// (Between fsyncs, `writeBehind` releases old pages as appends go; guarded by `lock`.)
    private var releasedSegmentBase: Int64 = -1
    private var releasedUpTo: Int64 = 0
    private var writeBehind = WriteBehind()
    let logger: Logger
    let clock: @Sendable () -> Int64
    /// Test hook: injected write failures.
    let faults = StorageFaults()
    /// Where the segment files' descriptors are kept (nil: each file keeps its own open).
    let fileCache: OpenFileCache?

    /// Opens (creating if needed) the log in `directory` and recovers it:
    /// - the active (last) segment is always scanned batch by batch (length, magic, offset order,
    ///   CRC-32C); the file is cut at the first partial or corrupt batch; indexes are rewritten if
    ///   they differ from what the scan derives;
    /// - closed segments are scanned the same way only when an index is missing or inconsistent;
    /// - leftover files of an interrupted compaction (`*.cleaned`) and orphan indexes are removed.
    public init(
        directory: String, topic: String, partition: Int32, config: LogConfig = LogConfig(),
        logger: Logger = Logger(label: "tape.storage"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        fileCache: OpenFileCache? = nil
    ) throws {
        self.fileCache = fileCache
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self._config = config
        var logger = logger
        logger[metadataKey: "partition"] = "\(topic)-\(partition)"
        self.logger = logger
        self.clock = clock
        try load()
    }

    // MARK: PartitionLog

    public var logStartOffset: Int64 { lock.withLock { _logStartOffset } }
    public var logEndOffset: Int64 { lock.withLock { _logEndOffset } }
    public var config: LogConfig {
        get { lock.withLock { _config } }
        set { lock.withLock { _config = newValue } }
    }
    /// How many times `sync()` really flushed (tests and metrics).
    public var syncCount: Int { lock.withLock { _syncCount } }
    /// Number of segments (tests and metrics).
    public var segmentCount: Int { lock.withLock { segments.count } }
    /// Base offsets of the segments, oldest first.
    public var segmentBaseOffsets: [Int64] { lock.withLock { segments.map(\.baseOffset) } }
    /// Total bytes of all segment `.log` files.
    public var sizeInBytes: Int64 { lock.withLock { segments.reduce(0) { $0 + $1.size } } }

    public func append(batch: [UInt8]) throws -> LogAppendInfo {
        try batch.withUnsafeBytes { try append(batchBytes: $0) }
    }

    /// Appends one RecordBatch v2 given as raw bytes (e.g. a slice of the produce request). The
    /// bytes are not modified or copied: the assigned baseOffset is written in their place.
    public func append(batchBytes batch: UnsafeRawBufferPointer) throws -> LogAppendInfo {
        guard var header = StoredBatchHeader(batch) else {
            throw StorageError(.corruptBatch, "batch of \(batch.count) bytes is shorter than a RecordBatch v2 header (61)")
        }
        guard header.magic == 2 else {
            throw StorageError(.corruptBatch, "record batch magic \(header.magic) is not supported; only v2 (magic 2)")
        }
        guard header.totalSize == batch.count else {
            throw StorageError(
                .corruptBatch, "batchLength \(header.batchLength) does not match the \(batch.count) bytes received")
        }
        guard header.lastOffsetDelta >= 0 else {
            throw StorageError(.corruptBatch, "negative lastOffsetDelta \(header.lastOffsetDelta)")
        }
        return try lock.withLock {
            guard !closed else { throw StorageError(.closed, "log \(topic)-\(partition) is closed") }
            guard batch.count <= _config.maxMessageBytes else {
                throw StorageError(
                    .messageTooLarge,
                    "batch of \(batch.count) bytes exceeds max.message.bytes=\(_config.maxMessageBytes) of \(topic)")
            }
            let base = _logEndOffset
            // The last offset + 1 (the next log end) must still be an Int64.
            guard base <= Int64.max - 1 - Int64(header.lastOffsetDelta) else {
                throw StorageError(
                    .offsetOverflow,
                    "log \(topic)-\(partition) is at offset \(base); \(Int64(header.lastOffsetDelta) + 1) more records would pass the largest offset")
            }
            header.baseOffset = base
            try maybeRoll(incoming: header, size: batch.count)
            let active = segments[segments.count - 1]
            var offsetField = UInt64(bitPattern: base).bigEndian
            try withUnsafeBytes(of: &offsetField) { offsetBytes in
                let rest = UnsafeRawBufferPointer(start: batch.baseAddress! + 8, count: batch.count - 8)
                try active.append(head: offsetBytes, rest, header: header)
            }
            _logEndOffset = header.lastOffset + 1
            dirty = true
            if _config.overridesFlush {
                // lastOffsetDelta >= 0 was checked above; saturate rather than trap.
                let (sum, overflow) = unflushedMessages.addingReportingOverflow(Int64(header.lastOffsetDelta) + 1)
                unflushedMessages = overflow ? Int64.max : sum
                if oldestUnflushedAt == nil { oldestUnflushedAt = clock() }
            }
            writeBehind.appended(file: active.log, segmentBase: active.baseOffset, size: active.log.size)
            return LogAppendInfo(
                baseOffset: base, lastOffset: header.lastOffset, maxTimestamp: header.maxTimestamp,
                logStartOffset: _logStartOffset)
        }
    }

    /// What the topic's `flush.messages` / `flush.ms` ask of the caller after an append.
    public enum FlushDue: Sendable, Equatable {
        /// The topic sets neither: the broker's `--fsync` policy applies.
        case brokerPolicy
        /// Fsync now, and acknowledge after it.
        case now
        /// Fsync in this many ms (the caller starts the one timer; `flushTimerFired()` when it runs).
        case after(milliseconds: Int64)
        /// Nothing to do yet (nothing unsynced, a timer is already waiting, or no limit is reached).
        case notYet
    }

    /// Decides from the topic's `flush.messages` / `flush.ms` (each nil one taken from `defaults`, the
    /// broker policy in those terms) whether the unsynced appends must be fsynced now or later.
    public func flushDue(defaults: (messages: Int64, ms: Int64)) -> FlushDue {
        lock.withLock {
            guard _config.overridesFlush else { return .brokerPolicy }
            if _durableEndOffset < flushRequiredUpTo { return .now }
            guard unflushedMessages > 0, let oldest = oldestUnflushedAt else { return .notYet }
            let messages = _config.flushMessages ?? defaults.messages
            let ms = _config.flushMs ?? defaults.ms
            if unflushedMessages >= messages {
                flushRequiredUpTo = _logEndOffset
                return .now
            }
            guard ms < Int64.max else { return .notYet }
            let (age, overflow) = clock().subtractingReportingOverflow(oldest)
            let elapsed = overflow ? Int64.max : max(age, 0)
            if elapsed >= ms {
                flushRequiredUpTo = _logEndOffset
                return .now
            }
            if flushTimerPending { return .notYet }
            flushTimerPending = true
            return .after(milliseconds: ms - elapsed)
        }
    }

    /// The `flush.ms` timer `flushDue` asked for has run (later appends may start another).
    public func flushTimerFired() {
        lock.withLock { flushTimerPending = false }
    }

    /// Upper bound on the bytes one `read` gathers (64 MiB).
    public static let maxReadBytes = 64 << 20

    public func read(from offset: Int64, maxBytes: Int) throws -> LogReadResult {
        var buffer = ByteBuffer()
        let read = try read(from: offset, maxBytes: maxBytes, appendingTo: &buffer)
        return LogReadResult(records: Array(buffer.readableBytesView), highWatermark: read.highWatermark, logStartOffset: read.logStartOffset)
    }

    public func read(from offset: Int64, maxBytes: Int, appendingTo buffer: inout ByteBuffer) throws -> LogBufferRead {
        try lock.withLock {
            guard !closed else { throw StorageError(.closed, "log \(topic)-\(partition) is closed") }
            guard offset >= _logStartOffset, offset <= _logEndOffset else {
                throw StorageError.offsetOutOfRange(
                    "offset \(offset) is outside \(topic)-\(partition)'s range \(_logStartOffset)...\(_logEndOffset)")
            }
            // One read never buffers more than `maxReadBytes` (a client asking for 2 GiB gets less,
            // as the protocol allows), except that a single larger batch is still returned whole.
            let maxBytes = min(maxBytes, Self.maxReadBytes)
            let start = buffer.writerIndex
            var read = 0
            var target = offset
            var index = segmentIndex(for: offset)
            while index < segments.count, read < maxBytes || read == 0, target < _logEndOffset {
                let segment = segments[index]
                if let (position, _) = try segment.findBatch(containing: target) {
                    let got = try segment.readBatches(from: position, maxBytes: maxBytes - read, mustReturnOne: read == 0, appendingTo: &buffer)
                    if got == 0 { break }
                    read += got
                    // Stop if the segment had more than fit.
                    if position + Int64(got) < segment.size { break }
                }
                index += 1
                if index < segments.count { target = segments[index].baseOffset }
            }
            assert(buffer.writerIndex - start == read)
            return LogBufferRead(bytes: read, highWatermark: _logEndOffset, logStartOffset: _logStartOffset)
        }
    }

    public func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        try lock.withLock {
            guard !closed else { throw StorageError(.closed, "log \(topic)-\(partition) is closed") }
            for segment in segments where segment.maxTimestamp >= timestamp {
                if let found = try segment.offset(forTimestamp: timestamp) {
                    return found.offset < _logStartOffset ? (_logStartOffset, found.timestamp) : found
                }
            }
            return nil
        }
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3,
    /// MAX_TIMESTAMP), or nil if the log has none.
    public func offsetOfMaxTimestamp() throws -> (offset: Int64, timestamp: Int64)? {
        try lock.withLock {
            guard !closed else { throw StorageError(.closed, "log \(topic)-\(partition) is closed") }
            var best: (offset: Int64, timestamp: Int64)? = nil
            for segment in segments where segment.maxTimestamp >= 0 && (best == nil || segment.maxTimestamp > best!.timestamp) {
                if let found = try segment.recordWithMaxTimestamp(), found.offset >= _logStartOffset, best == nil || found.timestamp > best!.timestamp {
                    best = found
                }
            }
            return best
        }
    }

    /// fsyncs the active segment's `.log` (and the directory after a roll). The fsync runs outside
    /// the lock on a duplicate descriptor, so appends continue meanwhile (group commit relies on it).
    /// Index files are not synced here: the active segment's indexes are rebuilt from its `.log` on
    /// recovery, and closed segments were synced whole when they were sealed.
    ///
    /// Concurrent callers are serialized (`syncLock`), so when any call returns, everything appended
    /// before it started is durable — even if another caller's fsync was in flight.
    public func sync() throws {
        try syncLock.withLock { try syncSerialized() }
    }

    private func syncSerialized() throws {
        let claimed: (fd: Int32, path: String, directory: Bool, end: Int64, segmentBase: Int64, bytes: Int64)? = try lock.withLock {
            guard !closed, dirty || directoryDirty else { return nil }
            let active = segments[segments.count - 1]
            let fd = try active.log.duplicateDescriptor()
            let dir = directoryDirty
            dirty = false
            directoryDirty = false
            // Callers whose appends this fsync claims wait for it to finish (`flushDue`), whoever started it.
            if unflushedMessages > 0 { flushRequiredUpTo = max(flushRequiredUpTo, _logEndOffset) }
            unflushedMessages = 0
            oldestUnflushedAt = nil
            return (fd, active.log.path, dir, _logEndOffset, active.baseOffset, active.log.size)
        }
        guard let claimed else { return }
        defer { closeDescriptor(claimed.fd) }
        do {
            if let injected = faults.takeSyncFailure() {
                throw storageError(errno: injected, operation: "fsync of", path: claimed.path)
            }
            #if canImport(Glibc)
                let r = fdatasync(claimed.fd)
            #else
                let r = fsync(claimed.fd)
            #endif
            guard r == 0 else { throw storageError(errno: errno, operation: "fsync of", path: claimed.path) }
            if claimed.directory { try syncDirectory(directory) }
            releaseCleanPages(fd: claimed.fd, segmentBase: claimed.segmentBase, syncedBytes: claimed.bytes)
        } catch {
            lock.withLock {
                dirty = true
                if claimed.directory { directoryDirty = true }
            }
            throw error
        }
        lock.withLock {
            _syncCount += 1
            _durableEndOffset = max(_durableEndOffset, claimed.end)
        }
    }

    /// Bytes at the end of the active segment that stay in the page cache after an fsync: the same
    /// tail `WriteBehind` keeps between fsyncs (see there for why old pages are released at all).
    public static let pageCacheTailBytes: Int64 = WriteBehind.tailBytes

    /// Called with `syncLock` held after a successful fsync of the active segment's first
    /// `syncedBytes` bytes: releases their clean pages except the last `pageCacheTailBytes`.
    private func releaseCleanPages(fd: Int32, segmentBase: Int64, syncedBytes: Int64) {
        if segmentBase != releasedSegmentBase {
            releasedSegmentBase = segmentBase
            releasedUpTo = 0
        }
        // Whole MiB steps, so no call ends inside a page.
        let end = (syncedBytes - Self.pageCacheTailBytes) & ~Int64((1 << 20) - 1)
        guard end > releasedUpTo else { return }
        #if os(Linux)
            _ = posix_fadvise(fd, off_t(releasedUpTo), off_t(end - releasedUpTo), POSIX_FADV_DONTNEED)
        #endif
        releasedUpTo = end
    }

    /// Offsets below this are known to be fsynced (or were found on disk at open).
    public var durableEndOffset: Int64 { lock.withLock { _durableEndOffset } }

    /// Whether anything appended is not yet known to be durable (also true while an fsync runs).
    public var needsSync: Bool { lock.withLock { dirty || directoryDirty || _durableEndOffset < _logEndOffset } }

    /// Syncs and closes the files. Later calls throw `.closed`.
    /// A clean close seals the active segment's time index, syncs everything and leaves a
    /// `.clean-shutdown` marker, so the next open can trust the active segment's indexes (after a
    /// cheap consistency check) instead of scanning it with CRCs.
    public func close() throws {
        try maintenanceLock.withLock {
            try sync()
            try lock.withLock {
                guard !closed else { return }
                closed = true
                defer { for s in segments { s.close() } }
                try segments[segments.count - 1].seal()
                try writeFileDurably([], to: cleanShutdownMarker)
            }
        }
    }

    /// Closes the files without syncing or leaving a clean-shutdown marker (a log being thrown away).
    func closeWithoutSync() {
        maintenanceLock.withLock {
            lock.withLock {
                guard !closed else { return }
                closed = true
                for s in segments { s.close() }
            }
        }
    }

    var cleanShutdownMarker: String { (directory as NSString).appendingPathComponent(".clean-shutdown") }

    /// Whether the last open scanned the active segment (false after a clean shutdown). For tests.
    var scannedActiveSegmentOnOpen = false

    // MARK: Rolling

    private func maybeRoll(incoming header: StoredBatchHeader, size: Int) throws {
        let active = segments[segments.count - 1]
        guard !active.isEmpty else { return }
        var why: String?
        if active.size + Int64(size) > Int64(_config.segmentBytes) {
            why = "size \(active.size) + \(size) > segment.bytes \(_config.segmentBytes)"
        } else if header.lastOffset - active.baseOffset > Int64(UInt32.max) {
            why = "relative offsets would overflow"
        } else {
            let base = active.firstBatchTimestamp >= 0 ? active.firstBatchTimestamp : active.createdAtMs
            let now = header.maxTimestamp >= 0 && active.firstBatchTimestamp >= 0 ? header.maxTimestamp : clock()
            let age = saturatingDifference(now, base)
            if age > _config.segmentMs { why = "age \(age) ms > segment.ms \(_config.segmentMs)" }
        }
        guard let why else { return }
        try roll(at: header.baseOffset, reason: why)
    }

    private func roll(at baseOffset: Int64, reason: String) throws {
        let old = segments[segments.count - 1]
        try old.seal()
        let segment = try LogSegment(
            directory: directory, baseOffset: baseOffset, indexIntervalBytes: _config.indexIntervalBytes,
            faults: faults, nowMs: clock(), cache: fileCache)
        segments.append(segment)
        directoryDirty = true
        logger.debug("rolled segment", metadata: ["baseOffset": "\(baseOffset)", "reason": "\(reason)"])
    }

    /// Index into `segments` of the segment holding `offset` (the last with baseOffset <= offset).
    private func segmentIndex(for offset: Int64) -> Int {
        var lo = 0
        var hi = segments.count - 1
        var best = 0
        while lo <= hi {
            let mid = (lo + hi) / 2
            if segments[mid].baseOffset <= offset {
                best = mid
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        return best
    }

    // MARK: Retention

    /// Deletes whole closed segments older than `retention.ms` (by their newest record timestamp, or
    /// the file's mtime if the records carry none) and, oldest first, while the log is larger than
    /// `retention.bytes`. Never deletes the active segment. Advances `logStartOffset`. Does nothing for
    /// `cleanup.policy=compact`. Returns how many segments were deleted.
    @discardableResult
    public func enforceRetention(now: Int64) throws -> Int {
        try maintenanceLock.withLock {
            try lock.withLock {
                guard !closed, _config.deletesByRetention else { return 0 }
                var deleted = 0
                if _config.retentionMs >= 0 {
                    while segments.count > 1 {
                        let s = segments[0]
                        let newest = s.maxTimestamp >= 0 ? s.maxTimestamp : s.log.modificationTimeMs
                        let age = saturatingDifference(now, newest)
                        guard age > _config.retentionMs else { break }
                        deleteOldestSegment(reason: "retention.ms: newest record \(age) ms old")
                        deleted += 1
                    }
                }
                if _config.retentionBytes >= 0 {
                    var total = segments.reduce(Int64(0)) { $0 + $1.size }
                    while segments.count > 1, total - segments[0].size >= _config.retentionBytes {
                        total -= segments[0].size
                        deleteOldestSegment(reason: "retention.bytes: log is \(total + segments[0].size) bytes")
                        deleted += 1
                    }
                }
                if deleted > 0 { try syncDirectory(directory) }
                return deleted
            }
        }
    }

    private func deleteOldestSegment(reason: String) {
        let s = segments.removeFirst()
        s.delete()
        _logStartOffset = max(_logStartOffset, segments[0].baseOffset)
        logger.info(
            "deleted segment",
            metadata: [
                "file": "\(s.log.path)", "bytes": "\(s.size)", "reason": "\(reason)",
                "logStartOffset": "\(_logStartOffset)",
            ])
    }
}

/// a - b, clamped to Int64's range instead of trapping (timestamps come from clients and files).
@inline(__always)
func saturatingDifference(_ a: Int64, _ b: Int64) -> Int64 {
    let (d, overflow) = a.subtractingReportingOverflow(b)
    if !overflow { return d }
    return b < 0 ? Int64.max : Int64.min
}
