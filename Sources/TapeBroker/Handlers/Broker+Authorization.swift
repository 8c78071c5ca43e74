import KafkaProtocol
import NIOCore

/// Who sent a request and what ACLs they are held to: the value every authorization check reads.
/// `authorizer` is nil when the broker does not enforce ACLs (the default): everything is allowed.
struct Authorization: Sendable {
    var authorizer: AclAuthorizer?
    var principal: String
    var host: String

    static let unrestricted = Authorization(authorizer: nil, principal: AclAuthorizer.anonymous, host: "*")

    var isEnforced: Bool { authorizer != nil }

    func allows(_ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
        authorizer?.authorize(principal: principal, host: host, operation: operation, resourceType: type, resourceName: name) ?? true
    }

    func allowsCluster(_ operation: AclOperation) -> Bool { allows(operation, .cluster, AclBinding.clusterResourceName) }

    /// CREATE on the cluster or on the topic itself (Kafka's rule for creating topics).
    func allowsCreating(topic: String) -> Bool { allowsCluster(.create) || allows(.create, .topic, topic) }

    /// Kafka's check for idempotent producers without a transactional id: IDEMPOTENT_WRITE on the
    /// cluster, or WRITE on any topic.
    var allowsIdempotentWrite: Bool {
        guard let authorizer else { return true }
        return allowsCluster(.idempotentWrite) || authorizer.authorizeAny(principal: principal, host: host, operation: .write, resourceType: .topic)
    }

    /// The cluster operations this principal is allowed, as the bit field Metadata and
    /// DescribeCluster report (bit n set: operation code n allowed).
    var authorizedClusterOperations: Int32 {
        let operations: [AclOperation] = [.create, .alter, .describe, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite]
        return operations.filter { allowsCluster($0) }.reduce(Int32(0)) { $0 | (1 << Int32($1.code)) }
    }

    /// The operations Kafka reports for a topic (`AclEntry.supportedOperations(TOPIC)`).
    static let topicOperations: [AclOperation] = [.read, .write, .create, .delete, .alter, .describe, .describeConfigs, .alterConfigs]
    /// The operations Kafka reports for a consumer group.
    static let groupOperations: [AclOperation] = [.read, .delete, .describe]

    /// The operations this principal is allowed on a topic or group, as the bit field Metadata
    /// (v8+) and DescribeGroups (v3+) report when asked (bit n set: operation code n allowed).
    /// Without ACL enforcement every operation is allowed.
    func authorizedOperations(_ type: AclResourceType, _ name: String) -> Int32 {
        let operations = type == .group ? Self.groupOperations : Self.topicOperations
        return operations.filter { allows($0, type, name) }.reduce(Int32(0)) { $0 | (1 << Int32($1.code)) }
    }

    /// Splits topic arrays into the topics allowed `operation` and the rest.
    func partition<P>(_ topics: [TopicPartitions<P>], _ operation: AclOperation) -> (allowed: [TopicPartitions<P>], denied: [TopicPartitions<P>]) {
        guard isEnforced else { return (topics, []) }
        var cache: [String: Bool] = [:]
        func ok(_ name: String) -> Bool {
            if let v = cache[name] { return v }
            let v = allows(operation, .topic, name)
            cache[name] = v
            return v
        }
        return (topics.filter { ok($0.name) }, topics.filter { !ok($0.name) })
    }
}

extension Broker {
    /// `response` with each topic's authorized operations when the request asked for them
    /// (Metadata v8+ `include_topic_authorized_operations`), for `auth`'s principal. Topics refused
    /// with TOPIC_AUTHORIZATION_FAILED keep Int32.min, as in Kafka.
    func withTopicOperations(_ response: MetadataResponse, _ r: MetadataRequest, auth: Authorization) -> MetadataResponse {
        guard r.includeTopicAuthorizedOperations else { return response }
        var out = response
        for i in out.topics.indices where out.topics[i].errorCode != .topicAuthorizationFailed {
            out.topics[i].topicAuthorizedOperations = auth.authorizedOperations(.topic, out.topics[i].name)
        }
        return out
    }

    /// `response` with each described group's authorized operations when the request asked for
    /// them (DescribeGroups v3+ `include_authorized_operations`); refused groups keep Int32.min, as in Kafka.
    func withGroupOperations(_ response: DescribeGroupsResponse, _ r: DescribeGroupsRequest, auth: Authorization) -> DescribeGroupsResponse {
        guard r.includeAuthorizedOperations else { return response }
        var out = response
        for i in out.groups.indices where out.groups[i].errorCode == .none {
            out.groups[i].authorizedOperations = auth.authorizedOperations(.group, out.groups[i].groupId)
        }
        return out
    }

