import KafkaProtocol
import NIOConcurrencyHelpers

/// Why a topic operation failed.
public struct TopicStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let raw: String
        public static let alreadyExists = Code(raw: "alreadyExists")
        public static let unknownTopic = Code(raw: "unknownTopic")
        public static let io = Code(raw: "io")
        /// The name collides with an existing topic's ('.' vs '_').
        public static let invalidTopic = Code(raw: "invalidTopic")
        /// A limit (e.g. total partitions) forbids it.
        public static let policyViolation = Code(raw: "policyViolation")
        /// A partition count that is not allowed (CreatePartitions asking for fewer or as many).
        public static let invalidPartitions = Code(raw: "invalidPartitions")
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// The broker's view of topics: which exist, their partition logs and configs, and when
/// appended data is durable. `tape broker` uses the durable `LogManager` (Storage/);
/// `InMemoryTopicStore` serves unit tests.
public protocol TopicStore: Sendable {
    func topicNames() -> [String]
    /// The topic's partition logs, index = partition number; nil if the topic does not exist.
    func partitionLogs(of topic: String) -> [any PartitionLog]?
    /// Configs set explicitly on the topic (not defaults); nil if the topic does not exist.
    func configs(of topic: String) -> [String: String]?
    func createTopic(name: String, partitions: Int32, configs: [String: String]) throws
    func deleteTopic(name: String) throws
    /// Returns once what was appended to `log` so far is as durable as the fsync policy
    /// promises (group commit: concurrent callers may share one fsync).
    func waitDurable(_ log: any PartitionLog) async throws
    /// When the fsync policy asks no wait (interval, never): does what `waitDurable` would (e.g.
    /// schedules the log for the next interval fsync) and returns true. Otherwise (the caller must
    /// `waitDurable`) returns false and does nothing.
    func durableWithoutWaiting(_ log: any PartitionLog) -> Bool
    /// CreatePartitions: grows the topic to `count` partitions in all (durably), never shrinks it.
    func createPartitions(name: String, count: Int32) throws
    /// Replaces the configs set explicitly on the topic (already validated) and applies them to its
    /// logs, durably. Throws for an unknown topic.
    func setConfigs(of topic: String, to configs: [String: String]) throws
    /// Defaults of topic configs that depend on how the broker was started (`flush.messages` and
    /// `flush.ms` from `--fsync`), for DescribeConfigs.
    func topicConfigDefaults() -> [String: String]
    /// The dynamic broker configs set with AlterConfigs (see `DynamicBrokerConfigs`).
    func dynamicBrokerConfigs() -> [String: String]
    /// Replaces the dynamic broker configs (already validated), durably.
    func setDynamicBrokerConfigs(_ configs: [String: String]) throws
}

extension TopicStore {
    public func durableWithoutWaiting(_ log: any PartitionLog) -> Bool { false }
    public func createPartitions(name: String, count: Int32) throws {
        throw TopicStoreError(.policyViolation, "this topic store cannot add partitions")
    }
    public func setConfigs(of topic: String, to configs: [String: String]) throws {
        throw TopicStoreError(.io, "this topic store cannot change topic configs")
    }
    public func topicConfigDefaults() -> [String: String] { [:] }
    public func dynamicBrokerConfigs() -> [String: String] { [:] }
    public func setDynamicBrokerConfigs(_ configs: [String: String]) throws {
        throw TopicStoreError(.io, "this topic store cannot store dynamic broker configs")
    }
}

/// The Kafka error code and message for a failed topic creation, whatever store threw it.
public func topicCreationFailure(_ error: any Error) -> (code: ErrorCode, message: String) {
    if let e = error as? TopicStoreError {
        switch e.code {
        case .alreadyExists: return (.topicAlreadyExists, e.message)
        case .invalidTopic: return (.invalidTopicException, e.message)
        case .policyViolation: return (.policyViolation, e.message)
        default: return (.unknownServerError, e.message)
        }
    }
    if let e = error as? StorageError {
        switch e.code {
        case .topicAlreadyExists: return (.topicAlreadyExists, e.message)
        case .topicCollision: return (.invalidTopicException, e.message)
        case .partitionLimit: return (.policyViolation, e.message)
        case .invalidConfig: return (.invalidConfig, e.message)
        case .invalidRequest: return (.invalidRequest, e.message)
        default: return (.unknownServerError, "could not create the topic: \(e.message)")
        }
    }
    return (.unknownServerError, "could not create the topic: \(error)")
}

/// Topics kept in memory with `InMemoryPartitionLog`s.
public final class InMemoryTopicStore: TopicStore {
    private struct Topic {
        var logs: [InMemoryPartitionLog]
        var configs: [String: String]
    }
    private let topics = NIOLockedValueBox<[String: Topic]>([:])
    public init() {}

    public func topicNames() -> [String] { topics.withLockedValue { $0.keys.sorted() } }

    public func partitionLogs(of topic: String) -> [any PartitionLog]? {
        topics.withLockedValue { $0[topic]?.logs }
    }

    public func configs(of topic: String) -> [String: String]? {
        topics.withLockedValue { $0[topic]?.configs }
    }

    public func createTopic(name: String, partitions: Int32, configs: [String: String]) throws {
        try topics.withLockedValue { t in
            if t[name] != nil { throw TopicStoreError(.alreadyExists, "topic \(name) already exists") }
            let key = LogManager.collisionKey(name)
            if let other = t.keys.filter({ LogManager.collisionKey($0) == key }).min() {
                throw TopicStoreError(.invalidTopic, "Topic '\(name)' collides with existing topic: \(other)")
            }
            t[name] = Topic(logs: (0..<partitions).map { InMemoryPartitionLog(topic: name, partition: $0) }, configs: configs)
        }
    }

    public func createPartitions(name: String, count: Int32) throws {
        try topics.withLockedValue { t in
            guard var topic = t[name] else { throw TopicStoreError(.unknownTopic, "topic \(name) does not exist") }
            let current = Int32(topic.logs.count)
            guard count > current else {
                throw TopicStoreError(.invalidPartitions, "topic \(name) has \(current) partitions; the new count must be larger, got \(count)")
            }
            topic.logs += (current..<count).map { InMemoryPartitionLog(topic: name, partition: $0) }
            t[name] = topic
        }
    }

    public func deleteTopic(name: String) throws {
        try topics.withLockedValue { t in
            if t.removeValue(forKey: name) == nil { throw TopicStoreError(.unknownTopic, "topic \(name) does not exist") }
        }
    }

    public func waitDurable(_ log: any PartitionLog) async throws {}

    public func setConfigs(of topic: String, to configs: [String: String]) throws {
        try topics.withLockedValue { t in
            guard t[topic] != nil else { throw TopicStoreError(.unknownTopic, "topic \(topic) does not exist") }
            t[topic]!.configs = configs
        }
    }
}
