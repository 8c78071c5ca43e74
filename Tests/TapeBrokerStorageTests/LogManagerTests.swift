import Foundation
import XCTest

@testable import TapeBroker

final class LogManagerTests: StorageTestCase {
    func testTopicNamesValidatedAsKafkaDoes() {
        for good in ["a", "tape.trades", "A-b_c.9", String(repeating: "x", count: 249)] {
            XCTAssertNoThrow(try LogManager.validateTopicName(good), good)
        }
        for bad in ["", ".", "..", "has space", "slash/", "ümlaut", String(repeating: "x", count: 250)] {
            XCTAssertThrowsError(try LogManager.validateTopicName(bad), bad) {
                XCTAssertEqual(($0 as? StorageError)?.code, .invalidRequest)
            }
        }
    }

    func testCreateReloadDeleteTopics() async throws {
        let dir = temporaryDirectory()
        var manager: LogManager? = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never))
        var compacted = LogConfig()
        compacted.cleanupPolicy = .compact
        compacted.segmentBytes = 12345
        try manager!.createTopic(name: "tape.candles", partitions: 3, config: compacted)
        try manager!.createTopic(name: "tape.trades", partitions: 2)
        XCTAssertThrowsError(try manager!.createTopic(name: "tape.trades", partitions: 1)) {
            XCTAssertEqual(($0 as? StorageError)?.code, .topicAlreadyExists)
        }
        XCTAssertThrowsError(try manager!.createTopic(name: "bad name", partitions: 1))
        XCTAssertThrowsError(try manager!.createTopic(name: "zero", partitions: 0))
        XCTAssertEqual(try manager!.ensureTopic(name: "tape.trades", partitions: 9).partitions, 2)
        XCTAssertEqual(try manager!.ensureTopic(name: "auto", partitions: 1).partitions, 1)
        try manager!.deleteTopic(name: "auto")
        XCTAssertNil(manager!.log(topic: "tape.trades", partition: 2))
        XCTAssertNil(manager!.log(topic: "nope", partition: 0))
        _ = try await manager!.appendDurably(topic: "tape.trades", partition: 1, batch: makeBatch(records: values(4)))
        _ = try await manager!.appendDurably(topic: "tape.candles", partition: 2, batch: makeBatch(records: values(1)))
        do {
            _ = try await manager!.appendDurably(topic: "nope", partition: 0, batch: makeBatch(records: values(1)))
            XCTFail("append to an unknown topic must fail")
        } catch let e as StorageError {
            XCTAssertEqual(e.code, .unknownTopic)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/tape.trades-1/00000000000000000000.log"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/topic-configs/tape.candles.json"))
        await manager!.shutdown()
        manager = nil

        manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never))
        XCTAssertEqual(manager!.topics.map(\.name), ["tape.candles", "tape.trades"])
        XCTAssertEqual(manager!.topics.map(\.partitions), [3, 2])
        XCTAssertEqual(manager!.topic(named: "tape.candles")?.config, compacted)
        XCTAssertEqual(manager!.topic(named: "tape.trades")?.config, LogConfig())
        XCTAssertEqual(manager!.log(topic: "tape.trades", partition: 1)?.logEndOffset, 4)
        XCTAssertEqual(manager!.log(topic: "tape.trades", partition: 0)?.logEndOffset, 0)
        XCTAssertEqual(manager!.log(topic: "tape.candles", partition: 2)?.logEndOffset, 1)
        XCTAssertEqual(manager!.partitionLog(topic: "tape.candles", partition: 0)?.config.segmentBytes, 12345)

        try manager!.deleteTopic(name: "tape.trades")
        XCTAssertThrowsError(try manager!.deleteTopic(name: "tape.trades"))
        XCTAssertNil(manager!.log(topic: "tape.trades", partition: 0))
        XCTAssertEqual(manager!.topics.map(\.name), ["tape.candles"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("tape.trades") }
        XCTAssertEqual(leftovers, [])
        // The name can be used again, empty.
        try manager!.createTopic(name: "tape.trades", partitions: 1)
        XCTAssertEqual(manager!.log(topic: "tape.trades", partition: 0)?.logEndOffset, 0)
        try manager!.deleteTopic(name: "tape.trades")
        await manager!.shutdown()
        manager = nil

        manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never))
        XCTAssertEqual(manager!.topics.map(\.name), ["tape.candles"])
        await manager!.shutdown()
    }

    func testServerFacingTopicStoreShape() async throws {
        let dir = temporaryDirectory()
        var manager: LogManager? = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .always))
        try manager!.createTopic(
            name: "c", partitions: 2, configs: ["cleanup.policy": "compact", "compression.type": "zstd"])
        XCTAssertThrowsError(try manager!.createTopic(name: "bad", partitions: 1, configs: ["segment.bytes": "x"])) {
            XCTAssertEqual(($0 as? StorageError)?.code, .invalidConfig)
        }
        XCTAssertThrowsError(try manager!.createTopic(name: "c", partitions: 1, configs: [:])) {
            XCTAssertEqual(($0 as? StorageError)?.code, .topicAlreadyExists)
        }
        XCTAssertEqual(manager!.topicNames(), ["c"])
        XCTAssertEqual(manager!.configs(of: "c"), ["cleanup.policy": "compact", "compression.type": "zstd"])
        XCTAssertNil(manager!.configs(of: "nope"))
        XCTAssertEqual(manager!.topic(named: "c")?.config.cleanupPolicy, .compact)
        let logs = try XCTUnwrap(manager!.partitionLogs(of: "c"))
        XCTAssertEqual(logs.count, 2)
        _ = try logs[1].append(batch: makeBatch(records: values(3)))
        try await manager!.waitDurable(logs[1])
        XCTAssertEqual((logs[1] as? Log)?.durableEndOffset, 3)
        try await manager!.offsetStore.commit(group: "g", offsets: [("c", 1, 3, "")])
        await manager!.shutdown()
        manager = nil

        manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .always))
        XCTAssertEqual(manager!.configs(of: "c"), ["cleanup.policy": "compact", "compression.type": "zstd"])
        XCTAssertEqual(manager!.partitionLogs(of: "c")?[1].logEndOffset, 3)
        XCTAssertEqual(manager!.offsetStore.fetch(group: "g", topic: "c", partition: 1)?.offset, 3)
        try manager!.deleteTopic(name: "c")
        XCTAssertNil(manager!.offsetStore.fetch(group: "g", topic: "c", partition: 1), "offsets of a deleted topic go too")
        await manager!.shutdown()
    }

    func testDataDirectoryIsLockedWhileOpen() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never))
        XCTAssertThrowsError(try LogManager(configuration: .init(dataDirectory: dir))) {
            XCTAssertTrue("\($0)".contains("in use"), "\($0)")
        }
        await manager.shutdown()
        // Released by shutdown, even while the first object is still alive.
        let second = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never))
        await second.shutdown()
        _ = manager
    }

    func testAdoptsPartitionDirectoriesWithoutConfigAndFinishesInterruptedDelete() async throws {
        let dir = temporaryDirectory()
        do {
            let log = try Log(directory: "\(dir)/orphan-1", topic: "orphan", partition: 1)
            _ = try log.append(batch: makeBatch(records: values(2)))
            try log.close()
        }
        // A delete interrupted after the rename: config still there, data renamed.
        try FileManager.default.createDirectory(atPath: "\(dir)/gone-0.deleted", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(dir)/topic-configs", withIntermediateDirectories: true)
        try Data("{\"version\":1,\"name\":\"gone\",\"partitions\":1,\"configs\":{}}".utf8)
            .write(to: URL(fileURLWithPath: "\(dir)/topic-configs/gone.json"))
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never))
        XCTAssertEqual(manager.topics.map(\.name), ["orphan"])
        XCTAssertEqual(manager.topic(named: "orphan")?.partitions, 2)
        XCTAssertEqual(manager.log(topic: "orphan", partition: 1)?.logEndOffset, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/gone-0.deleted"))
        await manager.shutdown()
    }

    func testGroupCommitSharesFsyncsAmongConcurrentAppends() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .always))
        try manager.createTopic(name: "gc", partitions: 1)
        let appends = 300
        let batch = makeBatch(records: values(1, size: 100))
        let offsets = try await withThrowingTaskGroup(of: Int64.self) { group in
            let log = manager.partitionLog(topic: "gc", partition: 0)!
            for _ in 0..<appends {
                group.addTask {
                    let info = try await manager.appendDurably(topic: "gc", partition: 0, batch: batch)
                    // Acknowledged only once fsynced.
                    XCTAssertGreaterThan(log.durableEndOffset, info.lastOffset)
                    return info.baseOffset
                }
            }
            var all: [Int64] = []
            for try await o in group { all.append(o) }
            return all
        }
        XCTAssertEqual(offsets.sorted(), (0..<Int64(appends)).map { $0 })
        let fsyncs = manager.partitionLog(topic: "gc", partition: 0)!.syncCount
        XCTAssertGreaterThan(fsyncs, 0)
        XCTAssertLessThan(fsyncs, appends, "group commit: \(fsyncs) fsyncs for \(appends) appends")
        XCTAssertLessThan(manager.fsyncCount, appends)
        XCTAssertGreaterThan(manager.flushRounds, 0)
        print("group commit: \(appends) appends, \(fsyncs) fsyncs, \(manager.flushRounds) rounds")
        await manager.shutdown()
    }

    func testAlwaysPolicyReturnsOnlyAfterSync() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .always))
        try manager.createTopic(name: "a", partitions: 1)
        let log = manager.partitionLog(topic: "a", partition: 0)!
        for i in 0..<5 {
            _ = try await manager.appendDurably(topic: "a", partition: 0, batch: makeBatch(records: values(1)))
            XCTAssertFalse(log.needsSync, "append \(i) returned before its fsync")
        }
        XCTAssertEqual(log.syncCount, 5 + 0, "one sequential append = one fsync")
        await manager.shutdown()
    }

    func testFailedFsyncIsReportedToWaitersAndRetried() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .always, maintenanceIntervalMs: 0))
        try manager.createTopic(name: "f", partitions: 1)
        let log = manager.partitionLog(topic: "f", partition: 0)!
        _ = try await manager.appendDurably(topic: "f", partition: 0, batch: makeBatch(records: values(1)))
        log.faults.failNextSync(errno: EIO)
        do {
            _ = try await manager.appendDurably(topic: "f", partition: 0, batch: makeBatch(records: values(2)))
            XCTFail("a failed fsync must fail the append")
        } catch let e as StorageError {
            XCTAssertEqual(e.code, .io)
            XCTAssertTrue(e.message.contains("fsync"), e.message)
        }
        XCTAssertEqual(log.durableEndOffset, 1, "not acknowledged as durable")
        XCTAssertTrue(log.needsSync, "still dirty, so the next sync retries")
        let info = try await manager.appendDurably(topic: "f", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(info.baseOffset, 3)
        XCTAssertEqual(log.durableEndOffset, 4)
        await manager.shutdown()
    }

    func testIntervalPolicyFlushesInBackground() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .interval(milliseconds: 20)))
        try manager.createTopic(name: "i", partitions: 1)
        let log = manager.partitionLog(topic: "i", partition: 0)!
        _ = try await manager.appendDurably(topic: "i", partition: 0, batch: makeBatch(records: values(1)))
        var waited = 0
        while log.needsSync && waited < 1000 {  // up to 10 s on a loaded machine
            try await Task.sleep(nanoseconds: 10_000_000)
            waited += 1
        }
        XCTAssertFalse(log.needsSync)
        XCTAssertGreaterThanOrEqual(log.syncCount, 1)
        await manager.shutdown()
    }

    func testBackgroundMaintenanceRunsRetention() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(
            configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 10))
        var del = LogConfig()
        del.segmentBytes = 300
        del.retentionBytes = 0
        try manager.createTopic(name: "del", partitions: 1, config: del)
        for _ in 0..<5 {
            _ = try await manager.appendDurably(topic: "del", partition: 0, batch: makeBatch(records: values(1, size: 150)))
        }
        let log = manager.partitionLog(topic: "del", partition: 0)!
        var waited = 0
        while log.segmentCount > 1 && waited < 1000 {  // up to 10 s on a loaded machine
            try await Task.sleep(nanoseconds: 10_000_000)
            waited += 1
        }
        XCTAssertEqual(log.segmentCount, 1)
        XCTAssertEqual(log.logStartOffset, 4)
        await manager.shutdown()
    }

    func testMaintenanceAppliesRetentionAndCompaction() async throws {
        let dir = temporaryDirectory()
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0))
        var del = LogConfig()
        del.segmentBytes = 300
        del.retentionBytes = 0
        try manager.createTopic(name: "del", partitions: 1, config: del)
        var cmp = LogConfig()
        cmp.segmentBytes = 300
        cmp.cleanupPolicy = .compact
        try manager.createTopic(name: "cmp", partitions: 1, config: cmp)
        for i in 0..<10 {
            let b = makeBatch(records: [TestRecord(key: "same", value: "v\(i)" + String(repeating: "x", count: 100))])
            _ = try await manager.appendDurably(topic: "del", partition: 0, batch: b)
            _ = try await manager.appendDurably(topic: "cmp", partition: 0, batch: b)
        }
        let result = manager.runMaintenance(now: 1_700_000_000_000)
        XCTAssertGreaterThan(result.segmentsDeleted, 0)
        XCTAssertGreaterThan(result.recordsCompacted, 0)
        XCTAssertEqual(manager.partitionLog(topic: "del", partition: 0)!.segmentCount, 1)
        XCTAssertEqual(manager.partitionLog(topic: "cmp", partition: 0)!.logStartOffset, 0, "compact topics keep their start")
        await manager.shutdown()
    }
}

