import Foundation
import KafkaProtocol
import Logging
import NIOConcurrencyHelpers

/// The transaction coordinator's state (transactional id → producer id, epoch, timeout, state,
/// partitions, groups, pending offsets) and the partitions that ever took part in a transaction,
/// as durable as the data: `transactions.log` in the data directory.
///
/// File: an append-only sequence of frames `[length u32][crc32c u32 of payload][payload]` (as
/// `OffsetStore`), payload `kind u8`: 1 = a transaction's whole state: `transactionalId` (u16
/// length + UTF-8), `producerId i64`, `epoch i16`, `timeoutMs i32`, `state u8`, `startMs i64`,
/// `partitions` (u32 count, each topic u16+UTF-8 and partition i32), `groups` (u32 count, each
/// u16+UTF-8), `pending offsets` (u32 group count, each group u16+UTF-8 then u32 count of topic,
/// partition i32, offset i64, leaderEpoch i32, metadata present u8 + u32+UTF-8); 2 = a partition
/// took part in a transaction (topic, partition); 3 = a topic was deleted (topic); 4 = an expired
/// transactional id was forgotten (transactionalId). All big-endian.
/// On open the frames are replayed (the last state of each id wins); a torn or corrupt tail is
/// cut off. When the file grows past `max(compactionBytes, 2 × last snapshot)` it is rewritten as
/// one frame per transaction and partition (temp file, fsync, rename, fsync directory).
/// With fsync policy `always` each save is fsynced before it returns (inline: transaction
/// control requests are rare next to produces); `interval` leaves it to the flusher.
public final class TransactionLogStore: TransactionStateStore, @unchecked Sendable {
    public let path: String
    private let lock = NIOLock()
    private var file: DataFile
    private var transactions: [String: TransactionCoordinator.Transaction] = [:]
    private var partitions: Set<TopicPartition> = []
    private var dirty = false
    private var isClosed = false
    private var lastSnapshotSize: Int64 = 0
    private let flusher: Flusher
    private let policy: FsyncPolicy
    private let logger: Logger
    let compactionBytes: Int64
    let faults = StorageFaults()

    public init(path: String, fsyncPolicy: FsyncPolicy, logger: Logger = Logger(label: "tape.storage"), compactionBytes: Int64 = 4 << 20) throws {
        self.path = path
        self.policy = fsyncPolicy
        self.logger = logger
        self.compactionBytes = compactionBytes
        unlink(path + ".tmp")
        file = try DataFile(path: path, faults: faults)
        flusher = Flusher(policy: fsyncPolicy, name: "tape-transactions-flusher", logger: logger)
        try replay()
    }

    // MARK: TransactionStateStore

    public func load() -> (transactions: [TransactionCoordinator.Transaction], partitions: Set<TopicPartition>) {
        lock.withLock { (transactions.values.sorted { $0.transactionalId < $1.transactionalId }, partitions) }
    }

    public func save(_ transaction: TransactionCoordinator.Transaction) throws {
        try write(Self.transactionPayload(transaction)) { transactions[transaction.transactionalId] = transaction }
    }

    public func markTransactional(_ partition: TopicPartition) throws {
        var payload: [UInt8] = [2]
        Self.appendString16(partition.topic, to: &payload)
        BigEndian.append(UInt32(bitPattern: partition.partition), to: &payload)
        try write(payload) { partitions.insert(partition) }
    }

    public func removeTopic(_ topic: String) {
        var payload: [UInt8] = [3]
        Self.appendString16(topic, to: &payload)
        do { try write(payload) { removeTopicFromState(topic) } } catch {
            logger.error("could not record the deletion of topic \(topic) in the transaction log: \(error)")
        }
    }

    public func remove(transactionalId: String) {
        var payload: [UInt8] = [4]
        Self.appendString16(transactionalId, to: &payload)
        do { try write(payload) { transactions[transactionalId] = nil } } catch {
            logger.error("could not record the expiry of transactional id \(transactionalId) in the transaction log: \(error)")
        }
    }

    /// Flushes and closes.
    public func shutdown() async {
        await flusher.shutdown()
        do { try sync() } catch { logger.error("syncing the transaction log failed", metadata: ["error": "\(error)"]) }
        lock.withLock {
            isClosed = true
            file.close()
        }
    }

