import Foundation
import KafkaClient
import Logging
import MarketData
import Synchronization

/// Settings of `CandleProcessor` (`tape process`).
public struct CandleProcessorConfiguration: Sendable {
    /// Cluster connection and raw librdkafka properties (`-X`), used by every client.
    public var kafka: KafkaConfiguration
    /// Topic of trades. Default `tape.trades`.
    public var inputTopic = "tape.trades"
    /// Topic of candles (compacted). Default `tape.candles`.
    public var outputTopic = "tape.candles"
    /// Where input records the processor cannot use go (not a trade, a time outside
    /// `Trade.validTimes`, sums that would overflow): the record's value unchanged, key
    /// `<topic>:<partition>:<offset>` of the source record, headers `type` = `rejected-record`,
    /// `error` (the reason), `error.code` (`not-a-trade`, `time-out-of-range`, `overflow`),
    /// `source.topic`, `source.partition`, `source.offset`. Created (one partition) when missing.
    /// Default `tape.deadletter`.
    public var deadLetterTopic = "tape.deadletter"
    /// The gap ledger (`tape.gaps`, written by the ingesters): candles whose window overlaps an
    /// unrepaired gap in their market's trades carry `complete: false`, and are emitted again when
    /// the gap is found or repaired. nil = not followed (every candle `complete`). Default `tape.gaps`.
    public var gapsTopic: String? = "tape.gaps"
    /// Consumer group; its committed offset per partition is "candles emitted through here".
    /// Default `tape-processor`.
    public var group = "tape-processor"
    /// Windows, grace, emit interval, allowed lateness.
    public var aggregation = CandleAggregatorConfiguration()
    /// How often final candles and corrections are looked for (ms). Default 100.
    public var tickMilliseconds: Int64 = 100
    /// How often emitted candles are made durable and the input offsets committed (wait for the
    /// broker's acknowledgements, write SQLite, commit both groups), in ms. Emitting is not
    /// held up by it: with a short emit interval (live dashboards) the processor would otherwise
    /// stop for a broker round trip, an SQLite write and two commits every few milliseconds.
    /// nil: the emit interval, but at least 1000 ms. A stop (graceful or not) loses nothing by
    /// it: uncommitted updates are replayed and re-emitted with the same values.
    public var commitIntervalMilliseconds: Int64? = nil

    /// The commit interval in effect.
    public var effectiveCommitIntervalMilliseconds: Int64 {
        commitIntervalMilliseconds ?? max(aggregation.emitIntervalMilliseconds, 1_000)
    }
    /// Create the output topic (`cleanup.policy=compact`) and the dead-letter topic when missing.
    /// Default true.
    public var createOutputTopic = true
    /// Partitions of the output topic when it is created. Default 3.
    public var outputPartitions: Int32 = 3
    /// Stop (after a final checkpoint) once every listed partition of the input topic has been
    /// read up to the given offset (exclusive). For benchmarks and tests; nil runs until cancelled.
    public var stopAtOffsets: [Int32: Int64]?
    /// Print a progress line to stderr this often (seconds); nil for none.
    public var progressSeconds: Double? = nil
    /// Print a line to stderr when a partition is taken over or given up. Default true.
    public var announcePartitions = true
    /// Static group membership (KIP-345): the consumer's `group.instance.id`. A processor that is
    /// killed and restarted with the same id takes its own place in the group again — with its
    /// previous partitions and no rebalance on a coordinator that implements KIP-345 — instead of
    /// joining as a new member that waits until the dead one's session expires. It must differ
    /// between processors running at the same time (see `ProcessorInstance`). nil (default):
    /// dynamic membership.
    public var groupInstanceID: String?
    /// The group member's session timeout (ms): how long the coordinator waits for a member that
    /// stopped heartbeating before it gives its partitions to others — and, without static
    /// membership (or on a coordinator without KIP-345, like librdkafka's mock), how long a
    /// restarted processor waits. nil: `automaticGroupSettings` for the cluster
    /// (what `tape process` uses). Default 45000 (librdkafka's).
    public var sessionTimeoutMilliseconds: Int? = 45_000
    /// Heartbeat interval (ms); nil: a sixth of the session timeout, 100 to 3000 ms.
    public var heartbeatIntervalMilliseconds: Int?
    /// On a graceful stop, leave the group even as a static member, so the others take over the
    /// partitions at once (librdkafka does not send LeaveGroup for static members on close; then
    /// they wait until the session expires, or the processor comes back). Default true.
    public var leaveGroupOnStop = true

    /// The heartbeat interval for a session timeout.
    public func heartbeatIntervalMilliseconds(session: Int) -> Int {
        heartbeatIntervalMilliseconds ?? min(3_000, max(100, session / 6))
    }

