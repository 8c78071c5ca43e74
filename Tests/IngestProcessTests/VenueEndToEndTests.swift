import Exchanges
import Foundation
import KafkaClient
import TapeTestSupport
import XCTest

/// `tape simulate --exchange X` (dropping connections, breaking frames) → `tape ingest --exchange X`
/// → `tape mock-cluster`, real processes, for the venues beyond Poloniex: the consumer must see
/// exactly the simulator's trades (every field, key `X:SYMBOL`, record time), each once, and every
/// broken frame on the dead-letter topic.
extension EndToEndTests {
    func venueEndToEnd(_ exchange: String, total: Int = 2_000) throws {
        let setup = try start("e2e-\(exchange)", rate: 300, maxTrades: total, dropEvery: 3, malformedEvery: 25, exchange: exchange)
        let ingest = try ingest(setup, name: "ingest-\(exchange)")
        let reader = try TopicReader(brokers: setup.brokers, topic: setup.topic, partitions: 3)
        defer { reader.stop() }
        let expected = waitForSimulator(setup, trades: total)
        XCTAssertGreaterThanOrEqual(expected.count, total)
        XCTAssertTrue(expected.allSatisfy { $0.exchange.name == exchange })
        let complete = reader.wait(for: expected.count, timeout: 60)
        usleep(2_000_000)  // anything extra (a duplicate) would arrive now
        XCTAssertEqual(ingest.interrupt(), 0, "ingest exits cleanly on SIGINT; stderr: \(ingest.stderr.suffix(2000))")
        XCTAssertTrue(complete, "only \(reader.count) of \(expected.count) trades arrived; ingest stderr: \(ingest.stderr.suffix(3000))")
        let summary = verify(consumed: reader.all, expected: expected, directory: setup.directory, exchange: exchange)

        let log = ingest.stderr
        let reconnects = log.components(separatedBy: "reconnecting in").count - 1
        XCTAssertGreaterThanOrEqual(reconnects, 2, "the simulator dropped the connection every 3 s")
        let malformed = lines(of: setup.malformedLog)
        XCTAssertGreaterThan(malformed.count, 2)
        let letters = try deadLetters(setup).filter { header($0, "type") == "unparseable-frame" }
        XCTAssertEqual(Set(letters.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }), Set(malformed))
        for letter in letters { XCTAssertEqual(header(letter, "exchange"), exchange) }
        print("e2e \(exchange): \(summary); \(reconnects) reconnects; \(malformed.count) malformed frames -> \(letters.count) dead letters")
        setup.simulator.interrupt()
        setup.mock?.interrupt()
    }

    func testKrakenEndToEnd() throws { try venueEndToEnd("kraken") }
    func testBinanceEndToEnd() throws { try venueEndToEnd("binance") }
    func testCoinbaseEndToEnd() throws { try venueEndToEnd("coinbase") }
}
