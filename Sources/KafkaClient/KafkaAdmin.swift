import Crdkafka
import Foundation
import Logging

/// What the cluster says about itself.
public struct ClusterMetadata: Sendable {
    public struct Broker: Sendable, Hashable {
        public var id: Int32
        public var host: String
        public var port: Int32
    }
    public struct Partition: Sendable, Hashable {
        public var id: Int32
        public var leader: Int32
        public var replicas: [Int32]
        public var inSyncReplicas: [Int32]
        public var error: KafkaError.Code
    }
    public struct Topic: Sendable, Hashable {
        public var name: String
        public var partitions: [Partition]
        public var error: KafkaError.Code
    }
    public var brokers: [Broker]
    public var topics: [Topic]
    public var originatingBroker: String

    static func fetch(rk: OpaquePointer, context: ClientContext, topic: String? = nil, timeout: Duration) async throws -> ClusterMetadata {
        let ms = timeout.librdkafkaMilliseconds
        nonisolated(unsafe) let rk = rk
        let result: Result<ClusterMetadata, KafkaError> = try await Blocking.run {
            var rkt: OpaquePointer? = nil
            if let topic { rkt = rd_kafka_topic_new(rk, topic, nil) }
            defer { if let rkt { rd_kafka_topic_destroy(rkt) } }
            var md: UnsafePointer<rd_kafka_metadata>? = nil
            let err = rd_kafka_metadata(rk, rkt == nil ? 1 : 0, rkt, &md, ms)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else {
                if err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN {
                    return .failure(KafkaError(code: .init(err), message: context.unreachableMessage("read cluster metadata", within: timeout), isRetriable: true))
                }
                return .failure(KafkaError(err, "Cannot read cluster metadata"))
            }
            defer { rd_kafka_metadata_destroy(md) }
            let m = md.pointee
            var brokers: [Broker] = []
            for i in 0..<Int(m.broker_cnt) {
                let b = m.brokers[i]
                brokers.append(Broker(id: b.id, host: String(cString: b.host), port: b.port))
            }
            var topics: [Topic] = []
            for i in 0..<Int(m.topic_cnt) {
                let t = m.topics[i]
                var parts: [Partition] = []
                for j in 0..<Int(t.partition_cnt) {
                    let p = t.partitions[j]
                    parts.append(
                        Partition(
                            id: p.id, leader: p.leader,
                            replicas: (0..<Int(p.replica_cnt)).map { p.replicas[$0] },
                            inSyncReplicas: (0..<Int(p.isr_cnt)).map { p.isrs[$0] },
                            error: .init(p.err)))
                }
                topics.append(Topic(name: String(cString: t.topic), partitions: parts.sorted { $0.id < $1.id }, error: .init(t.err)))
            }
            return .success(
                ClusterMetadata(
                    brokers: brokers.sorted { $0.id < $1.id }, topics: topics.sorted { $0.name < $1.name },
                    originatingBroker: String(cString: m.orig_broker_name)))
        }
        return try result.get()
    }
}

/// Topic configuration entry as the broker describes it.
public struct TopicConfigEntry: Sendable, Hashable {
    public var name: String
    public var value: String?
    public var isDefault: Bool
    public var isSensitive: Bool
}

/// A consumer group's state, members and committed offsets with lag.
public struct ConsumerGroupDescription: Sendable {
    public struct Member: Sendable {
        public var memberID: String
        public var clientID: String
        public var host: String
        public var assignment: [String: [Int32]]
    }
    public struct PartitionLag: Sendable {
        public var topic: String
        public var partition: Int32
        /// nil when the group has no committed offset for the partition.
        public var committed: Int64?
        public var logEndOffset: Int64
        /// logEndOffset − committed (or − log start offset when nothing is committed).
        public var lag: Int64
    }
    public var groupID: String
    public var state: String
    public var protocolType: String
    public var protocolName: String
    public var members: [Member]
    public var offsets: [PartitionLag]
    public var totalLag: Int64 { offsets.reduce(0) { $0 + $1.lag } }
}

/// Cluster administration: metadata, topics, configs and consumer groups.
public final class KafkaAdmin: @unchecked Sendable {
    let rk: OpaquePointer
    let context: ClientContext
    let configuration: KafkaConfiguration
    public let timeout: Duration