final class OffsetStoreTests: StorageTestCase {
    func testCommitFetchSurvivesReopen() async throws {
        let path = temporaryDirectory() + "/group-offsets.log"
        var store: OffsetStore? = try OffsetStore(path: path, fsyncPolicy: .always, clock: { 42 })
        try await store!.commit(group: "g1", offsets: [("t", 0, 10, "m0"), ("t", 1, 20, "")])
        try await store!.commit(group: "g2", offsets: [("u", 0, 5, "x")])
        try await store!.commit(group: "g1", offsets: [("t", 0, 11, "m1")])
        XCTAssertEqual(store!.fetch(group: "g1", topic: "t", partition: 0)?.offset, 11)
        await store!.shutdown()
        store = nil

        store = try OffsetStore(path: path, fsyncPolicy: .always)
        XCTAssertEqual(store!.groups(), ["g1", "g2"])
        XCTAssertEqual(
            store!.fetch(group: "g1"),
            [
                StoredOffset(topic: "t", partition: 0, offset: 11, metadata: "m1", commitTimestamp: 42),
                StoredOffset(topic: "t", partition: 1, offset: 20, metadata: "", commitTimestamp: 42),
            ])
        XCTAssertNil(store!.fetch(group: "g2", topic: "u", partition: 1))
        try await store!.deleteGroup("g2")
        await store!.shutdown()
        store = try OffsetStore(path: path, fsyncPolicy: .never)
        XCTAssertEqual(store!.groups(), ["g1"])
        XCTAssertEqual(store!.fetch(group: "g2"), [])
        await store!.shutdown()
        XCTAssertThrowsError(try store!.commitNow(group: "g", offsets: [StoredOffset(topic: "t", partition: 0, offset: 1)])) {
            XCTAssertEqual(($0 as? StorageError)?.code, .closed)
        }
    }

