import Foundation
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension StorageError.Code {
    /// The data directory or a topic is not usable as asked (bad name, already exists, unknown).
    public static let invalidRequest = StorageError.Code(raw: "invalidRequest")
    public static let topicAlreadyExists = StorageError.Code(raw: "topicAlreadyExists")
    public static let unknownTopic = StorageError.Code(raw: "unknownTopic")
    public static let invalidConfig = StorageError.Code(raw: "invalidConfig")
    /// The storage was shut down.
    public static let closed = StorageError.Code(raw: "closed")
    /// The process (EMFILE) or the system (ENFILE) has no file descriptor left.
    public static let tooManyOpenFiles = StorageError.Code(raw: "tooManyOpenFiles")
    /// A topic name that differs from an existing one only by '.' vs '_' (Kafka refuses it).
    public static let topicCollision = StorageError.Code(raw: "topicCollision")
    /// Creating the partitions would pass a limit (total partitions, partitions per topic).
    public static let partitionLimit = StorageError.Code(raw: "partitionLimit")
}

/// Write faults injected by tests (e.g. a disk that fills up in the middle of a write).
final class StorageFaults: @unchecked Sendable {
    struct Fault {
        var errno: Int32
        /// Bytes really written before the failure (a short write).
        var partialBytes: Int
        /// Writes that succeed before this one fails.
        var skip: Int
    }
    private let lock = NIOLock()
    private var pending: [Fault] = []

    /// A coming write fails with `errno` after writing `partialBytes` of its bytes; `skipping`
    /// writes (to any file of the owner) succeed first.
    func failNextWrite(errno: Int32 = ENOSPC, afterWriting partialBytes: Int = 0, skipping: Int = 0) {
        lock.withLock { pending.append(Fault(errno: errno, partialBytes: partialBytes, skip: skipping)) }
    }

    private var syncFailures: [Int32] = []

    /// The next fsync of the owner's data fails with `errno`.
    func failNextSync(errno: Int32 = EIO) {
        lock.withLock { syncFailures.append(errno) }
    }

    func takeSyncFailure() -> Int32? {
        lock.withLock { syncFailures.isEmpty ? nil : syncFailures.removeFirst() }
    }

    func take() -> Fault? {
        lock.withLock {
            guard !pending.isEmpty else { return nil }
            if pending[0].skip > 0 {
                pending[0].skip -= 1
                return nil
            }
            return pending.removeFirst()
        }
    }
}

/// `close(2)`, named so that types with a `close()` method can call it.
func closeDescriptor(_ fd: Int32) {
    #if canImport(Glibc)
        _ = Glibc.close(fd)
    #else
        _ = Darwin.close(fd)
    #endif
}

/// Turns an errno from a file operation into a `StorageError` a person can act on.
func storageError(errno code: Int32, operation: String, path: String, detail: String = "") -> StorageError {
    let reason = String(cString: strerror(code))
    let extra = detail.isEmpty ? "" : " " + detail
    if code == ENOSPC || code == EDQUOT {
        return StorageError(
            .diskFull,
            "disk full: \(operation) \(path) failed (\(reason)).\(extra) Free space on that file system "
                + "or lower retention.bytes/retention.ms; writes succeed again once space exists.")
    }
    if code == EMFILE || code == ENFILE {
        let limit = DescriptorLimit.current
        let scope =
            code == EMFILE
            ? "this process's open-files limit (ulimit -n \(limit == Int.max ? "unlimited" : String(limit)))"
            : "the system-wide open-files limit (fs.file-max)"
        return StorageError(
            .tooManyOpenFiles,
            "too many open files: \(operation) \(path) failed (\(reason), errno \(code)): \(scope) is reached.\(extra) "
                + "Raise the limit (ulimit -n / LimitNOFILE=) or lower --max-connections; nothing on disk is wrong.")
    }
    return StorageError(.io, "I/O error: \(operation) \(path) failed (\(reason), errno \(code)).\(extra)")
}

/// The segment and index files storage keeps open, at most `capacity` (plus files in use at that
/// moment): opening one more closes the least recently used idle one, which is reopened when next
/// needed. So thousands of idle partitions hold no descriptors. Thread-safe.
public final class OpenFileCache: @unchecked Sendable {
    public let capacity: Int
    private let lock = NIOLock()
    /// Most recently used first; only files with an open descriptor are listed. The list does not
    /// own its files: a file leaves it (under the lock) when closed or deinitialized.
    private unowned(unsafe) var head: DataFile?
    private unowned(unsafe) var tail: DataFile?
    private var _openCount = 0
    private var _opens = 0
    private var _evictions = 0

