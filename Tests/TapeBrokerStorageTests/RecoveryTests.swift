import Foundation
import XCTest

@testable import TapeBroker

final class RecoveryTests: StorageTestCase {
    func segmentPath(_ dir: String, _ base: Int64, _ suffix: String) -> String {
        (dir as NSString).appendingPathComponent(String(format: "%020lld", base) + suffix)
    }

    /// Writes `count` batches of 2 records and "crashes": the files are synced but there is no
    /// clean-shutdown marker, so the next open runs recovery. Returns batch sizes.
    func fill(_ dir: String, _ config: LogConfig = LogConfig(), count: Int) throws -> [Int] {
        let log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        var sizes: [Int] = []
        for i in 0..<count {
            let b = makeBatch(records: values(2, prefix: "b\(i)-", size: 30))
            sizes.append(b.count)
            _ = try log.append(batch: b)
        }
        try log.sync()
        return sizes
    }

    func testCleanShutdownSkipsTheScanAndCrashDoesNot() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.indexIntervalBytes = 100
        var log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        for i in 0..<20 { _ = try log.append(batch: makeBatch(baseTimestamp: 1000 + Int64(i), records: values(2, size: 30))) }
        try log.close()
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/.clean-shutdown"))

        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertFalse(log.scannedActiveSegmentOnOpen, "clean shutdown: indexes trusted")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/.clean-shutdown"), "marker consumed on open")
        XCTAssertEqual(log.logEndOffset, 40)
        XCTAssertEqual(try log.offset(forTimestamp: 1019)?.offset, 38)
        for i in 20..<40 { _ = try log.append(batch: makeBatch(baseTimestamp: 1000 + Int64(i), records: values(2, size: 30))) }
        XCTAssertEqual(log.logEndOffset, 80)
        try log.sync()
        let indexAfterClean = try Data(contentsOf: URL(fileURLWithPath: segmentPath(dir, 0, ".index")))

