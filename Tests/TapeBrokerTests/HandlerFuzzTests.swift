import Foundation
import KafkaProtocol
import Logging
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

/// Seeded mutation fuzzing through decode *and* the request handler: whatever decodes must be
/// handled without trapping, and the broker must still answer afterwards.
final class HandlerFuzzTests: XCTestCase {
    func seeds() -> [[UInt8]] {
        let batch = RecordBatchBuilder.build(
            records: [Record(offsetDelta: 0, key: [1], value: [2, 3]), Record(offsetDelta: 1, key: nil, value: [4])], baseTimestamp: 1000, producerId: 1000,
            producerEpoch: 0,
            baseSequence: 0)
        let plain = RecordBatchBuilder.build(
            records: [Record(offsetDelta: 0, key: [1], value: [2, 3]), Record(offsetDelta: 1, key: nil, value: [4])], baseTimestamp: 1000)
        let zstdBatch = ByteBuffer(
            bytes: try! plain.withUnsafeReadableBytes { try ProducedBatch.prepare($0, target: .zstd, logAppendTime: nil, inflateLimit: 1 << 20) }!)
        func frame<M: KafkaRequestMessage>(_ m: M, _ v: Int16) -> [UInt8] {
            var b = KafkaRequest.encodeFrame(m, version: v, correlationId: 1, clientId: "fuzz")
            b.moveReaderIndex(forwardBy: 4)
            return Array(b.readableBytesView)
        }
        return [
            frame(ProduceRequest(acks: 1, timeoutMs: 100, topics: [.init(name: "f", partitions: [.init(index: 0, records: batch)])]), 7),
            frame(
                ProduceRequest(
                    acks: -1, timeoutMs: 100, topics: [.init(name: "f", partitions: [.init(index: 0, records: batch), .init(index: 3, records: batch)])]), 3),
            frame(
                FetchRequest(
                    maxWaitMs: 0, minBytes: 1, maxBytes: 1000,
                    topics: [.init(topic: "f", partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 100)])]), 11),
            frame(MetadataRequest(topics: ["f", "g"]), 8),
            frame(MetadataRequest(topics: nil), 1),
            frame(
                CreateTopicsRequest(topics: [.init(name: "c", numPartitions: 2, replicationFactor: 1, configs: [.init(name: "retention.ms", value: "1")])]), 4),
            frame(DeleteTopicsRequest(topicNames: ["c"]), 3),
            frame(ListOffsetsRequest(topics: [.init(name: "f", partitions: [.init(partitionIndex: 0, timestamp: 500)])]), 5),
            frame(
                OffsetCommitRequest(
                    groupId: "g", generationId: -1, memberId: "", topics: [.init(name: "f", partitions: [.init(partitionIndex: 0, committedOffset: 1)])]), 7),
            frame(OffsetFetchRequest(groupId: "g", topics: nil), 5),
            frame(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "f"), .init(resourceType: 4, resourceName: "0")]), 2),
            frame(InitProducerIdRequest(), 1),
            frame(HeartbeatRequest(groupId: "g", generationId: 1, memberId: "m"), 3),
            frame(LeaveGroupRequest(groupId: "g", members: [.init(memberId: "m")]), 3),
            frame(DescribeGroupsRequest(groups: ["g", "h"]), 4),
            frame(ListGroupsRequest(), 2),
            frame(FindCoordinatorRequest(key: "g"), 2),
            frame(ApiVersionsRequest(clientSoftwareName: "a", clientSoftwareVersion: "b"), 3),
            frame(CreatePartitionsRequest(topics: [.init(name: "f", count: 3, assignments: [[0]])]), 3),
            frame(CreatePartitionsRequest(topics: [.init(name: "f", count: 4)], validateOnly: true), 1),
            frame(
                DeleteRecordsRequest(topics: [.init(name: "f", partitions: [.init(partitionIndex: 0, offset: 1), .init(partitionIndex: 1, offset: -1)])]), 2),
            frame(DeleteRecordsRequest(topics: [.init(name: "f", partitions: [.init(partitionIndex: 0, offset: 1)])]), 0),
            frame(DeleteGroupsRequest(groupsNames: ["g", "h"]), 2),
            frame(OffsetDeleteRequest(groupId: "g", topics: [.init(name: "f", partitions: [0, 1])]), 0),
            frame(DescribeClusterRequest(includeClusterAuthorizedOperations: true, endpointType: 1), 1),
            frame(ListGroupsRequest(statesFilter: ["Stable"]), 4),
            frame(OffsetFetchRequest(groups: [.init(groupId: "g", topics: nil), .init(groupId: "h", topics: [.init(name: "f", partitionIndexes: [0])])]), 8),
            frame(OffsetFetchRequest(groupId: "g", topics: [.init(name: "f", partitionIndexes: [0])]), 6),
            frame(ProduceRequest(acks: 1, timeoutMs: 100, topics: [.init(name: "f", partitions: [.init(index: 1, records: zstdBatch)])]), 7),
            frame(ListOffsetsRequest(topics: [.init(name: "f", partitions: [.init(partitionIndex: 0, timestamp: -3)])]), 7),
            frame(
                AlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "f", configs: [.init(name: "compression.type", value: "lz4")])]), 0),
            frame(AlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "f", configs: [.init(name: "retention.ms", value: "1")])]), 2),
            frame(
                IncrementalAlterConfigsRequest(
                    resources: [
                        .init(resourceType: 2, resourceName: "f", configs: [.init(name: "message.timestamp.type", operation: 0, value: "LogAppendTime")])
                    ]),
                1),
            frame(
                IncrementalAlterConfigsRequest(
                    resources: [.init(resourceType: 2, resourceName: "f", configs: [.init(name: "cleanup.policy", operation: 2, value: "compact")])]), 0),
            frame(SaslHandshakeRequest(mechanism: "PLAIN"), 1),
            frame(SaslAuthenticateRequest(authBytes: Array("\0user\0pass".utf8)), 2),
            frame(SaslAuthenticateRequest(authBytes: Array("n,,n=user,r=abc".utf8)), 1),
            frame(DescribeUserScramCredentialsRequest(users: nil), 0),
            frame(DescribeUserScramCredentialsRequest(users: ["u", "u"]), 0),
            frame(
                AlterUserScramCredentialsRequest(
                    deletions: [.init(name: "d", mechanism: 1)], upsertions: [.init(name: "u", mechanism: 2, iterations: 4096, salt: [1], saltedPassword: [2])]),
                0),
            frame(InitProducerIdRequest(transactionalId: "tx", transactionTimeoutMs: 1000), 1),
            frame(FindCoordinatorRequest(key: "tx", keyType: 1), 2),
            frame(AddPartitionsToTxnRequest(transactionalId: "tx", producerId: 1000, producerEpoch: 0, topics: [.init(name: "f", partitions: [0, 1])]), 3),
            frame(AddPartitionsToTxnRequest(transactionalId: "tx", producerId: 1000, producerEpoch: 0, topics: [.init(name: "f", partitions: [0])]), 0),
            frame(AddOffsetsToTxnRequest(transactionalId: "tx", producerId: 1000, producerEpoch: 0, groupId: "g"), 3),
            frame(
                TxnOffsetCommitRequest(
                    transactionalId: "tx", groupId: "g", producerId: 1000, producerEpoch: 0, generationId: 1, memberId: "m",
                    topics: [.init(name: "f", partitions: [.init(partitionIndex: 0, committedOffset: 1)])]), 3),
            frame(EndTxnRequest(transactionalId: "tx", producerId: 1000, producerEpoch: 0, committed: true), 3),
            frame(EndTxnRequest(transactionalId: "tx", producerId: 1000, producerEpoch: 0, committed: false), 1),
            frame(
                { () -> FetchRequest in
                    var f = FetchRequest(
                        maxWaitMs: 0, minBytes: 1, maxBytes: 1000,
                        topics: [.init(topic: "f", partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 100)])])
                    f.isolationLevel = 1
                    return f
                }(), 11),
            frame(
                CreateAclsRequest(creations: [
                    .init(resourceType: 2, resourceName: "f", patternType: 4, principal: "User:fuzz", host: "*", operation: 4, permissionType: 3)
                ]), 2),
            frame(
                DescribeAclsRequest(
                    filter: AclFilter(resourceType: 2, resourceName: "f", patternType: 2, principal: nil, host: nil, operation: 1, permissionType: 1)), 1),
            frame(
                DeleteAclsRequest(filters: [
                    AclFilter(resourceType: 1, resourceName: nil, patternType: 1, principal: "User:fuzz", host: nil, operation: 4, permissionType: 1)
                ]), 3),
        ]
    }

    func testMutatedRequestsThroughTheHandler() async throws {
        var config = BrokerConfiguration()
        config.numPartitions = 2
        // Credentials and an authenticated connection 0, so the SCRAM credential APIs run their whole path.
        config.security.credentialsPath = try temporaryDirectory("fuzz-credentials").appendingPathComponent("credentials.json").path
        var quiet = Logger(label: "fuzz")
        quiet.logLevel = .critical
        let broker = Broker(configuration: config, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore(), logger: quiet)
        await broker.setPrincipal("User:fuzz", connection: 0)
        try await fuzz(broker)
    }

    /// The same with ACLs enforced (a few ACLs, some allowing, some denying), so every refusal path
    /// of the authorizer runs on mutated requests too.
    func testMutatedRequestsThroughTheHandlerWithAclsEnforced() async throws {
        let dir = try temporaryDirectory("fuzz-acls")
        defer { try? FileManager.default.removeItem(at: dir) }
        var config = BrokerConfiguration()
        config.numPartitions = 2
        config.security.aclsPath = dir.appendingPathComponent(AclStore.fileName).path
        config.security.aclAuthorizer = true
        try AclStore(dataDirectory: dir.path).add([
            AclBinding(resourceType: .topic, resourceName: "f", principal: "User:fuzz", operation: .all),
            AclBinding(resourceType: .group, resourceName: "*", principal: "User:*", operation: .read),
            AclBinding(resourceType: .topic, resourceName: "c", patternType: .prefixed, principal: "User:*", operation: .write, permission: .deny),
            AclBinding(resourceType: .cluster, resourceName: "kafka-cluster", principal: "User:fuzz", operation: .alter),
        ])
        var quiet = Logger(label: "fuzz")
        quiet.logLevel = .critical
        let broker = Broker(configuration: config, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore(), logger: quiet)
        await broker.setPrincipal("User:fuzz", connection: 0)
        try await fuzz(broker)
    }

    func fuzz(_ broker: Broker) async throws {
        let seeds = seeds()
        var rng = SplitMix64(seed: 2026)
        var handled = 0
        let iterations = TestBudget.iterations(8_000)
        for _ in 0..<iterations {
            var bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 4..<bytes.count, using: &rng)  // keep key and version
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                default: bytes.removeLast(Int.random(in: 0..<min(8, bytes.count - 4), using: &rng))
                }
                if bytes.count <= 5 { break }
            }
            var frame = ByteBuffer(bytes: bytes)
            guard var request = try? KafkaRequest.decode(frame: &frame) else { continue }
            switch request.body {
            case .joinGroup, .syncGroup: continue  // these legitimately park until other members act
            case .fetch(var f):
                f.maxWaitMs = 0
                request.body = .fetch(f)
            default: break
            }
            _ = await broker.handle(request)
            handled += 1
        }
        XCTAssertGreaterThan(handled, iterations / 8)
        let alive = await broker.metadata(MetadataRequest(topics: ["after-fuzz"]), version: 4)
        XCTAssertEqual(alive.topics[0].errorCode, ErrorCode.none)
    }
}
