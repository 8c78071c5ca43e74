import KafkaProtocol
import XCTest

@testable import TapeBroker

final class ConsumerGroupTests: XCTestCase {
    func joinRequest(_ member: String, session: Int32 = 10_000, rebalance: Int32 = 30_000, protocols: [String] = ["range"]) -> JoinGroupRequest {
        JoinGroupRequest(
            groupId: "g", sessionTimeoutMs: session, rebalanceTimeoutMs: rebalance, memberId: member, protocolType: "consumer",
            protocols: protocols.map { .init(name: $0, metadata: Array($0.utf8)) })
    }

    func joinResponses(_ actions: [ConsumerGroup.Action]) -> [ConsumerGroup.RequestID: JoinGroupResponse] {
        var out: [ConsumerGroup.RequestID: JoinGroupResponse] = [:]
        for case .respondJoin(let id, let r) in actions { out[id] = r }
        return out
    }

    func syncResponses(_ actions: [ConsumerGroup.Action]) -> [ConsumerGroup.RequestID: SyncGroupResponse] {
        var out: [ConsumerGroup.RequestID: SyncGroupResponse] = [:]
        for case .respondSync(let id, let r) in actions { out[id] = r }
        return out
    }

    /// Joins a new member through MEMBER_ID_REQUIRED (v5); returns its id and the join actions.
    func joinNew(_ g: inout ConsumerGroup, client: String, request id: UInt64, now: Int64) -> (String, [ConsumerGroup.Action]) {
        let first = joinResponses(g.join(joinRequest(""), version: 5, clientId: client, clientHost: "/127.0.0.1", requestID: id, now: now))
        XCTAssertEqual(first[id]?.errorCode, .memberIdRequired)
        let memberId = first[id]!.memberId
        XCTAssertFalse(memberId.isEmpty)
        return (memberId, g.join(joinRequest(memberId), version: 5, clientId: client, clientHost: "/127.0.0.1", requestID: id + 1, now: now))
    }

    func testSingleMemberJoinsSyncsAndHeartbeats() {
        var g = ConsumerGroup(groupId: "g")
        let (a, actions) = joinNew(&g, client: "c", request: 1, now: 0)
        let joined = joinResponses(actions)[2]
        XCTAssertEqual(joined?.errorCode, ErrorCode.none)
        XCTAssertEqual(joined?.generationId, 1)
        XCTAssertEqual(joined?.leader, a)
        XCTAssertEqual(joined?.protocolName, "range")
        XCTAssertEqual(joined?.members.map(\.memberId), [a])
        XCTAssertEqual(g.state, .completingRebalance)
        XCTAssertEqual(g.heartbeat(memberId: a, generationId: 1, now: 10), ErrorCode.none)
        let synced = syncResponses(
            g.sync(
                SyncGroupRequest(groupId: "g", generationId: 1, memberId: a, assignments: [.init(memberId: a, assignment: [1, 2, 3])]), requestID: 3, now: 20))
        XCTAssertEqual(synced[3], SyncGroupResponse(errorCode: .none, assignment: [1, 2, 3]))
        XCTAssertEqual(g.state, .stable)
        XCTAssertEqual(g.heartbeat(memberId: a, generationId: 0, now: 30), .illegalGeneration)
        XCTAssertEqual(g.heartbeat(memberId: "nobody", generationId: 1, now: 30), .unknownMemberId)
    }

    func testOldJoinVersionsGetAMemberIdAtOnce() {
        var g = ConsumerGroup(groupId: "g")
        let r = joinResponses(g.join(joinRequest(""), version: 3, clientId: "c", clientHost: "h", requestID: 1, now: 0))
        XCTAssertEqual(r[1]?.errorCode, ErrorCode.none)
        XCTAssertEqual(r[1]?.generationId, 1)
    }

