import NIOCore

/// Metadata request (key 3), v0–8.
public struct MetadataRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.metadata
    /// Topics asked for; nil means all topics (v1+; in v0 an empty list means all).
    public var topics: [String]?
    public var allowAutoTopicCreation: Bool
    public var includeClusterAuthorizedOperations: Bool
    public var includeTopicAuthorizedOperations: Bool

    public init(
        topics: [String]?, allowAutoTopicCreation: Bool = true, includeClusterAuthorizedOperations: Bool = false, includeTopicAuthorizedOperations: Bool = false
    ) {
        self.topics = topics
        self.allowAutoTopicCreation = allowAutoTopicCreation
        self.includeClusterAuthorizedOperations = includeClusterAuthorizedOperations
        self.includeTopicAuthorizedOperations = includeTopicAuthorizedOperations
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        var topics = try buffer.decodeNullableArray { try $0.decodeString() }
        if version == 0, topics?.isEmpty == true { topics = nil }
        var r = Self(topics: topics)
        if version >= 4 { r.allowAutoTopicCreation = try buffer.decodeBool() }
        if version >= 8 {
            r.includeClusterAuthorizedOperations = try buffer.decodeBool()
            r.includeTopicAuthorizedOperations = try buffer.decodeBool()
        }
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version == 0 {
            buffer.encodeArray(topics ?? []) { $0.encodeString($1) }
        } else {
            buffer.encodeNullableArray(topics) { $0.encodeString($1) }
        }
        if version >= 4 { buffer.encodeBool(allowAutoTopicCreation) }
        if version >= 8 {
            buffer.encodeBool(includeClusterAuthorizedOperations)
            buffer.encodeBool(includeTopicAuthorizedOperations)
        }
    }
}

/// Metadata response.
public struct MetadataResponse: KafkaResponseMessage, Equatable {
    public struct Broker: Sendable, Equatable {
        public var nodeId: Int32
        public var host: String
        public var port: Int32
        public var rack: String?
        public init(nodeId: Int32, host: String, port: Int32, rack: String? = nil) {
            self.nodeId = nodeId
            self.host = host
            self.port = port
            self.rack = rack
        }
    }
    public struct Partition: Sendable, Equatable {
        public var errorCode: ErrorCode
        public var partitionIndex: Int32
        public var leaderId: Int32
        public var leaderEpoch: Int32
        public var replicaNodes: [Int32]
        public var isrNodes: [Int32]
        public var offlineReplicas: [Int32]
        public init(
            errorCode: ErrorCode = .none, partitionIndex: Int32, leaderId: Int32, leaderEpoch: Int32 = 0, replicaNodes: [Int32], isrNodes: [Int32],
            offlineReplicas: [Int32] = []
        ) {
            self.errorCode = errorCode
            self.partitionIndex = partitionIndex
            self.leaderId = leaderId
            self.leaderEpoch = leaderEpoch
            self.replicaNodes = replicaNodes
            self.isrNodes = isrNodes
            self.offlineReplicas = offlineReplicas
        }
    }
    public struct Topic: Sendable, Equatable {
        public var errorCode: ErrorCode
        public var name: String
        public var isInternal: Bool
        public var partitions: [Partition]
        /// v8+: the operations the requesting principal may perform on this topic (bit n set: ACL
        /// operation code n allowed); Int32.min when the client did not ask (`includeTopicAuthorizedOperations`).
        public var topicAuthorizedOperations: Int32 = Int32.min
        public init(errorCode: ErrorCode, name: String, isInternal: Bool = false, partitions: [Partition]) {
            self.errorCode = errorCode
            self.name = name
            self.isInternal = isInternal
            self.partitions = partitions
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var brokers: [Broker]
    public var clusterId: String?
    public var controllerId: Int32
    public var topics: [Topic]
    /// v8+: the operations allowed on the cluster (a bitfield of ACL operation codes); Int32.min
    /// when the client did not ask (`includeClusterAuthorizedOperations`).
    public var clusterAuthorizedOperations: Int32 = Int32.min

    public init(brokers: [Broker], clusterId: String?, controllerId: Int32, topics: [Topic]) {
        self.brokers = brokers
        self.clusterId = clusterId
        self.controllerId = controllerId
        self.topics = topics
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 3 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeArray(brokers) { b, broker in
            b.encodeInt32(broker.nodeId)
            b.encodeString(broker.host)
            b.encodeInt32(broker.port)
            if version >= 1 { b.encodeNullableString(broker.rack) }
        }
        if version >= 2 { buffer.encodeNullableString(clusterId) }
        if version >= 1 { buffer.encodeInt32(controllerId) }
        buffer.encodeArray(topics) { b, t in
            b.encodeErrorCode(t.errorCode)
            b.encodeString(t.name)
            if version >= 1 { b.encodeBool(t.isInternal) }
            b.encodeArray(t.partitions) { b, p in
                b.encodeErrorCode(p.errorCode)
                b.encodeInt32(p.partitionIndex)
                b.encodeInt32(p.leaderId)
                if version >= 7 { b.encodeInt32(p.leaderEpoch) }
                b.encodeArray(p.replicaNodes) { $0.encodeInt32($1) }
                b.encodeArray(p.isrNodes) { $0.encodeInt32($1) }
                if version >= 5 { b.encodeArray(p.offlineReplicas) { $0.encodeInt32($1) } }
            }
            if version >= 8 { b.encodeInt32(t.topicAuthorizedOperations) }
        }
        if version >= 8 { buffer.encodeInt32(clusterAuthorizedOperations) }
    }
}
