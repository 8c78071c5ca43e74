import KafkaProtocol
import Logging
import NIOCore

/// Administration: CreatePartitions, DeleteRecords, DeleteGroups, OffsetDelete, DescribeCluster.
extension Broker {
    // MARK: CreatePartitions

    func createPartitions(_ r: CreatePartitionsRequest) -> CreatePartitionsResponse {
        let node = configuration.nodeId
        var seen: [String: Int] = [:]
        for t in r.topics { seen[t.name, default: 0] += 1 }
        // As CreateTopics: one request may add at most 10 000 partitions in all.
        let added = r.topics.reduce(0) { sum, t in
            let current = topics.partitionLogs(of: t.name)?.count ?? 0
            return sum + max(0, Int(t.count) - current)
        }
        if added > Self.maxPartitionsPerCreateTopics {
            let message = "Excessively large number of partitions per request: \(added) new partitions requested, limit \(Self.maxPartitionsPerCreateTopics)."
            logger.info("CreatePartitions refused: \(message)")
            return CreatePartitionsResponse(results: r.topics.map { .init(name: $0.name, errorCode: .policyViolation, errorMessage: message) })
        }
        return CreatePartitionsResponse(
            results: r.topics.map { t in
                func fail(_ code: ErrorCode, _ message: String) -> CreatePartitionsResponse.Result {
                    logger.info("CreatePartitions \(t.name) refused: \(message)")
                    return .init(name: t.name, errorCode: code, errorMessage: message)
                }
                if seen[t.name, default: 0] > 1 { return fail(.invalidRequest, "topic \(t.name) is named more than once in the request") }
                guard let logs = topics.partitionLogs(of: t.name) else {
                    return fail(.unknownTopicOrPartition, "topic \(t.name) does not exist")
                }
                let current = Int32(logs.count)
                if t.count < current {
                    return fail(
                        .invalidPartitions, "topic \(t.name) has \(current) partitions, more than the requested \(t.count); partitions cannot be removed")
                }
                if t.count == current { return fail(.invalidPartitions, "topic \(t.name) already has \(current) partitions") }
                if t.count > 10_000 { return fail(.invalidPartitions, "number of partitions must be at most 10000, got \(t.count)") }
                if let assignments = t.assignments {
                    if assignments.count != Int(t.count - current) {
                        return fail(
                            .invalidReplicaAssignment,
                            "\(assignments.count) replica assignments were given for \(t.count - current) new partitions of \(t.name); give one per new partition"
                        )
                    }
                    if assignments.contains(where: { $0 != [node] }) {
                        return fail(
                            .invalidReplicaAssignment,
                            "this tape broker is a single node (id \(node)); every partition's only replica must be node \(node)")
                    }
                }
                if r.validateOnly {
                    if let manager = topics as? LogManager, manager.partitionCount + Int(t.count - current) > manager.configuration.maxPartitions {
                        return fail(
                            .policyViolation,
                            "adding \(t.count - current) partitions to \(t.name) would bring this broker to \(manager.partitionCount + Int(t.count - current)) partitions; the limit is \(manager.configuration.maxPartitions) (--max-partitions)"
                        )
                    }
                    return .init(name: t.name, errorCode: .none)
                }
                do {
                    try topics.createPartitions(name: t.name, count: t.count)
                } catch {
                    let (code, message) = Self.createPartitionsFailure(error)
                    if code == .unknownServerError || code == .kafkaStorageError { logger.error("could not add partitions to \(t.name): \(message)") }
                    return fail(code, message)
                }
                logger.info("added partitions", metadata: ["topic": "\(t.name)", "from": "\(current)", "to": "\(t.count)"])
                return .init(name: t.name, errorCode: .none)
            })
    }

