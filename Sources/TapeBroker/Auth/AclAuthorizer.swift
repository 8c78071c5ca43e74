/// Decides whether a principal may perform an operation on a resource, by Kafka's `AclAuthorizer`
/// rules. A value with no I/O: the broker builds one from the ACL store and its settings.
///
/// - super users may do everything;
/// - when no ACL covers the resource at all, the answer is `allowEveryoneIfNoAclFound`;
/// - a DENY that matches (principal exactly or `User:*`, host exactly or `*`, operation or ALL) wins;
/// - else an ALLOW that matches, where ALLOW of READ/WRITE/DELETE/ALTER implies DESCRIBE and ALLOW
///   of ALTER_CONFIGS implies DESCRIBE_CONFIGS.
public struct AclAuthorizer: Sendable {
    public var bindings: [AclBinding]
    public var superUsers: Set<String>
    /// Kafka's `allow.everyone.if.no.acl.found`. Default false.
    public var allowEveryoneIfNoAclFound: Bool

    /// Every principal: ACLs for "User:*" apply to all.
    public static let wildcardPrincipal = "User:*"
    /// The principal of a connection that did not authenticate (PLAINTEXT, or TLS without a client certificate).
    public static let anonymous = "User:ANONYMOUS"

    public init(bindings: [AclBinding], superUsers: Set<String> = [], allowEveryoneIfNoAclFound: Bool = false) {
        self.bindings = bindings
        self.superUsers = superUsers
        self.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
    }

    /// The address an ACL host is compared with: the client's address without the "/" NIO-style prefix.
    static func normalizedHost(_ host: String) -> String { host.hasPrefix("/") ? String(host.dropFirst()) : host }

    private func applies(_ b: AclBinding, principal: String, host: String) -> Bool {
        (b.principal == principal || b.principal == Self.wildcardPrincipal) && (b.host == "*" || b.host == host)
    }

    /// Whether `principal` connecting from `host` may perform `operation` on the resource.
    public func authorize(principal: String, host: String, operation: AclOperation, resourceType: AclResourceType, resourceName: String) -> Bool {
        if superUsers.contains(principal) { return true }
        let host = Self.normalizedHost(host)
        let covering = bindings.filter { $0.covers(resourceType, resourceName) }
        if covering.isEmpty { return allowEveryoneIfNoAclFound }
        let relevant = covering.filter { applies($0, principal: principal, host: host) }
        if relevant.contains(where: { $0.permission == .deny && ($0.operation == operation || $0.operation == .all) }) { return false }
        let allowing = operation.allowedBy
        return relevant.contains { $0.permission == .allow && allowing.contains($0.operation) }
    }

    /// Whether `principal` may perform `operation` on at least one resource of `resourceType`
    /// (Kafka's `authorizeByResourceType`, used for idempotent producers: WRITE on any topic).
    /// A DENY on every name ("*" literal or "" prefixed) refuses; an ALLOW on some name allows;
    /// with no ACL of that type at all, `allowEveryoneIfNoAclFound` decides.
    public func authorizeAny(principal: String, host: String, operation: AclOperation, resourceType: AclResourceType) -> Bool {
        if superUsers.contains(principal) { return true }
        let host = Self.normalizedHost(host)
        let ofType = bindings.filter { $0.resourceType == resourceType }
        let relevant = ofType.filter { applies($0, principal: principal, host: host) && ($0.operation == operation || $0.operation == .all) }
        let deniesAll = relevant.contains { b in
            b.permission == .deny && ((b.patternType == .literal && b.resourceName == "*") || (b.patternType == .prefixed && b.resourceName.isEmpty))
        }
        if deniesAll { return false }
        if relevant.contains(where: { $0.permission == .allow }) { return true }
        return ofType.isEmpty && allowEveryoneIfNoAclFound
    }
}
