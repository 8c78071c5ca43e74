import KafkaProtocol
import Logging

/// AlterConfigs and IncrementalAlterConfigs for topic resources. Validation is LogConfig's
/// (`LogConfig.problem`), shared with CreateTopics; the new set of overrides is stored durably and
/// applied to the live logs by the topic store.
extension Broker {
    func alterConfigs(_ r: AlterConfigsRequest) -> AlterConfigsResponse {
        AlterConfigsResponse(
            responses: r.resources.map { res in
                alterResource(type: res.resourceType, name: res.resourceName, validateOnly: r.validateOnly, api: "AlterConfigs") { _ in
                    var next: [String: String] = [:]
                    // A key given twice: the last value wins, as in Apache Kafka (librdkafka's test
                    // helper sends every described config and then the changed ones).
                    for c in res.configs {
                        if let problem = LogConfig.problem(key: c.name, value: c.value) { return .failure(.invalidConfig, problem) }
                        guard let value = c.value else {
                            return .failure(.invalidConfig, "topic config \(c.name) has a null value; AlterConfigs needs a value for every config it sets")
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
                alterResource(type: res.resourceType, name: res.resourceName, validateOnly: r.validateOnly, api: "IncrementalAlterConfigs") { current in
                    var next = current
                    var seen: Set<String> = []
                    for c in res.configs {
                        if !seen.insert(c.name).inserted { return .failure(.invalidRequest, "duplicate config key \(c.name) in the request") }
                        switch c.operation {
                        case IncrementalAlterConfigsRequest.set:
                            if let problem = LogConfig.problem(key: c.name, value: c.value) { return .failure(.invalidConfig, problem) }
                            guard let value = c.value else { return .failure(.invalidRequest, "SET of topic config \(c.name) has a null value") }
                            next[c.name] = value
                        case IncrementalAlterConfigsRequest.delete:
                            if let problem = LogConfig.problem(key: c.name, value: nil) { return .failure(.invalidConfig, problem) }
                            next[c.name] = nil
                        case IncrementalAlterConfigsRequest.append, IncrementalAlterConfigsRequest.subtract:
                            if let problem = LogConfig.problem(key: c.name, value: nil) { return .failure(.invalidConfig, problem) }
                            let op = c.operation == IncrementalAlterConfigsRequest.append ? "APPEND" : "SUBTRACT"
                            guard c.name == "cleanup.policy" else {
                                return .failure(.invalidConfig, "\(op) is not allowed for topic config \(c.name), which is not a list")
                            }
                            guard let value = c.value else { return .failure(.invalidRequest, "\(op) of topic config \(c.name) has a null value") }
                            let base = next[c.name] ?? LogConfig().cleanupPolicy.rawValue
                            var items = base.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                            let given = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                            if op == "APPEND" {
                                for g in given where !items.contains(g) { items.append(g) }
                            } else {
                                items.removeAll { given.contains($0) }
                            }
                            let joined = items.joined(separator: ",")
                            if let problem = LogConfig.problem(key: c.name, value: joined) { return .failure(.invalidConfig, problem) }
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

    /// One resource of an Alter* request: topic resources get `change(currentOverrides)` applied
    /// and stored; broker resources are refused (Tape has no dynamic broker configs).
    func alterResource(
        type: Int8, name: String, validateOnly: Bool, api: String, _ change: ([String: String]) -> ConfigChange
    ) -> AlterConfigsResourceResponse {
        func fail(_ code: ErrorCode, _ message: String) -> AlterConfigsResourceResponse {
            logger.info("\(api) on \(name) refused: \(message)", metadata: ["error": "\(code)"])
            return .init(errorCode: code, errorMessage: message, resourceType: type, resourceName: name)
        }
        switch type {
        case DescribeConfigsRequest.topicResource:
            guard let current = topics.configs(of: name) else { return fail(.unknownTopicOrPartition, "topic \(name) does not exist") }
            switch change(current) {
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
            return fail(
                .invalidRequest,
                "this tape broker has no dynamic broker configs; set them with `tape broker` flags at start (broker \(name))")
        default:
            return fail(.invalidRequest, "resource type \(type) is not supported; only topics (2) can be altered")
        }
    }
}
