import Foundation
import Logging

/// When appended data is forced to stable storage (`--fsync`).
public enum FsyncPolicy: Sendable, Equatable, CustomStringConvertible {
    /// An append is acknowledged only after its data is fsynced. Concurrent appenders share one
    /// fsync per log (group commit).
    case always
    /// A background flusher fsyncs logs with new data every `milliseconds`.
    case interval(milliseconds: Int64)
    /// Never fsync while running; the OS writes back when it likes. Shutdown still syncs.
    case never

    /// Parses `always`, `never`, `interval` (1000 ms) or `interval:<ms>`.
    public init?(argument: String) {
        switch argument {
        case "always": self = .always
        case "never": self = .never
        case "interval": self = .interval(milliseconds: 1000)
        default:
            guard argument.hasPrefix("interval:"), let ms = Int64(argument.dropFirst("interval:".count)), ms > 0
            else { return nil }
            self = .interval(milliseconds: ms)
        }
    }

    public var description: String {
        switch self {
        case .always: "always"
        case .never: "never"
        case .interval(let ms): "interval:\(ms)"
        }
    }
}

/// Something a flusher can make durable.
protocol Syncable: AnyObject, Sendable {
    func sync() throws
}

extension Log: Syncable {}

/// Makes logs durable following an `FsyncPolicy`, on one dedicated thread (fsync blocks, so it must
/// not run on Swift's cooperative pool).
///
/// Group commit (`.always`): callers register "make X durable, then resume me". The thread takes
/// everything registered so far, syncs each distinct log once, resumes all those waiters, and repeats;
/// whatever arrives while an fsync runs is served by the next round, so N concurrent appenders cost
/// far fewer than N fsyncs. `.interval`: the thread wakes every interval and syncs the logs marked dirty.
final class Flusher: @unchecked Sendable {
    let policy: FsyncPolicy
    private let condition = NSCondition()
    private var dirty: [ObjectIdentifier: any Syncable] = [:]
    private var waiters: [(ObjectIdentifier, CheckedContinuation<Void, any Error>)] = []
    private var stopping = false
    private var stopped = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []
    private var _syncCalls = 0
    private var _rounds = 0
    private let logger: Logger

    init(policy: FsyncPolicy, name: String, logger: Logger) {
        self.policy = policy
        self.logger = logger
        if case .never = policy {
            stopped = true
            return
        }
        let thread = Thread { [self] in self.run() }
        thread.name = name
        thread.start()
    }

    /// Number of `sync()` calls made (one per distinct log per round).
    var syncCalls: Int {
        condition.lock()
        defer { condition.unlock() }
        return _syncCalls
    }

    /// Number of flush rounds.
    var rounds: Int {
        condition.lock()
        defer { condition.unlock() }
        return _rounds
    }

    /// `.interval`: remember that `target` has data to flush at the next tick.
    func markDirty(_ target: any Syncable) {
        condition.lock()
        if !stopped { dirty[ObjectIdentifier(target)] = target }
        condition.unlock()
    }

    /// Returns once everything written to `target` before this call is durable (group commit).
    func waitUntilDurable(_ target: any Syncable) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            condition.lock()
            if stopped {
                condition.unlock()
                do {
                    try target.sync()
                    condition.lock()
                    _syncCalls += 1
                    condition.unlock()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
                return
            }
            let id = ObjectIdentifier(target)
            dirty[id] = target
            waiters.append((id, continuation))
            condition.signal()
            condition.unlock()
        }
    }

    private func run() {
        condition.lock()
        while true {
            switch policy {
            case .always, .never:
                while dirty.isEmpty && !stopping { condition.wait() }
            case .interval(let ms):
                let deadline = Date(timeIntervalSinceNow: Double(ms) / 1000)
                // Waiters (a topic's flush.messages / flush.ms) are served at once, not at the tick.
                while !stopping && waiters.isEmpty && condition.wait(until: deadline) {}
            }
            let work = dirty
            let resumed = waiters
            dirty = [:]
            waiters = []
            let exiting = stopping
            condition.unlock()

            var failures: [ObjectIdentifier: any Error] = [:]
            for (id, target) in work {
                do {
                    try target.sync()
                } catch {
                    failures[id] = error
                    logger.error("fsync failed", metadata: ["error": "\(error)"])
                }
            }
            for (id, continuation) in resumed {
                if let error = failures[id] {
                    continuation.resume(throwing: error)
                } else {
                    continuation.resume()
                }
            }
            condition.lock()
            _syncCalls += work.count
            if !work.isEmpty { _rounds += 1 }
            if exiting && dirty.isEmpty && waiters.isEmpty { break }
        }
        stopped = true
        let exits = exitWaiters
        exitWaiters = []
        condition.unlock()
        for e in exits { e.resume() }
    }

    /// Tells the thread to finish (after serving what is pending) without waiting for it.
    func stopSoon() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    /// Flushes what is pending and stops the thread. Later waits sync inline.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            stopping = true
            if stopped {
                condition.unlock()
                continuation.resume()
                return
            }
            exitWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }
}
