import NIOCore

/// Bytes that real clients leave after a request body, which Kafka ignores (it never checks that a
/// request was read to its end) and Tape therefore accepts, each case narrowly: any other trailing
/// byte still makes the request invalid.
///
/// Both come from librdkafka 2.0.x (Debian's, which Tape itself links), whose buffer finalizer
/// appends the top-level tagged fields of every flexible request:
/// - ListGroups v3+ writes them once more itself: one extra empty tag section (`00`);
/// - OffsetFetch v6–7 asking for all topics reserves a 4-byte array count it never finalizes, so
///   `00 00 00 00` stands where a one-byte null count belongs, pushing `requireStable` (v7) and
///   the tags three bytes further.
enum ClientQuirks {
    /// Consumes the known trailing bytes of `body` from `frame`, correcting what they displaced.
    static func absorbTrailingBytes(_ body: inout KafkaRequestBody, key: ApiKey, version: Int16, frame: inout ByteBuffer) {
        let trailing = Array(frame.readableBytesView.prefix(4))
        if case .offsetFetch(var r) = body, (6...7).contains(version), r.topics == nil, frame.readableBytes == 3, trailing[0] == 0, trailing[2] == 0,
            trailing[1] <= (version == 7 ? 1 : 0)
        {
            r.requireStable = trailing[1] == 1
            body = .offsetFetch(r)
            frame.moveReaderIndex(forwardBy: 3)
            return
        }
        if frame.readableBytes == 1, key.isFlexible(version), trailing[0] == 0 {
            frame.moveReaderIndex(forwardBy: 1)
        }
    }
}
