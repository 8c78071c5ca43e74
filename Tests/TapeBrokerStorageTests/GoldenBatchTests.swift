import Foundation
import XCTest

@testable import TapeBroker

/// RecordBatches exactly as real clients sent them (from the produce requests this project captured
/// on loopback from kcat 1.7 / librdkafka 2.0.2 and kafka-python 3.0.12; see the broker branch's
/// Tests/KafkaProtocolTests/Fixtures/captured-requests.txt).
final class GoldenBatchTests: StorageTestCase {
    /// kcat: one record, key "key1", value "value1", header h=v.
    static let kcatWithHeader = hex(
        "0000000000000000000000460000000002a3f1d83d000000000000000001a212abc121000001a212abc121ffffffff"
            + "ffffffffffffffffffff0000000128000000086b6579310c76616c7565310202680276")
    /// kafka-python, idempotent (producerId 1001): 8 records k2=v2, k5=v5, k11, k12, k15, k23, k24, k25.
    static let kafkaPythonIdempotent = hex(
        "0000000000000000000000950000000002c53843ad000000000007000001a212abd7b9000001a212abd7b90000000000"
            + "0003e90000000000000000000814000000046b320476320014000002046b350476350018000004066b3131067631"
            + "310018000006066b3132067631320018000008066b313506763135001800000a066b323306763233001800000c06"
            + "6b323406763234001800000e066b32350676323500")
    /// kcat, idempotent (producerId 1000): two records with null keys, "zz1" and "zz2".
    static let kcatNullKeys = hex(
        "00000000000000000000004500000000027abfbf53000000000001000001a212abc12d000001a212abc12d000000000"
            + "00003e8000000000000000000021200000001067a7a31001200000201067a7a3200")

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    func testRealClientBatchesRoundTripAndCompact() throws {
        var config = LogConfig()
        config.segmentBytes = 100  // one batch per segment
        config.cleanupPolicy = .compact
        let dir = temporaryDirectory()
        let log = try Log(directory: dir, topic: "golden", partition: 0, config: config)
        XCTAssertEqual(try log.append(batch: Self.kcatWithHeader).baseOffset, 0)
        XCTAssertEqual(try log.append(batch: Self.kafkaPythonIdempotent).lastOffset, 8)
        XCTAssertEqual(try log.append(batch: Self.kcatNullKeys).baseOffset, 9)
        // A newer k2 makes the kafka-python batch's first record obsolete.
        _ = try log.append(batch: makeBatch(records: [TestRecord(key: "k2", value: "new")]))

        var batches = try readAll(log)
        XCTAssertTrue(batches.allSatisfy(\.crcValid), "real clients' CRC-32C agrees with ours")
        XCTAssertEqual(batches.map(\.baseOffset), [0, 1, 9, 11])
        XCTAssertEqual(batches[0].records.first?.key, "key1")
        XCTAssertEqual(batches[0].records.first?.value, "value1")
        XCTAssertEqual(batches[1].records.compactMap(\.key), ["k2", "k5", "k11", "k12", "k15", "k23", "k24", "k25"])
        XCTAssertEqual(batches[2].records.map(\.value), ["zz1", "zz2"])
        XCTAssertEqual(batches[2].records.map(\.key), [nil, nil])

        XCTAssertEqual(try log.compact(), 1)
        batches = try readAll(log)
        XCTAssertTrue(batches.allSatisfy(\.crcValid))
        XCTAssertEqual(batches.map(\.baseOffset), [0, 1, 9, 11])
        XCTAssertEqual(batches[1].records.map(\.offset), [2, 3, 4, 5, 6, 7, 8], "offsets kept, k2@1 dropped")
        XCTAssertEqual(batches[1].lastOffsetDelta, 7)
        // The kcat batch (with a record header) is untouched, byte for byte apart from baseOffset.
        let first = try log.read(from: 0, maxBytes: 1).records
        XCTAssertEqual(Array(first[8...]), Array(Self.kcatWithHeader[8...]))
        // Producer fields of the rewritten idempotent batch are kept (producerId 1001 @43).
        let second = try log.read(from: 2, maxBytes: 1).records
        XCTAssertEqual(Array(second[43..<61]), Array(Self.kafkaPythonIdempotent[43..<57]) + [0, 0, 0, 7])
    }
}
