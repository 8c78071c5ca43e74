import Foundation
import KafkaProtocol
import Logging
import NIOConcurrencyHelpers

/// One committed consumer-group offset.
public struct StoredOffset: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// Client metadata ("" when the client sent null, as Kafka stores it).
    public var metadata: String
    /// When it was committed (ms since the epoch).
    public var commitTimestamp: Int64
    /// Leader epoch the client committed with (-1 = unknown).
    public var leaderEpoch: Int32
    public init(
        topic: String, partition: Int32, offset: Int64, metadata: String = "", commitTimestamp: Int64 = -1,
        leaderEpoch: Int32 = -1
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.metadata = metadata
        self.commitTimestamp = commitTimestamp
        self.leaderEpoch = leaderEpoch
    }
}

/// Committed consumer-group offsets (group, topic, partition → offset, metadata, time), as durable
/// as the data.
///
/// File: an append-only sequence of frames `[length u32][crc32c u32 of payload][payload]`, payload
/// `kind u8` (1 = commit, 2 = delete group, 3 = remove a topic from every group, 4 = delete some
/// partitions' offsets of a group), then for 1, 2 and 4 `group` (u16 length + UTF-8), for 3 `topic`
/// (u16 + UTF-8); a commit continues with `count u32` and per entry `topic` (u16 + UTF-8),
/// `partition i32`, `offset i64`, `metadata` (u32 + UTF-8), `commitTimestamp i64`, `leaderEpoch i32`;
/// kind 4 with `count u32` and per entry `topic` (u16 + UTF-8), `partition i32`; all big-endian. One `commit` call is one frame, so it is
/// all-or-nothing. On open the frames are replayed; a torn or corrupt tail is cut off. When the file
/// grows past `max(compactionBytes, 2 × last snapshot)` it is rewritten as one frame per group
/// (temp file, fsync, rename, fsync directory).
public final class OffsetStore: @unchecked Sendable {
    private struct Key: Hashable {
        var topic: String
        var partition: Int32
    }

    public let path: String
    private let lock = NIOLock()
    private var file: DataFile
    private var state: [String: [Key: StoredOffset]] = [:]
    private var dirty = false
    private var isClosed = false
    private var lastSnapshotSize: Int64 = 0
    private var _rewrites = 0
    private let flusher: Flusher
    private let policy: FsyncPolicy
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    /// Rewrite threshold in bytes. Default 4 MiB.
    let compactionBytes: Int64
    /// Test hook: injected write failures.
    let faults = StorageFaults()