    public init(capacity: Int) { self.capacity = max(2, capacity) }

    /// Files open now (tests and metrics).
    public var openCount: Int { lock.withLock { _openCount } }
    /// Reopens of closed files, and closes of idle ones to make room (tests and metrics).
    public var reopens: Int { lock.withLock { _opens } }
    public var evictions: Int { lock.withLock { _evictions } }

    /// Storage's share of the descriptor limit: the quarter the broker reserves for storage
    /// (`DescriptorLimit.storageFiles`).
    public static func defaultCapacity(limit: Int = DescriptorLimit.current) -> Int {
        DescriptorLimit.storageFiles(limit: limit)
    }

    /// Registers a file just opened by its owner (it counts as most recently used).
    fileprivate func inserted(_ file: DataFile) {
        lock.withLock {
            linkFront(file)
            _openCount += 1
            evictLocked(keeping: capacity)
        }
    }

    /// The file's descriptor, opening it if it was closed; the file stays open until `release`.
    fileprivate func acquire(_ file: DataFile) throws -> Int32 {
        try lock.withLock {
            if file.descriptor >= 0 {
                if head !== file {
                    unlink(file)
                    linkFront(file)
                }
                file.pins += 1
                return file.descriptor
            }
            guard !file.isClosed else { throw StorageError(.closed, "\(file.path) is closed") }
            evictLocked(keeping: capacity - 1)
            var fd = open(file.path, O_RDWR | O_CLOEXEC)
            if fd < 0 && (errno == EMFILE || errno == ENFILE) && _openCount > 0 {
                // The process is out of descriptors (connections took them): give back half of ours.
                evictLocked(keeping: _openCount / 2)
                fd = open(file.path, O_RDWR | O_CLOEXEC)
            }
            guard fd >= 0 else { throw storageError(errno: errno, operation: "reopening", path: file.path) }
            file.descriptor = fd
            _opens += 1
            _openCount += 1
            linkFront(file)
            file.pins += 1
            return fd
        }
    }

    fileprivate func release(_ file: DataFile) {
        lock.withLock { file.pins -= 1 }
    }

    /// Closes the file for good (its owner is done with it).
    fileprivate func remove(_ file: DataFile) {
        lock.withLock {
            file.isClosed = true
            if file.descriptor >= 0 {
                unlink(file)
                _openCount -= 1
                closeDescriptor(file.descriptor)
                file.descriptor = -1
            }
        }
    }

    /// Closes least recently used idle files until at most `keeping` are open.
    private func evictLocked(keeping: Int) {
        var candidate = tail
        while _openCount > max(0, keeping), let file = candidate {
            candidate = file.newer
            guard file.pins == 0 else { continue }
            unlink(file)
            closeDescriptor(file.descriptor)
            file.descriptor = -1
            _openCount -= 1
            _evictions += 1
        }
    }

    private func linkFront(_ file: DataFile) {
        file.older = head
        file.newer = nil
        head?.newer = file
        head = file
        if tail == nil { tail = file }
    }

    private func unlink(_ file: DataFile) {
        if let newer = file.newer { newer.older = file.older } else { head = file.older }
        if let older = file.older { older.newer = file.newer } else { tail = file.newer }
        file.newer = nil
        file.older = nil
    }
}

/// An append-only file accessed with positional I/O. Not thread-safe: its owner locks.
///
/// With an `OpenFileCache` its descriptor may be closed while the file is idle and is reopened by
/// the next operation; without one it stays open until `close()`.
final class DataFile {
    let path: String
    /// Guarded by the cache's lock when there is a cache.
    fileprivate var descriptor: Int32
    fileprivate var pins = 0
    fileprivate var isClosed = false
    fileprivate unowned(unsafe) var newer: DataFile?
    fileprivate unowned(unsafe) var older: DataFile?
    let cache: OpenFileCache?
    /// Bytes of valid content; writes go here. Bytes past it (a failed write) are overwritten.
    private(set) var size: Int64
    let faults: StorageFaults?
    /// Whether the file was already there when opened (a missing index must be rebuilt).
    let existedBeforeOpen: Bool

