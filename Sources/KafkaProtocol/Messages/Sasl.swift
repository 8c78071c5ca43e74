import NIOCore

/// SaslHandshake request (key 17), v0–1. v0 is followed by unframed SASL tokens (each a
/// size-prefixed blob without a request header); v1 by SaslAuthenticate requests.
public struct SaslHandshakeRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.saslHandshake
    public var mechanism: String
    public init(mechanism: String) { self.mechanism = mechanism }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        Self(mechanism: try buffer.decodeString())
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeString(mechanism)
    }
}

/// SaslHandshake response: the enabled mechanisms (always listed, also on error).
public struct SaslHandshakeResponse: KafkaResponseMessage, Equatable {
    public var errorCode: ErrorCode
    public var mechanisms: [String]
    public init(errorCode: ErrorCode, mechanisms: [String]) {
        self.errorCode = errorCode
        self.mechanisms = mechanisms
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeErrorCode(errorCode)
        buffer.encodeArray(mechanisms) { b, m in b.encodeString(m) }
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        Self(errorCode: try buffer.decodeErrorCode(), mechanisms: try buffer.decodeArray { try $0.decodeString() })
    }
}

/// SaslAuthenticate request (key 36), v0–2; v2 is flexible.
public struct SaslAuthenticateRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.saslAuthenticate
    public var authBytes: [UInt8]
    public init(authBytes: [UInt8]) { self.authBytes = authBytes }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        if version >= 2 {
            let r = Self(authBytes: try buffer.decodeCompactSaslBytes())
            try buffer.skipTaggedFields()
            return r
        }
        return Self(authBytes: try buffer.decodeBytes())
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        if version >= 2 {
            buffer.encodeCompactSaslBytes(authBytes)
            buffer.encodeEmptyTaggedFields()
        } else {
            buffer.encodeBytes(authBytes)
        }
    }
}

/// SaslAuthenticate response.
public struct SaslAuthenticateResponse: KafkaResponseMessage, Equatable {
    public var errorCode: ErrorCode
    public var errorMessage: String?
    public var authBytes: [UInt8]
    /// v1+: 0 means the session does not expire (no re-authentication).
    public var sessionLifetimeMs: Int64
    public init(errorCode: ErrorCode, errorMessage: String? = nil, authBytes: [UInt8] = [], sessionLifetimeMs: Int64 = 0) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.authBytes = authBytes
        self.sessionLifetimeMs = sessionLifetimeMs
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        let flexible = version >= 2
        buffer.encodeErrorCode(errorCode)
        buffer.encodeNullableString(errorMessage, flexible: flexible)
        if flexible { buffer.encodeCompactSaslBytes(authBytes) } else { buffer.encodeBytes(authBytes) }
        if version >= 1 { buffer.encodeInt64(sessionLifetimeMs) }
        if flexible { buffer.encodeEmptyTaggedFields() }
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let flexible = version >= 2
        let error = try buffer.decodeErrorCode()
        let message = try buffer.decodeNullableString(flexible: flexible)
        let bytes = flexible ? try buffer.decodeCompactSaslBytes() : try buffer.decodeBytes()
        let lifetime = version >= 1 ? try buffer.decodeInt64() : 0
        if flexible { try buffer.skipTaggedFields() }
        return Self(errorCode: error, errorMessage: message, authBytes: bytes, sessionLifetimeMs: lifetime)
    }
}

/// The SCRAM mechanisms as Kafka numbers them in the user SCRAM credential APIs.
public enum ScramMechanismCode: Int8, Sendable {
    case unknown = 0
    case scramSha256 = 1
    case scramSha512 = 2
}

/// DescribeUserScramCredentials request (key 50), v0 (flexible).
public struct DescribeUserScramCredentialsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.describeUserScramCredentials
    /// nil or empty: every user.
    public var users: [String]?
    public init(users: [String]?) { self.users = users }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let users = try buffer.decodeCompactNullableArray { b -> String in
            let name = try b.decodeCompactString()
            try b.skipTaggedFields()
            return name
        }
        try buffer.skipTaggedFields()
        return Self(users: users)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeCompactNullableArray(users) { b, name in
            b.encodeCompactNullableString(name)
            b.encodeEmptyTaggedFields()
        }
        buffer.encodeEmptyTaggedFields()
    }
}

