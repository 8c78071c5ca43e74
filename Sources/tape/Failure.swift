import ArgumentParser
import Foundation
import KafkaClient
import NIOCore
import Processing
import TapeBroker

/// A failure found while a command runs (not a bad flag): one sentence that says what was wrong
/// and what to do. `Tape.main` prints it as `Error: <message>`, without usage text, and exits
/// with `exitCode` (1 unless a command says otherwise).
struct TapeFailure: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32 = 1
    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    var description: String { message }
}

/// The one place that turns an error reaching the top of a command into the sentence shown.
enum FailureText {
    /// One line: what went wrong (and, where known, what to do), never a dump of nested errors.
    static func sentence(for error: any Error) -> String {
        let line = oneLine(text(for: error))
        // An error that describes itself at length (a child's log tail, a nested error) stays readable.
        return line.count > 2_000 ? String(line.prefix(2_000)) + " …" : line
    }

    private static func text(for error: any Error) -> String {
        switch error {
        case let failure as TapeFailure: return failure.message
        case let validation as ValidationError: return validation.message
        case let kafka as KafkaError: return kafka.message
        case let broker as BrokerStartError: return broker.message
        case let store as CandleStoreError: return store.message
        case let io as IOError: return socketSentence(errno: io.errnoCode, address: nil, flag: nil)
        case is CancellationError: return "Stopped before a clean shutdown (cancelled, e.g. by a second Ctrl-C)."
        case let posix as POSIXError: return String(cString: strerror(posix.code.rawValue)) + "."
        default: break
        }
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain { return fileSentence(ns) }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(truncatingIfNeeded: ns.code))) + "." }
        // Errors that describe themselves (CustomStringConvertible with a sentence inside).
        let text = String(describing: error)
        // GRDB's "SQLite error 26: file is not a database - while executing `SELECT ...`": the reason only.
        if text.hasPrefix("SQLite error"), let colon = text.firstIndex(of: ":") {
            let reason = text[text.index(after: colon)...].components(separatedBy: " - while executing").first ?? ""
            return "The candle database failed:\(reason). Check --db, or pass another file."
        }
        return text.isEmpty ? "\(type(of: error)) (no description)" : text
    }

    /// A Foundation file error (`NSCocoaErrorDomain`) as a sentence naming the path.
    static func fileSentence(_ error: NSError, shownAs shown: String? = nil) -> String {
        let path = shown ?? (error.userInfo[NSFilePathErrorKey] as? String) ?? (error.userInfo[NSURLErrorKey] as? URL)?.path ?? "a file"
        let underlying = (error.userInfo[NSUnderlyingErrorKey] as? any Error).map { $0 as NSError }.flatMap {
            $0.domain == NSPOSIXErrorDomain ? Int32(truncatingIfNeeded: $0.code) : nil
        }
        if let underlying { return fileSentence(path: path, errno: underlying) }
        switch CocoaError.Code(rawValue: error.code) {
        case .fileWriteFileExists: return fileSentence(path: path, errno: EEXIST)
        case .fileWriteNoPermission, .fileReadNoPermission: return fileSentence(path: path, errno: EACCES)
        case .fileNoSuchFile, .fileReadNoSuchFile: return fileSentence(path: path, errno: ENOENT)
        case .fileWriteVolumeReadOnly: return fileSentence(path: path, errno: EROFS)
        case .fileWriteOutOfSpace: return fileSentence(path: path, errno: ENOSPC)
        default: return "Cannot use \(path) (file error \(error.code)): check the path and its permissions."
        }
    }

    /// `path` could not be created, read or written because of `errno`.
    static func fileSentence(path: String, errno code: Int32) -> String {
        switch code {
        case EEXIST: return "Cannot create \(path): a file of that name is in the way. Remove it or pick another path."
        case ENOTDIR: return "Cannot use \(path): part of that path is a file, not a directory. Pick another path."
        case EACCES, EPERM: return "Cannot write \(path): permission denied. Pick a path you can write to."
        case ENOENT: return "Cannot use \(path): it, or a directory above it, does not exist (and cannot be made there). Check the path."
        case EROFS: return "Cannot write \(path): the file system is read-only. Pick a path on a writable file system."
        case ENOSPC: return "Cannot write \(path): no space left on the device. Free some space or pick another path."
        case EISDIR: return "Cannot use \(path): it is a directory, not a file. Pick a file path."
        default: return "Cannot use \(path): \(String(cString: strerror(code))). Pick another path."
        }
    }

    /// A socket error while listening on `address` (given with `flag`).
    static func socketSentence(errno code: Int32, address: String?, flag: String?) -> String {
        let on = address.map { "Cannot listen on \($0)" } ?? "Cannot listen"
        let pick = flag.map { " Pick another with \($0) HOST:PORT." } ?? " Pick another address."
        switch code {
        case EADDRINUSE: return "\(on): the address is already in use (another tape?).\(pick)"
        case EACCES, EPERM: return "\(on): permission denied (ports below 1024 need privileges).\(pick)"
        case EADDRNOTAVAIL: return "\(on): that address does not belong to this machine.\(pick)"
        default: return "\(on): \(String(cString: strerror(code))).\(pick)"
        }
    }

    /// Joins lines and squeezes whitespace, so that an error is one line on stderr.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
    }
}

