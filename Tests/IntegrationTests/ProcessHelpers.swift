import Foundation
import XCTest

/// Runs real processes (the built `tape` binary, kcat) for integration tests.
enum Processes {
    /// The directory holding the built products (`tape` sits next to the test bundle).
    static var productsDirectory: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
    }

    static var tape: String {
        let path = productsDirectory.appendingPathComponent("tape").path
        precondition(FileManager.default.isExecutableFile(atPath: path), "tape binary not found at \(path); run `swift build` first")
        return path
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs to completion (killed after `timeout`), feeding `stdin`.
    static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        let outData = LockedData(), errData = LockedData()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData.set(out.fileHandleForReading.readDataToEndOfFile()); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData.set(err.fileHandleForReading.readDataToEndOfFile()); group.leave() }
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            group.wait()
            throw XCTSkip("\(executable) \(arguments.joined(separator: " ")) did not finish in \(timeout) s; stderr: \(String(decoding: errData.get(), as: UTF8.self))")
        }
        process.waitUntilExit()
        group.wait()
        return Result(status: process.terminationStatus, stdout: outData.get(), stderr: String(decoding: errData.get(), as: UTF8.self))
    }
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.withLock { data = d } }
    func get() -> Data { lock.withLock { data } }
}

/// A long-running child process (a broker, a mock cluster) stopped when the test ends.
final class BackgroundProcess {
    let process = Process()
    private let out = Pipe()
    /// stderr goes to a file (a pipe nobody reads could fill up and block the child), kept for diagnosis.
    let stderrPath: String

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        stderrPath = FileManager.default.temporaryDirectory.appendingPathComponent("tape-child-\(UUID().uuidString.prefix(8)).stderr").path
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// What the child wrote on stderr so far.
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Reads the first line the process prints on stdout.
    func firstLine(timeout: TimeInterval = 20) throws -> String {
        var bytes = Data()
        let handle = out.fileHandleForReading
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            bytes.append(chunk)
            if let nl = bytes.firstIndex(of: 10) { return String(decoding: bytes[..<nl], as: UTF8.self) }
        }
        throw XCTSkip("process printed no line")
    }

    func stop() {
        if process.isRunning {
            process.interrupt()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    deinit { stop() }
}
