import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A long-running child process (a broker, a mock cluster, `tape up`, a simulator): stdout on a
/// pipe (its first line is usually an address) or into the log, stderr into a log file kept for
/// diagnosis (a pipe nobody reads could fill up and block the child). Killed (SIGKILL) if still
/// running when released.
package final class ChildProcess: @unchecked Sendable {
    package let process = Process()
    package let name: String
    /// Where stderr (and, with `stdoutToLog`, stdout) goes.
    package let stderrURL: URL
    private let out: Pipe?

    /// Starts `executable` (the built `tape`, under its private name, unless given) with `arguments`. The log is
    /// `<logDirectory>/<name>.log`, or a uniquely named file in the temporary directory.
    package init(
        _ arguments: [String], name: String? = nil, logDirectory: URL? = nil, executable: String = TapeBinary.privateCopy,
        stdoutToLog: Bool = false, environment: [String: String]? = nil
    ) throws {
        let name = name ?? arguments.first ?? "child"
        self.name = name
        if let logDirectory {
            stderrURL = logDirectory.appendingPathComponent("\(name).log")
        } else {
            stderrURL = FileManager.default.temporaryDirectory.appendingPathComponent("tape-\(name)-\(UUID().uuidString.prefix(8)).log")
        }
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: stderrURL)
        _ = log.seekToEndOfFile()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if stdoutToLog {
            out = nil
            process.standardOutput = log
        } else {
            let pipe = Pipe()
            out = pipe
            process.standardOutput = pipe
        }
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    package var isRunning: Bool { process.isRunning }
    package var pid: Int32 { process.processIdentifier }

    /// What the child wrote on stderr so far.
    package var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// The first line printed on stdout (the mock cluster's bootstrap address, a listener's port).
    package func firstLine(timeout: TimeInterval = 30) throws -> String {
        guard let out else { throw TestSupportError("\(name): stdout goes to the log, not a pipe") }
        var bytes = [UInt8]()
        let handle = out.fileHandleForReading
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            bytes.append(contentsOf: chunk)
            if let nl = bytes.firstIndex(of: 10) { return String(decoding: bytes[..<nl], as: UTF8.self) }
        }
        throw TestSupportError("\(name) printed no line; stderr: \(stderr.suffix(3000))")
    }

    /// Waits until stderr contains `text` `count` times (true), or the timeout passes or the child
    /// exits (false).
    package func waitForLog(_ text: String, count: Int = 1, timeout: TimeInterval) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stderr.components(separatedBy: text).count - 1 >= count { return true }
            if !process.isRunning { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Waits until something accepts connections on loopback `port` (the child, once it is up).
    package func waitForPort(_ port: Int, timeout: TimeInterval = 20) throws {
        guard Loopback.waitForListener(port: port, timeout: timeout, while: { process.isRunning }) else {
            throw TestSupportError("\(name) did not listen on port \(port); stderr: \(stderr.suffix(3000))")
        }
    }

    /// Sends a signal (SIGSTOP / SIGCONT freeze and thaw a process).
    package func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// `signal`, then waits (SIGKILL after `timeout`); returns the exit status.
    @discardableResult
    package func stop(_ signal: Int32, timeout: TimeInterval) -> Int32 {
        if process.isRunning {
            kill(process.processIdentifier, signal)
            if waitForExit(process, timeout: timeout) == nil { kill(process.processIdentifier, SIGKILL) }
        }
        return waitForExit(process, timeout: 10) ?? -1
    }

    /// SIGINT (Ctrl-C), then waits; returns the exit status.
    @discardableResult
    package func interrupt(timeout: TimeInterval = 40) -> Int32 { stop(SIGINT, timeout: timeout) }

    /// SIGTERM, then waits; returns the exit status.
    @discardableResult
    package func terminate(timeout: TimeInterval = 30) -> Int32 { stop(SIGTERM, timeout: timeout) }

    /// SIGKILL: a crash, no chance to flush.
    package func kill9() {
        guard process.processIdentifier != 0 else { return }  // never started
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        _ = waitForExit(process, timeout: 10)
    }

    deinit { kill9() }
}

/// What a program run to completion left.
package struct ProcessResult: Sendable {
    package var status: Int32
    package var stdoutData: Data
    package var stderr: String
    package var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
}

/// Runs `executable` to completion, feeding `stdin`, with `environment` added to this process's;
/// a run still going after `timeout` is killed and is an error.
package func runProcess(
    _ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:], timeout: TimeInterval = 60
) throws -> ProcessResult {
    // Files, not pipes: nothing to drain concurrently, and no pipe buffer to fill and block on.
    let dir = try temporaryDirectory("run")
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("out")
    let err = dir.appendingPathComponent("err")
    let input = dir.appendingPathComponent("in")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    _ = FileManager.default.createFile(atPath: input.path, contents: stdin ?? Data())
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = try FileHandle(forReadingFrom: input)
    try process.run()
    let timedOut = waitForExit(process, timeout: timeout) == nil
    if timedOut { kill(process.processIdentifier, SIGKILL) }
    let status = waitForExit(process, timeout: 10)
    let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
    if timedOut {
        throw TestSupportError("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s; stderr: \(stderr.suffix(2000))")
    }
    guard let status else { throw TestSupportError("\(executable) did not exit after SIGKILL") }
    return ProcessResult(status: status, stdoutData: (try? Data(contentsOf: out)) ?? Data(), stderr: stderr)
}

/// `runProcess` with text on stdin.
package func runProcess(
    _ executable: String, _ arguments: [String], stdin: String?, environment: [String: String] = [:], timeout: TimeInterval = 60
) throws -> ProcessResult {
    try runProcess(executable, arguments, stdin: stdin.map { Data($0.utf8) }, environment: environment, timeout: timeout)
}

/// Waits until `process` exits, at most `timeout` seconds; returns its status as
/// `Process.terminationStatus` gives it (the signal number after a signal), or nil while it runs.
///
/// Not `Process.waitUntilExit()`: Foundation can miss a child's exit and leave it a zombie that it
/// never reaps, and then `isRunning` stays true and `waitUntilExit()` waits forever (seen in CI: a
/// test stuck for 15 minutes on a `tape` that had exited). A child that stays a zombie for half a
/// second is reaped here instead.
package func waitForExit(_ process: Process, timeout: TimeInterval) -> Int32? {
    let pid = process.processIdentifier
    let deadline = Date().addingTimeInterval(timeout)
    var zombieSince: Date?
    while true {
        if !process.isRunning { return process.terminationStatus }
        if isZombie(pid) {
            let since = zombieSince ?? Date()
            zombieSince = since
            if Date().timeIntervalSince(since) > 0.5 {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    let signal = status & 0x7F
                    return signal != 0 ? signal : (status >> 8) & 0xFF
                }
            }
        }
        if Date() >= deadline { return nil }
        usleep(10_000)
    }
}

/// Whether `pid` has exited and waits to be reaped (state Z in /proc/PID/stat).
private func isZombie(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first == "Z"
}
