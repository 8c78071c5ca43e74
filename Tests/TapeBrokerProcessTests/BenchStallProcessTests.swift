import Foundation
import TapeTestSupport
import XCTest

/// `tape bench consume` against a broker that freezes mid-run (SIGSTOP): it must say so and exit,
/// not wait forever — librdkafka's offsets query ignores its own timeout when the broker does not
/// answer, so the stall report may not depend on it.
final class BenchStallProcessTests: XCTestCase {
    func testBenchConsumeReportsAFrozenBrokerAndExits() throws {
        let broker = try BrokerProcess()
        defer {
            kill(broker.process.processIdentifier, SIGCONT)
            broker.stop()
        }
        let tape = TapeBinary.path
        XCTAssertEqual(try runProcess(tape, ["topics", "create", "--brokers", broker.address, "frozen", "--partitions", "4"]).status, 0)
        let produced = try runProcess(
            tape, ["bench", "produce", "--brokers", broker.address, "--topic", "frozen", "--count", "2000000", "--acks", "1"], timeout: 60)
        XCTAssertEqual(produced.status, 0, produced.stderr)

        let consumer = Process()
        consumer.executableURL = URL(fileURLWithPath: tape)
        consumer.arguments = ["bench", "consume", "--brokers", broker.address, "--topic", "frozen", "--count", "2000000"]
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("bench-stall-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        consumer.standardError = try FileHandle(forWritingTo: errURL)
        consumer.standardOutput = FileHandle.nullDevice
        try consumer.run()
        // Reading 2M records takes ~10 s in a debug build; freeze the broker well before the end.
        usleep(1_500_000)
        XCTAssertTrue(consumer.isRunning, "the consumer finished before the broker was frozen; the test needs a longer read")
        kill(broker.process.processIdentifier, SIGSTOP)
        let started = Date()
        while consumer.isRunning && Date().timeIntervalSince(started) < 60 { usleep(100_000) }
        let waited = Date().timeIntervalSince(started)
        if consumer.isRunning { consumer.terminate() }
        consumer.waitUntilExit()
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        XCTAssertEqual(consumer.terminationStatus, 3, stderr)
        XCTAssertLessThan(waited, 40, "the stall was reported after \(Int(waited)) s")
        XCTAssertTrue(stderr.contains("no record for 10 s after"), stderr)
        XCTAssertTrue(stderr.contains("partition 3:"), "one line per partition: \(stderr)")
        XCTAssertTrue(stderr.contains("log range unknown (the broker did not answer within 2 s)"), stderr)
    }
}
