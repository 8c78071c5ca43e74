import KafkaProtocol
import Logging

/// The consumer-group coordinator of the single-node broker: every active group by id, the ids
/// of their JoinGroup/SyncGroup requests, and the limit on how many groups exist at once.
///
/// A synchronous value with no sockets, clock or continuations: each call takes the current
/// time in milliseconds and returns the answers due now as `ConsumerGroup.Action`s — among them,
/// possibly, the answer to the request it was called for (look it up by the returned
/// `RequestID`). A request without an answer yet is parked by the caller and answered by a later
/// call's actions. Committed offsets are not kept here (see `CommittedOffsetStore`).
public struct GroupCoordinator: Sendable {
    public typealias RequestID = ConsumerGroup.RequestID
    public typealias Action = ConsumerGroup.Action

    /// Settings every new group gets.
    public let settings: ConsumerGroup.Settings
    /// Groups held at once; a JoinGroup that would create one more gets GROUP_MAX_SIZE_REACHED.
    public let maxGroups: Int
    private let logger: Logger
    public private(set) var groups: [String: ConsumerGroup] = [:]
    private var nextRequestID: RequestID = 1

    public init(settings: ConsumerGroup.Settings = .init(), maxGroups: Int = 10_000, logger: Logger = Logger(label: "tape.broker")) {
        self.settings = settings
        self.maxGroups = maxGroups
        self.logger = logger
    }

    /// The group with this id, if it is active (has members, parked requests or member ids handed out).
    public func group(_ groupId: String) -> ConsumerGroup? { groups[groupId] }

    /// Whether a JoinGroup for `groupId` fits under `maxGroups` (the group exists or there is room).
    public func hasRoom(for groupId: String) -> Bool { groups[groupId] != nil || groups.count < maxGroups }

    private mutating func takeRequestID() -> RequestID {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    /// JoinGroup. The answer for the returned id is among the actions, or comes with a later call's
    /// (when the group completes its join phase). Vacant groups are forgotten only by `tick`, so
    /// a caller at `maxGroups` ticks first.
    public mutating func join(_ r: JoinGroupRequest, version: Int16, clientId: String, clientHost: String, now: Int64) -> (RequestID, [Action]) {
        let id = takeRequestID()
        if r.groupId.isEmpty { return (id, [.respondJoin(id, JoinGroupResponse(errorCode: .invalidGroupId, memberId: r.memberId))]) }
        guard hasRoom(for: r.groupId) else {
            logger.warning("JoinGroup refused: the broker holds its maximum of \(maxGroups) active groups", metadata: ["group": "\(r.groupId)"])
            return (id, [.respondJoin(id, JoinGroupResponse(errorCode: .groupMaxSizeReached, memberId: r.memberId))])
        }
        var group = groups[r.groupId] ?? ConsumerGroup(groupId: r.groupId, settings: settings)
        let actions = group.join(r, version: version, clientId: clientId, clientHost: clientHost, requestID: id, now: now)
        groups[r.groupId] = group
        return (id, actions)
    }

    /// SyncGroup. A follower's answer comes with the leader's SyncGroup (or a rebalance's actions).
    public mutating func sync(_ r: SyncGroupRequest, now: Int64) -> (RequestID, [Action]) {
        let id = takeRequestID()
        guard var group = groups[r.groupId] else { return (id, [.respondSync(id, SyncGroupResponse(errorCode: .unknownMemberId))]) }
        let actions = group.sync(r, requestID: id, now: now)
        groups[r.groupId] = group
        return (id, actions)
    }

    /// Heartbeat: NONE, REBALANCE_IN_PROGRESS (rejoin), or why the member is not current.
    public mutating func heartbeat(_ r: HeartbeatRequest, now: Int64) -> ErrorCode {
        guard var group = groups[r.groupId] else { return .unknownMemberId }
        let code = group.heartbeat(memberId: r.memberId, groupInstanceId: r.groupInstanceId, generationId: r.generationId, now: now)
        groups[r.groupId] = group
        return code
    }

    /// LeaveGroup for every member named (v3+: a static member may be named by instance id alone).
    /// The top-level error is the member's when one member is named.
    public mutating func leave(_ r: LeaveGroupRequest, now: Int64) -> (LeaveGroupResponse, [Action]) {
        guard var group = groups[r.groupId] else {
            return (
                LeaveGroupResponse(
                    errorCode: .unknownMemberId,
                    members: r.members.map { .init(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, errorCode: .unknownMemberId) }),
                []
            )
        }
        var results: [LeaveGroupResponse.Member] = []
        var actions: [Action] = []
        for m in r.members {
            let (code, memberActions) = group.leave(memberId: m.memberId, groupInstanceId: m.groupInstanceId, now: now)
            actions += memberActions
            results.append(.init(memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: code))
            if code == .none {
                logger.info("member left group", metadata: ["group": "\(r.groupId)", "member": "\(m.memberId)", "instance": "\(m.groupInstanceId ?? "-")"])
            }
        }
        groups[r.groupId] = group
        let top: ErrorCode = r.members.count == 1 ? results[0].errorCode : .none
        return (LeaveGroupResponse(errorCode: top, members: results), actions)
    }

    /// Whether an OffsetCommit may store offsets: the member and generation checked against the
    /// group; with no active group, only a standalone commit (generation < 0) is allowed.
    public mutating func validateCommit(_ r: OffsetCommitRequest, now: Int64) -> ErrorCode {
        guard var group = groups[r.groupId] else { return r.generationId >= 0 ? .unknownMemberId : .none }
        let code = group.validateCommit(memberId: r.memberId, groupInstanceId: r.groupInstanceId, generationId: r.generationId, now: now)
        groups[r.groupId] = group
        return code
    }

    /// DeleteGroups: forgets the group if it is active here but empty (no members, not
    /// rebalancing); NON_EMPTY_GROUP otherwise. NONE when it is not active here (its committed
    /// offsets, if any, are the caller's to delete).
    public mutating func deleteGroup(_ groupId: String) -> ErrorCode {
        guard let g = groups[groupId] else { return .none }
        guard g.members.isEmpty, g.state == .empty else { return .nonEmptyGroup }
        groups[groupId] = nil
        return .none
    }

    /// Evicts members whose session expired, completes join phases whose deadline passed, and
    /// forgets vacant groups.
    public mutating func tick(now: Int64) -> [Action] {
        var actions: [Action] = []
        for (name, var group) in groups {
            for m in group.expiredMembers(now: now) {
                logger.info("member's session expired; removing it from the group", metadata: ["group": "\(name)", "member": "\(m)"])
            }
            actions += group.tick(now: now)
            groups[name] = group.isVacant ? nil : group
        }
        return actions
    }
}
