import NIOCore

/// LeaveGroup request (key 13), v0–3 (v3 leaves a batch of members).
public struct LeaveGroupRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.leaveGroup
    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public init(memberId: String, groupInstanceId: String? = nil) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
        }
    }
    public var groupId: String
    public var members: [Member]
    public init(groupId: String, members: [Member]) {
        self.groupId = groupId
        self.members = members
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let group = try buffer.decodeString()
        if version >= 3 {
            return Self(
                groupId: group, members: try buffer.decodeArray { b in Member(memberId: try b.decodeString(), groupInstanceId: try b.decodeNullableString()) })
        }
        return Self(groupId: group, members: [Member(memberId: try buffer.decodeString())])
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(groupId)
        if version >= 3 {
            buffer.encodeArray(members) { b, m in
                b.encodeString(m.memberId)
                b.encodeNullableString(m.groupInstanceId)
            }
        } else {
            buffer.encodeString(members.first?.memberId ?? "")
        }
    }
}

/// LeaveGroup response.
public struct LeaveGroupResponse: KafkaResponseMessage, Equatable {
    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var errorCode: ErrorCode
        public init(memberId: String, groupInstanceId: String?, errorCode: ErrorCode) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
            self.errorCode = errorCode
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var members: [Member]
    public init(errorCode: ErrorCode, members: [Member] = []) {
        self.errorCode = errorCode
        self.members = members
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeErrorCode(errorCode)
        if version >= 3 {
            buffer.encodeArray(members) { b, m in
                b.encodeString(m.memberId)
                b.encodeNullableString(m.groupInstanceId)
                b.encodeErrorCode(m.errorCode)
            }
        }
    }
}
