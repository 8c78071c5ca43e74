import Logging
import MarketData
import Testing

@testable import Processing

private typealias Machine = CandleProcessorStateMachine

/// One minute candles, no grace, an emission every second, a commit every `commitInterval` ms.
private func machine(commitInterval: Int64 = 1_000, now: Int64 = 0, stopAt: [Int32: Int64]? = nil) -> Machine {
    let aggregation = CandleAggregatorConfiguration(
        intervals: [CandleInterval("1m")!], graceMilliseconds: 0, emitIntervalMilliseconds: 1_000, allowedLatenessMilliseconds: 3_600_000)
    return Machine(
        configuration: .init(aggregation: aggregation, tickMilliseconds: 100, commitIntervalMilliseconds: commitInterval, stopAtOffsets: stopAt),
        now: now)
}

/// A `tape.trades` record value: trade `id` at `time` (ms).
private func trade(_ id: Int64, at time: Int64) -> [UInt8] {
    Trade(
        exchange: .poloniex, symbol: Symbol(normalizing: "BTC_USDT"), nativeSymbol: "BTC_USDT", tradeId: "\(id)",
        price: d("100"), quantity: d("1"), side: .buy, time: time, receivedAt: time * 1000
    ).jsonBytes
}

/// Trades at `offsets`, trade id = offset, one second apart from time 0 (all in the first minute).
private func trades(_ offsets: ClosedRange<Int64>) -> [(Int64, [UInt8]?)] {
    offsets.map { ($0, trade($0, at: $0 * 1_000)) }
}

/// Hands a run of records (offset, value; nil: no value) of one partition to the state machine.
private func deliver(_ machine: inout Machine, partition: Int32 = 0, _ records: [(Int64, [UInt8]?)], now: Int64 = 500) -> Machine.RecordsOutcome {
    var bytes: [UInt8] = []
    var spans: [(offset: Int64, range: Range<Int>?)] = []
    for (offset, value) in records {
        guard let value else {
            spans.append((offset, nil))
            continue
        }
        spans.append((offset, bytes.count..<bytes.count + value.count))
        bytes += value
    }
    return bytes.withUnsafeBufferPointer { buffer in
        let run = spans.map { span in Machine.InputRecord(offset: span.offset, value: span.range.map { UnsafeBufferPointer(rebasing: buffer[$0]) }) }
        return machine.recordsArrived(partition: partition, records: run, now: now)
    }
}

private func handled(_ outcome: Machine.RecordsOutcome) -> [Machine.Action] {
    guard case .handled(let actions) = outcome else {
        Issue.record("expected the records to be handled, got \(outcome)")
        return []
    }
    return actions
}

private func produced(_ actions: [Machine.Action]) -> [(partition: Int32, epoch: UInt64, candles: [Candle])] {
    actions.compactMap {
        if case .produce(let partition, let epoch, let candles) = $0 { return (partition, epoch, candles) }
        return nil
    }
}

private func commits(_ actions: [Machine.Action]) -> [Machine.Commit] {
    actions.compactMap {
        if case .commit(let commit) = $0 { return commit }
        return nil
    }
}

/// A checkpoint as the driver runs it: its candles, then (once they are queued) its commit.
private func emitAndCommit(_ machine: inout Machine, now: Int64, final: Bool, commitInFlight: Bool) -> [Machine.Action] {
    machine.checkpointDue(now: now, final: final) + machine.checkpointProduced(commitInFlight: commitInFlight)
}

/// Whether an action retires `partition` (any partition: nil).
private func isRetirement(of partition: Int32?) -> (Machine.Action) -> Bool {
    { action in
        guard case .retired(let retired, _) = action else { return false }
        return partition == nil || partition == retired
    }
}

private func at(_ partition: Int32, _ offset: Int64) -> Machine.PartitionOffset { .init(partition: partition, offset: offset) }

private func offsets(epoch: UInt64, emitted: Int64, replay: Int64, first: Int64 = 0) -> Machine.CommittedOffsets {
    .init(epoch: epoch, emittedThrough: emitted, replayFrom: replay, firstInLog: first)
}

