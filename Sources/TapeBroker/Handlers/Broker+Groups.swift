import KafkaProtocol
import Logging
import NIOCore

/// Consumer groups: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups,
/// DescribeGroups. The decisions are the `GroupCoordinator`'s; here requests it cannot answer
/// yet are parked (as continuations) until a later call's actions answer them.
extension Broker {
    /// Answers parked requests; returns the answers meant for `mine` (if any) instead of resuming.
    func carryOut(_ actions: [ConsumerGroup.Action], mine: ConsumerGroup.RequestID? = nil) -> (JoinGroupResponse?, SyncGroupResponse?) {
        var join: JoinGroupResponse? = nil
        var sync: SyncGroupResponse? = nil
        for action in actions {
            switch action {
            case .respondJoin(let id, let response):
                if id == mine { join = response } else { parkedJoins.removeValue(forKey: id)?.resume(returning: response) }
            case .respondSync(let id, let response):
                if id == mine { sync = response } else { parkedSyncs.removeValue(forKey: id)?.resume(returning: response) }
            }
        }
        return (join, sync)
    }

    func joinGroup(_ r: JoinGroupRequest, version: Int16, clientId: String, clientHost: String) async -> JoinGroupResponse {
        if !r.groupId.isEmpty && !coordinator.hasRoom(for: r.groupId) {
            tick()  // forget vacant groups first
        }
        let (id, actions) = coordinator.join(r, version: version, clientId: clientId, clientHost: clientHost, now: clock.nowMs())
        let (mine, _) = carryOut(actions, mine: id)
        let response: JoinGroupResponse
        if let mine {
            response = mine
        } else if isShuttingDown {
            response = JoinGroupResponse(errorCode: .coordinatorNotAvailable, memberId: r.memberId)
        } else {
            response = await withCheckedContinuation { parkedJoins[id] = $0 }
        }
        if response.errorCode == .none {
            logger.info(
                "group joined",
                metadata: [
                    "group": "\(r.groupId)", "member": "\(response.memberId)", "instance": "\(r.groupInstanceId ?? "-")",
                    "generation": "\(response.generationId)", "leader": "\(response.leader == response.memberId)",
                ])
        }
        return response
    }

    func syncGroup(_ r: SyncGroupRequest) async -> SyncGroupResponse {
        let (id, actions) = coordinator.sync(r, now: clock.nowMs())
        let (_, mine) = carryOut(actions, mine: id)
        if let mine { return mine }
        if isShuttingDown { return SyncGroupResponse(errorCode: .coordinatorNotAvailable) }
        return await withCheckedContinuation { parkedSyncs[id] = $0 }
    }

    func heartbeat(_ r: HeartbeatRequest) -> HeartbeatResponse {
        HeartbeatResponse(errorCode: coordinator.heartbeat(r, now: clock.nowMs()))
    }

    func leaveGroup(_ r: LeaveGroupRequest) -> LeaveGroupResponse {
        let (response, actions) = coordinator.leave(r, now: clock.nowMs())
        _ = carryOut(actions)
        return response
    }

    /// Every group with members or committed offsets; v4+ with its state (a group known only by its
    /// committed offsets is Empty), filtered by `statesFilter` (case-insensitive) when given; v5+
    /// with its type, Classic (the only group protocol here), filtered by `typesFilter`.
    func listGroups(_ r: ListGroupsRequest = ListGroupsRequest()) -> ListGroupsResponse {
        var out: [String: (type: String, state: String)] = [:]
        for g in committedOffsets.groups() { out[g] = ("consumer", ConsumerGroup.State.empty.kafkaName) }
        for (name, g) in coordinator.groups { out[name] = (g.protocolType ?? out[name]?.type ?? "consumer", g.state.kafkaName) }
        let wanted = Set(r.statesFilter.map { $0.lowercased() })
        let types = Set(r.typesFilter.map { $0.lowercased() })
        if !types.isEmpty && !types.contains(Self.classicGroupType.lowercased()) { return ListGroupsResponse(groups: []) }
        return ListGroupsResponse(
            groups: out.keys.sorted().compactMap { name in
                let g = out[name]!
                if !wanted.isEmpty && !wanted.contains(g.state.lowercased()) { return nil }
                return .init(groupId: name, protocolType: g.type, groupState: g.state, groupType: Self.classicGroupType)
            })
    }

    /// Kafka's name for groups of the JoinGroup/SyncGroup protocol (KIP-848 calls it classic).
    static let classicGroupType = "Classic"

    func describeGroups(_ r: DescribeGroupsRequest) -> DescribeGroupsResponse {
        // The stored groups are read once per request, not once per named group (2,000 names over
        // 20,000 stored groups would block the broker for seconds).
        lazy var stored = Set(committedOffsets.groups())
        return DescribeGroupsResponse(
            groups: r.groups.map { name in
                guard let g = coordinator.group(name) else {
                    let known = stored.contains(name)
                    return .init(
                        errorCode: .none, groupId: name, groupState: known ? "Empty" : "Dead", protocolType: known ? "consumer" : "", protocolData: "",
                        members: [])
                }
                return .init(
                    errorCode: .none, groupId: name, groupState: g.state.kafkaName, protocolType: g.protocolType ?? "", protocolData: g.protocolName ?? "",
                    members: g.orderedMembers.map {
                        .init(
                            memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, clientId: $0.clientId, clientHost: $0.clientHost,
                            memberMetadata: $0.metadata(for: g.protocolName), memberAssignment: $0.assignment)
                    })
            })
    }
}
