import NIOCore

/// DeleteTopics request (key 20), v0–3.
public struct DeleteTopicsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.deleteTopics
    public var topicNames: [String]
    public var timeoutMs: Int32
    public init(topicNames: [String], timeoutMs: Int32 = 30000) {
        self.topicNames = topicNames
        self.timeoutMs = timeoutMs
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        Self(topicNames: try buffer.decodeArray { try $0.decodeString() }, timeoutMs: try buffer.decodeInt32())
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeArray(topicNames) { $0.encodeString($1) }
        buffer.encodeInt32(timeoutMs)
    }
}

/// DeleteTopics response.
public struct DeleteTopicsResponse: KafkaResponseMessage, Equatable {
    public struct Result: Sendable, Equatable {
        public var name: String
        public var errorCode: ErrorCode
        public init(name: String, errorCode: ErrorCode) {
            self.name = name
            self.errorCode = errorCode
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var responses: [Result]
    public init(responses: [Result]) { self.responses = responses }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 1 { buffer.encodeInt32(throttleTimeMs) }
        buffer.encodeArray(responses) { b, r in
            b.encodeString(r.name)
            b.encodeErrorCode(r.errorCode)
        }
    }
}