/// Up-front checks of what a command will need from the machine, each failing with one sentence.
enum Preflight {
    /// Makes sure `path` is (or can be made) a writable directory; `flag` names the option it came from.
    static func directory(_ path: String, flag: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw TapeFailure("\(flag) \(path) is a file, not a directory. Give a directory with \(flag) DIR.")
            }
        }
        try makeWritable(path, shownAs: "\(flag) \(path)")
    }

    /// Creates `directory` where missing and checks this process may write in it.
    private static func makeWritable(_ directory: String, shownAs shown: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TapeFailure(FailureText.fileSentence(error as NSError, shownAs: shown))
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw TapeFailure(FailureText.fileSentence(path: shown, errno: errno))
        }
    }

    /// Makes sure the directory that will hold the file `path` exists (or can be made) and that
    /// `path` itself is not a directory.
    static func fileParent(_ path: String, flag: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw TapeFailure("\(flag) \(path) is a directory; give a file path with \(flag) FILE.")
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw TapeFailure("Cannot use \(flag) \(path): \(parent) is a file, not a directory. Pick another path with \(flag) FILE.")
        }
        try makeWritable(parent, shownAs: "\(flag) \(path)")
    }

    /// Fails when `path` exists but is not a directory (commands that only read a data directory).
    static func notAFile(_ path: String, flag: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw TapeFailure("\(flag) \(path) is a file, not a directory. Give the broker's data directory with \(flag) DIR.")
        }
    }

    /// Fails when nothing can listen on `host:port` now (in use, not this machine's address, no
    /// permission). A quick bind and close: the real listener binds a moment later.
    static func listen(host: String, port: Int, flag: String) throws {
        guard port != 0 else { return }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw TapeFailure("Cannot listen on \(host):\(port): \(host) is not an address or host name of this machine. Pick another with \(flag) HOST:PORT.")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            let code = errno
            let shown = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            throw TapeFailure(FailureText.socketSentence(errno: code, address: shown, flag: flag))
        }
    }

}

extension Double {
    /// As given on a command line: `-5` rather than `-5.0`.
    var flagText: String {
        isFinite && self == rounded() && Swift.abs(self) < 1e15 ? String(Int64(self)) : "\(self)"
    }
}

/// "partitions 0-2" (or the ids, when they are not 0..n-1) for a topic's partition ids.
func partitionsText(_ ids: [Int32]) -> String {
    let sorted = ids.sorted()
    guard !sorted.isEmpty else { return "no partitions" }
    let contiguous = sorted.enumerated().allSatisfy { Int($0.element) == $0.offset }
    return contiguous ? "partitions 0-\(sorted.count - 1)" : "partitions " + sorted.map(String.init).joined(separator: ",")
}

/// The error, if any, is "address already in use" or another listening failure: its errno.
func listenErrno(_ error: any Error) -> Int32? {
    if let io = error as? IOError { return io.errnoCode }
    return nil
}
