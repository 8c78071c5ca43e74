import Foundation
import KafkaProtocol
import XCTest

@testable import TapeBroker

/// The codecs, bounded decompression, and compressed batches where storage reads records:
/// compaction, timestamp lookup, max-timestamp lookup, and topic configs.
final class CompressionTests: StorageTestCase {
    /// A small deterministic generator (no dependency on the test support module).
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    func sampleText(_ n: Int) -> [UInt8] {
        var rng = Rng(state: 7)
        let words = ["tape", "kafka", "trade", "btc-usd", "42.5", "price", "size", "{", "}", ","]
        var out: [UInt8] = []
        while out.count < n { out += Array(words[rng.below(words.count)].utf8) + [0x20] }
        return Array(out.prefix(n))
    }

    func testEveryCodecRoundTripsAndRefusesOutputPastTheLimit() throws {
        for size in [0, 1, 100, 70_000, 300_000] {
            let input = sampleText(size)
            for codec in CompressionCodec.allCases {
                let packed = try codec.compress(input)
                XCTAssertEqual(try codec.decompress(packed, limit: size), input, "\(codec) size \(size)")
                if size > 0 {
                    XCTAssertThrowsError(try codec.decompress(packed, limit: size - 1), "\(codec) size \(size) past the limit")
                }
                if codec != .none && size >= 70_000 { XCTAssertLessThan(packed.count, size / 2, "\(codec) compresses text") }
            }
        }
    }

    func testSnappyReadsBothXerialFramingAndRawBlocks() throws {
        let input = sampleText(100_000)
        let xerial = try CompressionCodec.snappy.compress(input)
        XCTAssertEqual(Array(xerial.prefix(8)), CompressionCodec.xerialMagic, "Java clients' framing is written")
        XCTAssertEqual(try CompressionCodec.snappy.decompress(xerial, limit: 1 << 20), input)
        let raw = try input.withUnsafeBytes { try CompressionCodec.snappyRawCompress($0) }
        XCTAssertEqual(try CompressionCodec.snappy.decompress(raw, limit: 1 << 20), input, "librdkafka writes a raw block")
    }

    /// 32 MiB of zeros packs into a few KiB; with a 1 MiB limit it is refused without being inflated.
    func testZipBombsAreRefusedNotInflated() throws {
        let zeros = [UInt8](repeating: 0, count: 32 << 20)
        for codec in CompressionCodec.allCases where codec != .none {
            let bomb = try codec.compress(zeros)
            XCTAssertLessThan(bomb.count, 2 << 20, "\(codec)")
            XCTAssertThrowsError(try codec.decompress(bomb, limit: 1 << 20), "\(codec)") { error in
                XCTAssertTrue(error is CompressionError, "\(codec): \(error)")
            }
        }
    }

