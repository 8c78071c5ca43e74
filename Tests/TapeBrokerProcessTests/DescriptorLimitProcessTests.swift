import Foundation
import KafkaProtocol
import NIOCore
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `tape broker` under a low open-files limit (`ulimit -n`), with many topics and a huge one,
/// killed and restarted on the same data directory: it always starts again and keeps what it
/// acknowledged.
final class DescriptorLimitProcessTests: XCTestCase {
    var dataDir: URL!

    override func setUpWithError() throws {
        _ = try TapeBinary.url()
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-fd-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: dataDir)
    }

    /// One request/response on a fresh connection; the response body after the correlation id.
    func roundTrip(_ port: Int, _ frame: ByteBuffer, timeout: Int = 120) throws -> ByteBuffer {
        let fd = Loopback.connect(port: port, receiveTimeout: 5)
        guard fd >= 0 else { throw TestSupportError("cannot connect to \(port)") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(frame.readableBytesView)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { throw TestSupportError("send failed") }
        var sizeBytes = [UInt8](repeating: 0, count: 4)
        guard recv(fd, &sizeBytes, 4, Int32(MSG_WAITALL)) == 4 else { throw TestSupportError("no response") }
        let size = Int(Int32(bigEndian: sizeBytes.withUnsafeBytes { $0.load(as: Int32.self) }))
        var body = [UInt8](repeating: 0, count: size)
        guard recv(fd, &body, size, Int32(MSG_WAITALL)) == size else { throw TestSupportError("short response") }
        var b = ByteBuffer(bytes: body)
        b.moveReaderIndex(forwardBy: 4)
        return b
    }

    /// Topic → partition count, as kcat's metadata sees it.
    func topics(_ address: String) throws -> [String: Int] {
        let kcat = try Executables.require("kcat")
        let r = try runProcess(kcat, ["-b", address, "-L", "-J", "-m", "60"], timeout: 120)
        guard let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
            let list = json["topics"] as? [[String: Any]]
        else { throw TestSupportError("kcat -L -J: \(r.stdout) \(r.stderr)") }
        var out: [String: Int] = [:]
        for t in list {
            if let name = t["topic"] as? String, t["error"] == nil { out[name] = (t["partitions"] as? [Any])?.count ?? 0 }
        }
        return out
    }

    func consumeOne(_ address: String, _ topic: String) throws -> String {
        let kcat = try Executables.require("kcat")
        return try runProcess(kcat, ["-b", address, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n"], timeout: 60).stdout
    }

    /// 400 topics auto-created by Metadata requests and written to under `ulimit -n 256`: every
    /// creation succeeds (idle partitions hold no descriptors), and after kill -9 the broker starts
    /// again under the same limit with every topic and every acknowledged record. (Before: three
    /// descriptors per partition; creations failed with too many open files, left their config
    /// files, and the broker never started again.)
    func testFourHundredTopicsUnderUlimit256SurviveKillAndRestart() throws {
        let names = (0..<400).map { "auto-\($0)" }
        var broker = try BrokerProcess.limited(fileLimit: 256, dataDir: dataDir)
        for chunk in stride(from: 0, to: names.count, by: 50) {
            let frame = KafkaRequest.encodeFrame(MetadataRequest(topics: Array(names[chunk..<chunk + 50])), version: 4, correlationId: 1, clientId: "t")
            _ = try roundTrip(broker.port, frame)
        }
        var produce: [ProduceRequest.TopicData] = []
        for name in names {
            let batch = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: Array("v-\(name)".utf8))], baseTimestamp: 1_000)
            produce.append(.init(name: name, partitions: [.init(index: 0, records: batch)]))
        }
        var response = try roundTrip(
            broker.port, KafkaRequest.encodeFrame(ProduceRequest(acks: -1, timeoutMs: 30_000, topics: produce), version: 7, correlationId: 2, clientId: "t"))
        // Produce v7 response: topics[name, partitions[index, error_code, ...]]: every error code 0.
        let topicCount = try response.decodeInt32()
        XCTAssertEqual(topicCount, 400)
        var errors = 0
        for _ in 0..<topicCount {
            _ = try response.decodeNullableString()
            let partitions = try response.decodeInt32()
            for _ in 0..<partitions {
                _ = try response.decodeInt32()
                if try response.decodeInt16() != 0 { errors += 1 }
                response.moveReaderIndex(forwardBy: 8 + 8 + 8)  // base offset, log append time, log start offset
            }
        }
        XCTAssertEqual(errors, 0, "produce errors; broker log:\n\(broker.log.suffix(3000))")
        XCTAssertLessThan(broker.openDescriptors, 256, "descriptors held by the broker")
        XCTAssertFalse(broker.log.contains("too many open files"), broker.log.suffix(3000).description)
        broker.kill9()

        broker = try BrokerProcess.limited(fileLimit: 256, dataDir: dataDir)
        let found = try topics(broker.address)
        XCTAssertEqual(Set(found.keys).intersection(names).count, 400, "topics after restart: \(found.count)\n\(broker.log.suffix(3000))")
        for name in ["auto-0", "auto-199", "auto-399"] {
            XCTAssertEqual(try consumeOne(broker.address, name), "v-\(name)\n")
        }
        XCTAssertLessThan(broker.openDescriptors, 256)
        broker.kill9()
    }

    /// CreateTopics for 10 000 partitions, killed while it runs, then restarted under a low limit:
    /// the broker starts, and the topic is either whole or absent. Created again, it survives a
    /// kill -9 and a restart under `ulimit -n 256` with all its partitions.
    func testHugeTopicCreationKilledHalfwayAndRestartedUnderALowLimit() throws {
        var broker = try BrokerProcess.limited(fileLimit: 1024, dataDir: dataDir)
        let create = KafkaRequest.encodeFrame(
            CreateTopicsRequest(topics: [.init(name: "huge", numPartitions: 10_000, replicationFactor: 1)], timeoutMs: 120_000),
            version: 4, correlationId: 1, clientId: "t")
        let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
        let bytes = Array(create.readableBytesView)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, bytes.count)
        // Kill once some partition directories exist, before the creation can finish.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let made = ((try? FileManager.default.contentsOfDirectory(atPath: dataDir.path)) ?? []).filter { $0.hasPrefix("huge-") }.count
            if made >= 200 { break }
            usleep(5_000)
        }
        broker.kill9()
        close(fd)
        let madeBeforeKill = ((try? FileManager.default.contentsOfDirectory(atPath: dataDir.path)) ?? []).filter { $0.hasPrefix("huge-") }.count

        broker = try BrokerProcess.limited(fileLimit: 256, dataDir: dataDir)
        let afterCrash = try topics(broker.address)["huge"]
        print("huge topic: \(madeBeforeKill) partition directories when killed; after restart \(afterCrash.map { "\($0) partitions" } ?? "absent")")
        XCTAssertTrue(
            afterCrash == nil || afterCrash == 10_000,
            "half a topic after the crash: \(String(describing: afterCrash)) partitions (\(madeBeforeKill) directories were made)")
        if afterCrash == nil {
            XCTAssertTrue(broker.log.contains("rolled back a topic creation"), broker.log.suffix(2000).description)
            var response = try roundTrip(broker.port, create)
            _ = try response.decodeInt32()  // throttle
            XCTAssertEqual(try response.decodeInt32(), 1)
            XCTAssertEqual(try response.decodeNullableString(), "huge")
            let code = try response.decodeInt16()
            XCTAssertEqual(code, 0, "CreateTopics: \(String(describing: try? response.decodeNullableString())) \(broker.log.suffix(2000))")
        }
        let batch = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: Array("last".utf8))], baseTimestamp: 1_000)
        _ = try roundTrip(
            broker.port,
            KafkaRequest.encodeFrame(
                ProduceRequest(acks: -1, timeoutMs: 30_000, topics: [.init(name: "huge", partitions: [.init(index: 9_999, records: batch)])]), version: 7,
                correlationId: 3, clientId: "t"))
        XCTAssertLessThan(broker.openDescriptors, 256)
        broker.kill9()

        broker = try BrokerProcess.limited(fileLimit: 256, dataDir: dataDir)
        XCTAssertEqual(try topics(broker.address)["huge"], 10_000)
        let kcat = try Executables.require("kcat")
        let r = try runProcess(kcat, ["-b", broker.address, "-C", "-t", "huge", "-p", "9999", "-o", "beginning", "-e", "-q", "-f", "%s\n"], timeout: 60)
        XCTAssertEqual(r.stdout, "last\n")
        broker.kill9()
    }
}
