import Foundation
import XCTest

@testable import TapeBroker

/// DeleteRecords (log start offset), CreatePartitions and committed-offset deletion on disk: each
/// survives reopening the LogManager.
final class AdminStorageTests: StorageTestCase {
    func manager(_ dir: String, maxPartitions: Int = 10_000) throws -> LogManager {
        try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0, maxPartitions: maxPartitions))
    }

    func testDeleteRecordsDeletesWholeSegmentsAndSurvivesReopening() async throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 600
        var m = try manager(dir)
        try m.createTopic(name: "t", partitions: 1, config: config)
        var log = try XCTUnwrap(m.partitionLog(topic: "t", partition: 0))
        for i in 0..<20 { _ = try log.append(batch: makeBatch(records: values(2, prefix: "r\(i)-", size: 60))) }
        XCTAssertEqual(log.logEndOffset, 40)
        let segmentsBefore = log.segmentBaseOffsets
        XCTAssertGreaterThan(segmentsBefore.count, 3)
        let target = segmentsBefore[2] + 1  // inside the third segment
        XCTAssertEqual(try log.deleteRecords(before: target), target)
        XCTAssertEqual(log.logStartOffset, target)
        XCTAssertEqual(log.segmentBaseOffsets, Array(segmentsBefore.dropFirst(2)), "the two segments wholly below are deleted")
        XCTAssertThrowsError(try log.read(from: target - 1, maxBytes: 1 << 20)) { XCTAssertEqual(($0 as? StorageError)?.code, .offsetOutOfRange) }
        XCTAssertNoThrow(try log.read(from: target, maxBytes: 1 << 20))
        XCTAssertEqual(try log.deleteRecords(before: 1), target, "a lower offset changes nothing")
        XCTAssertThrowsError(try log.deleteRecords(before: 41)) { XCTAssertEqual(($0 as? StorageError)?.code, .offsetOutOfRange) }
        XCTAssertThrowsError(try log.deleteRecords(before: -2)) { XCTAssertEqual(($0 as? StorageError)?.code, .offsetOutOfRange) }
        await m.shutdown()

        m = try manager(dir)
        log = try XCTUnwrap(m.partitionLog(topic: "t", partition: 0))
        XCTAssertEqual(log.logStartOffset, target, "the start offset survives a clean restart")
        XCTAssertEqual(log.logEndOffset, 40)
        XCTAssertThrowsError(try log.read(from: target - 1, maxBytes: 1 << 20))
        // -1: up to the high watermark; appends continue after it.
        XCTAssertEqual(try log.deleteRecords(before: -1), 40)
        XCTAssertEqual(log.segmentCount, 1, "only the active segment is left")
        let next = try log.append(batch: makeBatch(records: values(1)))
        XCTAssertEqual(next.baseOffset, 40)
        XCTAssertEqual(next.logStartOffset, 40)
        log.closeWithoutSync()  // as a crash: no clean-shutdown marker
        await m.shutdown()
        m = try manager(dir)
        log = try XCTUnwrap(m.partitionLog(topic: "t", partition: 0))
        XCTAssertEqual(log.logStartOffset, 40)
        XCTAssertEqual(log.logEndOffset, 41)
        await m.shutdown()
    }

    func testASegmentLeftBelowTheCheckpointByACrashIsDeletedAtOpen() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 600
        var log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        for i in 0..<10 { _ = try log.append(batch: makeBatch(records: values(2, prefix: "r\(i)-", size: 60))) }
        let bases = log.segmentBaseOffsets
        XCTAssertGreaterThan(bases.count, 2)
        try log.close()
        // The checkpoint was written, the crash came before the segments went.
        try Data("\(bases[2])\n".utf8).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("log-start-offset")))
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertEqual(log.logStartOffset, bases[2])
        XCTAssertEqual(log.segmentBaseOffsets.first, bases[2])
        try log.close()
        // A checkpoint past the end (the tail was cut by recovery) stops at the end; garbage is ignored.
        try Data("999999\n".utf8).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("log-start-offset")))
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertEqual(log.logStartOffset, 20)
        try log.close()
        try Data("-5 nonsense".utf8).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("log-start-offset")))
        log = try Log(directory: dir, topic: "t", partition: 0, config: config)
        XCTAssertEqual(log.logStartOffset, log.segmentBaseOffsets[0])
        try log.close()
    }

    func testCreatePartitionsSurvivesReopeningAndRespectsTheLimit() async throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.retentionMs = 1234
        var m = try manager(dir, maxPartitions: 6)
        try m.createTopic(name: "t", partitions: 2, config: config)
        _ = try m.partitionLog(topic: "t", partition: 1)!.append(batch: makeBatch(records: values(3)))
        try m.createPartitions(name: "t", count: 5)
        XCTAssertEqual(m.partitionLogs(of: "t")?.count, 5)
        _ = try m.partitionLog(topic: "t", partition: 4)!.append(batch: makeBatch(records: values(2)))
        XCTAssertThrowsError(try m.createPartitions(name: "t", count: 7)) { XCTAssertEqual(($0 as? StorageError)?.code, .partitionLimit, "\($0)") }
        XCTAssertThrowsError(try m.createPartitions(name: "t", count: 5)) { XCTAssertEqual(($0 as? StorageError)?.code, .invalidRequest) }
        XCTAssertThrowsError(try m.createPartitions(name: "t", count: 3)) { XCTAssertEqual(($0 as? StorageError)?.code, .invalidRequest) }
        XCTAssertThrowsError(try m.createPartitions(name: "nope", count: 3)) { XCTAssertEqual(($0 as? StorageError)?.code, .unknownTopic) }
        await m.shutdown()

        m = try manager(dir, maxPartitions: 6)
        XCTAssertEqual(m.topic(named: "t")?.partitions, 5)
        XCTAssertEqual(m.topic(named: "t")?.config.retentionMs, 1234, "the topic keeps its config")
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 1)?.logEndOffset, 3)
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 4)?.logEndOffset, 2)
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 4)?.config.retentionMs, 1234, "new partitions get the topic's config")
        // Deleting the grown topic removes every partition directory.
        try m.deleteTopic(name: "t")
        XCTAssertFalse(((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains { $0.hasPrefix("t-") })
        await m.shutdown()
    }

    func testAPartitionDirectoryLeftByAnInterruptedGrowthIsIgnoredThenCleared() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        try m.createTopic(name: "t", partitions: 1)
        await m.shutdown()
        // A crash after the new directory was made, before the topic file was rewritten.
        let stale = try Log(directory: (dir as NSString).appendingPathComponent("t-1"), topic: "t", partition: 1)
        stale.closeWithoutSync()
        m = try manager(dir)
        XCTAssertEqual(m.topic(named: "t")?.partitions, 1, "the growth was not committed")
        try m.createPartitions(name: "t", count: 2)
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 1)?.logEndOffset, 0)
        await m.shutdown()
        m = try manager(dir)
        XCTAssertEqual(m.topic(named: "t")?.partitions, 2)
        await m.shutdown()
    }

    func testDeletedGroupsAndOffsetsStayDeletedAfterReopening() async throws {
        let dir = temporaryDirectory()
        let path = (dir as NSString).appendingPathComponent("offsets.log")
        var store = try OffsetStore(path: path, fsyncPolicy: .always)
        try await store.commit(group: "a", offsets: [("t", 0, 5, ""), ("t", 1, 6, ""), ("u", 0, 7, "m")])
        try await store.commit(group: "b", offsets: [("t", 0, 8, "")])
        try await store.deleteOffsets(group: "a", partitions: [("t", 1), ("u", 0), ("nope", 3)])
        try await store.deleteOffsets(group: "none", partitions: [("t", 0)])
        try await store.deleteGroup("b")
        XCTAssertEqual(store.fetch(group: "a").map(\.partition), [0])
        XCTAssertEqual(store.groups(), ["a"])
        await store.shutdown()
        store = try OffsetStore(path: path, fsyncPolicy: .always)
        XCTAssertEqual(store.fetch(group: "a").map { "\($0.topic)-\($0.partition)=\($0.offset)" }, ["t-0=5"])
        XCTAssertEqual(store.groups(), ["a"])
        // Deleting a group's last offsets forgets the group.
        try await store.deleteOffsets(group: "a", partitions: [("t", 0)])
        XCTAssertEqual(store.groups(), [])
        await store.shutdown()
        store = try OffsetStore(path: path, fsyncPolicy: .always)
        XCTAssertEqual(store.groups(), [])
        await store.shutdown()
    }
}
