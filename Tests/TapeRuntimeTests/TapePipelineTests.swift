import Foundation
import Processing
import TapeBroker
import TapeRuntime
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The whole pipeline in this process, through `buildTape` (the entry point `tape up` runs):
/// embedded broker, simulator, ingest, processing and server on loopback ports.
final class TapePipelineTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "tape-runtime-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func configuration() -> TapeConfiguration {
        var c = TapeConfiguration()
        c.dataDirectory = directory
        c.brokerPort = 0
        c.httpPort = 0
        c.venues = [TapeVenue(exchange: "poloniex", symbols: ["BTC_USDT", "ETH_USDT"])]
        c.exchange = .simulated(.init(rate: 200))
        c.candleEmitMilliseconds = 100
        c.statusLine = .off
        return c
    }

    func testRunsStopsInOrderAndKeepsHistoryAcrossARestart() async throws {
        let first = try await buildTape(configuration())
        let running = Task { try await first.run() }
        let port = try await XCTUnwrapAsync(await first.server.port())
        let candles = try await waitForJSON(port: port, path: "/api/candles?symbol=poloniex:BTC-USDT&interval=1m", seconds: 60) { json in
            ((json as? [String: Any])?["candles"] as? [Any])?.isEmpty == false
        }
        let firstStart = try XCTUnwrap((((candles as? [String: Any])?["candles"] as? [[String: Any]])?.first)?["start"] as? Int)
        let stats = try await waitForJSON(port: port, path: "/api/stats", seconds: 10) { json in
            (((json as? [String: Any])?["exchanges"] as? [[String: Any]])?.first?["tradesTotal"] as? Int ?? 0) > 0
        }
        XCTAssertNotNil(stats)
        // `tape up` collects books: every market's book is served from tape.books, never crossed.
        for symbol in ["BTC-USDT", "ETH-USDT"] {
            let book = try await waitForJSON(port: port, path: "/api/book?symbol=poloniex:\(symbol)&depth=5", seconds: 30) { json in
                ((json as? [String: Any])?["bids"] as? [Any])?.isEmpty == false
            }
            let fields = try XCTUnwrap(book as? [String: Any])
            XCTAssertEqual(fields["crossed"] as? Bool, false, "\(symbol): \(fields)")
            XCTAssertEqual((fields["asks"] as? [Any])?.count, 5, "\(symbol): \(fields)")
            XCTAssertNotNil(fields["sequence"] as? String)
        }

        await first.triggerGracefulShutdown()
        try await running.value
        // Reverse start order: ingestion flushes before processing commits, the server closes
        // before the broker syncs its files.
        XCTAssertEqual(first.stopOrder.entries, ["ingest:poloniex", "simulator:poloniex", "processor", "server", "broker"])

        // The same data directory again: the candle history is there before anything new arrives.
        let second = try await buildTape(configuration())
        // The stopped pipeline gave its static-membership id back: the new one rejoins as the same member.
        XCTAssertNotNil(first.processor.processor.configuration.groupInstanceID)
        XCTAssertEqual(second.processor.processor.configuration.groupInstanceID, first.processor.processor.configuration.groupInstanceID)
        let again = Task { try await second.run() }
        let secondPort = try await XCTUnwrapAsync(await second.server.port())
        let history = try await getJSON(port: secondPort, path: "/api/candles?symbol=poloniex:BTC-USDT&interval=1m")
        let starts = ((history as? [String: Any])?["candles"] as? [[String: Any]])?.compactMap { $0["start"] as? Int } ?? []
        XCTAssertTrue(starts.contains(firstStart), "history after restart: \(starts), expected \(firstStart)")
        await second.triggerGracefulShutdown()
        try await again.value
    }

    func testABusyBrokerPortIsASentenceNotACrash() async throws {
        let first = try await buildTape(configuration())
        var busy = configuration()
        busy.dataDirectory = directory + "-2"
        defer { try? FileManager.default.removeItem(atPath: busy.dataDirectory) }
        busy.brokerPort = try XCTUnwrap(first.broker?.port)
        do {
            _ = try await buildTape(busy)
            XCTFail("a second broker bound the same port")
        } catch let error as BrokerStartError {
            XCTAssertTrue(error.message.contains("\(busy.brokerPort)"), error.message)
        }
        let running = Task { try await first.run() }
        await first.triggerGracefulShutdown()
        try await running.value
    }

    // MARK: - HTTP

    private func getJSON(port: Int, path: String) async throws -> Any {
        let url = try XCTUnwrap(URL(string: "http://127.0.0.1:\(port)\(path)"))
        let (data, _) = try await URLSession.shared.data(from: url)
        return try JSONSerialization.jsonObject(with: data)
    }

    private func waitForJSON(port: Int, path: String, seconds: Double, until ready: (Any) -> Bool) async throws -> Any {
        let deadline = Date().addingTimeInterval(seconds)
        var last: Any?
        while Date() < deadline {
            if let json = try? await getJSON(port: port, path: path) {
                if ready(json) { return json }
                last = json
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        XCTFail("\(path) not ready after \(seconds) s; last answer: \(String(describing: last))")
        throw CancellationError()
    }
}

private func XCTUnwrapAsync<T>(_ value: T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    try XCTUnwrap(value, file: file, line: line)
}
