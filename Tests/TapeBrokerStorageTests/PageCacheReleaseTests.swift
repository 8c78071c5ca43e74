import Foundation
import XCTest

@testable import TapeBroker

/// Old, clean pages are dropped from the page cache as the log grows (`WriteBehind`, and after each
/// fsync); that never changes what the log holds or returns.
final class PageCacheReleaseTests: StorageTestCase {
    func testReleasingOldPagesKeepsEveryBatchReadable() throws {
        let dir = temporaryDirectory()
        let log = try Log(directory: dir, topic: "t", partition: 0, config: LogConfig())
        // ~1 MiB batches, well past the tail kept in the page cache.
        let batchCount = Int(Log.pageCacheTailBytes >> 20) + 40
        let payload = values(100, size: 10_000)
        for i in 0..<batchCount {
            _ = try log.append(batch: makeBatch(records: payload))
            if i % 25 == 24 { try log.sync() }
        }
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

    /// After an fsync, the log's bytes older than the tail are out of the page cache, the tail is in.
    func testSyncDropsCleanPagesOlderThanTheTail() throws {
        let dir = temporaryDirectory()
        try XCTSkipIf(try cannotDropPages(dir), "this file system keeps clean pages in memory (tmpfs?)")
        let log = try Log(directory: dir, topic: "t", partition: 0, config: LogConfig())
        let payload = values(100, size: 10_000)
        let batchCount = Int(Log.pageCacheTailBytes >> 20) + 40
        for _ in 0..<batchCount { _ = try log.append(batch: makeBatch(records: payload)) }
        try log.sync()
        let file = (dir as NSString).appendingPathComponent("00000000000000000000.log")
        let size = Int64(try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int)
        let old = try residentFraction(file, from: 0, to: size - Log.pageCacheTailBytes - (1 << 20))
        let tail = try residentFraction(file, from: size - Log.pageCacheTailBytes + (1 << 20), to: size)
        XCTAssertLessThan(old, 0.05, "pages older than the tail still cached after fsync")
        XCTAssertGreaterThan(tail, 0.95, "the tail was dropped too")
        try log.close()
    }

    /// `WriteBehind` alone (no fsync by the log): once pages are clean, the next step's offer drops
    /// them — including the re-offered range behind the previous offer — and keeps the tail.
    func testWriteBehindDropsCleanPagesBehindTheTailAsAppendsGo() throws {
        let dir = temporaryDirectory()
        try XCTSkipIf(try cannotDropPages(dir), "this file system keeps clean pages in memory (tmpfs?)")
        let path = (dir as NSString).appendingPathComponent("wb.data")
        let fd = open(path, O_CREAT | O_RDWR, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 7, count: Int(WriteBehind.step))
        var wb = WriteBehind()
        var size: Int64 = 0
        func append() {
            let n = chunk.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(size)) }
            XCTAssertEqual(n, chunk.count)
            size += Int64(n)
            wb.appended(fd: fd, segmentBase: 0, size: size)
        }
        let steps = Int((WriteBehind.tailBytes + WriteBehind.reofferBytes) / WriteBehind.step) + 16
        for _ in 0..<steps { append() }
        XCTAssertEqual(wb.writebackStarted, size)
        // Make every page clean, then one more step: its offer covers the last `reofferBytes`
        // offered before plus the new step, all clean now.
        XCTAssertEqual(fdatasync(fd), 0)
        let offeredBefore = wb.offeredUpTo
        append()
        XCTAssertEqual(wb.offeredUpTo, offeredBefore + WriteBehind.step)
        let dropped = try residentFraction(path, from: offeredBefore - WriteBehind.reofferBytes, to: wb.offeredUpTo)
        let tail = try residentFraction(path, from: size - WriteBehind.tailBytes, to: size)
        XCTAssertLessThan(dropped, 0.05, "clean pages behind the tail still cached")
        XCTAssertGreaterThan(tail, 0.95, "the tail was dropped too")
    }

    /// Whether the file system under `dir` can drop clean pages at all (tmpfs, for one, cannot):
    /// a probe file is written, synced, offered to DONTNEED and checked.
    private func cannotDropPages(_ dir: String) throws -> Bool {
        let path = (dir as NSString).appendingPathComponent("probe")
        let fd = open(path, O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else { return true }
        defer {
            close(fd)
            unlink(path)
        }
        let bytes = [UInt8](repeating: 1, count: 1 << 20)
        guard bytes.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == bytes.count, fdatasync(fd) == 0 else { return true }
        _ = posix_fadvise(fd, 0, off_t(bytes.count), POSIX_FADV_DONTNEED)
        return try residentFraction(path, from: 0, to: Int64(bytes.count)) > 0.5
    }

    /// The fraction of the file's pages in [from, to) that are in the page cache (mincore).
    private func residentFraction(_ path: String, from: Int64, to: Int64) throws -> Double {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw POSIXError(.ENOENT) }
        defer { close(fd) }
        let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        let start = from / page * page
        let length = Int(to - start)
        precondition(length > 0)
        guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(start)), map != MAP_FAILED else {
            throw POSIXError(.ENOMEM)
        }
        defer { munmap(map, length) }
        let pages = (length + Int(page) - 1) / Int(page)
        var vector = [UInt8](repeating: 0, count: pages)
        XCTAssertEqual(mincore(map, length, &vector), 0)
        return Double(vector.filter { $0 & 1 == 1 }.count) / Double(pages)
    }
}
