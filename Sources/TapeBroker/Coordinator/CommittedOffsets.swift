import NIOConcurrencyHelpers

/// A topic-partition.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)-\(partition)" }
    public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
}

/// A group's committed position in one partition.
public struct CommittedOffset: Sendable, Equatable {
    public var offset: Int64
    public var leaderEpoch: Int32
    public var metadata: String?
    public init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String? = nil) {
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.metadata = metadata
    }
}

/// Where committed consumer-group offsets live: `DurableCommittedOffsetStore` (over the
/// storage's `OffsetStore`) in `tape broker`, `InMemoryCommittedOffsetStore` in unit tests.
public protocol CommittedOffsetStore: Sendable {
    /// Records the offsets; when it returns they are as durable as the store promises
    /// (a durable store may share one fsync among concurrent commits).
    func commit(group: String, offsets: [TopicPartition: CommittedOffset]) async throws
    func offsets(group: String) -> [TopicPartition: CommittedOffset]
    /// Groups that have any committed offset.
    func groups() -> [String]
    /// Forgets a deleted topic's offsets in every group.
    func removeTopic(_ topic: String)
    /// DeleteGroups: forgets every committed offset of the group (as durably as a commit).
    func deleteGroup(_ group: String) async throws
    /// OffsetDelete: forgets the group's committed offsets of these partitions (as durably as a commit).
    func deleteOffsets(group: String, partitions: [TopicPartition]) async throws
}

extension CommittedOffsetStore {
    public func deleteGroup(_ group: String) async throws {
        throw StorageError(.io, "this offset store cannot delete groups")
    }
    public func deleteOffsets(group: String, partitions: [TopicPartition]) async throws {
        throw StorageError(.io, "this offset store cannot delete offsets")
    }
}

/// Committed offsets in memory (lost on restart).
public final class InMemoryCommittedOffsetStore: CommittedOffsetStore {
    private let table = NIOLockedValueBox<[String: [TopicPartition: CommittedOffset]]>([:])
    public init() {}

    public func commit(group: String, offsets: [TopicPartition: CommittedOffset]) async throws {
        table.withLockedValue { t in t[group, default: [:]].merge(offsets) { $1 } }
    }

    public func offsets(group: String) -> [TopicPartition: CommittedOffset] {
        table.withLockedValue { $0[group] ?? [:] }
    }

    public func groups() -> [String] { table.withLockedValue { Array($0.keys) } }

    public func removeTopic(_ topic: String) {
        table.withLockedValue { t in
            for g in t.keys { t[g] = t[g]!.filter { $0.key.topic != topic } }
        }
    }

    public func deleteGroup(_ group: String) async throws {
        table.withLockedValue { $0[group] = nil }
    }

    public func deleteOffsets(group: String, partitions: [TopicPartition]) async throws {
        table.withLockedValue { t in
            guard var offsets = t[group] else { return }
            for p in partitions { offsets[p] = nil }
            t[group] = offsets.isEmpty ? nil : offsets
        }
    }
}
