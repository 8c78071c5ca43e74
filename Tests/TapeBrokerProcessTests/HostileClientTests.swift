import Foundation
import KafkaProtocol
import Logging
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

#if canImport(Glibc)
    import Glibc
#endif

/// Clients that misbehave on purpose, over real loopback sockets against an in-process
/// `BrokerServer`: idle and half-sent connections, a connection flood, request memory,
/// pipelined requests. Each test checks that the broker keeps answering everyone else.
final class HostileClientTests: XCTestCase {
    struct Running {
        let broker: Broker
        let server: BrokerServer
        let port: Int
        let task: Task<Void, any Error>
        func stop() async {
            task.cancel()
            _ = await task.result
        }
    }

    func start(_ configure: (inout BrokerConfiguration) -> Void) async throws -> Running {
        var c = BrokerConfiguration()
        c.port = 0
        configure(&c)
        var quiet = Logger(label: "hostile")
        quiet.logLevel = .error
        let broker = Broker(configuration: c, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore(), logger: quiet)
        let server = BrokerServer(broker: broker, logger: quiet)
        let bound = try await server.bind()
        let task = Task { try await bound.run() }
        return Running(broker: broker, server: server, port: bound.port, task: task)
    }

    static func frame<M: KafkaRequestMessage>(_ m: M, version: Int16, correlationId: Int32 = 1) -> [UInt8] {
        let b = KafkaRequest.encodeFrame(m, version: version, correlationId: correlationId, clientId: "hostile")
        return Array(b.readableBytesView)
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Reads one response frame; nil on EOF, error or the socket's 5 s timeout.
    static func readFrame(_ fd: Int32) -> [UInt8]? {
        var size = [UInt8](repeating: 0, count: 4)
        guard recv(fd, &size, 4, Int32(MSG_WAITALL)) == 4 else { return nil }
        let n = Int(UInt32(size[0]) << 24 | UInt32(size[1]) << 16 | UInt32(size[2]) << 8 | UInt32(size[3]))
        var body = [UInt8](repeating: 0, count: n)
        var got = 0
        while got < n {
            let r = body[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if r <= 0 { return nil }
            got += r
        }
        return body
    }

    /// True when the peer closed the connection (recv gives 0 or a reset) within the socket timeout.
    static func isClosed(_ fd: Int32) -> Bool {
        var b = [UInt8](repeating: 0, count: 64)
        while true {
            let n = recv(fd, &b, b.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// ApiVersions round trip on a fresh connection; the time it took, or nil if unanswered.
    static func probe(port: Int) -> Duration? {
        let clock = ContinuousClock()
        let start = clock.now
        let fd = Loopback.connect(port: port, receiveTimeout: 5)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard send(fd, frame(ApiVersionsRequest(), version: 0, correlationId: 77)), let r = readFrame(fd), r.count >= 4, r[3] == 77 else { return nil }
        return clock.now - start
    }

    func testIdleAndHalfSentConnectionsAreClosedByTheirTimeouts() async throws {
        let s = try await start {
            $0.connectionsMaxIdleMs = 400
            $0.requestReadTimeoutMs = 400
        }
        let idle = Loopback.connect(port: s.port, receiveTimeout: 5)
        let half = Loopback.connect(port: s.port, receiveTimeout: 5)
        let busy = Loopback.connect(port: s.port, receiveTimeout: 5)
        defer { [idle, half, busy].forEach { close($0) } }
        // A frame announcing 1000 bytes, of which 10 arrive.
        XCTAssertTrue(Self.send(half, [0, 0, 0x03, 0xE8] + [UInt8](repeating: 0, count: 10)))
        // The busy one talks every 100 ms for 1.5 s and must stay open throughout.
        for i in 0..<15 {
            XCTAssertTrue(Self.send(busy, Self.frame(ApiVersionsRequest(), version: 0, correlationId: Int32(i))))
            XCTAssertNotNil(Self.readFrame(busy), "busy connection answered (\(i))")
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertTrue(Self.isClosed(idle), "idle connection closed")
        XCTAssertTrue(Self.isClosed(half), "half-sent frame closed")
        XCTAssertEqual(s.server.limits.idleClosed.load(ordering: .relaxed), 1)
        XCTAssertEqual(s.server.limits.readTimeouts.load(ordering: .relaxed), 1)
        await s.stop()
    }

    func testAtMaxConnectionsTheIdlestMakesRoomOrTheNewcomerIsRefused() async throws {
        let s = try await start { $0.maxConnections = 3 }
        var fds = (0..<3).map { _ in Loopback.connect(port: s.port, receiveTimeout: 5) }
        defer { fds.forEach { close($0) } }
        for fd in fds { XCTAssertGreaterThanOrEqual(fd, 0) }
        try await Task.sleep(for: .milliseconds(100))
        // All three idle for less than a second: the fourth is refused.
        let refused = Loopback.connect(port: s.port, receiveTimeout: 5)
        XCTAssertTrue(Self.isClosed(refused))
        close(refused)
        XCTAssertEqual(s.server.limits.rejected.load(ordering: .relaxed), 1)
        // Once idle for a second, the idlest gives way to a client that has work to do.
        try await Task.sleep(for: .milliseconds(1_500))
        XCTAssertTrue(Self.send(fds[1], Self.frame(ApiVersionsRequest(), version: 0)))
        XCTAssertNotNil(Self.readFrame(fds[1]))
        XCTAssertNotNil(Self.probe(port: s.port), "a new client is served at the limit")
        XCTAssertEqual(s.server.limits.evicted.load(ordering: .relaxed), 1)
        XCTAssertTrue(Self.isClosed(fds[0]) || Self.isClosed(fds[2]), "one of the idle ones was closed")
        // The one that talked recently was kept.
        XCTAssertTrue(Self.send(fds[1], Self.frame(ApiVersionsRequest(), version: 0)))
        XCTAssertNotNil(Self.readFrame(fds[1]))
        fds.append(-1)
        await s.stop()
    }

    func testLargeFramesWaitForRequestMemoryInsteadOfPilingUp() async throws {
        let s = try await start {
            $0.maxFrameBytes = 1 << 20
            $0.maxRequestMemoryBytes = 1 << 20
            $0.requestReadTimeoutMs = 1_500
        }
        // A client announces a 1 MiB frame, sends part of it and stalls: it holds the pool.
        let hog = Loopback.connect(port: s.port, receiveTimeout: 5)
        defer { close(hog) }
        XCTAssertTrue(Self.send(hog, [0, 0x10, 0, 0] + [UInt8](repeating: 0, count: 1_000)))
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertGreaterThanOrEqual(s.server.requestMemory.used, 1 << 20)
        // A real 200 kB produce must wait for memory, then be answered once the hog times out.
        let batch = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: [UInt8](repeating: 7, count: 200_000))], baseTimestamp: 1)
        let producer = Loopback.connect(port: s.port, receiveTimeout: 5)
        defer { close(producer) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(producer, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let clock = ContinuousClock()
        let start = clock.now
        XCTAssertTrue(
            Self.send(
                producer,
                Self.frame(ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: "t", partitions: [.init(index: 0, records: batch)])]), version: 7)))
        // Small requests do not wait behind large frames.
        let probe = Self.probe(port: s.port)
        XCTAssertNotNil(probe)
        XCTAssertLessThan(probe ?? .seconds(9), .milliseconds(500))
        let answer = Self.readFrame(producer)
        XCTAssertNotNil(answer, "the produce is answered after the hog is closed")
        XCTAssertGreaterThan(clock.now - start, .milliseconds(800), "it waited for the hog's memory")
        XCTAssertTrue(Self.isClosed(hog))
        XCTAssertGreaterThanOrEqual(s.server.limits.memoryWaits.load(ordering: .relaxed), 1)
        XCTAssertEqual(s.server.limits.readTimeouts.load(ordering: .relaxed), 1)
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(s.server.requestMemory.used, 0, "every reservation was released")
        let end = await s.broker.listOffsets(ListOffsetsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -1)])]))
        XCTAssertEqual(end.topics[0].partitions[0].offset, 1, "the waiting produce was written")
        await s.stop()
    }

    func testParkedFetchOfAClosedConnectionIsReleased() async throws {
        let s = try await start { _ in }
        let fd = Loopback.connect(port: s.port, receiveTimeout: 5)
        let fetch = FetchRequest(
            maxWaitMs: 600_000, minBytes: Int32.max, maxBytes: Int32.max,
            topics: (0..<20).map { _ in .init(topic: "t", partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: Int32.max)]) })
        // Create the topic first (auto-create on metadata), then park.
        XCTAssertTrue(Self.send(fd, Self.frame(MetadataRequest(topics: ["t"]), version: 4)))
        XCTAssertNotNil(Self.readFrame(fd))
        XCTAssertTrue(Self.send(fd, Self.frame(fetch, version: 11)))
        var parked = 0
        for _ in 0..<200 {
            parked = await s.broker.parkedFetchCount
            if parked == 1 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertEqual(parked, 1)
        close(fd)
        for _ in 0..<200 {
            parked = await s.broker.parkedFetchCount
            if parked == 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertEqual(parked, 0, "closing the connection released its parked fetch (max_wait was 10 minutes)")
        await s.stop()
    }

    func testPipelinedRequestsStopBeingReadWhileRepliesWait() async throws {
        // Fetches of ~1 MB each, 60 pipelined, not read for a while: the broker must stop reading
        // requests once a few replies wait, instead of building 60 MB of responses.
        let s = try await start {
            $0.maxQueuedResponsesPerConnection = 4
            $0.maxQueuedResponseBytesPerConnection = 4 << 20
        }
        let batch = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: [UInt8](repeating: 7, count: 1_000_000))], baseTimestamp: 1)
        _ = await s.broker.produce(ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: "t", partitions: [.init(index: 0, records: batch)])]))
        let fd = Loopback.connect(port: s.port, receiveTimeout: 5)
        defer { close(fd) }
        let fetch = Self.frame(
            FetchRequest(
                maxWaitMs: 0, minBytes: 0, maxBytes: 2_000_000,
                topics: [.init(topic: "t", partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 2_000_000)])]),
            version: 11)
        let requests = Array((0..<60).map { _ in fetch }.joined())
        XCTAssertTrue(Self.send(fd, requests))  // ~6 kB: fits the socket buffers
        try await Task.sleep(for: .milliseconds(500))
        let written = s.server.traffic.bytesOut.load(ordering: .relaxed)
        XCTAssertLessThan(written, 30 << 20, "the socket buffers and a few queued responses, not all 60 MB")
        // Another client is served meanwhile.
        XCTAssertNotNil(Self.probe(port: s.port))
        // Reading resumes the stream: all 60 answers arrive.
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        for i in 0..<60 {
            guard let r = Self.readFrame(fd) else { return XCTFail("response \(i) missing") }
            XCTAssertGreaterThan(r.count, 1_000_000)
        }
        // The last write's completion may run just after the client has its bytes.
        for _ in 0..<100 where s.broker.pendingResponseBytes.value != 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(s.broker.pendingResponseBytes.value, 0, "every large response written was counted out again")
        await s.stop()
    }
}
