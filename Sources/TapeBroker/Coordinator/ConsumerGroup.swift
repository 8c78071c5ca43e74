import KafkaProtocol

/// One consumer group under the classic rebalance protocol, as a pure state machine value.
///
/// Events (`join`, `sync`, `heartbeat`, `leave`, `tick`) are mutating functions that take the
/// current time in milliseconds (from an injected clock) and return `Action`s: the answers to
/// JoinGroup/SyncGroup requests that were parked while the group rebalanced. The broker carries
/// the actions out; nothing here touches a socket or a clock.
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
        /// How long a new group waits for more members before its first generation. Default 0 ms.
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
    private var pendingJoins: [String: RequestID] = [:]
    private var pendingSyncs: [String: RequestID] = [:]
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the given time.
    private var pendingMemberIds: [String: Int64] = [:]
    private var joinNotBefore: Int64 = 0
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
        if !members.isEmpty {
            if let type = protocolType, type != request.protocolType { return fail(.inconsistentGroupProtocol) }
            let offered = Set(request.protocols.map(\.name))
            let others = members.values.filter { $0.memberId != request.memberId }
            if !others.isEmpty && commonProtocols(others).isDisjoint(with: offered) { return fail(.inconsistentGroupProtocol) }
        }

        var memberId = request.memberId
        var actions: [Action] = []
        let isNewMember = members[memberId] == nil && (request.groupInstanceId.map { member(instanceId: $0) == nil } ?? true)
        if isNewMember && members.count + pendingMemberIds.count >= settings.maxSize && pendingMemberIds[memberId] == nil {
            return fail(.groupMaxSizeReached)
        }
        if memberId.isEmpty {
            memberSerial += 1
            memberId = "\(clientId.isEmpty ? "member" : clientId)-\(now)-\(memberSerial)"
            if let instance = request.groupInstanceId, let old = member(instanceId: instance) {
                // A static member (KIP-345) restarted: the new id takes the old member's place.
                actions += replaceMember(old.memberId, with: memberId)
            } else if version >= 4 && request.groupInstanceId == nil {
                pendingMemberIds[memberId] = now + Int64(request.sessionTimeoutMs)
                return fail(.memberIdRequired, memberId: memberId)
            }
        } else if members[memberId] == nil {
            guard pendingMemberIds.removeValue(forKey: memberId) != nil else { return fail(.unknownMemberId) }
        }

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
        }
        protocolType = request.protocolType
        if let old = pendingJoins.updateValue(requestID, forKey: memberId) {
            actions.append(.respondJoin(old, JoinGroupResponse(errorCode: .rebalanceInProgress, memberId: memberId)))
        }

        switch state {
        case .empty:
            joinNotBefore = now + settings.initialRebalanceDelayMs
            state = .preparingRebalance(deadline: now + max(Int64(request.rebalanceTimeoutMs), settings.initialRebalanceDelayMs))
        case .stable, .completingRebalance:
            actions += prepareRebalance(now: now)
        case .preparingRebalance:
            break
        }
        return actions + tryCompleteJoin(now: now, deadlinePassed: false)
    }

    /// The member with this static `group.instance.id`, if any.
    public func member(instanceId: String) -> Member? {
        members.values.first { $0.groupInstanceId == instanceId }
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
        if leaderId == old { leaderId = new }
        return actions
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
        let common = commonProtocols(members.values)
        if leaderId == nil || members[leaderId!] == nil { leaderId = memberOrder.first }
        let leader = members[leaderId!]!
        protocolName = leader.protocols.first { common.contains($0.name) }?.name
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
        guard members[request.memberId] != nil else { return answer(.unknownMemberId) }
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

    public mutating func heartbeat(memberId: String, generationId: Int32, now: Int64) -> ErrorCode {
        guard members[memberId] != nil else { return .unknownMemberId }
        guard generationId == self.generationId else { return .illegalGeneration }
        members[memberId]?.lastHeartbeatMs = now
        if case .preparingRebalance = state { return .rebalanceInProgress }
        return .none
    }

    public mutating func leave(memberId: String, now: Int64) -> (ErrorCode, [Action]) {
        guard members[memberId] != nil else { return (.unknownMemberId, []) }
        return (.none, removeMember(memberId, now: now))
    }

    /// Whether an OffsetCommit from this member and generation is allowed.
    /// Generation -1 with an empty member id is a standalone (non-group) commit.
    public mutating func validateCommit(memberId: String, generationId: Int32, now: Int64) -> ErrorCode {
        if generationId < 0 && memberId.isEmpty { return members.isEmpty ? .none : .unknownMemberId }
        guard members[memberId] != nil else { return .unknownMemberId }
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
        members[id] = nil
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