    public init(configuration: KafkaConfiguration, timeout: Duration = .seconds(10), logger: Logger = Logger(label: "tape.kafka.admin")) throws {
        self.configuration = configuration
        self.timeout = timeout
        context = ClientContext(logger: logger, bootstrapServers: configuration.bootstrapServers)
        let conf = try configuration.makeConf(extra: [])
        context.install(on: conf)
        rk = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: conf)
    }

    deinit { rd_kafka_destroy(rk) }

    private var timeoutMilliseconds: Int32 {
        timeout.librdkafkaMilliseconds
    }

    /// Brokers and all topics.
    public func metadata() async throws -> ClusterMetadata {
        try await ClusterMetadata.fetch(rk: rk, context: context, timeout: timeout)
    }

    /// Topic names, internal topics (`__...`) excluded unless asked.
    public func listTopics(includeInternal: Bool = false) async throws -> [ClusterMetadata.Topic] {
        try await metadata().topics.filter { includeInternal || !$0.name.hasPrefix("__") }
    }

    /// One topic's partitions and configuration.
    public func describeTopic(_ name: String) async throws -> (topic: ClusterMetadata.Topic, configs: [TopicConfigEntry]) {
        let md = try await metadata()
        guard let topic = md.topics.first(where: { $0.name == name }) else {
            throw KafkaError(code: .unknownTopicOrPartition, message: "Topic '\(name)' does not exist. `tape topics list` shows the topics there are.")
        }
        let configs = (try? await describeConfigs(topic: name)) ?? []
        return (topic, configs)
    }

    /// Runs an admin operation on a temporary queue and waits for its result event.
    private func adminRequest(
        _ what: String, _ start: @escaping @Sendable (OpaquePointer, OpaquePointer, OpaquePointer) -> Void,
        _ handle: @escaping @Sendable (OpaquePointer) throws -> Void
    ) async throws {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeoutMilliseconds
        let timeout = self.timeout
        let context = self.context
        try await Blocking.run {
            guard let queue = rd_kafka_queue_new(rk) else { throw KafkaError(code: .state, message: "Cannot create admin queue") }
            defer { rd_kafka_queue_destroy(queue) }
            let options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY)!
            defer { rd_kafka_AdminOptions_destroy(options) }
            var errbuf = [CChar](repeating: 0, count: 256)
            _ = rd_kafka_AdminOptions_set_request_timeout(options, ms, &errbuf, errbuf.count)
            start(rk, options, queue)
            guard let event = rd_kafka_queue_poll(queue, ms + 1000) else {
                throw KafkaError(code: .timedOut, message: Self.noAnswerMessage(rk: rk, context: context, what, within: timeout), isRetriable: true)
            }
            defer { rd_kafka_event_destroy(event) }
            let err = rd_kafka_event_error(event)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                if err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT {
                    throw KafkaError(code: .init(err), message: Self.noAnswerMessage(rk: rk, context: context, what, within: timeout), isRetriable: true)
                }
                throw KafkaError(code: .init(err), message: "Cannot \(what): \(String(cString: rd_kafka_event_error_string(event)))")
            }
            try handle(event)
        }
    }

    /// Why an admin request got no answer: no broker reachable at all, or brokers that answer
    /// metadata requests but not this one (librdkafka's mock cluster has no CreateTopics, for example).
    static func noAnswerMessage(rk: OpaquePointer, context: ClientContext, _ what: String, within timeout: Duration) -> String {
        var md: UnsafePointer<rd_kafka_metadata>? = nil
        let err = rd_kafka_metadata(rk, 0, nil, &md, 2000)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { return context.unreachableMessage(what, within: timeout) }
        rd_kafka_metadata_destroy(md)
        return "Cannot \(what): the cluster at \(context.bootstrapServers) answers, but not this request (no reply within \(ClientContext.seconds(timeout))); "
            + "it may not support it (librdkafka's mock cluster has no admin APIs: create topics with `tape mock-cluster --topic NAME:PARTITIONS`)."
    }

    /// Creates a topic. `configs` are topic configs such as `cleanup.policy=compact`.
    public func createTopic(_ name: String, partitions: Int32 = 1, replicationFactor: Int32 = 1, configs: [String: String] = [:]) async throws {
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(name, partitions, replicationFactor, &errbuf, errbuf.count) else {
            throw KafkaError(code: .invalidArgument, message: "Cannot create topic '\(name)': \(string(fromBuffer: errbuf))")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        for (k, v) in configs {
            let err = rd_kafka_NewTopic_set_config(newTopic, k, v)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Invalid topic config \(k)=\(v)") }
        }
        let box = UnsafeSendable(newTopic)
        try await adminRequest(
            "create topic '\(name)'",
            { rk, options, queue in
                var topics: [OpaquePointer?] = [box.value]
                rd_kafka_CreateTopics(rk, &topics, 1, options, queue)
            },
            { event in
                let result = rd_kafka_event_CreateTopics_result(event)
                var count = 0
                let topics = rd_kafka_CreateTopics_result_topics(result, &count)
                try Self.checkTopicResults(topics, count, verb: "create")
            })
    }

    /// Deletes a topic and its data.
    public func deleteTopic(_ name: String) async throws {
        guard let deleteTopic = rd_kafka_DeleteTopic_new(name) else {
            throw KafkaError(code: .invalidArgument, message: "Invalid topic name '\(name)'")
        }
        defer { rd_kafka_DeleteTopic_destroy(deleteTopic) }
        let box = UnsafeSendable(deleteTopic)
        try await adminRequest(
            "delete topic '\(name)'",
            { rk, options, queue in
                var topics: [OpaquePointer?] = [box.value]
                rd_kafka_DeleteTopics(rk, &topics, 1, options, queue)
            },
            { event in
                let result = rd_kafka_event_DeleteTopics_result(event)
                var count = 0
                let topics = rd_kafka_DeleteTopics_result_topics(result, &count)
                try Self.checkTopicResults(topics, count, verb: "delete")
            })
    }

    private static func checkTopicResults(_ topics: UnsafeMutablePointer<OpaquePointer?>?, _ count: Int, verb: String) throws {
        for i in 0..<count {
            guard let t = topics?[i] else { continue }
            let err = rd_kafka_topic_result_error(t)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                let name = String(cString: rd_kafka_topic_result_name(t))
                let reason = rd_kafka_topic_result_error_string(t).map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(err))
                var message = "Cannot \(verb) topic '\(name)': \(reason)"
                if err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS { message = "Topic '\(name)' already exists." }
                if err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART { message = "Topic '\(name)' does not exist." }
                throw KafkaError(code: .init(err), message: message)
            }
        }
    }

    /// A topic's configuration entries.
    public func describeConfigs(topic: String) async throws -> [TopicConfigEntry] {
        guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic) else { return [] }
        defer { rd_kafka_ConfigResource_destroy(resource) }
        let box = UnsafeSendable(resource)
        let collected = LockedBox<[TopicConfigEntry]>([])
        try await adminRequest(
            "describe configs of '\(topic)'",
            { rk, options, queue in
                var resources: [OpaquePointer?] = [box.value]
                rd_kafka_DescribeConfigs(rk, &resources, 1, options, queue)
            },
            { event in
                let result = rd_kafka_event_DescribeConfigs_result(event)
                var count = 0
                guard let resources = rd_kafka_DescribeConfigs_result_resources(result, &count) else { return }
                var entries: [TopicConfigEntry] = []
                for i in 0..<count {
                    guard let r = resources[i] else { continue }
                    let err = rd_kafka_ConfigResource_error(r)
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                        throw KafkaError(err, "Cannot describe configs of '\(topic)'")
                    }
                    var n = 0
                    guard let configs = rd_kafka_ConfigResource_configs(r, &n) else { continue }
                    for j in 0..<n {
                        guard let c = configs[j] else { continue }
                        entries.append(
                            TopicConfigEntry(
                                name: String(cString: rd_kafka_ConfigEntry_name(c)),
                                value: rd_kafka_ConfigEntry_value(c).map { String(cString: $0) },
                                isDefault: rd_kafka_ConfigEntry_is_default(c) != 0,
                                isSensitive: rd_kafka_ConfigEntry_is_sensitive(c) != 0))
                    }
                }
                collected.value = entries.sorted { $0.name < $1.name }
            })
        return collected.value
    }

    /// Consumer group ids known to the cluster.
    public func listGroups() async throws -> [(id: String, state: String, protocolType: String)] {
        try await rawGroups(nil).map { ($0.groupID, $0.state, $0.protocolType) }.sorted { $0.0 < $1.0 }
    }

    private func rawGroups(_ group: String?) async throws -> [ConsumerGroupDescription] {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeoutMilliseconds
        let timeout = self.timeout
        let context = self.context
        return try await Blocking.run {
            var list: UnsafePointer<rd_kafka_group_list>? = nil
            let err = rd_kafka_list_groups(rk, group, &list, ms)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let list else {
                if err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT {
                    throw KafkaError(code: .init(err), message: context.unreachableMessage("list consumer groups", within: timeout), isRetriable: true)
                }
                throw KafkaError(err, "Cannot list consumer groups")
            }
            defer { rd_kafka_group_list_destroy(list) }
            var groups: [ConsumerGroupDescription] = []
            for i in 0..<Int(list.pointee.group_cnt) {
                let g = list.pointee.groups[i]
                var members: [ConsumerGroupDescription.Member] = []
                for j in 0..<Int(g.member_cnt) {
                    let m = g.members[j]
                    let assignment: [String: [Int32]]
                    if let bytes = m.member_assignment, m.member_assignment_size > 0 {
                        let raw = UnsafeRawBufferPointer(start: bytes, count: Int(m.member_assignment_size))
                        assignment = ConsumerProtocolAssignment.decode(Array(raw)) ?? [:]
                    } else {
                        assignment = [:]
                    }
                    members.append(
                        .init(
                            memberID: String(cString: m.member_id), clientID: String(cString: m.client_id), host: String(cString: m.client_host),
                            assignment: assignment))
                }
                groups.append(
                    ConsumerGroupDescription(
                        groupID: String(cString: g.group), state: String(cString: g.state),
                        protocolType: String(cString: g.protocol_type), protocolName: String(cString: g.protocol),
                        members: members, offsets: []))
            }
            return groups
        }
    }

    /// A group's state, members, committed offsets and lag per partition of the topics it has committed to
    /// (or of `topics` when given).
    public func describeGroup(_ group: String, topics: [String]? = nil) async throws -> ConsumerGroupDescription {
        let unknown = ConsumerGroupDescription(groupID: group, state: "Unknown", protocolType: "", protocolName: "", members: [], offsets: [])
        var description: ConsumerGroupDescription
        do {
            description = try await rawGroups(group).first ?? unknown
        } catch let error as KafkaError where error.code == .init(rawValue: RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE.rawValue) {
            // Clusters without ListGroups/DescribeGroups (librdkafka's mock cluster): offsets and lag only.
            context.logger.debug("DescribeGroups unsupported", metadata: ["error": "\(error.message)"])
            description = unknown
        }
        let md = try await metadata()
        var candidateTopics = Set(topics ?? [])
        if topics == nil {
            for member in description.members { candidateTopics.formUnion(member.assignment.keys) }
            if candidateTopics.isEmpty { candidateTopics = Set(md.topics.map(\.name).filter { !$0.hasPrefix("__") }) }
        }
        var partitions: [TopicPartitionOffset] = []
        for t in md.topics where candidateTopics.contains(t.name) {
            for p in t.partitions { partitions.append(.init(topic: t.name, partition: p.id, offset: KafkaOffset.invalid)) }
        }
        let committed = try await committedOffsets(group: group, partitions: partitions)
        var lags: [ConsumerGroupDescription.PartitionLag] = []
        for tp in committed {
            let (low, high) = try await watermarks(topic: tp.topic, partition: tp.partition)
            let hasCommit = tp.offset >= 0
            if topics == nil && !hasCommit && description.members.isEmpty { continue }
            let start = hasCommit ? tp.offset : low
            lags.append(.init(topic: tp.topic, partition: tp.partition, committed: hasCommit ? tp.offset : nil, logEndOffset: high, lag: max(0, high - start)))
        }
        description.offsets = lags.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        return description
    }

    /// Committed offsets of `group` for `partitions` (offset < 0 where none is committed).
    public func committedOffsets(group: String, partitions: [TopicPartitionOffset]) async throws -> [TopicPartitionOffset] {
        if partitions.isEmpty { return [] }
        var config = KafkaConsumerConfiguration(kafka: configuration)
        config.groupID = group
        let consumer = try KafkaConsumer(configuration: config, logger: context.logger)
        defer { consumer.close() }
        return try await consumer.committed(partitions, timeout: timeout)
    }

    /// Low and high watermark offsets of a partition.
    public func watermarks(topic: String, partition: Int32) async throws -> (low: Int64, high: Int64) {
        try await queryWatermarks(rk: rk, topic: topic, partition: partition, timeout: self.timeout)
    }
}

