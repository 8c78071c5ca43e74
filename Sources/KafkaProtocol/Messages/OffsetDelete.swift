import NIOCore

/// OffsetDelete request (key 47), v0 (not flexible): forget a group's committed offsets of the
/// named partitions.
public struct OffsetDeleteRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.offsetDelete
    public typealias Topic = TopicPartitions<Int32>
    public var groupId: String
    public var topics: [Topic]
    public init(groupId: String, topics: [Topic]) {
        self.groupId = groupId
        self.topics = topics
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        Self(groupId: try buffer.decodeString(), topics: try buffer.decodeTopics { try $0.decodeInt32() })
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(groupId)
        buffer.encodeTopics(topics) { $0.encodeInt32($1) }
    }
}

/// OffsetDelete response: a group-level error, then one error per named partition.
public struct OffsetDeleteResponse: KafkaResponseMessage, Equatable {
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var errorCode: ErrorCode
        public init(partitionIndex: Int32, errorCode: ErrorCode) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var errorCode: ErrorCode
    public var throttleTimeMs: Int32 = 0
    public var topics: [Topic]
    public init(errorCode: ErrorCode = .none, topics: [Topic]) {
        self.errorCode = errorCode
        self.topics = topics
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeErrorCode(errorCode)
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeTopics(topics) { b, p in
            b.encodeInt32(p.partitionIndex)
            b.encodeErrorCode(p.errorCode)
        }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let code = try buffer.decodeErrorCode()
        let throttle = try buffer.decodeInt32()
        var r = Self(errorCode: code, topics: try buffer.decodeTopics { Partition(partitionIndex: try $0.decodeInt32(), errorCode: try $0.decodeErrorCode()) })
        r.throttleTimeMs = throttle
        return r
    }
}
