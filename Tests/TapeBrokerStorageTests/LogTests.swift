import Foundation
import NIOCore
import XCTest

@testable import TapeBroker

final class LogTests: StorageTestCase {
    func openLog(_ dir: String, _ config: LogConfig = LogConfig()) throws -> Log {
        try Log(directory: dir, topic: "t", partition: 0, config: config)
    }

    func testAppendReadRoundTripRewritesOffsets() throws {
        let log = try openLog(temporaryDirectory())
        XCTAssertEqual(log.logEndOffset, 0)
        let b1 = makeBatch(baseOffset: 999, records: values(3))
        let b2 = makeBatch(baseOffset: -5, records: values(2, prefix: "w"))
        let i1 = try log.append(batch: b1)
        let i2 = try log.append(batch: b2)
        XCTAssertEqual(i1, LogAppendInfo(baseOffset: 0, lastOffset: 2, maxTimestamp: 1_700_000_000_000, logStartOffset: 0))
        XCTAssertEqual(i2.baseOffset, 3)
        XCTAssertEqual(i2.lastOffset, 4)
        XCTAssertEqual(log.logEndOffset, 5)

        let r = try log.read(from: 0, maxBytes: 1 << 20)
        XCTAssertEqual(r.highWatermark, 5)
        XCTAssertEqual(r.records.count, b1.count + b2.count)
        // Bytes are stored as received except the baseOffset field.
        XCTAssertEqual(Array(r.records[8..<b1.count]), Array(b1[8...]))
        let batches = parseBatches(r.records)
        XCTAssertEqual(batches.map(\.baseOffset), [0, 3])
        XCTAssertTrue(batches.allSatisfy(\.crcValid))
        XCTAssertEqual(batches.flatMap(\.records).map(\.offset), [0, 1, 2, 3, 4])
        XCTAssertEqual(batches.flatMap(\.records).map(\.value), ["v0", "v1", "v2", "w0", "w1"])
        // At the log end: empty, not an error.
        XCTAssertEqual(try log.read(from: 5, maxBytes: 100).records, [])
        XCTAssertThrowsError(try log.read(from: 6, maxBytes: 100)) {
            XCTAssertEqual(($0 as? StorageError)?.code, .offsetOutOfRange)
        }
        XCTAssertThrowsError(try log.read(from: -1, maxBytes: 100))
    }

    func testReadIntoABufferAppendsWhatReadReturns() throws {
        var config = LogConfig()
        config.segmentBytes = 300  // several segments
        let log = try openLog(temporaryDirectory(), config)
        for i in 0..<12 { _ = try log.append(batch: makeBatch(records: values(3, prefix: "p\(i)-"))) }
        XCTAssertGreaterThan(try XCTUnwrap(log.segmentBaseOffsets.count), 2)
        for from in [Int64(0), 1, 7, 20, 35, 36] {
            for maxBytes in [1, 150, 400, 1000, 1 << 20] {
                let expected = try log.read(from: from, maxBytes: maxBytes)
                // Appended after what the buffer holds, with its reader index moved on.
                var buffer = ByteBuffer(bytes: [9, 9, 9, 9, 9])
                buffer.moveReaderIndex(forwardBy: 3)
                let read = try log.read(from: from, maxBytes: maxBytes, appendingTo: &buffer)
                XCTAssertEqual(read.bytes, expected.records.count, "from \(from), max \(maxBytes)")
                XCTAssertEqual(read.highWatermark, expected.highWatermark)
                XCTAssertEqual(read.logStartOffset, expected.logStartOffset)
                XCTAssertEqual(Array(buffer.readableBytesView), [9, 9] + expected.records, "from \(from), max \(maxBytes)")
                // Whole batches, the first holding `from`; nothing at the log end.
                if from < 36 {
                    let first = try XCTUnwrap(parseBatches(expected.records).first)
                    XCTAssertTrue(first.baseOffset <= from && from <= first.records.last!.offset, "from \(from)")
                } else {
                    XCTAssertEqual(expected.records, [])
                }
            }
        }
        var untouched = ByteBuffer(bytes: [1, 2])
        XCTAssertThrowsError(try log.read(from: 37, maxBytes: 100, appendingTo: &untouched))
        XCTAssertEqual(Array(untouched.readableBytesView), [1, 2])
    }