    // MARK: Writing

    private func write(_ payload: [UInt8], apply: () -> Void) throws {
        try lock.withLock {
            if isClosed { throw StorageError(.closed, "the transaction log \(path) is shut down") }
            try file.append(Self.frame(payload))
            apply()
            dirty = true
            try maybeRewrite()
        }
        switch policy {
        case .always: try sync()
        case .interval: flusher.markDirty(self)
        case .never: break
        }
    }

    private func removeTopicFromState(_ topic: String) {
        partitions = partitions.filter { $0.topic != topic }
        for (id, var t) in transactions {
            t.partitions = t.partitions.filter { $0.topic != topic }
            for g in t.pendingOffsets.keys { t.pendingOffsets[g] = t.pendingOffsets[g]!.filter { $0.key.topic != topic } }
            transactions[id] = t
        }
    }

    // MARK: Encoding

    private static func appendString16(_ s: String, to out: inout [UInt8]) {
        let bytes = Array(s.utf8.prefix(Int(UInt16.max)))
        BigEndian.append(UInt16(bytes.count), to: &out)
        out += bytes
    }

    private static func appendString32(_ s: String, to out: inout [UInt8]) {
        let bytes = Array(s.utf8)
        BigEndian.append(UInt32(clamping: bytes.count), to: &out)
        out += bytes
    }