    func testUnknownMemberIdIsRefused() {
        var g = ConsumerGroup(groupId: "g")
        let r = joinResponses(g.join(joinRequest("made-up"), version: 5, clientId: "c", clientHost: "h", requestID: 1, now: 0))
        XCTAssertEqual(r[1]?.errorCode, .unknownMemberId)
    }

    func stableGroupWithA() -> (ConsumerGroup, String) {
        var g = ConsumerGroup(groupId: "g")
        let (a, _) = joinNew(&g, client: "a", request: 1, now: 0)
        _ = g.sync(SyncGroupRequest(groupId: "g", generationId: 1, memberId: a, assignments: [.init(memberId: a, assignment: [0xA])]), requestID: 3, now: 0)
        XCTAssertEqual(g.state, .stable)
        return (g, a)
    }

    func testSecondMemberTriggersRebalanceAndLeaderAssignmentsAreDistributed() {
        var (g, a) = stableGroupWithA()
        let (b, bJoin) = joinNew(&g, client: "b", request: 10, now: 100)
        XCTAssertTrue(joinResponses(bJoin).isEmpty, "b waits until a rejoins")
        guard case .preparingRebalance = g.state else { return XCTFail("\(g.state)") }
        XCTAssertEqual(g.heartbeat(memberId: a, generationId: 1, now: 150), .rebalanceInProgress)
        let rejoin = joinResponses(g.join(joinRequest(a), version: 5, clientId: "a", clientHost: "h", requestID: 20, now: 200))
        XCTAssertEqual(rejoin.count, 2)
        XCTAssertEqual(rejoin[20]?.generationId, 2)
        XCTAssertEqual(rejoin[20]?.leader, a)
        XCTAssertEqual(Set(rejoin[20]!.members.map(\.memberId)), [a, b])
        XCTAssertEqual(rejoin[11]?.members, [], "followers get no member list")
        XCTAssertEqual(rejoin[11]?.leader, a)
        // The follower's sync parks until the leader's arrives.
        XCTAssertTrue(g.sync(SyncGroupRequest(groupId: "g", generationId: 2, memberId: b, assignments: []), requestID: 30, now: 210).isEmpty)
        let synced = syncResponses(
            g.sync(
                SyncGroupRequest(
                    groupId: "g", generationId: 2, memberId: a, assignments: [.init(memberId: a, assignment: [1]), .init(memberId: b, assignment: [2])]),
                requestID: 31, now: 220))
        XCTAssertEqual(synced[30]?.assignment, [2])
        XCTAssertEqual(synced[31]?.assignment, [1])
        XCTAssertEqual(g.state, .stable)
    }

    func testSessionTimeoutEvictsASilentMemberAndTheGroupRebalances() {
        var (g, a) = stableGroupWithA()
        let (b, _) = joinNew(&g, client: "b", request: 10, now: 100)
        _ = g.join(joinRequest(a), version: 5, clientId: "a", clientHost: "h", requestID: 20, now: 100)
        _ = g.sync(SyncGroupRequest(groupId: "g", generationId: 2, memberId: a, assignments: []), requestID: 21, now: 100)
        _ = g.sync(SyncGroupRequest(groupId: "g", generationId: 2, memberId: b, assignments: []), requestID: 22, now: 100)
        XCTAssertEqual(g.state, .stable)
        // a keeps heartbeating, b goes silent.
        for t in stride(from: Int64(1000), through: 10_000, by: 1000) {
            XCTAssertEqual(g.heartbeat(memberId: a, generationId: 2, now: t), ErrorCode.none)
            XCTAssertTrue(g.tick(now: t).isEmpty)
        }
        XCTAssertEqual(g.expiredMembers(now: 10_200), [b])
        _ = g.tick(now: 10_200)
        XCTAssertNil(g.members[b])
        guard case .preparingRebalance = g.state else { return XCTFail("\(g.state)") }
        XCTAssertEqual(g.heartbeat(memberId: a, generationId: 2, now: 10_300), .rebalanceInProgress)
        let r = joinResponses(g.join(joinRequest(a), version: 5, clientId: "a", clientHost: "h", requestID: 40, now: 10_400))
        XCTAssertEqual(r[40]?.generationId, 3)
        XCTAssertEqual(r[40]?.members.map(\.memberId), [a])
    }

