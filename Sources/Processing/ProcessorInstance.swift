import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The default static-membership identity of a `tape process` (KIP-345 `group.instance.id`):
/// stable across restarts of the same processor, different for processors running side by side.
///
/// What makes a processor "the same one" is where its state lives: the host and the absolute
/// path of its candle history (`--db`). Two processors may still share those (two `--db` paths
/// spelled alike on one host, or `--no-db`), so each also holds a *slot*: the first of
/// `<db>.<group>.<slot>.lock` (0, 1, ...) it can lock exclusively (`flock`). The kernel drops the
/// lock when the process ends, however it ends, so a processor killed and restarted at once takes
/// the same slot — and the same id — again, while one started beside a running processor gets
/// the next slot. The id is `tape-process.<host>.<hash of the path>.<slot>`, within Kafka's rules
/// for instance ids (`[A-Za-z0-9._-]`, at most 249 characters).
public final class ProcessorInstance: @unchecked Sendable {
    /// The `group.instance.id`.
    public let id: String
    /// The slot held (0 for the first processor of this host, state and group).
    public let slot: Int
    /// The lock file held while this value lives.
    public let lockPath: String
    private let descriptor: Int32

    /// Slots tried before giving up.
    public static let maxSlots = 64

    private init(id: String, slot: Int, lockPath: String, descriptor: Int32) {
        self.id = id
        self.slot = slot
        self.lockPath = lockPath
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Claims the first free slot for a processor of `group` whose state is at `statePath` (nil:
    /// no state file, e.g. `--no-db`; lock files then go to `lockDirectory`, by default a
    /// per-user directory under the temporary directory).
    public static func claim(statePath: String?, group: String, host: String = hostName(), lockDirectory: String? = nil) throws -> ProcessorInstance {
        let stateKey: String
        let lockPrefix: String
        if let statePath {
            let absolute = URL(fileURLWithPath: statePath).standardizedFileURL.resolvingSymlinksInPath().path
            stateKey = absolute
            lockPrefix = "\(absolute).\(safe(group, limit: 100))"
        } else {
            let directory = lockDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("tape-process-\(getuid())").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            stateKey = "no-db"
            lockPrefix = "\(directory)/no-db.\(safe(group, limit: 100))"
        }
        let hex = String(fnv1a(stateKey), radix: 16)
        let stateTag = statePath == nil ? "no-db" : String(repeating: "0", count: 8 - hex.count) + hex
        for slot in 0..<maxSlots {
            let path = "\(lockPrefix).\(slot).lock"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw ProcessorInstanceError(message: "Cannot create the instance lock file \(path): \(String(cString: strerror(errno))).")
            }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                // For whoever looks: which process holds the slot.
                let note = Array("\(getpid())\n".utf8)
                _ = ftruncate(fd, 0)
                _ = note.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                let id = "tape-process.\(safe(host, limit: 64)).\(stateTag).\(slot)"
                return ProcessorInstance(id: id, slot: slot, lockPath: path, descriptor: fd)
            }
            let error = errno
            close(fd)
            guard error == EWOULDBLOCK || error == EAGAIN else {
                throw ProcessorInstanceError(message: "Cannot lock \(path): \(String(cString: strerror(error))).")
            }
        }
        throw ProcessorInstanceError(
            message: "\(maxSlots) processors of group \(group) already run with the state \(stateKey) on this host; pass --group-instance-id.")
    }

    /// This host's name (`gethostname`; no name lookup).
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    /// Whether `id` is a valid group instance id by Kafka's rule (the Java client's
    /// `JoinGroupRequest.validateGroupInstanceId`): 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 249 && id != "." && id != ".." && id.utf8.allSatisfy(isLegal)
    }

    private static func isLegal(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x5F || c == 0x2D
    }

    /// `text` with every character outside `[A-Za-z0-9._-]` replaced by `_`, cut to `limit` bytes.
    static func safe(_ text: String, limit: Int) -> String {
        String(decoding: text.utf8.prefix(limit).map { isLegal($0) ? $0 : 0x5F }, as: UTF8.self)
    }

    /// 32-bit FNV-1a (stable across runs and platforms, unlike `Hasher`).
    static func fnv1a(_ text: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        return hash
    }
}

public struct ProcessorInstanceError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
