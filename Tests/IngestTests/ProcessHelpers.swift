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
