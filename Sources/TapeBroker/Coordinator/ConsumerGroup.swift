import KafkaProtocol

/// One consumer group under the classic rebalance protocol, as a pure state machine value.
///
/// Events (`join`, `sync`, `heartbeat`, `leave`, `tick`) are mutating functions that take the
/// current time in milliseconds (from an injected clock) and return `Action`s: the answers to
/// JoinGroup/SyncGroup requests that were parked while the group rebalanced. `GroupCoordinator`
/// holds the groups and the broker carries the actions out; nothing here touches a socket or a clock.
public struct ConsumerGroup: Sendable {
    public typealias RequestID = UInt64

    public enum State: Sendable, Equatable {
        case empty
        /// Waiting for members to (re)join until `deadline`.
        case preparingRebalance(deadline: Int64)
        /// Joined; waiting for the leader's SyncGroup with the assignments.
        case completingRebalance
        case stable

        /// The name Kafka uses in DescribeGroups.
        public var kafkaName: String {
            switch self {
            case .empty: "Empty"
            case .preparingRebalance: "PreparingRebalance"
            case .completingRebalance: "CompletingRebalance"
            case .stable: "Stable"
            }
        }
    }

    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        public var sessionTimeoutMs: Int32
        public var rebalanceTimeoutMs: Int32
        public var protocols: [JoinGroupRequest.GroupProtocol]
        public var assignment: [UInt8] = []
        public var lastHeartbeatMs: Int64

