import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small files of the data directory that are replaced whole (credentials, ACLs): written to a
/// temporary file, fsynced, renamed over the old one, the directory fsynced; writers from several
/// processes (the broker, `tape users`, `tape acls`) take turns through a lock file beside it.
enum AtomicFile {
    /// Why a lock or write failed, in one sentence.
    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Runs `body` holding an exclusive `flock` on `path + ".lock"`.
    static func withExclusiveLock<R>(path: String, _ body: () throws -> R) throws -> R {
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true)
        let lock = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw Failure(message: "cannot create \(path).lock: \(String(cString: strerror(errno))).") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw Failure(message: "cannot lock \(path).lock: \(String(cString: strerror(errno))).") }
        }
        return try body()
    }

    /// Replaces `path` with `data` (mode 0600) so that readers see the old or the new content, never a mix.
    static func replace(_ path: String, with data: Data) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(message: "cannot create \(temporary): \(String(cString: strerror(errno))).") }
        var ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = posixWrite(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
        ok = ok && fchmod(fd, 0o600) == 0 && fsync(fd) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure(message: "cannot write \(path): \(reason).")
        }
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Size, mtime and inode: changes whenever the file is replaced.
    struct Stamp: Equatable, Sendable {
        var mtimeSec: Int
        var mtimeNsec: Int
        var size: Int
        var inode: UInt64

        init?(path: String) {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            mtimeSec = Int(st.st_mtim.tv_sec)
            mtimeNsec = Int(st.st_mtim.tv_nsec)
            size = Int(st.st_size)
            inode = UInt64(st.st_ino)
        }
    }

    /// At most `maxBytes + 1` bytes of `path`; nil when it cannot be opened.
    static func read(_ path: String, maxBytes: Int) -> Data? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: maxBytes + 1)) ?? Data()
    }
}

private func posixWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
