import NIOCore

/// ApiVersions request (key 18), v0–3; v3 is flexible.
public struct ApiVersionsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.apiVersions
    public var clientSoftwareName: String?
    public var clientSoftwareVersion: String?

    public init(clientSoftwareName: String? = nil, clientSoftwareVersion: String? = nil) {
        self.clientSoftwareName = clientSoftwareName
        self.clientSoftwareVersion = clientSoftwareVersion
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        var r = Self()
        if version >= 3 {
            r.clientSoftwareName = try buffer.decodeCompactString()
            r.clientSoftwareVersion = try buffer.decodeCompactString()
            try buffer.skipTaggedFields()
        }
        return r
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 3 {
            buffer.encodeCompactNullableString(clientSoftwareName ?? "")
            buffer.encodeCompactNullableString(clientSoftwareVersion ?? "")
            buffer.encodeEmptyTaggedFields()
        }
    }
}

/// ApiVersions response. Its header is always v0.
public struct ApiVersionsResponse: KafkaResponseMessage, Equatable {
    public struct ApiVersion: Sendable, Equatable {
        public var apiKey: Int16
        public var minVersion: Int16
        public var maxVersion: Int16
        public init(apiKey: Int16, minVersion: Int16, maxVersion: Int16) {
            self.apiKey = apiKey
            self.minVersion = minVersion
            self.maxVersion = maxVersion
        }
    }
    public var errorCode: ErrorCode
    public var apiKeys: [ApiVersion]
    public var throttleTimeMs: Int32

    public init(errorCode: ErrorCode, apiKeys: [ApiVersion], throttleTimeMs: Int32 = 0) {
        self.errorCode = errorCode
        self.apiKeys = apiKeys
        self.throttleTimeMs = throttleTimeMs
    }

    /// Every API and version range this broker implements.
    public static func supported(errorCode: ErrorCode = .none) -> Self {
        Self(
            errorCode: errorCode,
            apiKeys: ApiKey.allCases.map {
                ApiVersion(apiKey: $0.rawValue, minVersion: $0.supportedVersions.lowerBound, maxVersion: $0.supportedVersions.upperBound)
            })
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 3
        buffer.encodeErrorCode(errorCode)
        buffer.encodeArray(apiKeys, flexible: flexible) { b, k in
            b.encodeInt16(k.apiKey)
            b.encodeInt16(k.minVersion)
            b.encodeInt16(k.maxVersion)
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 3
        let error = try buffer.decodeErrorCode()
        let keys = try buffer.decodeArray(flexible: flexible) { b in
            let k = ApiVersion(apiKey: try b.decodeInt16(), minVersion: try b.decodeInt16(), maxVersion: try b.decodeInt16())
            if flexible { try b.skipTaggedFields() }
            return k
        }
        var throttle: Int32 = 0
        if version >= 1 { throttle = try buffer.decodeInt32() }
        if flexible { try buffer.skipTaggedFields() }
        return Self(errorCode: error, apiKeys: keys, throttleTimeMs: throttle)
    }
}
