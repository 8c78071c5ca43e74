import KafkaProtocol
import Logging

/// AlterConfigs and IncrementalAlterConfigs for topic resources. Validation is LogConfig's
/// (`LogConfig.problem`), shared with CreateTopics; the new set of overrides is stored durably and
/// applied to the live logs by the topic store.
extension Broker {
    func alterConfigs(_ r: AlterConfigsRequest) -> AlterConfigsResponse {
        AlterConfigsResponse(
            responses: r.resources.map { res in
                alterResource(type: res.resourceType, name: res.resourceName, validateOnly: r.validateOnly, api: "AlterConfigs") { _, problem in
                    var next: [String: String] = [:]
                    // A key given twice: the last value wins, as in Apache Kafka (librdkafka's test
                    // helper sends every described config and then the changed ones).
                    for c in res.configs {
                        if let why = problem(c.name, c.value) { return .failure(.invalidConfig, why) }
                        guard let value = c.value else {
                            return .failure(.invalidConfig, "config \(c.name) has a null value; AlterConfigs needs a value for every config it sets")
                        }
                        next[c.name] = value
                    }
                    return .success(next)
                }
            })
    }

    func incrementalAlterConfigs(_ r: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
        IncrementalAlterConfigsResponse(
            responses: r.resources.map { res in
                alterResource(type: res.resourceType, name: res.resourceName, validateOnly: r.validateOnly, api: "IncrementalAlterConfigs") {
                    current, problem in
                    var next = current
                    var seen: Set<String> = []
                    for c in res.configs {
                        if !seen.insert(c.name).inserted { return .failure(.invalidRequest, "duplicate config key \(c.name) in the request") }
                        switch c.operation {
                        case IncrementalAlterConfigsRequest.set:
                            if let why = problem(c.name, c.value) { return .failure(.invalidConfig, why) }
                            guard let value = c.value else { return .failure(.invalidRequest, "SET of config \(c.name) has a null value") }
                            next[c.name] = value
                        case IncrementalAlterConfigsRequest.delete:
                            if let why = problem(c.name, nil) { return .failure(.invalidConfig, why) }
                            next[c.name] = nil
                        case IncrementalAlterConfigsRequest.append, IncrementalAlterConfigsRequest.subtract:
                            if let why = problem(c.name, nil) { return .failure(.invalidConfig, why) }
                            let op = c.operation == IncrementalAlterConfigsRequest.append ? "APPEND" : "SUBTRACT"
                            guard c.name == "cleanup.policy" else {
                                return .failure(
                                    .invalidConfig, "\(op) is not allowed for config \(c.name) here (only topic config cleanup.policy is a list Tape edits)")
                            }
                            guard let value = c.value else { return .failure(.invalidRequest, "\(op) of config \(c.name) has a null value") }
                            let base = next[c.name] ?? LogConfig().cleanupPolicy.rawValue
                            var items = base.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                            let given = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                            if op == "APPEND" {
                                for g in given where !items.contains(g) { items.append(g) }
                            } else {
                                items.removeAll { given.contains($0) }
                            }
                            let joined = items.joined(separator: ",")
                            if let why = problem(c.name, joined) { return .failure(.invalidConfig, why) }
                            next[c.name] = joined
                        default:
                            return .failure(.invalidRequest, "unknown config operation \(c.operation) for \(c.name) (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)")
                        }
                    }
                    return .success(next)
                }
            })
    }

    enum ConfigChange {
        case success([String: String])
        case failure(ErrorCode, String)
    }

    /// One resource of an Alter* request: `change(currentOverrides, validator)` is applied and
    /// stored — for topics with `LogConfig.problem`, for this broker (its node id as the name) with
    /// `DynamicBrokerConfigs.problem` (only the few dynamic configs Kafka allows per broker that Tape
    /// can store; everything else is INVALID_CONFIG naming it).
    func alterResource(
        type: Int8, name: String, validateOnly: Bool, api: String,
        _ change: ([String: String], (String, String?) -> String?) -> ConfigChange
    ) -> AlterConfigsResourceResponse {
        func fail(_ code: ErrorCode, _ message: String) -> AlterConfigsResourceResponse {
            logger.info("\(api) on \(name) refused: \(message)", metadata: ["error": "\(code)"])
            return .init(errorCode: code, errorMessage: message, resourceType: type, resourceName: name)
        }
        switch type {
        case DescribeConfigsRequest.topicResource:
            guard let current = topics.configs(of: name) else { return fail(.unknownTopicOrPartition, "topic \(name) does not exist") }
            switch change(current, { LogConfig.problem(key: $0, value: $1) }) {
            case .failure(let code, let message): return fail(code, message)
            case .success(let next):
                if validateOnly { return .init(errorCode: .none, resourceType: type, resourceName: name) }
                do {
                    try topics.setConfigs(of: name, to: next)
                } catch let e as StorageError where e.code == .invalidConfig {
                    return fail(.invalidConfig, e.message)
                } catch let e as StorageError where e.code == .unknownTopic {
                    return fail(.unknownTopicOrPartition, e.message)
                } catch let e as TopicStoreError where e.code == .unknownTopic {
                    return fail(.unknownTopicOrPartition, e.message)
                } catch {
                    logger.error("could not store the configs of topic \(name): \(error)")
                    return fail(.kafkaStorageError, "could not store the configs of topic \(name): \(error)")
                }
                logger.info("altered topic configs", metadata: ["topic": "\(name)", "configs": "\(next.sorted { $0.key < $1.key })"])
                return .init(errorCode: .none, resourceType: type, resourceName: name)
            }
        case DescribeConfigsRequest.brokerResource:
            guard name == "\(configuration.nodeId)" else {
                // Kafka: the configs it accepts dynamically for SASL are per broker, never cluster defaults.
                return fail(
                    .invalidConfig,
                    name.isEmpty
                        ? "cluster-wide default broker configs cannot be set on this tape broker; name the broker (\(configuration.nodeId))"
                        : "broker \(name) is not this broker (\(configuration.nodeId))")
            }
            switch change(topics.dynamicBrokerConfigs(), { DynamicBrokerConfigs.problem(key: $0, value: $1) }) {
            case .failure(let code, let message): return fail(code, message)
            case .success(let next):
                if validateOnly { return .init(errorCode: .none, resourceType: type, resourceName: name) }
                do {
                    try topics.setDynamicBrokerConfigs(next)
                } catch {
                    logger.error("could not store the dynamic broker configs: \(error)")
                    return fail(.kafkaStorageError, "could not store the dynamic broker configs: \(error)")
                }
                logger.info(
                    "altered dynamic broker configs (they have no effect: Tape offers no GSSAPI or OAUTHBEARER)",
                    metadata: ["configs": "\(next.sorted { $0.key < $1.key })"])
                return .init(errorCode: .none, resourceType: type, resourceName: name)
            }
        default:
            return fail(.invalidRequest, "resource type \(type) is not supported; only topics (2) can be altered")
        }
    }
}