    init(path: String, faults: StorageFaults? = nil, cache: OpenFileCache? = nil) throws {
        self.path = path
        self.faults = faults
        self.cache = cache
        existedBeforeOpen = access(path, F_OK) == 0
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0, let cache, errno == EMFILE || errno == ENFILE {
            cache.makeRoom()
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        }
        guard fd >= 0 else { throw storageError(errno: errno, operation: "opening", path: path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            closeDescriptor(fd)
            throw storageError(errno: e, operation: "stat of", path: path)
        }
        self.descriptor = fd
        self.size = Int64(st.st_size)
        cache?.inserted(self)
    }

    deinit {
        if let cache {
            cache.remove(self)
        } else if descriptor >= 0 {
            closeDescriptor(descriptor)
        }
    }

    func close() {
        if let cache {
            cache.remove(self)
        } else if descriptor >= 0 {
            closeDescriptor(descriptor)
            descriptor = -1
        }
    }

    /// Runs `body` with the file's descriptor, which stays open (not evicted) meanwhile.
    @inline(__always)
    func withDescriptor<T>(_ body: (Int32) throws -> T) throws -> T {
        guard let cache else {
            guard descriptor >= 0 else { throw StorageError(.closed, "\(path) is closed") }
            return try body(descriptor)
        }
        let fd = try cache.acquire(self)
        defer { cache.release(self) }
        return try body(fd)
    }

    /// Modification time in ms since the epoch.
    var modificationTimeMs: Int64 {
        var st = stat()
        guard (try? withDescriptor({ fstat($0, &st) })) == 0 else { return 0 }
        // Clamped, not trapping, for an absurd mtime on a damaged file system.
        let (ms, o1) = Int64(st.st_mtim.tv_sec).multipliedReportingOverflow(by: 1000)
        let (total, o2) = ms.addingReportingOverflow(Int64(st.st_mtim.tv_nsec) / 1_000_000)
        return o1 || o2 ? (st.st_mtim.tv_sec < 0 ? Int64.min : Int64.max) : total
    }

    /// Appends `bytes` at `size`. On any failure the file is cut back to its previous size and a
    /// `StorageError` is thrown, so the file never keeps a partial write.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try append(head: UnsafeRawBufferPointer(start: nil, count: 0), bytes)
    }

    /// Appends `head` then `tail` as one logical write (each written with `pwrite`, no copy into
    /// one buffer); same all-or-nothing rule as `append(_:)`. An injected fault applies to the whole.
    func append(head: UnsafeRawBufferPointer, _ tail: UnsafeRawBufferPointer) throws {
        try withDescriptor { fd in
            let start = size
            let total = head.count + tail.count
            // An injected fault writes only its `partialBytes`, then fails.
            let fault = faults?.take()
            let limit = fault.map { min(total, max(0, $0.partialBytes)) } ?? total
            var written = 0
            while written < limit {
                let (part, at) = written < head.count ? (head, written) : (tail, written - head.count)
                let n = pwrite(fd, part.baseAddress! + at, min(part.count - at, limit - written), off_t(start) + off_t(written))
                if n < 0 {
                    let e = errno
                    if e == EINTR { continue }
                    rollBack(fd: fd, to: start)
                    throw storageError(
                        errno: e, operation: "writing \(total) bytes to", path: path,
                        detail: "The partial write (\(written) bytes) was rolled back.")
                }
                written += n
            }
            if let fault {
                rollBack(fd: fd, to: start)
                throw storageError(
                    errno: fault.errno, operation: "writing \(total) bytes to", path: path,
                    detail: "The partial write (\(written) bytes) was rolled back.")
            }
            size = start + Int64(total)
        }
    }

