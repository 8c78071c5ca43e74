import Foundation
import KafkaClient
import Logging
import MarketData
import Synchronization

/// `tape process`: reads trades from Kafka as a consumer group, keeps one `CandleAggregator` per
/// assigned partition, and writes candle updates to the candles topic (and the candle store).
///
/// Recovery, "exactly once in effect" (docs/processing.md): every emit interval the processor
/// emits all changed windows, waits until the broker acknowledged everything it produced, then
/// commits per partition the offset through which changes are emitted (`group`) and, after that,
/// the first offset still contributing to a window it holds (`group.replay`). Whoever gets a
/// partition next replays it from the replay offset without emitting until the emitted offset.
/// The protocol is `CandleProcessorStateMachine`; `run` drives it (`CandleProcessorLoop`).
public final class CandleProcessor: Sendable {
    public let configuration: CandleProcessorConfiguration
    let store: CandleStore?
    let logger: Logger
    /// Where the lines for the operator go (see `init`).
    let console: Logger
    let clock: @Sendable () -> Int64
    private let totals = Mutex(ProcessingCounters())
    private let activity = Mutex<(first: UInt64?, last: UInt64?)>((nil, nil))
    /// The gap ledger, when `gapsTopic` is set (or one fed by the caller).
    public let gaps: GapFeed?
    /// True when `run` reads `gapsTopic` itself (false when the caller feeds `gaps`).
    private let readsGapsTopic: Bool