    func testRebalanceTimeoutDropsMembersThatDoNotRejoin() {
        var (g, a) = stableGroupWithA()
        let (b, _) = joinNew(&g, client: "b", request: 10, now: 1000)
        // a neither rejoins nor stops heartbeating; the rebalance deadline (30 s) passes.
        for t in stride(from: Int64(2000), to: 31_000, by: 2000) {
            _ = g.heartbeat(memberId: a, generationId: 1, now: t)
            XCTAssertTrue(joinResponses(g.tick(now: t)).isEmpty)
        }
        _ = g.heartbeat(memberId: a, generationId: 1, now: 31_000)
        let r = joinResponses(g.tick(now: 31_001))
        XCTAssertEqual(r[11]?.errorCode, ErrorCode.none)
        XCTAssertEqual(r[11]?.leader, b)
        XCTAssertEqual(r[11]?.generationId, 2)
        XCTAssertNil(g.members[a])
    }

    func testLeaveTriggersRebalanceAndLastLeaveEmptiesTheGroup() {
        var (g, a) = stableGroupWithA()
        let (code, _) = g.leave(memberId: a, now: 10)
        XCTAssertEqual(code, ErrorCode.none)
        XCTAssertEqual(g.state, .empty)
        XCTAssertEqual(g.leave(memberId: a, now: 20).0, .unknownMemberId)
    }

    func testInconsistentProtocolsAndBadSessionTimeoutAreRefused() {
        var (g, _) = stableGroupWithA()
        let r = joinResponses(g.join(joinRequest("", protocols: ["other"]), version: 5, clientId: "x", clientHost: "h", requestID: 50, now: 0))
        XCTAssertEqual(r[50]?.errorCode, .inconsistentGroupProtocol)
        let t = joinResponses(g.join(joinRequest("", session: 10), version: 5, clientId: "x", clientHost: "h", requestID: 51, now: 0))
        XCTAssertEqual(t[51]?.errorCode, .invalidSessionTimeout)
    }

    func testCommitValidation() {
        var (g, a) = stableGroupWithA()
        XCTAssertEqual(g.validateCommit(memberId: a, generationId: 1, now: 0), ErrorCode.none)
        XCTAssertEqual(g.validateCommit(memberId: a, generationId: 7, now: 0), .illegalGeneration)
        XCTAssertEqual(g.validateCommit(memberId: "x", generationId: 1, now: 0), .unknownMemberId)
        var empty = ConsumerGroup(groupId: "e")
        XCTAssertEqual(empty.validateCommit(memberId: "", generationId: -1, now: 0), ErrorCode.none)
    }

    func testStaticMemberRestartTakesItsOldPlaceWithoutMemberIdRequired() {
        var g = ConsumerGroup(groupId: "g")
        var req = joinRequest("")
        req.groupInstanceId = "inst-1"
        let first = joinResponses(g.join(req, version: 5, clientId: "c", clientHost: "h", requestID: 1, now: 0))
        XCTAssertEqual(first[1]?.errorCode, ErrorCode.none, "static members get an id at once")
        let oldId = first[1]!.memberId
        _ = g.sync(
            SyncGroupRequest(groupId: "g", generationId: 1, memberId: oldId, assignments: [.init(memberId: oldId, assignment: [7])]), requestID: 2, now: 0)
        // The process restarts (no LeaveGroup) and joins again with the same instance id.
        let again = joinResponses(g.join(req, version: 5, clientId: "c", clientHost: "h", requestID: 3, now: 1000))
        let newId = again[3]?.memberId
        XCTAssertEqual(again[3]?.errorCode, ErrorCode.none)
        XCTAssertNotEqual(newId, oldId)
        // Stable and unchanged: no rebalance (same generation); the answer names the leader as it
        // was, so the restarted leader syncs as a follower and gets its stored assignment.
        XCTAssertEqual(again[3]?.generationId, 1)
        XCTAssertEqual(again[3]?.leader, oldId)
        XCTAssertEqual(g.leaderId, newId)
        XCTAssertEqual(g.members.count, 1)
        XCTAssertEqual(g.heartbeat(memberId: oldId, generationId: 1, now: 1100), .unknownMemberId, "the old incarnation is gone")
        XCTAssertEqual(g.heartbeat(memberId: oldId, groupInstanceId: "inst-1", generationId: 1, now: 1100), .fencedInstanceId)
    }

