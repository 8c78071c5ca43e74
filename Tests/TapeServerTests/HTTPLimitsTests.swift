import Foundation
import Hummingbird
import Logging
import MarketData
import TapeServer
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP server's limits over real sockets: oversized request lines and header blocks get
/// 414/431 and a closed connection (NIO's parser alone left the client waiting forever),
/// unfinished heads and idle connections are closed, connections beyond the cap get 503.
final class HTTPLimitsTests: XCTestCase {
    func withServer(_ limits: HTTPLimits, state: TapeServerState = TapeServerState(), _ body: (Int) async throws -> Void) async throws {
        var configuration = TapeServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.limits = limits
        let (trades, _) = PushFeed<Trade>.make()
        let (candles, _) = PushFeed<Candle>.make()
        var logger = Logger(label: "test.limits")
        logger.logLevel = .warning
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let app = buildTapeServer(
            configuration: configuration, trades: trades, candles: candles, history: InMemoryCandleHistory(), state: state, logger: logger,
            onServerRunning: { portSink.yield($0) })
        let running = Task { try await app.runService() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { return XCTFail("server did not start") }
        defer { running.cancel() }
        try await body(port)
    }

    static func connect(_ port: Int) -> Int32 {
        let fd = Loopback.connect(port: port, receiveTimeout: 5)
        XCTAssertGreaterThanOrEqual(fd, 0, "connect to 127.0.0.1:\(port)")
        return fd
    }

    /// Sends `request` and reads until the server closes (or 5 s pass); returns what came back.
    static func exchange(_ port: Int, _ request: String) -> (response: String, closed: Bool) {
        let fd = connect(port)
        defer { close(fd) }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return (String(decoding: out, as: UTF8.self), true) }
            if n < 0 { return (String(decoding: out, as: UTF8.self), errno == ECONNRESET) }
            out += buf[0..<n]
        }
    }

    func testOversizedRequestLineAndHeadersGet414And431() async throws {
        let state = TapeServerState()
        try await withServer(HTTPLimits(), state: state) { port in
            let long = Self.exchange(port, "GET /api/trades?x=\(String(repeating: "a", count: 100_000)) HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertTrue(long.response.hasPrefix("HTTP/1.1 414 "), long.response)
            XCTAssertTrue(long.closed)
            let headers = Self.exchange(port, "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "b", count: 200_000))\r\n\r\n")
            XCTAssertTrue(headers.response.hasPrefix("HTTP/1.1 431 "), headers.response)
            XCTAssertTrue(headers.closed)
            // Within the limits: answered, and keep-alive requests with bodies are followed.
            let ok = Self.exchange(
                port,
                "POST /nothing HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                    + "GET /health HTTP/1.1\r\nHost: t\r\nX-Ok: \(String(repeating: "c", count: 9_000))\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(ok.response.contains("HTTP/1.1 200 OK"), ok.response)
            XCTAssertTrue(ok.response.contains("\"status\""), ok.response)
        }
        XCTAssertEqual(state.httpLimits.uriTooLong.load(ordering: .relaxed), 1)
        XCTAssertEqual(state.httpLimits.headersTooLarge.load(ordering: .relaxed), 1)
    }

    func testUnfinishedHeadsAndIdleConnectionsAreClosed() async throws {
        var limits = HTTPLimits()
        limits.headTimeoutMs = 500
        limits.idleTimeoutMs = 500
        try await withServer(limits) { port in
            let slow = Self.connect(port)
            let idle = Self.connect(port)
            defer {
                close(slow)
                close(idle)
            }
            let partial = Array("GET /health HTTP/1.1\r\nHost: t\r\n".utf8)
            _ = partial.withUnsafeBytes { send(slow, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            let started = Date()
            var buf = [UInt8](repeating: 0, count: 512)
            let n = recv(slow, &buf, buf.count, 0)
            XCTAssertTrue(String(decoding: buf[0..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 408 "))
            XCTAssertEqual(recv(idle, &buf, buf.count, 0), 0, "idle connection closed")
            XCTAssertLessThan(Date().timeIntervalSince(started), 4.5)
        }
    }

    func testAtTheCapTheIdlestMakesRoomOrTheNewcomerGets503() async throws {
        var limits = HTTPLimits()
        limits.maxConnections = 3
        let state = TapeServerState()
        try await withServer(limits, state: state) { port in
            let held = (0..<3).map { _ in Self.connect(port) }
            defer { held.forEach { close($0) } }
            try await Task.sleep(for: .milliseconds(100))
            let refused = Self.exchange(port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertTrue(refused.response.hasPrefix("HTTP/1.1 503 "), refused.response)
            // Idle for over a second, one of them gives way.
            try await Task.sleep(for: .milliseconds(1_500))
            let admitted = Self.exchange(port, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(admitted.response.hasPrefix("HTTP/1.1 200 "), admitted.response)
            XCTAssertEqual(state.httpLimits.evicted.load(ordering: .relaxed), 1)
            close(held[0])
            try await Task.sleep(for: .milliseconds(200))
            let served = Self.exchange(port, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(served.response.hasPrefix("HTTP/1.1 200 "), served.response)
        }
    }
}