    func testRejectsMalformedAndOversizedBatches() throws {
        var config = LogConfig()
        config.maxMessageBytes = 200
        let log = try openLog(temporaryDirectory(), config)
        var wrongMagic = makeBatch(records: values(1))
        wrongMagic[16] = 1
        XCTAssertThrowsError(try log.append(batch: wrongMagic)) { XCTAssertEqual(($0 as? StorageError)?.code, .corruptBatch) }
        XCTAssertThrowsError(try log.append(batch: Array(makeBatch(records: values(1)).dropLast()))) {
            XCTAssertEqual(($0 as? StorageError)?.code, .corruptBatch)
        }
        XCTAssertThrowsError(try log.append(batch: makeBatch(records: values(1, size: 300)))) {
            XCTAssertEqual(($0 as? StorageError)?.code, .messageTooLarge)
        }
        XCTAssertEqual(log.logEndOffset, 0)
    }

    func testReadFromInsideBatchReturnsWholeBatch() throws {
        let log = try openLog(temporaryDirectory())
        _ = try log.append(batch: makeBatch(records: values(5)))
        _ = try log.append(batch: makeBatch(records: values(5, prefix: "b")))
        for offset in Int64(0)...4 {
            let batches = parseBatches(try log.read(from: offset, maxBytes: 1 << 20).records)
            XCTAssertEqual(batches.first?.baseOffset, 0, "offset \(offset)")
            XCTAssertEqual(batches.count, 2)
        }
        let fromSeven = parseBatches(try log.read(from: 7, maxBytes: 1 << 20).records)
        XCTAssertEqual(fromSeven.map(\.baseOffset), [5])
        XCTAssertEqual(fromSeven[0].records.count, 5)
    }

    func testReadReturnsAtLeastOneWholeBatchAndOnlyWholeBatches() throws {
        let log = try openLog(temporaryDirectory())
        let b1 = makeBatch(records: values(10, size: 50))
        let b2 = makeBatch(records: values(10, size: 50))
        _ = try log.append(batch: b1)
        _ = try log.append(batch: b2)
        let tiny = try log.read(from: 0, maxBytes: 1)
        XCTAssertEqual(tiny.records.count, b1.count, "a batch larger than maxBytes is still returned whole")
        let oneAndAHalf = try log.read(from: 0, maxBytes: b1.count + b2.count / 2)
        XCTAssertEqual(oneAndAHalf.records.count, b1.count, "a batch that does not fit is left out")
        XCTAssertEqual(try log.read(from: 10, maxBytes: 1).records.count, b2.count)
        XCTAssertEqual(try log.read(from: 0, maxBytes: b1.count + b2.count).records.count, b1.count + b2.count)
    }

