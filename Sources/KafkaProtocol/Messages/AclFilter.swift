import NIOCore

/// One ACL filter as DescribeAcls and DeleteAcls carry it (Kafka's `AclBindingFilter`): raw enum
/// numbers, checked by the broker, since any byte may arrive. Null strings match anything.
public struct AclFilter: Sendable, Equatable {
    /// Resource type: 1 any, 2 topic, 3 group, 4 cluster, 5 transactional id (Kafka's `ResourceType`).
    public var resourceType: Int8
    public var resourceName: String?
    /// Pattern type (v1+; v0 means literal, 3): 1 any, 2 match, 3 literal, 4 prefixed.
    public var patternType: Int8
    public var principal: String?
    public var host: String?
    /// Operation: 1 any, 2 all, 3 read, ... (Kafka's `AclOperation`).
    public var operation: Int8
    /// Permission: 1 any, 2 deny, 3 allow.
    public var permissionType: Int8

    public init(
        resourceType: Int8, resourceName: String?, patternType: Int8 = 3, principal: String?, host: String?, operation: Int8, permissionType: Int8
    ) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permissionType = permissionType
    }

    /// Reads the fields (not the tagged fields after them) at `version` of DescribeAcls/DeleteAcls.
    static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let type = try buffer.decodeInt8()
        let name = try buffer.decodeNullableString(flexible: flexible)
        let pattern = version >= 1 ? try buffer.decodeInt8() : 3
        let principal = try buffer.decodeNullableString(flexible: flexible)
        let host = try buffer.decodeNullableString(flexible: flexible)
        let operation = try buffer.decodeInt8()
        let permission = try buffer.decodeInt8()
        return Self(
            resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: host, operation: operation, permissionType: permission)
    }

    func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeInt8(resourceType)
        buffer.encodeNullableString(resourceName, flexible: flexible)
        if version >= 1 { buffer.encodeInt8(patternType) }
        buffer.encodeNullableString(principal, flexible: flexible)
        buffer.encodeNullableString(host, flexible: flexible)
        buffer.encodeInt8(operation)
        buffer.encodeInt8(permissionType)
    }
}

/// One ACL binding with every field given (CreateAcls creations, DeleteAcls matches).
public struct AclBindingFields: Sendable, Equatable {
    public var resourceType: Int8
    public var resourceName: String
    /// 3 literal, 4 prefixed (v0: always literal).
    public var patternType: Int8
    public var principal: String
    public var host: String
    public var operation: Int8
    public var permissionType: Int8

    public init(resourceType: Int8, resourceName: String, patternType: Int8 = 3, principal: String, host: String, operation: Int8, permissionType: Int8) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permissionType = permissionType
    }
}
