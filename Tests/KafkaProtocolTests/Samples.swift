import KafkaProtocol
import NIOCore

/// One sample request per API, with every optional field set, for round trips and fuzz seeds.
enum Samples {
    static func batch(count: Int = 3, producerId: Int64 = -1, baseSequence: Int32 = -1) -> ByteBuffer {
        RecordBatchBuilder.build(
            records: (0..<count).map {
                Record(
                    timestampDelta: Int64($0), offsetDelta: Int32($0), key: Array("k\($0)".utf8), value: Array("value-\($0)".utf8),
                    headers: [.init(key: "h", value: [1, 2])])
            }, baseTimestamp: 1_700_000_000_000, producerId: producerId, producerEpoch: producerId >= 0 ? 0 : -1, baseSequence: baseSequence)
    }

    /// Samples that survive a round trip at `version` (fields absent in that version are left at defaults).
    static func requests(version v: Int16, key: ApiKey) -> KafkaRequestBody {
        switch key {
        case .apiVersions:
            return .apiVersions(v >= 3 ? ApiVersionsRequest(clientSoftwareName: "tape", clientSoftwareVersion: "0.1") : ApiVersionsRequest())
        case .metadata:
            return .metadata(
                MetadataRequest(
                    topics: v == 0 ? ["a", "b"] : ["a"], allowAutoTopicCreation: v >= 4 ? false : true, includeClusterAuthorizedOperations: v >= 8,
                    includeTopicAuthorizedOperations: v >= 8))
        case .produce:
            return .produce(
                ProduceRequest(transactionalId: nil, acks: -1, timeoutMs: 30000, topics: [.init(name: "t", partitions: [.init(index: 0, records: batch())])]))
        case .fetch:
            var f = FetchRequest(
                maxWaitMs: 500, minBytes: 1, maxBytes: 52_428_800,
                topics: [
                    .init(
                        topic: "t",
                        partitions: [
                            .init(
                                partition: 0, currentLeaderEpoch: v >= 9 ? 3 : -1, fetchOffset: 42, logStartOffset: v >= 5 ? 0 : -1,
                                partitionMaxBytes: 1_048_576)
                        ])
                ])
            f.isolationLevel = 1
            if v >= 7 {
                f.sessionId = 0
                f.sessionEpoch = -1
            }
            if v >= 11 { f.rackId = "rack-a" }
            return .fetch(f)
        case .listOffsets:
            var r = ListOffsetsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, currentLeaderEpoch: v >= 4 ? 1 : -1, timestamp: -2)])])
            r.isolationLevel = v >= 2 ? 1 : 0
            return .listOffsets(r)
        case .findCoordinator:
            return .findCoordinator(FindCoordinatorRequest(key: "group", keyType: v >= 1 ? 1 : 0))
        case .joinGroup:
            return .joinGroup(
                JoinGroupRequest(
                    groupId: "g", sessionTimeoutMs: 10000, rebalanceTimeoutMs: v >= 1 ? 30000 : 10000, memberId: "m-1", groupInstanceId: v >= 5 ? "i-1" : nil,
                    protocolType: "consumer", protocols: [.init(name: "range", metadata: [0, 1, 2]), .init(name: "roundrobin", metadata: [])]))
        case .syncGroup:
            return .syncGroup(
                SyncGroupRequest(
                    groupId: "g", generationId: 3, memberId: "m-1", groupInstanceId: v >= 3 ? "i" : nil,
                    assignments: [.init(memberId: "m-1", assignment: [9, 9])]))
        case .heartbeat:
            return .heartbeat(HeartbeatRequest(groupId: "g", generationId: 3, memberId: "m-1", groupInstanceId: v >= 3 ? "i" : nil))
        case .leaveGroup:
            return .leaveGroup(
                LeaveGroupRequest(
                    groupId: "g",
                    members: v >= 3 ? [.init(memberId: "a", groupInstanceId: nil), .init(memberId: "b", groupInstanceId: "x")] : [.init(memberId: "a")]))
        case .offsetCommit:
            var r = OffsetCommitRequest(
                groupId: "g", generationId: 3, memberId: "m-1", groupInstanceId: v >= 7 ? "i" : nil,
                topics: [
                    .init(
                        name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 17, committedLeaderEpoch: v >= 6 ? 2 : -1, committedMetadata: "meta")]
                    )
                ])
            if (2...4).contains(v) { r.retentionTimeMs = 1000 }
            return .offsetCommit(r)
        case .offsetFetch:
            if v >= 8 {
                return .offsetFetch(
                    OffsetFetchRequest(
                        groups: [.init(groupId: "g", topics: nil), .init(groupId: "h", topics: [.init(name: "t", partitionIndexes: [0, 1])])],
                        requireStable: true))
            }
            var r = OffsetFetchRequest(groupId: "g", topics: v >= 2 && v != 6 ? nil : [.init(name: "t", partitionIndexes: [0, 1])])
            r.requireStable = v >= 7
            return .offsetFetch(r)
        case .initProducerId:
            return .initProducerId(
                v >= 3
                    ? InitProducerIdRequest(transactionalId: "tx", transactionTimeoutMs: 60000, producerId: 77, producerEpoch: 2)
                    : InitProducerIdRequest(transactionalId: v == 2 ? "tx" : nil, transactionTimeoutMs: 60000))
        case .createTopics:
            return .createTopics(
                CreateTopicsRequest(
                    topics: [.init(name: "t", numPartitions: 3, replicationFactor: 1, configs: [.init(name: "cleanup.policy", value: "compact")])],
                    timeoutMs: 1000,
                    validateOnly: v >= 1))
        case .deleteTopics:
            return .deleteTopics(DeleteTopicsRequest(topicNames: ["t", "u"], timeoutMs: 1000))
        case .describeConfigs:
            return .describeConfigs(
                DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t", configurationKeys: ["retention.ms"])], includeSynonyms: v >= 1))
        case .listGroups:
            return .listGroups(ListGroupsRequest(statesFilter: v >= 4 ? ["Stable", "Empty"] : [], typesFilter: v >= 5 ? ["classic"] : []))
        case .createPartitions:
            return .createPartitions(
                CreatePartitionsRequest(
                    topics: [.init(name: "t", count: 4, assignments: [[0], [0]]), .init(name: "u", count: 2, assignments: nil)], timeoutMs: 1000,
                    validateOnly: v % 2 == 1))
        case .deleteRecords:
            return .deleteRecords(
                DeleteRecordsRequest(
                    topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: 17), .init(partitionIndex: 1, offset: -1)])], timeoutMs: 1000))
        case .deleteGroups:
            return .deleteGroups(DeleteGroupsRequest(groupsNames: ["g", "h"]))
        case .offsetDelete:
            return .offsetDelete(OffsetDeleteRequest(groupId: "g", topics: [.init(name: "t", partitions: [0, 2])]))
        case .describeCluster:
            return .describeCluster(DescribeClusterRequest(includeClusterAuthorizedOperations: true, endpointType: v >= 1 ? 2 : 1))
        case .describeGroups:
            return .describeGroups(DescribeGroupsRequest(groups: ["g"], includeAuthorizedOperations: v >= 3))
        case .alterConfigs:
            return .alterConfigs(
                AlterConfigsRequest(
                    resources: [
                        .init(resourceType: 2, resourceName: "t", configs: [.init(name: "retention.ms", value: "1000"), .init(name: "x", value: nil)])
                    ],
                    validateOnly: true))
        case .incrementalAlterConfigs:
            return .incrementalAlterConfigs(
                IncrementalAlterConfigsRequest(
                    resources: [
                        .init(
                            resourceType: 2, resourceName: "t",
                            configs: [.init(name: "cleanup.policy", operation: 2, value: "compact"), .init(name: "retention.ms", operation: 1, value: nil)])
                    ], validateOnly: false))
        case .saslHandshake:
            return .saslHandshake(SaslHandshakeRequest(mechanism: "SCRAM-SHA-256"))
        case .saslAuthenticate:
            return .saslAuthenticate(SaslAuthenticateRequest(authBytes: Array("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL".utf8)))
        case .describeUserScramCredentials:
            return .describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: ["alice", "bob"]))
        case .alterUserScramCredentials:
            return .alterUserScramCredentials(
                AlterUserScramCredentialsRequest(
                    deletions: [.init(name: "bob", mechanism: 2)],
                    upsertions: [.init(name: "alice", mechanism: 1, iterations: 4096, salt: [1, 2, 3], saltedPassword: Array(repeating: 7, count: 32))]))
        case .addPartitionsToTxn:
            return .addPartitionsToTxn(
                AddPartitionsToTxnRequest(
                    transactionalId: "tx", producerId: 42, producerEpoch: 3, topics: [.init(name: "t", partitions: [0, 2]), .init(name: "u", partitions: [1])]))
        case .addOffsetsToTxn:
            return .addOffsetsToTxn(AddOffsetsToTxnRequest(transactionalId: "tx", producerId: 42, producerEpoch: 3, groupId: "g"))
        case .endTxn:
            return .endTxn(EndTxnRequest(transactionalId: "tx", producerId: 42, producerEpoch: 3, committed: v % 2 == 0))
        case .txnOffsetCommit:
            return .txnOffsetCommit(
                TxnOffsetCommitRequest(
                    transactionalId: "tx", groupId: "g", producerId: 42, producerEpoch: 3, generationId: v >= 3 ? 5 : -1, memberId: v >= 3 ? "m-1" : "",
                    groupInstanceId: v >= 3 ? "i-1" : nil,
                    topics: [
                        .init(
                            name: "t",
                            partitions: [.init(partitionIndex: 0, committedOffset: 17, committedLeaderEpoch: v >= 2 ? 2 : -1, committedMetadata: "meta")])
                    ]))
        case .describeAcls:
            return .describeAcls(
                DescribeAclsRequest(
                    filter: AclFilter(
                        resourceType: 2, resourceName: "t", patternType: v >= 1 ? 2 : 3, principal: "User:alice", host: nil, operation: 1, permissionType: 3)))
        case .createAcls:
            return .createAcls(
                CreateAclsRequest(creations: [
                    .init(resourceType: 2, resourceName: "t", patternType: v >= 1 ? 4 : 3, principal: "User:alice", host: "*", operation: 3, permissionType: 3),
                    .init(resourceType: 3, resourceName: "g", principal: "User:*", host: "10.0.0.1", operation: 2, permissionType: 2),
                ]))
        case .deleteAcls:
            return .deleteAcls(
                DeleteAclsRequest(filters: [
                    AclFilter(resourceType: 1, resourceName: nil, patternType: v >= 1 ? 1 : 3, principal: nil, host: nil, operation: 1, permissionType: 1),
                    AclFilter(resourceType: 2, resourceName: "t", principal: "User:bob", host: "*", operation: 4, permissionType: 3),
                ]))
        }
    }

    static func frame(_ body: KafkaRequestBody, version: Int16, correlationId: Int32 = 7) -> ByteBuffer {
        KafkaRequest(header: RequestHeader(apiKey: body.apiKey.rawValue, apiVersion: version, correlationId: correlationId, clientId: "tape-test"), body: body)
            .encodeFrameBody()
    }

    /// Every API at every supported version.
    static var allFrames: [ByteBuffer] {
        ApiKey.allCases.flatMap { key in key.supportedVersions.map { frame(requests(version: $0, key: key), version: $0) } }
    }
}