    func testSegmentsRollBySizeAndSurviveReopen() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 2000
        config.indexIntervalBytes = 300
        var log: Log? = try openLog(dir, config)
        var sent: [String] = []
        for i in 0..<40 {
            let recs = (0..<3).map { j in TestRecord(key: nil, value: "r\(i)-\(j)-" + String(repeating: "p", count: 40)) }
            sent += recs.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }
            _ = try log!.append(batch: makeBatch(records: recs))
        }
        XCTAssertGreaterThan(log!.segmentCount, 3)
        let bases = log!.segmentBaseOffsets
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        for base in bases {
            let stem = String(format: "%020lld", base)
            XCTAssertTrue(names.contains(stem + ".log"), "missing \(stem).log in \(names)")
            XCTAssertTrue(names.contains(stem + ".index"))
            XCTAssertTrue(names.contains(stem + ".timeindex"))
            XCTAssertLessThanOrEqual(fileSize((dir as NSString).appendingPathComponent(stem + ".log")), 2000)
        }
        try log!.close()
        log = nil

        let reopened = try openLog(dir, config)
        XCTAssertEqual(reopened.logEndOffset, 120)
        XCTAssertEqual(reopened.segmentBaseOffsets, bases)
        let all = try readAll(reopened).flatMap(\.records)
        XCTAssertEqual(all.map(\.offset), Array(0..<120))
        XCTAssertEqual(all.compactMap(\.value), sent)
        // Every offset finds its batch through the index of its segment.
        for offset in Int64(0)..<120 {
            let first = parseBatches(try reopened.read(from: offset, maxBytes: 1).records)
            XCTAssertEqual(first.count, 1)
            XCTAssertTrue((first[0].baseOffset...first[0].baseOffset + Int64(first[0].lastOffsetDelta)).contains(offset))
        }
        XCTAssertEqual(try reopened.append(batch: makeBatch(records: values(1))).baseOffset, 120)
    }

    func testSegmentsRollByAge() throws {
        var config = LogConfig()
        config.segmentMs = 60_000
        let log = try openLog(temporaryDirectory(), config)
        let t0: Int64 = 1_700_000_000_000
        _ = try log.append(batch: makeBatch(baseTimestamp: t0, records: values(1)))
        _ = try log.append(batch: makeBatch(baseTimestamp: t0 + 30_000, records: values(1)))
        XCTAssertEqual(log.segmentCount, 1)
        _ = try log.append(batch: makeBatch(baseTimestamp: t0 + 61_000, records: values(1)))
        XCTAssertEqual(log.segmentCount, 2)
        XCTAssertEqual(log.segmentBaseOffsets, [0, 2])
    }

    func testRetentionBySize() throws {
        var config = LogConfig()
        config.segmentBytes = 1000
        config.retentionMs = -1
        let log = try openLog(temporaryDirectory(), config)
        for _ in 0..<30 { _ = try log.append(batch: makeBatch(records: values(2, size: 100))) }
        let before = log.segmentCount
        XCTAssertGreaterThan(before, 4)
        XCTAssertEqual(try log.enforceRetention(now: 0), 0, "no limit set yet")
        var c = log.config
        c.retentionBytes = 2500
        log.config = c
        let deleted = try log.enforceRetention(now: 0)
        XCTAssertGreaterThan(deleted, 0)
        XCTAssertEqual(log.segmentCount, before - deleted)
        XCTAssertLessThanOrEqual(log.sizeInBytes, 2500 + 1000)
        XCTAssertEqual(log.logStartOffset, log.segmentBaseOffsets[0])
        XCTAssertGreaterThan(log.logStartOffset, 0)
        XCTAssertThrowsError(try log.read(from: 0, maxBytes: 100))
        XCTAssertEqual(parseBatches(try log.read(from: log.logStartOffset, maxBytes: 1).records).first?.baseOffset, log.logStartOffset)
        XCTAssertEqual(log.logEndOffset, 60)
    }

    func testRetentionByTimeNeverDeletesActiveSegment() throws {
        var config = LogConfig()
        config.segmentBytes = 500
        config.retentionMs = 3_600_000
        let log = try openLog(temporaryDirectory(), config)
        let t0: Int64 = 1_700_000_000_000
        for i in 0..<10 {
            _ = try log.append(batch: makeBatch(baseTimestamp: t0 + Int64(i) * 600_000, records: values(2, size: 150)))
        }
        let segments = log.segmentCount
        XCTAssertGreaterThan(segments, 3)
        XCTAssertEqual(try log.enforceRetention(now: t0 + 3_600_000), 0, "nothing is an hour old yet")
        // Newest record of batch i is t0 + i*10min; an hour after batch 4, batches 0...3 (segments) expire.
        let deleted = try log.enforceRetention(now: t0 + 4 * 600_000 + 3_600_000 + 1)
        XCTAssertGreaterThan(deleted, 0)
        for batch in try readAll(log) {
            XCTAssertGreaterThanOrEqual(batch.maxTimestamp, t0 + 4 * 600_000, "kept only segments with new enough data")
        }
        // Far in the future everything but the active segment goes.
        _ = try log.enforceRetention(now: t0 + 1_000_000_000)
        XCTAssertEqual(log.segmentCount, 1)
        XCTAssertEqual(log.logEndOffset, 20)
        XCTAssertEqual(try log.append(batch: makeBatch(records: values(1))).baseOffset, 20)
    }

    func testCompactionKeepsLatestPerKeyAndTombstonesWithOffsets() throws {
        let dir = temporaryDirectory()
        var config = LogConfig()
        config.segmentBytes = 400
        config.cleanupPolicy = .compact
        let log = try openLog(dir, config)
        var latest: [String: (offset: Int64, value: String?)] = [:]
        var offset: Int64 = 0
        for round in 0..<8 {
            var recs: [TestRecord] = []
            for k in 0..<3 {
                let key = "k\(k)"
                // k1 is deleted (tombstone) in round 5 and never written again.
                let value: String? = (k == 1 && round == 5) ? nil : (k == 1 && round > 5 ? "x" : "\(key)-r\(round)")
                if k == 1 && round > 5 { continue }
                recs.append(TestRecord(key: key, value: value))
            }
            recs.append(TestRecord(key: nil, value: "unkeyed-\(round)"))
            let info = try log.append(batch: makeBatch(records: recs))
            XCTAssertEqual(info.baseOffset, offset)
            for (i, r) in recs.enumerated() {
                if let k = r.key { latest[String(decoding: k, as: UTF8.self)] = (offset + Int64(i), r.value.map { String(decoding: $0, as: UTF8.self) }) }
            }
            offset += Int64(recs.count)
        }
        XCTAssertGreaterThan(log.segmentCount, 2)
        let leo = log.logEndOffset
        let removed = try log.compact()
        XCTAssertGreaterThan(removed, 0)
        XCTAssertEqual(log.logEndOffset, leo)

        func check(_ log: Log) throws {
            let batches = try readAll(log)
            XCTAssertTrue(batches.allSatisfy(\.crcValid), "rewritten batches carry a correct CRC")
            let records = batches.flatMap(\.records)
            XCTAssertEqual(records.map(\.offset), records.map(\.offset).sorted(), "offsets stay in order")
            for (key, want) in latest {
                let found = records.filter { $0.key == key }
                XCTAssertTrue(found.contains { $0.offset == want.offset && $0.value == want.value }, "latest of \(key) kept")
            }
            // In closed segments only the latest record per key survives; the active segment is untouched.
            let activeBase = log.segmentBaseOffsets.last!
            let closedKeyed = records.filter { $0.offset < activeBase && $0.key != nil }
            for r in closedKeyed {
                XCTAssertEqual(latest[r.key!]?.offset, r.offset, "stale \(r.key!)@\(r.offset) should be gone")
            }
            XCTAssertTrue(records.contains { $0.key == "k1" && $0.value == nil }, "tombstone kept")
            XCTAssertEqual(records.filter { $0.key == nil }.count, 8, "unkeyed records kept")
            // Each rewritten batch keeps its original lastOffsetDelta (3 or 2 records were written per round).
            for b in batches { XCTAssertTrue([2, 3].contains(b.lastOffsetDelta), "lastOffsetDelta \(b.lastOffsetDelta)") }
        }
        try check(log)
        try log.close()
        let reopened = try openLog(dir, config)
        XCTAssertEqual(reopened.logEndOffset, leo)
        try check(reopened)
        XCTAssertEqual(try reopened.compact(), 0, "compaction is idempotent")
    }

    func testCompactionRunsWhileAppendsAndReadsContinue() async throws {
        var config = LogConfig()
        config.segmentBytes = 2000
        config.cleanupPolicy = .compact
        let log = try openLog(temporaryDirectory(), config)
        let total = 1500
        let writer = Task.detached {
            for i in 0..<total {
                _ = try log.append(batch: makeBatch(records: [TestRecord(key: "k\(i % 20)", value: "v\(i)")]))
                if i % 100 == 0 { _ = try log.read(from: log.logStartOffset, maxBytes: 4096) }
            }
        }
        var removed = 0
        var rounds = 0
        while !writer.isCancelled && log.logEndOffset < Int64(total) {
            removed += try log.compact()
            rounds += 1
            await Task.yield()
        }
        try await writer.value
        removed += try log.compact()
        XCTAssertEqual(log.logEndOffset, Int64(total))
        XCTAssertGreaterThan(removed, 0)
        let records = try readAll(log).flatMap(\.records)
        XCTAssertEqual(records.map(\.offset), records.map(\.offset).sorted())
        for k in 0..<20 {
            let last = (0..<total).last { $0 % 20 == k }!
            XCTAssertEqual(records.last { $0.key == "k\(k)" }?.value, "v\(last)")
            XCTAssertTrue(records.contains { $0.offset == Int64(last) })
        }
        XCTAssertTrue(try readAll(log).allSatisfy(\.crcValid))
        XCTAssertLessThan(log.segmentCount, 10, "segments emptied by compaction are removed")
        XCTAssertEqual(log.logStartOffset, 0)
        XCTAssertEqual(parseBatches(try log.read(from: 0, maxBytes: 1).records).first?.records.first?.offset, records.first?.offset)
        print("compaction under load: \(rounds) rounds, \(removed) records removed, \(records.count) left")
    }

    func testCompactionKeepsCompressedBatchesWhole() throws {
        var config = LogConfig()
        config.segmentBytes = 200
        let log = try openLog(temporaryDirectory(), config)
        // "gzip" bit set: storage must not look inside.
        let opaque = makeBatch(records: [TestRecord(key: "a", value: "old")], compression: 1)
        _ = try log.append(batch: opaque)
        _ = try log.append(batch: makeBatch(records: [TestRecord(key: "a", value: "new" + String(repeating: "z", count: 150))]))
        _ = try log.append(batch: makeBatch(records: [TestRecord(key: "b", value: "c")]))
        XCTAssertGreaterThanOrEqual(log.segmentCount, 2)
        XCTAssertEqual(try log.compact(), 0)
        XCTAssertEqual(try readAll(log).map(\.baseOffset), [0, 1, 2])
    }

    func testOffsetForTimestamp() throws {
        var config = LogConfig()
        config.segmentBytes = 300
        config.indexIntervalBytes = 100
        let log = try openLog(temporaryDirectory(), config)
        let t0: Int64 = 1_700_000_000_000
        // Batch i holds records at t0 + 100*i + {0, 10, 20}.
        for i in 0..<10 {
            let recs = (0..<3).map { j in TestRecord(key: "k", value: "v\(i)-\(j)", timestampDelta: Int64(j * 10)) }
            _ = try log.append(batch: makeBatch(baseTimestamp: t0 + Int64(i) * 100, records: recs))
        }
        XCTAssertGreaterThan(log.segmentCount, 2)
        XCTAssertEqual(try log.offset(forTimestamp: 0)?.offset, 0)
        XCTAssertEqual(try log.offset(forTimestamp: t0)?.offset, 0)
        XCTAssertEqual(try log.offset(forTimestamp: t0 + 1)?.offset, 1)
        XCTAssertEqual(try log.offset(forTimestamp: t0 + 15)?.offset, 2)
        XCTAssertEqual(try log.offset(forTimestamp: t0 + 21)?.offset, 3)
        let mid = try log.offset(forTimestamp: t0 + 710)
        XCTAssertEqual(mid?.offset, 22)
        XCTAssertEqual(mid?.timestamp, t0 + 710)
        XCTAssertEqual(try log.offset(forTimestamp: t0 + 920)?.offset, 29)
        XCTAssertNil(try log.offset(forTimestamp: t0 + 921))
    }
}
