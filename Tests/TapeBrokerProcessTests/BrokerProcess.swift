import Foundation
import TapeTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A `tape broker` child process on a free loopback port with its own data directory; its
/// stdout and stderr go to one log file.
final class BrokerProcess {
    let child: ChildProcess
    let port: Int
    let dataDir: URL
    private let ownsDataDir: Bool
    var address: String { "127.0.0.1:\(port)" }
    var process: Process { child.process }

    /// Pass `dataDir` to restart on an earlier broker's data (the caller then removes it).
    /// `fileLimit` starts it through `/bin/sh -c 'ulimit -n N; exec tape broker ...'`.
    init(
        extraArguments: [String] = [], port: Int = Loopback.freePort(), dataDir: URL? = nil, fileLimit: Int? = nil, startTimeout: TimeInterval = 15
    ) throws {
        self.port = port
        self.ownsDataDir = dataDir == nil
        self.dataDir = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("tape-data-\(UUID().uuidString)")
        let tape = TapeBinary.privateCopy
        let arguments = ["broker", "--listen", "127.0.0.1:\(port)", "--data-dir", self.dataDir.path] + extraArguments
        if let fileLimit {
            let command = "ulimit -n \(fileLimit) && exec '\(tape)' " + arguments.map { "'\($0)'" }.joined(separator: " ")
            child = try ChildProcess(["-c", command], name: "broker-\(port)", executable: "/bin/sh", stdoutToLog: true)
        } else {
            child = try ChildProcess(arguments, name: "broker-\(port)", executable: tape, stdoutToLog: true)
        }
        guard Loopback.waitForListener(port: port, timeout: startTimeout, while: { child.isRunning }) else {
            stop()
            throw TestSupportError("tape broker\(fileLimit.map { " (ulimit -n \($0))" } ?? "") did not start on \(address): \(log)")
        }
    }

    /// A broker under `ulimit -n fileLimit` with `--fsync always`, on `dataDir` (kept).
    static func limited(fileLimit: Int, dataDir: URL, extra: [String] = []) throws -> BrokerProcess {
        try BrokerProcess(extraArguments: ["--fsync", "always"] + extra, dataDir: dataDir, fileLimit: fileLimit, startTimeout: 60)
    }

    /// Descriptors the broker holds now.
    var openDescriptors: Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.pid)/fd")) ?? []).count
    }

    var log: String { child.stderr }

    /// SIGTERM, then SIGKILL after 10 s; returns the exit status.
    @discardableResult
    func stop() -> Int32 { child.terminate(timeout: 10) }

    /// Whether this build keeps data on disk (the in-memory stand-in says it does not).
    var isDurable: Bool { !log.contains("durable storage is not wired") }

    /// kill -9: no shutdown, no final fsync.
    func kill9() { child.kill9() }

    deinit {
        child.kill9()
        try? FileManager.default.removeItem(at: child.stderrURL)
        if ownsDataDir { try? FileManager.default.removeItem(at: dataDir) }
    }
}
