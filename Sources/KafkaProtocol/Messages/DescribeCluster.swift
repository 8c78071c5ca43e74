import NIOCore

/// DescribeCluster request (key 60), v0–1; every version is flexible. v1 adds the endpoint type
/// (1 = brokers, 2 = controllers).
public struct DescribeClusterRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.describeCluster
    public var includeClusterAuthorizedOperations: Bool
    public var endpointType: Int8
    public init(includeClusterAuthorizedOperations: Bool = false, endpointType: Int8 = 1) {
        self.includeClusterAuthorizedOperations = includeClusterAuthorizedOperations
        self.endpointType = endpointType
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let include = try buffer.decodeBool()
        let endpoint = version >= 1 ? try buffer.decodeInt8() : 1
        try buffer.skipTaggedFields()
        return Self(includeClusterAuthorizedOperations: include, endpointType: endpoint)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeBool(includeClusterAuthorizedOperations)
        if version >= 1 { buffer.encodeInt8(endpointType) }
        buffer.encodeEmptyTaggedFields()
    }
}

/// DescribeCluster response.
public struct DescribeClusterResponse: KafkaResponseMessage, Equatable {
    public struct Broker: Sendable, Equatable {
        public var brokerId: Int32
        public var host: String
        public var port: Int32
        public var rack: String?
        public init(brokerId: Int32, host: String, port: Int32, rack: String? = nil) {
            self.brokerId = brokerId
            self.host = host
            self.port = port
            self.rack = rack
        }
    }
    /// Kafka's "not requested" value of the authorized-operations bitfield.
    public static let authorizedOperationsOmitted = Int32.min
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var errorMessage: String?
    public var endpointType: Int8
    public var clusterId: String
    public var controllerId: Int32
    public var brokers: [Broker]
    public var clusterAuthorizedOperations: Int32
    public init(
        errorCode: ErrorCode = .none, errorMessage: String? = nil, endpointType: Int8 = 1, clusterId: String, controllerId: Int32, brokers: [Broker],
        clusterAuthorizedOperations: Int32 = DescribeClusterResponse.authorizedOperationsOmitted
    ) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.endpointType = endpointType
        self.clusterId = clusterId
        self.controllerId = controllerId
        self.brokers = brokers
        self.clusterAuthorizedOperations = clusterAuthorizedOperations
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeErrorCode(errorCode)
        buffer.encodeCompactNullableString(errorMessage)
        if version >= 1 { buffer.encodeInt8(endpointType) }
        buffer.encodeCompactNullableString(clusterId)
        buffer.encodeInt32(controllerId)
        buffer.encodeCompactNullableArray(brokers) { b, broker in
            b.encodeInt32(broker.brokerId)
            b.encodeCompactNullableString(broker.host)
            b.encodeInt32(broker.port)
            b.encodeCompactNullableString(broker.rack)
            b.encodeEmptyTaggedFields()
        }
        buffer.encodeInt32(clusterAuthorizedOperations)
        buffer.encodeEmptyTaggedFields()
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let throttle = try buffer.decodeInt32()
        let code = try buffer.decodeErrorCode()
        let message = try buffer.decodeCompactNullableString()
        let endpoint = version >= 1 ? try buffer.decodeInt8() : 1
        let cluster = try buffer.decodeCompactString()
        let controller = try buffer.decodeInt32()
        let brokers = try buffer.decodeCompactArray { b in
            let broker = Broker(
                brokerId: try b.decodeInt32(), host: try b.decodeCompactString(), port: try b.decodeInt32(), rack: try b.decodeCompactNullableString())
            try b.skipTaggedFields()
            return broker
        }
        let ops = try buffer.decodeInt32()
        try buffer.skipTaggedFields()
        var r = Self(
            errorCode: code, errorMessage: message, endpointType: endpoint, clusterId: cluster, controllerId: controller, brokers: brokers,
            clusterAuthorizedOperations: ops)
        r.throttleTimeMs = throttle
        return r
    }
}