    /// A zstd frame asking for a 128 MiB window is refused before the window is allocated.
    func testZstdFramesWithHugeWindowsAreRefused() throws {
        // Frame header: magic, descriptor 0 (window descriptor present, no checksum/size), window
        // descriptor 0x88 (windowLog 27), then a raw last block of 1 byte.
        let frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x88, 0x09, 0x00, 0x00, 0x61]
        XCTAssertThrowsError(try CompressionCodec.zstd.decompress(frame, limit: 1 << 20)) { XCTAssertTrue($0 is CompressionError, "\($0)") }
        var small = frame
        small[5] = 0x50  // windowLog 20
        XCTAssertEqual(try CompressionCodec.zstd.decompress(small, limit: 1 << 20), [0x61])
    }

    /// Mutated and truncated streams and random bytes: every decoder returns at most `limit` bytes
    /// or throws, never traps.
    func testDecodersSurviveMutatedTruncatedAndRandomInput() throws {
        var rng = Rng(state: 0x7A9E)
        let input = sampleText(20_000)
        let limit = 64 << 10
        var outcomes = [0, 0]
        for codec in CompressionCodec.allCases where codec != .none {
            let valid = try codec.compress(input)
            for round in 0..<600 {
                var bytes: [UInt8]
                switch round % 3 {
                case 0:
                    bytes = valid
                    for _ in 0...rng.below(4) { bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next()) }
                case 1:
                    bytes = Array(valid.prefix(rng.below(valid.count)))
                default:
                    bytes = (0..<rng.below(300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    if rng.below(2) == 0 { bytes = Array(valid.prefix(16)) + bytes }
                }
                do {
                    let out = try codec.decompress(bytes, limit: limit)
                    XCTAssertLessThanOrEqual(out.count, limit)
                    outcomes[0] += 1
                } catch {
                    XCTAssertTrue(error is CompressionError, "\(codec): \(error)")
                    outcomes[1] += 1
                }
            }
        }
        XCTAssertGreaterThan(outcomes[1], 1000, "most damaged inputs are refused")
    }

    /// A batch made by `makeBatch`, compressed with `codec` the way the broker rewrites batches.
    func compressed(_ records: [TestRecord], codec: CompressionCodec, baseTimestamp: Int64 = 1_700_000_000_000) throws -> [UInt8] {
        let plain = makeBatch(baseTimestamp: baseTimestamp, records: records)
        let out = try plain.withUnsafeBytes { try ProducedBatch.prepare($0, target: codec, logAppendTime: nil, inflateLimit: 1 << 20) }
        return try XCTUnwrap(out)
    }

    func records(of batch: [UInt8]) throws -> [DecodedRecord] {
        let header = try XCTUnwrap(StoredBatchHeader(batch))
        return try StoredBatchHeader.records(of: batch, header: header)
    }

    func testProducedBatchesAreRecompressedStampedAndValidated() throws {
        let plain = makeBatch(records: values(5, keyPrefix: "k"))
        let plainRecords = try records(of: plain)
        for codec in CompressionCodec.allCases where codec != .none {
            let packed = try compressed(values(5, keyPrefix: "k"), codec: codec)
            let h = try XCTUnwrap(StoredBatchHeader(packed))
            XCTAssertEqual(h.compression, codec.rawValue)
            XCTAssertEqual(h.recordCount, 5)
            XCTAssertEqual(parseBatches(packed)[0].crcValid, true)
            XCTAssertEqual(try records(of: packed), plainRecords, "\(codec)")
            // Back to uncompressed (compression.type=uncompressed).
            let back = try XCTUnwrap(
                try packed.withUnsafeBytes { try ProducedBatch.prepare($0, target: CompressionCodec.none, logAppendTime: nil, inflateLimit: 1 << 20) })
            XCTAssertEqual(Array(back[RecordBatchLayout.records...]), Array(plain[RecordBatchLayout.records...]))
            // As sent (producer): the compressed batch is checked but not rewritten.
            XCTAssertNil(try packed.withUnsafeBytes { try ProducedBatch.prepare($0, target: nil, logAppendTime: nil, inflateLimit: 1 << 20) })
            // Inflating past the limit is a corrupt batch.
            XCTAssertThrowsError(try packed.withUnsafeBytes { try ProducedBatch.prepare($0, target: nil, logAppendTime: nil, inflateLimit: 10) }) {
                XCTAssertEqual(($0 as? RecordBatchError)?.errorCode, .corruptMessage, "\($0)")
            }
        }
        // LogAppendTime: only the timestamp-type bit, the max timestamp and the CRC change.
        let stamped = try XCTUnwrap(
            try plain.withUnsafeBytes { try ProducedBatch.prepare($0, target: nil, logAppendTime: 1_800_000_000_000, inflateLimit: 1 << 20) })
        let sh = try XCTUnwrap(StoredBatchHeader(stamped))
        XCTAssertEqual(sh.attributes & 0x08, 0x08)
        XCTAssertEqual(sh.maxTimestamp, 1_800_000_000_000)
        XCTAssertTrue(parseBatches(stamped)[0].crcValid)
        // Control batches (transaction markers) are never compressed.
        let control = makeBatch(records: [TestRecord(key: "\u{0}\u{0}\u{0}\u{0}", value: "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}")], compression: 0x20)
        XCTAssertNil(try control.withUnsafeBytes { try ProducedBatch.prepare($0, target: .zstd, logAppendTime: nil, inflateLimit: 1 << 20) })
        // Compressed garbage with a correct CRC: CORRUPT_MESSAGE.
        var garbage = makeBatch(records: values(2), compression: 1)
        StoredBatchHeader.setCRC(&garbage)
        XCTAssertThrowsError(try garbage.withUnsafeBytes { try ProducedBatch.prepare($0, target: nil, logAppendTime: nil, inflateLimit: 1 << 20) }) {
            XCTAssertEqual(($0 as? RecordBatchError)?.errorCode, .corruptMessage, "\($0)")
        }
    }

    func testCompactionCompactsCompressedBatchesAndKeepsTheirCodec() throws {
        var config = LogConfig()
        config.segmentBytes = 300
        config.cleanupPolicy = .compact
        let log = try Log(directory: temporaryDirectory(), topic: "t", partition: 0, config: config)
        let codecs: [CompressionCodec] = [.gzip, .snappy, .lz4, .zstd]
        for round in 0..<8 {
            let recs = (0..<3).map { TestRecord(key: "k\($0)", value: "r\(round)-" + String(repeating: "v", count: 40)) }
            _ = try log.append(batch: try compressed(recs, codec: codecs[round % 4]))
        }
        XCTAssertGreaterThan(log.segmentCount, 2)
        let removed = try log.compact()
        XCTAssertGreaterThan(removed, 0)
        let activeBase = try XCTUnwrap(log.segmentBaseOffsets.last)
        let bytes = try log.read(from: 0, maxBytes: 1 << 20).records
        var position = 0
        var seen: [(offset: Int64, key: String, value: String)] = []
        while position < bytes.count {
            let h = try XCTUnwrap(StoredBatchHeader(Array(bytes[position...])))
            let batch = Array(bytes[position..<position + h.totalSize])
            XCTAssertTrue(parseBatches(batch)[0].crcValid)
            XCTAssertNotEqual(h.compression, 0, "rewritten batches stay compressed")
            for r in try records(of: batch) {
                seen.append((r.offset(base: h.baseOffset)!, String(decoding: r.key!, as: UTF8.self), String(decoding: r.value!, as: UTF8.self)))
            }
            position += h.totalSize
        }
        // Closed segments hold only the latest value of each key (round 7's).
        for s in seen where s.offset < activeBase {
            XCTAssertTrue(s.value.hasPrefix("r7-"), "stale \(s.key)@\(s.offset) kept: \(s.value)")
        }
        XCTAssertEqual(Set(seen.filter { $0.value.hasPrefix("r7-") }.map(\.key)), ["k0", "k1", "k2"])
        XCTAssertEqual(seen.map(\.offset), seen.map(\.offset).sorted())
    }

    func testTimestampLookupsLookInsideCompressedBatches() throws {
        for codec in CompressionCodec.allCases {
            let log = try Log(directory: temporaryDirectory(), topic: "t", partition: 0, config: LogConfig())
            let base: Int64 = 1_700_000_000_000
            _ = try log.append(batch: makeBatch(baseTimestamp: base - 100, records: values(2)))
            var recs = values(5)
            for (i, d) in [0, 10, 20, 30, 5].enumerated() { recs[i].timestampDelta = Int64(d) }
            let batch = codec == .none ? makeBatch(baseTimestamp: base, records: recs) : try compressed(recs, codec: codec, baseTimestamp: base)
            _ = try log.append(batch: batch)
            let found = try XCTUnwrap(try log.offset(forTimestamp: base + 15), "\(codec)")
            XCTAssertEqual(found.offset, 4, "\(codec): the first record at or after the timestamp, inside the batch")
            XCTAssertEqual(found.timestamp, base + 20)
            let max = try XCTUnwrap(try log.offsetOfMaxTimestamp())
            XCTAssertEqual(max.offset, 5, "\(codec)")
            XCTAssertEqual(max.timestamp, base + 30)
        }
        let empty = try Log(directory: temporaryDirectory(), topic: "t", partition: 0, config: LogConfig())
        XCTAssertNil(try empty.offsetOfMaxTimestamp())
    }

    func testDirtyRatioGatesMaintenanceCompaction() throws {
        var config = LogConfig()
        config.segmentBytes = 200
        config.cleanupPolicy = .compact
        config.minCleanableDirtyRatio = 0.9
        let log = try Log(directory: temporaryDirectory(), topic: "t", partition: 0, config: config)
        // Ten distinct keys, then one key rewritten: one record of eleven is superseded.
        for i in 0..<10 { _ = try log.append(batch: makeBatch(records: [TestRecord(key: "k\(i)", value: String(repeating: "v", count: 60))])) }
        _ = try log.append(batch: makeBatch(records: [TestRecord(key: "k0", value: "new")]))
        _ = try log.append(batch: makeBatch(records: [TestRecord(key: "z", value: String(repeating: "v", count: 60))]))
        XCTAssertEqual(try log.compact(respectingDirtyRatio: true), 0, "below min.cleanable.dirty.ratio")
        XCTAssertEqual(try log.compact(), 1)
    }

    func testTopicConfigValidationNamesKeyAndValue() {
        for (key, value) in [
            ("compression.type", "bogus"), ("message.timestamp.type", "bogus"), ("retention.ms", "soon"), ("min.cleanable.dirty.ratio", "1.5"),
            ("cleanup.policy", "shred"), ("segment.bytes", "1"), ("delete.retention.ms", "-5"), ("min.insync.replicas", "2"),
            ("message.format.version", "latest"), ("message.format.version", "0.10.x"), ("message.format.version", "3.0-IV"),
        ] {
            let problem = LogConfig.problem(key: key, value: value)
            XCTAssertNotNil(problem, "\(key)=\(value)")
            XCTAssertTrue(problem?.contains("\(key)=\(value)") == true, problem ?? "")
        }
        XCTAssertTrue(LogConfig.problem(key: "unclean.leader.election.enable", value: "true")?.contains("cannot honour") == true)
        XCTAssertTrue(LogConfig.problem(key: "no.such.config", value: "1")?.contains("unknown topic config no.such.config=1") == true)
        for (key, value) in [
            ("compression.type", "zstd"), ("compression.type", "uncompressed"), ("message.timestamp.type", "LogAppendTime"),
            ("min.cleanable.dirty.ratio", "0.01"), ("delete.retention.ms", "100"), ("max.message.bytes", "2000000"), ("cleanup.policy", "compact,delete"),
            ("min.insync.replicas", "1"), ("retention.bytes", "-1"), ("segment.ms", "60000"), ("min.compaction.lag.ms", "0"),
            // Deprecated and ignored by Kafka 3.0+ (librdkafka's test 0092 sets it): accepted, records stay v2.
            ("message.format.version", "0.10.0.0"), ("message.format.version", "3.0-IV1"), ("message.format.version", "2.8"),
        ] {
            XCTAssertNil(LogConfig.problem(key: key, value: value), "\(key)=\(value)")
        }
        var c = LogConfig()
        c.compressionType = .lz4
        c.messageTimestampType = .logAppendTime
        c.minCleanableDirtyRatio = 0.25
        XCTAssertEqual(try LogConfig(kafkaConfigs: c.kafkaConfigs), c, "every config survives its strings")
    }

    func testSetTopicConfigsIsDurableAndAppliedToTheLiveLog() async throws {
        let dir = temporaryDirectory()
        var m = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0))
        try m.createTopic(name: "t", partitions: 2, configs: ["retention.ms": "5000"])
        try m.setTopicConfigs(name: "t", explicit: ["compression.type": "gzip", "message.timestamp.type": "LogAppendTime", "retention.bytes": "1000"])
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 1)?.config.compressionType, .gzip)
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 1)?.config.retentionBytes, 1000)
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 1)?.config.retentionMs, LogConfig().retentionMs, "left out: back to the default")
        // Retention set on a live topic is enforced by the next maintenance pass.
        try m.createTopic(name: "r", partitions: 1, configs: ["segment.bytes": "200", "retention.ms": "-1"])
        for _ in 0..<6 { _ = try m.partitionLog(topic: "r", partition: 0)!.append(batch: makeBatch(records: values(2, size: 80))) }
        XCTAssertGreaterThan(m.partitionLog(topic: "r", partition: 0)!.segmentCount, 3)
        XCTAssertEqual(m.runMaintenance().segmentsDeleted, 0)
        try m.setTopicConfigs(name: "r", explicit: ["segment.bytes": "200", "retention.ms": "-1", "retention.bytes": "0"])
        XCTAssertGreaterThan(m.runMaintenance().segmentsDeleted, 0)
        XCTAssertEqual(m.partitionLog(topic: "r", partition: 0)!.segmentCount, 1)
        XCTAssertThrowsError(try m.setTopicConfigs(name: "t", explicit: ["compression.type": "bogus"]))
        XCTAssertThrowsError(try m.setTopicConfigs(name: "nope", explicit: [:]))
        await m.shutdown()
        m = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0))
        XCTAssertEqual(m.configs(of: "t"), ["compression.type": "gzip", "message.timestamp.type": "LogAppendTime", "retention.bytes": "1000"])
        XCTAssertEqual(m.partitionLog(topic: "t", partition: 0)?.config.messageTimestampType, .logAppendTime)
        await m.shutdown()
    }

    func testPartitionDirectoriesOfLegalNamesArePlain() {
        XCTAssertEqual(LogManager.partitionDirectoryName("t", 3), "t-3")
        let longest = String(repeating: "x", count: 249)
        XCTAssertEqual(LogManager.partitionDirectoryName(longest, 99_999), longest + "-99999")
        let overlong = String(repeating: "y", count: 260)
        let mapped = LogManager.partitionDirectoryName(overlong, 7)
        XCTAssertLessThanOrEqual(mapped.utf8.count, 255)
        XCTAssertTrue(mapped.hasSuffix("-7") && mapped.contains("~"), mapped)
        XCTAssertEqual(mapped, LogManager.partitionDirectoryName(overlong, 7), "a pure function of the name")
    }
}
