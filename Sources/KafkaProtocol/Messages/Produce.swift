import NIOCore

/// Produce request (key 0), v0–8 (RecordBatch v2 only; v0–2 have no transactional id).
public struct ProduceRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.produce
    public struct PartitionData: Sendable, Equatable {
        public var index: Int32
        /// RecordBatch bytes, a slice of the request frame.
        public var records: ByteBuffer?
        public init(index: Int32, records: ByteBuffer?) {
            self.index = index
            self.records = records
        }
    }
    public struct TopicData: Sendable, Equatable {
        public var name: String
        public var partitions: [PartitionData]
        public init(name: String, partitions: [PartitionData]) {
            self.name = name
            self.partitions = partitions
        }
    }
    public var transactionalId: String?
    public var acks: Int16
    public var timeoutMs: Int32
    public var topics: [TopicData]

    public init(transactionalId: String? = nil, acks: Int16, timeoutMs: Int32, topics: [TopicData]) {
        self.transactionalId = transactionalId
        self.acks = acks
        self.timeoutMs = timeoutMs
        self.topics = topics
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let txn = version >= 3 ? try buffer.decodeNullableString() : nil
        let acks = try buffer.decodeInt16()
        let timeout = try buffer.decodeInt32()
        let topics = try buffer.decodeArray { b in
            TopicData(
                name: try b.decodeString(),
                partitions: try b.decodeArray { b in
                    PartitionData(index: try b.decodeInt32(), records: try b.decodeNullableBytes())
                })
        }
        return Self(transactionalId: txn, acks: acks, timeoutMs: timeout, topics: topics)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 3 { buffer.encodeNullableString(transactionalId) }
        buffer.encodeInt16(acks)
        buffer.encodeInt32(timeoutMs)
        buffer.encodeArray(topics) { b, t in
            b.encodeString(t.name)
            b.encodeArray(t.partitions) { b, p in
                b.encodeInt32(p.index)
                b.encodeNullableBytes(p.records)
            }
        }
    }
}

/// Produce response.
public struct ProduceResponse: KafkaResponseMessage, Equatable {
    public struct PartitionResponse: Sendable, Equatable {
        public var index: Int32
        public var errorCode: ErrorCode
        public var baseOffset: Int64
        public var logAppendTimeMs: Int64
        public var logStartOffset: Int64
        public var errorMessage: String?
        public init(index: Int32, errorCode: ErrorCode, baseOffset: Int64, logAppendTimeMs: Int64 = -1, logStartOffset: Int64, errorMessage: String? = nil) {
            self.index = index
            self.errorCode = errorCode
            self.baseOffset = baseOffset
            self.logAppendTimeMs = logAppendTimeMs
            self.logStartOffset = logStartOffset
            self.errorMessage = errorMessage
        }
    }
    public struct TopicResponse: Sendable, Equatable {
        public var name: String
        public var partitions: [PartitionResponse]
        public init(name: String, partitions: [PartitionResponse]) {
            self.name = name
            self.partitions = partitions
        }
    }
    public var topics: [TopicResponse]
    public var throttleTimeMs: Int32 = 0

    public init(topics: [TopicResponse]) { self.topics = topics }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeArray(topics) { b, t in
            b.encodeString(t.name)
            b.encodeArray(t.partitions) { b, p in
                b.encodeInt32(p.index)
                b.encodeErrorCode(p.errorCode)
                b.encodeInt64(p.baseOffset)
                if version >= 2 { b.encodeInt64(p.logAppendTimeMs) }
                if version >= 5 { b.encodeInt64(p.logStartOffset) }
                if version >= 8 {
                    b.encodeInt32(0)  // record_errors: none
                    b.encodeNullableString(p.errorMessage)
                }
            }
        }
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
    }
}
