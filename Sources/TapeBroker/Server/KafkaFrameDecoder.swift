import NIOCore

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

    public init(maxFrameBytes: Int) { self.maxFrameBytes = maxFrameBytes }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else { return nil }
        guard size >= 0, Int(size) <= maxFrameBytes else { throw FrameSizeError(size: size, maxFrameBytes: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}
