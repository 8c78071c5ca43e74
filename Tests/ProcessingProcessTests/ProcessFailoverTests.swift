import Foundation
import KafkaClient
import MarketData
import Processing
import TapeTestSupport
import XCTest

/// Failover of `tape process` (issue 13): a processor killed with SIGKILL and restarted at once,
/// with trades arriving, must have the candles topic equal the batch recomputation over the
/// trades topic again within 10 s of the restart — against `tape broker` (static membership,
/// KIP-345: the restart takes its old place, no rebalance) and against librdkafka's mock cluster
/// (which ignores group.instance.id: there the session timeout bounds it). Each run prints the
/// figure; `TAPE_FAILOVER_RUNS=5` measures five kill/restart rounds in a row (docs/benchmarks.md),
/// and `TAPE_FAILOVER_PROCESS_ARGS` adds `tape process` flags (e.g. `--group-instance-id none
/// --session-timeout-ms 45000`, the behaviour before static membership, which fails);
/// `TAPE_FAILOVER_KEEP_LOGS=1` keeps the processes' logs.
final class ProcessFailoverTests: XCTestCase {
    static let limit: TimeInterval = 10
    static let intervals = "15s,1m,1h"

    func testKillNineAndImmediateRestartOnTapeBroker() async throws {
        let seconds = try await measure(.tapeBroker)
        for s in seconds { XCTAssertLessThanOrEqual(s, Self.limit, "candles right again \(s) s after the restart (tape broker)") }
    }

    func testKillNineAndImmediateRestartOnMockCluster() async throws {
        let seconds = try await measure(.mockCluster)
        for s in seconds { XCTAssertLessThanOrEqual(s, Self.limit, "candles right again \(s) s after the restart (mock cluster)") }
    }

    /// The control: with dynamic membership the restarted processor is a new member, and the group
    /// waits until the dead one's session (6 s) expired — the measurement sees the difference.
    func testWithoutStaticMembershipTheRestartWaitsForTheDeadMembersSession() async throws {
        let seconds = try await measure(.tapeBroker, extra: ["--group-instance-id", "none"], runs: 1)
        XCTAssertGreaterThan(seconds[0], 4, "a dynamic member's restart waits for the old session (6 s, last heartbeat up to 1 s before the kill)")
    }