    /// The authorization of a request on `connection` from `clientHost`: unrestricted unless the
    /// broker runs with `--authorizer acl`. Connections that did not authenticate are `User:ANONYMOUS`.
    func authorization(connection: UInt64, clientHost: String) -> Authorization {
        let security = configuration.security
        guard security.aclAuthorizer else { return .unrestricted }
        let authorizer = AclAuthorizer(
            bindings: acls?.current() ?? [], superUsers: security.aclExemptPrincipals, allowEveryoneIfNoAclFound: security.allowEveryoneIfNoAclFound)
        return Authorization(authorizer: authorizer, principal: principals[connection] ?? AclAuthorizer.anonymous, host: clientHost)
    }

    /// Answers the request when ACLs refuse it outright or in part; nil lets the handler run as it is.
    /// Partly refused requests run without the refused topics, and those are put back with their
    /// error (Kafka's `KafkaApis` order of checks: transactional id, group, then topics).
    func handleAuthorized(_ request: KafkaRequest, auth: Authorization, clientHost: String, connection: UInt64) async -> ByteBuffer? {
        let h = request.header
        let v = h.apiVersion
        func frame(_ payload: some KafkaResponseMessage) -> ByteBuffer {
            KafkaResponse.encodeFrame(payload, apiKey: request.body.apiKey, version: v, correlationId: h.correlationId)
        }
        let topicDenied = ErrorCode.topicAuthorizationFailed
        switch request.body {
        case .metadata(let r):
            return frame(withTopicOperations(authorizedMetadata(r, version: v, auth: auth), r, auth: auth))
        case .fetch(var r):
            let (allowed, denied) = auth.partitionFetch(r.topics)
            if denied.isEmpty { return nil }
            r.topics = allowed
            // Nothing left to read: answered at once, not after the request's max wait (as Kafka does).
            var response = allowed.isEmpty ? FetchResponse(topics: []) : await fetch(r, connection: connection)
            response.topics += denied.map { t in
                FetchResponse.Topic(
                    topic: t.topic,
                    partitions: t.partitions.map {
                        .init(partitionIndex: $0.partition, errorCode: topicDenied, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, records: nil)
                    })
            }
            return KafkaResponse.encodeFrame(
                response, apiKey: .fetch, version: v, correlationId: h.correlationId, capacity: response.estimatedFrameBytes())
        case .listOffsets(var r):
            let (allowed, denied) = auth.partition(r.topics, .describe)
            if denied.isEmpty { return nil }
            r.topics = allowed
            var response = listOffsets(r)
            response.topics += denied.map { t in
                .init(
                    name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: topicDenied, timestamp: -1, offset: -1) })
            }
            return frame(response)
        case .createTopics(var r):
            let denied = r.topics.filter { !auth.allowsCreating(topic: $0.name) }
            if denied.isEmpty { return nil }
            r.topics = r.topics.filter { auth.allowsCreating(topic: $0.name) }
            var response = createTopics(r, version: v)
            response.topics += denied.map { .init(name: $0.name, errorCode: topicDenied, errorMessage: "not authorized to create topic \($0.name)") }
            return frame(response)
        case .deleteTopics(var r):
            let denied = r.topicNames.filter { !auth.allows(.delete, .topic, $0) }
            if denied.isEmpty { return nil }
            r.topicNames = r.topicNames.filter { auth.allows(.delete, .topic, $0) }
            var response = deleteTopics(r)
            response.responses += denied.map { .init(name: $0, errorCode: topicDenied) }
            return frame(response)
        case .createPartitions(var r):
            let denied = r.topics.filter { !auth.allows(.alter, .topic, $0.name) }
            if denied.isEmpty { return nil }
            r.topics = r.topics.filter { auth.allows(.alter, .topic, $0.name) }
            var response = createPartitions(r)
            response.results += denied.map { .init(name: $0.name, errorCode: topicDenied, errorMessage: "not authorized to alter topic \($0.name)") }
            return frame(response)
        case .deleteRecords(var r):
            let (allowed, denied) = auth.partition(r.topics, .delete)
            if denied.isEmpty { return nil }
            r.topics = allowed
            var response = deleteRecords(r)
            response.topics += denied.map { t in
                .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, lowWatermark: -1, errorCode: topicDenied) })
            }
            return frame(response)
        case .describeConfigs(var r):
            let denied = r.resources.filter { !auth.allowsConfigs(.describeConfigs, type: $0.resourceType, name: $0.resourceName) }
            if denied.isEmpty { return nil }
            r.resources = r.resources.filter { auth.allowsConfigs(.describeConfigs, type: $0.resourceType, name: $0.resourceName) }
            var response = describeConfigs(r)
            response.results += denied.map {
                .init(
                    errorCode: Self.configsRefusal($0.resourceType), errorMessage: "not authorized", resourceType: $0.resourceType,
                    resourceName: $0.resourceName, configs: [])
            }
            return frame(response)
        case .alterConfigs(var r):
            let denied = r.resources.filter { !auth.allowsConfigs(.alterConfigs, type: $0.resourceType, name: $0.resourceName) }
            if denied.isEmpty { return nil }
            r.resources = r.resources.filter { auth.allowsConfigs(.alterConfigs, type: $0.resourceType, name: $0.resourceName) }
            var response = alterConfigs(r)
            response.responses += denied.map {
                .init(
                    errorCode: Self.configsRefusal($0.resourceType), errorMessage: "not authorized", resourceType: $0.resourceType,
                    resourceName: $0.resourceName)
            }
            return frame(response)
        case .incrementalAlterConfigs(var r):
            let denied = r.resources.filter { !auth.allowsConfigs(.alterConfigs, type: $0.resourceType, name: $0.resourceName) }
            if denied.isEmpty { return nil }
            r.resources = r.resources.filter { auth.allowsConfigs(.alterConfigs, type: $0.resourceType, name: $0.resourceName) }
            var response = incrementalAlterConfigs(r)
            response.responses += denied.map {
                .init(
                    errorCode: Self.configsRefusal($0.resourceType), errorMessage: "not authorized", resourceType: $0.resourceType,
                    resourceName: $0.resourceName)
            }
            return frame(response)
        case .describeCluster(let r):
            guard r.includeClusterAuthorizedOperations else { return nil }
            var response = describeCluster(r, version: v)
            response.clusterAuthorizedOperations = auth.authorizedClusterOperations
            return frame(response)
        case .findCoordinator(let r):
            // Kafka: DESCRIBE on the group, or on the transactional id.
            let isTransaction = r.keyType == 1
            guard !auth.allows(.describe, isTransaction ? .transactionalId : .group, r.key) else { return nil }
            let code: ErrorCode = isTransaction ? .transactionalIdAuthorizationFailed : .groupAuthorizationFailed
            return frame(FindCoordinatorResponse(errorCode: code, errorMessage: "not authorized", nodeId: -1, host: "", port: -1))
        case .joinGroup(let r):
            guard !auth.allows(.read, .group, r.groupId) else { return nil }
            return frame(JoinGroupResponse(errorCode: .groupAuthorizationFailed, memberId: r.memberId))
        case .syncGroup(let r):
            guard !auth.allows(.read, .group, r.groupId) else { return nil }
            return frame(SyncGroupResponse(errorCode: .groupAuthorizationFailed))
        case .heartbeat(let r):
            guard !auth.allows(.read, .group, r.groupId) else { return nil }
            return frame(HeartbeatResponse(errorCode: .groupAuthorizationFailed))
        case .leaveGroup(let r):
            guard !auth.allows(.read, .group, r.groupId) else { return nil }
            return frame(LeaveGroupResponse(errorCode: .groupAuthorizationFailed))
        case .offsetCommit(var r):
            guard auth.allows(.read, .group, r.groupId) else {
                return frame(OffsetCommitResponse(topics: r.topics.map { Self.failed($0, .groupAuthorizationFailed) }))
            }
            let (allowed, denied) = auth.partition(r.topics, .read)
            if denied.isEmpty { return nil }
            r.topics = allowed
            var response = allowed.isEmpty ? OffsetCommitResponse(topics: []) : await offsetCommit(r)
            response.topics += denied.map { Self.failed($0, topicDenied) }
            return frame(response)
        case .offsetFetch(let r):
            return authorizedOffsetFetch(r, auth: auth).map { frame($0) }
        case .describeGroups(var r):
            let denied = r.groups.filter { !auth.allows(.describe, .group, $0) }
            if denied.isEmpty { return nil }
            r.groups = r.groups.filter { auth.allows(.describe, .group, $0) }
            var response = withGroupOperations(describeGroups(r), r, auth: auth)
            response.groups += denied.map {
                .init(errorCode: .groupAuthorizationFailed, groupId: $0, groupState: "", protocolType: "", protocolData: "", members: [])
            }
            return frame(response)
        case .listGroups(let r):
            // Kafka: DESCRIBE on the cluster lists every group; otherwise the groups one may describe.
            if auth.allowsCluster(.describe) { return nil }
            var response = listGroups(r)
            response.groups = response.groups.filter { auth.allows(.describe, .group, $0.groupId) }
            return frame(response)
        case .deleteGroups(var r):
            let denied = r.groupsNames.filter { !auth.allows(.delete, .group, $0) }
            if denied.isEmpty { return nil }
            r.groupsNames = r.groupsNames.filter { auth.allows(.delete, .group, $0) }
            var response = await deleteGroups(r)
            response.results += denied.map { .init(groupId: $0, errorCode: .groupAuthorizationFailed) }
            return frame(response)
        case .offsetDelete(var r):
            guard auth.allows(.delete, .group, r.groupId) else { return frame(OffsetDeleteResponse(errorCode: .groupAuthorizationFailed, topics: [])) }
            let (allowed, denied) = auth.partition(r.topics, .read)
            if denied.isEmpty { return nil }
            r.topics = allowed
            var response = await offsetDelete(r)
            response.topics += denied.map { t in .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0, errorCode: topicDenied) }) }
            return frame(response)
        case .initProducerId(let r):
            if let id = r.transactionalId {
                guard !auth.allows(.write, .transactionalId, id) else { return nil }
                return frame(InitProducerIdResponse(errorCode: .transactionalIdAuthorizationFailed, producerId: -1, producerEpoch: -1))
            }
            guard !auth.allowsIdempotentWrite else { return nil }
            return frame(InitProducerIdResponse(errorCode: .clusterAuthorizationFailed, producerId: -1, producerEpoch: -1))
        case .addPartitionsToTxn(let r):
            let transactional = auth.allows(.write, .transactionalId, r.transactionalId)
            let deniedTopics = Set(r.topics.filter { !auth.allows(.write, .topic, $0.name) }.map(\.name))
            if transactional && deniedTopics.isEmpty { return nil }
            // Nothing is added when any topic is refused; the others get OPERATION_NOT_ATTEMPTED, as in Kafka.
            return frame(
                AddPartitionsToTxnResponse(
                    results: r.topics.map { t in
                        let code: ErrorCode =
                            !transactional ? .transactionalIdAuthorizationFailed : deniedTopics.contains(t.name) ? topicDenied : .operationNotAttempted
                        return .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0, errorCode: code) })
                    }))
        case .addOffsetsToTxn(let r):
            if !auth.allows(.write, .transactionalId, r.transactionalId) { return frame(TxnErrorResponse(errorCode: .transactionalIdAuthorizationFailed)) }
            if !auth.allows(.read, .group, r.groupId) { return frame(TxnErrorResponse(errorCode: .groupAuthorizationFailed)) }
            return nil
        case .endTxn(let r):
            guard !auth.allows(.write, .transactionalId, r.transactionalId) else { return nil }
            return frame(TxnErrorResponse(errorCode: .transactionalIdAuthorizationFailed))
        case .txnOffsetCommit(var r):
            let refusal: ErrorCode? =
                !auth.allows(.write, .transactionalId, r.transactionalId)
                ? .transactionalIdAuthorizationFailed : !auth.allows(.read, .group, r.groupId) ? .groupAuthorizationFailed : nil
            if let refusal { return frame(TxnOffsetCommitResponse(topics: r.topics.map { Self.failed($0, refusal) })) }
            let (allowed, denied) = auth.partition(r.topics, .read)
            if denied.isEmpty { return nil }
            r.topics = allowed
            var response = txnOffsetCommit(r, version: v)
            response.topics += denied.map { Self.failed($0, topicDenied) }
            return frame(response)
        default:
            return nil
        }
    }

    /// Every partition of `topic` answered with `code` (OffsetCommit and TxnOffsetCommit share this shape).
    static func failed<P, R>(_ topic: TopicPartitions<P>, _ code: ErrorCode) -> TopicPartitions<R> where P: HasPartitionIndex, R: ErrorPartition {
        TopicPartitions(name: topic.name, partitions: topic.partitions.map { R(partitionIndex: $0.partitionIndex, errorCode: code) })
    }

    static func configsRefusal(_ resourceType: Int8) -> ErrorCode {
        resourceType == DescribeConfigsRequest.topicResource ? .topicAuthorizationFailed : .clusterAuthorizationFailed
    }

    /// Metadata under ACLs (Kafka's `handleTopicMetadataRequest`): a full listing leaves out the
    /// topics one may not DESCRIBE; named ones are answered TOPIC_AUTHORIZATION_FAILED; a missing
    /// topic is auto-created only with CREATE on the cluster or the topic.
    func authorizedMetadata(_ r: MetadataRequest, version: Int16, auth: Authorization) -> MetadataResponse {
        guard auth.isEnforced else { return metadata(r, version: version) }
        var response = authorizedMetadataTopics(r, version: version, auth: auth)
        if r.includeClusterAuthorizedOperations { response.clusterAuthorizedOperations = auth.authorizedClusterOperations }
        return response
    }

    private func authorizedMetadataTopics(_ r: MetadataRequest, version: Int16, auth: Authorization) -> MetadataResponse {
        guard let names = r.topics else {
            var response = metadata(r, version: version)
            response.topics = response.topics.filter { auth.allows(.describe, .topic, $0.name) }
            return response
        }
        let describable = names.filter { auth.allows(.describe, .topic, $0) }
        var creatable = r
        creatable.topics = describable.filter { auth.allowsCreating(topic: $0) }
        var notCreatable = r
        notCreatable.topics = describable.filter { !auth.allowsCreating(topic: $0) }
        notCreatable.allowAutoTopicCreation = false
        var response = metadata(creatable, version: version)
        let others = metadata(notCreatable, version: version).topics
        let byName = Dictionary((response.topics + others).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        response.topics = names.map { name in
            byName[name] ?? MetadataResponse.Topic(errorCode: .topicAuthorizationFailed, name: name, partitions: [])
        }
        return response
    }

    /// OffsetFetch under ACLs: DESCRIBE on each group (Kafka checks DESCRIBE here, not READ), and
    /// DESCRIBE on each named topic; a fetch of all offsets leaves out topics one may not describe.
    func authorizedOffsetFetch(_ r: OffsetFetchRequest, auth: Authorization) -> OffsetFetchResponse? {
        guard auth.isEnforced else { return nil }
        let groups = r.groups ?? [.init(groupId: r.groupId, topics: r.topics)]
        var answered: [OffsetFetchResponse.Group] = []
        for g in groups {
            guard auth.allows(.describe, .group, g.groupId) else {
                answered.append(.init(groupId: g.groupId, topics: [], errorCode: .groupAuthorizationFailed))
                continue
            }
            var one = r
            if r.groups != nil {
                one.groups = [g]
            } else {
                one.topics = g.topics
            }
            let response = offsetFetch(one)
            let topics = (response.groups.first?.topics ?? response.topics).compactMap { t -> OffsetFetchResponse.Topic? in
                if auth.allows(.describe, .topic, t.name) { return t }
                // Named topics are answered with the error; a listing of all leaves them out.
                guard g.topics != nil else { return nil }
                return .init(
                    name: t.name,
                    partitions: t.partitions.map {
                        .init(partitionIndex: $0.partitionIndex, committedOffset: -1, metadata: nil, errorCode: .topicAuthorizationFailed)
                    })
            }
            answered.append(.init(groupId: g.groupId, topics: topics, errorCode: response.groups.first?.errorCode ?? response.errorCode))
        }
        if r.groups != nil { return OffsetFetchResponse(groups: answered) }
        let only = answered[0]
        return OffsetFetchResponse(topics: only.topics, errorCode: only.errorCode)
    }
}

