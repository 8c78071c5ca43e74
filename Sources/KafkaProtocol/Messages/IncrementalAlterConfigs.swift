import NIOCore

/// IncrementalAlterConfigs request (key 44), v0–1 (v1+ flexible): changes single configs of a
/// resource with SET (0), DELETE (1), APPEND (2) or SUBTRACT (3).
public struct IncrementalAlterConfigsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.incrementalAlterConfigs
    public static let set: Int8 = 0
    public static let delete: Int8 = 1
    public static let append: Int8 = 2
    public static let subtract: Int8 = 3
    public struct Config: Sendable, Equatable {
        public var name: String
        public var operation: Int8
        public var value: String?
        public init(name: String, operation: Int8, value: String?) {
            self.name = name
            self.operation = operation
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
        let flexible = version >= 1
        let resources = try buffer.decodeArray(flexible: flexible) { b in
            let type = try b.decodeInt8()
            let name = try b.decodeString(flexible: flexible)
            let configs = try b.decodeArray(flexible: flexible) { b in
                let c = Config(
                    name: try b.decodeString(flexible: flexible), operation: try b.decodeInt8(), value: try b.decodeNullableString(flexible: flexible))
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
        let flexible = version >= 1
        buffer.encodeArray(resources, flexible: flexible) { b, r in
            b.encodeInt8(r.resourceType)
            b.encodeString(r.resourceName, flexible: flexible)
            b.encodeArray(r.configs, flexible: flexible) { b, c in
                b.encodeString(c.name, flexible: flexible)
                b.encodeInt8(c.operation)
                b.encodeNullableString(c.value, flexible: flexible)
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        buffer.encodeBool(validateOnly)
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// IncrementalAlterConfigs response.
public struct IncrementalAlterConfigsResponse: KafkaResponseMessage, Equatable {
    public var throttleTimeMs: Int32 = 0
    public var responses: [AlterConfigsResourceResponse]
    public init(responses: [AlterConfigsResourceResponse]) { self.responses = responses }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        AlterConfigsResourceResponse.encode(responses, throttleTimeMs: throttleTimeMs, flexible: version >= 1, into: &buffer)
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let (throttle, responses) = try AlterConfigsResourceResponse.decode(from: &buffer, flexible: version >= 1)
        var r = Self(responses: responses)
        r.throttleTimeMs = throttle
        return r
    }
}
