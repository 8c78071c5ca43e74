import KafkaProtocol
import Logging
import NIOCore

/// Committed offsets: OffsetCommit and OffsetFetch.
extension Broker {
    func offsetCommit(_ r: OffsetCommitRequest) async -> OffsetCommitResponse {
        let code = coordinator.validateCommit(r, now: clock.nowMs())
        var accepted: [TopicPartition: CommittedOffset] = [:]
        var topicsOut = r.topics.map { t in
            let logs = topics.partitionLogs(of: t.name)
            return OffsetCommitResponse.Topic(
                name: t.name,
                partitions: t.partitions.map { p in
                    if code != .none { return .init(partitionIndex: p.partitionIndex, errorCode: code) }
                    guard let logs, p.partitionIndex >= 0, Int(p.partitionIndex) < logs.count else {
                        return .init(partitionIndex: p.partitionIndex, errorCode: .unknownTopicOrPartition)
                    }
                    if let m = p.committedMetadata, m.utf8.count > configuration.offsetMetadataMaxBytes {
                        return .init(partitionIndex: p.partitionIndex, errorCode: .offsetMetadataTooLarge)
                    }
                    accepted[TopicPartition(t.name, p.partitionIndex)] = CommittedOffset(
                        offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch, metadata: p.committedMetadata)
                    return .init(partitionIndex: p.partitionIndex, errorCode: .none)
                })
        }
        if code != .none { logger.info("OffsetCommit refused", metadata: ["group": "\(r.groupId)", "member": "\(r.memberId)", "error": "\(code)"]) }
        if !accepted.isEmpty {
            do {
                try await committedOffsets.commit(group: r.groupId, offsets: accepted)
            } catch {
                logger.error("could not store committed offsets of \(r.groupId): \(error)")
                for i in topicsOut.indices {
                    for j in topicsOut[i].partitions.indices where topicsOut[i].partitions[j].errorCode == .none {
                        topicsOut[i].partitions[j].errorCode = .unknownServerError
                    }
                }
            }
        }
        return OffsetCommitResponse(topics: topicsOut)
    }

    /// OffsetFetch; v8+ (`groups`) answers each group as v1–7 answer one. Offsets are never
    /// pending here (no transactional offset commits), so `requireStable` changes nothing.
    func offsetFetch(_ r: OffsetFetchRequest) -> OffsetFetchResponse {
        if let groups = r.groups {
            return OffsetFetchResponse(
                groups: groups.map { g in
                    let one = offsetFetch(OffsetFetchRequest(groupId: g.groupId, topics: g.topics))
                    return .init(groupId: g.groupId, topics: one.topics, errorCode: one.errorCode)
                })
        }
        let committed = committedOffsets.offsets(group: r.groupId)
        let asked: [OffsetFetchRequest.Topic]
        if let t = r.topics {
            asked = t
        } else {
            let byTopic = Dictionary(grouping: committed.keys, by: \.topic)
            asked = byTopic.keys.sorted().map { OffsetFetchRequest.Topic(name: $0, partitionIndexes: byTopic[$0]!.map(\.partition).sorted()) }
        }
        return OffsetFetchResponse(
            topics: asked.map { t in
                .init(
                    name: t.name,
                    partitions: t.partitionIndexes.map { p in
                        if let c = committed[TopicPartition(t.name, p)] {
                            return .init(
                                partitionIndex: p, committedOffset: c.offset, committedLeaderEpoch: c.leaderEpoch, metadata: c.metadata ?? "", errorCode: .none)
                        }
                        return .init(partitionIndex: p, committedOffset: -1, metadata: "", errorCode: .none)
                    })
            })
    }
}
