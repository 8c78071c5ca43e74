import Foundation
import KafkaClient
import Logging
import MarketData

/// The driver of `CandleProcessorStateMachine` inside `CandleProcessor.run`: it waits for records
/// and ticks, feeds them and the consumer's rebalances to the state machine, and carries out the
/// actions it returns against the two consumers, the producer, the ownership table (fencing) and
/// the candle store. The decisions are the state machine's.
struct CandleProcessorLoop {
    typealias Machine = CandleProcessorStateMachine

    let processor: CandleProcessor
    let consumer: KafkaConsumer
    let replayOffsets: KafkaConsumer
    let producer: KafkaProducer
    let ownership: Ownership
    let failures: Locked<(count: Int, last: String)>
    let rebalances: Locked<[RebalanceEvent]>
    /// Set when checkpoints are transactions (`CandleProcessorConfiguration.transactions`).
    let transaction: CheckpointTransaction?

    var configuration: CandleProcessorConfiguration { processor.configuration }
    var logger: Logger { processor.logger }

    var machine: Machine
    /// The latest update of each window queued since the last commit, per partition: only the
    /// newest value of a window reaches the candle store (with a short emit interval a window is
    /// emitted hundreds of times between two commits).
    var pendingStore: [Int32: [CandleWindowID: Candle]] = [:]
    /// The commit running beside the loop (see `execute(.commit)`), and whether it has ended.
    var pendingCommit: (task: Task<Void, any Error>, done: Locked<Bool>)?
    /// When the input lag was last measured (`processor.lag`), nil before the first time.
    var lagMeasuredAt: Int64?

    init(
        processor: CandleProcessor, consumer: KafkaConsumer, replayOffsets: KafkaConsumer, producer: KafkaProducer,
        ownership: Ownership, failures: Locked<(count: Int, last: String)>, rebalances: Locked<[RebalanceEvent]>,
        transaction: CheckpointTransaction? = nil
    ) {
        self.transaction = transaction
        self.processor = processor
        self.consumer = consumer
        self.replayOffsets = replayOffsets
        self.producer = producer
        self.ownership = ownership
        self.failures = failures
        self.rebalances = rebalances
        machine = Machine(configuration: Machine.Configuration(processor.configuration), now: processor.clock())
    }

    private enum Wake: Sendable {
        case batch(PackedBatch)
        case end
        case timeout
    }

    /// The next batch, or `.timeout` after `milliseconds` without one.
    private func nextWake(milliseconds: Int64) async throws -> [Wake] {
        let batches = consumer.packedBatches
        return try await withThrowingTaskGroup(of: Wake?.self) { group in
            group.addTask {
                var iterator = batches.makeAsyncIterator()
                do {
                    if let batch = try await iterator.next() { return .batch(batch) }
                    return .end
                } catch is CancellationError {
                    return nil
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(milliseconds))
                return .timeout
            }
            var wakes: [Wake] = []
            if let first = try await group.next(), let first { wakes.append(first) }
            group.cancelAll()
            while let next = try await group.next() {
                if let next { wakes.append(next) }
            }
            return wakes
        }
    }

    /// Runs until cancelled, the consumer stops (an error), output fails (an error), or
    /// `stopAtOffsets` is reached.
    mutating func run() async throws {
        do {
            try await loop()
        } catch let error where !(error is CancellationError) {
            machine.outputFailed()
            throw error
        }
    }

    private mutating func loop() async throws {
        while true {
            try Task.checkCancellation()
            // Wait for input, but no longer than until the next emission is due: trades handled
            // since the last checkpoint go out one emit interval after it, not whenever the next
            // batch or tick happens to wake the loop.
            let wait = machine.waitMilliseconds(now: processor.clock())
            let wakes = wait > 0 ? try await nextWake(milliseconds: wait) : [Wake.timeout]
            try await applyRebalances()
            let awaiting = machine.partitionsAwaitingRecovery
            if !awaiting.isEmpty { await recover(awaiting, forRecordsOf: nil) }
            var ended = false
            for wake in wakes {
                switch wake {
                case .batch(let batch): try await handle(batch)
                case .end: ended = true
                case .timeout: break
                }
            }
            let now = processor.clock()
            if machine.isTickDue(now: now) {
                // A gap found or repaired changes `complete` of the windows it overlaps.
                try await execute(machine.tick(now: now, gaps: processor.gaps?.takeChanges() ?? []))
            }
            if machine.isCheckpointDue(now: now) { try await checkpoint(final: false) }
            if machine.isProgressDue(now: now) { await progress(now: now) }
            if lagMeasuredAt.map({ let d = now.subtractingReportingOverflow($0); return d.overflow || !(0..<5_000).contains(d.partialValue) }) ?? true {
                lagMeasuredAt = now
                processor.measureLagInBackground(
                    consumer: consumer, positions: machine.assignedPartitions.prefix(256).map { ($0, machine.position(of: $0)) })
            }
            if ended { throw ProcessingError(code: .consumerFailed, message: "The consumer stopped.") }
            if machine.reachedStopOffsets { return }
        }
    }