@Suite("CandleProcessor's recovery protocol, without a broker")
struct CandleProcessorStateMachineTests {
    @Test("assignment, then replay from the replay offset without emitting until the emitted offset")
    func assignmentThenReplay() {
        var m = machine()
        #expect(m.partitionsAssigned([0]) == [])
        #expect(m.partitions[0] == .awaitingRecovery)
        #expect(m.partitionsAwaitingRecovery == [0])
        // Records before the committed offsets are read are not used.
        let early = deliver(&m, trades(10...12))
        #expect(early == .recoverFirst([0]))
        #expect(m.aggregators[0] == nil)

        let actions = m.recoveryPointsRead([0: offsets(epoch: 7, emitted: 10, replay: 4)])
        #expect(
            actions == [
                .log(.info, "Partition starts", ["partition": "0", "replayFrom": "4", "emitFrom": "10"]),
                .announce("partition 0 taken over: replaying from offset 4, emitting from offset 10"),
                .seek([at(0, 4)]),
            ])
        #expect(m.partitions[0] == .seeking(epoch: 7, .init(replayFrom: 4, emitFrom: 10)))
        #expect(m.position(of: 0) == 4)

        // Replay up to the emitted offset: rebuilt, nothing emitted, the partition takes no part
        // in the commit.
        let replayed = handled(deliver(&m, trades(4...8)))
        #expect(replayed == [])
        #expect(m.partitions[0] == .running(epoch: 7))
        #expect(m.aggregators[0]?.isSuppressing == true)
        var checkpoint = emitAndCommit(&m, now: 1_000, final: false, commitInFlight: false)
        #expect(produced(checkpoint).isEmpty)
        #expect(commits(checkpoint) == [Machine.Commit(emittedThrough: [], replayFrom: [], epochs: [0: 7], final: false)])