    // MARK: Static membership (KIP-345)

    func staticJoin(_ instance: String, member: String = "", metadata: String = "range") -> JoinGroupRequest {
        var r = JoinGroupRequest(
            groupId: "g", sessionTimeoutMs: 6_000, rebalanceTimeoutMs: 30_000, memberId: member, protocolType: "consumer",
            protocols: [.init(name: "range", metadata: Array(metadata.utf8))])
        r.groupInstanceId = instance
        return r
    }

    /// Two static members, a (leader) and b, stable in generation 1 with assignments [0xA] and [0xB].
    func stableStaticGroup() -> (g: ConsumerGroup, a: String, b: String) {
        var g = ConsumerGroup(groupId: "g")
        let a = joinResponses(g.join(staticJoin("inst-a"), version: 5, clientId: "a", clientHost: "h", requestID: 1, now: 0))[1]!.memberId
        let joined = joinResponses(g.join(staticJoin("inst-b"), version: 5, clientId: "b", clientHost: "h", requestID: 2, now: 0))
        XCTAssertTrue(joined.isEmpty, "b waits for a to rejoin")
        let rejoined = joinResponses(g.join(staticJoin("inst-a", member: a), version: 5, clientId: "a", clientHost: "h", requestID: 3, now: 0))
        let b = rejoined[2]!.memberId
        XCTAssertEqual(rejoined[3]?.leader, a)
        XCTAssertEqual(rejoined[3]?.generationId, 2)
        _ = g.sync(SyncGroupRequest(groupId: "g", generationId: 2, memberId: b, groupInstanceId: "inst-b", assignments: []), requestID: 4, now: 0)
        let synced = syncResponses(
            g.sync(
                SyncGroupRequest(
                    groupId: "g", generationId: 2, memberId: a, groupInstanceId: "inst-a",
                    assignments: [.init(memberId: a, assignment: [0xA]), .init(memberId: b, assignment: [0xB])]), requestID: 5, now: 0))
        XCTAssertEqual(synced[4]?.assignment, [0xB])
        XCTAssertEqual(g.state, .stable)
        XCTAssertEqual(g.generationId, 2)
        return (g, a, b)
    }

    func testRestartedStaticFollowerGetsItsAssignmentBackWithoutARebalance() {
        var (g, a, b) = stableStaticGroup()
        // b is killed and restarts at once: empty member id, same instance id, same metadata.
        let again = joinResponses(g.join(staticJoin("inst-b"), version: 5, clientId: "b", clientHost: "h", requestID: 10, now: 1_000))
        let newB = try! XCTUnwrap(again[10])
        XCTAssertEqual(newB.errorCode, ErrorCode.none, "answered at once, not parked for a rebalance")
        XCTAssertNotEqual(newB.memberId, b)
        XCTAssertEqual(newB.generationId, 2, "same generation")
        XCTAssertEqual(newB.leader, a)
        XCTAssertEqual(newB.members, [])
        XCTAssertEqual(g.state, .stable)
        XCTAssertEqual(g.generationId, 2)
        // Nobody else rebalances: a's heartbeat is plain, not REBALANCE_IN_PROGRESS.
        XCTAssertEqual(g.heartbeat(memberId: a, groupInstanceId: "inst-a", generationId: 2, now: 1_100), ErrorCode.none)
        // b's SyncGroup returns the assignment the leader gave its previous incarnation.
        let synced = syncResponses(
            g.sync(
                SyncGroupRequest(groupId: "g", generationId: 2, memberId: newB.memberId, groupInstanceId: "inst-b", assignments: []), requestID: 11, now: 1_200)
        )
        XCTAssertEqual(synced[11], SyncGroupResponse(errorCode: .none, assignment: [0xB]))
        XCTAssertEqual(g.members[a]?.assignment, [0xA], "the leader's stored assignment is kept")
        XCTAssertEqual(g.heartbeat(memberId: newB.memberId, groupInstanceId: "inst-b", generationId: 2, now: 1_300), ErrorCode.none)
        XCTAssertEqual(g.validateCommit(memberId: newB.memberId, groupInstanceId: "inst-b", generationId: 2, now: 1_300), ErrorCode.none)
    }