    private mutating func applyRebalances() async throws {
        let events = rebalances.withLock { events in
            defer { events.removeAll() }
            return events
        }
        let topic = configuration.inputTopic
        for event in events {
            switch event {
            case .assigned(let tps):
                try await execute(machine.partitionsAssigned(tps.filter { $0.topic == topic }.map(\.partition)))
            case .revoked(let tps):
                try await execute(machine.partitionsRevoked(tps.filter { $0.topic == topic }.map(\.partition)))
            case .error(let message):
                try await execute(machine.rebalanceFailed(message))
            case .lost(let reason):
                try await execute(machine.partitionsLost(reason: "\(reason)"))
            }
        }
    }

    private mutating func handle(_ batch: PackedBatch) async throws {
        let now = processor.clock()
        processor.markActive(end: false)
        let records = batch.records
        var index = 0
        while index < records.count {
            // A run of records of one partition goes to the state machine at once.
            let partition = records[index].partition
            var end = index + 1
            while end < records.count && records[end].partition == partition { end += 1 }
            defer { index = end }
            guard batch.topics[Int(records[index].topic)] == configuration.inputTopic else { continue }
            var outcome = deliver(batch, index..<end, partition: partition, now: now)
            if case .recoverFirst(let awaiting) = outcome {
                await recover(awaiting, forRecordsOf: partition)
                outcome = deliver(batch, index..<end, partition: partition, now: now)
            }
            // Still not set up (the broker is busy): these records are dropped; the partition is
            // read again from its replay start once it is.
            if case .handled(let actions) = outcome { try await execute(actions) }
        }
    }

    private mutating func deliver(_ batch: PackedBatch, _ range: Range<Int>, partition: Int32, now: Int64) -> Machine.RecordsOutcome {
        let records = batch.records
        return batch.bytes.withUnsafeBufferPointer { bytes in
            let run = records[range].lazy.map { record in
                Machine.InputRecord(
                    offset: record.offset,
                    value: record.valueLength < 0
                        ? nil : UnsafeBufferPointer(rebasing: bytes[Int(record.valueStart)..<Int(record.valueStart) + Int(record.valueLength)]))
            }
            return machine.recordsArrived(partition: partition, records: run, now: now)
        }
    }

    /// Reads the committed offsets of partitions awaiting them (one request per group for all),
    /// and carries out what the state machine makes of them (the seek to the replay starts). A
    /// failure is logged; it is retried on the next wake.
    private mutating func recover(_ partitions: [Int32], forRecordsOf partition: Int32?) async {
        do {
            // The assignment each partition is owned under, taken before its committed offsets are
            // read: if it is revoked (and maybe given back) meanwhile, the epoch no longer matches
            // and this state never emits or commits. A partition not owned (its revocation is still
            // to be applied) is left awaiting.
            var epochs: [Int32: UInt64] = [:]
            for p in partitions { epochs[p] = ownership.epoch(of: p) }
            try await execute(machine.recoveryPointsRead(try await committedOffsets(epochs)))
        } catch {
            try? await execute(machine.recoveryFailed(error: "\(error)", partition: partition))
        }
    }

