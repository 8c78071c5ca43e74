import KafkaClient

/// Settings of `CandleProcessor` (`tape process`).
public struct CandleProcessorConfiguration: Sendable {
    /// Cluster connection and raw librdkafka properties (`-X`), used by every client. A raw
    /// property wins over the typed setting of the same librdkafka key (e.g. `linger.ms` over
    /// `lingerMilliseconds`).
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
    /// nil: 1000 ms. Never shorter than the emit interval. A stop (graceful or not) loses nothing by
    /// it: uncommitted updates are replayed and re-emitted with the same values.
    public var commitIntervalMilliseconds: Int64? = nil

    /// The commit interval in effect: commits happen at emissions, so never more often than the
    /// emit interval.
    public var effectiveCommitIntervalMilliseconds: Int64 {
        Self.effectiveCommitIntervalMilliseconds(commit: commitIntervalMilliseconds, emit: aggregation.emitIntervalMilliseconds)
    }

    /// The commit interval in effect for a configured commit interval (nil: the default, 1 s) and
    /// emit interval (for the command line's checks before a configuration exists).
    public static func effectiveCommitIntervalMilliseconds(commit: Int64?, emit: Int64) -> Int64 {
        max(commit ?? 1_000, emit)
    }

    /// The longest commit interval a checkpoint transaction can span: Apache Kafka's default
    /// `transaction.max.timeout.ms` (15 min) less a margin for the commit itself.
    public static let maxTransactionalCommitIntervalMilliseconds: Int64 = 890_000

    /// The candle producer's `transaction.timeout.ms`: how long the coordinator lets a checkpoint's
    /// transaction stay open before aborting it. A transaction spans one commit interval, so the
    /// timeout must outlast it (librdkafka's default of 60 s aborted every transaction of a
    /// processor emitting once a minute or less often): twice the commit interval plus 10 s, at
    /// least librdkafka's 60 s, at most 15 min (Apache Kafka's default `transaction.max.timeout.ms`).
    /// A processor that dies with a transaction open holds read_committed readers back until the
    /// timeout, unless it restarts with the same transactional id (the default ids are stable).
    public var transactionTimeoutMilliseconds: Int {
        let commit = min(effectiveCommitIntervalMilliseconds, Self.maxTransactionalCommitIntervalMilliseconds)
        return Int(min(900_000, max(60_000, 2 * commit + 10_000)))
    }
    /// Create the output topic (`cleanup.policy=compact`) and the dead-letter topic when missing.
    /// Default true.
    public var createOutputTopic = true
    /// Partitions of the output topic when it is created. Default 3.
    public var outputPartitions: Int32 = 3
    /// Stop (after a final checkpoint) once every listed partition of the input topic has been
    /// read up to the given offset (exclusive). For benchmarks and tests; nil runs until cancelled.
    public var stopAtOffsets: [Int32: Int64]?
    /// How long the candle producer waits to batch records (`linger.ms`), in ms. Default 5.
    public var lingerMilliseconds: Double = 5
    /// Log a progress line (a `notice` on the processor's console logger) this often (seconds);
    /// nil for none.
    public var progressSeconds: Double? = nil
    /// Log the group membership, and a line whenever a partition is taken over or given up (a
    /// `notice` each on the processor's console logger). Default true.
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
    /// Whether candles, dead letters and both groups' offsets of a checkpoint go out as one Kafka
    /// transaction (KIP-98 with KIP-447's group fencing), so nothing a fenced or evicted member
    /// (a zombie) produced is ever shown to read_committed consumers. Default `.off`.
    public var transactions: TransactionMode = .off
    /// The transactional id when `transactions` is on; nil: the group instance id, else one made
    /// up per run (`tape-process.<random>`). It must be unique among running processors; reusing a
    /// restarted processor's id fences its previous incarnation at once.
    public var transactionalID: String?

    /// How the processor uses Kafka transactions.
    public enum TransactionMode: String, Sendable, CaseIterable {
        /// Idempotent produces and plain offset commits (the protocol of docs/processing.md).
        case off
        /// Transactions; a cluster without them is an error.
        case on
        /// Transactions when the cluster supports them, else `off` (said in a notice).
        case auto
    }

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

    /// The input consumer's `fetch.wait.max.ms` and `fetch.min.bytes`: a fetch is answered once
    /// 64 KiB are there or after a quarter of the candle emit interval, at most 5 ms — instead of
    /// at every append, which at a steady 10k trades/s cost `tape up` ~12 % of its CPU in round trips
    /// and thread wake-ups. Candles go out once per emit interval anyway, so the wait is not seen
    /// unless the interval is a few ms; under 4 ms, librdkafka's defaults (answer at once) stay.
    public static func fetchBatching(emitIntervalMilliseconds: Int64) -> (waitMilliseconds: Int?, minBytes: Int?) {
        let wait = min(5, emitIntervalMilliseconds / 4)
        return wait >= 1 ? (Int(wait), 64 << 10) : (nil, nil)
    }

    /// The candle producer's settings: every record acknowledged by all replicas, idempotent,
    /// `lingerMilliseconds`, up to a million records queued.
    public var producerConfiguration: KafkaProducerConfiguration {
        var producer = KafkaProducerConfiguration(kafka: kafka)
        producer.acks = -1
        producer.idempotence = true
        producer.lingerMilliseconds = lingerMilliseconds
        producer.maxQueuedMessages = 1_000_000
        producer.transactionTimeoutMilliseconds = transactionTimeoutMilliseconds
        return producer
    }
}

/// Errors of the processor, with what to do about them.
public struct ProcessingError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable {
        let name: String
        public static let deliveryFailed = Code(name: "deliveryFailed")
        public static let consumerFailed = Code(name: "consumerFailed")
        public static let fenced = Code(name: "fenced")
        public static let transactionsUnavailable = Code(name: "transactionsUnavailable")
    }
    public var code: Code
    public var message: String
    public var description: String { message }
}
