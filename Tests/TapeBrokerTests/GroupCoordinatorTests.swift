import KafkaProtocol
import XCTest

@testable import TapeBroker

/// The group coordinator driven directly, without a broker or sockets: every answer is read from
/// the actions a call returns, keyed by the request id it handed out.
final class GroupCoordinatorTests: XCTestCase {
    func join(
        _ c: inout GroupCoordinator, group: String = "g", member: String = "", instance: String? = nil, metadata: String = "range",
        version: Int16 = 5, client: String = "c", now: Int64
    ) -> (GroupCoordinator.RequestID, [GroupCoordinator.Action]) {
        let r = JoinGroupRequest(
            groupId: group, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 30_000, memberId: member, groupInstanceId: instance,
            protocolType: "consumer", protocols: [.init(name: "range", metadata: Array(metadata.utf8))])
        return c.join(r, version: version, clientId: client, clientHost: "/127.0.0.1", now: now)
    }

    func joinAnswer(_ id: GroupCoordinator.RequestID, in actions: [GroupCoordinator.Action]) -> JoinGroupResponse? {
        for case .respondJoin(id, let r) in actions { return r }
        return nil
    }

    func syncAnswer(_ id: GroupCoordinator.RequestID, in actions: [GroupCoordinator.Action]) -> SyncGroupResponse? {
        for case .respondSync(id, let r) in actions { return r }
        return nil
    }

    /// A dynamic member joining through MEMBER_ID_REQUIRED; returns the second join's id and actions.
    func joinDynamic(_ c: inout GroupCoordinator, client: String, now: Int64) -> (String, GroupCoordinator.RequestID, [GroupCoordinator.Action]) {
        let (first, firstActions) = join(&c, client: client, now: now)
        let required = joinAnswer(first, in: firstActions)
        XCTAssertEqual(required?.errorCode, .memberIdRequired)
        let memberId = required?.memberId ?? ""
        XCTAssertFalse(memberId.isEmpty)
        let (second, actions) = join(&c, member: memberId, client: client, now: now)
        return (memberId, second, actions)
    }

    func sync(_ c: inout GroupCoordinator, member: String, instance: String? = nil, generation: Int32, assignments: [String: [UInt8]] = [:], now: Int64)
        -> (GroupCoordinator.RequestID, [GroupCoordinator.Action])
    {
        c.sync(
            SyncGroupRequest(
                groupId: "g", generationId: generation, memberId: member, groupInstanceId: instance,
                assignments: assignments.sorted { $0.key < $1.key }.map { .init(memberId: $0.key, assignment: $0.value) }),
            now: now)
    }

    func testOneMemberJoinsAndSyncs() {
        var c = GroupCoordinator()
        let (a, joinID, actions) = joinDynamic(&c, client: "a", now: 0)
        let joined = joinAnswer(joinID, in: actions)
        XCTAssertEqual(joined?.errorCode, ErrorCode.none)
        XCTAssertEqual(joined?.generationId, 1)
        XCTAssertEqual(joined?.leader, a)
        XCTAssertEqual(joined?.memberId, a)
        XCTAssertEqual(joined?.members.map(\.memberId), [a])
        XCTAssertEqual(c.group("g")?.state, .completingRebalance)

        let (syncID, synced) = sync(&c, member: a, generation: 1, assignments: [a: [1, 2]], now: 10)
        XCTAssertEqual(syncAnswer(syncID, in: synced), SyncGroupResponse(errorCode: .none, assignment: [1, 2]))
        XCTAssertEqual(c.group("g")?.state, .stable)
        XCTAssertEqual(c.heartbeat(HeartbeatRequest(groupId: "g", generationId: 1, memberId: a), now: 20), ErrorCode.none)
        XCTAssertEqual(c.heartbeat(HeartbeatRequest(groupId: "g", generationId: 0, memberId: a), now: 20), .illegalGeneration)
        XCTAssertEqual(c.heartbeat(HeartbeatRequest(groupId: "other", generationId: 1, memberId: a), now: 20), .unknownMemberId)
    }