    static func createPartitionsFailure(_ error: any Error) -> (ErrorCode, String) {
        if let e = error as? TopicStoreError {
            switch e.code {
            case .unknownTopic: return (.unknownTopicOrPartition, e.message)
            case .invalidPartitions: return (.invalidPartitions, e.message)
            case .policyViolation: return (.policyViolation, e.message)
            default: return (.unknownServerError, e.message)
            }
        }
        if let e = error as? StorageError {
            switch e.code {
            case .unknownTopic: return (.unknownTopicOrPartition, e.message)
            case .invalidRequest: return (.invalidPartitions, e.message)
            case .partitionLimit: return (.policyViolation, e.message)
            default: return (.kafkaStorageError, "could not add the partitions: \(e.message)")
            }
        }
        return (.unknownServerError, "could not add the partitions: \(error)")
    }

    // MARK: DeleteRecords

    func deleteRecords(_ r: DeleteRecordsRequest) -> DeleteRecordsResponse {
        DeleteRecordsResponse(
            topics: r.topics.map { t in
                let logs = topics.partitionLogs(of: t.name)
                return .init(
                    name: t.name,
                    partitions: t.partitions.map { p in
                        guard let logs, p.partitionIndex >= 0, Int(p.partitionIndex) < logs.count else {
                            return .init(partitionIndex: p.partitionIndex, lowWatermark: -1, errorCode: .unknownTopicOrPartition)
                        }
                        let log = logs[Int(p.partitionIndex)]
                        do {
                            let start = try log.deleteRecords(before: p.offset)  // the durable Log logs it
                            return .init(partitionIndex: p.partitionIndex, lowWatermark: start, errorCode: .none)
                        } catch let e as StorageError {
                            if e.code == .closed {
                                return .init(partitionIndex: p.partitionIndex, lowWatermark: -1, errorCode: .unknownTopicOrPartition)
                            }
                            if e.code != .offsetOutOfRange { logger.error("DeleteRecords on \(t.name)-\(p.partitionIndex) failed: \(e.message)") }
                            return .init(partitionIndex: p.partitionIndex, lowWatermark: -1, errorCode: Self.errorCode(e))
                        } catch {
                            logger.error("DeleteRecords on \(t.name)-\(p.partitionIndex) failed: \(error)")
                            return .init(partitionIndex: p.partitionIndex, lowWatermark: -1, errorCode: .unknownServerError)
                        }
                    })
            })
    }

    // MARK: DeleteGroups

    func deleteGroups(_ r: DeleteGroupsRequest) async -> DeleteGroupsResponse {
        // Members whose session has run out are gone now, not at the next periodic tick (as in
        // Kafka, whose session timers are exact): a client that waits out the session and then
        // deletes the group must not be told it still has members.
        tick()
        let stored = Set(committedOffsets.groups())
        var results: [DeleteGroupsResponse.Result] = []
        var done: Set<String> = []
        for name in r.groupsNames {
            if name.isEmpty {
                results.append(.init(groupId: name, errorCode: .invalidGroupId))
                continue
            }
            if done.contains(name) { continue }  // named twice: one answer, as Kafka gives
            done.insert(name)
            let active = coordinator.group(name) != nil
            guard active || stored.contains(name) else {
                results.append(.init(groupId: name, errorCode: .groupIdNotFound))
                continue
            }
            let code = coordinator.deleteGroup(name)
            if code != .none {
                logger.info("DeleteGroups refused: the group has members", metadata: ["group": "\(name)"])
                results.append(.init(groupId: name, errorCode: code))
                continue
            }
            if stored.contains(name) {
                do {
                    try await committedOffsets.deleteGroup(name)
                } catch {
                    logger.error("could not delete the committed offsets of group \(name): \(error)")
                    results.append(.init(groupId: name, errorCode: .unknownServerError))
                    continue
                }
            }
            logger.info("deleted group", metadata: ["group": "\(name)"])
            results.append(.init(groupId: name, errorCode: .none))
        }
        return DeleteGroupsResponse(results: results)
    }

    // MARK: OffsetDelete

    /// The topics a consumer-protocol member subscribed to, from its JoinGroup metadata
    /// (ConsumerProtocolSubscription: version int16, topics [string], …); nil when unreadable.
    static func subscribedTopics(_ metadata: [UInt8]) -> [String]? {
        var b = ByteBuffer(bytes: metadata)
        guard (try? b.decodeInt16()) != nil else { return nil }
        return try? b.decodeArray { try $0.decodeString() }
    }

