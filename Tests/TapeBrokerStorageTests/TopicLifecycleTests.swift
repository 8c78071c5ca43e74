import Foundation
import XCTest

@testable import TapeBroker

/// Topic creation and deletion are all or nothing, every legal name works, and the manager always
/// opens its own data directory, whatever an interrupted operation or a damaged file left there.
final class TopicLifecycleTests: StorageTestCase {
    func manager(_ dir: String, maxPartitions: Int = 10_000, cache: Int? = nil) throws -> LogManager {
        try LogManager(
            configuration: .init(
                dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0, maxPartitions: maxPartitions,
                openFileCacheSize: cache))
    }

    func entries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// Names up to Kafka's 249 characters: created (the config's temp file used to pass 255 bytes),
    /// deleted (the `.deleted` rename used to pass 255 bytes, so the topic came back after a restart).
    func testLongestNamesAreCreatedDeletedAndStayDeletedAfterRestart() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        let names = [String(repeating: "a", count: 246), String(repeating: "b", count: 249), String(repeating: "c", count: 249) + ""]
        for (i, name) in names.enumerated() {
            try m.createTopic(name: name, partitions: Int32(i + 2))
            _ = try m.partitionLog(topic: name, partition: 1)!.append(batch: makeBatch(records: values(2)))
        }
        await m.shutdown()
        m = try manager(dir)
        XCTAssertEqual(Set(m.topicNames()), Set(names))
        XCTAssertEqual(m.partitionLog(topic: names[1], partition: 1)?.logEndOffset, 2)
        for name in names.prefix(2) { try m.deleteTopic(name: name) }
        XCTAssertEqual(m.topicNames(), [names[2]])
        XCTAssertFalse(entries(dir).contains { $0.hasPrefix("aaaa") || $0.hasPrefix("bbbb") }, "\(entries(dir))")
        await m.shutdown()
        m = try manager(dir)
        XCTAssertEqual(m.topicNames(), [names[2]], "deleted topics stay deleted")
        XCTAssertEqual(entries((dir as NSString).appendingPathComponent(".trash")), [])
        XCTAssertEqual(entries((dir as NSString).appendingPathComponent(".pending")), [])
        await m.shutdown()
    }

    /// Kafka's Topic.hasCollision: foo.bar and foo_bar cannot both exist (metric names clash).
    func testNamesThatDifferOnlyByDotAndUnderscoreCollide() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        try m.createTopic(name: "foo.bar", partitions: 1)
        for other in ["foo_bar", "foo.bar_"] where other == "foo_bar" {
            XCTAssertThrowsError(try m.createTopic(name: other, partitions: 1)) { error in
                XCTAssertEqual((error as? StorageError)?.code, .topicCollision, "\(error)")
                XCTAssertTrue("\(error)".contains("collides with existing topic: foo.bar"), "\(error)")
            }
            XCTAssertThrowsError(try m.ensureTopic(name: other, partitions: 1))
        }
        try m.createTopic(name: "foo-bar", partitions: 1)  // '-' is not part of the rule
        await m.shutdown()
        m = try manager(dir)
        XCTAssertThrowsError(try m.createTopic(name: "foo_bar", partitions: 1), "still refused after a restart")
        try m.deleteTopic(name: "foo.bar")
        XCTAssertNoThrow(try m.createTopic(name: "foo_bar", partitions: 1), "free once the other is deleted")
        await m.shutdown()
    }

    func testTotalPartitionsAreLimited() async throws {
        let dir = temporaryDirectory()
        let m = try manager(dir, maxPartitions: 10)
        try m.createTopic(name: "a", partitions: 6)
        XCTAssertThrowsError(try m.createTopic(name: "b", partitions: 5)) { error in
            XCTAssertEqual((error as? StorageError)?.code, .partitionLimit, "\(error)")
            XCTAssertTrue("\(error)".contains("the limit is 10"), "\(error)")
        }
        XCTAssertFalse(entries(dir).contains("b-0"), "nothing created")
        try m.createTopic(name: "b", partitions: 4)
        XCTAssertThrowsError(try m.ensureTopic(name: "c", partitions: 1))
        XCTAssertEqual(m.partitionCount, 10)
        try m.deleteTopic(name: "a")
        XCTAssertNoThrow(try m.createTopic(name: "c", partitions: 6))
        await m.shutdown()
    }

    /// A creation that fails halfway (here: out of descriptors at the 4th of 8 partitions) leaves no
    /// directory, config or intent, says "too many open files", and the next start is clean.
    func testFailedCreationIsRolledBackAndSaysTooManyOpenFiles() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        try m.createTopic(name: "ok", partitions: 1)
        m.failNextCreationAfterPartitions = 3
        XCTAssertThrowsError(try m.createTopic(name: "half", partitions: 8)) { error in
            XCTAssertEqual((error as? StorageError)?.code, .tooManyOpenFiles, "\(error)")
            XCTAssertTrue("\(error)".contains("too many open files"), "\(error)")
            XCTAssertTrue("\(error)".contains("ulimit -n"), "\(error)")
        }
        XCTAssertNil(m.topic(named: "half"))
        XCTAssertEqual(entries(dir).filter { $0.hasPrefix("half") }, [])
        XCTAssertEqual(entries((dir as NSString).appendingPathComponent("topic-configs")), ["ok.json"])
        XCTAssertEqual(entries((dir as NSString).appendingPathComponent(".pending")), [])
        // The same name works afterwards.
        try m.createTopic(name: "half", partitions: 8)
        await m.shutdown()
        m = try manager(dir)
        XCTAssertEqual(m.topicNames(), ["half", "ok"])
        XCTAssertEqual(m.topic(named: "half")?.partitions, 8)
        await m.shutdown()
    }

    /// What a crash in the middle of a creation leaves: the intent and some partition directories,
    /// no config. The next start rolls it back (one log line) instead of adopting a topic nobody
    /// was told exists.
    func testCreationInterruptedByACrashIsRolledBackAtStart() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        try m.createTopic(name: "keep", partitions: 1)
        _ = try m.partitionLog(topic: "keep", partition: 0)!.append(batch: makeBatch(records: values(3)))
        await m.shutdown()
        // Crash image: .pending/<id>.create plus two of five partition directories (empty files).
        let topicFile = #"{"version":1,"name":"crashed","partitions":5,"configs":{}}"#
        try Array(topicFile.utf8).write(to: (dir as NSString).appendingPathComponent(".pending/0000000000-1.create"))
        for p in 0..<2 {
            let pdir = (dir as NSString).appendingPathComponent("crashed-\(p)")
            try FileManager.default.createDirectory(atPath: pdir, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: pdir + "/00000000000000000000.log", contents: Data())
        }
        m = try manager(dir)
        XCTAssertEqual(m.topicNames(), ["keep"])
        XCTAssertEqual(m.partitionLog(topic: "keep", partition: 0)?.logEndOffset, 3)
        XCTAssertEqual(entries(dir).filter { $0.hasPrefix("crashed") }, [])
        XCTAssertEqual(entries((dir as NSString).appendingPathComponent(".pending")), [])
        try m.createTopic(name: "crashed", partitions: 5)
        await m.shutdown()
    }

    /// Older versions wrote the config first and then the partitions: a creation that failed (out of
    /// descriptors) left a config naming partitions that do not exist, and the broker then refused
    /// to start. Now such a topic is finished at start.
    func testConfigWithMissingPartitionDirectoriesIsFinishedAtStart() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        await m.shutdown()
        let topicFile = #"{"version":1,"name":"old","partitions":4,"configs":{"segment.bytes":"1048576"}}"#
        try Array(topicFile.utf8).write(to: (dir as NSString).appendingPathComponent("topic-configs/old.json"))
        try FileManager.default.createDirectory(atPath: (dir as NSString).appendingPathComponent("old-0"), withIntermediateDirectories: true)
        m = try manager(dir)
        XCTAssertEqual(m.topic(named: "old")?.partitions, 4)
        XCTAssertEqual(m.topic(named: "old")?.config.segmentBytes, 1_048_576)
        _ = try m.partitionLog(topic: "old", partition: 3)!.append(batch: makeBatch(records: values(1)))
        await m.shutdown()
    }

    /// A config file that is not JSON (torn by an old version, edited by hand): moved to
    /// `.quarantine/`, the partition data adopted and served; the broker starts.
    func testUnreadableConfigIsMovedAsideAndTheDataServed() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        try m.createTopic(name: "t", partitions: 2)
        _ = try m.partitionLog(topic: "t", partition: 1)!.append(batch: makeBatch(records: values(4)))
        await m.shutdown()
        try Array("{ not json".utf8).write(to: (dir as NSString).appendingPathComponent("topic-configs/t.json"))
        try Array("garbage".utf8).write(to: (dir as NSString).appendingPathComponent(".pending/zzz.create"))
        m = try manager(dir)
        XCTAssertEqual(m.topic(named: "t")?.partitions, 2)
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 1)?.logEndOffset, 4)
        let quarantined = entries((dir as NSString).appendingPathComponent(".quarantine"))
        XCTAssertEqual(quarantined.count, 2, "the config and the unreadable intent: \(quarantined)")
        await m.shutdown()
    }

    /// A delete interrupted after its intent was written (the config and directories still there):
    /// finished at the next start.
    func testDeleteInterruptedByACrashIsFinishedAtStart() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        try m.createTopic(name: String(repeating: "d", count: 249), partitions: 3)
        try m.createTopic(name: "other", partitions: 1)
        await m.shutdown()
        let intent = #"{"topic":"\#(String(repeating: "d", count: 249))","partitions":3}"#
        try Array(intent.utf8).write(to: (dir as NSString).appendingPathComponent(".pending/0000000000-2.delete"))
        m = try manager(dir)
        XCTAssertEqual(m.topicNames(), ["other"])
        XCTAssertEqual(entries(dir).filter { $0.hasPrefix("ddd") }, [])
        XCTAssertEqual(entries((dir as NSString).appendingPathComponent(".pending")), [])
        await m.shutdown()
    }

    /// Idle partitions hold no descriptors: with a cache of 32 files, 300 partitions (900 files)
    /// stay within it while being created, written, read and reopened. Before, each partition held
    /// three descriptors for as long as the broker ran.
    func testThousandsOfFilesStayWithinTheOpenFileCache() async throws {
        func openDescriptors() -> Int { entries("/proc/self/fd").count }
        let dir = temporaryDirectory()
        let before = openDescriptors()
        var m = try manager(dir, cache: 32)
        try m.createTopic(name: "many", partitions: 300)
        XCTAssertLessThanOrEqual(openDescriptors() - before, 32 + 8)
        for p in 0..<300 { _ = try m.partitionLog(topic: "many", partition: Int32(p))!.append(batch: makeBatch(records: values(1))) }
        for p in 0..<300 {
            let r = try m.partitionLog(topic: "many", partition: Int32(p))!.read(from: 0, maxBytes: 1 << 20)
            XCTAssertEqual(parseBatches(r.records).flatMap(\.records).count, 1)
        }
        XCTAssertLessThanOrEqual(m.fileCache.openCount, 32)
        XCTAssertLessThanOrEqual(openDescriptors() - before, 32 + 8)
        XCTAssertGreaterThan(m.fileCache.evictions, 0)
        await m.shutdown()
        m = try manager(dir, cache: 32)
        XCTAssertLessThanOrEqual(openDescriptors() - before, 32 + 8)
        XCTAssertEqual(m.partitionLog(topic: "many", partition: 299)?.logEndOffset, 1)
        await m.shutdown()
        XCTAssertLessThanOrEqual(openDescriptors() - before, 2)
    }

    /// A topic whose partition cannot be opened at start (here: a file where its directory should
    /// be) is left out with one error line; the other topics are served and its name stays taken.
    func testTopicThatCannotBeOpenedIsLeftOutAndTheBrokerStarts() async throws {
        let dir = temporaryDirectory()
        var m = try manager(dir)
        try m.createTopic(name: "good", partitions: 1)
        try m.createTopic(name: "bad", partitions: 2)
        await m.shutdown()
        let partition = (dir as NSString).appendingPathComponent("bad-1")
        try FileManager.default.removeItem(atPath: partition)
        XCTAssertTrue(FileManager.default.createFile(atPath: partition, contents: Data("x".utf8)))
        m = try manager(dir)
        XCTAssertEqual(m.topicNames(), ["good"])
        XCTAssertThrowsError(try m.createTopic(name: "bad", partitions: 1)) { error in
            XCTAssertTrue("\(error)".contains("could not be opened at start"), "\(error)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("bad-0")), "its data is left alone")
        await m.shutdown()
    }

    func testStorageErrorNamesDescriptorExhaustion() {
        let e = storageError(errno: EMFILE, operation: "opening", path: "/x/y.log")
        XCTAssertEqual(e.code, .tooManyOpenFiles)
        XCTAssertTrue(e.message.hasPrefix("too many open files: opening /x/y.log failed"), e.message)
        XCTAssertEqual(storageError(errno: ENFILE, operation: "opening", path: "/x").code, .tooManyOpenFiles)
        XCTAssertTrue(storageError(errno: ENFILE, operation: "opening", path: "/x").message.contains("system-wide"))
    }
}
