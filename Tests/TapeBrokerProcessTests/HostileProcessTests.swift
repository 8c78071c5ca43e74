import Foundation
import KafkaProtocol
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Hostile clients against a real `tape broker` process under a low open-files limit: a flood
/// of idle connections and large half-sent frames. The broker must stay alive, keep its memory
/// bounded, keep serving real clients (kcat), and keep every acknowledged record across a restart.
final class HostileProcessTests: XCTestCase {
    var dataDir: URL!

    override func setUp() {
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-hostile-\(UUID().uuidString)")
        // This test process opens hundreds of sockets itself.
        var l = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        if l.rlim_cur < l.rlim_max {
            l.rlim_cur = min(l.rlim_max, 65_536)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        }
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dataDir) }

    static func residentMegabytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return -1 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1) / 1024
    }

    func kcat(_ args: [String], stdin: String? = nil) throws -> ProcessResult {
        try runProcess(try Executables.require("kcat"), args, stdin: stdin, timeout: 60)
    }

    /// 600 idle connections at `ulimit -n 256` (the old broker died of EMFILE within 30 s): the
    /// broker refuses what does not fit its descriptor budget, lets an idle connection make room
    /// for a real client, and loses nothing.
    func testConnectionFloodUnderUlimit256() throws {
        let broker = try BrokerProcess.limited(fileLimit: 256, dataDir: dataDir)
        let messages = (0..<500).map { "before-\($0)" }
        XCTAssertEqual(try kcat(["-b", broker.address, "-P", "-t", "flood", "-X", "acks=all"], stdin: messages.joined(separator: "\n") + "\n").status, 0)

        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<600 {
            let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
            if fd >= 0 { fds.append(fd) }
        }
        // Give the broker time to accept (and refuse) them all, and the held ones to become idle.
        sleep(2)
        XCTAssertTrue(broker.process.isRunning, "the broker survived the flood: \(broker.log.suffix(2000))")
        XCTAssertTrue(broker.log.contains("refusing connections"), "it says why connections are closed")
        XCTAssertLessThan(broker.openDescriptors, 256)

        // Real clients get through (an idle connection gives way) and the data is intact.
        let after = (0..<500).map { "after-\($0)" }
        let produced = try kcat(["-b", broker.address, "-P", "-t", "flood", "-X", "acks=all"], stdin: after.joined(separator: "\n") + "\n")
        XCTAssertEqual(produced.status, 0, produced.stderr)
        let consumed = try kcat(["-b", broker.address, "-C", "-t", "flood", "-o", "beginning", "-e", "-q", "-f", "%s\n"])
        XCTAssertEqual(consumed.stdout.split(separator: "\n").map(String.init), messages + after)
        XCTAssertLessThan(Self.residentMegabytes(broker.process.processIdentifier), 300)

        // Restart on the same directory: everything acknowledged is there.
        fds.forEach { close($0) }
        fds = []
        broker.kill9()
        let again = try BrokerProcess.limited(fileLimit: 256, dataDir: dataDir)
        defer { again.kill9() }
        let reread = try kcat(["-b", again.address, "-C", "-t", "flood", "-o", "beginning", "-e", "-q", "-f", "%s\n"])
        XCTAssertEqual(reread.stdout.split(separator: "\n").count, 1_000)
    }

    /// Twenty connections each announce a 99 MiB frame and send 20 MiB of it (400 MiB in all),
    /// then stall. With 64 MiB of request memory the broker reads at most a few of them; the others
    /// wait unread. RSS stays bounded, kcat is served meanwhile, and the stalled frames are closed
    /// by the read timeout.
    func testHalfSentHugeFramesKeepMemoryBounded() throws {
        let broker = try BrokerProcess.limited(
            fileLimit: 1024, dataDir: dataDir, extra: ["--queued-max-request-bytes", "\(64 << 20)", "--request-read-timeout-ms", "4000"])
        defer { broker.kill9() }
        let announced = 99 << 20
        let header: [UInt8] = [UInt8(announced >> 24), UInt8((announced >> 16) & 0xFF), UInt8((announced >> 8) & 0xFF), UInt8(announced & 0xFF)]
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<20 {
            let fd = Loopback.connect(port: broker.port, receiveTimeout: 5)
            XCTAssertGreaterThanOrEqual(fd, 0)
            fds.append(fd)
            var tv = timeval(tv_sec: 0, tv_usec: 200_000)  // a send that blocks (broker not reading) gives up
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        var sentTotal = 0
        for fd in fds {
            _ = header.withUnsafeBytes { send(fd, $0.baseAddress, 4, Int32(MSG_NOSIGNAL)) }
            for _ in 0..<20 {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                sentTotal += n
            }
        }
        let rss = Self.residentMegabytes(broker.process.processIdentifier)
        XCTAssertTrue(broker.process.isRunning)
        XCTAssertLessThan(rss, 350, "RSS \(rss) MB after clients pushed \(sentTotal >> 20) MiB of unfinished frames")
        // Metadata from a real client is answered while the pool is full.
        let started = Date()
        let metadata = try kcat(["-b", broker.address, "-L"])
        XCTAssertEqual(metadata.status, 0, metadata.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
        // The stalled frames are closed by the read timeout; the first ones within ~4 s.
        sleep(5)
        var closed = 0
        for fd in fds {
            var b = [UInt8](repeating: 0, count: 16)
            var tv = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let n = recv(fd, &b, b.count, 0)
            if n == 0 || (n < 0 && errno == ECONNRESET) { closed += 1 }
        }
        XCTAssertGreaterThan(closed, 0, "stalled frames are closed by --request-read-timeout-ms")
        XCTAssertTrue(broker.log.contains("request read timeout"), broker.log.suffix(2000).description)
        XCTAssertTrue(broker.process.isRunning)
    }
}
