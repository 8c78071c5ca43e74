import Foundation
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
        kcat = try ProcessSupport.executable("kcat")
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-durable-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: dataDir)
    }

    func start(port: Int = ProcessSupport.freePort()) throws -> BrokerProcess {
        let broker = try BrokerProcess(extraArguments: ["--fsync", "always", "--log-level", "debug"], port: port, dataDir: dataDir)
        guard broker.isDurable else { throw XCTSkip("durable storage is not wired into this build of tape broker") }
        return broker
    }

    func readAll(_ broker: BrokerProcess, _ topic: String) throws -> [String] {
        let r = try ProcessSupport.run(kcat, ["-b", broker.address, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o %s\n"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    func testAcknowledgedDataAndCommittedOffsetsSurviveKill9() throws {
        var broker = try start()
        let input = (0..<1000).map { "r\($0)" }.joined(separator: "\n") + "\n"
        XCTAssertEqual(try ProcessSupport.run(kcat, ["-b", broker.address, "-P", "-t", "durable", "-X", "acks=all"], stdin: input).status, 0)
        let group = try ProcessSupport.run(kcat, ["-b", broker.address, "-G", "dg", "durable", "-e", "-q", "-f", "%s\n", "-X", "auto.offset.reset=earliest"], timeout: 60)
        XCTAssertEqual(group.stdout.split(separator: "\n").count, 1000)
        broker.kill9()

        broker = try start()
        XCTAssertEqual(try readAll(broker, "durable"), (0..<1000).map { "\($0) r\($0)" })
        let again = try ProcessSupport.run(kcat, ["-b", broker.address, "-G", "dg", "durable", "-e", "-q", "-f", "%s\n", "-X", "auto.offset.reset=earliest"], timeout: 60)
        XCTAssertEqual(again.stdout, "", "committed offsets survived the crash")
        XCTAssertEqual(try ProcessSupport.run(kcat, ["-b", broker.address, "-P", "-t", "durable"], stdin: "after\n").status, 0)
        XCTAssertEqual(try readAll(broker, "durable").last, "1000 after", "offsets continue contiguously")
        XCTAssertEqual(broker.stop(), 0)
    }

    /// kill -9 in the middle of an idempotent acks=all stream; the producer keeps retrying until the
    /// broker is back. Every record must then be there exactly once, in order, offsets contiguous.
    func testIdempotentStreamAcrossKill9IsExactlyOnce() throws {
        let port = ProcessSupport.freePort()
        var broker = try start(port: port)
        let count = 20_000
        let input = (0..<count).map { "m\($0)" }.joined(separator: "\n") + "\n"
        let inputURL = dataDir.appendingPathExtension("in")
        try Data(input.utf8).write(to: inputURL)
        defer { try? FileManager.default.removeItem(at: inputURL) }
        let producer = Process()
        producer.executableURL = URL(fileURLWithPath: kcat)
        producer.arguments = [
            "-b", broker.address, "-P", "-t", "stream", "-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=2", "-X", "batch.num.messages=200",
            "-X", "reconnect.backoff.ms=50", "-X", "reconnect.backoff.max.ms=200", "-l", inputURL.path,
        ]
        producer.standardOutput = FileHandle.nullDevice
        producer.standardError = FileHandle.nullDevice
        try producer.run()
        // Wait until part of the stream is stored, then crash the broker mid-stream.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !broker.log.contains("partition=stream-0") { usleep(20_000) }
        usleep(150_000)
        broker.kill9()
        usleep(300_000)
        broker = try start(port: port)
        let finish = Date().addingTimeInterval(120)
        while producer.isRunning && Date() < finish { usleep(100_000) }
        XCTAssertFalse(producer.isRunning, "the producer should finish once the broker is back")
        if producer.isRunning { kill(producer.processIdentifier, SIGKILL) }
        producer.waitUntilExit()
        XCTAssertEqual(producer.terminationStatus, 0)
        let lines = try readAll(broker, "stream")
        XCTAssertEqual(lines.count, count, "exactly once")
        XCTAssertEqual(lines, (0..<count).map { "\($0) m\($0)" }, "in order with contiguous offsets")
    }
}
