import Foundation
import NIOConcurrencyHelpers

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
    return StorageError(.io, "I/O error: \(operation) \(path) failed (\(reason), errno \(code)).\(extra)")
}

/// An append-only file accessed with positional I/O. Not thread-safe: its owner locks.
final class DataFile {
    let path: String
    private(set) var fd: Int32
    /// Bytes of valid content; writes go here. Bytes past it (a failed write) are overwritten.
    private(set) var size: Int64
    let faults: StorageFaults?
    /// Whether the file was already there when opened (a missing index must be rebuilt).
    let existedBeforeOpen: Bool

    init(path: String, faults: StorageFaults? = nil) throws {
        self.path = path
        self.faults = faults
        existedBeforeOpen = access(path, F_OK) == 0
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw storageError(errno: errno, operation: "opening", path: path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            closeDescriptor(fd)
            throw storageError(errno: e, operation: "stat of", path: path)
        }
        self.fd = fd
        self.size = Int64(st.st_size)
    }

    deinit { close() }

    func close() {
        if fd >= 0 {
            closeDescriptor(fd)
            fd = -1
        }
    }

    /// Modification time in ms since the epoch.
    var modificationTimeMs: Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return 0 }
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
                rollBack(to: start)
                throw storageError(
                    errno: e, operation: "writing \(total) bytes to", path: path,
                    detail: "The partial write (\(written) bytes) was rolled back.")
            }
            written += n
        }
        if let fault {
            rollBack(to: start)
            throw storageError(
                errno: fault.errno, operation: "writing \(total) bytes to", path: path,
                detail: "The partial write (\(written) bytes) was rolled back.")
        }
        size = start + Int64(total)
    }

    func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }

    /// Forgets everything from `length` on: best-effort truncate, and in any case later appends
    /// start at `length` (overwriting whatever a failed truncate left).
    func rollBack(to length: Int64) {
        // Best effort: even if ftruncate fails, `size` stays at `length`, so the next append
        // overwrites the garbage and recovery would cut it.
        _ = ftruncate(fd, off_t(length))
        size = length
    }

    /// Reads up to `count` bytes at `offset` (fewer at the end of the file).
    func read(at offset: Int64, count: Int) throws -> [UInt8] {
        let n = max(0, min(Int64(count), size - offset))
        if n == 0 { return [] }
        return try readRaw(at: offset, count: Int(n))
    }

    /// Reads up to `count` bytes at `offset` without consulting `size` (stops at the end of the
    /// file). For readers that run without the owner's lock on bytes known to be written.
    func readRaw(at offset: Int64, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        // Not zero-filled first: only the bytes pread delivered become the array's contents.
        return try [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            var done = 0
            while done < count {
                let r = pread(fd, buf.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if r < 0 {
                    if errno == EINTR { continue }
                    initialized = done
                    throw storageError(errno: errno, operation: "reading", path: path)
                }
                if r == 0 { break }
                done += r
            }
            initialized = done
        }
    }

    /// Cuts the file to `length` bytes.
    func truncate(to length: Int64) throws {
        guard ftruncate(fd, off_t(length)) == 0 else {
            throw storageError(errno: errno, operation: "truncating", path: path)
        }
        size = length
    }

    /// Flushes the file's data (and the metadata needed to read it) to stable storage.
    func sync() throws {
        #if canImport(Glibc)
        let r = fdatasync(fd)
        #else
        let r = fsync(fd)
        #endif
        guard r == 0 else { throw storageError(errno: errno, operation: "fsync of", path: path) }
    }
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw storageError(errno: errno, operation: "opening directory", path: path) }
    defer { closeDescriptor(fd) }
    guard fsync(fd) == 0 else { throw storageError(errno: errno, operation: "fsync of directory", path: path) }
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync directory.
func writeFileDurably(_ bytes: [UInt8], to path: String) throws {
    let tmp = path + ".tmp"
    unlink(tmp)
    let file = try DataFile(path: tmp)
    try file.truncate(to: 0)
    try file.append(bytes)
    try file.sync()
    file.close()
    guard rename(tmp, path) == 0 else { throw storageError(errno: errno, operation: "renaming \(tmp) to", path: path) }
    try syncDirectory((path as NSString).deletingLastPathComponent)
}