    func testRestartedStaticLeaderSyncsAsAFollowerAndKeepsTheGroupsAssignment() {
        var (g, a, b) = stableStaticGroup()
        let again = joinResponses(g.join(staticJoin("inst-a"), version: 5, clientId: "a", clientHost: "h", requestID: 10, now: 1_000))
        let newA = try! XCTUnwrap(again[10])
        XCTAssertEqual(newA.errorCode, ErrorCode.none)
        XCTAssertEqual(newA.leader, a, "the old leader id: the restarted leader does not run an assignment")
        XCTAssertEqual(newA.members, [])
        XCTAssertEqual(g.leaderId, newA.memberId, "but it stays the group's leader")
        XCTAssertEqual(g.state, .stable)
        let synced = syncResponses(
            g.sync(
                SyncGroupRequest(groupId: "g", generationId: 2, memberId: newA.memberId, groupInstanceId: "inst-a", assignments: []), requestID: 11, now: 1_100)
        )
        XCTAssertEqual(synced[11]?.assignment, [0xA])
        XCTAssertEqual(g.heartbeat(memberId: b, groupInstanceId: "inst-b", generationId: 2, now: 1_100), ErrorCode.none)
        // The next rebalance (a new member) has the restarted leader hand out the assignments.
        let (c, _) = joinNew(&g, client: "c", request: 20, now: 2_000)
        _ = g.join(staticJoin("inst-b", member: b), version: 5, clientId: "b", clientHost: "h", requestID: 22, now: 2_000)
        let r = joinResponses(g.join(staticJoin("inst-a", member: newA.memberId), version: 5, clientId: "a", clientHost: "h", requestID: 23, now: 2_000))
        XCTAssertEqual(r[23]?.leader, newA.memberId)
        XCTAssertEqual(Set(r[23]!.members.map(\.memberId)), [newA.memberId, b, c])
        XCTAssertEqual(r[23]?.generationId, 3)
    }

