import NIOCore
import Synchronization

/// A request frame's size prefix was negative or beyond the cap.
public struct FrameSizeError: Error, Sendable, CustomStringConvertible {
    public var size: Int32
    public var maxFrameBytes: Int
    public var description: String { "request frame size \(size) is outside 0...\(maxFrameBytes)" }
}

/// Splits the byte stream into Kafka frames: a 4-byte big-endian size, then that many bytes.
/// Leaves the reader index alone on a short frame and rejects sizes beyond `maxFrameBytes`
/// before buffering them.
public struct KafkaFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let maxFrameBytes: Int
    /// A lower cap while the connection has not authenticated (SASL), lifted by the server.
    public let unauthenticatedLimit: UnauthenticatedFrameLimit?

    public init(maxFrameBytes: Int, unauthenticatedLimit: UnauthenticatedFrameLimit? = nil) {
        self.maxFrameBytes = maxFrameBytes
        self.unauthenticatedLimit = unauthenticatedLimit
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else { return nil }
        let cap = unauthenticatedLimit?.current.map { min($0, maxFrameBytes) } ?? maxFrameBytes
        guard size >= 0, Int(size) <= cap else { throw FrameSizeError(size: size, maxFrameBytes: cap) }
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

/// The frame cap of a connection that has not authenticated yet (Kafka's
/// `sasl.server.max.receive.size`): larger frames are refused before they are buffered.
public final class UnauthenticatedFrameLimit: Sendable {
    private let bytes: Synchronization.Atomic<Int>
    public init(bytes: Int) { self.bytes = Synchronization.Atomic(bytes) }
    /// nil once lifted.
    public var current: Int? {
        let b = bytes.load(ordering: .relaxed)
        return b < 0 ? nil : b
    }
    /// The connection authenticated: only `maxFrameBytes` applies from now on.
    public func lift() { bytes.store(-1, ordering: .relaxed) }
}
