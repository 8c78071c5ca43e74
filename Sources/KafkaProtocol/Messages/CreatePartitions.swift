import NIOCore

/// CreatePartitions request (key 37), v0–3; v2+ is flexible. `count` is the topic's new total
/// partition count; `assignments` (nullable) names the replicas of each new partition.
public struct CreatePartitionsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.createPartitions
    public struct Topic: Sendable, Equatable {
        public var name: String
        public var count: Int32
        /// One broker-id list per new partition; nil lets the broker choose.
        public var assignments: [[Int32]]?
        public init(name: String, count: Int32, assignments: [[Int32]]? = nil) {
            self.name = name
            self.count = count
            self.assignments = assignments
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
        let flexible = version >= 2
        let topics = try buffer.decodeArray(flexible: flexible) { b in
            let name = try b.decodeString(flexible: flexible)
            let count = try b.decodeInt32()
            let assignment: (inout ByteBuffer) throws -> [Int32] = { b in
                let ids = try b.decodeArray(flexible: flexible) { try $0.decodeInt32() }
                if flexible { try b.skipTaggedFields() }
                return ids
            }
            let assignments = flexible ? try b.decodeCompactNullableArray(assignment) : try b.decodeNullableArray(assignment)
            if flexible { try b.skipTaggedFields() }
            return Topic(name: name, count: count, assignments: assignments)
        }
        let timeout = try buffer.decodeInt32()
        let validateOnly = try buffer.decodeBool()
        if flexible { try buffer.skipTaggedFields() }
        return Self(topics: topics, timeoutMs: timeout, validateOnly: validateOnly)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeArray(topics, flexible: flexible) { b, t in
            b.encodeString(t.name, flexible: flexible)
            b.encodeInt32(t.count)
            let assignment: (inout ByteBuffer, [Int32]) -> Void = { b, ids in
                b.encodeArray(ids, flexible: flexible) { $0.encodeInt32($1) }
                if flexible { b.encodeEmptyTaggedFields() }
            }
            if flexible { b.encodeCompactNullableArray(t.assignments, assignment) } else { b.encodeNullableArray(t.assignments, assignment) }
            if flexible { b.encodeEmptyTaggedFields() }
        }
        buffer.encodeInt32(timeoutMs)
        buffer.encodeBool(validateOnly)
        if flexible { buffer.encodeEmptyTaggedFields() }
    }
}

/// CreatePartitions response.
public struct CreatePartitionsResponse: KafkaResponseMessage, Equatable {
    public struct Result: Sendable, Equatable {
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
    public var results: [Result]
    public init(results: [Result]) { self.results = results }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeArray(results, flexible: flexible) { b, r in
            b.encodeString(r.name, flexible: flexible)
            b.encodeErrorCode(r.errorCode)
            b.encodeNullableString(r.errorMessage, flexible: flexible)
            if flexible { b.encodeEmptyTaggedFields() }
        }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    /// Reads what `encode` writes (clients and tests).
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let throttle = try buffer.decodeInt32()
        var r = Self(
            results: try buffer.decodeArray(flexible: flexible) { b in
                let result = Result(
                    name: try b.decodeString(flexible: flexible), errorCode: try b.decodeErrorCode(),
                    errorMessage: try b.decodeNullableString(flexible: flexible))
                if flexible { try b.skipTaggedFields() }
                return result
            })
        r.throttleTimeMs = throttle
        if flexible { try buffer.skipTaggedFields() }
        return r
    }
}
