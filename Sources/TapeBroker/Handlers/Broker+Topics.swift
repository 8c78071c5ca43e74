import Foundation
import KafkaProtocol
import Logging
import NIOCore

/// Metadata and topic administration: Metadata (with auto-creation), CreateTopics, DeleteTopics,
/// DescribeConfigs.
extension Broker {
    /// Partitions one CreateTopics request may create in all (Kafka's controller: MAX_PARTITIONS_PER_BATCH).
    static let maxPartitionsPerCreateTopics = 10_000

    /// Kafka's legal topic names: 1–249 of [a-zA-Z0-9._-], not "." or "..".
    static func topicNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "topic name is empty" }
        if name == "." || name == ".." { return "topic name may not be '.' or '..'" }
        if name.utf8.count > 249 { return "topic name is longer than 249 characters" }
        let ok = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x5F || c == 0x2D
        }
        return ok ? nil : "topic name \(name) has characters other than a-z A-Z 0-9 . _ -"
    }

    /// The topic's logs, creating the topic first when auto-creation is on and allowed.
    func logsCreatingIfAllowed(_ topic: String, allowed: Bool) -> ([any PartitionLog]?, ErrorCode) {
        if let logs = topics.partitionLogs(of: topic) { return (logs, .none) }
        guard configuration.autoCreateTopics && allowed else { return (nil, .unknownTopicOrPartition) }
        if let problem = Self.topicNameProblem(topic) {
            logger.info("not auto-creating topic: \(problem)")
            return (nil, .invalidTopicException)
        }
        do {
            try topics.createTopic(name: topic, partitions: configuration.numPartitions, configs: [:])
            logger.info("auto-created topic", metadata: ["topic": "\(topic)", "partitions": "\(configuration.numPartitions)"])
        } catch {
            let failure = topicCreationFailure(error)
            if failure.code != .topicAlreadyExists {
                logger.error("could not auto-create topic \(topic): \(failure.message)")
                return (nil, failure.code)
            }
        }
        return (topics.partitionLogs(of: topic), .none)
    }

    func metadata(_ r: MetadataRequest, version: Int16) -> MetadataResponse {
        let node = configuration.nodeId
        let names = r.topics ?? topics.topicNames()
        let allowCreate = r.topics != nil && r.allowAutoTopicCreation
        let described = names.map { name -> MetadataResponse.Topic in
            let (logs, code) = logsCreatingIfAllowed(name, allowed: allowCreate)
            guard let logs else { return MetadataResponse.Topic(errorCode: code, name: name, partitions: []) }
            return MetadataResponse.Topic(
                errorCode: .none, name: name,
                partitions: logs.indices.map {
                    MetadataResponse.Partition(partitionIndex: Int32($0), leaderId: node, replicaNodes: [node], isrNodes: [node])
                })
        }
        var response = MetadataResponse(
            brokers: [.init(nodeId: node, host: advertisedHost, port: Int32(advertisedPort))], clusterId: configuration.clusterId,
            controllerId: node, topics: described)
        // librdkafka's DescribeCluster asks this way (Metadata v8+), not with DescribeCluster.
        if r.includeClusterAuthorizedOperations { response.clusterAuthorizedOperations = Self.clusterOperations }
        return response
    }

    /// Every topic config this broker accepts, with Kafka's default (validation: `LogConfig.problem`).
    static var knownTopicConfigs: [String: String] { LogConfig.supportedDefaults }

    /// Why a topic config cannot be set (INVALID_CONFIG), or nil.
    static func configProblem(_ name: String, _ value: String?) -> String? { LogConfig.problem(key: name, value: value) }

    func createTopics(_ r: CreateTopicsRequest, version: Int16) -> CreateTopicsResponse {
        // Kafka's controller refuses a request for more than 10 000 partitions in all, whole.
        let requested = r.topics.reduce(0) {
            $0 + Int($1.assignments.isEmpty ? ($1.numPartitions == -1 ? configuration.numPartitions : max($1.numPartitions, 0)) : Int32($1.assignments.count))
        }
        if requested > Self.maxPartitionsPerCreateTopics {
            let message = "Excessively large number of partitions per request: \(requested) requested, limit \(Self.maxPartitionsPerCreateTopics)."
            logger.info("CreateTopics refused: \(message)")
            return CreateTopicsResponse(topics: r.topics.map { .init(name: $0.name, errorCode: .policyViolation, errorMessage: message) })
        }
        return CreateTopicsResponse(
            topics: r.topics.map { t in
                func fail(_ code: ErrorCode, _ message: String) -> CreateTopicsResponse.Topic {
                    logger.info("CreateTopics \(t.name) refused: \(message)")
                    return .init(name: t.name, errorCode: code, errorMessage: message)
                }
                if let problem = Self.topicNameProblem(t.name) { return fail(.invalidTopicException, problem) }
                if topics.partitionLogs(of: t.name) != nil { return fail(.topicAlreadyExists, "topic \(t.name) already exists") }
                var partitions = t.numPartitions == -1 ? configuration.numPartitions : t.numPartitions
                if !t.assignments.isEmpty {
                    if t.assignments.contains(where: { $0.brokerIds.contains { $0 != configuration.nodeId } || $0.brokerIds.count > 1 }) {
                        return fail(
                            .invalidReplicaAssignment,
                            "this tape broker is a single node (id \(configuration.nodeId)); every partition's only replica must be node \(configuration.nodeId)"
                        )
                    }
                    partitions = Int32(t.assignments.count)
                }
                if partitions <= 0 || partitions > 10_000 {
                    return fail(.invalidPartitions, "number of partitions must be between 1 and 10000, got \(partitions)")
                }
                if t.replicationFactor > 1 {
                    return fail(
                        .invalidReplicationFactor,
                        "replication factor \(t.replicationFactor) is impossible on this single-node tape broker: it has one broker to hold each partition; use 1 (or -1), or point --brokers at an Apache Kafka cluster for replication"
                    )
                }
                if t.replicationFactor == 0 || t.replicationFactor < -1 {
                    return fail(.invalidReplicationFactor, "replication factor must be 1 (or -1 for the default), got \(t.replicationFactor)")
                }
                var configs: [String: String] = [:]
                for c in t.configs {
                    if let problem = Self.configProblem(c.name, c.value) { return fail(.invalidConfig, problem) }
                    if let value = c.value { configs[c.name] = value }
                }
                if r.validateOnly { return .init(name: t.name, errorCode: .none) }
                do {
                    try topics.createTopic(name: t.name, partitions: partitions, configs: configs)
                } catch {
                    let failure = topicCreationFailure(error)
                    return fail(failure.code, failure.message)
                }
                logger.info("created topic", metadata: ["topic": "\(t.name)", "partitions": "\(partitions)"])
                return .init(name: t.name, errorCode: .none)
            })
    }

    func deleteTopics(_ r: DeleteTopicsRequest) -> DeleteTopicsResponse {
        DeleteTopicsResponse(
            responses: r.topicNames.map { name in
                // Checked here so any TopicStore's own "unknown topic" error type does not matter.
                guard topics.partitionLogs(of: name) != nil else { return .init(name: name, errorCode: .unknownTopicOrPartition) }
                do {
                    try topics.deleteTopic(name: name)
                    producers.removeTopic(name)
                    removeTopicFromTransactions(name)
                    seededPartitions = seededPartitions.filter { $0.topic != name }
                    committedOffsets.removeTopic(name)
                    wakeFetchers(topic: name)
                    logger.info("deleted topic", metadata: ["topic": "\(name)"])
                    return .init(name: name, errorCode: .none)
                } catch let e as TopicStoreError where e.code == .unknownTopic {
                    return .init(name: name, errorCode: .unknownTopicOrPartition)
                } catch {
                    logger.error("could not delete topic \(name): \(error)")
                    return .init(name: name, errorCode: .unknownServerError)
                }
            })
    }

    func describeConfigs(_ r: DescribeConfigsRequest) -> DescribeConfigsResponse {
        DescribeConfigsResponse(
            results: r.resources.map { res in
                var entries: [(String, String, Int8)] = []
                switch res.resourceType {
                case DescribeConfigsRequest.topicResource:
                    guard let set = topics.configs(of: res.resourceName) else {
                        return .init(
                            errorCode: .unknownTopicOrPartition, errorMessage: "topic \(res.resourceName) does not exist", resourceType: res.resourceType,
                            resourceName: res.resourceName, configs: [])
                    }
                    var defaults = Self.knownTopicConfigs
                    defaults["max.message.bytes"] = "\(configuration.maxMessageBytes)"
                    for (k, v) in topics.topicConfigDefaults() { defaults[k] = v }
                    for (k, d) in defaults.sorted(by: { $0.key < $1.key }) {
                        if let value = set[k] { entries.append((k, value, 1)) } else { entries.append((k, d, 5)) }
                    }
                case DescribeConfigsRequest.brokerResource:
                    entries = [
                        ("auto.create.topics.enable", "\(configuration.autoCreateTopics)", 4),
                        ("broker.id", "\(configuration.nodeId)", 4),
                        ("default.replication.factor", "1", 4),
                        ("message.max.bytes", "\(configuration.maxMessageBytes)", 4),
                        ("num.partitions", "\(configuration.numPartitions)", 4),
                        ("offsets.topic.replication.factor", "1", 4),
                    ]
                    // Dynamic ones (AlterConfigs on the broker): DYNAMIC_BROKER_CONFIG (2) when set,
                    // else Kafka's default (5). They have no effect (see DynamicBrokerConfigs).
                    let dynamic = topics.dynamicBrokerConfigs()
                    for k in DynamicBrokerConfigs.keys {
                        if let v = dynamic[k] {
                            entries.append((k, v, 2))
                        } else if let d = DynamicBrokerConfigs.defaultValue(of: k) {
                            entries.append((k, d, 5))
                        }
                    }
                default:
                    return .init(
                        errorCode: .invalidRequest, errorMessage: "resource type \(res.resourceType) is not supported", resourceType: res.resourceType,
                        resourceName: res.resourceName, configs: [])
                }
                if let keys = res.configurationKeys { entries = entries.filter { keys.contains($0.0) } }
                return .init(
                    errorCode: .none, resourceType: res.resourceType, resourceName: res.resourceName,
                    configs: entries.map {
                        .init(
                            name: $0.0, value: $0.1,
                            readOnly: res.resourceType == DescribeConfigsRequest.brokerResource && !DynamicBrokerConfigs.keys.contains($0.0),
                            configSource: $0.2)
                    })
            })
    }
}