    func testTheOldIncarnationOfARestartedStaticMemberIsFenced() {
        var (g, _, b) = stableStaticGroup()
        let newB = joinResponses(g.join(staticJoin("inst-b"), version: 5, clientId: "b", clientHost: "h", requestID: 10, now: 1_000))[10]!.memberId
        XCTAssertEqual(g.heartbeat(memberId: b, groupInstanceId: "inst-b", generationId: 2, now: 1_100), .fencedInstanceId)
        XCTAssertEqual(
            syncResponses(
                g.sync(SyncGroupRequest(groupId: "g", generationId: 2, memberId: b, groupInstanceId: "inst-b", assignments: []), requestID: 11, now: 1_100))[
                    11]?.errorCode,
            .fencedInstanceId)
        XCTAssertEqual(g.validateCommit(memberId: b, groupInstanceId: "inst-b", generationId: 2, now: 1_100), .fencedInstanceId)
        XCTAssertEqual(
            joinResponses(g.join(staticJoin("inst-b", member: b), version: 5, clientId: "b", clientHost: "h", requestID: 12, now: 1_100))[12]?.errorCode,
            .fencedInstanceId)
        XCTAssertEqual(g.leave(memberId: b, groupInstanceId: "inst-b", now: 1_100).0, .fencedInstanceId)
        // Without the instance id the old member id is simply unknown (generation alone would not fence it).
        XCTAssertEqual(g.validateCommit(memberId: b, generationId: 2, now: 1_100), .unknownMemberId)
        XCTAssertEqual(g.heartbeat(memberId: b, generationId: 2, now: 1_100), .unknownMemberId)
        // None of it disturbed the group.
        XCTAssertEqual(g.state, .stable)
        XCTAssertEqual(g.members.count, 2)
        XCTAssertEqual(g.member(instanceId: "inst-b")?.memberId, newB)
        // An instance id nobody owns: unknown member.
        XCTAssertEqual(g.heartbeat(memberId: newB, groupInstanceId: "inst-zz", generationId: 2, now: 1_100), .unknownMemberId)
    }

    func testARestartedStaticMemberFencesItsOldIncarnationsParkedRequests() {
        var (g, a, b) = stableStaticGroup()
        // A rebalance starts (a rejoins as leader); b's old incarnation rejoined too and is parked.
        _ = g.join(staticJoin("inst-a", member: a), version: 5, clientId: "a", clientHost: "h", requestID: 10, now: 1_000)
        _ = g.join(staticJoin("inst-b", member: b), version: 5, clientId: "b", clientHost: "h", requestID: 11, now: 1_000)
        XCTAssertEqual(g.state, .completingRebalance)
        XCTAssertTrue(
            g.sync(SyncGroupRequest(groupId: "g", generationId: 3, memberId: b, groupInstanceId: "inst-b", assignments: []), requestID: 12, now: 1_000).isEmpty)
        // b restarts now: its parked sync is fenced and, the assignment not being stored yet, the group rebalances.
        let actions = g.join(staticJoin("inst-b"), version: 5, clientId: "b", clientHost: "h", requestID: 13, now: 1_100)
        XCTAssertEqual(syncResponses(actions)[12]?.errorCode, .fencedInstanceId)
        XCTAssertNil(joinResponses(actions)[13], "parked for the rebalance")
        guard case .preparingRebalance = g.state else { return XCTFail("\(g.state)") }
    }

    func testStaticRejoinWithOtherMetadataRebalances() {
        var (g, a, _) = stableStaticGroup()
        let actions = g.join(staticJoin("inst-b", metadata: "range+other-topic"), version: 5, clientId: "b", clientHost: "h", requestID: 10, now: 1_000)
        XCTAssertTrue(joinResponses(actions).isEmpty, "parked: the leader must assign again")
        guard case .preparingRebalance = g.state else { return XCTFail("\(g.state)") }
        XCTAssertEqual(g.heartbeat(memberId: a, groupInstanceId: "inst-a", generationId: 2, now: 1_100), .rebalanceInProgress)
    }

    func testLeaveGroupByInstanceIdRemovesTheStaticMember() {
        var (g, a, b) = stableStaticGroup()
        XCTAssertEqual(g.leave(memberId: "", groupInstanceId: "inst-nobody", now: 10).0, .unknownMemberId)
        let (code, _) = g.leave(memberId: "", groupInstanceId: "inst-b", now: 10)
        XCTAssertEqual(code, ErrorCode.none)
        XCTAssertNil(g.members[b])
        XCTAssertNil(g.member(instanceId: "inst-b"))
        guard case .preparingRebalance = g.state else { return XCTFail("\(g.state)") }
        // By member id and instance id, as a static member leaving itself.
        XCTAssertEqual(g.leave(memberId: a, groupInstanceId: "inst-a", now: 20).0, ErrorCode.none)
        XCTAssertEqual(g.state, .empty)
        // The instance id is free again: a new join with it is a new member (no replacement).
        let r = joinResponses(g.join(staticJoin("inst-b"), version: 5, clientId: "b", clientHost: "h", requestID: 30, now: 30))
        XCTAssertEqual(r[30]?.errorCode, ErrorCode.none)
        XCTAssertEqual(r[30]?.generationId, 4)
    }

