import NIOCore
import XCTest

@testable import KafkaProtocol

/// The raw-pointer record scanner (produce hot path) must accept exactly what the checked,
/// ByteBuffer-based validation accepts.
final class RecordScannerTests: XCTestCase {
    private func body(_ records: [Record]) -> [UInt8] {
        var b = ByteBuffer()
        for r in records { r.encode(into: &b) }
        return Array(b.readableBytesView)
    }

    private func checkedAccepts(_ bytes: [UInt8], count: Int) -> Int? {
        var b = ByteBuffer(bytes: bytes)
        let before = b.readableBytes
        do {
            try Record.validateAllChecked(in: &b, count: count)
            return before - b.readableBytes
        } catch {
            return nil
        }
    }

    func testAgreesWithCheckedValidationOnMutations() {
        let records = (0..<6).map { i in
            Record(
                timestampDelta: Int64(i * 1000), offsetDelta: Int32(i), key: i % 2 == 0 ? nil : Array("key\(i)".utf8),
                value: i == 3 ? nil : [UInt8](repeating: UInt8(i), count: i * 40),
                headers: i == 4 ? [.init(key: "h", value: [1, 2]), .init(key: "n", value: nil)] : [])
        }
        let good = body(records)
        XCTAssertEqual(good.withUnsafeBytes { RecordScanner.validate($0, count: records.count) }, good.count)
        var rng = SystemRandomNumberGenerator()
        for round in 0..<20_000 {
            var bytes = good
            switch round % 4 {
            case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
            case 2:
                for _ in 0..<3 { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng) }
            default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
            }
            let count = round % 7 == 0 ? records.count + 1 : records.count
            let fast = bytes.withUnsafeBytes { RecordScanner.validate($0, count: count) }
            XCTAssertEqual(fast, checkedAccepts(bytes, count: count), "round \(round): \(bytes)")
        }
        // Over-long varints are refused by both.
        let overlong: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
        XCTAssertNil(overlong.withUnsafeBytes { RecordScanner.validate($0, count: 1) })
        XCTAssertNil(checkedAccepts(overlong, count: 1))
    }
}

/// A record whose baseTimestamp + timestampDelta does not fit in an Int64 is refused at produce
/// with INVALID_TIMESTAMP (the broker used to store it and then trap on a ListOffsets by time).
final class RecordTimestampOverflowTests: XCTestCase {
    func testTimestampOverflowIsRefusedWithInvalidTimestamp() throws {
        for (base, delta) in [(Int64.max - 5, Int64(10)), (Int64.min + 5, Int64(-10)), (Int64(1), Int64.max)] {
            let batch = RecordBatchBuilder.build(
                records: [
                    Record(timestampDelta: 0, offsetDelta: 0, key: nil, value: [1]), Record(timestampDelta: delta, offsetDelta: 1, key: nil, value: [2]),
                ],
                baseTimestamp: base)
            XCTAssertThrowsError(try RecordBatchValidator.validate(records: batch, maxBatchBytes: 1 << 20), "base \(base) delta \(delta)") { error in
                XCTAssertEqual((error as? RecordBatchError)?.errorCode, .invalidTimestamp, "\(error)")
            }
            // The fast scanner refuses it too (and so hands over to the checked path's error).
            var body = batch
            body.moveReaderIndex(forwardBy: RecordBatchHeader.size)
            XCTAssertNil(body.withUnsafeReadableBytes { RecordScanner.validate($0, count: 2, baseTimestamp: base) })
        }
        // At the edge, without overflow: accepted.
        let edge = RecordBatchBuilder.build(records: [Record(timestampDelta: 5, offsetDelta: 0, key: nil, value: [1])], baseTimestamp: Int64.max - 5)
        XCTAssertEqual(try RecordBatchValidator.validate(records: edge, maxBatchBytes: 1 << 20).count, 1)
    }
}
