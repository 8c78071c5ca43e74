import Foundation
import XCTest

@testable import TapeBroker

/// Numbers read from batches and files (timestamps, offsets, lengths, counts, positions) never
/// trap the broker: data stored by older versions or damaged on disk gives an answer or an error.
final class CorruptNumbersTests: StorageTestCase {
    func segmentPath(_ dir: String, _ base: Int64, _ suffix: String) -> String {
        (dir as NSString).appendingPathComponent(String(format: "%020lld", base) + suffix)
    }

    /// Overwrites `bytes` at `offset` of `path`.
    func patch(_ path: String, at offset: Int, _ bytes: [UInt8]) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try h.seek(toOffset: UInt64(offset))
        try h.write(contentsOf: Data(bytes))
        try h.close()
    }

    func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        var out: [UInt8] = []
        putBE(v, &out)
        return out
    }

    /// A batch stored before produce checked timestamps: baseTimestamp + timestampDelta overflows.
    /// ListOffsets by time used to trap (and trapped again after every restart).
    func testRecordTimestampThatOverflowsDoesNotTrapListOffsetsBeforeOrAfterRestart() throws {
        let dir = temporaryDirectory()
        var log = try Log(directory: dir, topic: "t", partition: 0)
        _ = try log.append(batch: makeBatch(baseTimestamp: 1000, records: values(1)))
        // Record 0: (max - 5) + 10 overflows; record 1: max - 5. maxTimestamp as a client may claim it.
        _ = try log.append(
            batch: makeBatch(
                baseTimestamp: Int64.max - 5,
                records: [TestRecord(key: nil, value: "a", timestampDelta: 10), TestRecord(key: nil, value: "b", timestampDelta: 0)],
                maxTimestamp: Int64.max))
        // Below Int64.min.
        _ = try log.append(
            batch: makeBatch(
                baseTimestamp: Int64.min + 5, records: [TestRecord(key: nil, value: "c", timestampDelta: -10)],
                maxTimestamp: Int64.max))
        func check(_ log: Log) throws {
            let found = try XCTUnwrap(try log.offset(forTimestamp: 2000))
            XCTAssertEqual(found.offset, 2, "the overflowing record is skipped; the next one matches")
            XCTAssertEqual(found.timestamp, Int64.max - 5)
            XCTAssertEqual(try log.offset(forTimestamp: 500)?.offset, 0)
            XCTAssertNotNil(try log.offset(forTimestamp: Int64.max))
            XCTAssertEqual(try readAll(log).count, 3)
        }
        try check(log)
        // Crash (no close): the next open scans the segment.
        try log.sync()
        log = try Log(directory: dir, topic: "t", partition: 0)
        try check(log)
        // Clean shutdown: the next open trusts the indexes.
        try log.close()
        log = try Log(directory: dir, topic: "t", partition: 0)
        try check(log)
        try log.close()
    }

    /// A stored batch whose recordCount is negative (not CRC-checked against anything storage uses).
    func testNegativeRecordCountDoesNotTrapTimestampLookupOrCompaction() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.cleanupPolicy = .compact
        config.segmentBytes = 200
        let log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        _ = try log.append(batch: makeBatch(baseTimestamp: 1000, records: values(2, keyPrefix: "k"), recordCount: -1))
        _ = try log.append(batch: makeBatch(baseTimestamp: 2000, records: values(2, keyPrefix: "k", size: 150)))
        _ = try log.append(batch: makeBatch(baseTimestamp: 3000, records: values(2, keyPrefix: "k")))
        XCTAssertGreaterThan(log.segmentCount, 1)
        XCTAssertEqual(try log.offset(forTimestamp: 500)?.offset, 0, "undecodable batch: its first offset")
        XCTAssertNoThrow(try log.compact())
        try log.close()
    }

    /// A segment whose batch claims offsets past Int64.max (baseOffset is not covered by the CRC):
    /// opening used to trap while checking the indexes; now recovery cuts it.
    func testBaseOffsetNearInt64MaxInAClosedSegmentIsCutNotTrapped() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 300
        var log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        for i in 0..<6 { _ = try log.append(batch: makeBatch(baseTimestamp: 1000 + Int64(i), records: values(2, size: 40))) }
        XCTAssertGreaterThan(log.segmentCount, 2)
        let secondBatchPosition = makeBatch(baseTimestamp: 1000, records: values(2, size: 40)).count
        try log.close()
        // Second batch of the first (closed) segment: baseOffset = Int64.max - 1, lastOffsetDelta 1.
        try patch(segmentPath(dir, 0, ".log"), at: secondBatchPosition, be(Int64.max - 1))
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertEqual(log.logStartOffset, 0)
        XCTAssertGreaterThanOrEqual(log.logEndOffset, 12)
        XCTAssertEqual(try log.read(from: 0, maxBytes: 1 << 20).records.isEmpty, false)
        try log.close()
    }

    /// A batch length that is negative inside a closed segment whose index is trusted at open: reads
    /// and timestamp lookups that walk over it throw a storage error instead of looping or trapping.
    func testNegativeBatchLengthInATrustedSegmentGivesAnErrorNotALoop() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 2000
        config.indexIntervalBytes = 50
        var log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        var sizes: [Int] = []
        for i in 0..<30 {
            let b = makeBatch(baseTimestamp: 1000 + Int64(i), records: values(2, size: 40))
            sizes.append(b.count)
            _ = try log.append(batch: b)
        }
        XCTAssertGreaterThan(log.segmentCount, 1)
        try log.close()
        // Batch 3 of the first segment gets batchLength -12 (total size 0): a walk would spin on it.
        let position = sizes[0..<3].reduce(0, +)
        try patch(segmentPath(dir, 0, ".log"), at: position + 8, be(Int32(-12)))
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        var sawError = false
        do {
            _ = try readAll(log)
        } catch let e as StorageError {
            XCTAssertEqual(e.code, .corruptSegment, "\(e)")
            XCTAssertTrue(e.message.contains("corrupt segment"), e.message)
            sawError = true
        }
        XCTAssertTrue(sawError, "reading across the damaged batch must fail")
        // Offset 6 is in batch 3: found through the index, then the walk reaches the bad length.
        XCTAssertThrowsError(try log.read(from: 7, maxBytes: 1 << 20))
        XCTAssertThrowsError(try log.offset(forTimestamp: 1003))
        // Batches before it still read.
        XCTAssertFalse(try log.read(from: 0, maxBytes: 1 << 20).records.isEmpty)
        try log.close()
    }

    /// A segment file named near Int64.max (damage, or a copied-in directory): appends that would
    /// pass the largest offset are refused with an error.
    func testAppendPastTheLargestOffsetIsRefused() throws {
        let dir = temporaryDirectory()
        let base = Int64.max - 3
        XCTAssertTrue(FileManager.default.createFile(atPath: segmentPath(dir, base, ".log"), contents: Data()))
        let log = try Log(directory: dir, topic: "t", partition: 0)
        XCTAssertEqual(log.logEndOffset, base)
        XCTAssertNoThrow(try log.append(batch: makeBatch(records: values(2))))
        XCTAssertEqual(log.logEndOffset, base + 2)
        XCTAssertThrowsError(try log.append(batch: makeBatch(records: values(2)))) { error in
            XCTAssertEqual((error as? StorageError)?.code, .offsetOverflow, "\(error)")
        }
        XCTAssertEqual(log.logEndOffset, base + 2)
        XCTAssertNotNil(try log.offset(forTimestamp: 0))
        try log.close()
        let reopened = try Log(directory: dir, topic: "t", partition: 0)
        XCTAssertEqual(reopened.logEndOffset, base + 2)
        try reopened.close()
    }

    /// Index entries that point past the end of the file or backwards are rebuilt, not followed.
    func testGarbageIndexFilesAreRebuilt() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.indexIntervalBytes = 50
        config.segmentBytes = 1500
        var log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        for i in 0..<30 { _ = try log.append(batch: makeBatch(baseTimestamp: 1000 + Int64(i), records: values(2, size: 40))) }
        try log.close()
        // Increasing but absurd entries: positions near UInt32.max, relative offsets huge.
        var garbage: [UInt8] = []
        for i in 0..<4 {
            putBE(UInt32(1000 + i), &garbage)
            putBE(UInt32.max - 10 + UInt32(i), &garbage)
        }
        try garbage.write(to: segmentPath(dir, 0, ".index"))
        var time: [UInt8] = []
        putBE(Int64.max, &time)
        putBE(UInt32.max, &time)
        try time.write(to: segmentPath(dir, 0, ".timeindex"))
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertEqual(try readAll(log).flatMap(\.records).map(\.offset), Array(0..<60))
        XCTAssertEqual(try log.offset(forTimestamp: 1010)?.offset, 20)
        try log.close()
    }
}

extension [UInt8] {
    func write(to path: String) throws { try Data(self).write(to: URL(fileURLWithPath: path)) }
}
