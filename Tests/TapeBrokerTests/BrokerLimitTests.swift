import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import TapeBroker

/// The broker's limits at the request handler (docs/limits.md): fetch size and duplicates,
/// parked fetches, groups, members, offset metadata, producer state.
final class BrokerLimitTests: XCTestCase {
    func makeBroker(_ configure: (inout BrokerConfiguration) -> Void = { _ in }) -> Broker {
        var c = BrokerConfiguration()
        configure(&c)
        var quiet = Logger(label: "limits")
        quiet.logLevel = .error
        return Broker(configuration: c, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore(), logger: quiet)
    }

    func produce(_ b: Broker, bytes: Int, topic: String = "t") async {
        let value = [UInt8](repeating: 0x61, count: bytes)
        let batch = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: value)], baseTimestamp: 1_000)
        let r = await b.produce(ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: topic, partitions: [.init(index: 0, records: batch)])]))
        XCTAssertEqual(r.topics[0].partitions[0].errorCode, ErrorCode.none)
    }

    func repeatedPartitionFetch(times: Int, maxWait: Int32 = 0, minBytes: Int32 = 0, offset: Int64 = 0) -> FetchRequest {
        FetchRequest(
            maxWaitMs: maxWait, minBytes: minBytes, maxBytes: Int32.max,
            topics: (0..<times).map { _ in .init(topic: "t", partitions: [.init(partition: 0, fetchOffset: offset, partitionMaxBytes: Int32.max)]) })
    }

    func testAPartitionNamedManyTimesIsAnsweredOnceWithinFetchMaxBytes() async throws {
        let b = makeBroker { $0.fetchMaxBytes = 1 << 20 }
        for _ in 0..<4 { await produce(b, bytes: 900_000) }
        let response = await b.fetch(repeatedPartitionFetch(times: 1_000))
        XCTAssertEqual(response.topics.count, 1, "duplicate topics are merged")
        XCTAssertEqual(response.topics[0].partitions.count, 1, "the partition is answered once")
        let bytes = response.topics[0].partitions[0].records?.readableBytes ?? 0
        XCTAssertGreaterThan(bytes, 0)
        XCTAssertLessThanOrEqual(bytes, 2 * 900_100, "fetch.max.bytes (1 MiB) caps the response; only the first batch may pass it")
        // The whole frame is encodable (the old broker trapped past Int32 here).
        let frame = KafkaResponse.encodeFrame(response, apiKey: .fetch, version: 11, correlationId: 1)
        XCTAssertLessThan(frame.readableBytes, 3 << 20)
    }

    func testFetchesShrinkToOneBatchWhileSocketsHoldTooManyUnwrittenResponses() async throws {
        let b = makeBroker { $0.maxPendingResponseBytes = 4 << 20 }
        for _ in 0..<4 { await produce(b, bytes: 500_000) }
        let request = FetchRequest(
            maxWaitMs: 0, minBytes: 0, maxBytes: 10 << 20,
            topics: [.init(topic: "t", partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 10 << 20)])])
        let normal = await b.fetch(request)
        XCTAssertGreaterThan(normal.topics[0].partitions[0].records?.readableBytes ?? 0, 1_900_000, "all four batches")
        b.pendingResponseBytes.add(5 << 20)  // what connections that do not read have left unwritten
        let squeezed = await b.fetch(request)
        let bytes = squeezed.topics[0].partitions[0].records?.readableBytes ?? 0
        XCTAssertGreaterThan(bytes, 400_000, "one batch: the consumer still makes progress")
        XCTAssertLessThan(bytes, 600_000, "but only one")
        b.pendingResponseBytes.subtract(5 << 20)
        let again = await b.fetch(request)
        XCTAssertGreaterThan(again.topics[0].partitions[0].records?.readableBytes ?? 0, 1_900_000)
    }

    func testFullResponseStillReportsLaterPartitionsWithoutData() async throws {
        let b = makeBroker {
            $0.fetchMaxBytes = 1 << 20
            $0.numPartitions = 2
        }
        await produce(b, bytes: 900_000)
        await produce(b, bytes: 900_000)
        let batch = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: [UInt8](repeating: 1, count: 900_000))], baseTimestamp: 1)
        _ = await b.produce(ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: "t", partitions: [.init(index: 1, records: batch)])]))
        let r = await b.fetch(
            FetchRequest(
                maxWaitMs: 0, minBytes: 0, maxBytes: 1_000_000,
                topics: [
                    .init(
                        topic: "t",
                        partitions: [
                            .init(partition: 0, fetchOffset: 0, partitionMaxBytes: 2_000_000),
                            .init(partition: 1, fetchOffset: 0, partitionMaxBytes: 2_000_000),
                        ])
                ]))
        let p = r.topics[0].partitions
        XCTAssertEqual(p.count, 2)
        XCTAssertGreaterThan(p[0].records?.readableBytes ?? 0, 0)
        XCTAssertEqual(p[1].records?.readableBytes ?? -1, 0, "no room left: no data, but offsets")
        XCTAssertEqual(p[1].highWatermark, 1)
    }

    func testParkedFetchWaitsForMinBytesAndAnswersEachPartitionOnce() async throws {
        let b = makeBroker()
        await produce(b, bytes: 10)  // the topic exists; the fetch starts after this record
        let request = repeatedPartitionFetch(times: 50, maxWait: 10_000, minBytes: 3_000, offset: 1)
        let parked = Task { await b.fetch(request) }
        for _ in 0..<200 where await b.parkedFetchCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let parkedNow = await b.parkedFetchCount
        XCTAssertEqual(parkedNow, 1)
        await produce(b, bytes: 1_000)
        await produce(b, bytes: 1_000)
        try await Task.sleep(for: .milliseconds(50))
        let stillParked = await b.parkedFetchCount
        XCTAssertEqual(stillParked, 1, "2 kB of the 3 kB asked for: still waiting (each append counted once, not once per mention)")
        await produce(b, bytes: 1_000)
        let r = await parked.value
        XCTAssertEqual(r.topics[0].partitions.count, 1)
        XCTAssertGreaterThanOrEqual(r.topics[0].partitions[0].records?.readableBytes ?? 0, 3_000)
        let after = await b.parkedFetchCount
        XCTAssertEqual(after, 0)
    }

    func testParkedFetchIsAnsweredWhenItsConnectionCloses() async throws {
        let b = makeBroker()
        await produce(b, bytes: 10)
        let request = repeatedPartitionFetch(times: 1, maxWait: 600_000, minBytes: 1 << 20)
        let parked = Task { await b.fetch(request, connection: 7) }
        for _ in 0..<200 where await b.parkedFetchCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
        await b.connectionClosed(8)
        let other = await b.parkedFetchCount
        XCTAssertEqual(other, 1, "another connection closing does not release it")
        await b.connectionClosed(7)
        _ = await parked.value
        let left = await b.parkedFetchCount
        XCTAssertEqual(left, 0)
    }

    func join(_ b: Broker, group: String, member: String = "", instance: String? = nil, version: Int16 = 3) async -> JoinGroupResponse {
        await b.joinGroup(
            JoinGroupRequest(
                groupId: group, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: member, groupInstanceId: instance, protocolType: "consumer",
                protocols: [.init(name: "range", metadata: [])]), version: version, clientId: "c", clientHost: "/127.0.0.1")
    }

    func testGroupMaxSizeRefusesTheMemberBeyondIt() async throws {
        var settings = ConsumerGroup.Settings()
        settings.maxSize = 2
        var g = ConsumerGroup(groupId: "g", settings: settings)
        func request(_ member: String = "", instance: String? = nil) -> JoinGroupRequest {
            JoinGroupRequest(
                groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: member, groupInstanceId: instance, protocolType: "consumer",
                protocols: [.init(name: "range", metadata: [])])
        }
        func code(_ actions: [ConsumerGroup.Action]) -> ErrorCode? {
            for a in actions { if case .respondJoin(_, let r) = a, r.errorCode != .none { return r.errorCode } }
            return nil
        }
        _ = g.join(request(), version: 3, clientId: "a", clientHost: "h", requestID: 1, now: 0)
        _ = g.join(request(), version: 3, clientId: "b", clientHost: "h", requestID: 2, now: 0)
        XCTAssertEqual(g.members.count, 2)
        XCTAssertEqual(code(g.join(request(), version: 3, clientId: "c", clientHost: "h", requestID: 3, now: 0)), .groupMaxSizeReached)
        XCTAssertEqual(g.members.count, 2)
        // Member ids handed out by MEMBER_ID_REQUIRED count too (a flood of v4 joins is bounded).
        var h = ConsumerGroup(groupId: "g", settings: settings)
        XCTAssertEqual(code(h.join(request(), version: 4, clientId: "a", clientHost: "h", requestID: 1, now: 0)), .memberIdRequired)
        XCTAssertEqual(code(h.join(request(), version: 4, clientId: "b", clientHost: "h", requestID: 2, now: 0)), .memberIdRequired)
        XCTAssertEqual(code(h.join(request(), version: 4, clientId: "c", clientHost: "h", requestID: 3, now: 0)), .groupMaxSizeReached)
    }

    func testMaxGroupsRefusesNewGroupsAndVacantGroupsAreForgotten() async throws {
        let b = makeBroker {
            $0.maxGroups = 3
            $0.group.minSessionTimeoutMs = 1
        }
        for i in 0..<3 {
            let r = await join(b, group: "g\(i)")
            XCTAssertEqual(r.errorCode, ErrorCode.none)
        }
        let refused = await join(b, group: "g3")
        XCTAssertEqual(refused.errorCode, .groupMaxSizeReached)
        // Once a group's last member leaves, it no longer counts.
        let describe = await b.describeGroups(DescribeGroupsRequest(groups: ["g0"]))
        let member = describe.groups[0].members[0].memberId
        let left = await b.leaveGroup(LeaveGroupRequest(groupId: "g0", members: [.init(memberId: member)]))
        XCTAssertEqual(left.errorCode, ErrorCode.none)
        let admitted = await join(b, group: "g3")
        XCTAssertEqual(admitted.errorCode, ErrorCode.none)
    }

    func testOversizedOffsetMetadataIsRefused() async throws {
        let b = makeBroker { $0.offsetMetadataMaxBytes = 10 }
        await produce(b, bytes: 10)
        let r = await b.offsetCommit(
            OffsetCommitRequest(
                groupId: "g", generationId: -1, memberId: "",
                topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 1, committedMetadata: String(repeating: "x", count: 11))])]))
        XCTAssertEqual(r.topics[0].partitions[0].errorCode, .offsetMetadataTooLarge)
        let ok = await b.offsetCommit(
            OffsetCommitRequest(
                groupId: "g", generationId: -1, memberId: "",
                topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 1, committedMetadata: "0123456789")])]))
        XCTAssertEqual(ok.topics[0].partitions[0].errorCode, ErrorCode.none)
    }

    func testDescribeGroupsOverManyStoredGroupsReadsTheStoreOnce() async throws {
        let store = CountingOffsetStore()
        for i in 0..<2_000 {
            try await store.commit(group: "g\(i)", offsets: [TopicPartition("t", 0): CommittedOffset(offset: 1, leaderEpoch: -1, metadata: nil)])
        }
        let b = Broker(configuration: BrokerConfiguration(), topics: InMemoryTopicStore(), committedOffsets: store)
        let r = await b.describeGroups(DescribeGroupsRequest(groups: (0..<500).map { "g\($0)" } + ["nope"]))
        XCTAssertEqual(r.groups.count, 501)
        XCTAssertEqual(r.groups[0].groupState, "Empty")
        XCTAssertEqual(r.groups[500].groupState, "Dead")
        XCTAssertEqual(store.groupsCalls.withLockedValue { $0 }, 1, "one read of the stored groups per request, not one per named group")
    }

    func testProducerStatesExpireAndAreBounded() {
        var table = ProducerStateTable()
        let header = { (pid: Int64) in
            RecordBatchHeader(
                baseOffset: 0, batchLength: 0, partitionLeaderEpoch: 0, magic: 2, crc: 0, attributes: 0, lastOffsetDelta: 0, baseTimestamp: 0, maxTimestamp: 0,
                producerId: pid, producerEpoch: 0, baseSequence: 0, recordCount: 1)
        }
        for pid in Int64(0)..<100 {
            table.issued(producerId: pid, now: pid)
            table.record(header(pid), partition: TopicPartition("t", 0), baseOffset: pid, now: pid)
        }
        XCTAssertEqual(table.count.states, 100)
        table.expire(now: 150, expirationMs: 100, maxStates: 1_000)
        XCTAssertEqual(table.count.states, 49, "states last used at 51...99 survive a 100 ms expiry at 150")
        XCTAssertEqual(table.count.issued, 49)
        table.expire(now: 150, expirationMs: 100, maxStates: 10)
        XCTAssertEqual(table.count.states, 10)
        XCTAssertEqual(table.count.issued, 10)
        // The survivors are the most recent: producer 99 is still deduplicated.
        XCTAssertEqual(table.check(header(99), partition: TopicPartition("t", 0)), .duplicate(baseOffset: 99))
    }
}

/// Committed offsets in memory, counting reads of the group list.
final class CountingOffsetStore: CommittedOffsetStore, @unchecked Sendable {
    let inner = InMemoryCommittedOffsetStore()
    let groupsCalls = NIOLockedValueBox(0)
    func commit(group: String, offsets: [TopicPartition: CommittedOffset]) async throws { try await inner.commit(group: group, offsets: offsets) }
    func offsets(group: String) -> [TopicPartition: CommittedOffset] { inner.offsets(group: group) }
    func groups() -> [String] {
        groupsCalls.withLockedValue { $0 += 1 }
        return inner.groups()
    }
    func removeTopic(_ topic: String) { inner.removeTopic(topic) }
}