    public init(
        path: String, fsyncPolicy: FsyncPolicy, logger: Logger = Logger(label: "tape.storage"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        compactionBytes: Int64 = 4 << 20
    ) throws {
        self.path = path
        self.policy = fsyncPolicy
        self.logger = logger
        self.clock = clock
        self.compactionBytes = compactionBytes
        unlink(path + ".tmp")
        file = try DataFile(path: path, faults: faults)
        flusher = Flusher(policy: fsyncPolicy, name: "tape-offsets-flusher", logger: logger)
        try replay()
    }

    // MARK: API

    /// Records offsets for `group` (one atomic frame). With `.always` returns after the fsync.
    public func commit(
        group: String, offsets: [(topic: String, partition: Int32, offset: Int64, metadata: String)]
    ) async throws {
        try await commit(
            group: group,
            offsets: offsets.map { StoredOffset(topic: $0.topic, partition: $0.partition, offset: $0.offset, metadata: $0.metadata) })
    }

    /// Records offsets for `group` (one atomic frame); a negative `commitTimestamp` becomes now.
    /// With `.always` returns after the fsync (group commit with concurrent callers).
    public func commit(group: String, offsets: [StoredOffset]) async throws {
        try write(group: group, offsets: offsets)
        try await afterWrite()
    }

    /// Synchronous `commit` for callers that cannot await: with `.always` it fsyncs inline (no group
    /// commit), so it blocks the calling thread for one fsync.
    public func commitNow(group: String, offsets: [StoredOffset]) throws {
        try write(group: group, offsets: offsets)
        if case .always = policy { try sync() } else if case .interval = policy { flusher.markDirty(self) }
    }

    /// Forgets a deleted topic's offsets in every group (durably, synchronously like `commitNow`).
    public func removeTopic(_ topic: String) throws {
        try lock.withLock {
            try checkOpen()
            guard state.values.contains(where: { $0.keys.contains { $0.topic == topic } }) else { return }
            var payload: [UInt8] = [3]
            Self.appendString16(topic, to: &payload)
            try file.append(Self.frame(payload))
            removeTopicFromState(topic)
            dirty = true
        }
        if case .always = policy { try sync() } else if case .interval = policy { flusher.markDirty(self) }
    }

    private func removeTopicFromState(_ topic: String) {
        for (group, offsets) in state {
            let kept = offsets.filter { $0.key.topic != topic }
            state[group] = kept.isEmpty ? nil : kept
        }
    }

    private func write(group: String, offsets: [StoredOffset]) throws {
        let now = clock()
        let entries = offsets.map { o -> StoredOffset in
            var o = o
            if o.commitTimestamp < 0 { o.commitTimestamp = now }
            return o
        }
        try lock.withLock {
            try checkOpen()
            try file.append(Self.frame(Self.commitPayload(group: group, entries: entries)))
            apply(group: group, entries: entries)
            dirty = true
            do {
                try maybeRewrite()
            } catch {
                // The commit itself is in the file; the rewrite is retried after the next commit.
                logger.error("offset store rewrite failed", metadata: ["file": "\(path)", "error": "\(error)"])
            }
        }
    }

    /// All committed offsets of `group`, sorted by topic and partition.
    public func fetch(group: String) -> [StoredOffset] {
        lock.withLock {
            (state[group].map { Array($0.values) } ?? []).sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        }
    }

    public func fetch(group: String, topic: String, partition: Int32) -> StoredOffset? {
        lock.withLock { state[group]?[Key(topic: topic, partition: partition)] }
    }

    /// Groups with committed offsets, sorted.
    public func groups() -> [String] {
        lock.withLock { state.keys.sorted() }
    }

    /// Forgets all offsets of `group` (durably, like `commit`).
    public func deleteGroup(_ group: String) async throws {
        try lock.withLock {
            try checkOpen()
            var payload: [UInt8] = [2]
            Self.appendString16(group, to: &payload)
            try file.append(Self.frame(payload))
            state[group] = nil
            dirty = true
        }
        try await afterWrite()
    }

    /// Forgets the committed offsets of these partitions of `group` (one atomic frame, durably like
    /// `commit`). Partitions without an offset are skipped; nothing is written if none has one.
    public func deleteOffsets(group: String, partitions: [(topic: String, partition: Int32)]) async throws {
        let wrote: Bool = try lock.withLock {
            try checkOpen()
            let present = partitions.filter { state[group]?[Key(topic: $0.topic, partition: $0.partition)] != nil }
            guard !present.isEmpty else { return false }
            var payload: [UInt8] = [4]
            Self.appendString16(group, to: &payload)
            BigEndian.append(UInt32(present.count), to: &payload)
            for p in present {
                Self.appendString16(p.topic, to: &payload)
                BigEndian.append(UInt32(bitPattern: p.partition), to: &payload)
            }
            try file.append(Self.frame(payload))
            removeOffsetsFromState(group: group, present.map { Key(topic: $0.topic, partition: $0.partition) })
            dirty = true
            return true
        }
        if wrote { try await afterWrite() }
    }

    private func removeOffsetsFromState(group: String, _ keys: [Key]) {
        guard var offsets = state[group] else { return }
        for k in keys { offsets[k] = nil }
        state[group] = offsets.isEmpty ? nil : offsets
    }

    /// Number of times the file was rewritten (tests).
    public var rewriteCount: Int { lock.withLock { _rewrites } }
    /// Current file size.
    public var fileSize: Int64 { lock.withLock { file.size } }

    /// Flushes and closes.
    public func shutdown() async {
        await flusher.shutdown()
        do { try sync() } catch { logger.error("syncing offsets failed", metadata: ["error": "\(error)"]) }
        lock.withLock {
            isClosed = true
            file.close()
        }
    }

    /// Caller holds the lock.
    private func checkOpen() throws {
        if isClosed { throw StorageError(.closed, "the offset store \(path) is shut down") }
    }

    private func afterWrite() async throws {
        switch policy {
        case .always: try await flusher.waitUntilDurable(self)
        case .interval: flusher.markDirty(self)
        case .never: break
        }
    }

    // MARK: Encoding

    private static func appendString16(_ s: String, to out: inout [UInt8]) {
        let bytes = Array(s.utf8.prefix(Int(UInt16.max)))
        BigEndian.append(UInt16(bytes.count), to: &out)
        out += bytes
    }

    private static func commitPayload(group: String, entries: [StoredOffset]) -> [UInt8] {
        var out: [UInt8] = [1]
        appendString16(group, to: &out)
        BigEndian.append(UInt32(entries.count), to: &out)
        for e in entries {
            appendString16(e.topic, to: &out)
            BigEndian.append(UInt32(bitPattern: e.partition), to: &out)
            BigEndian.append(UInt64(bitPattern: e.offset), to: &out)
            let meta = Array(e.metadata.utf8)
            BigEndian.append(UInt32(meta.count), to: &out)
            out += meta
            BigEndian.append(UInt64(bitPattern: e.commitTimestamp), to: &out)
            BigEndian.append(UInt32(bitPattern: e.leaderEpoch), to: &out)
        }
        return out
    }

    private static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 8)
        BigEndian.append(UInt32(payload.count), to: &out)
        BigEndian.append(CRC32C.checksum(payload), to: &out)
        return out + payload
    }

    private struct Reader {
        let bytes: [UInt8]
        var at: Int
        let end: Int
        struct Short: Error {}
        mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, at + n <= end else { throw Short() }
            defer { at += n }
            return bytes[at..<at + n]
        }
        mutating func u8() throws -> UInt8 { try take(1).first! }
        mutating func u16() throws -> UInt16 {
            let s = try take(2)
            return UInt16(s[s.startIndex]) << 8 | UInt16(s[s.startIndex + 1])
        }
        mutating func u32() throws -> UInt32 {
            let s = try take(4)
            return s.reduce(0) { $0 << 8 | UInt32($1) }
        }
        mutating func u64() throws -> UInt64 {
            let s = try take(8)
            return s.reduce(0) { $0 << 8 | UInt64($1) }
        }
        mutating func string16() throws -> String { String(decoding: try take(Int(try u16())), as: UTF8.self) }
        mutating func string32() throws -> String { String(decoding: try take(Int(try u32())), as: UTF8.self) }
    }

    private func apply(group: String, entries: [StoredOffset]) {
        var g = state[group] ?? [:]
        for e in entries { g[Key(topic: e.topic, partition: e.partition)] = e }
        state[group] = g
    }

    private func replay() throws {
        let bytes = try file.read(at: 0, count: Int(file.size))
        var position = 0
        var frames = 0
        var reason: String?
        while position < bytes.count {
            guard position + 8 <= bytes.count else {
                reason = "partial frame header"
                break
            }
            let length = Int(BigEndian.u32(bytes, position))
            let crc = BigEndian.u32(bytes, position + 4)
            guard position + 8 + length <= bytes.count else {
                reason = "partial frame (\(bytes.count - position - 8) of \(length) payload bytes)"
                break
            }
            let computed = bytes.withUnsafeBytes {
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(position + 8)..<(position + 8 + length)]))
            }
            guard computed == crc else {
                reason = "CRC mismatch"
                break
            }
            var r = Reader(bytes: bytes, at: position + 8, end: position + 8 + length)
            do {
                let kind = try r.u8()
                let group = try r.string16()  // the topic for kind 3
                switch kind {
                case 1:
                    let count = try r.u32()
                    var entries: [StoredOffset] = []
                    for _ in 0..<count {
                        let topic = try r.string16()
                        let partition = Int32(bitPattern: try r.u32())
                        let offset = Int64(bitPattern: try r.u64())
                        let metadata = try r.string32()
                        let ts = Int64(bitPattern: try r.u64())
                        let epoch = Int32(bitPattern: try r.u32())
                        entries.append(
                            .init(
                                topic: topic, partition: partition, offset: offset, metadata: metadata,
                                commitTimestamp: ts, leaderEpoch: epoch))
                    }
                    apply(group: group, entries: entries)
                case 2:
                    state[group] = nil
                case 3:
                    removeTopicFromState(group)
                case 4:
                    let count = try r.u32()
                    var keys: [Key] = []
                    for _ in 0..<count {
                        let topic = try r.string16()
                        keys.append(Key(topic: topic, partition: Int32(bitPattern: try r.u32())))
                    }
                    removeOffsetsFromState(group: group, keys)
                default:
                    reason = "unknown frame kind \(kind)"
                }
            } catch {
                reason = "malformed frame payload"
            }
            if reason != nil { break }
            frames += 1
            position += 8 + length
        }
        if position < bytes.count {
            logger.warning(
                "offset store: cut a torn or corrupt tail",
                metadata: [
                    "file": "\(path)", "validBytes": "\(position)", "truncatedBytes": "\(bytes.count - position)",
                    "frames": "\(frames)", "reason": "\(reason ?? "")",
                ])
            try file.truncate(to: Int64(position))
            try file.sync()
        }
        lastSnapshotSize = Int64(position)
    }

    /// Rewrites the file as one frame per group when it has grown enough. Caller holds the lock.
    private func maybeRewrite() throws {
        guard file.size > max(compactionBytes, 2 * lastSnapshotSize) else { return }
        var snapshot: [UInt8] = []
        for (group, offsets) in state.sorted(by: { $0.key < $1.key }) {
            snapshot += Self.frame(Self.commitPayload(group: group, entries: Array(offsets.values)))
        }
        try writeFileDurably(snapshot, to: path)
        let reopened = try DataFile(path: path, faults: faults)
        file.close()
        file = reopened
        lastSnapshotSize = reopened.size
        _rewrites += 1
        dirty = false
    }
}

extension OffsetStore: Syncable {
    /// fsyncs the offsets file if anything was written since the last sync.
    public func sync() throws {
        try lock.withLock {
            guard dirty, !isClosed else { return }
            try file.sync()
            dirty = false
        }
    }
}