/// Kafka's ConsumerProtocol assignment: version int16, [topic string, [partition int32]], userData bytes.
enum ConsumerProtocolAssignment {
    static func decode(_ bytes: [UInt8]) -> [String: [Int32]]? {
        var i = 0
        func int16() -> Int16? {
            guard i + 2 <= bytes.count else { return nil }
            defer { i += 2 }
            return Int16(bitPattern: UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
        }
        func int32() -> Int32? {
            guard i + 4 <= bytes.count else { return nil }
            defer { i += 4 }
            return Int32(bitPattern: UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3]))
        }
        guard int16() != nil, let topicCount = int32(), topicCount >= 0, topicCount < 100_000 else { return nil }
        var result: [String: [Int32]] = [:]
        for _ in 0..<topicCount {
            guard let len = int16(), len >= 0, i + Int(len) <= bytes.count else { return nil }
            let name = String(decoding: bytes[i..<i + Int(len)], as: UTF8.self)
            i += Int(len)
            guard let n = int32(), n >= 0, n < 1_000_000 else { return nil }
            var parts: [Int32] = []
            for _ in 0..<n {
                guard let p = int32() else { return nil }
                parts.append(p)
            }
            result[name] = parts
        }
        return result
    }
}

/// Moves a C pointer into a `@Sendable` closure where we know the access is confined.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ value: T) { _value = value }
    var value: T {
        get { lock.withLock { _value } }
        set { lock.withLock { _value = newValue } }
    }
}