        // From the emitted offset on, the window goes out with every replayed trade in it.
        let fresh = handled(deliver(&m, trades(9...12)))
        #expect(fresh == [])
        checkpoint = emitAndCommit(&m, now: 2_000, final: false, commitInFlight: false)
        let out = produced(checkpoint)
        #expect(out.count == 1)
        #expect(out.first?.partition == 0 && out.first?.epoch == 7)
        #expect(out.first?.candles.map(\.trades) == [9])
        #expect(commits(checkpoint) == [Machine.Commit(emittedThrough: [at(0, 13)], replayFrom: [at(0, 4)], epochs: [0: 7], final: false)])
    }

    @Test("a revocation in the middle of a replay drops the partition's state; given back, it starts over under a new epoch")
    func revocationMidReplay() {
        var m = machine()
        _ = m.partitionsAssigned([0, 1])
        _ = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: 10, replay: 4), 1: offsets(epoch: 2, emitted: 0, replay: 0)])
        _ = deliver(&m, trades(4...6))
        #expect(m.aggregators[0]?.isSuppressing == true)

        let actions = m.partitionsRevoked([0])
        #expect(actions.count == 3)
        #expect(actions.first == .announce("partitions [0] given up"))
        if case .retired(0, let counters) = actions[1] { #expect(counters.trades == 3) } else { Issue.record("no retirement: \(actions)") }
        #expect(actions.last == .publishCounters(ProcessingCounters()))
        #expect(m.partitions[0] == nil)
        #expect(m.assignedPartitions == [1])

        // Late records of the revoked partition are ignored; nothing of it is emitted or committed.
        let late = handled(deliver(&m, trades(7...12)))
        #expect(late == [])
        let checkpoint = emitAndCommit(&m, now: 1_000, final: false, commitInFlight: false)
        #expect(produced(checkpoint).isEmpty)
        #expect(commits(checkpoint) == [Machine.Commit(emittedThrough: [], replayFrom: [], epochs: [:], final: false)])

        // Given back: set up again from the committed offsets, under the new assignment's epoch.
        _ = m.partitionsAssigned([0])
        #expect(m.partitions[0] == .awaitingRecovery)
        _ = m.recoveryPointsRead([0: offsets(epoch: 3, emitted: 10, replay: 4)])
        #expect(m.partitions[0] == .seeking(epoch: 3, .init(replayFrom: 4, emitFrom: 10)))
    }

    @Test("a batch arriving during replay: records from before the seek are dropped until the replay start arrives")
    func batchDuringReplay() {
        var m = machine()
        _ = m.partitionsAssigned([0])
        _ = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: 10, replay: 4)])
        // Fetched from the committed offset before the seek took effect.
        let beforeSeek = handled(deliver(&m, trades(10...12)))
        #expect(beforeSeek == [])
        #expect(m.partitions[0] == .seeking(epoch: 1, .init(replayFrom: 4, emitFrom: 10)))
        // The seek's records: the aggregator starts at exactly the replay start.
        let fromSeek = handled(deliver(&m, trades(3...6)))
        #expect(fromSeek == [])
        #expect(m.aggregators[0]?.position == 7)
        #expect(m.aggregators[0]?.counters.trades == 3)
        // More records from before the seek, delivered after it: an offset jump. The state is
        // dropped and the partition set up again.
        let actions = handled(deliver(&m, trades(11...12)))
        #expect(
            actions.first
                == .log(
                    .notice, "Offset gap in the input (records from before a seek); setting the partition up again",
                    ["partition": "0", "expected": "7", "got": "11"]))
        #expect(actions.contains(where: isRetirement(of: 0)))
        #expect(m.partitions[0] == .awaitingRecovery)
        let again = deliver(&m, trades(11...12))
        #expect(again == .recoverFirst([0]))
    }

    @Test("an offset jump that comes back after three resets is accepted")
    func persistentGapAccepted() {
        var m = machine()
        _ = m.partitionsAssigned([0])
        for _ in 0..<3 {
            _ = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: 0, replay: 0)])
            _ = deliver(&m, trades(0...1))
            _ = deliver(&m, trades(5...5))
            #expect(m.partitions[0] == .awaitingRecovery)
        }
        _ = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: 0, replay: 0)])
        _ = deliver(&m, trades(0...1))
        let jump = handled(deliver(&m, trades(5...5)))
        #expect(jump == [])
        #expect(m.aggregators[0]?.position == 6)
    }

    @Test("checkpoint due: emission every emit interval, commits every commit interval, one at a time")
    func checkpointDue() {
        var m = machine(commitInterval: 3_000)
        _ = m.partitionsAssigned([0])
        _ = m.recoveryPointsRead([0: offsets(epoch: 5, emitted: -1, replay: -1)])
        #expect(m.waitMilliseconds(now: 200) == 100)
        _ = deliver(&m, trades(0...2))
        // Records applied: the loop wakes for the emission, not a tick later.
        #expect(m.waitMilliseconds(now: 950) == 50)
        #expect(!m.isCheckpointDue(now: 999))
        #expect(m.isCheckpointDue(now: 1_000))

        var actions = emitAndCommit(&m, now: 1_000, final: false, commitInFlight: false)
        #expect(produced(actions).map(\.candles.count) == [1])
        #expect(commits(actions).isEmpty)  // the commit interval has not passed
        _ = deliver(&m, trades(3...3))
        actions = emitAndCommit(&m, now: 3_000, final: false, commitInFlight: true)
        #expect(produced(actions).map(\.candles.count) == [1])
        #expect(commits(actions).isEmpty)  // the previous commit is still running
        actions = emitAndCommit(&m, now: 4_000, final: false, commitInFlight: false)
        #expect(produced(actions).isEmpty)
        #expect(commits(actions) == [Machine.Commit(emittedThrough: [at(0, 4)], replayFrom: [at(0, 0)], epochs: [0: 5], final: false)])
        // The final checkpoint commits whatever the interval and a running commit.
        actions = emitAndCommit(&m, now: 4_001, final: true, commitInFlight: true)
        #expect(commits(actions) == [Machine.Commit(emittedThrough: [at(0, 4)], replayFrom: [at(0, 0)], epochs: [0: 5], final: true)])
        // The commit comes only once the checkpoint's candles are queued, and only once.
        _ = deliver(&m, trades(4...4))
        let emission = m.checkpointDue(now: 8_000, final: false)
        #expect(produced(emission).map(\.candles.count) == [1])
        #expect(commits(emission).isEmpty)
        let commit = m.checkpointProduced(commitInFlight: false)
        #expect(commit == [.commit(Machine.Commit(emittedThrough: [at(0, 5)], replayFrom: [at(0, 0)], epochs: [0: 5], final: false))])
        let again = m.checkpointProduced(commitInFlight: false)
        #expect(again == [])
    }

    @Test("a fenced member (every partition lost) and a failed producer: nothing more goes out")
    func fencedAndFailed() {
        var m = machine()
        _ = m.partitionsAssigned([0, 1])
        _ = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: -1, replay: -1), 1: offsets(epoch: 2, emitted: -1, replay: -1)])
        _ = deliver(&m, partition: 0, trades(0...2))
        _ = deliver(&m, partition: 1, trades(0...1))

        let actions = m.partitionsLost(reason: "fenced")
        #expect(actions.first == .log(.error, "Every partition is lost; stopping", ["reason": "fenced"]))
        #expect(actions.filter(isRetirement(of: nil)).count == 2)
        #expect(m.assignedPartitions.isEmpty)
        let afterLoss = handled(deliver(&m, partition: 0, trades(3...4)))
        #expect(afterLoss == [])
        let afterLossCheckpoint = emitAndCommit(&m, now: 1_000, final: false, commitInFlight: false)
        #expect(produced(afterLossCheckpoint).isEmpty)

        // Output failed: not even a final checkpoint.
        var failed = machine()
        _ = failed.partitionsAssigned([0])
        _ = failed.recoveryPointsRead([0: offsets(epoch: 1, emitted: -1, replay: -1)])
        _ = deliver(&failed, trades(0...2))
        failed.outputFailed()
        #expect(failed.tick(now: 120_000) == [])
        let finalAfterFailure = emitAndCommit(&failed, now: 120_000, final: true, commitInFlight: false)
        #expect(finalAfterFailure == [])
    }

    @Test("output of an assignment that was revoked is refused by the ownership table (the epoch in every action)")
    func fencedByEpoch() {
        let ownership = Ownership()
        ownership.assign([0])
        let first = ownership.epoch(of: 0)!
        var m = machine()
        _ = m.partitionsAssigned([0])
        _ = m.recoveryPointsRead([0: offsets(epoch: first, emitted: -1, replay: -1)])
        _ = deliver(&m, trades(0...2))
        let out = produced(emitAndCommit(&m, now: 1_000, final: false, commitInFlight: false))
        #expect(out.map(\.epoch) == [first])
        // Revoked and given back before the candles went out: the old epoch's output is refused.
        ownership.revoke([0])
        ownership.assign([0])
        #expect(ownership.ifOwned(0, epoch: first) { true } == nil)
        #expect(ownership.ifOwned(0, epoch: ownership.epoch(of: 0)!) { true } == true)
    }

    @Test("a restart from a checkpoint replays from the committed replay offset and emits the same candle")
    func restartFromCheckpoint() {
        // The first owner: trades 0...5, a commit, then it dies.
        var first = machine()
        _ = first.partitionsAssigned([0])
        _ = first.recoveryPointsRead([0: offsets(epoch: 1, emitted: -1, replay: -1)])
        _ = deliver(&first, trades(0...5))
        let checkpoint = emitAndCommit(&first, now: 1_000, final: false, commitInFlight: false)
        #expect(produced(checkpoint).first?.candles.map(\.trades) == [6])
        let commit = commits(checkpoint).first
        #expect(commit == Machine.Commit(emittedThrough: [at(0, 6)], replayFrom: [at(0, 0)], epochs: [0: 1], final: false))

        // The next owner starts from those committed offsets.
        var next = machine(now: 5_000)
        _ = next.partitionsAssigned([0])
        let actions = next.recoveryPointsRead([0: offsets(epoch: 1, emitted: 6, replay: 0)])
        #expect(actions.last == .seek([at(0, 0)]))
        _ = deliver(&next, trades(0...8), now: 5_500)
        let after = emitAndCommit(&next, now: 6_000, final: false, commitInFlight: false)
        #expect(produced(after).first?.candles.map(\.trades) == [9])
        #expect(commits(after) == [Machine.Commit(emittedThrough: [at(0, 9)], replayFrom: [at(0, 0)], epochs: [0: 1], final: false)])
    }

    @Test("recovery points from the committed offsets of both groups")
    func recoveryPoints() {
        /// "replayFrom/emitFrom", and "deleted N" when retention deleted the needed replay start.
        func point(emitted: Int64, replay: Int64, first: Int64) -> String {
            let (point, deleted) = Machine.recoveryPoint(offsets(epoch: 1, emitted: emitted, replay: replay, first: first))
            return "\(point.replayFrom)/\(point.emitFrom)" + (deleted.map { " deleted \($0)" } ?? "")
        }
        // Nothing committed: everything still in the log, emitted as it comes.
        #expect(point(emitted: -1, replay: -1, first: 5) == "5/5")
        #expect(point(emitted: 10, replay: 4, first: 0) == "4/10")
        // A replay offset after the emitted one (never committed so) does not skip records.
        #expect(point(emitted: 10, replay: 12, first: 0) == "10/10")
        // The replay offset lost: replay everything still in the log.
        #expect(point(emitted: 10, replay: -1, first: 2) == "2/10")
        // Deleted by retention: from the first offset still there, with a warning.
        #expect(point(emitted: 10, replay: 4, first: 6) == "6/10 deleted 4")

        var m = machine()
        _ = m.partitionsAssigned([0])
        let actions = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: 10, replay: 4, first: 6)])
        #expect(
            actions.first
                == .log(
                    .warning, "Trades needed for recovery were deleted by retention; candles of the oldest windows may be incomplete",
                    ["partition": "0", "needed": "4", "first": "6"]))
        // Nothing to replay: no seek.
        var fresh = machine()
        _ = fresh.partitionsAssigned([0])
        let freshActions = fresh.recoveryPointsRead([0: offsets(epoch: 1, emitted: 7, replay: 7)])
        #expect(freshActions.count == 2)
        #expect(freshActions.last == .announce("partition 0 taken over: replaying from offset 7, emitting from offset 7"))
    }

    @Test("a failed seek leaves the partitions to be set up again")
    func seekFailed() {
        var m = machine()
        _ = m.partitionsAssigned([0, 1])
        _ = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: 10, replay: 4)])
        #expect(m.partitionsAwaitingRecovery == [1])
        m.seekFailed([at(0, 4)])
        #expect(m.partitionsAwaitingRecovery == [0, 1])
        #expect(
            m.recoveryFailed(error: "timed out")
                == [.log(.notice, "Cannot set up partitions yet; retrying", ["partitions": "[0, 1]", "error": "timed out"])])
    }

    @Test("rejected records are dead-lettered under their epoch, but not when replayed")
    func deadLetters() {
        var m = machine()
        _ = m.partitionsAssigned([0])
        _ = m.recoveryPointsRead([0: offsets(epoch: 4, emitted: 2, replay: 0)])
        let actions = handled(deliver(&m, [(0, Array("junk".utf8)), (1, trade(1, at: 1_000)), (2, Array("nope".utf8)), (3, nil)]))
        let letters = actions.compactMap { (action: Machine.Action) -> Machine.DeadLetter? in
            guard case .deadLetter(let letter) = action else { return nil }
            return letter
        }
        #expect(letters.map(\.offset) == [2, 3])
        #expect(letters.map(\.epoch) == [4, 4])
        #expect(letters.map(\.value) == [Array("nope".utf8), []])
        #expect(letters.map(\.rejection.kind) == [.notATrade, .notATrade])
        #expect(m.aggregators[0]?.position == 4)
    }

    @Test("stop offsets: reached once every listed partition was read up to them")
    func stopOffsets() {
        var m = machine(stopAt: [0: 3, 1: 0])
        _ = m.partitionsAssigned([0, 1])
        _ = m.recoveryPointsRead([0: offsets(epoch: 1, emitted: -1, replay: -1), 1: offsets(epoch: 2, emitted: -1, replay: -1)])
        #expect(!m.reachedStopOffsets)
        _ = deliver(&m, trades(0...1))
        #expect(!m.reachedStopOffsets)
        _ = deliver(&m, trades(2...2))
        #expect(m.reachedStopOffsets)  // partition 1 is empty: its replay start is the stop offset
    }
}
