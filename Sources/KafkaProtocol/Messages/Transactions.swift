import NIOCore

// The client-facing transaction APIs of KIP-98: AddPartitionsToTxn (24), AddOffsetsToTxn (25),
// EndTxn (26) and TxnOffsetCommit (28), v0–3 each (v3 is the first flexible version of all four).

extension ByteBuffer {
    /// A flexible-version struct or message ends with its tagged fields.
    mutating func skipStructEnd(flexible: Bool) throws { if flexible { try skipTaggedFields() } }
    mutating func endStruct(flexible: Bool) { if flexible { encodeEmptyTaggedFields() } }

    mutating func decodeInt32Array(flexible: Bool) throws -> [Int32] {
        try decodeArray(flexible: flexible) { try $0.decodeInt32() }
    }
}

/// AddPartitionsToTxn request (key 24), v0–3 (the client form: one transaction per request).
public struct AddPartitionsToTxnRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.addPartitionsToTxn
    public struct Topic: Sendable, Equatable {
        public var name: String
        public var partitions: [Int32]
        public init(name: String, partitions: [Int32]) {
            self.name = name
            self.partitions = partitions
        }
    }
    public var transactionalId: String
    public var producerId: Int64
    public var producerEpoch: Int16
    public var topics: [Topic]

    public init(transactionalId: String, producerId: Int64, producerEpoch: Int16, topics: [Topic]) {
        self.transactionalId = transactionalId
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.topics = topics
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = apiKey.isFlexible(version)
        let id = try buffer.decodeString(flexible: flexible)
        let pid = try buffer.decodeInt64()
        let epoch = try buffer.decodeInt16()
        let topics = try buffer.decodeArray(flexible: flexible) { b in
            let name = try b.decodeString(flexible: flexible)
            let partitions = try b.decodeInt32Array(flexible: flexible)
            try b.skipStructEnd(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        try buffer.skipStructEnd(flexible: flexible)
        return Self(transactionalId: id, producerId: pid, producerEpoch: epoch, topics: topics)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = Self.apiKey.isFlexible(version)
        buffer.encodeString(transactionalId, flexible: flexible)
        buffer.encodeInt64(producerId)
        buffer.encodeInt16(producerEpoch)
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { $0.encodeInt32($1) }
            b.endStruct(flexible: flexible)
        }
        buffer.endStruct(flexible: flexible)
    }
}

/// AddPartitionsToTxn response (v0–3: results by topic).
public struct AddPartitionsToTxnResponse: KafkaResponseMessage, Equatable {
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
    public var results: [Topic]
    public init(results: [Topic]) { self.results = results }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = ApiKey.addPartitionsToTxn.isFlexible(version)
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(results, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { b, p in
                b.encodeInt32(p.partitionIndex)
                b.encodeErrorCode(p.errorCode)
                b.endStruct(flexible: flexible)
            }
            b.endStruct(flexible: flexible)
        }
        buffer.endStruct(flexible: flexible)
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = ApiKey.addPartitionsToTxn.isFlexible(version)
        let throttle = try buffer.decodeInt32()
        let results = try buffer.decodeArray(flexible: flexible) { b in
            let name = try b.decodeString(flexible: flexible)
            let partitions = try b.decodeArray(flexible: flexible) { b in
                let p = Partition(partitionIndex: try b.decodeInt32(), errorCode: try b.decodeErrorCode())
                try b.skipStructEnd(flexible: flexible)
                return p
            }
            try b.skipStructEnd(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        try buffer.skipStructEnd(flexible: flexible)
        var r = Self(results: results)
        r.throttleTimeMs = throttle
        return r
    }
}

/// AddOffsetsToTxn request (key 25), v0–3.
public struct AddOffsetsToTxnRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.addOffsetsToTxn
    public var transactionalId: String
    public var producerId: Int64
    public var producerEpoch: Int16
    public var groupId: String

    public init(transactionalId: String, producerId: Int64, producerEpoch: Int16, groupId: String) {
        self.transactionalId = transactionalId
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.groupId = groupId
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = apiKey.isFlexible(version)
        let r = Self(
            transactionalId: try buffer.decodeString(flexible: flexible), producerId: try buffer.decodeInt64(), producerEpoch: try buffer.decodeInt16(),
            groupId: try buffer.decodeString(flexible: flexible))
        try buffer.skipStructEnd(flexible: flexible)
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = Self.apiKey.isFlexible(version)
        buffer.encodeString(transactionalId, flexible: flexible)
        buffer.encodeInt64(producerId)
        buffer.encodeInt16(producerEpoch)
        buffer.encodeString(groupId, flexible: flexible)
        buffer.endStruct(flexible: flexible)
    }
}

/// The response of AddOffsetsToTxn and EndTxn (v0–3): throttle time and one error code.
public struct TxnErrorResponse: KafkaResponseMessage, Equatable {
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public init(errorCode: ErrorCode) { self.errorCode = errorCode }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeErrorCode(errorCode)
        buffer.endStruct(flexible: version >= 3)
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let throttle = try buffer.decodeInt32()
        var r = Self(errorCode: try buffer.decodeErrorCode())
        r.throttleTimeMs = throttle
        try buffer.skipStructEnd(flexible: version >= 3)
        return r
    }
}

