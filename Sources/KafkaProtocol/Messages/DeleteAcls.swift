import NIOCore

/// DeleteAcls request (key 31), v0–3; v2+ is flexible. Each filter deletes every binding it matches.
public struct DeleteAclsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.deleteAcls
    public var filters: [AclFilter]
    public init(filters: [AclFilter]) { self.filters = filters }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let filters = try buffer.decodeArray(flexible: flexible) { b -> AclFilter in
            let f = try AclFilter.decode(from: &b, version: version)
            if flexible { try b.skipTaggedFields() }
            return f
        }
        if flexible { try buffer.skipTaggedFields() }
        return Self(filters: filters)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeArray(filters, flexible: flexible) { b, f in
            f.encode(into: &b, version: version)
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// DeleteAcls response: per filter, its error and the bindings it deleted.
public struct DeleteAclsResponse: KafkaResponseMessage, Equatable {
    public struct FilterResult: Sendable, Equatable {
        public var errorCode: ErrorCode
        public var errorMessage: String?
        public var matchingAcls: [MatchingAcl]
        public init(errorCode: ErrorCode, errorMessage: String? = nil, matchingAcls: [MatchingAcl] = []) {
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.matchingAcls = matchingAcls
        }
    }
    public struct MatchingAcl: Sendable, Equatable {
        public var errorCode: ErrorCode
        public var errorMessage: String?
        public var binding: AclBindingFields
        public init(errorCode: ErrorCode = .none, errorMessage: String? = nil, binding: AclBindingFields) {
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.binding = binding
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var filterResults: [FilterResult]
    public init(filterResults: [FilterResult]) { self.filterResults = filterResults }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(filterResults, flexible: flexible) { b, r in
            b.encodeErrorCode(r.errorCode)
            b.encodeNullableString(r.errorMessage, flexible: flexible)
            b.encodeArray(r.matchingAcls, flexible: flexible) { b, m in
                b.encodeErrorCode(m.errorCode)
                b.encodeNullableString(m.errorMessage, flexible: flexible)
                b.encodeInt8(m.binding.resourceType)
                b.encodeString(m.binding.resourceName, flexible: flexible)
                if version >= 1 { b.encodeInt8(m.binding.patternType) }
                b.encodeString(m.binding.principal, flexible: flexible)
                b.encodeString(m.binding.host, flexible: flexible)
                b.encodeInt8(m.binding.operation)
                b.encodeInt8(m.binding.permissionType)
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
        let results = try buffer.decodeArray(flexible: flexible) { b -> FilterResult in
            let code = try b.decodeErrorCode()
            let message = try b.decodeNullableString(flexible: flexible)
            let matches = try b.decodeArray(flexible: flexible) { b -> MatchingAcl in
                let code = try b.decodeErrorCode()
                let message = try b.decodeNullableString(flexible: flexible)
                let type = try b.decodeInt8()
                let name = try b.decodeString(flexible: flexible)
                let pattern = version >= 1 ? try b.decodeInt8() : 3
                let binding = AclBindingFields(
                    resourceType: type, resourceName: name, patternType: pattern, principal: try b.decodeString(flexible: flexible),
                    host: try b.decodeString(flexible: flexible), operation: try b.decodeInt8(), permissionType: try b.decodeInt8())
                if flexible { try b.skipTaggedFields() }
                return MatchingAcl(errorCode: code, errorMessage: message, binding: binding)
            }
            if flexible { try b.skipTaggedFields() }
            return FilterResult(errorCode: code, errorMessage: message, matchingAcls: matches)
        }
        if flexible { try buffer.skipTaggedFields() }
        var r = Self(filterResults: results)
        r.throttleTimeMs = throttle
        return r
    }
}
