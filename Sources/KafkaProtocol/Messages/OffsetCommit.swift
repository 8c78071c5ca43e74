import NIOCore

/// OffsetCommit request (key 8), v2–7.
public struct OffsetCommitRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.offsetCommit
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var committedOffset: Int64
        public var committedLeaderEpoch: Int32
        public var committedMetadata: String?
        public init(partitionIndex: Int32, committedOffset: Int64, committedLeaderEpoch: Int32 = -1, committedMetadata: String? = nil) {
            self.partitionIndex = partitionIndex
            self.committedOffset = committedOffset
            self.committedLeaderEpoch = committedLeaderEpoch
            self.committedMetadata = committedMetadata
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var groupId: String
    public var generationId: Int32
    public var memberId: String
    public var groupInstanceId: String?
    public var retentionTimeMs: Int64 = -1
    public var topics: [Topic]

    public init(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String? = nil, topics: [Topic]) {
        self.groupId = groupId
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.topics = topics
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let group = try buffer.decodeString()
        let generation = version >= 1 ? try buffer.decodeInt32() : -1
        let member = version >= 1 ? try buffer.decodeString() : ""
        let instance = version >= 7 ? try buffer.decodeNullableString() : nil
        let retention = (2...4).contains(version) ? try buffer.decodeInt64() : -1
        let topics = try buffer.decodeTopics { b in
            let index = try b.decodeInt32()
            let offset = try b.decodeInt64()
            let epoch = version >= 6 ? try b.decodeInt32() : -1
            if version == 1 { _ = try b.decodeInt64() }  // commit_timestamp
            return Partition(partitionIndex: index, committedOffset: offset, committedLeaderEpoch: epoch, committedMetadata: try b.decodeNullableString())
        }
        var r = Self(groupId: group, generationId: generation, memberId: member, groupInstanceId: instance, topics: topics)
        r.retentionTimeMs = retention
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(groupId)
        if version >= 1 {
            buffer.encodeInt32(generationId)
            buffer.encodeString(memberId)
        }
        if version >= 7 { buffer.encodeNullableString(groupInstanceId) }
        if (2...4).contains(version) { buffer.encodeInt64(retentionTimeMs) }
        buffer.encodeTopics(topics) { b, p in
            b.encodeInt32(p.partitionIndex)
            b.encodeInt64(p.committedOffset)
            if version >= 6 { b.encodeInt32(p.committedLeaderEpoch) }
            if version == 1 { b.encodeInt64(-1) }
            b.encodeNullableString(p.committedMetadata)
        }
    }
}

/// OffsetCommit response.
public struct OffsetCommitResponse: KafkaResponseMessage, Equatable {
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var errorCode: ErrorCode
        public init(partitionIndex: Int32, errorCode: ErrorCode) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var throttleTimeMs: Int32 = 0
    public var topics: [Topic]
    public init(topics: [Topic]) { self.topics = topics }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 3 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeTopics(topics) { b, p in
            b.encodeInt32(p.partitionIndex)
            b.encodeErrorCode(p.errorCode)
        }
    }
}
