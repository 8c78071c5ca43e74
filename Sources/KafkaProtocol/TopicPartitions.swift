import NIOCore

/// A topic's name and one entry per partition: the shape of the topic arrays in ListOffsets,
/// OffsetCommit and OffsetFetch (each message's `Topic` is this with its own `Partition`).
public struct TopicPartitions<Partition: Sendable & Equatable>: Sendable, Equatable {
    public var name: String
    public var partitions: [Partition]

    public init(name: String, partitions: [Partition]) {
        self.name = name
        self.partitions = partitions
    }
}

extension ByteBuffer {
    /// An ARRAY of (STRING name, ARRAY of partitions), each partition written by `partition`.
    public mutating func encodeTopics<P>(_ topics: [TopicPartitions<P>], _ partition: (inout ByteBuffer, P) -> Void) {
        encodeArray(topics) { b, topic in
            b.encodeString(topic.name)
            b.encodeArray(topic.partitions, partition)
        }
    }

    /// Reads what `encodeTopics` writes, each partition read by `partition`.
    public mutating func decodeTopics<P>(_ partition: (inout ByteBuffer) throws -> P) throws -> [TopicPartitions<P>] {
        try decodeArray { b in TopicPartitions(name: try b.decodeString(), partitions: try b.decodeArray(partition)) }
    }
}
