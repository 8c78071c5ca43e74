import NIOCore

/// ListOffsets request (key 2), v1–7 (v6+ flexible). Timestamp -1 = latest, -2 = earliest, -3 = the
/// record with the largest timestamp (v7+, KIP-734).
public struct ListOffsetsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.listOffsets
    public static let latestTimestamp: Int64 = -1
    public static let earliestTimestamp: Int64 = -2
    public static let maxTimestamp: Int64 = -3
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var currentLeaderEpoch: Int32
        public var timestamp: Int64
        public init(partitionIndex: Int32, currentLeaderEpoch: Int32 = -1, timestamp: Int64) {
            self.partitionIndex = partitionIndex
            self.currentLeaderEpoch = currentLeaderEpoch
            self.timestamp = timestamp
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var replicaId: Int32 = -1
    public var isolationLevel: Int8 = 0
    public var topics: [Topic]

    public init(topics: [Topic]) { self.topics = topics }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 6
        let replica = try buffer.decodeInt32()
        let isolation = version >= 2 ? try buffer.decodeInt8() : 0
        var r = Self(
            topics: try buffer.decodeArray(flexible: flexible) { b in
                let name = try b.decodeString(flexible: flexible)
                let partitions = try b.decodeArray(flexible: flexible) { b in
                    let index = try b.decodeInt32()
                    let epoch = version >= 4 ? try b.decodeInt32() : -1
                    let ts = try b.decodeInt64()
                    if version == 0 { _ = try b.decodeInt32() }  // max_num_offsets
                    if flexible { try b.skipTaggedFields() }
                    return Partition(partitionIndex: index, currentLeaderEpoch: epoch, timestamp: ts)
                }
                if flexible { try b.skipTaggedFields() }
                return Topic(name: name, partitions: partitions)
            })
        if flexible { try buffer.skipTaggedFields() }
        r.replicaId = replica
        r.isolationLevel = isolation
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 6
        buffer.encodeInt32(replicaId)
        if version >= 2 { buffer.encodeInt8(isolationLevel) }
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { b, p in
                b.encodeInt32(p.partitionIndex)
                if version >= 4 { b.encodeInt32(p.currentLeaderEpoch) }
                b.encodeInt64(p.timestamp)
                if version == 0 { b.encodeInt32(1) }
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// ListOffsets response.
public struct ListOffsetsResponse: KafkaResponseMessage, Equatable {
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var errorCode: ErrorCode
        public var timestamp: Int64
        public var offset: Int64
        public var leaderEpoch: Int32
        public init(partitionIndex: Int32, errorCode: ErrorCode, timestamp: Int64, offset: Int64, leaderEpoch: Int32 = 0) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.timestamp = timestamp
            self.offset = offset
            self.leaderEpoch = leaderEpoch
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var throttleTimeMs: Int32 = 0
    public var topics: [Topic]
    public init(topics: [Topic]) { self.topics = topics }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 6
        if version >= 2 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { b, p in
                b.encodeInt32(p.partitionIndex)
                b.encodeErrorCode(p.errorCode)
                b.encodeInt64(p.timestamp)
                b.encodeInt64(p.offset)
                if version >= 4 { b.encodeInt32(p.leaderEpoch) }
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}
