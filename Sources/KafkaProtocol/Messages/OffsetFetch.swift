import NIOCore

/// OffsetFetch request (key 9), v1–8; v6+ is flexible, v7 adds `requireStable`, v8 asks for
/// several groups at once (`groups`; `groupId` and `topics` are then unused). A nil topic list
/// (v2+) asks for every committed offset of the group.
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
    /// v8+: one group's question.
    public struct Group: Sendable, Equatable {
        public var groupId: String
        public var topics: [Topic]?
        public init(groupId: String, topics: [Topic]?) {
            self.groupId = groupId
            self.topics = topics
        }
    }
    public var groupId: String
    public var topics: [Topic]?
    /// v8+: the groups asked about; nil in the single-group form of v1–7.
    public var groups: [Group]?
    /// v7+: refuse (UNSTABLE_OFFSET_COMMIT) while offsets of an open transaction are pending.
    public var requireStable: Bool = false
    public init(groupId: String, topics: [Topic]?) {
        self.groupId = groupId
        self.topics = topics
    }
    /// The v8+ form.
    public init(groups: [Group], requireStable: Bool = false) {
        self.groupId = ""
        self.topics = nil
        self.groups = groups
        self.requireStable = requireStable
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 6
        func topic(_ b: inout ByteBuffer) throws -> Topic {
            let t = Topic(name: try b.decodeString(flexible: flexible), partitionIndexes: try b.decodeArray(flexible: flexible) { try $0.decodeInt32() })
            if flexible { try b.skipTaggedFields() }
            return t
        }
        func topicList(_ b: inout ByteBuffer) throws -> [Topic]? {
            flexible ? try b.decodeCompactNullableArray(topic) : try b.decodeNullableArray(topic)
        }
        var r: Self
        if version >= 8 {
            let groups = try buffer.decodeCompactArray { b in
                let g = Group(groupId: try b.decodeCompactString(), topics: try topicList(&b))
                try b.skipTaggedFields()
                return g
            }
            r = Self(groups: groups)
        } else {
            let group = try buffer.decodeString(flexible: flexible)
            let topics = try topicList(&buffer)
            if topics == nil && version < 2 { throw KafkaProtocolError(.invalidValue, "OffsetFetch v\(version) topics may not be null") }
            r = Self(groupId: group, topics: topics)
        }
        if version >= 7 { r.requireStable = try buffer.decodeBool() }
        if flexible { try buffer.skipTaggedFields() }
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 6
        func topicList(_ b: inout ByteBuffer, _ topics: [Topic]?) {
            let topic: (inout ByteBuffer, Topic) -> Void = { b, t in
                b.encodeString(t.name, flexible: flexible)
                b.encodeArray(t.partitionIndexes, flexible: flexible) { $0.encodeInt32($1) }
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeCompactNullableArray(topics, topic) } else { b.encodeNullableArray(topics, topic) }
        }
        if version >= 8 {
            buffer.encodeCompactNullableArray(groups ?? [Group(groupId: groupId, topics: topics)]) { b, g in
                b.encodeCompactNullableString(g.groupId)
                topicList(&b, g.topics)
                b.encodeEmptyTaggedFields()
            }
        } else {
            buffer.encodeString(groupId, flexible: flexible)
            topicList(&buffer, topics)
        }
        if version >= 7 { buffer.encodeBool(requireStable) }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// OffsetFetch response. An offset of -1 means nothing committed. v8+ answers per group (`groups`).
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
    /// v8+: one group's answer.
    public struct Group: Sendable, Equatable {
        public var groupId: String
        public var topics: [Topic]
        public var errorCode: ErrorCode
        public init(groupId: String, topics: [Topic], errorCode: ErrorCode = .none) {
            self.groupId = groupId
            self.topics = topics
            self.errorCode = errorCode
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var topics: [Topic]
    public var errorCode: ErrorCode
    /// v8+: the answers per group (v1–7 use `topics` and `errorCode`).
    public var groups: [Group] = []
    public init(topics: [Topic], errorCode: ErrorCode = .none) {
        self.topics = topics
        self.errorCode = errorCode
    }
    /// The v8+ form.
    public init(groups: [Group]) {
        self.topics = []
        self.errorCode = .none
        self.groups = groups
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 6
        func topicList(_ b: inout ByteBuffer, _ topics: [Topic]) {
            b.encodeArray(topics, flexible: flexible) { b, t in
                b.encodeString(t.name, flexible: flexible)
                b.encodeArray(t.partitions, flexible: flexible) { b, p in
                    b.encodeInt32(p.partitionIndex)
                    b.encodeInt64(p.committedOffset)
                    if version >= 5 { b.encodeInt32(p.committedLeaderEpoch) }
                    b.encodeNullableString(p.metadata, flexible: flexible)
                    b.encodeErrorCode(p.errorCode)
                    if flexible { b.encodeEmptyTaggedFields() }
                }
                if flexible { b.encodeEmptyTaggedFields() }
            }
        }
        if version >= 3 { buffer.encodeInt32(throttleTimeMs) }
        if version >= 8 {
            buffer.encodeCompactNullableArray(groups) { b, g in
                b.encodeCompactNullableString(g.groupId)
                topicList(&b, g.topics)
                b.encodeErrorCode(g.errorCode)
                b.encodeEmptyTaggedFields()
            }
        } else {
            topicList(&buffer, topics)
            if version >= 2 { buffer.encodeErrorCode(errorCode) }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 6
        func topicList(_ b: inout ByteBuffer) throws -> [Topic] {
            try b.decodeArray(flexible: flexible) { b in
                let name = try b.decodeString(flexible: flexible)
                let partitions = try b.decodeArray(flexible: flexible) { b in
                    let index = try b.decodeInt32()
                    let offset = try b.decodeInt64()
                    let epoch = version >= 5 ? try b.decodeInt32() : -1
                    let p = Partition(
                        partitionIndex: index, committedOffset: offset, committedLeaderEpoch: epoch, metadata: try b.decodeNullableString(flexible: flexible),
                        errorCode: try b.decodeErrorCode())
                    if flexible { try b.skipTaggedFields() }
                    return p
                }
                if flexible { try b.skipTaggedFields() }
                return Topic(name: name, partitions: partitions)
            }
        }
        let throttle = version >= 3 ? try buffer.decodeInt32() : 0
        var r: Self
        if version >= 8 {
            r = Self(
                groups: try buffer.decodeCompactArray { b in
                    let g = Group(groupId: try b.decodeCompactString(), topics: try topicList(&b), errorCode: try b.decodeErrorCode())
                    try b.skipTaggedFields()
                    return g
                })
        } else {
            let topics = try topicList(&buffer)
            let code = version >= 2 ? try buffer.decodeErrorCode() : .none
            r = Self(topics: topics, errorCode: code)
        }
        if flexible { try buffer.skipTaggedFields() }
        r.throttleTimeMs = throttle
        return r
    }
}
