import KafkaProtocol

/// The kind of resource an ACL protects (Kafka's `ResourceType`; the raw value is the name used on
/// the command line and in `acls.json`, `code` the number on the wire).
public enum AclResourceType: String, Sendable, Codable, CaseIterable {
    case topic, group, cluster
    case transactionalId = "transactional-id"

    public var code: Int8 {
        switch self {
        case .topic: 2
        case .group: 3
        case .cluster: 4
        case .transactionalId: 5
        }
    }

    public init?(code: Int8) {
        guard let t = Self.allCases.first(where: { $0.code == code }) else { return nil }
        self = t
    }

    /// The operations an ACL on this resource type may name (Kafka's `AclEntry.supportedOperations`), ALL included.
    public var supportedOperations: Set<AclOperation> {
        switch self {
        case .topic: [.all, .read, .write, .create, .describe, .delete, .alter, .describeConfigs, .alterConfigs]
        case .group: [.all, .read, .describe, .delete]
        case .cluster: [.all, .create, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .alter, .describe]
        case .transactionalId: [.all, .describe, .write]
        }
    }
}

/// How an ACL's resource name is matched: the exact name ("*" meaning every name), or a prefix.
public enum AclPatternType: String, Sendable, Codable, CaseIterable {
    case literal, prefixed

    public var code: Int8 { self == .literal ? 3 : 4 }

    public init?(code: Int8) {
        switch code {
        case 3: self = .literal
        case 4: self = .prefixed
        default: return nil
        }
    }
}

/// What an ACL allows or denies (Kafka's `AclOperation`, without UNKNOWN and ANY).
public enum AclOperation: String, Sendable, Codable, CaseIterable {
    case all, read, write, create, delete, alter, describe
    case clusterAction = "cluster-action"
    case describeConfigs = "describe-configs"
    case alterConfigs = "alter-configs"
    case idempotentWrite = "idempotent-write"

    public var code: Int8 {
        switch self {
        case .all: 2
        case .read: 3
        case .write: 4
        case .create: 5
        case .delete: 6
        case .alter: 7
        case .describe: 8
        case .clusterAction: 9
        case .describeConfigs: 10
        case .alterConfigs: 11
        case .idempotentWrite: 12
        }
    }

    public init?(code: Int8) {
        guard let o = Self.allCases.first(where: { $0.code == code }) else { return nil }
        self = o
    }

    /// The operations whose ALLOW also allows this one (Kafka's implication rules): DESCRIBE is
    /// implied by READ, WRITE, DELETE and ALTER; DESCRIBE_CONFIGS by ALTER_CONFIGS; ALL implies all.
    public var allowedBy: Set<AclOperation> {
        switch self {
        case .describe: [.all, .describe, .read, .write, .delete, .alter]
        case .describeConfigs: [.all, .describeConfigs, .alterConfigs]
        default: [.all, self]
        }
    }
}

/// Allow or deny.
public enum AclPermission: String, Sendable, Codable, CaseIterable {
    case allow, deny

    public var code: Int8 { self == .deny ? 2 : 3 }

    public init?(code: Int8) {
        switch code {
        case 2: self = .deny
        case 3: self = .allow
        default: return nil
        }
    }
}

/// One ACL: `principal` from `host` is allowed or denied `operation` on the resources matching
/// (`resourceType`, `resourceName`, `patternType`).
public struct AclBinding: Sendable, Codable, Hashable {
    public var resourceType: AclResourceType
    public var resourceName: String
    public var patternType: AclPatternType
    /// "User:NAME", or "User:*" for every principal.
    public var principal: String
    /// A client address, or "*" for every host.
    public var host: String
    public var operation: AclOperation
    public var permission: AclPermission

    /// The name of the one cluster resource, as in Kafka.
    public static let clusterResourceName = "kafka-cluster"
    /// Principals and hosts longer than this are refused (a real one is tens of bytes).
    public static let maxFieldBytes = 1024

    public init(
        resourceType: AclResourceType, resourceName: String, patternType: AclPatternType = .literal, principal: String, host: String = "*",
        operation: AclOperation, permission: AclPermission = .allow
    ) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// A binding from a CreateAcls creation; every enum number and string is checked, as Kafka does.
    public init(fields f: AclBindingFields) throws(AclValidationError) {
        guard let type = AclResourceType(code: f.resourceType) else {
            throw AclValidationError("resource type \(f.resourceType) is not one of topic (2), group (3), cluster (4), transactional id (5)")
        }
        guard let pattern = AclPatternType(code: f.patternType) else {
            throw AclValidationError("pattern type \(f.patternType) is not literal (3) or prefixed (4)")
        }
        guard let operation = AclOperation(code: f.operation) else { throw AclValidationError("operation \(f.operation) is not a known ACL operation") }
        guard let permission = AclPermission(code: f.permissionType) else {
            throw AclValidationError("permission type \(f.permissionType) is not deny (2) or allow (3)")
        }
        self.init(
            resourceType: type, resourceName: f.resourceName, patternType: pattern, principal: f.principal, host: f.host, operation: operation,
            permission: permission)
        try validate()
    }

