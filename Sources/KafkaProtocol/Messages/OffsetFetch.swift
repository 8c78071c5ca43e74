import NIOCore

/// OffsetFetch request (key 9), v1–5. A nil topic list (v2+) asks for every committed offset of the group.
public struct OffsetFetchRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.offsetFetch
    public struct Topic: Sendable, Equatable {
        public var name: String
        public var partitionIndexes: [Int32]
        public init(name: String, partitionIndexes: [Int32]) {
            self.name = name
            self.partitionIndexes = partitionIndexes
        }
    }
    public var groupId: String
    public var topics: [Topic]?
    public init(groupId: String, topics: [Topic]?) {
        self.groupId = groupId
        self.topics = topics
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let group = try buffer.decodeString()
        let topics = try buffer.decodeNullableArray { b in Topic(name: try b.decodeString(), partitionIndexes: try b.decodeArray { try $0.decodeInt32() }) }
        if topics == nil && version < 2 { throw KafkaProtocolError(.invalidValue, "OffsetFetch v\(version) topics may not be null") }
        return Self(groupId: group, topics: topics)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(groupId)
        buffer.encodeNullableArray(topics) { b, t in
            b.encodeString(t.name)
            b.encodeArray(t.partitionIndexes) { $0.encodeInt32($1) }
        }
    }
}

/// OffsetFetch response. An offset of -1 means nothing committed.
public struct OffsetFetchResponse: KafkaResponseMessage, Equatable {
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var committedOffset: Int64
        public var committedLeaderEpoch: Int32
        public var metadata: String?
        public var errorCode: ErrorCode
        public init(partitionIndex: Int32, committedOffset: Int64, committedLeaderEpoch: Int32 = -1, metadata: String?, errorCode: ErrorCode) {
            self.partitionIndex = partitionIndex
            self.committedOffset = committedOffset
            self.committedLeaderEpoch = committedLeaderEpoch
            self.metadata = metadata
            self.errorCode = errorCode
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var throttleTimeMs: Int32 = 0
    public var topics: [Topic]
    public var errorCode: ErrorCode
    public init(topics: [Topic], errorCode: ErrorCode = .none) {
        self.topics = topics
        self.errorCode = errorCode
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 3 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeTopics(topics) { b, p in
            b.encodeInt32(p.partitionIndex)
            b.encodeInt64(p.committedOffset)
            if version >= 5 { b.encodeInt32(p.committedLeaderEpoch) }
            b.encodeNullableString(p.metadata)
            b.encodeErrorCode(p.errorCode)
        }
        if version >= 2 { buffer.encodeErrorCode(errorCode) }
    }
}
