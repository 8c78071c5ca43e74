import NIOCore

/// Fetch request (key 1), v4–11.
public struct FetchRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.fetch
    public struct Partition: Sendable, Equatable {
        public var partition: Int32
        public var currentLeaderEpoch: Int32
        public var fetchOffset: Int64
        public var logStartOffset: Int64
        public var partitionMaxBytes: Int32
        public init(partition: Int32, currentLeaderEpoch: Int32 = -1, fetchOffset: Int64, logStartOffset: Int64 = -1, partitionMaxBytes: Int32) {
            self.partition = partition
            self.currentLeaderEpoch = currentLeaderEpoch
            self.fetchOffset = fetchOffset
            self.logStartOffset = logStartOffset
            self.partitionMaxBytes = partitionMaxBytes
        }
    }
    public struct Topic: Sendable, Equatable {
        public var topic: String
        public var partitions: [Partition]
        public init(topic: String, partitions: [Partition]) {
            self.topic = topic
            self.partitions = partitions
        }
    }
    public struct ForgottenTopic: Sendable, Equatable {
        public var topic: String
        public var partitions: [Int32]
    }
    public var replicaId: Int32 = -1
    public var maxWaitMs: Int32
    public var minBytes: Int32
    public var maxBytes: Int32
    public var isolationLevel: Int8 = 0
    public var sessionId: Int32 = 0
    public var sessionEpoch: Int32 = -1
    public var topics: [Topic]
    public var forgottenTopics: [ForgottenTopic] = []
    public var rackId: String = ""

    public init(maxWaitMs: Int32, minBytes: Int32, maxBytes: Int32, topics: [Topic]) {
        self.maxWaitMs = maxWaitMs
        self.minBytes = minBytes
        self.maxBytes = maxBytes
        self.topics = topics
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let replicaId = try buffer.decodeInt32()
        var r = Self(maxWaitMs: try buffer.decodeInt32(), minBytes: try buffer.decodeInt32(), maxBytes: Int32.max, topics: [])
        r.replicaId = replicaId
        if version >= 3 { r.maxBytes = try buffer.decodeInt32() }
        if version >= 4 { r.isolationLevel = try buffer.decodeInt8() }
        if version >= 7 {
            r.sessionId = try buffer.decodeInt32()
            r.sessionEpoch = try buffer.decodeInt32()
        }
        r.topics = try buffer.decodeArray { b in
            Topic(
                topic: try b.decodeString(),
                partitions: try b.decodeArray { b in
                    let index = try b.decodeInt32()
                    let epoch = version >= 9 ? try b.decodeInt32() : -1
                    let offset = try b.decodeInt64()
                    let start = version >= 5 ? try b.decodeInt64() : -1
                    let maxBytes = try b.decodeInt32()
                    return Partition(partition: index, currentLeaderEpoch: epoch, fetchOffset: offset, logStartOffset: start, partitionMaxBytes: maxBytes)
                })
        }
        if version >= 7 {
            r.forgottenTopics = try buffer.decodeArray { b in
                ForgottenTopic(topic: try b.decodeString(), partitions: try b.decodeArray { try $0.decodeInt32() })
            }
        }
        if version >= 11 { r.rackId = try buffer.decodeString() }
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeInt32(replicaId)
        buffer.encodeInt32(maxWaitMs)
        buffer.encodeInt32(minBytes)
        if version >= 3 { buffer.encodeInt32(maxBytes) }
        if version >= 4 { buffer.encodeInt8(isolationLevel) }
        if version >= 7 {
            buffer.encodeInt32(sessionId)
            buffer.encodeInt32(sessionEpoch)
        }
        buffer.encodeArray(topics) { b, t in
            b.encodeString(t.topic)
            b.encodeArray(t.partitions) { b, p in
                b.encodeInt32(p.partition)
                if version >= 9 { b.encodeInt32(p.currentLeaderEpoch) }
                b.encodeInt64(p.fetchOffset)
                if version >= 5 { b.encodeInt64(p.logStartOffset) }
                b.encodeInt32(p.partitionMaxBytes)
            }
        }
        if version >= 7 {
            buffer.encodeArray(forgottenTopics) { b, t in
                b.encodeString(t.topic)
                b.encodeArray(t.partitions) { $0.encodeInt32($1) }
            }
        }
        if version >= 11 { buffer.encodeString(rackId) }
    }
}

