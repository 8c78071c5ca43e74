import Foundation
import Logging
import MarketData
import Processing
import TapeServer
import XCTest

/// The server's own candle history (`tape serve` without `--db`): batches read from `tape.candles`
/// are written with the positions reached; the highest revision of a window wins; reopened, it
/// keeps its candles and says where to resume.
final class TopicCandleHistoryTests: XCTestCase {
    var dir: URL!
    var path: String { dir.appendingPathComponent("serve-candles.sqlite").path }

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-topic-history-\(UUID().uuidString)")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func open() throws -> TopicCandleHistory {
        var logger = Logger(label: "test.topic-history")
        logger.logLevel = .warning
        return try TopicCandleHistory(path: path, topic: "tape.candles", logger: logger)
    }

    func revision(_ index: Int, _ revision: Int64, final: Bool = true, close: String? = nil) -> Candle {
        var c = Fixture.candle(Fixture.btc, .oneMinute, index: index, base: 21_600, revision: revision, isFinal: final)
        if let close { c.close = try! ExactDecimal(close) }
        return c
    }

    func testHighestRevisionWinsAndEqualRevisionsTakeTheLaterRecord() async throws {
        let history = try open()
        guard case .resume(let fresh) = history.start else { return XCTFail("\(history.start)") }
        XCTAssertEqual(fresh, [:], "a new store reads the topic from its beginning")
        XCTAssertEqual(history.candlesAtStart, 0)

        try history.record([revision(0, 0, final: false, close: "1"), revision(0, 0, final: false, close: "2"), revision(1, 0)], positions: [0: 3])
        try history.record([revision(0, 2, close: "3")], positions: [0: 4])
        // An older revision read later (a re-read, or a zombie processor) does not win.
        try history.record([revision(0, 1, close: "4")], positions: [0: 5, 1: 7])
        let read = try await history.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 10)
        XCTAssertEqual(read.map(\.start), [Fixture.t0, Fixture.t0 + 60_000], "one row per window")
        XCTAssertEqual(read.first?.revision, 2)
        XCTAssertEqual(read.first?.close.description, "3")
        let markets = try await history.markets()
        XCTAssertEqual(markets, [Fixture.btc])
    }

    func testReopenedItKeepsItsCandlesAndResumesWhereItStopped() async throws {
        do {
            let history = try open()
            try history.record((0..<20).map { revision($0, 0) }, positions: [0: 20, 2: 4])
            try history.record([], positions: [0: 25])  // undecodable records still move the position
        }
        let reopened = try open()
        XCTAssertEqual(reopened.candlesAtStart, 20)
        guard case .resume(let next) = reopened.start else { return XCTFail("\(reopened.start)") }
        XCTAssertEqual(next, [0: 25, 2: 4])
        // Reading the same records again (a crash between a batch and its positions cannot happen:
        // they are one transaction, but a re-read is harmless anyway) adds nothing.
        try reopened.record((0..<20).map { revision($0, 0) }, positions: [0: 20])
        XCTAssertEqual(try reopened.store.count(), 20)
        let read = try await reopened.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 100)
        XCTAssertEqual(read, (0..<20).map { revision($0, 0) })
    }

    /// Positions are per topic: another `--candles-topic` starts from its beginning.
    func testPositionsArePerTopic() throws {
        do { try open().record([revision(0, 0)], positions: [0: 1]) }
        var logger = Logger(label: "test.topic-history")
        logger.logLevel = .warning
        let other = try TopicCandleHistory(path: path, topic: "other.candles", logger: logger)
        guard case .resume(let next) = other.start else { return XCTFail("\(other.start)") }
        XCTAssertEqual(next, [:])
    }
}