    func testSecondMemberTriggersARebalanceAndGetsTheLeadersAssignment() {
        var c = GroupCoordinator()
        let (a, _, _) = joinDynamic(&c, client: "a", now: 0)
        _ = sync(&c, member: a, generation: 1, assignments: [a: [1]], now: 0)
        XCTAssertEqual(c.group("g")?.state, .stable)

        // b's join waits until a rejoins; a learns of the rebalance from its heartbeat.
        let (b, bJoin, bActions) = joinDynamic(&c, client: "b", now: 100)
        XCTAssertNil(joinAnswer(bJoin, in: bActions))
        XCTAssertEqual(c.group("g")?.state.kafkaName, "PreparingRebalance")
        XCTAssertEqual(c.heartbeat(HeartbeatRequest(groupId: "g", generationId: 1, memberId: a), now: 200), .rebalanceInProgress)

        let (aJoin, aActions) = join(&c, member: a, client: "a", now: 300)
        let aJoined = joinAnswer(aJoin, in: aActions)
        let bJoined = joinAnswer(bJoin, in: aActions)
        XCTAssertEqual(aJoined?.generationId, 2)
        XCTAssertEqual(bJoined?.generationId, 2)
        XCTAssertEqual(aJoined?.leader, a)
        XCTAssertEqual(bJoined?.leader, a)
        XCTAssertEqual(aJoined?.members.map(\.memberId), [a, b])
        XCTAssertEqual(bJoined?.members.map(\.memberId), [])

        // The follower's SyncGroup waits for the leader's, which answers both.
        let (bSync, bSynced) = sync(&c, member: b, generation: 2, now: 400)
        XCTAssertNil(syncAnswer(bSync, in: bSynced))
        let (aSync, aSynced) = sync(&c, member: a, generation: 2, assignments: [a: [1], b: [2]], now: 500)
        XCTAssertEqual(syncAnswer(aSync, in: aSynced)?.assignment, [1])
        XCTAssertEqual(syncAnswer(bSync, in: aSynced)?.assignment, [2])
        XCTAssertEqual(syncAnswer(bSync, in: aSynced)?.errorCode, ErrorCode.none)
        XCTAssertEqual(c.group("g")?.state, .stable)
        XCTAssertEqual(c.group("g")?.generationId, 2)
    }

    func testStaticMemberRestartKeepsItsAssignmentWithoutRebalanceAndFencesTheOldId() {
        var c = GroupCoordinator()
        // A static member gets its id at once (no MEMBER_ID_REQUIRED).
        let (firstJoin, firstActions) = join(&c, instance: "inst-1", client: "a", now: 0)
        let first = joinAnswer(firstJoin, in: firstActions)
        XCTAssertEqual(first?.errorCode, ErrorCode.none)
        XCTAssertEqual(first?.generationId, 1)
        let old = first?.memberId ?? ""
        _ = sync(&c, member: old, instance: "inst-1", generation: 1, assignments: [old: [7]], now: 10)
        XCTAssertEqual(c.group("g")?.state, .stable)

        // The restarted process joins with an empty member id and the same instance id and metadata:
        // answered at once, same generation, the group stays stable and keeps the assignment.
        let (againJoin, againActions) = join(&c, instance: "inst-1", client: "a", now: 1_000)
        let again = joinAnswer(againJoin, in: againActions)
        XCTAssertEqual(again?.errorCode, ErrorCode.none)
        XCTAssertEqual(again?.generationId, 1)
        let new = again?.memberId ?? ""
        XCTAssertNotEqual(new, old)
        XCTAssertFalse(new.isEmpty)
        XCTAssertEqual(c.group("g")?.state, .stable)
        XCTAssertEqual(c.group("g")?.member(instanceId: "inst-1")?.memberId, new)
        let (syncID, synced) = sync(&c, member: new, instance: "inst-1", generation: 1, now: 1_010)
        XCTAssertEqual(syncAnswer(syncID, in: synced), SyncGroupResponse(errorCode: .none, assignment: [7]))

        // The old incarnation is fenced everywhere.
        XCTAssertEqual(c.heartbeat(HeartbeatRequest(groupId: "g", generationId: 1, memberId: old, groupInstanceId: "inst-1"), now: 1_020), .fencedInstanceId)
        let commit = OffsetCommitRequest(groupId: "g", generationId: 1, memberId: old, groupInstanceId: "inst-1", topics: [])
        XCTAssertEqual(c.validateCommit(commit, now: 1_020), .fencedInstanceId)
        let (oldSyncID, oldSync) = sync(&c, member: old, instance: "inst-1", generation: 1, now: 1_020)
        XCTAssertEqual(syncAnswer(oldSyncID, in: oldSync)?.errorCode, .fencedInstanceId)
        XCTAssertEqual(c.heartbeat(HeartbeatRequest(groupId: "g", generationId: 1, memberId: new, groupInstanceId: "inst-1"), now: 1_020), ErrorCode.none)
    }