public typealias AddOffsetsToTxnResponse = TxnErrorResponse
public typealias EndTxnResponse = TxnErrorResponse

/// EndTxn request (key 26), v0–3.
public struct EndTxnRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.endTxn
    public var transactionalId: String
    public var producerId: Int64
    public var producerEpoch: Int16
    public var committed: Bool

    public init(transactionalId: String, producerId: Int64, producerEpoch: Int16, committed: Bool) {
        self.transactionalId = transactionalId
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.committed = committed
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = apiKey.isFlexible(version)
        let r = Self(
            transactionalId: try buffer.decodeString(flexible: flexible), producerId: try buffer.decodeInt64(), producerEpoch: try buffer.decodeInt16(),
            committed: try buffer.decodeBool())
        try buffer.skipStructEnd(flexible: flexible)
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = Self.apiKey.isFlexible(version)
        buffer.encodeString(transactionalId, flexible: flexible)
        buffer.encodeInt64(producerId)
        buffer.encodeInt16(producerEpoch)
        buffer.encodeBool(committed)
        buffer.endStruct(flexible: flexible)
    }
}

/// TxnOffsetCommit request (key 28), v0–3; v3 adds the KIP-447 group member fields.
public struct TxnOffsetCommitRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.txnOffsetCommit
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
    public var transactionalId: String
    public var groupId: String
    public var producerId: Int64
    public var producerEpoch: Int16
    public var generationId: Int32 = -1
    public var memberId: String = ""
    public var groupInstanceId: String? = nil
    public var topics: [Topic]

    public init(
        transactionalId: String, groupId: String, producerId: Int64, producerEpoch: Int16, generationId: Int32 = -1, memberId: String = "",
        groupInstanceId: String? = nil, topics: [Topic]
    ) {
        self.transactionalId = transactionalId
        self.groupId = groupId
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.topics = topics
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = apiKey.isFlexible(version)
        let id = try buffer.decodeString(flexible: flexible)
        let group = try buffer.decodeString(flexible: flexible)
        let pid = try buffer.decodeInt64()
        let epoch = try buffer.decodeInt16()
        var generation: Int32 = -1
        var member = ""
        var instance: String? = nil
        if version >= 3 {
            generation = try buffer.decodeInt32()
            member = try buffer.decodeString(flexible: flexible)
            instance = try buffer.decodeNullableString(flexible: flexible)
        }
        let topics = try buffer.decodeArray(flexible: flexible) { b in
            let name = try b.decodeString(flexible: flexible)
            let partitions = try b.decodeArray(flexible: flexible) { b in
                let index = try b.decodeInt32()
                let offset = try b.decodeInt64()
                let leaderEpoch = version >= 2 ? try b.decodeInt32() : -1
                let metadata = try b.decodeNullableString(flexible: flexible)
                try b.skipStructEnd(flexible: flexible)
                return Partition(partitionIndex: index, committedOffset: offset, committedLeaderEpoch: leaderEpoch, committedMetadata: metadata)
            }
            try b.skipStructEnd(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        try buffer.skipStructEnd(flexible: flexible)
        return Self(
            transactionalId: id, groupId: group, producerId: pid, producerEpoch: epoch, generationId: generation, memberId: member, groupInstanceId: instance,
            topics: topics)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = Self.apiKey.isFlexible(version)
        buffer.encodeString(transactionalId, flexible: flexible)
        buffer.encodeString(groupId, flexible: flexible)
        buffer.encodeInt64(producerId)
        buffer.encodeInt16(producerEpoch)
        if version >= 3 {
            buffer.encodeInt32(generationId)
            buffer.encodeString(memberId, flexible: flexible)
            buffer.encodeNullableString(groupInstanceId, flexible: flexible)
        }
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { b, p in
                b.encodeInt32(p.partitionIndex)
                b.encodeInt64(p.committedOffset)
                if version >= 2 { b.encodeInt32(p.committedLeaderEpoch) }
                b.encodeNullableString(p.committedMetadata, flexible: flexible)
                b.endStruct(flexible: flexible)
            }
            b.endStruct(flexible: flexible)
        }
        buffer.endStruct(flexible: flexible)
    }
}

/// TxnOffsetCommit response.
public struct TxnOffsetCommitResponse: KafkaResponseMessage, Equatable {
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
        let flexible = ApiKey.txnOffsetCommit.isFlexible(version)
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeArray(t.partitions, flexible: flexible) { b, p in
                b.encodeInt32(p.partitionIndex)
                b.encodeErrorCode(p.errorCode)
                b.endStruct(flexible: flexible)
            }
            b.endStruct(flexible: flexible)
        }
        buffer.endStruct(flexible: flexible)
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = ApiKey.txnOffsetCommit.isFlexible(version)
        let throttle = try buffer.decodeInt32()
        let topics = try buffer.decodeArray(flexible: flexible) { b in
            let name = try b.decodeString(flexible: flexible)
            let partitions = try b.decodeArray(flexible: flexible) { b in
                let p = Partition(partitionIndex: try b.decodeInt32(), errorCode: try b.decodeErrorCode())
                try b.skipStructEnd(flexible: flexible)
                return p
            }
            try b.skipStructEnd(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        try buffer.skipStructEnd(flexible: flexible)
        var r = Self(topics: topics)
        r.throttleTimeMs = throttle
        return r
    }
}
