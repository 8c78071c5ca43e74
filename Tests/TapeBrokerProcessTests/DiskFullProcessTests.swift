import Foundation
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `tape broker` on a real, small file system that fills up (a tmpfs mounted for the test; needs
/// root, as in CI). Producers get an error for what did not fit, the broker keeps serving, and
/// every acknowledged record is there — after a kill -9 on the still-full disk, too — and
/// producing works again once space is freed.
final class DiskFullProcessTests: XCTestCase {
    var mountPoint: URL!
    var mounted = false

    override func setUpWithError() throws {
        mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("tape-full-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        let r = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", mountPoint.path])
        guard r.status == 0 else {
            throw XCTSkip("cannot mount a small tmpfs to fill up (needs root): \(r.stderr)")
        }
        mounted = true
    }

    override func tearDown() {
        if mounted { _ = try? runProcess("/bin/umount", ["-l", mountPoint.path]) }
        try? FileManager.default.removeItem(at: mountPoint)
    }

    /// Sends `count` records of ~1 KB with acks=all and no retries; prints the ids acknowledged.
    static let producerScript = """
        import sys
        from kafka import KafkaProducer
        b, topic, first, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        p = KafkaProducer(bootstrap_servers=b, acks="all", retries=0, linger_ms=5, batch_size=65536,
                          request_timeout_ms=10000, max_block_ms=10000)
        pad = b"x" * 1000
        futures = [(i, p.send(topic, value=b"%d:" % i + pad)) for i in range(first, first + n)]
        p.flush(timeout=60)
        acked, errors = [], set()
        for i, f in futures:
            try:
                f.get(timeout=0)
                acked.append(i)
            except Exception as e:
                errors.add(type(e).__name__)
        print("ACKED " + " ".join(map(str, acked)))
        print("ERRORS " + " ".join(sorted(errors)))
        """

    func produce(_ python: String, _ broker: BrokerProcess, first: Int, count: Int) throws -> (acked: [Int], errors: String) {
        let r = try runProcess(python, ["-c", Self.producerScript, broker.address, "full", "\(first)", "\(count)"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        let acked = lines.first { $0.hasPrefix("ACKED") }.map { $0.split(separator: " ").dropFirst().compactMap { Int($0) } } ?? []
        let errors = lines.first { $0.hasPrefix("ERRORS") }.map { String($0.dropFirst(6)) } ?? ""
        return (acked, errors)
    }

    func storedIds(_ kcat: String, _ broker: BrokerProcess) throws -> [Int] {
        let r = try runProcess(kcat, ["-b", broker.address, "-C", "-t", "full", "-o", "beginning", "-e", "-q", "-f", "%s\n"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.split(separator: "\n").compactMap { $0.split(separator: ":").first.flatMap { Int($0) } }
    }

    func testFullDiskRefusesWhatDoesNotFitAndKeepsEverythingAcknowledged() throws {
        let kcat = try Executables.require("kcat")
        let python = try Executables.require("python3")
        guard try runProcess(python, ["-c", "import kafka"]).status == 0 else {
            throw XCTSkip("kafka-python is not installed (pip install kafka-python)")
        }
        // Leave ~6 MB for the broker; the filler is removed later to free space.
        let filler = mountPoint.appendingPathComponent("filler")
        XCTAssertEqual(try runProcess("/bin/dd", ["if=/dev/zero", "of=\(filler.path)", "bs=1M", "count=18"]).status, 0)
        let dataDir = mountPoint.appendingPathComponent("data")
        let port = Loopback.freePort()
        var broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)

        // ~10 MB of records into ~6 MB of space.
        let first = try produce(python, broker, first: 0, count: 10_000)
        XCTAssertGreaterThan(first.acked.count, 1_000, "some records fit")
        XCTAssertLessThan(first.acked.count, 10_000, "not everything fits: \(first.errors)")
        XCTAssertTrue(first.errors.contains("KafkaStorageError"), "the producer is told why: \(first.errors)")
        XCTAssertTrue(broker.log.contains("disk full"), broker.log)

        var stored = try storedIds(kcat, broker)
        XCTAssertEqual(stored.count, Set(stored).count, "no record stored twice")
        XCTAssertTrue(Set(first.acked).isSubset(of: Set(stored)), "every acknowledged record is readable")
        XCTAssertEqual(Set(stored), Set(first.acked), "nothing unacknowledged was kept (partial writes are rolled back)")

        // kill -9 on the still-full disk, restart: everything acknowledged is still there.
        broker.kill9()
        broker = try BrokerProcess(extraArguments: ["--fsync", "always"], port: port, dataDir: dataDir)
        stored = try storedIds(kcat, broker)
        XCTAssertEqual(stored, first.acked, "after kill -9 and restart on a full disk")

        // Free space: producing works again and offsets continue.
        try FileManager.default.removeItem(at: filler)
        let second = try produce(python, broker, first: 100_000, count: 500)
        XCTAssertEqual(second.acked.count, 500, second.errors)
        stored = try storedIds(kcat, broker)
        XCTAssertEqual(stored, first.acked + second.acked)
        XCTAssertEqual(broker.stop(), 0)
    }
}