/// DescribeUserScramCredentials response.
public struct DescribeUserScramCredentialsResponse: KafkaResponseMessage, Equatable {
    public struct CredentialInfo: Sendable, Equatable {
        public var mechanism: Int8
        public var iterations: Int32
        public init(mechanism: Int8, iterations: Int32) {
            self.mechanism = mechanism
            self.iterations = iterations
        }
    }
    public struct Result: Sendable, Equatable {
        public var user: String
        public var errorCode: ErrorCode
        public var errorMessage: String?
        public var credentials: [CredentialInfo]
        public init(user: String, errorCode: ErrorCode, errorMessage: String? = nil, credentials: [CredentialInfo] = []) {
            self.user = user
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.credentials = credentials
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var errorCode: ErrorCode
    public var errorMessage: String?
    public var results: [Result]
    public init(errorCode: ErrorCode, errorMessage: String? = nil, results: [Result]) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.results = results
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeErrorCode(errorCode)
        buffer.encodeCompactNullableString(errorMessage)
        buffer.encodeCompactNullableArray(results) { b, r in
            b.encodeCompactNullableString(r.user)
            b.encodeErrorCode(r.errorCode)
            b.encodeCompactNullableString(r.errorMessage)
            b.encodeCompactNullableArray(r.credentials) { b, c in
                b.encodeInt8(c.mechanism)
                b.encodeInt32(c.iterations)
                b.encodeEmptyTaggedFields()
            }
            b.encodeEmptyTaggedFields()
        }
        buffer.encodeEmptyTaggedFields()
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        _ = try buffer.decodeInt32()
        let error = try buffer.decodeErrorCode()
        let message = try buffer.decodeCompactNullableString()
        let results = try buffer.decodeCompactArray { b -> Result in
            let user = try b.decodeCompactString()
            let e = try b.decodeErrorCode()
            let m = try b.decodeCompactNullableString()
            let infos = try b.decodeCompactArray { b -> CredentialInfo in
                let c = CredentialInfo(mechanism: try b.decodeInt8(), iterations: try b.decodeInt32())
                try b.skipTaggedFields()
                return c
            }
            try b.skipTaggedFields()
            return Result(user: user, errorCode: e, errorMessage: m, credentials: infos)
        }
        try buffer.skipTaggedFields()
        return Self(errorCode: error, errorMessage: message, results: results)
    }
}

/// AlterUserScramCredentials request (key 51), v0 (flexible). The client sends the salted
/// password (PBKDF2 output), never the password itself.
public struct AlterUserScramCredentialsRequest: KafkaRequestMessage {
    public static let apiKey = ApiKey.alterUserScramCredentials
    public struct Deletion: Sendable, Equatable {
        public var name: String
        public var mechanism: Int8
        public init(name: String, mechanism: Int8) {
            self.name = name
            self.mechanism = mechanism
        }
    }
    public struct Upsertion: Sendable, Equatable {
        public var name: String
        public var mechanism: Int8
        public var iterations: Int32
        public var salt: [UInt8]
        public var saltedPassword: [UInt8]
        public init(name: String, mechanism: Int8, iterations: Int32, salt: [UInt8], saltedPassword: [UInt8]) {
            self.name = name
            self.mechanism = mechanism
            self.iterations = iterations
            self.salt = salt
            self.saltedPassword = saltedPassword
        }
    }
    public var deletions: [Deletion]
    public var upsertions: [Upsertion]
    public init(deletions: [Deletion], upsertions: [Upsertion]) {
        self.deletions = deletions
        self.upsertions = upsertions
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        let deletions = try buffer.decodeCompactArray { b -> Deletion in
            let d = Deletion(name: try b.decodeCompactString(), mechanism: try b.decodeInt8())
            try b.skipTaggedFields()
            return d
        }
        let upsertions = try buffer.decodeCompactArray { b -> Upsertion in
            let u = Upsertion(
                name: try b.decodeCompactString(), mechanism: try b.decodeInt8(), iterations: try b.decodeInt32(), salt: try b.decodeCompactSaslBytes(),
                saltedPassword: try b.decodeCompactSaslBytes())
            try b.skipTaggedFields()
            return u
        }
        try buffer.skipTaggedFields()
        // librdkafka (2.16 too) ends this request with a second, empty tagged-field section; Kafka
        // ignores it, so this skips exactly that one byte instead of refusing the request.
        if buffer.readableBytes == 1, buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0 { buffer.moveReaderIndex(forwardBy: 1) }
        return Self(deletions: deletions, upsertions: upsertions)
    }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeCompactNullableArray(deletions) { b, d in
            b.encodeCompactNullableString(d.name)
            b.encodeInt8(d.mechanism)
            b.encodeEmptyTaggedFields()
        }
        buffer.encodeCompactNullableArray(upsertions) { b, u in
            b.encodeCompactNullableString(u.name)
            b.encodeInt8(u.mechanism)
            b.encodeInt32(u.iterations)
            b.encodeCompactSaslBytes(u.salt)
            b.encodeCompactSaslBytes(u.saltedPassword)
            b.encodeEmptyTaggedFields()
        }
        buffer.encodeEmptyTaggedFields()
    }
}

/// AlterUserScramCredentials response: one result per user named in the request.
public struct AlterUserScramCredentialsResponse: KafkaResponseMessage, Equatable {
    public struct Result: Sendable, Equatable {
        public var user: String
        public var errorCode: ErrorCode
        public var errorMessage: String?
        public init(user: String, errorCode: ErrorCode, errorMessage: String? = nil) {
            self.user = user
            self.errorCode = errorCode
            self.errorMessage = errorMessage
        }
    }
    public var throttleTimeMs: Int32 = 0
    public var results: [Result]
    public init(results: [Result]) { self.results = results }

    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        buffer.encodeInt32(throttleTimeMs)
        buffer.encodeCompactNullableArray(results) { b, r in
            b.encodeCompactNullableString(r.user)
            b.encodeErrorCode(r.errorCode)
            b.encodeCompactNullableString(r.errorMessage)
            b.encodeEmptyTaggedFields()
        }
        buffer.encodeEmptyTaggedFields()
    }

    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        _ = try buffer.decodeInt32()
        let results = try buffer.decodeCompactArray { b -> Result in
            let r = Result(user: try b.decodeCompactString(), errorCode: try b.decodeErrorCode(), errorMessage: try b.decodeCompactNullableString())
            try b.skipTaggedFields()
            return r
        }
        try buffer.skipTaggedFields()
        return Self(results: results)
    }
}

extension ByteBuffer {
    /// COMPACT_BYTES: UNSIGNED_VARINT length+1, then the bytes (0, null, is rejected).
    mutating func decodeCompactSaslBytes() throws -> [UInt8] {
        let n = try decodeUnsignedVarint()
        guard n > 0 else { throw KafkaProtocolError(.invalidValue, "null where compact bytes are required") }
        let length = Int(n - 1)
        try need(length, "compact bytes")
        return readBytes(length: length) ?? []
    }

    mutating func encodeCompactSaslBytes(_ bytes: [UInt8]) {
        encodeUnsignedVarint(UInt32(truncatingIfNeeded: bytes.count + 1))
        writeBytes(bytes)
    }
}