extension Authorization {
    /// Fetch topics split by READ (Fetch's topic array is not a `TopicPartitions`).
    func partitionFetch(_ topics: [FetchRequest.Topic]) -> (allowed: [FetchRequest.Topic], denied: [FetchRequest.Topic]) {
        guard isEnforced else { return (topics, []) }
        return (topics.filter { allows(.read, .topic, $0.topic) }, topics.filter { !allows(.read, .topic, $0.topic) })
    }

    /// DESCRIBE_CONFIGS / ALTER_CONFIGS on a topic (type 2) or on the cluster (broker, broker logger).
    func allowsConfigs(_ operation: AclOperation, type: Int8, name: String) -> Bool {
        type == DescribeConfigsRequest.topicResource ? allows(operation, .topic, name) : allowsCluster(operation)
    }
}

/// A request partition that names its index (OffsetCommit, TxnOffsetCommit).
protocol HasPartitionIndex { var partitionIndex: Int32 { get } }
/// A response partition that is just an index and an error.
protocol ErrorPartition: Sendable, Equatable { init(partitionIndex: Int32, errorCode: ErrorCode) }

extension OffsetCommitRequest.Partition: HasPartitionIndex {}
extension TxnOffsetCommitRequest.Partition: HasPartitionIndex {}
extension OffsetCommitResponse.Partition: ErrorPartition {}
extension TxnOffsetCommitResponse.Partition: ErrorPartition {}
