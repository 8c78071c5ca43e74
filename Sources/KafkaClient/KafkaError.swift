import Crdkafka

/// An error from Kafka or from librdkafka, with a message a person can act on.
///
/// `code` is librdkafka's `rd_kafka_resp_err_t` value: negative codes are client-side
/// (transport, timeouts, queue full, ...), positive ones are Kafka protocol error codes.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A librdkafka / Kafka error code. New codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        init(_ err: rd_kafka_resp_err_t) { self.rawValue = err.rawValue }

        public static let noError = Code(RD_KAFKA_RESP_ERR_NO_ERROR)
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        public static let unknownTopic = Code(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        public static let unknownPartition = Code(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        public static let topicAlreadyExists = Code(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        public static let invalidReplicationFactor = Code(RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR)
        public static let messageTooLarge = Code(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        public static let partitionEOF = Code(RD_KAFKA_RESP_ERR__PARTITION_EOF)
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        public static let state = Code(RD_KAFKA_RESP_ERR__STATE)
        public static let destroyed = Code(RD_KAFKA_RESP_ERR__DESTROY)
        /// A record purged from the producer's queue, e.g. by an aborted transaction (it was never delivered).
        public static let purgedInQueue = Code(RD_KAFKA_RESP_ERR__PURGE_QUEUE)
        /// A record purged while in flight, e.g. by an aborted transaction.
        public static let purgedInFlight = Code(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        public static let producerFenced = Code(RD_KAFKA_RESP_ERR_PRODUCER_FENCED)
        public static let invalidProducerEpoch = Code(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
        public static let fencedInstanceID = Code(RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
        public static let illegalGeneration = Code(RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
        public static let unknownMemberID = Code(RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        public static let rebalanceInProgress = Code(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS)
        public static let unsupportedVersion = Code(RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION)
        /// A configuration problem found on this side (bad property name or value, a client that
        /// cannot be created). Not a librdkafka code: its value (-1000) lies outside librdkafka's
        /// ranges, so it never equals `invalidArgument` or any code librdkafka reports.
        public static let configuration = Code(rawValue: -1000)

        /// librdkafka's symbolic name, e.g. `_TRANSPORT` or `UNKNOWN_TOPIC_OR_PART`
        /// (`_CONFIGURATION` for `configuration`).
        public var name: String {
            if self == .configuration { return "_CONFIGURATION" }
            return String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: rawValue)))
        }
        public var description: String { name }
    }

    public var code: Code
    /// What happened and, where we know it, what to do about it.
    public var message: String
    /// True when retrying the same operation may succeed.
    public var isRetriable: Bool
    /// True when the client instance cannot be used any more.
    public var isFatal: Bool
    /// True when a transactional producer's current transaction failed and must be aborted
    /// (`KafkaProducer.abortTransaction`) before another can begin.
    public var requiresAbort: Bool

    public init(code: Code, message: String, isRetriable: Bool = false, isFatal: Bool = false, requiresAbort: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.isFatal = isFatal
        self.requiresAbort = requiresAbort
    }

    public var description: String { message }

    /// librdkafka's local queue is full (`queue.buffering.max.messages`); retry after deliveries drain it.
    public static let queueFullError = KafkaError(
        code: .queueFull, message: "The producer's local queue is full; wait for deliveries or raise queue.buffering.max.messages.", isRetriable: true)

    /// From a response code; `context` says what was being done.
    init(_ err: rd_kafka_resp_err_t, _ context: String) {
        let reason = String(cString: rd_kafka_err2str(err))
        self.init(code: Code(err), message: "\(context): \(reason)", isRetriable: Self.retriable(err))
    }

    /// From an `rd_kafka_error_t`, which this initializer destroys.
    init(consuming error: OpaquePointer, _ context: String) {
        let code = rd_kafka_error_code(error)
        let reason = String(cString: rd_kafka_error_string(error))
        self.init(
            code: Code(code),
            message: "\(context): \(reason)",
            isRetriable: rd_kafka_error_is_retriable(error) != 0,
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            requiresAbort: rd_kafka_error_txn_requires_abort(error) != 0
        )
        rd_kafka_error_destroy(error)
    }

    static func retriable(_ err: rd_kafka_resp_err_t) -> Bool {
        switch err {
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
            return true
        default:
            return false
        }
    }
}
