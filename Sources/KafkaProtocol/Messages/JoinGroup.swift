import NIOCore

/// JoinGroup request (key 11), v0–5.
public struct JoinGroupRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.joinGroup
    public struct GroupProtocol: Sendable, Equatable {
        public var name: String
        public var metadata: [UInt8]
        public init(name: String, metadata: [UInt8]) {
            self.name = name
            self.metadata = metadata
        }
    }
    public var groupId: String
    public var sessionTimeoutMs: Int32
    public var rebalanceTimeoutMs: Int32
    public var memberId: String
    public var groupInstanceId: String?
    public var protocolType: String
    public var protocols: [GroupProtocol]

    public init(
        groupId: String, sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32, memberId: String, groupInstanceId: String? = nil, protocolType: String,
        protocols: [GroupProtocol]
    ) {
        self.groupId = groupId
        self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.protocolType = protocolType
        self.protocols = protocols
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let group = try buffer.decodeString()
        let session = try buffer.decodeInt32()
        let rebalance = version >= 1 ? try buffer.decodeInt32() : session
        let member = try buffer.decodeString()
        let instance = version >= 5 ? try buffer.decodeNullableString() : nil
        let type = try buffer.decodeString()
        let protocols = try buffer.decodeArray { b in GroupProtocol(name: try b.decodeString(), metadata: try b.decodeBytes()) }
        return Self(
            groupId: group, sessionTimeoutMs: session, rebalanceTimeoutMs: rebalance, memberId: member, groupInstanceId: instance, protocolType: type,
            protocols: protocols)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(groupId)
        buffer.encodeInt32(sessionTimeoutMs)
        if version >= 1 { buffer.encodeInt32(rebalanceTimeoutMs) }
        buffer.encodeString(memberId)
        if version >= 5 { buffer.encodeNullableString(groupInstanceId) }
        buffer.encodeString(protocolType)
        buffer.encodeArray(protocols) { b, p in
            b.encodeString(p.name)
            b.encodeBytes(p.metadata)
        }
    }
}

/// JoinGroup response.
public struct JoinGroupResponse: KafkaResponseMessage, Equatable {
    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var metadata: [UInt8]
        public init(memberId: String, groupInstanceId: String?, metadata: [UInt8]) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
            self.metadata = metadata
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var generationId: Int32
    public var protocolName: String
    public var leader: String
    public var memberId: String
    public var members: [Member]

    public init(errorCode: ErrorCode, generationId: Int32 = -1, protocolName: String = "", leader: String = "", memberId: String, members: [Member] = []) {
        self.errorCode = errorCode
        self.generationId = generationId
        self.protocolName = protocolName
        self.leader = leader
        self.memberId = memberId
        self.members = members
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 2 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeErrorCode(errorCode)
        buffer.encodeInt32(generationId)
        buffer.encodeString(protocolName)
        buffer.encodeString(leader)
        buffer.encodeString(memberId)
        buffer.encodeArray(members) { b, m in
            b.encodeString(m.memberId)
            if version >= 5 { b.encodeNullableString(m.groupInstanceId) }
            b.encodeBytes(m.metadata)
        }
    }
}