    func testCommitNowRemoveTopicAndLeaderEpochSurviveReopen() async throws {
        let path = temporaryDirectory() + "/group-offsets.log"
        var store: OffsetStore? = try OffsetStore(path: path, fsyncPolicy: .always, clock: { 7 })
        try store!.commitNow(
            group: "g",
            offsets: [
                StoredOffset(topic: "a", partition: 0, offset: 5, leaderEpoch: 3),
                StoredOffset(topic: "b", partition: 0, offset: 6, metadata: "m", commitTimestamp: 99),
            ])
        try await store!.commit(group: "h", offsets: [StoredOffset(topic: "a", partition: 1, offset: 1)])
        try store!.removeTopic("a")
        await store!.shutdown()
        store = nil
        store = try OffsetStore(path: path, fsyncPolicy: .never)
        XCTAssertEqual(store!.groups(), ["g"], "h only had topic a")
        XCTAssertEqual(
            store!.fetch(group: "g"),
            [StoredOffset(topic: "b", partition: 0, offset: 6, metadata: "m", commitTimestamp: 99, leaderEpoch: -1)])
        try store!.commitNow(group: "g", offsets: [StoredOffset(topic: "a", partition: 0, offset: 8, leaderEpoch: 4)])
        await store!.shutdown()
        store = try OffsetStore(path: path, fsyncPolicy: .never)
        XCTAssertEqual(store!.fetch(group: "g", topic: "a", partition: 0)?.leaderEpoch, 4)
        // Committed by the second store (wall clock), not the first (clock 7).
        XCTAssertGreaterThan(store!.fetch(group: "g", topic: "a", partition: 0)?.commitTimestamp ?? 0, 1_600_000_000_000)
        await store!.shutdown()
    }

