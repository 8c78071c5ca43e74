import NIOCore

/// AlterConfigs request (key 33), v0–2 (v2+ flexible): replaces a resource's whole set of dynamic
/// configs (keys left out revert to their defaults).
public struct AlterConfigsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.alterConfigs
    public struct Config: Sendable, Equatable {
        public var name: String
        public var value: String?
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }
    public struct Resource: Sendable, Equatable {
        public var resourceType: Int8
        public var resourceName: String
        public var configs: [Config]
        public init(resourceType: Int8, resourceName: String, configs: [Config]) {
            self.resourceType = resourceType
            self.resourceName = resourceName
            self.configs = configs
        }
    }
    public var resources: [Resource]
    public var validateOnly: Bool
    public init(resources: [Resource], validateOnly: Bool = false) {
        self.resources = resources
        self.validateOnly = validateOnly
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let resources = try buffer.decodeArray(flexible: flexible) { b in
            let type = try b.decodeInt8()
            let name = try b.decodeString(flexible: flexible)
            let configs = try b.decodeArray(flexible: flexible) { b in
                let c = Config(name: try b.decodeString(flexible: flexible), value: try b.decodeNullableString(flexible: flexible))
                if flexible { try b.skipTaggedFields() }
                return c
            }
            if flexible { try b.skipTaggedFields() }
            return Resource(resourceType: type, resourceName: name, configs: configs)
        }
        let validateOnly = try buffer.decodeBool()
        if flexible { try buffer.skipTaggedFields() }
        return Self(resources: resources, validateOnly: validateOnly)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeArray(resources, flexible: flexible) { b, r in
            b.encodeInt8(r.resourceType)
            b.encodeString(r.resourceName, flexible: flexible)
            b.encodeArray(r.configs, flexible: flexible) { b, c in
                b.encodeString(c.name, flexible: flexible)
                b.encodeNullableString(c.value, flexible: flexible)
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        buffer.encodeBool(validateOnly)
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// The result of altering one resource's configs: the response body of AlterConfigs and of
/// IncrementalAlterConfigs (same shape).
public struct AlterConfigsResourceResponse: Sendable, Equatable {
    public var errorCode: ErrorCode
    public var errorMessage: String?
    public var resourceType: Int8
    public var resourceName: String
    public init(errorCode: ErrorCode, errorMessage: String? = nil, resourceType: Int8, resourceName: String) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.resourceType = resourceType
        self.resourceName = resourceName
    }

    static func encode(_ responses: [Self], throttleTimeMs: Int32, flexible: Bool, into buffer: inout ByteBuffer) {
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(responses, flexible: flexible) { b, r in
            b.encodeErrorCode(r.errorCode)
            b.encodeNullableString(r.errorMessage, flexible: flexible)
            b.encodeInt8(r.resourceType)
            b.encodeString(r.resourceName, flexible: flexible)
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    static func decode(from buffer: inout ByteBuffer, flexible: Bool) throws -> (Int32, [Self]) {
        let throttle = try buffer.decodeInt32()
        let responses = try buffer.decodeArray(flexible: flexible) { b in
            let r = Self(
                errorCode: try b.decodeErrorCode(), errorMessage: try b.decodeNullableString(flexible: flexible), resourceType: try b.decodeInt8(),
                resourceName: try b.decodeString(flexible: flexible))
            if flexible { try b.skipTaggedFields() }
            return r
        }
        if flexible { try buffer.skipTaggedFields() }
        return (throttle, responses)
    }
}

/// AlterConfigs response.
public struct AlterConfigsResponse: KafkaResponseMessage, Equatable {
    public var throttleTimeMs: Int32 = 0
    public var responses: [AlterConfigsResourceResponse]
    public init(responses: [AlterConfigsResourceResponse]) { self.responses = responses }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        AlterConfigsResourceResponse.encode(responses, throttleTimeMs: throttleTimeMs, flexible: version >= 2, into: &buffer)
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let (throttle, responses) = try AlterConfigsResourceResponse.decode(from: &buffer, flexible: version >= 2)
        var r = Self(responses: responses)
        r.throttleTimeMs = throttle
        return r
    }
}
