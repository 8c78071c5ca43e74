import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

struct TestSetupError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Helpers for integration tests that run `tape broker` and real clients as separate processes
/// on loopback.
enum ProcessSupport {
    /// The built `tape` executable: $TAPE_BINARY, else next to the test bundle, else .build/debug.
    static func tapeBinary() throws -> URL {
        if let env = ProcessInfo.processInfo.environment["TAPE_BINARY"] { return URL(fileURLWithPath: env) }
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tape"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("tape"),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/tape").standardized,
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw TestSetupError(message: "the tape executable was not found (tried \(candidates.map(\.path))); run `swift build --product tape` first")
        }
        return found
    }

    static func executable(_ name: String) throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for dir in path + ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        throw TestSetupError(message: "\(name) is not installed (apt-get install \(name == "kcat" ? "kcat" : name))")
    }

    /// A free loopback port (bound to port 0, then released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A connected loopback TCP socket, or -1.
    static func connectLoopback(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            close(fd)
            return -1
        }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a process to completion (killed after `timeout` seconds).
    @discardableResult
    static func run(_ path: String, _ args: [String], stdin: String? = nil, timeout: TimeInterval = 30) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err"), inp = dir.appendingPathComponent("in")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        _ = FileManager.default.createFile(atPath: inp.path, contents: Data((stdin ?? "").utf8))
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardInput = try FileHandle(forReadingFrom: inp)
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTFail("\(path) \(args) did not finish within \(timeout) s")
        }
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "", stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}

/// A `tape broker` child process on a free loopback port with its own data directory;
/// its stderr goes to a log file.
final class BrokerProcess {
    let process = Process()
    let port: Int
    let logURL: URL
    let dataDir: URL
    private let ownsDataDir: Bool
    var address: String { "127.0.0.1:\(port)" }

    /// Pass `dataDir` to restart on an earlier broker's data (the caller then removes it).
    /// `fileLimit` starts it through `/bin/sh -c 'ulimit -n N; exec tape broker ...'`.
    init(
        extraArguments: [String] = [], port: Int = ProcessSupport.freePort(), dataDir: URL? = nil, fileLimit: Int? = nil, startTimeout: TimeInterval = 15
    ) throws {
        self.port = port
        self.ownsDataDir = dataDir == nil
        self.dataDir = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("tape-data-\(UUID().uuidString)")
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("tape-broker-\(port)-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let tape = try ProcessSupport.tapeBinary()
        let arguments = ["broker", "--listen", "127.0.0.1:\(port)", "--data-dir", self.dataDir.path] + extraArguments
        if let fileLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(fileLimit) && exec '\(tape.path)' " + arguments.map { "'\($0)'" }.joined(separator: " ")]
        } else {
            process.executableURL = tape
            process.arguments = arguments
        }
        process.standardError = try FileHandle(forWritingTo: logURL)
        process.standardOutput = try FileHandle(forWritingTo: logURL)
        try process.run()
        let deadline = Date().addingTimeInterval(startTimeout)
        while Date() < deadline {
            let fd = ProcessSupport.connectLoopback(port: port)
            if fd >= 0 {
                close(fd)
                return
            }
            if !process.isRunning { break }
            usleep(50_000)
        }
        stop()
        throw TestSetupError(message: "tape broker\(fileLimit.map { " (ulimit -n \($0))" } ?? "") did not start on \(address): \(log)")
    }

    /// A broker under `ulimit -n fileLimit` with `--fsync always`, on `dataDir` (kept).
    static func limited(fileLimit: Int, dataDir: URL, extra: [String] = []) throws -> BrokerProcess {
        try BrokerProcess(extraArguments: ["--fsync", "always"] + extra, dataDir: dataDir, fileLimit: fileLimit, startTimeout: 60)
    }

    /// Descriptors the broker holds now.
    var openDescriptors: Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/fd")) ?? []).count
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL after 10 s; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Whether this build keeps data on disk (the in-memory stand-in says it does not).
    var isDurable: Bool { !log.contains("durable storage is not wired") }

    /// kill -9: no shutdown, no final fsync.
    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
        if ownsDataDir { try? FileManager.default.removeItem(at: dataDir) }
    }
}
