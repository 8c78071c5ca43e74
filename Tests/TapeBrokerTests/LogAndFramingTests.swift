import KafkaProtocol
import NIOCore
import NIOTestUtils
import XCTest

@testable import TapeBroker

final class LogAndFramingTests: XCTestCase {
    func batchBytes(count: Int) -> [UInt8] {
        let b = RecordBatchBuilder.build(
            records: (0..<count).map { Record(offsetDelta: Int32($0), key: nil, value: [UInt8($0)]) }, baseOffset: 999, baseTimestamp: 1000)
        return Array(b.readableBytesView)
    }

    func testInMemoryLogAssignsOffsetsAndReadsWholeBatches() throws {
        let log = InMemoryPartitionLog(topic: "t", partition: 0)
        XCTAssertEqual(try log.append(batch: batchBytes(count: 3)).baseOffset, 0)
        let second = try log.append(batch: batchBytes(count: 2))
        XCTAssertEqual(second.baseOffset, 3)
        XCTAssertEqual(second.lastOffset, 4)
        XCTAssertEqual(log.logEndOffset, 5)
        // An offset inside the second batch returns that whole batch, with its rewritten baseOffset.
        var read = ByteBuffer(bytes: try log.read(from: 4, maxBytes: 1).records)
        let h = try RecordBatchHeader.peek(read)
        XCTAssertEqual(h.baseOffset, 3)
        XCTAssertEqual(read.readableBytes, h.totalSize)
        // The rewritten batch still passes CRC validation (baseOffset is not covered).
        XCTAssertNoThrow(try RecordBatchValidator.validate(records: read, maxBatchBytes: 1 << 20))
        read = ByteBuffer(bytes: try log.read(from: 0, maxBytes: 1 << 20).records)
        XCTAssertEqual(try RecordBatchValidator.validate(records: read, maxBatchBytes: 1 << 20).count, 2)
        XCTAssertTrue(try log.read(from: 5, maxBytes: 100).records.isEmpty)
        XCTAssertThrowsError(try log.read(from: 6, maxBytes: 100))
    }

    func frame(_ payload: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        b.encodeInt32(Int32(payload.count))
        b.writeBytes(payload)
        return b
    }

    func testFrameDecoderWithDripFedAndCoalescedInput() throws {
        let frames: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 9, count: 300)]
        let pairs = frames.map { (frame($0), [ByteBuffer(bytes: $0)]) }
        XCTAssertNoThrow(try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { KafkaFrameDecoder(maxFrameBytes: 1000) })
    }

    func testFrameDecoderRejectsOversizedAndNegativeSizes() {
        var decoder = KafkaFrameDecoder(maxFrameBytes: 100)
        var big = ByteBuffer()
        big.encodeInt32(101)
        XCTAssertThrowsError(try decoder.decode(buffer: &big)) { XCTAssertTrue($0 is FrameSizeError) }
        var negative = ByteBuffer()
        negative.encodeInt32(-5)
        XCTAssertThrowsError(try decoder.decode(buffer: &negative))
        var short = ByteBuffer(bytes: [0, 0, 0, 10, 1, 2])
        XCTAssertNil(try decoder.decode(buffer: &short))
        XCTAssertEqual(short.readerIndex, 0, "a short frame leaves the reader index alone")
    }
}