        // Crash (no close): the next open scans, and the index written after the clean restart is
        // exactly what the scan derives.
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertTrue(log.scannedActiveSegmentOnOpen)
        XCTAssertEqual(log.logEndOffset, 80)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: segmentPath(dir, 0, ".index"))), indexAfterClean)
        XCTAssertEqual(try readAll(log).flatMap(\.records).map(\.offset), Array(0..<80))
        XCTAssertEqual(try log.offset(forTimestamp: 1039)?.offset, 78)

        // A clean shutdown whose files were damaged afterwards still falls back to a scan.
        try log.close()
        XCTAssertEqual(truncate(segmentPath(dir, 0, ".log"), off_t(fileSize(segmentPath(dir, 0, ".log")) - 5)), 0)
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertTrue(log.scannedActiveSegmentOnOpen)
        XCTAssertEqual(log.logEndOffset, 78)
    }

    func testTruncatedTailIsCutAndValidPrefixKept() throws {
        let dir = temporaryDirectory()
        let sizes = try fill(dir, count: 5)
        let logPath = segmentPath(dir, 0, ".log")
        let full = fileSize(logPath)
        // Cut the last batch in the middle.
        XCTAssertEqual(truncate(logPath, off_t(full - Int64(sizes[4] / 2))), 0)

        let log = try Log(directory: dir, topic: "t", partition: 0)
        XCTAssertEqual(log.logEndOffset, 8)
        XCTAssertEqual(fileSize(logPath), full - Int64(sizes[4]))
        let records = try readAll(log).flatMap(\.records)
        XCTAssertEqual(records.map(\.offset), Array(0..<8))
        XCTAssertEqual(records.last?.value, "b3-1" + String(repeating: "x", count: 30))
        XCTAssertEqual(try log.append(batch: makeBatch(records: values(1))).baseOffset, 8)
    }

    func testCorruptedTailIsCutAtFirstBadCRC() throws {
        let dir = temporaryDirectory()
        let sizes = try fill(dir, count: 5)
        let logPath = segmentPath(dir, 0, ".log")
        // Flip one byte inside the records of batch 3 (0-based); batches 3 and 4 must go.
        let batch3Start = sizes[0..<3].reduce(0, +)
        let fh = FileHandle(forUpdatingAtPath: logPath)!
        try fh.seek(toOffset: UInt64(batch3Start + 70))
        let old = try fh.read(upToCount: 1)![0]
        try fh.seek(toOffset: UInt64(batch3Start + 70))
        try fh.write(contentsOf: Data([old ^ 0x40]))
        try fh.close()

        let log = try Log(directory: dir, topic: "t", partition: 0)
        XCTAssertEqual(log.logEndOffset, 6)
        XCTAssertEqual(fileSize(logPath), Int64(batch3Start))
        let batches = try readAll(log)
        XCTAssertEqual(batches.map(\.baseOffset), [0, 2, 4])
        XCTAssertTrue(batches.allSatisfy(\.crcValid))
    }

    func testGarbageLengthTailIsCut() throws {
        let dir = temporaryDirectory()
        _ = try fill(dir, count: 2)
        let logPath = segmentPath(dir, 0, ".log")
        let fh = FileHandle(forUpdatingAtPath: logPath)!
        try fh.seekToEnd()
        try fh.write(contentsOf: Data([0, 0, 0, 0, 0, 0, 0, 9, 0x7F, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 100)))
        try fh.close()
        let log = try Log(directory: dir, topic: "t", partition: 0)
        XCTAssertEqual(log.logEndOffset, 4)
        XCTAssertEqual(try readAll(log).count, 2)
    }

    func testIndexRebuiltWhenDeletedOrCorrupted() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.indexIntervalBytes = 100
        config.segmentBytes = 1500
        _ = try fill(dir, config, count: 30)
        let bases = try Log(directory: dir, topic: "t", partition: 0, config: config).segmentBaseOffsets
        XCTAssertGreaterThan(bases.count, 2)
        let closedIndex = segmentPath(dir, bases[0], ".index")
        let closedTimeIndex = segmentPath(dir, bases[1], ".timeindex")
        let original = try Data(contentsOf: URL(fileURLWithPath: closedIndex))
        let originalTime = try Data(contentsOf: URL(fileURLWithPath: closedTimeIndex))
        XCTAssertGreaterThan(original.count, 8, "test needs several index entries")

        // 1. Deleted .index of a closed segment.
        try FileManager.default.removeItem(atPath: closedIndex)
        // 2. Corrupted .timeindex of another closed segment (entry points past the end, not monotonic).
        var bad = originalTime
        bad.replaceSubrange(0..<8, with: [0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        try bad.write(to: URL(fileURLWithPath: closedTimeIndex))
        // 3. Active segment's index with a bogus position.
        let activeIndex = segmentPath(dir, bases.last!, ".index")
        try Data([0, 0, 0, 1, 0, 0, 0x10, 0]).write(to: URL(fileURLWithPath: activeIndex))

        let log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: closedIndex)), original)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: closedTimeIndex)), originalTime)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: activeIndex)), Data([0, 0, 0, 1, 0, 0, 0x10, 0]))
        XCTAssertEqual(log.logEndOffset, 60)
        for offset in Int64(0)..<60 {
            let b = parseBatches(try log.read(from: offset, maxBytes: 1).records)
            XCTAssertEqual(b.first?.baseOffset, offset - offset % 2)
        }
        XCTAssertEqual(try log.offset(forTimestamp: 1_700_000_000_000)?.offset, 0)
    }

    func testCorruptIndexEntryPointingIntoAClosedSegmentIsDetected() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.indexIntervalBytes = 100
        config.segmentBytes = 1500
        _ = try fill(dir, config, count: 30)
        let closedIndex = segmentPath(dir, 0, ".index")
        let original = try Data(contentsOf: URL(fileURLWithPath: closedIndex))
        // Make the last entry point one batch further than it should (still well-formed, increasing).
        var edited = original
        let n = edited.count
        let pos = edited[(n - 4)..<n].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } + 1
        edited.replaceSubrange((n - 4)..<n, with: [UInt8(pos >> 24), UInt8((pos >> 16) & 0xFF), UInt8((pos >> 8) & 0xFF), UInt8(pos & 0xFF)])
        try edited.write(to: URL(fileURLWithPath: closedIndex))
        let log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: closedIndex)), original)
        XCTAssertEqual(try readAll(log).flatMap(\.records).map(\.offset), Array(0..<60))
    }

    func testDiskFullLeavesEarlierDataIntactAndNextAppendWorks() throws {
        let dir = temporaryDirectory()
        let log = try Log(directory: dir, topic: "t", partition: 0)
        _ = try log.append(batch: makeBatch(records: values(3)))
        try log.sync()
        let logPath = segmentPath(dir, 0, ".log")
        let sizeBefore = fileSize(logPath)

        // The disk fills up 30 bytes into the next batch.
        log.faults.failNextWrite(errno: ENOSPC, afterWriting: 30)
        XCTAssertThrowsError(try log.append(batch: makeBatch(records: values(2, prefix: "lost")))) { error in
            let e = error as? StorageError
            XCTAssertEqual(e?.code, .diskFull)
            XCTAssertTrue(e?.message.contains(logPath) ?? false, "names the file: \(e?.message ?? "")")
            XCTAssertTrue(e?.message.contains("space") ?? false)
        }
        XCTAssertEqual(log.logEndOffset, 3)
        XCTAssertEqual(fileSize(logPath), sizeBefore, "partial write rolled back")

        // Other I/O errors map to .io.
        log.faults.failNextWrite(errno: EIO, afterWriting: 0)
        XCTAssertThrowsError(try log.append(batch: makeBatch(records: values(1)))) {
            XCTAssertEqual(($0 as? StorageError)?.code, .io)
        }

        // Space is back.
        XCTAssertEqual(try log.append(batch: makeBatch(records: values(2, prefix: "ok"))).baseOffset, 3)
        try log.close()
        let reopened = try Log(directory: dir, topic: "t", partition: 0)
        XCTAssertEqual(reopened.logEndOffset, 5)
        XCTAssertEqual(try readAll(reopened).flatMap(\.records).compactMap(\.value), ["v0", "v1", "v2", "ok0", "ok1"])
    }

    func testDiskFullWhileWritingIndexRollsBackTheBatch() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.indexIntervalBytes = 0  // every batch after the first gets an index entry
        let log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        _ = try log.append(batch: makeBatch(records: values(1)))
        let logPath = segmentPath(dir, 0, ".log")
        let sizeBefore = fileSize(logPath)
        // First write (the .log) succeeds, the second (the .index entry) fails half-way.
        log.faults.failNextWrite(errno: ENOSPC, afterWriting: 3, skipping: 1)
        let indexPath = segmentPath(dir, 0, ".index")
        let indexBefore = fileSize(indexPath)
        XCTAssertThrowsError(try log.append(batch: makeBatch(records: values(1))))
        XCTAssertEqual(fileSize(logPath), sizeBefore, "the batch was rolled back with its index entry")
        XCTAssertEqual(fileSize(indexPath), indexBefore)
        XCTAssertEqual(log.logEndOffset, 1)
        XCTAssertEqual(try log.append(batch: makeBatch(records: values(1))).baseOffset, 1)
        try log.close()
        XCTAssertEqual(try Log(directory: dir, topic: "t", partition: 0, config: config).logEndOffset, 2)
    }

    func testLeftoverCleanedFilesFromInterruptedCompactionAreIgnored() throws {
        let dir = temporaryDirectory()
        _ = try fill(dir, count: 3)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: segmentPath(dir, 0, ".log.cleaned")))
        let log = try Log(directory: dir, topic: "t", partition: 0)
        XCTAssertEqual(log.logEndOffset, 6)
        XCTAssertFalse(FileManager.default.fileExists(atPath: segmentPath(dir, 0, ".log.cleaned")))
    }
}
