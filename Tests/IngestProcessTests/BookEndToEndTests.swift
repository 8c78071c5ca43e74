import Exchanges
import Foundation
import KafkaClient
import MarketData
import TapeTestSupport
import XCTest

/// Order books end to end, real processes: `tape simulate --exchange X` with book faults (dropped
/// connections, skipped and swapped updates, corrupted checksums) → `tape ingest --channels
/// trades,book` → Kafka (mock cluster here, `tape broker` in the subclass). A consumer applying each
/// key's `tape.books` records in order must hold exactly the simulator's final books, must never see
/// a crossed book or an update before a snapshot, and every resync must be on `tape.gaps`.
extension EndToEndTests {
    /// A book by value: each level's price and quantity as exact decimals (venues that print JSON
    /// numbers, Kraken, write 0.06812 where the simulator's text is 0.068120), cut to `depth` levels.
    static func values(_ book: OrderBook, depth: Int = .max) -> [String] {
        func side(_ levels: [BookLevel]) -> [String] {
            levels.map { level in
                let price = (try? ExactDecimal(level.price))?.normalized().description ?? level.price
                let quantity = (try? ExactDecimal(level.quantity))?.normalized().description ?? level.quantity
                return price + "@" + quantity
            }
        }
        return side(book.bids(top: depth)) + ["|"] + side(book.asks(top: depth))
    }

    /// `depth`: levels per side the venue sends (Kraken's subscription: 10), nil for whole books.
    func bookEndToEnd(_ exchange: String, faults: [String], depth: Int? = nil, expectGaps: Bool = true, total: Int = 1_500) throws {
        let name = "books-\(exchange)"
        let finalBooks = try temporaryDirectory(name + "-final").appendingPathComponent("final-books.jsonl").path
        let setup = try start(
            name, rate: 300, maxTrades: total, dropEvery: 4, malformedEvery: 1_000_000, exchange: exchange,
            simulatorExtra: ["--final-books", finalBooks] + faults)
        let ingest = try ingest(setup, name: "ingest-\(name)", extra: ["--channels", "trades,book"])
        let reader = try TopicReader(brokers: setup.brokers, topic: setup.booksTopic, partitions: 3)
        defer { reader.stop() }

        // The simulator's books once it stopped trading.
        var expected: [String: OrderBook] = [:]
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline, expected.isEmpty {
            for line in lines(of: finalBooks) {
                guard let event = try? BookEvent(json: line) else { continue }
                expected[event.kafkaKey] = OrderBook(bids: event.bids, asks: event.asks)
            }
            if expected.isEmpty { usleep(200_000) }
        }
        XCTAssertFalse(expected.isEmpty, "the simulator never wrote its final books; its stderr: \(setup.simulator.stderr.suffix(1000))")

        // Apply records as they arrive until every book equals the simulator's.
        var rebuilt: [String: OrderBook] = [:]
        var applied = 0, snapshots = 0, updates = 0, crossed = 0, updatesBeforeSnapshot = 0, undecodable = 0
        func catchUp() {
            let records = reader.all
            while applied < records.count {
                let record = records[applied]
                applied += 1
                guard let value = record.value, let event = try? BookEvent(json: value) else {
                    undecodable += 1
                    continue
                }
                XCTAssertEqual(record.key.map { String(decoding: $0, as: UTF8.self) }, event.kafkaKey)
                XCTAssertEqual(record.timestamp, event.time, "record time = the venue's event time")
                switch event.kind {
                case .snapshot:
                    snapshots += 1
                    rebuilt[event.kafkaKey] = OrderBook(bids: event.bids, asks: event.asks)
                case .update:
                    updates += 1
                    guard rebuilt[event.kafkaKey] != nil else {
                        updatesBeforeSnapshot += 1
                        continue
                    }
                    rebuilt[event.kafkaKey]?.apply(bids: event.bids, asks: event.asks)
                }
                if rebuilt[event.kafkaKey]?.isCrossed == true { crossed += 1 }
            }
        }
        let settle = Date().addingTimeInterval(60)
        repeat {
            catchUp()
            if !expected.isEmpty,
                expected.allSatisfy({ key, book in rebuilt[key].map { Self.values($0) == Self.values(book, depth: depth ?? .max) } ?? false })
            {
                break
            }
            usleep(250_000)
        } while Date() < settle
        catchUp()
        XCTAssertEqual(ingest.interrupt(), 0, "ingest exits cleanly on SIGINT; stderr: \(ingest.stderr.suffix(2000))")

        for (key, book) in expected.sorted(by: { $0.key < $1.key }) {
            guard let got = rebuilt[key] else {
                XCTFail("\(key): no book in \(setup.booksTopic); ingest stderr: \(ingest.stderr.suffix(3000))")
                continue
            }
            if Self.values(got) != Self.values(book, depth: depth ?? .max) {
                XCTFail(
                    "\(key): the consumer's book differs from the simulator's: bids \(got.bids(top: 5)) vs \(book.bids(top: 5)), asks \(got.asks(top: 5)) vs \(book.asks(top: 5)); depth \(got.depth) vs \(book.depth)"
                )
            }
        }
        XCTAssertEqual(crossed, 0, "a consumer of tape.books never sees a crossed book")
        XCTAssertEqual(updatesBeforeSnapshot, 0, "every market's first record is a snapshot")
        XCTAssertEqual(undecodable, 0)
        XCTAssertGreaterThan(updates, 20, "updates flowed (Binance batches 100 ms of changes per event)")
        let log = ingest.stderr
        let resyncs = log.components(separatedBy: "is being re-synchronized").count - 1
        var bookGaps: [Gap] = []
        if expectGaps {
            XCTAssertGreaterThan(resyncs, 0, "the faults must have forced resyncs; stderr: \(log.suffix(2000))")
            bookGaps = try gapLedger(setup).filter { $0.channel == .book && $0.exchange.name == exchange }
            XCTAssertFalse(bookGaps.isEmpty, "each resync of a held book is on tape.gaps")
            for gap in bookGaps { XCTAssertFalse(gap.repaired, "a book gap is a loss of updates: never repaired") }
        }
        print(
            "books e2e \(exchange) \(faults.joined(separator: " ")): \(expected.count) books exact; \(snapshots) snapshot and \(updates) update records; \(resyncs) resyncs, \(bookGaps.count) book gaps"
        )
        setup.simulator.interrupt()
        setup.mock?.interrupt()
    }

    func testPoloniexBooksEndToEnd() throws {
        try bookEndToEnd("poloniex", faults: ["--skip-book-update-every", "40", "--swap-book-updates-every", "55"])
    }
    func testBinanceBooksEndToEnd() throws {
        try bookEndToEnd("binance", faults: ["--skip-book-update-every", "40", "--swap-book-updates-every", "55"])
    }
    func testCoinbaseBooksEndToEnd() throws {
        try bookEndToEnd("coinbase", faults: ["--skip-book-update-every", "40", "--swap-book-updates-every", "55"])
    }
    func testKrakenBooksEndToEnd() throws {
        try bookEndToEnd("kraken", faults: ["--corrupt-checksum-every", "45", "--skip-book-update-every", "60"], depth: Kraken.bookDepth)
    }
}
