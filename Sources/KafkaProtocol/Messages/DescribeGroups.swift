import NIOCore

/// DescribeGroups request (key 15), v0–4.
public struct DescribeGroupsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.describeGroups
    public var groups: [String]
    public var includeAuthorizedOperations: Bool
    public init(groups: [String], includeAuthorizedOperations: Bool = false) {
        self.groups = groups
        self.includeAuthorizedOperations = includeAuthorizedOperations
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let groups = try buffer.decodeArray { try $0.decodeString() }
        let ops = version >= 3 ? try buffer.decodeBool() : false
        return Self(groups: groups, includeAuthorizedOperations: ops)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeArray(groups) { $0.encodeString($1) }
        if version >= 3 { buffer.encodeBool(includeAuthorizedOperations) }
    }
}

/// DescribeGroups response.
public struct DescribeGroupsResponse: KafkaResponseMessage, Equatable {
    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        public var memberMetadata: [UInt8]
        public var memberAssignment: [UInt8]
        public init(memberId: String, groupInstanceId: String?, clientId: String, clientHost: String, memberMetadata: [UInt8], memberAssignment: [UInt8]) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
            self.clientId = clientId
            self.clientHost = clientHost
            self.memberMetadata = memberMetadata
            self.memberAssignment = memberAssignment
        }
    }
    public struct Group: Sendable, Equatable {
        public var errorCode: ErrorCode
        public var groupId: String
        public var groupState: String
        public var protocolType: String
        public var protocolData: String
        public var members: [Member]
        /// v3+: the operations the requesting principal may perform on this group (bit n set: ACL
        /// operation code n allowed); Int32.min when the client did not ask (`includeAuthorizedOperations`).
        public var authorizedOperations: Int32 = Int32.min
        public init(errorCode: ErrorCode, groupId: String, groupState: String, protocolType: String, protocolData: String, members: [Member]) {
            self.errorCode = errorCode
            self.groupId = groupId
            self.groupState = groupState
            self.protocolType = protocolType
            self.protocolData = protocolData
            self.members = members
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var groups: [Group]
    public init(groups: [Group]) { self.groups = groups }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeArray(groups) { b, g in
            b.encodeErrorCode(g.errorCode)
            b.encodeString(g.groupId)
            b.encodeString(g.groupState)
            b.encodeString(g.protocolType)
            b.encodeString(g.protocolData)
            b.encodeArray(g.members) { b, m in
                b.encodeString(m.memberId)
                if version >= 4 { b.encodeNullableString(m.groupInstanceId) }
                b.encodeString(m.clientId)
                b.encodeString(m.clientHost)
                b.encodeBytes(m.memberMetadata)
                b.encodeBytes(m.memberAssignment)
            }
            if version >= 3 { b.encodeInt32(g.authorizedOperations) }
        }
    }
}
