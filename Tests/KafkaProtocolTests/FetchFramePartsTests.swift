import KafkaProtocol
import NIOCore
import XCTest

/// `KafkaResponse.encodeFetchFrameParts`: the broker sends large record sets as buffers of their
/// own; the bytes on the wire must be exactly `encodeFrame`'s.
final class FetchFramePartsTests: XCTestCase {
    private func records(_ count: Int, seed: UInt8) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeBytes((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) ^ seed })
        return b
    }

    private func response() -> FetchResponse {
        let big = KafkaResponse.inlineRecordsBytes + 1
        var aborted = FetchResponse.Partition(
            partitionIndex: 3, errorCode: .none, highWatermark: 90, lastStableOffset: 80, logStartOffset: 5, records: records(big * 2, seed: 3))
        aborted.abortedTransactions = [.init(producerId: 7, firstOffset: 60), .init(producerId: 8, firstOffset: 70)]
        // A records buffer whose reader index is not 0, as a slice of a larger read is.
        var sliced = records(big + 100, seed: 9)
        sliced.moveReaderIndex(forwardBy: 100)
        return FetchResponse(topics: [
            .init(
                topic: "trades",
                partitions: [
                    .init(partitionIndex: 0, errorCode: .none, highWatermark: 10, lastStableOffset: 10, logStartOffset: 0, records: records(big, seed: 1)),
                    .init(partitionIndex: 1, errorCode: .none, highWatermark: 11, lastStableOffset: 11, logStartOffset: 0, records: records(40, seed: 2)),
                    .init(partitionIndex: 2, errorCode: .unknownTopicOrPartition, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, records: nil),
                    aborted,
                ]),
            .init(
                topic: "books",
                partitions: [
                    .init(partitionIndex: 0, errorCode: .none, highWatermark: 1, lastStableOffset: 1, logStartOffset: 0, records: sliced),
                    .init(partitionIndex: 1, errorCode: .none, highWatermark: 0, lastStableOffset: 0, logStartOffset: 0, records: ByteBuffer()),
                ]),
        ])
    }

    func testPartsAreTheWholeFrameAtEveryVersion() {
        let payload = response()
        for version in Int16(4)...11 {
            let whole = KafkaResponse.encodeFrame(payload, apiKey: .fetch, version: version, correlationId: 77)
            let parts = KafkaResponse.encodeFetchFrameParts(payload, version: version, correlationId: 77)
            var joined = ByteBuffer()
            for var part in parts { joined.writeBuffer(&part) }
            XCTAssertEqual(Array(joined.readableBytesView), Array(whole.readableBytesView), "v\(version)")
            // The three large record sets travel on their own (head, records, ... , tail); the small one is inline.
            XCTAssertEqual(parts.count, 7, "v\(version)")
            XCTAssertEqual(parts[1].readableBytes, KafkaResponse.inlineRecordsBytes + 1)
        }
    }

    func testSmallResponsesAreOneBuffer() {
        let payload = FetchResponse(topics: [
            .init(
                topic: "t",
                partitions: [
                    .init(partitionIndex: 0, errorCode: .none, highWatermark: 2, lastStableOffset: 2, logStartOffset: 0, records: records(100, seed: 4))
                ])
        ])
        let parts = KafkaResponse.encodeFetchFrameParts(payload, version: 11, correlationId: 1)
        XCTAssertEqual(parts.count, 1)
        XCTAssertEqual(
            Array(parts[0].readableBytesView),
            Array(KafkaResponse.encodeFrame(payload, apiKey: .fetch, version: 11, correlationId: 1).readableBytesView))
    }
}
