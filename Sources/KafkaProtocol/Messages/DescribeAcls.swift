import NIOCore

/// DescribeAcls request (key 29), v0–3; v2+ is flexible. One filter; the broker answers with
/// every binding it matches, grouped by resource pattern.
public struct DescribeAclsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.describeAcls
    public var filter: AclFilter
    public init(filter: AclFilter) { self.filter = filter }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let filter = try AclFilter.decode(from: &buffer, version: version)
        if version >= 2 { try buffer.skipTaggedFields() }
        return Self(filter: filter)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        filter.encode(into: &buffer, version: version)
        if version >= 2 { buffer.encodeEmptyTaggedFields() }
    }
}

/// DescribeAcls response: the matching bindings, one entry per resource pattern.
public struct DescribeAclsResponse: KafkaResponseMessage, Equatable {
    /// One resource pattern and its ACL entries.
    public struct Resource: Sendable, Equatable {
        public var resourceType: Int8
        public var resourceName: String
        /// v1+ (v0 clients only see literal patterns).
        public var patternType: Int8
        public var acls: [Entry]
        public init(resourceType: Int8, resourceName: String, patternType: Int8, acls: [Entry]) {
            self.resourceType = resourceType
            self.resourceName = resourceName
            self.patternType = patternType
            self.acls = acls
        }
    }
    /// One access control entry of a resource.
    public struct Entry: Sendable, Equatable {
        public var principal: String
        public var host: String
        public var operation: Int8
        public var permissionType: Int8
        public init(principal: String, host: String, operation: Int8, permissionType: Int8) {
            self.principal = principal
            self.host = host
            self.operation = operation
            self.permissionType = permissionType
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var errorMessage: String?
    public var resources: [Resource]
    public init(errorCode: ErrorCode, errorMessage: String? = nil, resources: [Resource]) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.resources = resources
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeErrorCode(errorCode)
        buffer.encodeNullableString(errorMessage, flexible: flexible)
        buffer.encodeArray(resources, flexible: flexible) { b, r in
            b.encodeInt8(r.resourceType)
            b.encodeString(r.resourceName, flexible: flexible)
            if version >= 1 { b.encodeInt8(r.patternType) }
            b.encodeArray(r.acls, flexible: flexible) { b, e in
                b.encodeString(e.principal, flexible: flexible)
                b.encodeString(e.host, flexible: flexible)
                b.encodeInt8(e.operation)
                b.encodeInt8(e.permissionType)
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let throttle = try buffer.decodeInt32()
        let error = try buffer.decodeErrorCode()
        let message = try buffer.decodeNullableString(flexible: flexible)
        let resources = try buffer.decodeArray(flexible: flexible) { b -> Resource in
            let type = try b.decodeInt8()
            let name = try b.decodeString(flexible: flexible)
            let pattern = version >= 1 ? try b.decodeInt8() : 3
            let acls = try b.decodeArray(flexible: flexible) { b -> Entry in
                let e = Entry(
                    principal: try b.decodeString(flexible: flexible), host: try b.decodeString(flexible: flexible), operation: try b.decodeInt8(),
                    permissionType: try b.decodeInt8())
                if flexible { try b.skipTaggedFields() }
                return e
            }
            if flexible { try b.skipTaggedFields() }
            return Resource(resourceType: type, resourceName: name, patternType: pattern, acls: acls)
        }
        if flexible { try buffer.skipTaggedFields() }
        var r = Self(errorCode: error, errorMessage: message, resources: resources)
        r.throttleTimeMs = throttle
        return r
    }
}
