import Foundation
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Restart and kill -9 tests of `tape broker` with kcat. They need the durable storage engine;
/// a build that still runs on the in-memory stand-in skips them (it says so in its log).
final class DurabilityProcessTests: XCTestCase {
    var kcat: String!
    var dataDir: URL!

    override func setUpWithError() throws {
        kcat = try Executables.require("kcat")
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-durable-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: dataDir)
    }

    func start(port: Int = Loopback.freePort()) throws -> BrokerProcess {
        let broker = try BrokerProcess(extraArguments: ["--fsync", "always", "--log-level", "debug"], port: port, dataDir: dataDir)
        guard broker.isDurable else { throw XCTSkip("durable storage is not wired into this build of tape broker") }
        return broker
    }

    func readAll(_ broker: BrokerProcess, _ topic: String) throws -> [String] {
        let r = try runProcess(kcat, ["-b", broker.address, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o %s\n"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    func testAcknowledgedDataAndCommittedOffsetsSurviveKill9() throws {
        var broker = try start()
        let input = (0..<1000).map { "r\($0)" }.joined(separator: "\n") + "\n"
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "durable", "-X", "acks=all"], stdin: input).status, 0)
        let group = try runProcess(
            kcat, ["-b", broker.address, "-G", "dg", "durable", "-e", "-q", "-f", "%s\n", "-X", "auto.offset.reset=earliest"], timeout: 60)
        XCTAssertEqual(group.stdout.split(separator: "\n").count, 1000)
        broker.kill9()

        broker = try start()
        XCTAssertEqual(try readAll(broker, "durable"), (0..<1000).map { "\($0) r\($0)" })
        let again = try runProcess(
            kcat, ["-b", broker.address, "-G", "dg", "durable", "-e", "-q", "-f", "%s\n", "-X", "auto.offset.reset=earliest"], timeout: 60)
        XCTAssertEqual(again.stdout, "", "committed offsets survived the crash")
        XCTAssertEqual(try runProcess(kcat, ["-b", broker.address, "-P", "-t", "durable"], stdin: "after\n").status, 0)
        XCTAssertEqual(try readAll(broker, "durable").last, "1000 after", "offsets continue contiguously")
        XCTAssertEqual(broker.stop(), 0)
    }

    /// kill -9 in the middle of an idempotent acks=all stream from kafka-python, whose producer keeps
    /// retrying until the broker is back (kcat gives up when all brokers are down). Every record
    /// must then be there exactly once, in order, with contiguous offsets.
    func testIdempotentStreamAcrossKill9IsExactlyOnce() throws {
        let python = try Executables.require("python3")
        guard try runProcess(python, ["-c", "import kafka"]).status == 0 else {
            throw XCTSkip("kafka-python is not installed (pip install kafka-python)")
        }
        let port = Loopback.freePort()
        var broker = try start(port: port)
        let count = 20_000
        let script = """
            import sys
            from kafka import KafkaProducer
            b, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
            p = KafkaProducer(bootstrap_servers=b, acks="all", enable_idempotence=True, linger_ms=2, batch_size=4096,
                              retries=1000000, retry_backoff_ms=50, reconnect_backoff_ms=50, reconnect_backoff_max_ms=200,
                              request_timeout_ms=5000, delivery_timeout_ms=120000, max_in_flight_requests_per_connection=5)
            futures = []
            for i in range(n):
                futures.append(p.send(topic, value=b"m%d" % i))
                if i == 200:
                    p.flush()
                    print("STARTED", flush=True)
            p.flush(timeout=120)
            print("DONE", sum(1 for f in futures if f.succeeded()), flush=True)
            """
        let out = dataDir.appendingPathExtension("out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let producer = Process()
        producer.executableURL = URL(fileURLWithPath: python)
        producer.arguments = ["-c", script, broker.address, "stream", "\(count)"]
        producer.standardOutput = try FileHandle(forWritingTo: out)
        producer.standardError = FileHandle.nullDevice
        try producer.run()
        defer { if producer.isRunning { kill(producer.processIdentifier, SIGKILL) } }
        func output() -> String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !output().contains("STARTED") { usleep(20_000) }
        XCTAssertTrue(output().contains("STARTED"))
        usleep(200_000)
        broker.kill9()  // mid-stream
        usleep(300_000)
        broker = try start(port: port)
        let finish = Date().addingTimeInterval(120)
        while producer.isRunning && Date() < finish { usleep(100_000) }
        producer.waitUntilExit()
        XCTAssertTrue(output().contains("DONE \(count)"), "every send acknowledged: \(output())")
        let lines = try readAll(broker, "stream")
        XCTAssertEqual(lines.count, count, "exactly once")
        XCTAssertEqual(lines, (0..<count).map { "\($0) m\($0)" }, "in order with contiguous offsets")
        XCTAssertTrue(broker.log.contains("rebuilt idempotent-producer state"), broker.log)
    }
}
