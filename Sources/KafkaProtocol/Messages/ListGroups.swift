import NIOCore

/// ListGroups request (key 16), v0–2 (empty body).
public struct ListGroupsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.listGroups
    public init() {}
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self { Self() }
    public func encode(into buffer: inout ByteBuffer, version: Int16) {}
}

/// ListGroups response.
public struct ListGroupsResponse: KafkaResponseMessage, Equatable {
    public struct Group: Sendable, Equatable {
        public var groupId: String
        public var protocolType: String
        public init(groupId: String, protocolType: String) {
            self.groupId = groupId
            self.protocolType = protocolType
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var groups: [Group]
    public init(errorCode: ErrorCode = .none, groups: [Group]) {
        self.errorCode = errorCode
        self.groups = groups
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeErrorCode(errorCode)
        buffer.encodeArray(groups) { b, g in
            b.encodeString(g.groupId)
            b.encodeString(g.protocolType)
        }
    }
}