    func offsetDelete(_ r: OffsetDeleteRequest) async -> OffsetDeleteResponse {
        if r.groupId.isEmpty { return OffsetDeleteResponse(errorCode: .invalidGroupId, topics: []) }
        tick()  // expired members first, as for DeleteGroups
        let group = coordinator.group(r.groupId)
        let committed = committedOffsets.offsets(group: r.groupId)
        if group == nil && committed.isEmpty && !committedOffsets.groups().contains(r.groupId) {
            return OffsetDeleteResponse(errorCode: .groupIdNotFound, topics: [])
        }
        // Offsets of topics the group is consuming may not go (Kafka: only for the consumer
        // protocol, whose subscriptions it can read; any other group must be empty).
        var subscribed: Set<String> = []
        if let group, !group.members.isEmpty {
            guard group.protocolType == "consumer" else { return OffsetDeleteResponse(errorCode: .nonEmptyGroup, topics: []) }
            for m in group.orderedMembers {
                subscribed.formUnion(Self.subscribedTopics(m.metadata(for: group.protocolName)) ?? [])
            }
        }
        var toDelete: [TopicPartition] = []
        var out = r.topics.map { t in
            let logs = topics.partitionLogs(of: t.name)
            return OffsetDeleteResponse.Topic(
                name: t.name,
                partitions: t.partitions.map { p in
                    guard let logs, p >= 0, Int(p) < logs.count else { return .init(partitionIndex: p, errorCode: .unknownTopicOrPartition) }
                    if subscribed.contains(t.name) { return .init(partitionIndex: p, errorCode: .groupSubscribedToTopic) }
                    toDelete.append(TopicPartition(t.name, p))
                    return .init(partitionIndex: p, errorCode: .none)
                })
        }
        if !toDelete.isEmpty {
            do {
                try await committedOffsets.deleteOffsets(group: r.groupId, partitions: toDelete)
                logger.info("deleted committed offsets", metadata: ["group": "\(r.groupId)", "partitions": "\(toDelete.count)"])
            } catch {
                logger.error("could not delete committed offsets of group \(r.groupId): \(error)")
                for i in out.indices {
                    for j in out[i].partitions.indices where out[i].partitions[j].errorCode == .none {
                        out[i].partitions[j].errorCode = .unknownServerError
                    }
                }
            }
        }
        return OffsetDeleteResponse(topics: out)
    }

    // MARK: DescribeCluster

    /// What an unsecured Kafka broker reports as allowed on the cluster: ALTER (7), CREATE (5),
    /// CLUSTER_ACTION (9), DESCRIBE (8), DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11), IDEMPOTENT_WRITE (12).
    static let clusterOperations: Int32 = [5, 7, 8, 9, 10, 11, 12].reduce(Int32(0)) { $0 | (1 << $1) }

    func describeCluster(_ r: DescribeClusterRequest, version: Int16) -> DescribeClusterResponse {
        let node = configuration.nodeId
        switch r.endpointType {
        case 1: break
        case 2:
            return DescribeClusterResponse(
                errorCode: version == 0 ? .invalidRequest : .mismatchedEndpointType,
                errorMessage: "this is a broker endpoint; controllers (endpoint type 2) are not served separately by a single-node tape broker",
                endpointType: r.endpointType, clusterId: configuration.clusterId, controllerId: -1, brokers: [])
        default:
            return DescribeClusterResponse(
                errorCode: version == 0 ? .invalidRequest : .unsupportedEndpointType, errorMessage: "unsupported endpoint type \(r.endpointType)",
                endpointType: r.endpointType, clusterId: configuration.clusterId, controllerId: -1, brokers: [])
        }
        return DescribeClusterResponse(
            endpointType: 1, clusterId: configuration.clusterId, controllerId: node,
            brokers: [.init(brokerId: node, host: advertisedHost, port: Int32(advertisedPort))],
            clusterAuthorizedOperations: r.includeClusterAuthorizedOperations ? Self.clusterOperations : DescribeClusterResponse.authorizedOperationsOmitted)
    }
}