    func testTornTailIsCutAndLaterCommitsWork() async throws {
        let path = temporaryDirectory() + "/group-offsets.log"
        var store: OffsetStore? = try OffsetStore(path: path, fsyncPolicy: .never)
        try await store!.commit(group: "g", offsets: [("t", 0, 1, "")])
        try await store!.commit(group: "g", offsets: [("t", 0, 2, ""), ("t", 1, 7, "")])
        await store!.shutdown()
        store = nil
        let good = fileSize(path)
        // A third commit torn in the middle of its frame.
        let fh = FileHandle(forUpdatingAtPath: path)!
        try fh.seekToEnd()
        try fh.write(contentsOf: Data([0, 0, 0, 40, 1, 2, 3, 4, 1, 0]))
        try fh.close()

        store = try OffsetStore(path: path, fsyncPolicy: .never)
        XCTAssertEqual(fileSize(path), good)
        XCTAssertEqual(store!.fetch(group: "g", topic: "t", partition: 0)?.offset, 2)
        XCTAssertEqual(store!.fetch(group: "g", topic: "t", partition: 1)?.offset, 7)
        try await store!.commit(group: "g", offsets: [("t", 0, 3, "")])
        await store!.shutdown()

        // A flipped byte in the last frame: that frame is dropped, earlier ones kept.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        store = try OffsetStore(path: path, fsyncPolicy: .never)
        XCTAssertEqual(store!.fetch(group: "g", topic: "t", partition: 0)?.offset, 2)
        await store!.shutdown()
    }

