import NIOCore

/// A request header, v1 (key, version, correlation id, client id) or v2 (v1 + tagged fields).
public struct RequestHeader: Sendable, Equatable {
    public var apiKey: Int16
    public var apiVersion: Int16
    public var correlationId: Int32
    public var clientId: String?

    public init(apiKey: Int16, apiVersion: Int16, correlationId: Int32, clientId: String?) {
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.correlationId = correlationId
        self.clientId = clientId
    }

    /// Decodes a header of the given version (0, 1 or 2).
    public static func decode(from buffer: inout ByteBuffer, headerVersion: Int16) throws -> RequestHeader {
        let key = try buffer.decodeInt16()
        let version = try buffer.decodeInt16()
        let correlationId = try buffer.decodeInt32()
        var clientId: String? = nil
        if headerVersion >= 1 {
            // client_id stays a classic nullable string even in header v2.
            clientId = try buffer.decodeNullableString()
        }
        if headerVersion >= 2 { try buffer.skipTaggedFields() }
        return RequestHeader(apiKey: key, apiVersion: version, correlationId: correlationId, clientId: clientId)
    }

    public func encode(into buffer: inout ByteBuffer, headerVersion: Int16) {
        buffer.encodeInt16(apiKey)
        buffer.encodeInt16(apiVersion)
        buffer.encodeInt32(correlationId)
        if headerVersion >= 1 { buffer.encodeNullableString(clientId) }
        if headerVersion >= 2 { buffer.encodeEmptyTaggedFields() }
    }
}

/// A response header: v0 (correlation id) or v1 (v0 + tagged fields).
public struct ResponseHeader: Sendable, Equatable {
    public var correlationId: Int32
    public init(correlationId: Int32) { self.correlationId = correlationId }

    public static func decode(from buffer: inout ByteBuffer, headerVersion: Int16) throws -> ResponseHeader {
        let id = try buffer.decodeInt32()
        if headerVersion >= 1 { try buffer.skipTaggedFields() }
        return ResponseHeader(correlationId: id)
    }

    public func encode(into buffer: inout ByteBuffer, headerVersion: Int16) {
        buffer.encodeInt32(correlationId)
        if headerVersion >= 1 { buffer.encodeEmptyTaggedFields() }
    }
}