    func testStaticMemberWithChangedMetadataRebalances() {
        var c = GroupCoordinator()
        let (firstJoin, firstActions) = join(&c, instance: "inst-1", client: "a", now: 0)
        let old = joinAnswer(firstJoin, in: firstActions)?.memberId ?? ""
        _ = sync(&c, member: old, instance: "inst-1", generation: 1, assignments: [old: [7]], now: 10)
        let (againJoin, againActions) = join(&c, instance: "inst-1", metadata: "changed", client: "a", now: 1_000)
        // The only member rejoined, so the new generation forms at once.
        let again = joinAnswer(againJoin, in: againActions)
        XCTAssertEqual(again?.errorCode, ErrorCode.none)
        XCTAssertEqual(again?.generationId, 2)
        XCTAssertEqual(c.group("g")?.state, .completingRebalance)
    }

    func testLeaveByInstanceIdEmptiesTheGroupAndTickForgetsIt() {
        var c = GroupCoordinator()
        let (joinID, actions) = join(&c, instance: "inst-1", now: 0)
        XCTAssertEqual(joinAnswer(joinID, in: actions)?.errorCode, ErrorCode.none)
        let (left, _) = c.leave(LeaveGroupRequest(groupId: "g", members: [.init(memberId: "", groupInstanceId: "inst-1")]), now: 10)
        XCTAssertEqual(left.errorCode, ErrorCode.none)
        XCTAssertEqual(left.members.map(\.errorCode), [ErrorCode.none])
        XCTAssertEqual(c.group("g")?.state, .empty)
        XCTAssertTrue(c.tick(now: 20).isEmpty)
        XCTAssertNil(c.group("g"))
        let (again, _) = c.leave(LeaveGroupRequest(groupId: "g", members: [.init(memberId: "", groupInstanceId: "inst-1")]), now: 30)
        XCTAssertEqual(again.errorCode, .unknownMemberId)
    }

    func testSessionExpiryEvictsTheMemberOnTick() {
        var c = GroupCoordinator()
        let (a, _, _) = joinDynamic(&c, client: "a", now: 0)
        _ = sync(&c, member: a, generation: 1, assignments: [a: [1]], now: 0)
        _ = c.tick(now: 10_000)
        XCTAssertEqual(c.group("g")?.members.count, 1)
        _ = c.tick(now: 10_001)
        XCTAssertNil(c.group("g"))
        XCTAssertEqual(c.heartbeat(HeartbeatRequest(groupId: "g", generationId: 1, memberId: a), now: 10_002), .unknownMemberId)
    }

    func testInitialRebalanceDelayHoldsTheFirstGenerationUntilTick() {
        var settings = ConsumerGroup.Settings()
        settings.initialRebalanceDelayMs = 3_000
        var c = GroupCoordinator(settings: settings)
        let (joinID, actions) = join(&c, version: 3, now: 0)
        XCTAssertNil(joinAnswer(joinID, in: actions))
        XCTAssertNil(joinAnswer(joinID, in: c.tick(now: 2_999)))
        let answer = joinAnswer(joinID, in: c.tick(now: 3_000))
        XCTAssertEqual(answer?.errorCode, ErrorCode.none)
        XCTAssertEqual(answer?.generationId, 1)
    }

    func testGroupLimitAndUnknownGroups() {
        var c = GroupCoordinator(maxGroups: 1)
        let (emptyID, emptyActions) = join(&c, group: "", version: 3, now: 0)
        XCTAssertEqual(joinAnswer(emptyID, in: emptyActions)?.errorCode, .invalidGroupId)
        let (g1, g1Actions) = join(&c, group: "g", version: 3, now: 0)
        XCTAssertEqual(joinAnswer(g1, in: g1Actions)?.errorCode, ErrorCode.none)
        XCTAssertFalse(c.hasRoom(for: "h"))
        XCTAssertTrue(c.hasRoom(for: "g"))
        let (g2, g2Actions) = join(&c, group: "h", version: 3, now: 0)
        XCTAssertEqual(joinAnswer(g2, in: g2Actions)?.errorCode, .groupMaxSizeReached)
        XCTAssertNil(c.group("h"))

        // No active group: only a standalone commit (generation -1) passes; SyncGroup is refused.
        XCTAssertEqual(c.validateCommit(OffsetCommitRequest(groupId: "x", generationId: -1, memberId: "", topics: []), now: 0), ErrorCode.none)
        XCTAssertEqual(c.validateCommit(OffsetCommitRequest(groupId: "x", generationId: 1, memberId: "m", topics: []), now: 0), .unknownMemberId)
        let (syncID, synced) = c.sync(SyncGroupRequest(groupId: "x", generationId: 1, memberId: "m", assignments: []), now: 0)
        XCTAssertEqual(syncAnswer(syncID, in: synced)?.errorCode, .unknownMemberId)
        XCTAssertNil(c.group("x"))
    }
}
