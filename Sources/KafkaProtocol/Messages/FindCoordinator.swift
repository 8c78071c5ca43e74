import NIOCore

/// FindCoordinator request (key 10), v0–2. keyType 0 = group, 1 = transaction.
public struct FindCoordinatorRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.findCoordinator
    public var key: String
    public var keyType: Int8
    public init(key: String, keyType: Int8 = 0) {
        self.key = key
        self.keyType = keyType
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let key = try buffer.decodeString()
        let type = version >= 1 ? try buffer.decodeInt8() : 0
        return Self(key: key, keyType: type)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(key)
        if version >= 1 { buffer.encodeInt8(keyType) }
    }
}

/// FindCoordinator response.
public struct FindCoordinatorResponse: KafkaResponseMessage, Equatable {
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var errorMessage: String?
    public var nodeId: Int32
    public var host: String
    public var port: Int32

    public init(errorCode: ErrorCode, errorMessage: String? = nil, nodeId: Int32, host: String, port: Int32) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.nodeId = nodeId
        self.host = host
        self.port = port
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeErrorCode(errorCode)
        if version >= 1 { buffer.encodeNullableString(errorMessage) }
        buffer.encodeInt32(nodeId)
        buffer.encodeString(host)
        buffer.encodeInt32(port)
    }
}