    /// - Parameters:
    ///   - store: where candles are also upserted (nil: topic only).
    ///   - logger: diagnostics.
    ///   - console: the lines for the operator, each a `notice`: the group membership and the
    ///     partitions taken over or given up (`announcePartitions`), and progress
    ///     (`progressSeconds`). nil: `logger`.
    ///   - clock: milliseconds since the epoch; injected for tests.
    ///   - gaps: a gap ledger the caller feeds (then `gapsTopic` is not read by the processor).
    public init(
        configuration: CandleProcessorConfiguration, store: CandleStore? = nil, logger: Logger = Logger(label: "tape.process"),
        console: Logger? = nil, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }, gaps: GapFeed? = nil
    ) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.console = console ?? logger
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

    /// Notes the first record received (`end` false) or the end of the final checkpoint.
    func markActive(end: Bool) {
        let now = DispatchTime.now().uptimeNanoseconds
        activity.withLock { a in
            if end { a.last = now } else if a.first == nil { a.first = now }
        }
    }

    /// Counters over all partitions this instance has processed (partitions still held: as of the
    /// last checkpoint, progress line or rebalance): trades, duplicates, late trades, trades dropped as too late, rejected records,
    /// candle updates, dead letters. For metrics.
    public var counters: ProcessingCounters {
        var c = totals.withLock { $0 } + live.withLock { $0 }
        let d = deadLetters.withLock { $0 }
        c.deadLettered = d.written
        c.deadLetterFailures = d.failed
        return c
    }

    /// Records of the input topic not read yet over the partitions held (high watermark − next
    /// offset, summed), as last measured (every 5 s while running); nil before the first.
    public var lag: Int64? { lagSample.withLock { $0 } }
    private let lagSample = Mutex<Int64?>(nil)
    private let lagQueryInFlight = Atomic<Bool>(false)

    /// Requests the input consumer sent to restart fetching after its pre-fetch queue had filled
    /// (`KafkaConsumer.fetchRefills`): they happen while it reads a backlog.
    public var fetchRefills: Int { inputRefills.withLock { $0.earlier + ($0.consumer?.fetchRefills ?? 0) } }
    private let inputRefills = Mutex<(consumer: KafkaConsumer?, earlier: Int)>((nil, 0))

    /// Measures `lag` apart from the loop, unless a measurement is still running: librdkafka's
    /// watermark query can wait for a broker that has gone away, and the loop must not.
    /// `positions`: the partitions held and their next offsets (nil: not known, counts 0).
    func measureLagInBackground(consumer: KafkaConsumer, positions: [(partition: Int32, next: Int64?)]) {
        guard !lagQueryInFlight.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let topic = configuration.inputTopic
        Task.detached { [self] in
            defer { lagQueryInFlight.store(false, ordering: .releasing) }
            var total: Int64 = 0
            for (partition, next) in positions {
                guard let high = try? await consumer.watermarks(topic: topic, partition: partition, timeout: .seconds(2)).high else { return }
                let (behind, overflow) = high.subtractingReportingOverflow(next ?? high)
                if !overflow && behind > 0 { total = total.addingReportingOverflow(behind).overflow ? .max : total + behind }
            }
            lagSample.withLock { $0 = total }
        }
    }

    /// Dead letters queued (and not reported failed), and those that failed to queue or deliver.
    private let deadLetters = Mutex<(written: Int64, failed: Int64)>((0, 0))

    /// Counts a dead letter queued (`queued`), or one that failed: to queue (`queued == false`)
    /// or, reported later, to be delivered (`deliveryFailed`: it was counted as queued).
    func countDeadLetter(queued: Bool, deliveryFailed: Bool = false) {
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

    /// The counters of the partitions held now (see `counters`).
    private let live = Mutex(ProcessingCounters())

    func publishLive(_ counters: ProcessingCounters) {
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

    /// Runs until cancelled (then emits and commits what it has, and leaves the group unless
    /// `leaveGroupOnStop` is false) or, with `stopAtOffsets`, until those offsets are reached (the
    /// same final checkpoint). On an error (a candle not delivered, the consumer failed or fenced)
    /// it stops without a final checkpoint and without leaving the group, and throws it.
    public func run() async throws {
        let started = ContinuousClock.now
        if configuration.createOutputTopic { await ensureOutputTopic() }
        let deadLetterTopicSetup = configuration.createOutputTopic ? Task { await self.ensureDeadLetterTopic() } : nil
        defer { deadLetterTopicSetup?.cancel() }
        let gapReader = (readsGapsTopic ? gaps : nil).map { feed in
            Task { [kafka = configuration.kafka, log = self.logger] in await feed.run(kafka: kafka, logger: log) }
        }
        defer { gapReader?.cancel() }

        let (producer, transactional) = try await makeProducer()

        var consumerConfiguration = KafkaConsumerConfiguration(kafka: configuration.kafka)
        consumerConfiguration.groupID = configuration.group
        consumerConfiguration.autoOffsetReset = .earliest
        consumerConfiguration.autoCommit = false
        consumerConfiguration.batchSize = 4_000
        (consumerConfiguration.fetchWaitMaxMilliseconds, consumerConfiguration.fetchMinBytes) =
            CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: configuration.aggregation.emitIntervalMilliseconds)
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
            let member = configuration.groupInstanceID.map { "static member \($0)" } ?? "dynamic member"
            console.notice(
                "group \(configuration.group), \(member), session timeout \(membership.sessionMilliseconds) ms (\(membership.reason))")
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
                    // Records of an aborted transaction are purged from the queue: that is the
                    // abort working (they are re-derived from the committed offsets), not a failure.
                    if transactional != nil, let code = r.error?.code, code == .purgedInQueue || code == .purgedInFlight { continue }
                    // A dead letter that could not be delivered is logged and counted; it never
                    // stops the candles (their own failures do: see `CheckpointCommit`).
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
        let transaction = try transactional.map { enqueuedAtBegin in
            CheckpointTransaction(
                replayGroup: try ConsumerGroupMetadata(groupID: configuration.replayGroup), inputTopic: configuration.inputTopic,
                rebalances: rebalances, enqueuedAtBegin: enqueuedAtBegin)
        }
        let rebalanceTask = Task {
            for await event in consumer.rebalanceEvents { rebalances.withLock { $0.append(event) } }
        }
        inputRefills.withLock { $0.consumer = consumer }
        defer {
            reportTask.cancel()
            rebalanceTask.cancel()
            // The count is kept, not the consumer (and its librdkafka handle).
            inputRefills.withLock { $0 = (nil, $0.earlier + consumer.fetchRefills) }
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
            case .revoked(let tps) where transaction != nil:
                // The open transaction holds candles of the revoked partitions: abort it before
                // the member rejoins, so none of them can become visible after the next owner's.
                // (Eager rebalancing revokes every partition; all are set up again on assignment.)
                ownership.revoke(tps.filter { $0.topic == inputTopic }.map(\.partition)) {
                    if case .fenced(let reason) = transaction?.abortLocked(producer: producer, ownership: ownership, reason: "revoked", resetPartitions: false)
                    {
                        logger.warning("Could not abort the transaction on revocation", metadata: ["reason": "\(reason)"])
                    }
                }
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
        var loop = CandleProcessorLoop(
            processor: self, consumer: consumer, replayOffsets: replayOffsets, producer: producer, ownership: ownership,
            failures: failures, rebalances: rebalances, transaction: transaction)
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
        await loop.retireAll()
        // A static member leaves only when asked to (see `leaveGroupOnStop`); after a failure it
        // does not: a restart takes its place again.
        consumer.close(leaveGroup: runError == nil && configuration.leaveGroupOnStop)
        replayOffsets.close()
        try? await producer.close(timeout: .seconds(10))
        if let runError { throw runError }
    }

    /// The candle producer: transactional per `configuration.transactions` (initialized, with
    /// its first transaction begun; the second value is its enqueue count then), else idempotent.
    private func makeProducer() async throws -> (KafkaProducer, UInt64?) {
        if configuration.transactions == .off {
            return (try KafkaProducer(configuration: configuration.producerConfiguration, logger: logger), nil)
        }
        if configuration.transactions == .auto {
            // librdkafka's mock cluster answers the transaction APIs but does not store
            // transactional offsets (TxnOffsetCommit) nor hide aborted records: no transactions there.
            let plain = try KafkaProducer(configuration: configuration.producerConfiguration, logger: logger)
            if let cluster = await plain.clusterID(timeout: .seconds(3)), cluster.hasPrefix("mockCluster") {
                console.notice("librdkafka's mock cluster does not keep transactional offsets; candles are produced idempotently without transactions.")
                return (plain, nil)
            }
        }
        var settings = configuration.producerConfiguration
        let id = configuration.transactionalID ?? configuration.groupInstanceID ?? "tape-process.\(String(UInt64.random(in: 0 ... .max), radix: 16))"
        settings.transactionalID = id
        let producer = try KafkaProducer(configuration: settings, logger: logger)
        do {
            try await producer.initTransactions(timeout: .seconds(15))
            try producer.beginTransaction()
            if configuration.announcePartitions { console.notice("transactional output, transactional id \(id)") }
            return (producer, producer.enqueuedRecords)
        } catch {
            if configuration.transactions == .on {
                throw ProcessingError(
                    code: .transactionsUnavailable,
                    message: "Cannot use Kafka transactions (\(error)); run with --transactions off, or against a cluster that supports them.")
            }
            console.notice("The cluster does not support transactions (\(error)); candles are produced idempotently without them.")
            return (try KafkaProducer(configuration: configuration.producerConfiguration, logger: logger), nil)
        }
    }

    /// Adds the counters of a partition no longer held to the totals.
    func add(_ counters: ProcessingCounters) {
        totals.withLock { $0 = $0 + counters }
    }
}
