import NIOCore

/// DeleteGroups request (key 42), v0–2; v2 is flexible.
public struct DeleteGroupsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.deleteGroups
    public var groupsNames: [String]
    public init(groupsNames: [String]) { self.groupsNames = groupsNames }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let names = try buffer.decodeArray(flexible: flexible) { try $0.decodeString(flexible: flexible) }
        if flexible { try buffer.skipTaggedFields() }
        return Self(groupsNames: names)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeArray(groupsNames, flexible: flexible) { $0.encodeString($1, flexible: flexible) }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// DeleteGroups response.
public struct DeleteGroupsResponse: KafkaResponseMessage, Equatable {
    public struct Result: Sendable, Equatable {
        public var groupId: String
        public var errorCode: ErrorCode
        public init(groupId: String, errorCode: ErrorCode) {
            self.groupId = groupId
            self.errorCode = errorCode
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var results: [Result]
    public init(results: [Result]) { self.results = results }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(results, flexible: flexible) { b, r in
            b.encodeString(r.groupId, flexible: flexible)
            b.encodeErrorCode(r.errorCode)
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let throttle = try buffer.decodeInt32()
        var r = Self(
            results: try buffer.decodeArray(flexible: flexible) { b in
                let result = Result(groupId: try b.decodeString(flexible: flexible), errorCode: try b.decodeErrorCode())
                if flexible { try b.skipTaggedFields() }
                return result
            })
        r.throttleTimeMs = throttle
        if flexible { try buffer.skipTaggedFields() }
        return r
    }
}