    func testRewriteKeepsStateAndShrinksFile() async throws {
        let path = temporaryDirectory() + "/group-offsets.log"
        var store: OffsetStore? = try OffsetStore(path: path, fsyncPolicy: .never, compactionBytes: 2000)
        for i in 0..<500 {
            try await store!.commit(group: "g\(i % 3)", offsets: [("t", Int32(i % 4), Int64(i), "meta")])
        }
        XCTAssertGreaterThan(store!.rewriteCount, 0)
        XCTAssertLessThan(store!.fileSize, 4000)
        let before = store!.groups().map { store!.fetch(group: $0) }
        await store!.shutdown()
        store = try OffsetStore(path: path, fsyncPolicy: .never)
        XCTAssertEqual(store!.groups().map { store!.fetch(group: $0) }, before)
        XCTAssertEqual(store!.fetch(group: "g2", topic: "t", partition: 3)?.offset, 491)
        await store!.shutdown()
    }

    func testDiskFullOnCommitKeepsEarlierOffsets() async throws {
        let path = temporaryDirectory() + "/group-offsets.log"
        let store = try OffsetStore(path: path, fsyncPolicy: .always)
        try await store.commit(group: "g", offsets: [("t", 0, 1, "")])
        let size = fileSize(path)
        store.faults.failNextWrite(errno: ENOSPC, afterWriting: 5)
        do {
            try await store.commit(group: "g", offsets: [("t", 0, 2, "")])
            XCTFail("expected disk full")
        } catch let e as StorageError {
            XCTAssertEqual(e.code, .diskFull)
        }
        XCTAssertEqual(fileSize(path), size)
        XCTAssertEqual(store.fetch(group: "g", topic: "t", partition: 0)?.offset, 1)
        try await store.commit(group: "g", offsets: [("t", 0, 3, "")])
        await store.shutdown()
        let reopened = try OffsetStore(path: path, fsyncPolicy: .never)
        XCTAssertEqual(reopened.fetch(group: "g", topic: "t", partition: 0)?.offset, 3)
        await reopened.shutdown()
    }
}
