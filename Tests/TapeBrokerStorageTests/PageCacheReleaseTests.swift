import Foundation
import XCTest

@testable import TapeBroker

/// Dropping old, clean page cache (after fsync, and between interval fsyncs) never changes what
/// the log holds or returns.
final class PageCacheReleaseTests: StorageTestCase {
    func testReleasingOldPagesKeepsEveryBatchReadable() throws {
        let dir = temporaryDirectory()
        let log = try Log(directory: dir, topic: "t", partition: 0, config: LogConfig())
        // ~1 MiB batches, past the 64 MiB tail kept in the page cache.
        let batchCount = Int(Log.pageCacheTailBytes >> 20) + 24
        let payload = values(100, size: 10_000)
        for i in 0..<batchCount {
            _ = try log.append(batch: makeBatch(records: payload))
            if i % 10 == 9 { log.releaseOldPages() }
            if i % 25 == 24 { try log.sync() }
        }
        log.releaseOldPages()
        try log.sync()
        let batches = try readAll(log)
        XCTAssertEqual(batches.count, batchCount)
        XCTAssertEqual(batches.map(\.baseOffset), (0..<batchCount).map { Int64($0 * payload.count) })
        for b in batches { XCTAssertTrue(b.crcValid) }
        try log.close()
        // And after reopening (recovery scans the active segment with CRCs).
        let reopened = try Log(directory: dir, topic: "t", partition: 0, config: LogConfig())
        XCTAssertEqual(reopened.logEndOffset, Int64(batchCount * payload.count))
        XCTAssertEqual(try readAll(reopened).count, batchCount)
        try reopened.close()
    }
}