    /// The committed offsets of both groups and the first offset still in the log, per partition.
    private func committedOffsets(_ epochs: [Int32: UInt64]) async throws -> [Int32: Machine.CommittedOffsets] {
        let partitions = epochs.keys.sorted()
        guard !partitions.isEmpty else { return [:] }
        let topic = configuration.inputTopic
        let tps = partitions.map { TopicPartitionOffset(topic: topic, partition: $0, offset: KafkaOffset.invalid) }
        // All at once: the offset lookups travel on the fetch connection of the partition's
        // leader, where a broker answers them only after the long-polling fetch ahead of them
        // (up to fetch.wait.max.ms, 500 ms); one after another they added up to seconds.
        let consumer = self.consumer
        async let emittedList = consumer.committed(tps)
        async let replayList = replayOffsets.committed(tps)
        // The first offset still in the log: the first record with a timestamp >= 0 (one request
        // for all partitions); where that finds none (an empty partition, or a broker without
        // timestamp lookups, like the mock), the log start offset (EARLIEST, also one request).
        let all = partitions.map { (topic, $0) }
        async let firstList = consumer.offsets(forTimestamp: 0, partitions: all)
        async let earliestList = consumer.offsets(forTimestamp: KafkaOffset.beginning, partitions: all)
        let emitted = Dictionary(try await emittedList.map { ($0.partition, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let replay = Dictionary(try await replayList.map { ($0.partition, $0.offset) }, uniquingKeysWith: { a, _ in a })
        var firsts = Dictionary(try await firstList.map { ($0.partition, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let earliest = Dictionary(try await earliestList.map { ($0.partition, $0.offset) }, uniquingKeysWith: { a, _ in a })
        for partition in partitions where (firsts[partition] ?? -1) < 0 {
            if let low = earliest[partition], low >= 0 {
                firsts[partition] = low
            } else {
                firsts[partition] = try await consumer.watermarks(topic: topic, partition: partition).low
            }
        }
        var out: [Int32: Machine.CommittedOffsets] = [:]
        for partition in partitions {
            out[partition] = Machine.CommittedOffsets(
                epoch: epochs[partition]!, emittedThrough: emitted[partition] ?? -1, replayFrom: replay[partition] ?? -1,
                firstInLog: firsts[partition] ?? 0)
        }
        return out
    }

    /// An emission of every changed window, and a commit when one is due (see the state machine).
    mutating func checkpoint(final: Bool) async throws {
        try await execute(machine.checkpointDue(now: processor.clock(), final: final))
        let commitInFlight = pendingCommit.map { !$0.done.withLock { $0 } } ?? false
        try await execute(machine.checkpointProduced(commitInFlight: commitInFlight))
    }

    /// Waits for a commit running in the background; returns its error, if it failed.
    mutating func settlePendingCommit() async -> (any Error)? {
        guard let pending = pendingCommit else { return nil }
        pendingCommit = nil
        do {
            try await pending.task.value
            return nil
        } catch {
            return error
        }
    }

    /// Drops every aggregator (the processor stops).
    mutating func retireAll() async {
        try? await execute(machine.retireAll())
    }

    // MARK: - Actions

    private mutating func execute(_ actions: [Machine.Action]) async throws {
        for action in actions {
            switch action {
            case .seek(let seeks):
                do {
                    try await consumer.seek(
                        seeks.map { TopicPartitionOffset(topic: configuration.inputTopic, partition: $0.partition, offset: $0.offset) })
                } catch {
                    machine.seekFailed(seeks)
                    throw error
                }
            case .produce(let partition, let epoch, let candles):
                try await produce(candles, partition: partition, epoch: epoch)
            case .deadLetter(let letter):
                deadLetter(letter)
            case .commit(let plan):
                try await commit(plan)
            case .retired(let partition, let counters):
                processor.add(counters)
                pendingStore[partition] = nil
            case .publishCounters(let counters):
                processor.publishLive(counters)
            case .announce(let text):
                if configuration.announcePartitions { processor.console.notice("\(text)") }
            case .log(let level, let message, let metadata):
                logger.log(level: level, "\(message)", metadata: metadata.mapValues { .string($0) })
            }
        }
    }

    /// Queues a partition's candles, under the ownership lock and only while the partition is
    /// owned under `epoch`, the assignment its state was built for; otherwise they are dropped
    /// (the new owner re-derives them). Queued candles are kept for the candle store.
    private mutating func produce(_ candles: [Candle], partition: Int32, epoch: UInt64) async throws {
        var candles = candles
        if let feed = processor.gaps {
            for i in candles.indices {
                candles[i].complete = feed.isComplete(
                    exchange: candles[i].exchange, symbol: candles[i].symbol, start: candles[i].start, end: candles[i].end)
            }
        }
        let topic = configuration.outputTopic
        let producer = self.producer
        var next = 0
        while next < candles.count {
            let result = ownership.ifOwned(partition, epoch: epoch) { () -> (sent: Int, failure: (any Error)?) in
                var i = next
                while i < candles.count {
                    let message = ProducerMessage(topic: topic, key: Array(candles[i].kafkaKey.utf8), value: candles[i].jsonBytes)
                    do {
                        _ = try producer.tryEnqueue(message)
                    } catch let error as KafkaError where error.code == .queueFull {
                        break
                    } catch {
                        return (i - next, error)
                    }
                    i += 1
                }
                return (i - next, nil)
            }
            guard let result else { break }
            let (sent, failure) = result
            if let failure { throw failure }
            if processor.store != nil {
                for candle in candles[next..<(next + sent)] { pendingStore[partition, default: [:]][CandleWindowID(candle)] = candle }
            }
            next += sent
            // The queue is full: let it drain (outside the lock), then go on.
            if next < candles.count { try await producer.flush(timeout: .seconds(60)) }
        }
    }

    /// Queues a rejected record for the dead-letter topic, without waiting: under the ownership
    /// lock like candles (a partition given away is the new owner's to report), and when the
    /// queue is full or the producer refuses, logged and counted — the candle loop never stalls
    /// for a dead letter. At least once: records replayed after a restart before the last commit
    /// are reported again (same key `<topic>:<partition>:<offset>`).
    private func deadLetter(_ letter: Machine.DeadLetter) {
        let source = configuration.inputTopic
        let (partition, offset, rejection) = (letter.partition, letter.offset, letter.rejection)
        let message = ProducerMessage(
            topic: configuration.deadLetterTopic, key: Array("\(source):\(partition):\(offset)".utf8), value: letter.value,
            headers: [
                KafkaHeader(key: "type", value: Array("rejected-record".utf8)),
                KafkaHeader(key: "error", value: Array(rejection.reason.utf8)),
                KafkaHeader(key: "error.code", value: Array(rejection.kind.rawValue.utf8)),
                KafkaHeader(key: "source.topic", value: Array(source.utf8)),
                KafkaHeader(key: "source.partition", value: Array("\(partition)".utf8)),
                KafkaHeader(key: "source.offset", value: Array("\(offset)".utf8)),
            ], timestamp: processor.clock())
        let producer = self.producer
        let result = ownership.ifOwned(partition, epoch: letter.epoch) { () -> (any Error)? in
            do {
                _ = try producer.tryEnqueue(message)
                return nil
            } catch {
                return error
            }
        }
        guard let result else { return }  // no longer ours
        if let error = result {
            processor.countDeadLetter(queued: false)
            logger.warning(
                "Could not queue a rejected record for the dead-letter topic; skipped",
                metadata: ["partition": "\(partition)", "offset": "\(offset)", "error": "\(error)"])
        } else {
            processor.countDeadLetter(queued: true)
        }
    }

    /// Starts a checkpoint's commit (see `CheckpointCommit`) after the previous one ended: the final one
    /// runs here, the others beside the loop.
    private mutating func commit(_ plan: Machine.Commit) async throws {
        if let error = await settlePendingCommit() { throw error }
        let topic = configuration.inputTopic
        let commit = CheckpointCommit(
            producer: producer, failures: failures, store: processor.store, consumer: consumer,
            replayOffsets: replayOffsets, ownership: ownership, epochs: plan.epochs,
            emitted: plan.emittedThrough.map { TopicPartitionOffset(topic: topic, partition: $0.partition, offset: $0.offset) },
            replay: plan.replayFrom.map { TopicPartitionOffset(topic: topic, partition: $0.partition, offset: $0.offset) },
            stored: pendingStore, final: plan.final, logger: logger, transaction: transaction)
        pendingStore.removeAll(keepingCapacity: true)
        if plan.final {
            try await commit.run()
            return
        }
        // Beside the loop: waiting for acknowledgements, the SQLite write and two broker round
        // trips must not hold up the trades behind them (the candle latency of `tape up`).
        // Fencing is unchanged: the commit checks ownership under the same lock.
        let done = Locked(false)
        let task = Task {
            defer { done.withLock { $0 = true } }
            try await commit.run()
        }
        pendingCommit = (task, done)
    }

    // MARK: - Progress

    private mutating func progress(now: Int64) async {
        processor.publishLive(machine.liveCounters)
        let total = processor.counters
        let rate = machine.progressReported(now: now, trades: total.trades)
        let line =
            "\(total.trades) trades (\(Int(rate))/s), \(total.candlesEmitted) candle updates, "
            + "\(total.duplicates) duplicates, \(total.lateTrades) late, \(total.droppedTooLate) too late, "
            + "\(total.unparseable) not trades, \(total.rejectedTimes) bad times, \(total.rejectedOverflows) overflows, "
            + "\(total.deadLettered) dead-lettered; partitions \(machine.assignedPartitions), lag \(await lag())"
        processor.console.notice("\(line)")
    }

    /// Records not yet read, over the assigned partitions (asks the broker; the first 64 only).
    private func lag() async -> String {
        var lag: Int64 = 0
        let assigned = machine.assignedPartitions
        for partition in assigned.prefix(64) {
            guard let high = try? await consumer.watermarks(topic: configuration.inputTopic, partition: partition, timeout: .seconds(2)).high
            else { return "unknown" }
            let position = machine.position(of: partition) ?? high
            lag += max(0, high - position)
        }
        return assigned.count > 64 ? "\(lag)+ (first 64 partitions)" : "\(lag)"
    }
}
