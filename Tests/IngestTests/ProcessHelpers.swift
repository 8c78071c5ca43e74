import Foundation
import XCTest

/// Real child processes for the end-to-end tests (pattern of IntegrationTests' helpers): the built
/// `tape` binary, stdout on a pipe (first line = address), stderr to a file kept for diagnosis.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let name: String
    let stderrPath: String
    private let out = Pipe()

    static var tape: String {
        let dir = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
        let path = dir.appendingPathComponent("tape").path
        precondition(FileManager.default.isExecutableFile(atPath: path), "tape binary not found at \(path); run `swift build` first")
        return path
    }

    init(_ name: String, _ arguments: [String], directory: URL) throws {
        self.name = name
        stderrPath = directory.appendingPathComponent("\(name).stderr").path
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: ChildProcess.tape)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// The first line printed on stdout.
    func firstLine(timeout: TimeInterval = 30) throws -> String {
        var bytes = Data()
        let handle = out.fileHandleForReading
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            bytes.append(chunk)
            if let nl = bytes.firstIndex(of: 10) { return String(decoding: bytes[..<nl], as: UTF8.self) }
        }
        throw XCTSkip("\(name) printed no line; stderr: \(stderr)")
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// SIGINT, then wait; returns the exit status.
    @discardableResult
    func interrupt(timeout: TimeInterval = 40) -> Int32 {
        if process.isRunning { process.interrupt() }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Sends a signal (SIGSTOP / SIGCONT freeze and thaw a process).
    func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits until something accepts connections on loopback `port` (the child, once it is up).
    func waitForPort(_ port: Int, timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = loopbackAddress(port: port)
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if rc == 0 { return }
            if !process.isRunning { break }
            usleep(50_000)
        }
        throw ChildProcessError(message: "\(name) did not listen on port \(port); stderr: \(stderr)")
    }

    /// SIGKILL: a crash, no chance to flush.
    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

func temporaryDirectory(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tape-\(name)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func lines(of path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}

func loopbackAddress(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return addr
}

/// A loopback port nothing listens on right now (the kernel's pick for port 0).
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = loopbackAddress(port: 0)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

struct ChildProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