        public func metadata(for protocolName: String?) -> [UInt8] {
            protocols.first { $0.name == protocolName }?.metadata ?? []
        }
    }

    /// A parked request answered later.
    public enum Action: Sendable, Equatable {
        case respondJoin(RequestID, JoinGroupResponse)
        case respondSync(RequestID, SyncGroupResponse)
    }

    /// Tunables, from the broker configuration.
    public struct Settings: Sendable {
        /// Smallest session timeout a member may ask for. Default 1000 ms.
        public var minSessionTimeoutMs: Int32 = 1000
        /// Largest session timeout a member may ask for. Default 3 600 000 ms.
        public var maxSessionTimeoutMs: Int32 = 3_600_000
        /// How long a new group waits for more members before its first generation (Kafka's
        /// `group.initial.rebalance.delay.ms`; each new member extends it, up to the rebalance
        /// timeout). Default 0 ms here; `tape broker` defaults to Kafka's 3000.
        public var initialRebalanceDelayMs: Int64 = 0
        /// Members (and member ids handed out, not yet joined) a group holds (Kafka:
        /// `group.max.size`); a join beyond it gets GROUP_MAX_SIZE_REACHED. Default 1000.
        public var maxSize: Int = 1000
        public init() {}
    }

    public let groupId: String
    public var settings: Settings
    public private(set) var state: State = .empty
    public private(set) var generationId: Int32 = 0
    public private(set) var protocolType: String?
    public private(set) var protocolName: String?
    public private(set) var leaderId: String?
    public private(set) var members: [String: Member] = [:]
    /// Member ids in join order (the first remaining one becomes leader).
    private var memberOrder: [String] = []
    /// Static members (KIP-345): `group.instance.id` → the member id that currently owns it.
    private var staticMembers: [String: String] = [:]
    private var pendingJoins: [String: RequestID] = [:]
    private var pendingSyncs: [String: RequestID] = [:]
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the given time.
    private var pendingMemberIds: [String: Int64] = [:]
    private var joinNotBefore: Int64 = 0
    /// How much longer new members may still extend the initial rebalance delay (Kafka's
    /// InitialDelayedJoin `remainingMs`).
    private var initialDelayRemainingMs: Int64 = 0
    private var memberSerial = 0

    public init(groupId: String, settings: Settings = Settings()) {
        self.groupId = groupId
        self.settings = settings
    }

    /// True when the group holds nothing but its identity: no members, no parked requests, no
    /// member ids handed out. The broker may then forget it (committed offsets live elsewhere).
    public var isVacant: Bool {
        members.isEmpty && pendingJoins.isEmpty && pendingSyncs.isEmpty && pendingMemberIds.isEmpty && state == .empty
    }

    /// Members in join order.
    public var orderedMembers: [Member] { memberOrder.compactMap { members[$0] } }

    // MARK: JoinGroup

    public mutating func join(
        _ request: JoinGroupRequest, version: Int16, clientId: String, clientHost: String, requestID: RequestID, now: Int64
    ) -> [Action] {
        func fail(_ code: ErrorCode, memberId: String = request.memberId) -> [Action] {
            [.respondJoin(requestID, JoinGroupResponse(errorCode: code, memberId: memberId))]
        }
        if request.groupId.isEmpty { return fail(.invalidGroupId) }
        if request.sessionTimeoutMs < settings.minSessionTimeoutMs || request.sessionTimeoutMs > settings.maxSessionTimeoutMs {
            return fail(.invalidSessionTimeout)
        }
        if request.protocols.isEmpty || request.protocolType.isEmpty { return fail(.inconsistentGroupProtocol) }
        // The member this request speaks for: by member id, or a static member restarting (empty
        // member id, known instance id).
        let knownStatic = request.memberId.isEmpty ? request.groupInstanceId.flatMap { staticMembers[$0] } : nil
        if !members.isEmpty {
            if let type = protocolType, type != request.protocolType { return fail(.inconsistentGroupProtocol) }
            let offered = Set(request.protocols.map(\.name))
            let others = members.values.filter { $0.memberId != request.memberId && $0.memberId != knownStatic }
            if !others.isEmpty && commonProtocols(others).isDisjoint(with: offered) { return fail(.inconsistentGroupProtocol) }
        }

        var memberId = request.memberId
        var actions: [Action] = []
        let isNewMember = members[memberId] == nil && knownStatic == nil
        if isNewMember && members.count + pendingMemberIds.count >= settings.maxSize && pendingMemberIds[memberId] == nil {
            return fail(.groupMaxSizeReached)
        }
        if memberId.isEmpty {
            memberSerial += 1
            memberId = "\(clientId.isEmpty ? "member" : clientId)-\(now)-\(memberSerial)"
            if let old = knownStatic {
                // A static member (KIP-345) restarted: the new id takes the old member's place, and
                // the old id is fenced from now on (FENCED_INSTANCE_ID).
                let leaderBefore = leaderId
                actions += replaceMember(old, with: memberId)
                if state == .stable, let answer = rejoinWithoutRebalance(memberId, request, leaderBefore: leaderBefore, requestID: requestID, now: now) {
                    return actions + [answer]
                }
            } else if version >= 4 && request.groupInstanceId == nil {
                pendingMemberIds[memberId] = now + Int64(request.sessionTimeoutMs)
                return fail(.memberIdRequired, memberId: memberId)
            }
        } else if pendingMemberIds.removeValue(forKey: memberId) != nil {
            // A dynamic member coming back with the id MEMBER_ID_REQUIRED handed it.
        } else if let error = validateMember(memberId, instanceId: request.groupInstanceId) {
            return fail(error)
        }

        let joinsAsNewMember = members[memberId] == nil
        if var existing = members[memberId] {
            existing.protocols = request.protocols
            existing.sessionTimeoutMs = request.sessionTimeoutMs
            existing.rebalanceTimeoutMs = request.rebalanceTimeoutMs
            existing.lastHeartbeatMs = now
            members[memberId] = existing
        } else {
            members[memberId] = Member(
                memberId: memberId, groupInstanceId: request.groupInstanceId, clientId: clientId, clientHost: clientHost,
                sessionTimeoutMs: request.sessionTimeoutMs, rebalanceTimeoutMs: request.rebalanceTimeoutMs,
                protocols: request.protocols, lastHeartbeatMs: now)
            memberOrder.append(memberId)
            if let instance = request.groupInstanceId { staticMembers[instance] = memberId }
        }
        protocolType = request.protocolType
        if let old = pendingJoins.updateValue(requestID, forKey: memberId) {
            actions.append(.respondJoin(old, JoinGroupResponse(errorCode: .rebalanceInProgress, memberId: memberId)))
        }

        switch state {
        case .empty:
            // Kafka's InitialDelayedJoin: the first generation waits `initialRebalanceDelayMs` for
            // more members; each new member joining meanwhile restarts the wait, until the waits
            // together reach the first member's rebalance timeout.
            let delay = settings.initialRebalanceDelayMs
            joinNotBefore = now + delay
            initialDelayRemainingMs = delay > 0 ? max(Int64(request.rebalanceTimeoutMs) - delay, 0) : 0
            state = .preparingRebalance(deadline: now + max(Int64(request.rebalanceTimeoutMs), delay))
        case .stable, .completingRebalance:
            initialDelayRemainingMs = 0
            actions += prepareRebalance(now: now)
        case .preparingRebalance:
            if joinsAsNewMember && now < joinNotBefore && initialDelayRemainingMs > 0 {
                let extension_ = min(settings.initialRebalanceDelayMs, initialDelayRemainingMs)
                joinNotBefore = now + extension_
                initialDelayRemainingMs -= extension_
            }
        }
        return actions + tryCompleteJoin(now: now, deadlinePassed: false)
    }

    /// A known static member restarted while the group is stable (KIP-345, as Kafka does it):
    /// when what the leader based the assignment on is unchanged — the group would select the
    /// same protocol and the member offers the same metadata for it — the stored assignment
    /// stays, nobody else rebalances, and the member is answered at once with the current
    /// generation. Its SyncGroup then returns its assignment. The leader id in the answer is the
    /// one from before the restart, so a restarted leader syncs as a follower (it has no member
    /// list to assign from) and the leader's stored assignment is kept. Nil: a rebalance is needed.
    private mutating func rejoinWithoutRebalance(
        _ memberId: String, _ request: JoinGroupRequest, leaderBefore: String?, requestID: RequestID, now: Int64
    ) -> Action? {
        guard var member = members[memberId], let selected = protocolName, let leaderBefore else { return nil }
        let sameMetadata = member.metadata(for: selected) == request.protocols.first { $0.name == selected }?.metadata
        member.protocols = request.protocols
        member.sessionTimeoutMs = request.sessionTimeoutMs
        member.rebalanceTimeoutMs = request.rebalanceTimeoutMs
        member.lastHeartbeatMs = now
        members[memberId] = member
        guard sameMetadata, selectedProtocol() == selected else { return nil }
        return .respondJoin(
            requestID,
            JoinGroupResponse(
                errorCode: .none, generationId: generationId, protocolName: selected, leader: leaderBefore, memberId: memberId, members: []))
    }

    /// The member with this static `group.instance.id`, if any.
    public func member(instanceId: String) -> Member? {
        staticMembers[instanceId].flatMap { members[$0] }
    }

    /// Kafka's check of a request that names a current member: with an instance id, that id must be
    /// owned by this member id (else FENCED_INSTANCE_ID: an older incarnation of a restarted static
    /// member, or UNKNOWN_MEMBER_ID when nobody owns it); the member id must be in the group.
    private func validateMember(_ memberId: String, instanceId: String?) -> ErrorCode? {
        if let instanceId {
            guard let owner = staticMembers[instanceId] else { return .unknownMemberId }
            if owner != memberId { return .fencedInstanceId }
        }
        return members[memberId] == nil ? .unknownMemberId : nil
    }

    /// Renames a member in place (order and leadership kept); its parked requests are fenced.
    private mutating func replaceMember(_ old: String, with new: String) -> [Action] {
        guard var m = members.removeValue(forKey: old) else { return [] }
        var actions: [Action] = []
        if let req = pendingJoins.removeValue(forKey: old) {
            actions.append(.respondJoin(req, JoinGroupResponse(errorCode: .fencedInstanceId, memberId: old)))
        }
        if let req = pendingSyncs.removeValue(forKey: old) {
            actions.append(.respondSync(req, SyncGroupResponse(errorCode: .fencedInstanceId)))
        }
        m.memberId = new
        members[new] = m
        memberOrder = memberOrder.map { $0 == old ? new : $0 }
        if let instance = m.groupInstanceId { staticMembers[instance] = new }
        if leaderId == old { leaderId = new }
        return actions
    }

    /// The protocol a generation formed now would use: the leader's first one that every member offers.
    private func selectedProtocol() -> String? {
        guard let leader = leaderId.flatMap({ members[$0] }) else { return nil }
        let common = commonProtocols(members.values)
        return leader.protocols.first { common.contains($0.name) }?.name
    }

    private func commonProtocols(_ ms: some Collection<Member>) -> Set<String> {
        var common: Set<String>? = nil
        for m in ms {
            let names = Set(m.protocols.map(\.name))
            common = common.map { $0.intersection(names) } ?? names
        }
        return common ?? []
    }

    private mutating func prepareRebalance(now: Int64) -> [Action] {
        var actions: [Action] = []
        for (_, id) in pendingSyncs {
            actions.append(.respondSync(id, SyncGroupResponse(errorCode: .rebalanceInProgress)))
        }
        pendingSyncs = [:]
        let timeout = members.values.map { Int64($0.rebalanceTimeoutMs) }.max() ?? 0
        state = .preparingRebalance(deadline: now + timeout)
        return actions
    }

    /// Completes the join phase when every member has rejoined, or when the deadline passed
    /// (then members that did not rejoin are dropped).
    private mutating func tryCompleteJoin(now: Int64, deadlinePassed: Bool) -> [Action] {
        guard case .preparingRebalance = state else { return [] }
        let allJoined = members.keys.allSatisfy { pendingJoins[$0] != nil }
        guard deadlinePassed || (allJoined && now >= joinNotBefore) else { return [] }
        var actions: [Action] = []
        for id in memberOrder where pendingJoins[id] == nil {
            actions += removeMemberQuietly(id)
        }
        generationId += 1
        guard !members.isEmpty else {
            state = .empty
            protocolName = nil
            leaderId = nil
            return actions
        }
        if leaderId == nil || members[leaderId!] == nil { leaderId = memberOrder.first }
        protocolName = selectedProtocol()
        state = .completingRebalance
        let everyone = orderedMembers.map {
            JoinGroupResponse.Member(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, metadata: $0.metadata(for: protocolName))
        }
        for id in memberOrder {
            guard let req = pendingJoins[id] else { continue }
            members[id]?.lastHeartbeatMs = now
            actions.append(
                .respondJoin(
                    req,
                    JoinGroupResponse(
                        errorCode: .none, generationId: generationId, protocolName: protocolName ?? "", leader: leaderId!,
                        memberId: id, members: id == leaderId ? everyone : [])))
        }
        pendingJoins = [:]
        return actions
    }

    // MARK: SyncGroup

    public mutating func sync(_ request: SyncGroupRequest, requestID: RequestID, now: Int64) -> [Action] {
        func answer(_ code: ErrorCode, _ assignment: [UInt8] = []) -> [Action] {
            [.respondSync(requestID, SyncGroupResponse(errorCode: code, assignment: assignment))]
        }
        if let error = validateMember(request.memberId, instanceId: request.groupInstanceId) { return answer(error) }
        guard request.generationId == generationId else { return answer(.illegalGeneration) }
        members[request.memberId]?.lastHeartbeatMs = now
        switch state {
        case .empty: return answer(.unknownMemberId)
        case .preparingRebalance: return answer(.rebalanceInProgress)
        case .stable: return answer(.none, members[request.memberId]!.assignment)
        case .completingRebalance:
            pendingSyncs[request.memberId] = requestID
            guard request.memberId == leaderId else { return [] }
            var assigned: [String: [UInt8]] = [:]
            for a in request.assignments { assigned[a.memberId] = a.assignment }
            for id in memberOrder { members[id]?.assignment = assigned[id] ?? [] }
            state = .stable
            var actions: [Action] = []
            for id in memberOrder {
                if let req = pendingSyncs[id] {
                    actions.append(.respondSync(req, SyncGroupResponse(errorCode: .none, assignment: members[id]!.assignment)))
                }
            }
            pendingSyncs = [:]
            return actions
        }
    }

    // MARK: Heartbeat, LeaveGroup, OffsetCommit checks

    public mutating func heartbeat(memberId: String, groupInstanceId: String? = nil, generationId: Int32, now: Int64) -> ErrorCode {
        if let error = validateMember(memberId, instanceId: groupInstanceId) { return error }
        guard generationId == self.generationId else { return .illegalGeneration }
        members[memberId]?.lastHeartbeatMs = now
        if case .preparingRebalance = state { return .rebalanceInProgress }
        return .none
    }

    /// LeaveGroup for one member: by member id (with its instance id, if static, checked as for
    /// heartbeats), or — LeaveGroup v3+, an administrative removal — by instance id alone with an
    /// empty member id.
    public mutating func leave(memberId: String, groupInstanceId: String? = nil, now: Int64) -> (ErrorCode, [Action]) {
        var id = memberId
        if memberId.isEmpty {
            guard let instance = groupInstanceId, let owner = staticMembers[instance] else { return (.unknownMemberId, []) }
            id = owner
        } else if let error = validateMember(memberId, instanceId: groupInstanceId) {
            return (error, [])
        }
        return (.none, removeMember(id, now: now))
    }

    /// Whether an OffsetCommit from this member and generation is allowed: the member checked as
    /// for heartbeats (an old incarnation of a static member gets FENCED_INSTANCE_ID), then the
    /// generation. Generation -1 with an empty member id and no instance id is a standalone
    /// (non-group) commit, allowed while the group has no members.
    public mutating func validateCommit(memberId: String, groupInstanceId: String? = nil, generationId: Int32, now: Int64) -> ErrorCode {
        if generationId < 0 && memberId.isEmpty && groupInstanceId == nil { return members.isEmpty ? .none : .unknownMemberId }
        if let error = validateMember(memberId, instanceId: groupInstanceId) { return error }
        guard generationId == self.generationId else { return .illegalGeneration }
        if state == .completingRebalance { return .rebalanceInProgress }
        members[memberId]?.lastHeartbeatMs = now
        return .none
    }

    // MARK: Time

    /// Evicts members whose session expired and ends a join phase whose deadline passed.
    public mutating func tick(now: Int64) -> [Action] {
        pendingMemberIds = pendingMemberIds.filter { $0.value > now }
        var actions: [Action] = []
        for id in memberOrder {
            guard let m = members[id], pendingJoins[id] == nil else { continue }
            if now - m.lastHeartbeatMs > Int64(m.sessionTimeoutMs) {
                actions += removeMember(id, now: now)
            }
        }
        if case .preparingRebalance(let deadline) = state {
            actions += tryCompleteJoin(now: now, deadlinePassed: now >= deadline)
        }
        return actions
    }

    /// The member ids that `tick` would evict now (for logging).
    public func expiredMembers(now: Int64) -> [String] {
        orderedMembers.filter { pendingJoins[$0.memberId] == nil && now - $0.lastHeartbeatMs > Int64($0.sessionTimeoutMs) }.map(\.memberId)
    }

    private mutating func removeMemberQuietly(_ id: String) -> [Action] {
        var actions: [Action] = []
        if let instance = members.removeValue(forKey: id)?.groupInstanceId, staticMembers[instance] == id { staticMembers[instance] = nil }
        memberOrder.removeAll { $0 == id }
        if let req = pendingJoins.removeValue(forKey: id) {
            actions.append(.respondJoin(req, JoinGroupResponse(errorCode: .unknownMemberId, memberId: id)))
        }
        if let req = pendingSyncs.removeValue(forKey: id) {
            actions.append(.respondSync(req, SyncGroupResponse(errorCode: .unknownMemberId)))
        }
        if leaderId == id { leaderId = nil }
        return actions
    }

    private mutating func removeMember(_ id: String, now: Int64) -> [Action] {
        var actions = removeMemberQuietly(id)
        if members.isEmpty {
            actions += pendingSyncs.values.map { .respondSync($0, SyncGroupResponse(errorCode: .unknownMemberId)) }
            pendingSyncs = [:]
            if state != .empty { generationId += 1 }
            state = .empty
            protocolName = nil
            leaderId = nil
            return actions
        }
        switch state {
        case .stable, .completingRebalance:
            actions += prepareRebalance(now: now)
        case .preparingRebalance:
            actions += tryCompleteJoin(now: now, deadlinePassed: false)
        case .empty:
            break
        }
        return actions
    }
}
