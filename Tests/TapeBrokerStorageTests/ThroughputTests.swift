import Foundation
import XCTest

@testable import TapeBroker

/// Rough numbers (printed, not asserted beyond sanity): appends and reads of ~1 KiB batches.
final class ThroughputTests: StorageTestCase {
    func testAppendAndReadThroughput() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 8 << 20
        let log = try Log(directory: dir, topic: "perf", partition: 0, config: config)
        let batch = makeBatch(records: values(10, size: 90))  // 10 records of ~100 bytes
        let count = 20_000
        let start = Date()
        for _ in 0..<count { _ = try log.append(batch: batch) }
        try log.sync()
        let appendSeconds = Date().timeIntervalSince(start)
        let megabytes = Double(batch.count * count) / 1_048_576
        let readStart = Date()
        var offset: Int64 = 0
        var bytesRead = 0
        while offset < log.logEndOffset {
            let r = try log.read(from: offset, maxBytes: 1 << 20)
            bytesRead += r.records.count
            offset = Int64(BigEndian.u64(r.records, r.records.count - batch.count)) + 10
        }
        let readSeconds = Date().timeIntervalSince(readStart)
        XCTAssertEqual(bytesRead, batch.count * count)
        XCTAssertEqual(log.logEndOffset, Int64(count * 10))
        print(
            String(
                format: "append: %.1f MB/s (%.0f batches/s); read: %.1f MB/s; %d segments",
                megabytes / appendSeconds, Double(count) / appendSeconds, megabytes / readSeconds, log.segmentCount))

        // Reopen after a clean close (indexes trusted), then after a "crash" (CRC scan of the active segment).
        try log.close()
        var reopenStart = Date()
        let clean = try Log(directory: dir, topic: "perf", partition: 0, config: config)
        let cleanSeconds = Date().timeIntervalSince(reopenStart)
        XCTAssertEqual(clean.logEndOffset, Int64(count * 10))
        XCTAssertFalse(clean.scannedActiveSegmentOnOpen)
        let activeBytes = fileSize((dir as NSString).appendingPathComponent(String(format: "%020lld.log", clean.segmentBaseOffsets.last!)))
        reopenStart = Date()
        let crashed = try Log(directory: dir, topic: "perf", partition: 0, config: config)  // no close: no marker
        let crashSeconds = Date().timeIntervalSince(reopenStart)
        XCTAssertTrue(crashed.scannedActiveSegmentOnOpen)
        XCTAssertEqual(crashed.logEndOffset, Int64(count * 10))
        print(
            String(
                format: "reopen: clean %.3f s; after crash %.3f s (CRC scan of a %.1f MB active segment)",
                cleanSeconds, crashSeconds, Double(activeBytes) / 1_048_576))
    }

    func testGroupCommitThroughput() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .always, maintenanceIntervalMs: 0))
        try manager.createTopic(name: "perf", partitions: 1)
        let batch = makeBatch(records: values(10, size: 90))
        let producers = 32
        let perProducer = 100
        let start = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<producers {
                group.addTask {
                    for _ in 0..<perProducer {
                        _ = try await manager.appendDurably(topic: "perf", partition: 0, batch: batch)
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Date().timeIntervalSince(start)
        let total = producers * perProducer
        XCTAssertEqual(manager.log(topic: "perf", partition: 0)?.logEndOffset, Int64(total * 10))
        XCTAssertLessThan(manager.fsyncCount, total)
        print(
            String(
                format: "fsync=always: %d acknowledged appends from %d producers in %.2f s (%.0f appends/s, %.1f MB/s), %d fsyncs",
                total, producers, seconds, Double(total) / seconds, Double(total * batch.count) / 1_048_576 / seconds, manager.fsyncCount))
        await manager.shutdown()
    }
}