    /// A processor killed with candles in an open transaction (its commit interval is long here, so
    /// it has some): the restarted one, a dynamic member, takes the same transactional id, so its
    /// start aborts the dead one's transaction. read_committed readers then see the right candles at
    /// its first commit, not after the dead transaction's timeout (60 s) — with a new random id,
    /// this failed now and then in `testWithoutStaticMembership...` (150 candles still wrong at 60 s).
    func testARestartAbortsTheKilledProcessorsOpenTransactionAtOnce() async throws {
        let dir = try temporaryDirectory("open-transaction")
        let cluster = try await TestCluster.start(.tapeBroker, topics: ["tape.trades": 3, "tape.candles": 2], compacted: ["tape.candles"], logDirectory: dir)
        let bootstrap = cluster.bootstrap
        let args = [
            "process", "--brokers", bootstrap, "--intervals", Self.intervals, "--emit-interval", "200ms", "--commit-interval", "8s", "--db",
            dir.appendingPathComponent("candles.sqlite").path, "--progress", "0", "--log-level", "info", "--allowed-lateness", "3m",
            "--group-instance-id", "none",
        ]
        let intervals = try Self.intervals.split(separator: ",").map { try XCTUnwrap(CandleInterval(String($0))) }
        let seed = UInt64(Date().timeIntervalSince1970)
        let first = ProcessIntegrationTests.generatedTrades(seed: seed, count: 2_000, startTime: 1_661_123_520_000, part: 0)
        try await Kafka.produce(first, topic: "tape.trades", bootstrap: bootstrap)
        var process = try ChildProcess(args, name: "process-0", logDirectory: dir)
        let committed = try await Kafka.waitUntilCommitted(group: "tape-processor", topic: "tape.trades", partitions: 3, bootstrap: bootstrap, timeout: 60)
        XCTAssertTrue(committed, "the first commit; logs in \(dir.path)")
        // More trades: their candles go out every 200 ms, into the transaction that the next
        // commit, 8 s after the first, would end.
        let second = ProcessIntegrationTests.generatedTrades(
            seed: seed &+ 1, count: 1_000, startTime: first.map(\.time).max()! + 1_000, part: 1)
        try await Kafka.produce(second, topic: "tape.trades", bootstrap: bootstrap)
        var open: Int64 = 0
        let deadline = Date().addingTimeInterval(5)
        while open == 0 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            open = try await Kafka.openTransactionRecords(topic: "tape.candles", partitions: 2, bootstrap: bootstrap)
        }
        XCTAssertGreaterThan(open, 0, "candles in the open transaction; logs in \(dir.path)")
        XCTAssertTrue(process.isRunning, "the processor died; see \(process.stderrURL.path)")
        process.kill9()
        let restart = Date()
        process = try ChildProcess(args, name: "process-1", logDirectory: dir)
        let reference = try await Self.batchResult(intervals: intervals, bootstrap: bootstrap)
        var seconds: TimeInterval?
        var last: [String] = []
        while Date().timeIntervalSince(restart) < 45 {
            last = Contract.compare(try await Self.latestCandles(bootstrap: bootstrap), reference, source: "topic")
            if last.isEmpty {
                seconds = Date().timeIntervalSince(restart)
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let openAfter = try await Kafka.openTransactionRecords(topic: "tape.candles", partitions: 2, bootstrap: bootstrap)
        process.terminate()
        withExtendedLifetime(cluster) {}
        let converged = try XCTUnwrap(
            seconds,
            "\(last.count) candles still differ 45 s after the restart (\(openAfter) records in open transactions), first: \(last.prefix(3)); logs in \(dir.path)"
        )
        print(String(format: "open transaction of a killed processor: candles right %.2f s after the restart (%d records were in it)", converged, open))
        // The restart waits out the dead member's session (6 s), replays, and commits 8 s after it started.
        XCTAssertLessThan(converged, 25, "not the dead transaction's 60 s timeout; logs in \(dir.path)")
        try? FileManager.default.removeItem(at: dir)
    }

    /// Ctrl-C/SIGTERM leaves the group even as a static member (librdkafka would not), so another
    /// processor has the partitions at once instead of after the session timeout (6 s).
    func testGracefulStopHandsThePartitionsOverAtOnce() async throws {
        let dir = try temporaryDirectory("graceful")
        let cluster = try await TestCluster.start(.tapeBroker, topics: ["tape.trades": 4, "tape.candles": 1], compacted: ["tape.candles"], logDirectory: dir)
        let args = ["process", "--brokers", cluster.bootstrap, "--db", dir.appendingPathComponent("candles.sqlite").path, "--progress", "0"]
        let a = try ChildProcess(args, name: "a", logDirectory: dir)
        let aStarted = try await a.waitForLog("taken over", count: 4, timeout: 30)
        XCTAssertTrue(aStarted)
        let b = try ChildProcess(args, name: "b", logDirectory: dir)  // the next slot: another instance id
        let bStarted = try await b.waitForLog("taken over", count: 2, timeout: 30)
        XCTAssertTrue(bStarted, "b got its share; logs in \(dir.path)")
        XCTAssertTrue(a.stderr.contains(".0 (slot 0") && b.stderr.contains(".1 (slot 1"), "two instance ids")
        try await Task.sleep(for: .seconds(1))
        let stop = Date()
        XCTAssertEqual(a.terminate(), 0)
        let tookOver = try await b.waitForLog("taken over", count: 6, timeout: 20)
        XCTAssertTrue(tookOver, "b took over a's partitions; logs in \(dir.path)")
        let seconds = Date().timeIntervalSince(stop)
        print(String(format: "graceful stop: the other processor had the partitions %.2f s after SIGTERM", seconds))
        XCTAssertLessThan(seconds, 3, "not the 6 s session")
        b.terminate()
        withExtendedLifetime(cluster) {}
        try? FileManager.default.removeItem(at: dir)
    }

    /// The default instance id: the same after a restart, different for a processor beside it.
    func testDefaultInstanceIdsAreStableAcrossRestartsAndDistinctSideBySide() throws {
        let dir = try temporaryDirectory("instance")
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("candles.sqlite").path
        var first: ProcessorInstance? = try ProcessorInstance.claim(statePath: db, group: "g", host: "host-1")
        let firstID = try XCTUnwrap(first?.id)
        let beside = try ProcessorInstance.claim(statePath: db, group: "g", host: "host-1")
        XCTAssertEqual(first?.slot, 0)
        XCTAssertEqual(beside.slot, 1)
        XCTAssertNotEqual(beside.id, firstID)
        XCTAssertTrue(firstID.hasPrefix("tape-process.host-1.") && firstID.hasSuffix(".0"), firstID)
        XCTAssertTrue(ProcessorInstance.isValidID(firstID))
        // Another group, or another path, does not compete for the slots.
        XCTAssertEqual(try ProcessorInstance.claim(statePath: db, group: "other", host: "host-1").slot, 0)
        let elsewhere = try ProcessorInstance.claim(statePath: dir.appendingPathComponent("b.sqlite").path, group: "g", host: "host-1")
        XCTAssertEqual(elsewhere.slot, 0)
        XCTAssertNotEqual(elsewhere.id, firstID)
        // The first one ends (the lock goes with its descriptor, as with a killed process): a new
        // processor gets its slot and its id back.
        first = nil
        let restarted = try ProcessorInstance.claim(statePath: db, group: "g", host: "host-1")
        XCTAssertEqual(restarted.id, firstID)
        // A path spelled differently is the same state.
        withExtendedLifetime(restarted) {}
        let spelled = try ProcessorInstance.claim(statePath: dir.path + "/./candles.sqlite", group: "g", host: "host-1")
        XCTAssertEqual(spelled.slot, 2, "slots 0 and 1 are held")
        withExtendedLifetime((beside, restarted)) {}
        XCTAssertFalse(ProcessorInstance.isValidID("a/b"))
        XCTAssertFalse(ProcessorInstance.isValidID(""))
        XCTAssertFalse(ProcessorInstance.isValidID(String(repeating: "x", count: 250)))
    }

    /// Runs a processor against a fresh cluster, then `runs` times: more trades, wait until they are
    /// committed, kill -9, restart at once, more trades, and the seconds from the restart until the
    /// candles topic equals the batch recomputation (checked back to back).
    func measure(_ kind: ClusterKind, extra: [String] = [], runs: Int? = nil) async throws -> [TimeInterval] {
        let runs = runs ?? ProcessInfo.processInfo.environment["TAPE_FAILOVER_RUNS"].flatMap(Int.init) ?? 1
        let extra = extra + (ProcessInfo.processInfo.environment["TAPE_FAILOVER_PROCESS_ARGS"]?.split(separator: " ").map(String.init) ?? [])
        let dir = try temporaryDirectory("failover-\(kind)")
        let cluster = try await TestCluster.start(kind, topics: ["tape.trades": 3, "tape.candles": 2], compacted: ["tape.candles"], logDirectory: dir)
        let bootstrap = cluster.bootstrap
        let db = dir.appendingPathComponent("candles.sqlite")
        let args =
            [
                "process", "--brokers", bootstrap, "--intervals", Self.intervals, "--emit-interval", "300ms", "--db", db.path, "--progress", "0", "--log-level",
                "info", "--allowed-lateness", "3m",
            ]
            + extra
        let intervals = try Self.intervals.split(separator: ",").map { try XCTUnwrap(CandleInterval(String($0))) }
        let seed = UInt64(Date().timeIntervalSince1970)
        var part: UInt64 = 0
        var nextTime: Int64 = 1_661_123_520_000
        func produce(_ count: Int) async throws {
            let trades = ProcessIntegrationTests.generatedTrades(seed: seed &+ part, count: count, startTime: nextTime, part: part)
            part += 1
            nextTime = trades.map(\.time).max()! + 1_000
            try await Kafka.produce(trades, topic: "tape.trades", bootstrap: bootstrap)
        }

        try await produce(4_000)
        var process = try ChildProcess(args, name: "process-0", logDirectory: dir)
        var figures: [TimeInterval] = []
        for run in 1...runs {
            // Steady state: the running processor has everything committed.
            try await produce(1_000)
            let caughtUp = try await Kafka.waitUntilCommitted(group: "tape-processor", topic: "tape.trades", partitions: 3, bootstrap: bootstrap, timeout: 60)
            XCTAssertTrue(caughtUp, "run \(run): the processor did not catch up; logs in \(dir.path)")
            try await Task.sleep(for: .milliseconds(500))
            XCTAssertTrue(process.isRunning, "run \(run): the processor died; see \(process.stderrURL.path)")

            process.kill9()
            let restart = Date()
            process = try ChildProcess(args, name: "process-\(run)", logDirectory: dir)
            try await produce(1_000)  // the market goes on
            // When the new processor has its partitions (for the timeline printed with the logs kept).
            let restarted = process
            let takeover = Task { () -> TimeInterval? in
                while !Task.isCancelled && Date().timeIntervalSince(restart) < 60 {
                    if restarted.stderr.contains("taken over") { return Date().timeIntervalSince(restart) }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return nil
            }
            var checks = 0
            var timeline: [String] = []
            var last: [String] = []
            var figure: TimeInterval?
            // The trades are all there now: the batch result is computed once, then only the
            // candles topic is read, check after check.
            let reference = try await Self.batchResult(intervals: intervals, bootstrap: bootstrap)
            while Date().timeIntervalSince(restart) < 60 {
                let problems = Contract.compare(try await Self.latestCandles(bootstrap: bootstrap), reference, source: "topic")
                checks += 1
                timeline.append(String(format: "%.2f:%d", Date().timeIntervalSince(restart), problems.count))
                if problems.isEmpty {
                    figure = Date().timeIntervalSince(restart)
                    break
                }
                last = problems
                try await Task.sleep(for: .milliseconds(100))
            }
            let seconds = figure ?? .infinity
            figures.append(seconds)
            print(
                String(
                    format: "failover %@ run %d: candles equal the batch result %.2f s after the restart (%d checks)%@", kind.rawValue, run, seconds,
                    checks, extra.isEmpty ? "" : " with \(extra.joined(separator: " "))"))
            takeover.cancel()
            if ProcessInfo.processInfo.environment["TAPE_FAILOVER_KEEP_LOGS"] != nil {
                let taken = await takeover.value.map { String(format: "%.2f s", $0) } ?? "-"
                print("  partitions taken over after \(taken); checks (s:differences) \(timeline.suffix(12).joined(separator: " "))")
            }
            if figure == nil { XCTFail("run \(run): still \(last.count) differences after 60 s, first: \(last.prefix(5)); logs in \(dir.path)") }
        }
        let sorted = figures.sorted()
        print(
            "failover \(kind.rawValue): runs \(figures.map { String(format: "%.2f", $0) }.joined(separator: ", ")) s; median "
                + String(format: "%.2f", sorted[sorted.count / 2]) + " s")
        process.terminate()
        withExtendedLifetime(cluster) {}
        if figures.allSatisfy({ $0 <= Self.limit }) && ProcessInfo.processInfo.environment["TAPE_FAILOVER_KEEP_LOGS"] == nil {
            try? FileManager.default.removeItem(at: dir)
        } else {
            print("failover \(kind.rawValue): logs in \(dir.path)")
        }
        return figures
    }

    /// The batch recomputation over every trade in tape.trades (3 partitions).
    static func batchResult(intervals: [CandleInterval], bootstrap: String) async throws -> [String: Candle] {
        let records = try await Kafka.readAll(topic: "tape.trades", partitions: 3, bootstrap: bootstrap)
        var sequenced: [BatchCandles.SequencedTrade] = []
        for m in records.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
            guard let value = m.value, let trade = try? Trade(json: value) else { continue }
            sequenced.append(.init(trade: trade, sequence: m.offset))
        }
        return BatchCandles.compute(sequenced, intervals: intervals)
    }

    /// The latest candle per key in tape.candles (2 partitions).
    static func latestCandles(bootstrap: String) async throws -> [String: Candle] {
        var latest: [String: Candle] = [:]
        for m in try await Kafka.readAll(topic: "tape.candles", partitions: 2, bootstrap: bootstrap) {
            guard let value = m.value, let candle = try? Candle(json: value) else { continue }
            latest[candle.kafkaKey] = candle
        }
        return latest
    }
}
