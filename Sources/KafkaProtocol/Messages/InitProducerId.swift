import NIOCore

/// InitProducerId request (key 22), v0–1.
public struct InitProducerIdRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.initProducerId
    public var transactionalId: String?
    public var transactionTimeoutMs: Int32
    public init(transactionalId: String? = nil, transactionTimeoutMs: Int32 = 60000) {
        self.transactionalId = transactionalId
        self.transactionTimeoutMs = transactionTimeoutMs
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        Self(transactionalId: try buffer.decodeNullableString(), transactionTimeoutMs: try buffer.decodeInt32())
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeNullableString(transactionalId)
        buffer.encodeInt32(transactionTimeoutMs)
    }
}

/// InitProducerId response.
public struct InitProducerIdResponse: KafkaResponseMessage, Equatable {
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var producerId: Int64
    public var producerEpoch: Int16
    public init(errorCode: ErrorCode, producerId: Int64, producerEpoch: Int16) {
        self.errorCode = errorCode
        self.producerId = producerId
        self.producerEpoch = producerEpoch
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeErrorCode(errorCode)
        buffer.encodeInt64(producerId)
        buffer.encodeInt16(producerEpoch)
    }
}
