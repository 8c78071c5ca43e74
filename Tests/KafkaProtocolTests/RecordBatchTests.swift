import KafkaProtocol
import NIOCore
import XCTest

final class RecordBatchTests: XCTestCase {
    func rewriteCRC(_ b: inout ByteBuffer) {
        let crc = b.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[21...])) }
        b.setInteger(crc, at: b.readerIndex + 17, endianness: .big)
    }

    func testBuiltBatchValidatesAndRecordsDecode() throws {
        let b = Samples.batch(count: 4)
        let batches = try RecordBatchValidator.validate(records: b, maxBatchBytes: 1 << 20)
        XCTAssertEqual(batches.count, 1)
        XCTAssertEqual(batches[0].header.recordCount, 4)
        XCTAssertEqual(batches[0].header.lastOffsetDelta, 3)
        var body = b
        body.moveReaderIndex(forwardBy: RecordBatchHeader.size)
        let records = try Record.decodeAll(from: &body, count: 4)
        XCTAssertEqual(records[2].key, Array("k2".utf8))
        XCTAssertEqual(records[2].value, Array("value-2".utf8))
        XCTAssertEqual(records[2].headers, [.init(key: "h", value: [1, 2])])
    }

    func testTwoBatchesInOneRecordSet() throws {
        var b = Samples.batch(count: 1)
        var second = Samples.batch(count: 2)
        b.writeBuffer(&second)
        XCTAssertEqual(try RecordBatchValidator.validate(records: b, maxBatchBytes: 1 << 20).count, 2)
    }

    func testCorruptionIsDetected() {
        let good = Samples.batch(count: 3)
        func expect(_ code: ErrorCode, _ mutate: (inout ByteBuffer) -> Void, line: UInt = #line) {
            var b = good
            mutate(&b)
            XCTAssertThrowsError(try RecordBatchValidator.validate(records: b, maxBatchBytes: 1 << 20), line: line) { error in
                XCTAssertEqual((error as? RecordBatchError)?.errorCode, code, "\(error)", line: line)
            }
        }
        // A flipped payload byte breaks the CRC.
        expect(.corruptMessage) { $0.setInteger(UInt8(0x5A), at: $0.writerIndex - 3) }
        // Old message formats and unknown magic values.
        expect(.unsupportedForMessageFormat) { $0.setInteger(Int8(1), at: 16) }
        expect(.corruptMessage) { $0.setInteger(Int8(7), at: 16) }
        // batchLength longer than the bytes present.
        expect(.corruptMessage) { $0.setInteger(Int32($0.readableBytes), at: 8, endianness: .big) }
        // Truncated batch.
        expect(.corruptMessage) { $0.moveWriterIndex(to: $0.writerIndex - 1) }
        // recordCount inconsistent with lastOffsetDelta (CRC recomputed so only the count is wrong).
        expect(.invalidRecord) { b in
            b.setInteger(Int32(5), at: 57, endianness: .big)
            self.rewriteCRC(&b)
        }
        // A record length that runs past the batch.
        expect(.corruptMessage) { b in
            b.setInteger(UInt8(0x7E), at: 61)
            self.rewriteCRC(&b)
        }
        // Empty record set.
        expect(.corruptMessage) { $0.moveWriterIndex(to: $0.readerIndex) }
    }

    func testSizeLimit() {
        let big = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: [UInt8](repeating: 7, count: 2000))], baseTimestamp: 0)
        XCTAssertThrowsError(try RecordBatchValidator.validate(records: big, maxBatchBytes: 1000)) {
            XCTAssertEqual(($0 as? RecordBatchError)?.errorCode, .messageTooLarge)
        }
        XCTAssertNoThrow(try RecordBatchValidator.validate(records: big, maxBatchBytes: 1 << 20))
    }

    func testOffsetDeltasMustRunInOrder() {
        var b = RecordBatchBuilder.build(
            records: [Record(offsetDelta: 0, key: nil, value: [1]), Record(offsetDelta: 2, key: nil, value: [2])], baseTimestamp: 0)
        XCTAssertThrowsError(try RecordBatchValidator.validate(records: b, maxBatchBytes: 1 << 20)) {
            XCTAssertEqual(($0 as? RecordBatchError)?.errorCode, .corruptMessage)
        }
        b = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: nil, headers: [.init(key: "k", value: nil)])], baseTimestamp: 0)
        XCTAssertNoThrow(try RecordBatchValidator.validate(records: b, maxBatchBytes: 1 << 20), "null value and null header value are legal")
    }
}
