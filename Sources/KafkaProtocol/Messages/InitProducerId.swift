import NIOCore

/// InitProducerId request (key 22), v0–4; v2+ flexible, v3+ carries the producer's current id
/// and epoch (KIP-360), v4 answers PRODUCER_FENCED.
public struct InitProducerIdRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.initProducerId
    public var transactionalId: String?
    public var transactionTimeoutMs: Int32
    /// v3+: the producer's current id and epoch, -1 when it has none.
    public var producerId: Int64 = -1
    public var producerEpoch: Int16 = -1
    public init(transactionalId: String? = nil, transactionTimeoutMs: Int32 = 60000, producerId: Int64 = -1, producerEpoch: Int16 = -1) {
        self.transactionalId = transactionalId
        self.transactionTimeoutMs = transactionTimeoutMs
        self.producerId = producerId
        self.producerEpoch = producerEpoch
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = apiKey.isFlexible(version)
        var r = Self(transactionalId: try buffer.decodeNullableString(flexible: flexible), transactionTimeoutMs: try buffer.decodeInt32())
        if version >= 3 {
            r.producerId = try buffer.decodeInt64()
            r.producerEpoch = try buffer.decodeInt16()
        }
        if flexible { try buffer.skipTaggedFields() }
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = Self.apiKey.isFlexible(version)
        buffer.encodeNullableString(transactionalId, flexible: flexible)
        buffer.encodeInt32(transactionTimeoutMs)
        if version >= 3 {
            buffer.encodeInt64(producerId)
            buffer.encodeInt16(producerEpoch)
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
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
        if ApiKey.initProducerId.isFlexible(version) { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let throttle = try buffer.decodeInt32()
        var r = Self(errorCode: try buffer.decodeErrorCode(), producerId: try buffer.decodeInt64(), producerEpoch: try buffer.decodeInt16())
        r.throttleTimeMs = throttle
        if ApiKey.initProducerId.isFlexible(version) { try buffer.skipTaggedFields() }
        return r
    }
}