    /// The group settings `tape process` picks for a cluster (`sessionTimeoutMilliseconds` nil):
    ///
    /// - 6000 ms session, no join delay: the shortest session Apache Kafka accepts by default
    ///   (`group.min.session.timeout.ms`); with static membership a restart does not wait for it.
    /// - On librdkafka's mock cluster (cluster id `mockCluster…`, e.g. `tape mock-cluster`): 4000 ms
    ///   and the first JoinGroup 2500 ms after start. Its coordinator (librdkafka 2.0.2,
    ///   rdkafka_mock_cgrp.c) ignores `group.instance.id`, so a restarted processor is a new
    ///   member, and a new member's join waits (session − 1 s) for the others. If that wait ends
    ///   before the dead member's session expired (checked once a second), the mock elects the
    ///   dead member — the first one — leader, the group waits for its SyncGroup until the session
    ///   expires, and the join starts over: about 2 × session. Joining at least 2 s after the
    ///   crash lets the dead member expire first: 2.5 s after start + 3 s instead of about 2 × 6 s.
    ///   The session cannot be much shorter: the mock holds a group's first join for 3 s without
    ///   counting it as activity, so a session below about 4 s expires the joining member itself.
    public static func automaticGroupSettings(clusterID: String?) -> (sessionMilliseconds: Int, joinDelayMilliseconds: Int, reason: String) {
        if let clusterID, clusterID.hasPrefix("mockCluster") {
            return (4_000, 2_500, "librdkafka's mock cluster, which has no static membership: joining 2.5 s after start")
        }
        return (6_000, 0, "the shortest Apache Kafka accepts by default")
    }

    public init(kafka: KafkaConfiguration) { self.kafka = kafka }

    /// The second group, where the replay start of each partition is committed.
    public var replayGroup: String { group + ".replay" }
}

/// Errors of the processor, with what to do about them.
public struct ProcessingError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable {
        let name: String
        public static let deliveryFailed = Code(name: "deliveryFailed")
        public static let consumerFailed = Code(name: "consumerFailed")
    }
    public var code: Code
    public var message: String
    public var description: String { message }
}

/// `tape process`: reads trades from Kafka as a consumer group, keeps one `CandleAggregator` per
/// assigned partition, and writes candle updates to the candles topic (and the candle store).
///
/// Recovery, "exactly once in effect" (docs/processing.md): every emit interval the processor
/// emits all changed windows, waits until the broker acknowledged everything it produced, then
/// commits per partition the offset through which changes are emitted (`group`) and, after that,
/// the first offset still contributing to a window it holds (`group.replay`). Whoever gets a
/// partition next replays it from the replay offset without emitting until the emitted offset.
public final class CandleProcessor: Sendable {
    public let configuration: CandleProcessorConfiguration
    private let store: CandleStore?
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let totals = Mutex(ProcessingCounters())
    private let activity = Mutex<(first: UInt64?, last: UInt64?)>((nil, nil))
    /// The gap ledger, when `gapsTopic` is set (or one fed by the caller).
    public let gaps: GapFeed?
    /// True when `run` reads `gapsTopic` itself (false when the caller feeds `gaps`).
    private let readsGapsTopic: Bool

