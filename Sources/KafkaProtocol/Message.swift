import NIOCore

/// A request payload: decoded by the broker, encoded by clients and tests.
public protocol KafkaRequestMessage: Sendable, Equatable {
    static var apiKey: ApiKey { get }
    static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self
    func encode(into buffer: inout ByteBuffer, version: Int16)
}

/// A response payload: encoded by the broker.
public protocol KafkaResponseMessage: Sendable {
    func encode(into buffer: inout ByteBuffer, version: Int16)
}