    /// Checks what a binding must satisfy to be stored (names, principal form, supported operation).
    public func validate() throws(AclValidationError) {
        guard !resourceName.isEmpty, resourceName.utf8.count <= 255 * 4 else { throw AclValidationError("resource name must be 1 to 1020 bytes") }
        if resourceType == .cluster && resourceName != Self.clusterResourceName {
            throw AclValidationError("the only valid name for the cluster resource is \(Self.clusterResourceName)")
        }
        if resourceType == .cluster && patternType != .literal { throw AclValidationError("cluster ACLs must use the literal pattern type") }
        let parts = principal.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, principal.utf8.count <= Self.maxFieldBytes else {
            throw AclValidationError("principal must look like User:NAME (or User:*); got \(principal.debugDescription)")
        }
        guard !host.isEmpty, host.utf8.count <= Self.maxFieldBytes else { throw AclValidationError("host must be * or an address") }
        guard resourceType.supportedOperations.contains(operation) else {
            let names = resourceType.supportedOperations.map(\.rawValue).sorted().joined(separator: ", ")
            throw AclValidationError("\(resourceType.rawValue) ACLs support only the operations \(names); got \(operation.rawValue)")
        }
    }

    /// The wire form (CreateAcls, DeleteAcls matches).
    public var fields: AclBindingFields {
        AclBindingFields(
            resourceType: resourceType.code, resourceName: resourceName, patternType: patternType.code, principal: principal, host: host,
            operation: operation.code, permissionType: permission.code)
    }

    /// Whether this binding's resource pattern covers the resource `name` of type `type`.
    public func covers(_ type: AclResourceType, _ name: String) -> Bool {
        guard type == resourceType else { return false }
        switch patternType {
        case .literal: return resourceName == name || resourceName == "*"
        case .prefixed: return name.hasPrefix(resourceName)
        }
    }
}

/// A binding that cannot be stored, or a filter that cannot be used: one sentence (sent to the
/// client as the INVALID_REQUEST message).
public struct AclValidationError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Which bindings a DescribeAcls or DeleteAcls request means (Kafka's `AclBindingFilter`): nil
/// fields match anything.
public struct AclBindingFilter: Sendable, Equatable {
    /// How the filter's resource name is compared (Kafka's pattern-type filter values).
    public enum PatternFilter: Sendable, Equatable {
        /// Bindings of any pattern type whose name equals the filter's.
        case any
        /// Bindings that would apply to the resource named by the filter: literal equal or "*", or a prefix of it.
        case match
        case literal
        case prefixed
    }
    public var resourceType: AclResourceType?
    public var resourceName: String?
    public var patternType: PatternFilter
    public var principal: String?
    public var host: String?
    public var operation: AclOperation?
    public var permission: AclPermission?

    public init(
        resourceType: AclResourceType? = nil, resourceName: String? = nil, patternType: PatternFilter = .any, principal: String? = nil,
        host: String? = nil, operation: AclOperation? = nil, permission: AclPermission? = nil
    ) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// Every binding.
    public static let all = AclBindingFilter()

    /// A filter from the wire; ANY is 1 for each enum, UNKNOWN (0) and numbers Kafka does not
    /// define are refused.
    public init(wire f: AclFilter) throws(AclValidationError) {
        switch f.resourceType {
        case 1: resourceType = nil
        default:
            guard let t = AclResourceType(code: f.resourceType) else { throw AclValidationError("resource type filter \(f.resourceType) is not valid") }
            resourceType = t
        }
        switch f.patternType {
        case 1: patternType = .any
        case 2: patternType = .match
        case 3: patternType = .literal
        case 4: patternType = .prefixed
        default: throw AclValidationError("pattern type filter \(f.patternType) is not valid")
        }
        switch f.operation {
        case 1: operation = nil
        default:
            guard let o = AclOperation(code: f.operation) else { throw AclValidationError("operation filter \(f.operation) is not valid") }
            operation = o
        }
        switch f.permissionType {
        case 1: permission = nil
        default:
            guard let p = AclPermission(code: f.permissionType) else { throw AclValidationError("permission type filter \(f.permissionType) is not valid") }
            permission = p
        }
        resourceName = f.resourceName
        principal = f.principal
        host = f.host
    }

    /// Kafka's `AclBindingFilter.matches`.
    public func matches(_ b: AclBinding) -> Bool {
        if let resourceType, resourceType != b.resourceType { return false }
        switch patternType {
        case .literal where b.patternType != .literal, .prefixed where b.patternType != .prefixed: return false
        default: break
        }
        if let resourceName {
            switch patternType {
            case .any, .literal, .prefixed:
                if resourceName != b.resourceName { return false }
            case .match:
                switch b.patternType {
                case .literal: if !(resourceName == b.resourceName || b.resourceName == "*") { return false }
                case .prefixed: if !resourceName.hasPrefix(b.resourceName) { return false }
                }
            }
        }
        if let principal, principal != b.principal { return false }
        if let host, host != b.host { return false }
        if let operation, operation != b.operation { return false }
        if let permission, permission != b.permission { return false }
        return true
    }
}
