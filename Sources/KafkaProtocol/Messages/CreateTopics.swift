import NIOCore

/// CreateTopics request (key 19), v0–4.
public struct CreateTopicsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.createTopics
    public struct Assignment: Sendable, Equatable {
        public var partitionIndex: Int32
        public var brokerIds: [Int32]
    }
    public struct Config: Sendable, Equatable {
        public var name: String
        public var value: String?
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }
    public struct Topic: Sendable, Equatable {
        public var name: String
        public var numPartitions: Int32
        public var replicationFactor: Int16
        public var assignments: [Assignment]
        public var configs: [Config]
        public init(name: String, numPartitions: Int32, replicationFactor: Int16, assignments: [Assignment] = [], configs: [Config] = []) {
            self.name = name
            self.numPartitions = numPartitions
            self.replicationFactor = replicationFactor
            self.assignments = assignments
            self.configs = configs
        }
    }
    public var topics: [Topic]
    public var timeoutMs: Int32
    public var validateOnly: Bool

    public init(topics: [Topic], timeoutMs: Int32 = 30000, validateOnly: Bool = false) {
        self.topics = topics
        self.timeoutMs = timeoutMs
        self.validateOnly = validateOnly
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let topics = try buffer.decodeArray { b in
            Topic(
                name: try b.decodeString(),
                numPartitions: try b.decodeInt32(),
                replicationFactor: try b.decodeInt16(),
                assignments: try b.decodeArray { b in
                    Assignment(partitionIndex: try b.decodeInt32(), brokerIds: try b.decodeArray { try $0.decodeInt32() })
                },
                configs: try b.decodeArray { b in Config(name: try b.decodeString(), value: try b.decodeNullableString()) })
        }
        let timeout = try buffer.decodeInt32()
        let validateOnly = version >= 1 ? try buffer.decodeBool() : false
        return Self(topics: topics, timeoutMs: timeout, validateOnly: validateOnly)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeArray(topics) { b, t in
            b.encodeString(t.name)
            b.encodeInt32(t.numPartitions)
            b.encodeInt16(t.replicationFactor)
            b.encodeArray(t.assignments) { b, a in
                b.encodeInt32(a.partitionIndex)
                b.encodeArray(a.brokerIds) { $0.encodeInt32($1) }
            }
            b.encodeArray(t.configs) { b, c in
                b.encodeString(c.name)
                b.encodeNullableString(c.value)
            }
        }
        buffer.encodeInt32(timeoutMs)
        if version >= 1 { buffer.encodeBool(validateOnly) }
    }
}

/// CreateTopics response.
public struct CreateTopicsResponse: KafkaResponseMessage, Equatable {
    public struct Topic: Sendable, Equatable {
        public var name: String
        public var errorCode: ErrorCode
        public var errorMessage: String?
        public init(name: String, errorCode: ErrorCode, errorMessage: String? = nil) {
            self.name = name
            self.errorCode = errorCode
            self.errorMessage = errorMessage
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var topics: [Topic]
    public init(topics: [Topic]) { self.topics = topics }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 2 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeArray(topics) { b, t in
            b.encodeString(t.name)
            b.encodeErrorCode(t.errorCode)
            if version >= 1 { b.encodeNullableString(t.errorMessage) }
        }
    }
}
