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
        let synced = syncResponses(g.sync(SyncGroupRequest(groupId: "g", generationId: 1, memberId: a, assignments: [.init(memberId: a, assignment: [1, 2, 3])]), requestID: 3, now: 20))
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
            g.sync(SyncGroupRequest(groupId: "g", generationId: 2, memberId: a, assignments: [.init(memberId: a, assignment: [1]), .init(memberId: b, assignment: [2])]), requestID: 31, now: 220))
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
        _ = g.sync(SyncGroupRequest(groupId: "g", generationId: 1, memberId: oldId, assignments: [.init(memberId: oldId, assignment: [7])]), requestID: 2, now: 0)
        // The process restarts (no LeaveGroup) and joins again with the same instance id.
        let again = joinResponses(g.join(req, version: 5, clientId: "c", clientHost: "h", requestID: 3, now: 1000))
        let newId = again[3]?.memberId
        XCTAssertEqual(again[3]?.errorCode, ErrorCode.none)
        XCTAssertNotEqual(newId, oldId)
        XCTAssertEqual(again[3]?.leader, newId)
        XCTAssertEqual(g.members.count, 1)
        XCTAssertEqual(g.heartbeat(memberId: oldId, generationId: 2, now: 1100), .unknownMemberId, "the old incarnation is gone")
    }
}
