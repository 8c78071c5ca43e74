import Foundation
import XCTest

@testable import TapeBroker

/// `kill -9` of a process that is appending with `fsync=always`: after reopening, every
/// acknowledged record is there exactly once and offsets are contiguous.
///
/// The test binary re-runs itself with `TAPE_CRASH_CHILD_DIR` set, selecting `testChildWriter`,
/// which appends forever and prints each acknowledged offset; the parent kills it mid-stream.
final class CrashProcessTests: StorageTestCase {
    func testChildWriter() async throws {
        guard let dir = ProcessInfo.processInfo.environment["TAPE_CRASH_CHILD_DIR"] else { return }
        let manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .always, maintenanceIntervalMs: 0))
        var config = LogConfig()
        config.segmentBytes = 64 * 1024  // roll often, so the kill can land near a roll
        _ = try manager.ensureTopic(name: "crash", partitions: 1, config: config)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<8 {
                group.addTask {
                    var i = 0
                    while true {
                        let value = "p\(producer)-\(i)"
                        let info = try await manager.appendDurably(
                            topic: "crash", partition: 0, batch: makeBatch(records: [TestRecord(key: "p\(producer)", value: value)]))
                        FileHandle.standardOutput.write(Data("ACK \(info.baseOffset) \(value)\n".utf8))
                        i += 1
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func testKillDuringAppendsLosesNoAcknowledgedRecord() throws {
        guard ProcessInfo.processInfo.environment["TAPE_CRASH_CHILD_DIR"] == nil else { return }
        let dir = temporaryDirectory()
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["TapeBrokerStorageTests.CrashProcessTests/testChildWriter"]
        var env = ProcessInfo.processInfo.environment
        env["TAPE_CRASH_CHILD_DIR"] = dir
        child.environment = env
        let pipe = Pipe()
        child.standardOutput = pipe
        let stderrPath = (dir as NSString).appendingPathComponent("child-stderr.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        child.standardError = FileHandle(forWritingAtPath: stderrPath)
        try child.run()

        // Read acks until we have a few thousand, then SIGKILL.
        var acked: [Int64: String] = [:]
        var buffer = Data()
        let reader = pipe.fileHandleForReading
        let deadline = Date().addingTimeInterval(60)
        func consume(_ data: Data) {
            buffer += data
            while let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[0] == "ACK", let o = Int64(parts[1]) { acked[o] = String(parts[2]) }
            }
        }
        while acked.count < 3000 && Date() < deadline {
            let data = reader.availableData
            if data.isEmpty { break }
            consume(data)
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        // Acks the child printed before dying still count.
        consume(reader.readDataToEndOfFile())
        let childErrors = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        XCTAssertGreaterThanOrEqual(
            acked.count, 3000,
            "child did not produce enough acks (exit \(child.terminationStatus)): \(childErrors.suffix(2000))")

        let log = try Log(directory: "\(dir)/crash-0", topic: "crash", partition: 0)
        let records = try readAll(log).flatMap(\.records)
        XCTAssertEqual(records.map(\.offset), Array(0..<log.logEndOffset), "offsets contiguous")
        XCTAssertEqual(Set(records.compactMap(\.value)).count, records.count, "no record twice")
        var missing = 0
        for (offset, value) in acked {
            guard offset < log.logEndOffset, records[Int(offset)].value == value else {
                missing += 1
                continue
            }
        }
        XCTAssertEqual(missing, 0, "acknowledged records lost: \(missing) of \(acked.count)")
        print("kill -9: \(acked.count) acknowledged, \(records.count) recovered, \(log.segmentCount) segments")
    }
}
