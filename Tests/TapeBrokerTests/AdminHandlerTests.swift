import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

/// CreatePartitions, DeleteRecords, DeleteGroups, OffsetDelete, DescribeCluster, ListGroups v4-5 and
/// OffsetFetch v8 through the handler, every error path included.
final class AdminHandlerTests: XCTestCase {
    func makeBroker(topics: any TopicStore = InMemoryTopicStore(), offsets: any CommittedOffsetStore = InMemoryCommittedOffsetStore()) -> Broker {
        var c = BrokerConfiguration()
        c.autoCreateTopics = false
        c.clusterId = "cluster-x"
        c.nodeId = 3
        return Broker(configuration: c, topics: topics, committedOffsets: offsets)
    }

    func batch(_ values: [String]) -> ByteBuffer {
        RecordBatchBuilder.build(
            records: values.enumerated().map {
                Record(timestampDelta: Int64($0.offset), offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8))
            },
            baseTimestamp: 1_000, producerId: -1, producerEpoch: -1, baseSequence: -1)
    }

    func produce(_ b: Broker, _ values: [String], topic: String = "t", partition: Int32 = 0) async -> ProduceResponse.PartitionResponse {
        let r = await b.produce(
            ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: topic, partitions: [.init(index: partition, records: batch(values))])]))
        return r.topics[0].partitions[0]
    }

    func create(_ b: Broker, _ name: String, partitions: Int32) async {
        let r = await b.createTopics(CreateTopicsRequest(topics: [.init(name: name, numPartitions: partitions, replicationFactor: 1)]), version: 4)
        XCTAssertEqual(r.topics[0].errorCode, ErrorCode.none)
    }

    func commit(_ b: Broker, group: String, topic: String = "t", partition: Int32 = 0, offset: Int64) async {
        let r = await b.offsetCommit(
            OffsetCommitRequest(
                groupId: group, generationId: -1, memberId: "",
                topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, committedOffset: offset)])]))
        XCTAssertEqual(r.topics[0].partitions[0].errorCode, ErrorCode.none)
    }

    /// ConsumerProtocolSubscription v0: version, topics, user data.
    func subscription(_ topics: [String]) -> [UInt8] {
        var b = ByteBuffer()
        b.encodeInt16(0)
        b.encodeArray(topics) { $0.encodeString($1) }
        b.encodeNullableBytes(nil)
        return Array(b.readableBytesView)
    }

    func join(_ b: Broker, group: String, topics: [String], protocolType: String = "consumer") async -> JoinGroupResponse {
        await b.joinGroup(
            JoinGroupRequest(
                groupId: group, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: "", groupInstanceId: nil, protocolType: protocolType,
                protocols: [.init(name: "range", metadata: subscription(topics))]), version: 3, clientId: "c", clientHost: "/127.0.0.1")
    }

    // MARK: CreatePartitions

    func testCreatePartitionsGrowsTheTopicAndMetadataShowsItAtOnce() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 1)
        let r = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 3)]))
        XCTAssertEqual(r.results, [.init(name: "t", errorCode: .none)])
        let md = await b.metadata(MetadataRequest(topics: ["t"]), version: 8)
        XCTAssertEqual(md.topics[0].partitions.map(\.partitionIndex), [0, 1, 2])
        let p2 = await produce(b, ["x"], partition: 2)
        XCTAssertEqual(p2.errorCode, ErrorCode.none)
        XCTAssertEqual(p2.baseOffset, 0)
        // With explicit assignments (one per new partition, this node only).
        let assigned = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 5, assignments: [[3], [3]])]))
        XCTAssertEqual(assigned.results[0].errorCode, ErrorCode.none)
        let md2 = await b.metadata(MetadataRequest(topics: ["t"]), version: 8)
        XCTAssertEqual(md2.topics[0].partitions.count, 5)
    }

    func testCreatePartitionsErrors() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 3)
        await create(b, "u", partitions: 1)
        let r = await b.createPartitions(
            CreatePartitionsRequest(topics: [
                .init(name: "t", count: 2),  // shrink
                .init(name: "u", count: 1),  // same
                .init(name: "nope", count: 4),
                .init(name: "dup", count: 2), .init(name: "dup", count: 3),
            ]))
        XCTAssertEqual(r.results.map(\.errorCode), [.invalidPartitions, .invalidPartitions, .unknownTopicOrPartition, .invalidRequest, .invalidRequest])
        XCTAssertTrue(r.results[0].errorMessage?.contains("cannot be removed") == true, r.results[0].errorMessage ?? "")
        XCTAssertTrue(r.results[1].errorMessage?.contains("already has 1 partitions") == true, r.results[1].errorMessage ?? "")
        for result in r.results { XCTAssertNotNil(result.errorMessage) }
        let assignments = await b.createPartitions(
            CreatePartitionsRequest(topics: [.init(name: "t", count: 5, assignments: [[3]]), .init(name: "u", count: 2, assignments: [[7]])]))
        XCTAssertEqual(assignments.results.map(\.errorCode), [.invalidReplicaAssignment, .invalidReplicaAssignment])
        let tooMany = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "u", count: 20_000)]))
        XCTAssertEqual(tooMany.results[0].errorCode, .policyViolation)
        let overLimit = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "u", count: 10_001), .init(name: "t", count: 4)]))
        XCTAssertEqual(overLimit.results.map(\.errorCode), [.policyViolation, .policyViolation], "over 10 000 new partitions in one request: all refused")
        let intMax = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "u", count: .max), .init(name: "t", count: .min)]))
        XCTAssertEqual(intMax.results.map(\.errorCode), [.policyViolation, .policyViolation])
        let md = await b.metadata(MetadataRequest(topics: ["t", "u"]), version: 8)
        XCTAssertEqual(md.topics.map(\.partitions.count), [3, 1], "nothing changed")
    }

    func testCreatePartitionsValidateOnlyChangesNothing() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 1)
        let r = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 4)], validateOnly: true))
        XCTAssertEqual(r.results[0].errorCode, ErrorCode.none)
        let md = await b.metadata(MetadataRequest(topics: ["t"]), version: 8)
        XCTAssertEqual(md.topics[0].partitions.count, 1)
        let bad = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 1)], validateOnly: true))
        XCTAssertEqual(bad.results[0].errorCode, .invalidPartitions)
    }

    func testCreatePartitionsRespectsTheBrokersPartitionLimit() async throws {
        let dir = try temporaryDirectory("admin-limit").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0, maxPartitions: 4))
        let b = makeBroker(topics: manager, offsets: DurableCommittedOffsetStore(manager.offsetStore))
        await create(b, "t", partitions: 2)
        let validate = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 5)], validateOnly: true))
        XCTAssertEqual(validate.results[0].errorCode, .policyViolation)
        XCTAssertTrue(validate.results[0].errorMessage?.contains("--max-partitions") == true, validate.results[0].errorMessage ?? "")
        let real = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 5)]))
        XCTAssertEqual(real.results[0].errorCode, .policyViolation)
        XCTAssertTrue(real.results[0].errorMessage?.contains("limit is 4") == true, real.results[0].errorMessage ?? "")
        let fits = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 4)]))
        XCTAssertEqual(fits.results[0].errorCode, ErrorCode.none)
        XCTAssertEqual(manager.partitionCount, 4)
        await manager.shutdown()
    }

    // MARK: DeleteRecords

    func testDeleteRecordsMovesTheLowWatermark() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 2)
        _ = await produce(b, ["a", "b"])
        _ = await produce(b, ["c"])
        _ = await produce(b, ["d", "e"])
        let r = await b.deleteRecords(DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: 3)])]))
        XCTAssertEqual(r.topics[0].partitions, [.init(partitionIndex: 0, lowWatermark: 3, errorCode: .none)])
        let below = await b.fetch(
            FetchRequest(
                maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20,
                topics: [.init(topic: "t", partitions: [.init(partition: 0, fetchOffset: 2, partitionMaxBytes: 1 << 20)])]))
        XCTAssertEqual(below.topics[0].partitions[0].errorCode, .offsetOutOfRange)
        XCTAssertEqual(below.topics[0].partitions[0].logStartOffset, 3)
        let at = await b.fetch(
            FetchRequest(
                maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20,
                topics: [.init(topic: "t", partitions: [.init(partition: 0, fetchOffset: 3, partitionMaxBytes: 1 << 20)])]))
        XCTAssertEqual(at.topics[0].partitions[0].errorCode, ErrorCode.none)
        let earliest = await b.listOffsets(ListOffsetsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -2)])]))
        XCTAssertEqual(earliest.topics[0].partitions[0].offset, 3)
        let byTime = await b.listOffsets(ListOffsetsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: 0)])]))
        XCTAssertEqual(byTime.topics[0].partitions[0].offset, 3, "a timestamp lookup never answers below the start")
        // A smaller offset changes nothing; -1 means the high watermark.
        let lower = await b.deleteRecords(DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: 1)])]))
        XCTAssertEqual(lower.topics[0].partitions[0].lowWatermark, 3)
        let hw = await b.deleteRecords(DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: -1)])]))
        XCTAssertEqual(hw.topics[0].partitions[0], .init(partitionIndex: 0, lowWatermark: 5, errorCode: .none))
        let next = await produce(b, ["f"])
        XCTAssertEqual(next.baseOffset, 5)
        XCTAssertEqual(next.logStartOffset, 5)
    }

    func testDeleteRecordsErrors() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 1)
        _ = await produce(b, ["a", "b"])
        let r = await b.deleteRecords(
            DeleteRecordsRequest(topics: [
                .init(
                    name: "t",
                    partitions: [
                        .init(partitionIndex: 0, offset: 3), .init(partitionIndex: 0, offset: -2), .init(partitionIndex: 0, offset: .min),
                        .init(partitionIndex: 0, offset: .max), .init(partitionIndex: 1, offset: 0), .init(partitionIndex: -1, offset: 0),
                    ]),
                .init(name: "nope", partitions: [.init(partitionIndex: 0, offset: 0)]),
            ]))
        XCTAssertEqual(
            r.topics[0].partitions.map(\.errorCode),
            [.offsetOutOfRange, .offsetOutOfRange, .offsetOutOfRange, .offsetOutOfRange, .unknownTopicOrPartition, .unknownTopicOrPartition])
        XCTAssertEqual(r.topics[0].partitions.map(\.lowWatermark), [-1, -1, -1, -1, -1, -1])
        XCTAssertEqual(r.topics[1].partitions[0].errorCode, .unknownTopicOrPartition)
        let still = await b.listOffsets(ListOffsetsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -2)])]))
        XCTAssertEqual(still.topics[0].partitions[0].offset, 0)
    }

    // MARK: DeleteGroups

    func testDeleteGroupsDeletesOffsetsAndRefusesGroupsWithMembers() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 1)
        await commit(b, group: "idle", offset: 5)
        await commit(b, group: "busy", offset: 6)
        let joined = await join(b, group: "busy", topics: ["t"])
        XCTAssertEqual(joined.errorCode, ErrorCode.none)
        let r = await b.deleteGroups(DeleteGroupsRequest(groupsNames: ["idle", "busy", "never", "", "idle"]))
        XCTAssertEqual(r.results.map(\.groupId), ["idle", "busy", "never", ""])
        XCTAssertEqual(r.results.map(\.errorCode), [.none, .nonEmptyGroup, .groupIdNotFound, .invalidGroupId])
        let idle = await b.offsetFetch(OffsetFetchRequest(groupId: "idle", topics: nil))
        XCTAssertTrue(idle.topics.isEmpty, "its committed offsets are gone")
        let busy = await b.offsetFetch(OffsetFetchRequest(groupId: "busy", topics: nil))
        XCTAssertEqual(busy.topics.first?.partitions.first?.committedOffset, 6)
        let listed = await b.listGroups()
        XCTAssertEqual(listed.groups.map(\.groupId), ["busy"])
        // Once its member leaves, the (now empty) group can be deleted, and is then unknown.
        _ = await b.leaveGroup(LeaveGroupRequest(groupId: "busy", members: [.init(memberId: joined.memberId)]))
        let again = await b.deleteGroups(DeleteGroupsRequest(groupsNames: ["busy"]))
        XCTAssertEqual(again.results.map(\.errorCode), [.none])
        let gone = await b.deleteGroups(DeleteGroupsRequest(groupsNames: ["busy"]))
        XCTAssertEqual(gone.results.map(\.errorCode), [.groupIdNotFound])
    }

    /// A clock the test moves by hand.
    final class ManualClock: MillisecondClock, @unchecked Sendable {
        let now = NIOLockedValueBox<Int64>(1_000_000)
        func nowMs() -> Int64 { now.withLockedValue { $0 } }
        func advance(_ ms: Int64) { now.withLockedValue { $0 += ms } }
    }

    /// librdkafka's admin test waits out a static member's session and deletes the group at once:
    /// the expired member must be gone then, without waiting for the periodic tick.
    func testDeleteGroupsAndOffsetDeleteSeeExpiredSessionsWithoutATick() async throws {
        let clock = ManualClock()
        let b = Broker(configuration: BrokerConfiguration(), topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore(), clock: clock)
        await create(b, "t", partitions: 1)
        for g in ["a", "b"] {
            await commit(b, group: g, offset: 1)
            let joined = await join(b, group: g, topics: ["t"])  // session 10 s
            XCTAssertEqual(joined.errorCode, ErrorCode.none)
        }
        clock.advance(9_000)
        let early = await b.deleteGroups(DeleteGroupsRequest(groupsNames: ["a"]))
        XCTAssertEqual(early.results.map(\.errorCode), [.nonEmptyGroup])
        let earlyOffsets = await b.offsetDelete(OffsetDeleteRequest(groupId: "b", topics: [.init(name: "t", partitions: [0])]))
        XCTAssertEqual(earlyOffsets.topics[0].partitions[0].errorCode, .groupSubscribedToTopic)
        clock.advance(1_001)
        let late = await b.deleteGroups(DeleteGroupsRequest(groupsNames: ["a"]))
        XCTAssertEqual(late.results.map(\.errorCode), [.none])
        let lateOffsets = await b.offsetDelete(OffsetDeleteRequest(groupId: "b", topics: [.init(name: "t", partitions: [0])]))
        XCTAssertEqual(lateOffsets.topics[0].partitions[0].errorCode, ErrorCode.none)
    }

    // MARK: OffsetDelete

    func testOffsetDeleteForgetsPartitionsAndRefusesSubscribedTopics() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 2)
        await create(b, "u", partitions: 1)
        await commit(b, group: "g", topic: "t", partition: 0, offset: 1)
        await commit(b, group: "g", topic: "t", partition: 1, offset: 2)
        await commit(b, group: "g", topic: "u", partition: 0, offset: 3)
        let joined = await join(b, group: "g", topics: ["u"])
        XCTAssertEqual(joined.errorCode, ErrorCode.none)
        let r = await b.offsetDelete(
            OffsetDeleteRequest(
                groupId: "g", topics: [.init(name: "t", partitions: [0, 7]), .init(name: "u", partitions: [0]), .init(name: "nope", partitions: [0])]))
        XCTAssertEqual(r.errorCode, ErrorCode.none)
        XCTAssertEqual(
            r.topics.map { $0.partitions.map(\.errorCode) }, [[.none, .unknownTopicOrPartition], [.groupSubscribedToTopic], [.unknownTopicOrPartition]])
        let left = await b.offsetFetch(OffsetFetchRequest(groupId: "g", topics: nil))
        XCTAssertEqual(left.topics.map(\.name), ["t", "u"])
        XCTAssertEqual(left.topics[0].partitions.map(\.partitionIndex), [1], "t-0 is gone, t-1 stays")
        XCTAssertEqual(left.topics[1].partitions.map(\.committedOffset), [3], "the subscribed topic's offset stays")
    }

    func testOffsetDeleteGroupErrors() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 1)
        let unknown = await b.offsetDelete(OffsetDeleteRequest(groupId: "never", topics: [.init(name: "t", partitions: [0])]))
        XCTAssertEqual(unknown.errorCode, .groupIdNotFound)
        let empty = await b.offsetDelete(OffsetDeleteRequest(groupId: "", topics: [.init(name: "t", partitions: [0])]))
        XCTAssertEqual(empty.errorCode, .invalidGroupId)
        // A non-consumer group with members: its subscriptions cannot be read, so nothing may go.
        await commit(b, group: "connect", offset: 1)
        let joined = await join(b, group: "connect", topics: ["t"], protocolType: "connect")
        XCTAssertEqual(joined.errorCode, ErrorCode.none)
        let busy = await b.offsetDelete(OffsetDeleteRequest(groupId: "connect", topics: [.init(name: "t", partitions: [0])]))
        XCTAssertEqual(busy.errorCode, .nonEmptyGroup)
        // Unreadable subscription metadata subscribes to nothing (and does not trap).
        XCTAssertNil(Broker.subscribedTopics([0]))
        XCTAssertNil(Broker.subscribedTopics([0, 0, 0x7F, 0xFF, 0xFF, 0xFF]))
        XCTAssertEqual(Broker.subscribedTopics(subscription(["a", "b"])), ["a", "b"])
    }

    // MARK: DescribeCluster

    func testDescribeCluster() async throws {
        let b = makeBroker()
        let r = await b.describeCluster(DescribeClusterRequest(), version: 1)
        XCTAssertEqual(r.errorCode, ErrorCode.none)
        XCTAssertEqual(r.clusterId, "cluster-x")
        XCTAssertEqual(r.controllerId, 3)
        XCTAssertEqual(r.brokers, [.init(brokerId: 3, host: "127.0.0.1", port: 9092)])
        XCTAssertEqual(r.clusterAuthorizedOperations, Int32.min)
        let ops = await b.describeCluster(DescribeClusterRequest(includeClusterAuthorizedOperations: true), version: 0)
        XCTAssertNotEqual(ops.clusterAuthorizedOperations & (1 << 8), 0, "DESCRIBE is allowed")
        // librdkafka's describe_cluster reads the same from Metadata v8+.
        let md = await b.metadata(MetadataRequest(topics: [], includeClusterAuthorizedOperations: true), version: 8)
        XCTAssertEqual(md.clusterAuthorizedOperations, ops.clusterAuthorizedOperations)
        let plain = await b.metadata(MetadataRequest(topics: []), version: 8)
        XCTAssertEqual(plain.clusterAuthorizedOperations, Int32.min)
        let controllers = await b.describeCluster(DescribeClusterRequest(endpointType: 2), version: 1)
        XCTAssertEqual(controllers.errorCode, .mismatchedEndpointType)
        XCTAssertNotNil(controllers.errorMessage)
        let unknown = await b.describeCluster(DescribeClusterRequest(endpointType: 9), version: 1)
        XCTAssertEqual(unknown.errorCode, .unsupportedEndpointType)
    }

    // MARK: ListGroups v4-5, OffsetFetch v8

    func testListGroupsStatesTypesAndFilters() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 1)
        await commit(b, group: "stored", offset: 1)
        let joined = await join(b, group: "live", topics: ["t"])
        _ = await b.syncGroup(
            SyncGroupRequest(
                groupId: "live", generationId: joined.generationId, memberId: joined.memberId, assignments: [.init(memberId: joined.memberId, assignment: [])]))
        let all = await b.listGroups(ListGroupsRequest())
        XCTAssertEqual(
            all.groups,
            [
                .init(groupId: "live", protocolType: "consumer", groupState: "Stable", groupType: "Classic"),
                .init(groupId: "stored", protocolType: "consumer", groupState: "Empty", groupType: "Classic"),
            ])
        let classic = await b.listGroups(ListGroupsRequest(typesFilter: ["classic"]))
        XCTAssertEqual(classic.groups.map(\.groupId), ["live", "stored"])
        let modern = await b.listGroups(ListGroupsRequest(typesFilter: ["Consumer", "Share"]))
        XCTAssertEqual(modern.groups, [], "no KIP-848 or share groups here")
        let stable = await b.listGroups(ListGroupsRequest(statesFilter: ["stable"]))
        XCTAssertEqual(stable.groups.map(\.groupId), ["live"])
        let empty = await b.listGroups(ListGroupsRequest(statesFilter: ["Empty", "Dead"]))
        XCTAssertEqual(empty.groups.map(\.groupId), ["stored"])
        let none = await b.listGroups(ListGroupsRequest(statesFilter: ["PreparingRebalance"]))
        XCTAssertEqual(none.groups, [])
    }

    func testOffsetFetchV8AnswersEachGroup() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 2)
        await commit(b, group: "a", topic: "t", partition: 1, offset: 11)
        await commit(b, group: "b", topic: "t", partition: 0, offset: 22)
        let r = await b.offsetFetch(
            OffsetFetchRequest(
                groups: [
                    .init(groupId: "a", topics: nil), .init(groupId: "b", topics: [.init(name: "t", partitionIndexes: [0, 1])]),
                    .init(groupId: "c", topics: nil),
                ],
                requireStable: true))
        XCTAssertEqual(r.groups.map(\.groupId), ["a", "b", "c"])
        XCTAssertEqual(r.groups[0].topics, [.init(name: "t", partitions: [.init(partitionIndex: 1, committedOffset: 11, metadata: "", errorCode: .none)])])
        XCTAssertEqual(r.groups[1].topics[0].partitions.map(\.committedOffset), [22, -1])
        XCTAssertEqual(r.groups[2].topics, [])
        // Encoded at v8, it reads back the same.
        var bytes = ByteBuffer()
        r.encode(into: &bytes, version: 8)
        XCTAssertEqual(try OffsetFetchResponse.decode(from: &bytes, version: 8), r)
    }

    // MARK: Storage failures

    /// Committed offsets whose deletions fail (a disk gone bad).
    final class FailingDeletesOffsetStore: CommittedOffsetStore, @unchecked Sendable {
        let inner = InMemoryCommittedOffsetStore()
        func commit(group: String, offsets: [TopicPartition: CommittedOffset]) async throws { try await inner.commit(group: group, offsets: offsets) }
        func offsets(group: String) -> [TopicPartition: CommittedOffset] { inner.offsets(group: group) }
        func groups() -> [String] { inner.groups() }
        func removeTopic(_ topic: String) { inner.removeTopic(topic) }
        func deleteGroup(_ group: String) async throws { throw StorageError(.io, "Input/output error") }
        func deleteOffsets(group: String, partitions: [TopicPartition]) async throws { throw StorageError(.io, "Input/output error") }
    }

    func testStorageFailuresBecomeErrorCodes() async throws {
        let b = makeBroker(topics: BrokerHandlerTests.FullDiskTopicStore(failAppends: true), offsets: FailingDeletesOffsetStore())
        await create(b, "t", partitions: 1)
        let records = await b.deleteRecords(DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: 0)])]))
        XCTAssertEqual(records.topics[0].partitions[0].errorCode, .kafkaStorageError)
        let grown = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 2)]))
        XCTAssertEqual(grown.results[0].errorCode, .policyViolation, "a store that cannot add partitions says so")
        XCTAssertNotNil(grown.results[0].errorMessage)
        await commit(b, group: "g", offset: 1)
        let od = await b.offsetDelete(OffsetDeleteRequest(groupId: "g", topics: [.init(name: "t", partitions: [0])]))
        XCTAssertEqual(od.topics[0].partitions[0].errorCode, .unknownServerError)
        let dg = await b.deleteGroups(DeleteGroupsRequest(groupsNames: ["g"]))
        XCTAssertEqual(dg.results[0].errorCode, .unknownServerError)
        let still = await b.offsetFetch(OffsetFetchRequest(groupId: "g", topics: nil))
        XCTAssertEqual(still.topics.first?.partitions.first?.committedOffset, 1)
    }

    func testCreatePartitionsBeyondTenThousandInOneTopicIsRefused() async throws {
        let b = makeBroker()
        await create(b, "big", partitions: 10_000)
        let r = await b.createPartitions(CreatePartitionsRequest(topics: [.init(name: "big", count: 10_001)]))
        XCTAssertEqual(r.results[0].errorCode, .invalidPartitions)
        XCTAssertTrue(r.results[0].errorMessage?.contains("at most 10000") == true, r.results[0].errorMessage ?? "")
    }

    // MARK: Through the dispatcher

    func testNewApisAnswerThroughHandleAtEveryVersion() async throws {
        let b = makeBroker()
        await create(b, "t", partitions: 1)
        let bodies: [KafkaRequestBody] = [
            .createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 2)], validateOnly: true)),
            .deleteRecords(DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: 0)])])),
            .deleteGroups(DeleteGroupsRequest(groupsNames: ["g"])),
            .offsetDelete(OffsetDeleteRequest(groupId: "g", topics: [])),
            .describeCluster(DescribeClusterRequest()),
        ]
        for body in bodies {
            for v in body.apiKey.supportedVersions {
                let request = KafkaRequest(header: RequestHeader(apiKey: body.apiKey.rawValue, apiVersion: v, correlationId: 42, clientId: "t"), body: body)
                let answer = await b.handle(request)
                var frame = try XCTUnwrap(answer, "\(body.apiKey) v\(v)")
                XCTAssertEqual(try frame.decodeInt32(), Int32(frame.readableBytes))
                XCTAssertEqual(try ResponseHeader.decode(from: &frame, headerVersion: body.apiKey.responseHeaderVersion(v)).correlationId, 42)
                switch body {
                case .createPartitions: XCTAssertEqual(try CreatePartitionsResponse.decode(from: &frame, version: v).results[0].errorCode, ErrorCode.none)
                case .deleteRecords:
                    XCTAssertEqual(try DeleteRecordsResponse.decode(from: &frame, version: v).topics[0].partitions[0].errorCode, ErrorCode.none)
                case .deleteGroups: XCTAssertEqual(try DeleteGroupsResponse.decode(from: &frame, version: v).results[0].errorCode, .groupIdNotFound)
                case .offsetDelete: XCTAssertEqual(try OffsetDeleteResponse.decode(from: &frame, version: v).errorCode, .groupIdNotFound)
                case .describeCluster: XCTAssertEqual(try DescribeClusterResponse.decode(from: &frame, version: v).controllerId, 3)
                default: XCTFail()
                }
                XCTAssertEqual(frame.readableBytes, 0, "\(body.apiKey) v\(v): the whole frame is read")
            }
        }
    }
}