/// Fetch response.
public struct FetchResponse: KafkaResponseMessage, Equatable {
    public struct Partition: Sendable, Equatable {
        public var partitionIndex: Int32
        public var errorCode: ErrorCode
        public var highWatermark: Int64
        public var lastStableOffset: Int64
        public var logStartOffset: Int64
        /// Whole RecordBatch v2 byte sequences.
        public var records: ByteBuffer?
        /// read_committed fetches: the aborted transactions in the returned range (nil: none listed).
        public var abortedTransactions: [AbortedTransaction]? = nil
        public init(partitionIndex: Int32, errorCode: ErrorCode, highWatermark: Int64, lastStableOffset: Int64, logStartOffset: Int64, records: ByteBuffer?) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.highWatermark = highWatermark
            self.lastStableOffset = lastStableOffset
            self.logStartOffset = logStartOffset
            self.records = records
        }
    }
    /// An aborted transaction: its producer and the first offset of its data in the partition.
    public struct AbortedTransaction: Sendable, Equatable {
        public var producerId: Int64
        public var firstOffset: Int64
        public init(producerId: Int64, firstOffset: Int64) {
            self.producerId = producerId
            self.firstOffset = firstOffset
        }
    }
    public struct Topic: Sendable, Equatable {
        public var topic: String
        public var partitions: [Partition]
        public init(topic: String, partitions: [Partition]) {
            self.topic = topic
            self.partitions = partitions
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode = .none
    public var sessionId: Int32 = 0
    public var topics: [Topic]

    public init(topics: [Topic]) { self.topics = topics }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        encode(into: &buffer, version: version) { b, records in b.encodeNullableBytes(records ?? ByteBuffer()) }
    }

    /// Room for this response's frame (a capacity, not an exact size): its fields, plus the record
    /// sets of at most `limit` bytes (the ones copied into it).
    public func estimatedFrameBytes(inliningRecordsUpTo limit: Int = .max) -> Int {
        var size = 1024
        for t in topics {
            size += t.topic.utf8.count + 16
            for p in t.partitions {
                size += 64 + 16 * (p.abortedTransactions?.count ?? 0)
                if let records = p.records, records.readableBytes <= limit { size += records.readableBytes }
            }
        }
        return size
    }

    /// Encodes with `writeRecords` writing each partition's `records` field (its INT32 length and
    /// bytes): `KafkaResponse.encodeFetchFrameParts` writes the length only and sends the bytes
    /// as their own buffer.
    public func encode(into buffer: inout ByteBuffer, version: Int16, records writeRecords: (inout ByteBuffer, ByteBuffer?) -> Void) {
        buffer.encodeInt32(throttleTimeMs)
        if version >= 7 {
            buffer.encodeErrorCode(errorCode)
            buffer.encodeInt32(sessionId)
        }
        buffer.encodeArray(topics) { b, t in
            b.encodeString(t.topic)
            b.encodeArray(t.partitions) { b, p in
                b.encodeInt32(p.partitionIndex)
                b.encodeErrorCode(p.errorCode)
                b.encodeInt64(p.highWatermark)
                if version >= 4 { b.encodeInt64(p.lastStableOffset) }
                if version >= 5 { b.encodeInt64(p.logStartOffset) }
                if version >= 4 {
                    b.encodeNullableArray(p.abortedTransactions) { b, a in
                        b.encodeInt64(a.producerId)
                        b.encodeInt64(a.firstOffset)
                    }
                }
                if version >= 11 { b.encodeInt32(-1) }  // preferred_read_replica
                writeRecords(&b, p.records)
            }
        }
    }
}
