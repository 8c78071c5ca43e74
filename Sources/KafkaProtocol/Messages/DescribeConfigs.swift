import NIOCore

/// DescribeConfigs request (key 32), v0–2. Resource type 2 = topic, 4 = broker.
public struct DescribeConfigsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.describeConfigs
    public static let topicResource: Int8 = 2
    public static let brokerResource: Int8 = 4
    public struct Resource: Sendable, Equatable {
        public var resourceType: Int8
        public var resourceName: String
        public var configurationKeys: [String]?
        public init(resourceType: Int8, resourceName: String, configurationKeys: [String]? = nil) {
            self.resourceType = resourceType
            self.resourceName = resourceName
            self.configurationKeys = configurationKeys
        }
    }
    public var resources: [Resource]
    public var includeSynonyms: Bool
    public init(resources: [Resource], includeSynonyms: Bool = false) {
        self.resources = resources
        self.includeSynonyms = includeSynonyms
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let resources = try buffer.decodeArray { b in
            Resource(
                resourceType: try b.decodeInt8(), resourceName: try b.decodeString(), configurationKeys: try b.decodeNullableArray { try $0.decodeString() })
        }
        let synonyms = version >= 1 ? try buffer.decodeBool() : false
        return Self(resources: resources, includeSynonyms: synonyms)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeArray(resources) { b, r in
            b.encodeInt8(r.resourceType)
            b.encodeString(r.resourceName)
            b.encodeNullableArray(r.configurationKeys) { $0.encodeString($1) }
        }
        if version >= 1 { buffer.encodeBool(includeSynonyms) }
    }
}

/// DescribeConfigs response.
public struct DescribeConfigsResponse: KafkaResponseMessage, Equatable {
    public struct Config: Sendable, Equatable {
        public var name: String
        public var value: String?
        public var readOnly: Bool
        /// 1 = dynamic topic config, 4 = static broker config, 5 = default config.
        public var configSource: Int8
        public var isSensitive: Bool
        public init(name: String, value: String?, readOnly: Bool = false, configSource: Int8, isSensitive: Bool = false) {
            self.name = name
            self.value = value
            self.readOnly = readOnly
            self.configSource = configSource
            self.isSensitive = isSensitive
        }
    }
    public struct Result: Sendable, Equatable {
        public var errorCode: ErrorCode
        public var errorMessage: String?
        public var resourceType: Int8
        public var resourceName: String
        public var configs: [Config]
        public init(errorCode: ErrorCode, errorMessage: String? = nil, resourceType: Int8, resourceName: String, configs: [Config]) {
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.resourceType = resourceType
            self.resourceName = resourceName
            self.configs = configs
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var results: [Result]
    public init(results: [Result]) { self.results = results }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(results) { b, r in
            b.encodeErrorCode(r.errorCode)
            b.encodeNullableString(r.errorMessage)
            b.encodeInt8(r.resourceType)
            b.encodeString(r.resourceName)
            b.encodeArray(r.configs) { b, c in
                b.encodeString(c.name)
                b.encodeNullableString(c.value)
                b.encodeBool(c.readOnly)
                if version == 0 {
                    b.encodeBool(c.configSource == 5)
                } else {
                    b.encodeInt8(c.configSource)
                }
                b.encodeBool(c.isSensitive)
                if version >= 1 { b.encodeInt32(0) }  // synonyms
            }
        }
    }
}
