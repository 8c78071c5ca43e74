import NIOCore

/// Heartbeat request (key 12), v0–3.
public struct HeartbeatRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.heartbeat
    public var groupId: String
    public var generationId: Int32
    public var memberId: String
    public var groupInstanceId: String?
    public init(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String? = nil) {
        self.groupId = groupId
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let group = try buffer.decodeString()
        let generation = try buffer.decodeInt32()
        let member = try buffer.decodeString()
        let instance = version >= 3 ? try buffer.decodeNullableString() : nil
        return Self(groupId: group, generationId: generation, memberId: member, groupInstanceId: instance)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(groupId)
        buffer.encodeInt32(generationId)
        buffer.encodeString(memberId)
        if version >= 3 { buffer.encodeNullableString(groupInstanceId) }
    }
}

/// Heartbeat response.
public struct HeartbeatResponse: KafkaResponseMessage, Equatable {
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public init(errorCode: ErrorCode) { self.errorCode = errorCode }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeErrorCode(errorCode)
    }
}