    /// - Parameters:
    ///   - store: where candles are also upserted (nil: topic only).
    ///   - clock: milliseconds since the epoch; injected for tests.
    ///   - gaps: a gap ledger the caller feeds (then `gapsTopic` is not read by the processor).
    public init(
        configuration: CandleProcessorConfiguration, store: CandleStore? = nil, logger: Logger = Logger(label: "tape.process"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }, gaps: GapFeed? = nil
    ) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.clock = clock
        self.gaps = gaps ?? configuration.gapsTopic.map(GapFeed.init(topic:))
        self.readsGapsTopic = gaps == nil
    }

    /// Seconds from the first record received to the end of the final checkpoint (after `run`).
    public var activeSeconds: Double? {
        activity.withLock { a in
            guard let first = a.first, let last = a.last else { return nil }
            return Double(last - first) / 1e9
        }
    }

    fileprivate func markActive(end: Bool) {
        let now = DispatchTime.now().uptimeNanoseconds
        activity.withLock { a in
            if end { a.last = now } else if a.first == nil { a.first = now }
        }
    }

    /// Counters over all partitions this instance has processed (live partitions as of the last
    /// checkpoint): trades, duplicates, late trades, trades dropped as too late, rejected records,
    /// candle updates, dead letters. For metrics.
    public var counters: ProcessingCounters {
        var c = totals.withLock { $0 } + live.withLock { $0 }
        let d = deadLetters.withLock { $0 }
        c.deadLettered = d.written
        c.deadLetterFailures = d.failed
        return c
    }

    /// Dead letters queued (and not reported failed), and those that failed to queue or deliver.
    private let deadLetters = Mutex<(written: Int64, failed: Int64)>((0, 0))

    /// Counts a dead letter queued (`queued`), or one that failed: to queue (`queued == false`)
    /// or, reported later, to be delivered (`deliveryFailed`: it was counted as queued).
    fileprivate func countDeadLetter(queued: Bool, deliveryFailed: Bool = false) {
        deadLetters.withLock {
            if deliveryFailed {
                $0.written -= 1
                $0.failed += 1
            } else if queued {
                $0.written += 1
            } else {
                $0.failed += 1
            }
        }
    }

    private let live = Mutex(ProcessingCounters())

    fileprivate func publishLive(_ counters: ProcessingCounters) {
        live.withLock { $0 = counters }
    }

    /// Creates the candles topic when missing (compacted). The mock cluster has no CreateTopics:
    /// errors are logged and ignored (the topic is then auto-created or must exist).
    public func ensureOutputTopic() async {
        do {
            let admin = try KafkaAdmin(configuration: configuration.kafka, timeout: .seconds(5), logger: logger)
            let existing = try await admin.listTopics().map(\.name)
            if existing.contains(configuration.outputTopic) { return }
            try await admin.createTopic(
                configuration.outputTopic, partitions: configuration.outputPartitions, configs: ["cleanup.policy": "compact"])
            logger.info("Created the candles topic", metadata: ["topic": "\(configuration.outputTopic)"])
        } catch {
            logger.notice("Could not create the candles topic; continuing", metadata: ["error": "\(error)"])
        }
    }

    /// Creates the dead-letter topic (one partition) when missing; errors are logged and ignored
    /// (it is then auto-created or must exist; a dead letter that cannot be delivered is counted).
    /// `run` does this beside processing: a cluster that does not answer CreateTopics (the mock)
    /// would otherwise hold up the start for the admin timeout.
    public func ensureDeadLetterTopic() async {
        do {
            let admin = try KafkaAdmin(configuration: configuration.kafka, timeout: .seconds(5), logger: logger)
            if try await admin.listTopics().contains(where: { $0.name == configuration.deadLetterTopic }) { return }
            try await admin.createTopic(configuration.deadLetterTopic, partitions: 1)
            logger.info("Created the dead-letter topic", metadata: ["topic": "\(configuration.deadLetterTopic)"])
        } catch {
            logger.notice("Could not create the dead-letter topic; continuing", metadata: ["error": "\(error)"])
        }
    }

    /// Runs until cancelled (then emits and commits what it has, and leaves the group) or, with
    /// `stopAtOffsets`, until those offsets are reached.
    public func run() async throws {
        let started = ContinuousClock.now
        if configuration.createOutputTopic { await ensureOutputTopic() }
        let deadLetterTopicSetup = configuration.createOutputTopic ? Task { await self.ensureDeadLetterTopic() } : nil
        defer { deadLetterTopicSetup?.cancel() }
        let gapReader = (readsGapsTopic ? gaps : nil).map { feed in
            Task { [kafka = configuration.kafka, log = self.logger] in await feed.run(kafka: kafka, logger: log) }
        }
        defer { gapReader?.cancel() }

        var producerConfiguration = KafkaProducerConfiguration(kafka: configuration.kafka)
        producerConfiguration.acks = -1
        producerConfiguration.idempotence = true
        producerConfiguration.lingerMilliseconds = 5
        producerConfiguration.maxQueuedMessages = 1_000_000
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)

        var consumerConfiguration = KafkaConsumerConfiguration(kafka: configuration.kafka)
        consumerConfiguration.groupID = configuration.group
        consumerConfiguration.autoOffsetReset = .earliest
        consumerConfiguration.autoCommit = false
        consumerConfiguration.batchSize = 4_000
        var membership = (sessionMilliseconds: configuration.sessionTimeoutMilliseconds ?? 0, joinDelayMilliseconds: 0, reason: "as configured")
        if configuration.sessionTimeoutMilliseconds == nil {
            membership = CandleProcessorConfiguration.automaticGroupSettings(clusterID: await producer.clusterID(timeout: .seconds(3)))
        }
        // A raw -X session.timeout.ms wins over the typed setting (KafkaConfiguration.properties).
        if let raw = configuration.kafka.properties["session.timeout.ms"], let value = Int(raw) {
            membership.sessionMilliseconds = value
            membership.reason = "-X session.timeout.ms"
        }
        consumerConfiguration.sessionTimeoutMilliseconds = membership.sessionMilliseconds
        consumerConfiguration.heartbeatIntervalMilliseconds = configuration.heartbeatIntervalMilliseconds(session: membership.sessionMilliseconds)
        consumerConfiguration.groupInstanceID = configuration.groupInstanceID
        if configuration.announcePartitions {
            let line =
                "process: group \(configuration.group), "
                + (configuration.groupInstanceID.map { "static member \($0)" } ?? "dynamic member")
                + ", session timeout \(membership.sessionMilliseconds) ms (\(membership.reason))\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
        // Values packed into one buffer per poll: no key, header or array per record.
        consumerConfiguration.packedValues = true
        let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)

        var replayConfiguration = KafkaConsumerConfiguration(kafka: configuration.kafka)
        replayConfiguration.groupID = configuration.replayGroup
        replayConfiguration.autoCommit = false
        let replayOffsets = try KafkaConsumer(configuration: replayConfiguration, logger: logger)

        let failures = Locked<(count: Int, last: String)>((0, ""))
        let deadLetterTopic = configuration.deadLetterTopic
        let reportLogger = logger
        let reportTask = Task {
            for await reports in producer.deliveryReports {
                for r in reports where r.error != nil {
                    // A dead letter that could not be delivered is logged and counted; it never
                    // stops the candles (their own failures do: see `Commit`).
                    if r.topic == deadLetterTopic {
                        self.countDeadLetter(queued: true, deliveryFailed: true)
                        reportLogger.warning(
                            "A rejected record could not be written to the dead-letter topic",
                            metadata: ["topic": "\(deadLetterTopic)", "error": "\(r.error.map { "\($0)" } ?? "")"])
                        continue
                    }
                    failures.withLock {
                        $0.count += 1
                        $0.last = r.error.map { "\($0)" } ?? ""
                    }
                }
            }
        }
        let rebalances = Locked<[RebalanceEvent]>([])
        let rebalanceTask = Task {
            for await event in consumer.rebalanceEvents { rebalances.withLock { $0.append(event) } }
        }
        defer {
            reportTask.cancel()
            rebalanceTask.cancel()
        }
        // Fencing (docs/processing.md): the rebalance callback updates the ownership table under
        // its lock — waiting for a store write + commit in flight — and, on a revocation, waits
        // until every candle already queued is acknowledged, all before the member rejoins. So
        // once another member owns a partition, nothing of ours for it reaches the topic, the
        // store or either group.
        let ownership = Ownership()
        let inputTopic = configuration.inputTopic
        let logger = self.logger
        consumer.setRebalanceHandler { event in
            switch event {
            case .assigned(let tps):
                ownership.assign(tps.filter { $0.topic == inputTopic }.map(\.partition))
            case .revoked(let tps):
                ownership.revoke(tps.filter { $0.topic == inputTopic }.map(\.partition))
                if !producer.flushBlocking(timeout: .seconds(60)) {
                    logger.warning("Candles of revoked partitions still undelivered after 60 s", metadata: ["outstanding": "\(producer.outstanding)"])
                }
            case .lost(let reason):
                // Fenced (a newer member holds our group.instance.id) or otherwise failed: nothing
                // more goes out for any partition; the loop stops on the consumer's error.
                ownership.revokeAll()
                logger.warning("The consumer failed; no more output for any partition", metadata: ["reason": "\(reason)"])
            case .error:
                break
            }
        }

        // Fail fast, with the client's one-sentence message, when no broker answers.
        _ = try await consumer.metadata(timeout: .seconds(10))
        if membership.joinDelayMilliseconds > 0 { try await Task.sleep(until: started + .milliseconds(membership.joinDelayMilliseconds)) }
        try consumer.subscribe([configuration.inputTopic])
        var loop = Loop(
            processor: self, consumer: consumer, replayOffsets: replayOffsets, producer: producer, ownership: ownership,
            failures: failures, rebalances: rebalances)
        var runError: (any Error)?
        do {
            try await loop.run()
        } catch is CancellationError {
        } catch {
            runError = error
        }
        if runError == nil {
            // Graceful stop: emit what changed, wait for the broker, commit.
            do {
                try await loop.checkpoint(final: true)
            } catch {
                logger.warning("Final checkpoint failed; the next owner replays", metadata: ["error": "\(error)"])
            }
        }
        // A commit still running in the background uses both consumers: let it end first.
        if let error = await loop.settlePendingCommit(), runError == nil {
            logger.warning("Background checkpoint failed; the next owner replays", metadata: ["error": "\(error)"])
        }
        markActive(end: true)
        loop.retireAll()
        // A static member leaves only when asked to (see `leaveGroupOnStop`); after a failure it
        // does not: a restart takes its place again.
        consumer.close(leaveGroup: runError == nil && configuration.leaveGroupOnStop)
        replayOffsets.close()
        try? await producer.close(timeout: .seconds(10))
        if let runError { throw runError }
    }

    fileprivate func add(_ counters: ProcessingCounters) {
        totals.withLock { $0 = $0 + counters }
    }

    /// The processing loop's state: one aggregator per assigned partition.
    private struct Loop {
        let processor: CandleProcessor
        let consumer: KafkaConsumer
        let replayOffsets: KafkaConsumer
        let producer: KafkaProducer
        let ownership: Ownership
        let failures: Locked<(count: Int, last: String)>
        let rebalances: Locked<[RebalanceEvent]>

        var configuration: CandleProcessorConfiguration { processor.configuration }
        var logger: Logger { processor.logger }

        var assigned: Set<Int32> = []
        var aggregators: [Int32: CandleAggregator] = [:]
        /// Partitions moved back to their replay start; messages are dropped until it arrives.
        var seeking: [Int32: (start: Int64, resumeAt: Int64)] = [:]
        /// Assigned partitions whose committed offsets are still to be read.
        var needsPrepare: Set<Int32> = []
        /// The assignment (`Ownership` epoch) each partition's state was set up under; its output
        /// goes out only while the partition is still owned under that same assignment.
        var epochs: [Int32: UInt64] = [:]
        /// How often a partition was set up again because of an offset gap (see `handle`).
        var gapResets: [Int32: Int] = [:]
        /// Candles produced since the last checkpoint, per partition (for the candle store).
        /// The latest update of each window since the last commit, per partition: only the
        /// newest value of a window reaches the candle store (with a short emit interval a window
        /// is emitted hundreds of times between two commits).
        var pendingStore: [Int32: [CandleWindowID: Candle]] = [:]
        /// The commit running beside the loop (see `checkpoint`), and whether it has ended.
        var pendingCommit: (task: Task<Void, any Error>, done: Locked<Bool>)?
        var lastTick: Int64 = 0
        var lastCheckpoint: Int64 = 0
        /// Records were applied since the last checkpoint (an emission may be due).
        var changedSinceCheckpoint = false
        var lastCommit: Int64 = 0
        var lastProgress: Int64 = 0
        var lastProgressTrades: Int64 = 0
        var badRecordsLogged = 0

        init(
            processor: CandleProcessor, consumer: KafkaConsumer, replayOffsets: KafkaConsumer, producer: KafkaProducer,
            ownership: Ownership, failures: Locked<(count: Int, last: String)>, rebalances: Locked<[RebalanceEvent]>
        ) {
            self.processor = processor
            self.consumer = consumer
            self.replayOffsets = replayOffsets
            self.producer = producer
            self.ownership = ownership
            self.failures = failures
            self.rebalances = rebalances
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

        mutating func run() async throws {
            let start = processor.clock()
            lastTick = start
            lastCheckpoint = start
            lastCommit = start
            lastProgress = start
            while true {
                try Task.checkCancellation()
                // Wait for input, but no longer than until the next emission is due: trades handled
                // since the last checkpoint go out one emit interval after it, not whenever the
                // next batch or tick happens to wake the loop.
                var wait = configuration.tickMilliseconds
                if changedSinceCheckpoint {
                    wait = min(wait, max(0, lastCheckpoint + configuration.aggregation.emitIntervalMilliseconds - processor.clock()))
                }
                let wakes = wait > 0 ? try await nextWake(milliseconds: wait) : [Wake.timeout]
                applyRebalances()
                if !needsPrepare.isEmpty { await prepareAssigned() }
                var ended = false
                for wake in wakes {
                    switch wake {
                    case .batch(let batch): try await handle(batch)
                    case .end: ended = true
                    case .timeout: break
                    }
                }
                let now = processor.clock()
                if now - lastTick >= configuration.tickMilliseconds {
                    try await tick(now: now)
                }
                if now - lastCheckpoint >= configuration.aggregation.emitIntervalMilliseconds {
                    try await checkpoint(final: false)
                }
                if let seconds = configuration.progressSeconds, Double(now - lastProgress) >= seconds * 1000 {
                    await progress(now: now)
                }
                if ended { throw ProcessingError(code: .consumerFailed, message: "The consumer stopped.") }
                if reachedStopOffsets() { return }
            }
        }

        private func reachedStopOffsets() -> Bool {
            guard let stop = configuration.stopAtOffsets else { return false }
            for (partition, offset) in stop {
                if let aggregator = aggregators[partition] {
                    guard aggregator.position >= offset else { return false }
                } else {
                    // Nothing to read there (an empty partition) counts as reached.
                    guard let target = seeking[partition], target.start >= offset else { return false }
                }
            }
            return true
        }

        private mutating func applyRebalances() {
            let events = rebalances.withLock { events in
                defer { events.removeAll() }
                return events
            }
            for event in events {
                switch event {
                case .assigned(let partitions):
                    for tp in partitions where tp.topic == configuration.inputTopic {
                        assigned.insert(tp.partition)
                        retire(tp.partition)
                        needsPrepare.insert(tp.partition)
                    }
                case .revoked(let partitions):
                    let mine = partitions.filter { $0.topic == configuration.inputTopic }.map(\.partition)
                    if !mine.isEmpty { announce("partitions \(mine.sorted()) given up") }
                    for tp in partitions where tp.topic == configuration.inputTopic {
                        assigned.remove(tp.partition)
                        retire(tp.partition)
                        gapResets[tp.partition] = nil
                    }
                case .error(let message):
                    logger.warning("Rebalance error", metadata: ["error": "\(message)"])
                case .lost(let reason):
                    logger.error("Every partition is lost; stopping", metadata: ["reason": "\(reason)"])
                    for partition in assigned { retire(partition) }
                    assigned.removeAll()
                }
            }
        }

        /// Forgets a partition's state (it is rebuilt by replay when the partition comes back).
        private mutating func retire(_ partition: Int32) {
            if let aggregator = aggregators.removeValue(forKey: partition) {
                processor.add(aggregator.counters)
                publishLive()
            }
            seeking[partition] = nil
            needsPrepare.remove(partition)
            epochs[partition] = nil
            pendingStore[partition] = nil
        }

        mutating func retireAll() {
            for partition in Array(aggregators.keys) { retire(partition) }
        }

        private mutating func handle(_ batch: PackedBatch) async throws {
            let now = processor.clock()
            processor.markActive(end: false)
            let records = batch.records
            var index = 0
            while index < records.count {
                // A run of records of one partition goes through one aggregator taken out of the map.
                let partition = records[index].partition
                var end = index + 1
                while end < records.count && records[end].partition == partition { end += 1 }
                defer { index = end }
                guard batch.topics[Int(records[index].topic)] == configuration.inputTopic, assigned.contains(partition) else { continue }
                var first = index
                if aggregators[partition] == nil {
                    let found: Int?
                    do {
                        found = try await start(partition, offsets: records[index..<end].lazy.map(\.offset))
                    } catch {
                        logger.notice("Cannot set up a partition yet; retrying", metadata: ["partition": "\(partition)", "error": "\(error)"])
                        found = nil
                    }
                    guard let found else { continue }
                    first = index + found
                }
                var aggregator = aggregators.removeValue(forKey: partition)!
                /// Rejected records, with the value to dead-letter — nil when replayed (a previous owner
                /// dead-lettered those already).
                var bad: [(offset: Int64, rejection: CandleAggregator.Rejection, value: [UInt8]?)] = []
                var gap: (expected: Int64, got: Int64)?
                // A real gap (a compacted or transactional input) would come back every time:
                // after three tries it is accepted.
                let gapRetries = gapResets[partition, default: 0]
                batch.bytes.withUnsafeBufferPointer { bytes in
                    for i in first..<end {
                        let record = records[i]
                        if record.offset < aggregator.position { continue }
                        if record.offset > aggregator.position && gapRetries < 3 {
                            gap = (aggregator.position, record.offset)
                            break
                        }
                        let replayed = aggregator.isSuppressing
                        if record.valueLength < 0 {
                            aggregator.skip(sequence: record.offset)
                            bad.append((record.offset, .init(.notATrade, "record has no value"), replayed ? nil : []))
                            continue
                        }
                        let value = UnsafeBufferPointer(rebasing: bytes[Int(record.valueStart)..<Int(record.valueStart) + Int(record.valueLength)])
                        if let rejection = aggregator.ingestRecord(bytes: value, sequence: record.offset, now: now) {
                            bad.append((record.offset, rejection, replayed ? nil : Array(value)))
                        }
                    }
                }
                aggregators[partition] = aggregator
                changedSinceCheckpoint = true
                for b in bad {
                    logBadRecord(partition: partition, offset: b.offset, rejection: b.rejection)
                    if let value = b.value { deadLetter(value, partition: partition, offset: b.offset, rejection: b.rejection) }
                }
                if let gap {
                    // Offsets of tape.trades are contiguous (not compacted, not transactional), so a
                    // jump means this state would miss records. It happens when records fetched
                    // from the committed offset before the seek to the replay start are delivered
                    // after records from the seek (librdkafka 2.0.2's batch consume does not drop
                    // them on librdkafka's mock cluster). The state is dropped and the partition set up
                    // again: it seeks to the replay start once more and starts at exactly that record.
                    logger.notice(
                        "Offset gap in the input (records from before a seek); setting the partition up again",
                        metadata: ["partition": "\(partition)", "expected": "\(gap.expected)", "got": "\(gap.got)"])
                    retire(partition)
                    needsPrepare.insert(partition)
                    gapResets[partition] = gapRetries + 1
                }
            }
        }

        /// Sets partitions up from their committed offsets (one request per group for all of them),
        /// with a seek back to the replay start where there is something to replay.
        private mutating func prepare(_ partitions: [Int32]) async throws {
            // The assignment each partition is owned under, taken before its committed offsets are
            // read: if it is revoked (and maybe given back) meanwhile, the epoch no longer matches
            // and this state never emits or commits.
            var owned: [Int32: UInt64] = [:]
            for partition in partitions { owned[partition] = ownership.epoch(of: partition) }
            let targets = try await recoveryPoints(partitions.filter { owned[$0] != nil })
            var seeks: [TopicPartitionOffset] = []
            for partition in partitions {
                guard let target = targets[partition], let epoch = owned[partition] else { continue }
                epochs[partition] = epoch
                logger.info(
                    "Partition starts", metadata: ["partition": "\(partition)", "replayFrom": "\(target.start)", "emitFrom": "\(target.resumeAt)"])
                announce("partition \(partition) taken over: replaying from offset \(target.start), emitting from offset \(target.resumeAt)")
                needsPrepare.remove(partition)
                // The aggregator starts with the record at exactly `start`: records still buffered
                // from an earlier assignment of the partition cannot open a gap.
                seeking[partition] = target
                if target.start < target.resumeAt {
                    seeks.append(TopicPartitionOffset(topic: configuration.inputTopic, partition: partition, offset: target.start))
                }
            }
            if !seeks.isEmpty {
                do {
                    try await consumer.seek(seeks)
                } catch {
                    for tp in seeks {
                        seeking[tp.partition] = nil
                        needsPrepare.insert(tp.partition)
                    }
                    throw error
                }
            }
        }

        /// For a partition without an aggregator: the position (0-based, in `offsets`) of the record to
        /// start with, or nil while the seek to the replay start has not taken effect.
        private mutating func start(_ partition: Int32, offsets: some Collection<Int64>) async throws -> Int? {
            if needsPrepare.contains(partition) { try await prepare(needsPrepare.sorted()) }
            if aggregators[partition] != nil { return 0 }
            guard let target = seeking[partition] else { return nil }
            guard let i = offsets.firstIndex(of: target.start).map({ offsets.distance(from: offsets.startIndex, to: $0) }) else { return nil }
            seeking[partition] = nil
            aggregators[partition] = CandleAggregator(
                configuration: configuration.aggregation, startSequence: target.start, resumeEmittingAt: target.resumeAt)
            return i
        }

        /// Prepares newly assigned partitions (retried on the next wake when the broker is busy).
        private mutating func prepareAssigned() async {
            do {
                try await prepare(needsPrepare.sorted())
            } catch {
                logger.notice("Cannot set up partitions yet; retrying", metadata: ["partitions": "\(needsPrepare.sorted())", "error": "\(error)"])
            }
        }

        /// Where to replay from and where emission resumes, from the two groups' committed offsets.
        private func recoveryPoints(_ partitions: [Int32]) async throws -> [Int32: (start: Int64, resumeAt: Int64)] {
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
            var out: [Int32: (start: Int64, resumeAt: Int64)] = [:]
            for partition in partitions {
                let emittedThrough = emitted[partition] ?? -1
                let replayFrom = replay[partition] ?? -1
                let low = firsts[partition] ?? 0
                // Without a replay offset (first run, or lost), replay everything still in the log.
                var start = replayFrom >= 0 ? replayFrom : low
                if emittedThrough >= 0 && start > emittedThrough { start = emittedThrough }
                if start < low {
                    logger.warning(
                        "Trades needed for recovery were deleted by retention; candles of the oldest windows may be incomplete",
                        metadata: ["partition": "\(partition)", "needed": "\(start)", "first": "\(low)"])
                    start = low
                }
                out[partition] = (start, max(emittedThrough, start))
            }
            return out
        }

        private func announce(_ text: String) {
            guard configuration.announcePartitions else { return }
            FileHandle.standardError.write(Data("process: \(text)\n".utf8))
        }

        /// Records not yet read, over the assigned partitions (asks the broker; the first 64 only).
        private func lag() async -> String {
            var lag: Int64 = 0
            for partition in assigned.sorted().prefix(64) {
                guard let high = try? await consumer.watermarks(topic: configuration.inputTopic, partition: partition, timeout: .seconds(2)).high
                else { return "unknown" }
                let position = aggregators[partition]?.position ?? seeking[partition]?.start ?? high
                lag += max(0, high - position)
            }
            return assigned.count > 64 ? "\(lag)+ (first 64 partitions)" : "\(lag)"
        }

        private func publishLive() {
            var sum = ProcessingCounters()
            for aggregator in aggregators.values { sum = sum + aggregator.counters }
            processor.publishLive(sum)
        }

        private mutating func logBadRecord(partition: Int32, offset: Int64, rejection: CandleAggregator.Rejection) {
            badRecordsLogged += 1
            if badRecordsLogged <= 10 || badRecordsLogged % 10_000 == 0 {
                logger.warning(
                    "Skipping a record the processor cannot use; it goes to the dead-letter topic",
                    metadata: [
                        "partition": "\(partition)", "offset": "\(offset)", "reason": "\(rejection)",
                        "skipped": "\(badRecordsLogged)", "deadLetterTopic": "\(configuration.deadLetterTopic)",
                    ])
            }
        }

        /// Queues a rejected record for the dead-letter topic, without waiting: under the ownership
        /// lock like candles (a partition given away is the new owner's to report), and when the
        /// queue is full or the producer refuses, logged and counted — the candle loop never
        /// stalls for a dead letter. At least once: records replayed after a restart before the
        /// last commit are reported again (same key `<topic>:<partition>:<offset>`).
        private mutating func deadLetter(_ value: [UInt8], partition: Int32, offset: Int64, rejection: CandleAggregator.Rejection) {
            guard let epoch = epochs[partition] else { return }
            let source = configuration.inputTopic
            let message = ProducerMessage(
                topic: configuration.deadLetterTopic, key: Array("\(source):\(partition):\(offset)".utf8), value: value,
                headers: [
                    KafkaHeader(key: "type", value: Array("rejected-record".utf8)),
                    KafkaHeader(key: "error", value: Array(rejection.reason.utf8)),
                    KafkaHeader(key: "error.code", value: Array(rejection.kind.rawValue.utf8)),
                    KafkaHeader(key: "source.topic", value: Array(source.utf8)),
                    KafkaHeader(key: "source.partition", value: Array("\(partition)".utf8)),
                    KafkaHeader(key: "source.offset", value: Array("\(offset)".utf8)),
                ], timestamp: processor.clock())
            let producer = self.producer
            let result = ownership.ifOwned(partition, epoch: epoch) { () -> (any Error)? in
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

        /// Queues a partition's candles, under the ownership lock and only while the partition is
        /// owned under the assignment its state was built for; otherwise they are dropped (the new
        /// owner re-derives them).
        private mutating func produce(_ candles: [Candle], partition: Int32) async throws {
            guard let epoch = epochs[partition] else { return }
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

        private mutating func tick(now: Int64) async throws {
            lastTick = now
            // A gap found or repaired changes `complete` of the windows it overlaps: emit them again.
            if let feed = processor.gaps {
                for gap in feed.takeChanges() where gap.channel == .trades {
                    for partition in Array(aggregators.keys) {
                        aggregators[partition]!.revise(exchange: gap.exchange, symbol: gap.symbol, from: gap.from, to: gap.to)
                    }
                }
            }
            for partition in Array(aggregators.keys) {
                let candles = aggregators[partition]!.tick(now: now)
                if !candles.isEmpty { try await produce(candles, partition: partition) }
            }
        }

        /// Emits every changed window; when `final` or the commit interval has passed, also waits for
        /// the broker to acknowledge everything produced, then commits emitted-through offsets and,
        /// after them, replay offsets.
        mutating func checkpoint(final: Bool) async throws {
            let now = processor.clock()
            lastCheckpoint = now
            changedSinceCheckpoint = false
            var emitted: [TopicPartitionOffset] = []
            var replay: [TopicPartitionOffset] = []
            for partition in Array(aggregators.keys).sorted() {
                let (candles, point) = aggregators[partition]!.checkpoint(now: now)
                if !candles.isEmpty { try await produce(candles, partition: partition) }
                if !aggregators[partition]!.isSuppressing {
                    emitted.append(.init(topic: configuration.inputTopic, partition: partition, offset: point.emittedThrough))
                    replay.append(.init(topic: configuration.inputTopic, partition: partition, offset: point.replayFrom))
                }
            }
            publishLive()
            // Emitted; made durable and committed only every commit interval (see the configuration).
            if !final && now - lastCommit < configuration.effectiveCommitIntervalMilliseconds { return }
            // One commit at a time, in order. The previous one still running: try again at the next
            // checkpoint (its points are older, so nothing is lost by waiting).
            if let pending = pendingCommit, !final && !pending.done.withLock({ $0 }) { return }
            if let error = await settlePendingCommit() { throw error }
            lastCommit = now
            let commit = Commit(
                producer: producer, failures: failures, store: processor.store, consumer: consumer,
                replayOffsets: replayOffsets, ownership: ownership, epochs: epochs, emitted: emitted, replay: replay,
                stored: pendingStore, final: final, logger: logger)
            pendingStore.removeAll(keepingCapacity: true)
            if final {
                try await commit.run()
                return
            }
            // Beside the loop: waiting for acknowledgements, the SQLite write and two broker round
            // trips must not hold up the trades behind them (the candle latency of `tape up`).
            // Fencing is unchanged: the commit checks ownership under the same lock as before.
            let done = Locked(false)
            let task = Task {
                defer { done.withLock { $0 = true } }
                try await commit.run()
            }
            pendingCommit = (task, done)
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

        private mutating func progress(now: Int64) async {
            publishLive()
            let total = processor.counters
            let seconds = Double(now - lastProgress) / 1000
            let rate = Double(total.trades - lastProgressTrades) / max(seconds, 0.001)
            lastProgress = now
            lastProgressTrades = total.trades
            let line =
                "process: \(total.trades) trades (\(Int(rate))/s), \(total.candlesEmitted) candle updates, "
                + "\(total.duplicates) duplicates, \(total.lateTrades) late, \(total.droppedTooLate) too late, "
                + "\(total.unparseable) not trades, \(total.rejectedTimes) bad times, \(total.rejectedOverflows) overflows, "
                + "\(total.deadLettered) dead-lettered; partitions \(assigned.sorted()), lag \(await lag())\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

/// One checkpoint's commit: wait until everything produced so far is acknowledged, then, under
/// the ownership lock and only for partitions still owned under the assignment their state was
/// built for, write the candle rows, commit emitted-through offsets and after them replay offsets.
private struct Commit: Sendable {
    let producer: KafkaProducer
    let failures: Locked<(count: Int, last: String)>
    let store: CandleStore?
    let consumer: KafkaConsumer
    let replayOffsets: KafkaConsumer
    let ownership: Ownership
    let epochs: [Int32: UInt64]
    let emitted: [TopicPartitionOffset]
    let replay: [TopicPartitionOffset]
    let stored: [Int32: [CandleWindowID: Candle]]
    let final: Bool
    let logger: Logger

    func run() async throws {
        try await producer.flush(timeout: .seconds(60))
        let failed = failures.withLock { $0 }
        if failed.count > 0 {
            throw ProcessingError(
                code: .deliveryFailed,
                message: "\(failed.count) candle record(s) could not be delivered (\(failed.last)); stopping without committing, so a restart re-emits them.")
        }
        guard !emitted.isEmpty || !stored.isEmpty else { return }
        let outcome = try await onDedicatedThread { [self] () throws -> CommitOutcome in
            try ownership.whileLocked { owns in
                let current = { (p: Int32) in epochs[p].map { owns(p, $0) } ?? false }
                if let store {
                    let rows = stored.filter { current($0.key) }.flatMap(\.value.values)
                    if !rows.isEmpty { try store.upsert(rows) }
                }
                let emittedOwned = emitted.filter { current($0.partition) }
                let replayOwned = replay.filter { current($0.partition) }
                guard !emittedOwned.isEmpty else { return .nothing }
                do {
                    try consumer.commitBlocking(emittedOwned)
                } catch {
                    return .refused("\(error)")
                }
                do {
                    try replayOffsets.commitBlocking(replayOwned)
                } catch {
                    return .replayFailed("\(error)")
                }
                return .committed(emittedOwned.map(\.partition))
            }
        }
        switch outcome {
        case .nothing:
            break
        case .refused(let error):
            // Typically a rebalance took the partitions away: the new owner replays.
            logger.notice("Commit refused; the next owner replays", metadata: ["error": "\(error)"])
        case .replayFailed(let error):
            logger.notice("Replay-offset commit failed; an older (still valid) one stays", metadata: ["error": "\(error)"])
        case .committed(let partitions):
            if final { logger.info("Final checkpoint committed", metadata: ["partitions": "\(partitions)"]) }
        }
    }
}

/// One candle window: the key of `tape.candles` and of the candle store.
struct CandleWindowID: Hashable, Sendable {
    var exchange: Exchange
    var symbol: Symbol
    var interval: CandleInterval
    var start: Int64
    init(_ candle: Candle) {
        exchange = candle.exchange
        symbol = candle.symbol
        interval = candle.interval
        start = candle.start
    }
}

private enum CommitOutcome: Sendable {
    case nothing
    case refused(String)
    case replayFailed(String)
    case committed([Int32])
}

/// Runs blocking work (a lock held across broker round trips) on a thread of its own, off Swift's
/// cooperative pool.
private func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// The input partitions this member owns, as the consumer's rebalance callback sees them, each
/// with the serial number (epoch) of the assignment that gave it. Output for a partition happens
/// under the lock and only while the partition is owned under the epoch its state was built for.
final class Ownership: @unchecked Sendable {
    private let lock = NSLock()
    private var serial: UInt64 = 0
    private var owned: [Int32: UInt64] = [:]

    func assign(_ partitions: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        for p in partitions {
            serial += 1
            owned[p] = serial
        }
    }

    /// Waits for output in flight under the lock (a commit), then the partitions are no longer owned.
    func revoke(_ partitions: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        for p in partitions { owned[p] = nil }
    }

    /// Like `revoke`, for every partition.
    func revokeAll() {
        lock.lock()
        defer { lock.unlock() }
        owned.removeAll()
    }

    func epoch(of partition: Int32) -> UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return owned[partition]
    }

    /// Runs `body` under the lock if `partition` is owned under `epoch`; nil if it is not.
    func ifOwned<T>(_ partition: Int32, epoch: UInt64, _ body: () -> T) -> T? {
        lock.lock()
        defer { lock.unlock() }
        guard owned[partition] == epoch else { return nil }
        return body()
    }

    /// Runs `body` under the lock with a test "owned under this epoch".
    func whileLocked<T>(_ body: (@escaping (Int32, UInt64) -> Bool) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body { p, e in self.owned[p] == e }
    }
}

/// A value behind a lock, shareable between tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
