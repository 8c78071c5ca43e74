import NIOCore

/// CreateAcls request (key 30), v0–3; v2+ is flexible.
public struct CreateAclsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.createAcls
    public var creations: [AclBindingFields]
    public init(creations: [AclBindingFields]) { self.creations = creations }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let creations = try buffer.decodeArray(flexible: flexible) { b -> AclBindingFields in
            let type = try b.decodeInt8()
            let name = try b.decodeString(flexible: flexible)
            let pattern = version >= 1 ? try b.decodeInt8() : 3
            let c = AclBindingFields(
                resourceType: type, resourceName: name, patternType: pattern, principal: try b.decodeString(flexible: flexible),
                host: try b.decodeString(flexible: flexible), operation: try b.decodeInt8(), permissionType: try b.decodeInt8())
            if flexible { try b.skipTaggedFields() }
            return c
        }
        if flexible { try buffer.skipTaggedFields() }
        return Self(creations: creations)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeArray(creations, flexible: flexible) { b, c in
            b.encodeInt8(c.resourceType)
            b.encodeString(c.resourceName, flexible: flexible)
            if version >= 1 { b.encodeInt8(c.patternType) }
            b.encodeString(c.principal, flexible: flexible)
            b.encodeString(c.host, flexible: flexible)
            b.encodeInt8(c.operation)
            b.encodeInt8(c.permissionType)
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// CreateAcls response: one result per creation, in request order.
public struct CreateAclsResponse: KafkaResponseMessage, Equatable {
    public struct Result: Sendable, Equatable {
        public var errorCode: ErrorCode
        public var errorMessage: String?
        public init(errorCode: ErrorCode, errorMessage: String? = nil) {
            self.errorCode = errorCode
            self.errorMessage = errorMessage
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var results: [Result]
    public init(results: [Result]) { self.results = results }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(results, flexible: flexible) { b, r in
            b.encodeErrorCode(r.errorCode)
            b.encodeNullableString(r.errorMessage, flexible: flexible)
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let throttle = try buffer.decodeInt32()
        let results = try buffer.decodeArray(flexible: flexible) { b -> Result in
            let r = Result(errorCode: try b.decodeErrorCode(), errorMessage: try b.decodeNullableString(flexible: flexible))
            if flexible { try b.skipTaggedFields() }
            return r
        }
        if flexible { try buffer.skipTaggedFields() }
        var r = Self(results: results)
        r.throttleTimeMs = throttle
        return r
    }
}
