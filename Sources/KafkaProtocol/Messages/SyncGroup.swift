import NIOCore

/// SyncGroup request (key 14), v0–3.
public struct SyncGroupRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.syncGroup
    public struct Assignment: Sendable, Equatable {
        public var memberId: String
        public var assignment: [UInt8]
        public init(memberId: String, assignment: [UInt8]) {
            self.memberId = memberId
            self.assignment = assignment
        }
    }
    public var groupId: String
    public var generationId: Int32
    public var memberId: String
    public var groupInstanceId: String?
    public var assignments: [Assignment]

    public init(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String? = nil, assignments: [Assignment]) {
        self.groupId = groupId
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.assignments = assignments
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let group = try buffer.decodeString()
        let generation = try buffer.decodeInt32()
        let member = try buffer.decodeString()
        let instance = version >= 3 ? try buffer.decodeNullableString() : nil
        let assignments = try buffer.decodeArray { b in Assignment(memberId: try b.decodeString(), assignment: try b.decodeBytes()) }
        return Self(groupId: group, generationId: generation, memberId: member, groupInstanceId: instance, assignments: assignments)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(groupId)
        buffer.encodeInt32(generationId)
        buffer.encodeString(memberId)
        if version >= 3 { buffer.encodeNullableString(groupInstanceId) }
        buffer.encodeArray(assignments) { b, a in
            b.encodeString(a.memberId)
            b.encodeBytes(a.assignment)
        }
    }
}

/// SyncGroup response.
public struct SyncGroupResponse: KafkaResponseMessage, Equatable {
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var assignment: [UInt8]
    public init(errorCode: ErrorCode, assignment: [UInt8] = []) {
        self.errorCode = errorCode
        self.assignment = assignment
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeErrorCode(errorCode)
        buffer.encodeBytes(assignment)
    }
}
