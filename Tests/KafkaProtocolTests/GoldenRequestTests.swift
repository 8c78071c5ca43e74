import Foundation
import KafkaProtocol
import NIOCore
import XCTest

/// Decodes request frames captured from real clients (kcat/librdkafka 2.0.2, kafka-python 3.0.12)
/// and checks that re-encoding them gives the same bytes.
final class GoldenRequestTests: XCTestCase {
    struct Captured {
        var client: String
        var apiKey: Int16
        var version: Int16
        var bytes: [UInt8]
    }

    static func fixtures() throws -> [Captured] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/captured-requests.txt")
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let f = line.split(separator: " ")
            let hex = Array(f[3].utf8)
            let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
            return Captured(client: String(f[0]), apiKey: Int16(f[1])!, version: Int16(f[2])!, bytes: bytes)
        }
    }

    func testEveryCapturedFrameDecodesAndReencodesToTheSameBytes() throws {
        let all = try Self.fixtures()
        XCTAssertGreaterThan(all.count, 20)
        for c in all {
            var frame = ByteBuffer(bytes: c.bytes)
            let request = try KafkaRequest.decode(frame: &frame)
            XCTAssertEqual(request.header.apiKey, c.apiKey)
            XCTAssertEqual(request.header.apiVersion, c.version)
            if case .unsupportedApiVersions = request.body {
                XCTAssertEqual(c.apiKey, 18)
                continue
            }
            XCTAssertEqual(Array(request.encodeFrameBody().readableBytesView), c.bytes, "\(c.client) api \(c.apiKey) v\(c.version)")
        }
    }

    func testLibrdkafkaApiVersionsV3Fields() throws {
        let c = try XCTUnwrap(Self.fixtures().first { $0.apiKey == 18 && $0.version == 3 && $0.client.hasPrefix("kcat") })
        var frame = ByteBuffer(bytes: c.bytes)
        let r = try KafkaRequest.decode(frame: &frame)
        XCTAssertEqual(r.header.clientId, "rdkafka")
        guard case .apiVersions(let body) = r.body else { return XCTFail("\(r.body)") }
        XCTAssertEqual(body.clientSoftwareName, "librdkafka")
        XCTAssertEqual(body.clientSoftwareVersion, "2.0.2")
    }

    func testKafkaPythonApiVersionsV4IsAnsweredAsUnsupported() throws {
        let c = try XCTUnwrap(Self.fixtures().first { $0.apiKey == 18 && $0.version == 4 })
        var frame = ByteBuffer(bytes: c.bytes)
        XCTAssertEqual(try KafkaRequest.decode(frame: &frame).body, .unsupportedApiVersions)
    }

    func testCapturedProduceBatchesValidate() throws {
        let produces = try Self.fixtures().filter { $0.apiKey == 0 && $0.client.hasPrefix("kcat") }
        XCTAssertGreaterThanOrEqual(produces.count, 2)
        var sawIdempotent = false
        for c in produces {
            var frame = ByteBuffer(bytes: c.bytes)
            guard case .produce(let p) = try KafkaRequest.decode(frame: &frame).body else { return XCTFail() }
            for t in p.topics {
                for part in t.partitions {
                    let batches = try RecordBatchValidator.validate(records: try XCTUnwrap(part.records), maxBatchBytes: 1 << 20)
                    for b in batches where b.header.producerId >= 0 {
                        sawIdempotent = true
                        XCTAssertEqual(b.header.baseSequence, 0)
                        XCTAssertEqual(b.header.producerId, 1000)
                        XCTAssertEqual(b.header.recordCount, 2)
                    }
                }
            }
        }
        XCTAssertTrue(sawIdempotent, "expected kcat's idempotent batch (producer id from InitProducerId) in the fixtures")
    }

    func testCapturedJoinGroupAndFetch() throws {
        let all = try Self.fixtures()
        var join = ByteBuffer(bytes: try XCTUnwrap(all.first { $0.apiKey == 11 && $0.version == 5 }).bytes)
        guard case .joinGroup(let j) = try KafkaRequest.decode(frame: &join).body else { return XCTFail() }
        XCTAssertEqual(j.groupId, "gg")
        XCTAssertEqual(j.protocolType, "consumer")
        XCTAssertEqual(j.sessionTimeoutMs, 6000)
        XCTAssertFalse(j.protocols.isEmpty)
        var fetch = ByteBuffer(bytes: try XCTUnwrap(all.first { $0.apiKey == 1 && $0.version == 11 }).bytes)
        guard case .fetch(let f) = try KafkaRequest.decode(frame: &fetch).body else { return XCTFail() }
        XCTAssertEqual(f.maxWaitMs, 500)
        XCTAssertEqual(f.topics.first?.topic, "golden")
    }

    func testCapturedCompressedBatchesOfEveryCodec() throws {
        var codecs: Set<Int> = []
        for c in try Self.fixtures() where c.apiKey == 0 && c.client.hasPrefix("kcat") {
            var frame = ByteBuffer(bytes: c.bytes)
            guard case .produce(let p) = try KafkaRequest.decode(frame: &frame).body else { return XCTFail() }
            for t in p.topics {
                for part in t.partitions {
                    for b in try RecordBatchValidator.validate(records: try XCTUnwrap(part.records), maxBatchBytes: 1 << 20) where b.header.compression != 0 {
                        XCTAssertEqual(t.name, "golden-" + ["", "gzip", "snappy", "lz4", "zstd"][b.header.compression])
                        XCTAssertEqual(b.header.recordCount, 20)
                        codecs.insert(b.header.compression)
                    }
                }
            }
        }
        XCTAssertEqual(codecs, [1, 2, 3, 4], "kcat batches compressed with gzip, snappy, lz4 and zstd")
    }
}
