import NIOCore

/// DeleteRecords request (key 21), v0–2; v2 is flexible. Each partition's `offset` becomes its
/// new log start offset; -1 means the high watermark.
public struct DeleteRecordsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.deleteRecords
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var offset: Int64
        public init(partitionIndex: Int32, offset: Int64) {
            self.partitionIndex = partitionIndex
            self.offset = offset
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var topics: [Topic]
    public var timeoutMs: Int32
    public init(topics: [Topic], timeoutMs: Int32 = 30000) {
        self.topics = topics
        self.timeoutMs = timeoutMs
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let topics = try buffer.decodeArray(flexible: flexible) { b in
            let name = try b.decodeString(flexible: flexible)
            let partitions = try b.decodeArray(flexible: flexible) { b in
                let p = Partition(partitionIndex: try b.decodeInt32(), offset: try b.decodeInt64())
                if flexible { try b.skipTaggedFields() }
                return p
            }
            if flexible { try b.skipTaggedFields() }
            return Topic(name: name, partitions: partitions)
        }
        let timeout = try buffer.decodeInt32()
        if flexible { try buffer.skipTaggedFields() }
        return Self(topics: topics, timeoutMs: timeout)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { b, p in
                b.encodeInt32(p.partitionIndex)
                b.encodeInt64(p.offset)
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        buffer.encodeInt32(timeoutMs)
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// DeleteRecords response: each partition's low watermark (log start offset) after the deletion.
public struct DeleteRecordsResponse: KafkaResponseMessage, Equatable {
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var lowWatermark: Int64
        public var errorCode: ErrorCode
        public init(partitionIndex: Int32, lowWatermark: Int64, errorCode: ErrorCode) {
            self.partitionIndex = partitionIndex
            self.lowWatermark = lowWatermark
            self.errorCode = errorCode
        }
    }
    public typealias Topic = TopicPartitions<Partition>
    public var throttleTimeMs: Int32 = 0
    public var topics: [Topic]
    public init(topics: [Topic]) { self.topics = topics }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { b, p in
                b.encodeInt32(p.partitionIndex)
                b.encodeInt64(p.lowWatermark)
                b.encodeErrorCode(p.errorCode)
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let throttle = try buffer.decodeInt32()
        var r = Self(
            topics: try buffer.decodeArray(flexible: flexible) { b in
                let name = try b.decodeString(flexible: flexible)
                let partitions = try b.decodeArray(flexible: flexible) { b in
                    let p = Partition(partitionIndex: try b.decodeInt32(), lowWatermark: try b.decodeInt64(), errorCode: try b.decodeErrorCode())
                    if flexible { try b.skipTaggedFields() }
                    return p
                }
                if flexible { try b.skipTaggedFields() }
                return Topic(name: name, partitions: partitions)
            })
        r.throttleTimeMs = throttle
        if flexible { try buffer.skipTaggedFields() }
        return r
    }
}