    func testASilentStaticMemberStillExpiresWithItsSession() {
        var (g, a, b) = stableStaticGroup()
        for t in stride(from: Int64(1_000), through: 6_000, by: 1_000) {
            XCTAssertEqual(g.heartbeat(memberId: a, groupInstanceId: "inst-a", generationId: 2, now: t), ErrorCode.none)
            XCTAssertTrue(g.tick(now: t).isEmpty)
        }
        XCTAssertEqual(g.expiredMembers(now: 6_001), [b])
        _ = g.tick(now: 6_001)
        XCTAssertNil(g.members[b])
        XCTAssertNil(g.member(instanceId: "inst-b"))
        guard case .preparingRebalance = g.state else { return XCTFail("\(g.state)") }
        // Coming back later, it joins as a new member, in the rebalance.
        let r = g.join(staticJoin("inst-b"), version: 5, clientId: "b", clientHost: "h", requestID: 40, now: 7_000)
        XCTAssertTrue(joinResponses(r).isEmpty, "waits for a")
        XCTAssertEqual(g.heartbeat(memberId: b, groupInstanceId: "inst-b", generationId: 2, now: 7_000), .fencedInstanceId)
    }

    /// The broker passes instance ids through: OffsetCommit and LeaveGroup v3 (by instance id).
    func testBrokerFencesAnOldIncarnationsCommitAndLeavesByInstanceId() async {
        var c = BrokerConfiguration()
        c.autoCreateTopics = true
        let broker = Broker(configuration: c, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
        _ = await broker.metadata(MetadataRequest(topics: ["t"], allowAutoTopicCreation: true), version: 1)
        func join(_ member: String) async -> JoinGroupResponse {
            await broker.joinGroup(staticJoin("inst-1", member: member), version: 5, clientId: "c", clientHost: "h")
        }
        let first = await join("")
        XCTAssertEqual(first.errorCode, ErrorCode.none)
        let synced = await broker.syncGroup(
            SyncGroupRequest(
                groupId: "g", generationId: first.generationId, memberId: first.memberId, groupInstanceId: "inst-1",
                assignments: [.init(memberId: first.memberId, assignment: [7])]))
        XCTAssertEqual(synced.assignment, [7])
        let second = await join("")
        XCTAssertEqual(second.generationId, first.generationId, "no rebalance")
        let resynced = await broker.syncGroup(
            SyncGroupRequest(groupId: "g", generationId: second.generationId, memberId: second.memberId, groupInstanceId: "inst-1", assignments: []))
        XCTAssertEqual(resynced.assignment, [7])
        func commit(_ member: String) async -> ErrorCode {
            let r = await broker.offsetCommit(
                OffsetCommitRequest(
                    groupId: "g", generationId: first.generationId, memberId: member, groupInstanceId: "inst-1",
                    topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 0, committedMetadata: nil)])]))
            return r.topics[0].partitions[0].errorCode
        }
        let fenced = await commit(first.memberId)
        XCTAssertEqual(fenced, .fencedInstanceId)
        let accepted = await commit(second.memberId)
        XCTAssertEqual(accepted, ErrorCode.none)
        let left = await broker.leaveGroup(LeaveGroupRequest(groupId: "g", members: [.init(memberId: "", groupInstanceId: "inst-1")]))
        XCTAssertEqual(left.members.map(\.errorCode), [ErrorCode.none])
        let described = await broker.describeGroups(DescribeGroupsRequest(groups: ["g"]))
        XCTAssertEqual(described.groups[0].groupState, "Empty")
    }
}