    static func transactionPayload(_ t: TransactionCoordinator.Transaction) -> [UInt8] {
        var out: [UInt8] = [1]
        appendString16(t.transactionalId, to: &out)
        BigEndian.append(UInt64(bitPattern: t.producerId), to: &out)
        BigEndian.append(UInt16(bitPattern: t.producerEpoch), to: &out)
        BigEndian.append(UInt32(bitPattern: t.timeoutMs), to: &out)
        out.append(t.state.rawValue)
        BigEndian.append(UInt64(bitPattern: t.startMs), to: &out)
        BigEndian.append(UInt32(t.partitions.count), to: &out)
        for tp in t.partitions.sorted() {
            appendString16(tp.topic, to: &out)
            BigEndian.append(UInt32(bitPattern: tp.partition), to: &out)
        }
        BigEndian.append(UInt32(t.groups.count), to: &out)
        for g in t.groups.sorted() { appendString16(g, to: &out) }
        BigEndian.append(UInt32(t.pendingOffsets.count), to: &out)
        for (group, offsets) in t.pendingOffsets.sorted(by: { $0.key < $1.key }) {
            appendString16(group, to: &out)
            BigEndian.append(UInt32(offsets.count), to: &out)
            for (tp, o) in offsets.sorted(by: { $0.key < $1.key }) {
                appendString16(tp.topic, to: &out)
                BigEndian.append(UInt32(bitPattern: tp.partition), to: &out)
                BigEndian.append(UInt64(bitPattern: o.offset), to: &out)
                BigEndian.append(UInt32(bitPattern: o.leaderEpoch), to: &out)
                out.append(o.metadata == nil ? 0 : 1)
                appendString32(o.metadata ?? "", to: &out)
            }
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
            guard n >= 0, n <= end - at else { throw Short() }
            defer { at += n }
            return bytes[at..<at + n]
        }
        mutating func u8() throws -> UInt8 { try take(1).first! }
        mutating func u16() throws -> UInt16 { try take(2).reduce(0) { $0 << 8 | UInt16($1) } }
        mutating func u32() throws -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
        mutating func u64() throws -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }
        mutating func string16() throws -> String { String(decoding: try take(Int(try u16())), as: UTF8.self) }
        mutating func string32() throws -> String { String(decoding: try take(Int(try u32())), as: UTF8.self) }
        /// A count of entries that each take at least `minBytes`: more than the bytes left is corrupt.
        mutating func count(minBytes: Int) throws -> Int {
            let n = Int(try u32())
            guard n <= (end - at) / max(minBytes, 1) else { throw Short() }
            return n
        }
    }

    struct Malformed: Error {}

    private static func decodeTransaction(_ r: inout Reader) throws -> TransactionCoordinator.Transaction {
        let id = try r.string16()
        let pid = Int64(bitPattern: try r.u64())
        let epoch = Int16(bitPattern: try r.u16())
        let timeout = Int32(bitPattern: try r.u32())
        guard let state = TransactionCoordinator.State(rawValue: try r.u8()) else { throw Malformed() }
        var t = TransactionCoordinator.Transaction(transactionalId: id, producerId: pid, producerEpoch: epoch, timeoutMs: timeout, state: state)
        t.startMs = Int64(bitPattern: try r.u64())
        for _ in 0..<(try r.count(minBytes: 6)) {
            let topic = try r.string16()
            t.partitions.insert(TopicPartition(topic, Int32(bitPattern: try r.u32())))
        }
        for _ in 0..<(try r.count(minBytes: 2)) { t.groups.insert(try r.string16()) }
        for _ in 0..<(try r.count(minBytes: 6)) {
            let group = try r.string16()
            var offsets: [TopicPartition: CommittedOffset] = [:]
            for _ in 0..<(try r.count(minBytes: 23)) {
                let topic = try r.string16()
                let partition = Int32(bitPattern: try r.u32())
                let offset = Int64(bitPattern: try r.u64())
                let leaderEpoch = Int32(bitPattern: try r.u32())
                let present = try r.u8() != 0
                let metadata = try r.string32()
                offsets[TopicPartition(topic, partition)] = CommittedOffset(offset: offset, leaderEpoch: leaderEpoch, metadata: present ? metadata : nil)
            }
            t.pendingOffsets[group] = offsets
        }
        return t
    }

    private func replay() throws {
        let bytes = try file.read(at: 0, count: Int(file.size))
        var position = 0
        var frames = 0
        var reason: String?
        while position < bytes.count {
            guard bytes.count - position >= 8 else {
                reason = "partial frame header"
                break
            }
            let length = Int(BigEndian.u32(bytes, position))
            let crc = BigEndian.u32(bytes, position + 4)
            guard length <= bytes.count - position - 8 else {
                reason = "partial frame (\(bytes.count - position - 8) of \(length) payload bytes)"
                break
            }
            let computed = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(position + 8)..<(position + 8 + length)])) }
            guard computed == crc else {
                reason = "CRC mismatch"
                break
            }
            var r = Reader(bytes: bytes, at: position + 8, end: position + 8 + length)
            do {
                switch try r.u8() {
                case 1:
                    let t = try Self.decodeTransaction(&r)
                    transactions[t.transactionalId] = t
                case 2:
                    let topic = try r.string16()
                    partitions.insert(TopicPartition(topic, Int32(bitPattern: try r.u32())))
                case 3:
                    removeTopicFromState(try r.string16())
                case 4:
                    transactions[try r.string16()] = nil
                case let kind:
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
                "transaction log: cut a torn or corrupt tail",
                metadata: [
                    "file": "\(path)", "validBytes": "\(position)", "truncatedBytes": "\(bytes.count - position)", "frames": "\(frames)",
                    "reason": "\(reason ?? "")",
                ])
            try file.truncate(to: Int64(position))
            try file.sync()
        }
        lastSnapshotSize = Int64(position)
    }

    /// Rewrites the file as one frame per transaction and partition when it has grown enough.
    /// Caller holds the lock.
    private func maybeRewrite() throws {
        guard file.size > max(compactionBytes, 2 * lastSnapshotSize) else { return }
        var snapshot: [UInt8] = []
        for (_, t) in transactions.sorted(by: { $0.key < $1.key }) { snapshot += Self.frame(Self.transactionPayload(t)) }
        for tp in partitions.sorted() {
            var payload: [UInt8] = [2]
            Self.appendString16(tp.topic, to: &payload)
            BigEndian.append(UInt32(bitPattern: tp.partition), to: &payload)
            snapshot += Self.frame(payload)
        }
        try writeFileDurably(snapshot, to: path)
        let reopened = try DataFile(path: path, faults: faults)
        file.close()
        file = reopened
        lastSnapshotSize = reopened.size
        dirty = false
    }

    /// Bytes in the file (tests).
    public var fileSize: Int64 { lock.withLock { file.size } }
}

extension TransactionLogStore: Syncable {
    /// fsyncs the file if anything was written since the last sync.
    public func sync() throws {
        try lock.withLock {
            guard dirty, !isClosed else { return }
            try file.sync()
            dirty = false
        }
    }
}
