import NIOCore

/// ListGroups request (key 16), v0–5; v3+ is flexible, v4 adds a filter on group states, v5 one
/// on group types.
public struct ListGroupsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.listGroups
    /// v4+: only groups in one of these states (Kafka's names, matched case-insensitively); empty = all.
    public var statesFilter: [String]
    /// v5+: only groups of one of these types (Classic, Consumer, Share; case-insensitive); empty = all.
    public var typesFilter: [String]
    public init(statesFilter: [String] = [], typesFilter: [String] = []) {
        self.statesFilter = statesFilter
        self.typesFilter = typesFilter
    }
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        var r = Self()
        if version >= 4 { r.statesFilter = try buffer.decodeCompactArray { try $0.decodeCompactString() } }
        if version >= 5 { r.typesFilter = try buffer.decodeCompactArray { try $0.decodeCompactString() } }
        if version >= 3 { try buffer.skipTaggedFields() }
        return r
    }
    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 4 { buffer.encodeCompactNullableArray(statesFilter) { $0.encodeCompactNullableString($1) } }
        if version >= 5 { buffer.encodeCompactNullableArray(typesFilter) { $0.encodeCompactNullableString($1) } }
        if version >= 3 { buffer.encodeEmptyTaggedFields() }
    }
}

/// ListGroups response.
public struct ListGroupsResponse: KafkaResponseMessage, Equatable {
    public struct Group: Sendable, Equatable {
        public var groupId: String
        public var protocolType: String
        /// v4+: the group's state (Kafka's names: Empty, Stable, PreparingRebalance, …).
        public var groupState: String
        /// v5+: the group's type (Classic for the JoinGroup/SyncGroup protocol).
        public var groupType: String
        public init(groupId: String, protocolType: String, groupState: String = "", groupType: String = "") {
            self.groupId = groupId
            self.protocolType = protocolType
            self.groupState = groupState
            self.groupType = groupType
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
        let flexible = version >= 3
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeErrorCode(errorCode)
        buffer.encodeArray(groups, flexible: flexible) { b, g in
            b.encodeString(g.groupId, flexible: flexible)
            b.encodeString(g.protocolType, flexible: flexible)
            if version >= 4 { b.encodeString(g.groupState, flexible: flexible) }
            if version >= 5 { b.encodeString(g.groupType, flexible: flexible) }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 3
        let throttle = version >= 1 ? try buffer.decodeInt32() : 0
        let code = try buffer.decodeErrorCode()
        let groups = try buffer.decodeArray(flexible: flexible) { b in
            var g = Group(groupId: try b.decodeString(flexible: flexible), protocolType: try b.decodeString(flexible: flexible))
            if version >= 4 { g.groupState = try b.decodeString(flexible: flexible) }
            if version >= 5 { g.groupType = try b.decodeString(flexible: flexible) }
            if flexible { try b.skipTaggedFields() }
            return g
        }
        if flexible { try buffer.skipTaggedFields() }
        var r = Self(errorCode: code, groups: groups)
        r.throttleTimeMs = throttle
        return r
    }
}
