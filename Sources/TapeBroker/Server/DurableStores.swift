/// The durable `TopicStore`: `LogManager` implements every requirement itself.
extension LogManager: TopicStore {
    public func setConfigs(of topic: String, to configs: [String: String]) throws {
        try setTopicConfigs(name: topic, explicit: configs)
    }
}

/// Committed offsets in the durable `OffsetStore` (same file, same fsync policy as the data).
public final class DurableCommittedOffsetStore: CommittedOffsetStore {
    let store: OffsetStore
    public init(_ store: OffsetStore) { self.store = store }

    public func commit(group: String, offsets: [TopicPartition: CommittedOffset]) async throws {
        try await store.commit(
            group: group,
            offsets: offsets.map {
                StoredOffset(
                    topic: $0.key.topic, partition: $0.key.partition, offset: $0.value.offset, metadata: $0.value.metadata ?? "",
                    leaderEpoch: $0.value.leaderEpoch)
            })
    }

    public func offsets(group: String) -> [TopicPartition: CommittedOffset] {
        var out: [TopicPartition: CommittedOffset] = [:]
        for o in store.fetch(group: group) {
            out[TopicPartition(o.topic, o.partition)] = CommittedOffset(offset: o.offset, leaderEpoch: o.leaderEpoch, metadata: o.metadata)
        }
        return out
    }

    public func groups() -> [String] { store.groups() }

    public func removeTopic(_ topic: String) { try? store.removeTopic(topic) }

    public func deleteGroup(_ group: String) async throws { try await store.deleteGroup(group) }

    public func deleteOffsets(group: String, partitions: [TopicPartition]) async throws {
        try await store.deleteOffsets(group: group, partitions: partitions.map { ($0.topic, $0.partition) })
    }
}