    func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }

    /// Forgets everything from `length` on: best-effort truncate, and in any case later appends
    /// start at `length` (overwriting whatever a failed truncate left).
    func rollBack(to length: Int64) {
        // Best effort: even if ftruncate fails (or the file cannot be reopened), `size` stays at
        // `length`, so the next append overwrites the garbage and recovery would cut it.
        if (try? withDescriptor({ rollBack(fd: $0, to: length) })) == nil { size = length }
    }

    private func rollBack(fd: Int32, to length: Int64) {
        _ = ftruncate(fd, off_t(length))
        size = length
    }

    /// Reads up to `count` bytes at `offset` (fewer at the end of the file).
    func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard offset >= 0 else { return [] }
        let n = max(0, min(Int64(count), size - offset))
        if n == 0 { return [] }
        return try readRaw(at: offset, count: Int(n))
    }

    /// Reads up to `count` bytes at `offset` without consulting `size` (stops at the end of the
    /// file). For readers that run without the owner's lock on bytes known to be written.
    func readRaw(at offset: Int64, count: Int) throws -> [UInt8] {
        guard count > 0, offset >= 0 else { return [] }
        return try withDescriptor { fd in
            // Not zero-filled first: only the bytes pread delivered become the array's contents.
            try [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
                initialized = try readFully(fd, into: UnsafeMutableRawPointer(buf.baseAddress!), count: count, at: offset)
            }
        }
    }

    /// `pread` until `count` bytes at `offset` are in `destination` or the file ends; returns the
    /// bytes read.
    private func readFully(_ fd: Int32, into destination: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws -> Int {
        var done = 0
        while done < count {
            let r = pread(fd, destination + done, count - done, off_t(offset) + off_t(done))
            if r < 0 {
                if errno == EINTR { continue }
                throw storageError(errno: errno, operation: "reading", path: path)
            }
            if r == 0 { break }
            done += r
        }
        return done
    }

    /// Appends up to `count` bytes at `offset` (fewer at the end of the file) to `buffer`, read
    /// straight into its storage (the fetch path: no array in between). Returns the bytes appended;
    /// on an error nothing is appended.
    func read(at offset: Int64, count: Int, appendingTo buffer: inout ByteBuffer) throws -> Int {
        guard offset >= 0 else { return 0 }
        let n = Int(max(0, min(Int64(count), size - offset)))
        if n == 0 { return 0 }
        return try withDescriptor { fd in
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { raw in
                try readFully(fd, into: raw.baseAddress!, count: n, at: offset)
            }
        }
    }

    /// Cuts the file to `length` bytes.
    func truncate(to length: Int64) throws {
        try withDescriptor { fd in
            guard ftruncate(fd, off_t(length)) == 0 else {
                throw storageError(errno: errno, operation: "truncating", path: path)
            }
            size = length
        }
    }

    /// Flushes the file's data (and the metadata needed to read it) to stable storage.
    func sync() throws {
        try withDescriptor { fd in
            #if canImport(Glibc)
                let r = fdatasync(fd)
            #else
                let r = fsync(fd)
            #endif
            guard r == 0 else { throw storageError(errno: errno, operation: "fsync of", path: path) }
        }
    }

    /// A new descriptor for the same open file (the caller closes it), e.g. to fsync outside a lock.
    func duplicateDescriptor() throws -> Int32 {
        try withDescriptor { fd in
            var copy = dup(fd)
            if copy < 0, let cache, errno == EMFILE || errno == ENFILE {
                cache.makeRoom()
                copy = dup(fd)
            }
            guard copy >= 0 else { throw storageError(errno: errno, operation: "dup of", path: path) }
            return copy
        }
    }
}

extension OpenFileCache {
    /// After EMFILE/ENFILE outside the cache's own opens: closes half of the idle files.
    func makeRoom() {
        lock.withLock { evictLocked(keeping: _openCount / 2) }
    }
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw storageError(errno: errno, operation: "opening directory", path: path) }
    defer { closeDescriptor(fd) }
    guard fsync(fd) == 0 else { throw storageError(errno: errno, operation: "fsync of directory", path: path) }
}

/// Prefix of the temp files `writeFileDurably` leaves if interrupted (removed at start).
let temporaryFilePrefix = ".tmp-"

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync directory.
/// The temp file has a short name of its own (`.tmp-<n>`), so a `path` whose name is at the 255-byte
/// limit (a 249-character topic's `.json`) still works.
func writeFileDurably(_ bytes: [UInt8], to path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let tmp = (directory as NSString).appendingPathComponent(temporaryFilePrefix + String(temporaryFileCounter.next(), radix: 36))
    unlink(tmp)
    defer { unlink(tmp) }
    let file = try DataFile(path: tmp)
    try file.truncate(to: 0)
    try file.append(bytes)
    try file.sync()
    file.close()
    guard rename(tmp, path) == 0 else { throw storageError(errno: errno, operation: "renaming \(tmp) to", path: path) }
    try syncDirectory(directory)
}

/// Process-wide counter for unique temp-file names.
final class Counter: @unchecked Sendable {
    private let lock = NIOLock()
    private var value = UInt64(getpid()) << 32
    func next() -> UInt64 {
        lock.withLock {
            value += 1
            return value
        }
    }
}
let temporaryFileCounter = Counter()
