import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import MarketData
import TapeServer
import TapeTestSupport
import XCTest

/// Order books in the server: rebuilt from `tape.books` records, served on `/api/book` and pushed
/// (throttled) to `book` subscribers of `/ws`.
final class BookServerTests: XCTestCase {
    static func level(_ p: String, _ q: String) -> BookLevel { try! BookLevel(price: p, quantity: q) }

    static func event(
        _ kind: BookEvent.Kind, sequence: Int, bids: [(String, String)], asks: [(String, String)], symbol: String = "BTC-USDT",
        exchange: String = "binance"
    ) -> BookEvent {
        BookEvent(
            exchange: Exchange(exchange), symbol: Symbol(normalizing: symbol), nativeSymbol: symbol.replacingOccurrences(of: "-", with: ""),
            kind: kind, sequence: String(sequence), bids: bids.map { level($0.0, $0.1) }, asks: asks.map { level($0.0, $0.1) },
            time: 1_661_123_520_000 + Int64(sequence), receivedAt: 1_661_123_520_000_000 + Int64(sequence) * 1000)
    }

    func testUpdatesBeforeTheFirstSnapshotAreSkippedThenAppliedInOrder() {
        let books = LiveBooks()
        let market = MarketID("binance:BTC-USDT")!
        books.apply(Self.event(.update, sequence: 1, bids: [("100", "1")], asks: []))
        XCTAssertNil(books.view(market, depth: 5), "an update alone is not a book")
        XCTAssertEqual(books.skippedUpdates, 1)
        books.apply(Self.event(.snapshot, sequence: 2, bids: [("100", "1"), ("99.5", "2")], asks: [("101", "3"), ("102", "1")]))
        books.apply(Self.event(.update, sequence: 3, bids: [("100", "0"), ("100.5", "4")], asks: [("101", "2.5")]))
        let view = try! XCTUnwrap(books.view(market, depth: 1))
        XCTAssertEqual(view.bids, [Self.level("100.5", "4")])
        XCTAssertEqual(view.asks, [Self.level("101", "2.5")])
        XCTAssertEqual(view.depth.bids, 2)
        XCTAssertEqual(view.sequence, "3")
        XCTAssertEqual(view.spread, try ExactDecimal("0.5"))
        // A later snapshot replaces everything.
        books.apply(Self.event(.snapshot, sequence: 9, bids: [("90", "1")], asks: [("91", "1")]))
        XCTAssertEqual(books.view(market, depth: 10)?.bids, [Self.level("90", "1")])
        XCTAssertEqual(books.view(market, depth: 10)?.asks, [Self.level("91", "1")])
    }

    func testBookRouteServesTheTopLevelsAndExplainsAMissingBook() async throws {
        let f = Fixture()
        f.state.accept(Self.event(.snapshot, sequence: 7, bids: [("21614.59", "0.5"), ("21614.58", "1.2"), ("21600", "3")], asks: [("21614.60", "0.3")]))
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/api/book?symbol=binance:btcusdt&depth=2", method: .get) { response in
                XCTAssertEqual(response.status, .notFound, "BTCUSDT normalizes to BTCUSDT, not BTC-USDT")
            }
            try await client.execute(uri: "/api/book?symbol=binance:BTC-USDT&depth=2", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(
                    response.body.text,
                    #"{"symbol":"binance:BTC-USDT","exchange":"binance","sequence":"7","time":1661123520007,"bestBid":["21614.59","0.5"],"bestAsk":["21614.60","0.3"],"spread":"0.01","mid":"21614.595","crossed":false,"levels":{"bids":3,"asks":1},"bids":[["21614.59","0.5"],["21614.58","1.2"]],"asks":[["21614.60","0.3"]]}"#
                )
            }
            try await client.execute(uri: "/api/book?symbol=kraken:BTC-USD", method: .get) { response in
                XCTAssertEqual(response.status, .notFound)
                XCTAssertTrue(response.body.text.contains("binance:BTC-USDT"), "names the books it holds: \(response.body.text)")
            }
            for (uri, parameter) in [
                ("/api/book", "symbol"), ("/api/book?symbol=binance:BTC-USDT&depth=0", "depth"),
                ("/api/book?symbol=binance:BTC-USDT&depth=5001", "depth"), ("/api/book?symbol=binance:BTC-USDT&limit=5", "limit"),
            ] {
                try await client.execute(uri: uri, method: .get) { response in
                    XCTAssertEqual(response.status, .badRequest, uri)
                    XCTAssertEqual((response.body.json["error"] as? [String: Any])?["parameter"] as? String, parameter, uri)
                }
            }
        }
    }

    func testBookSubscribersGetTheTopThrottled() async throws {
        let f = Fixture()
        let input = f.bookInput
        try await f.app.test(.live) { client in
            try await client.ws("/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                func next() async throws -> [String: Any] {
                    guard case .text(let text) = try await messages.next() else { throw TestSupportError("timed out waiting for a text message") }
                    return WebSocketTests.json(text)
                }
                try await outbound.write(.text(#"{"op":"subscribe","channel":"book","symbol":"binance:BTC-USDT"}"#))
                let ack = try await next()
                XCTAssertEqual(ack["type"] as? String, "subscribed")
                XCTAssertEqual(ack["channel"] as? String, "book")
                input.yield(Self.event(.snapshot, sequence: 1, bids: [("100", "1")], asks: [("101", "1")]))
                input.yield(Self.event(.snapshot, sequence: 1, bids: [("5", "1")], asks: [("6", "1")], symbol: "ETH-USDT"))
                // A burst of updates: subscribers get the latest state, not every update.
                for i in 2...200 { input.yield(Self.event(.update, sequence: i, bids: [("100", String(i))], asks: [])) }
                var last: [String: Any] = [:]
                var received = 0
                while (last["data"] as? [String: Any])?["sequence"] as? String != "200" {
                    last = try await next()
                    received += 1
                    XCTAssertEqual(last["type"] as? String, "book")
                    XCTAssertEqual(last["symbol"] as? String, "binance:BTC-USDT", "only the subscribed market")
                }
                XCTAssertLessThan(received, 50, "throttled: \(received) messages for 200 records")
                let data = try XCTUnwrap(last["data"] as? [String: Any])
                XCTAssertEqual(data["bestBid"] as? [String], ["100", "200"])
            }
        }
    }

    func testReplayRebuildsTheBookAsOfATime() {
        var replay = BookReplay(key: "binance:BTC-USDT", until: 1_661_123_520_004)
        let records = [
            Self.event(.update, sequence: 1, bids: [("1", "1")], asks: []),
            Self.event(.snapshot, sequence: 2, bids: [("100", "1")], asks: [("101", "1")]),
            Self.event(.snapshot, sequence: 2, bids: [("7", "1")], asks: [], symbol: "ETH-USDT"),
            Self.event(.update, sequence: 3, bids: [("100.5", "2")], asks: [("101", "0"), ("102", "1")]),
            Self.event(.update, sequence: 4, bids: [("100", "0")], asks: []),
            Self.event(.update, sequence: 5, bids: [("99", "9")], asks: []),
        ]
        var going = true
        for record in records where going {
            going = replay.consume(key: Array(record.kafkaKey.utf8), value: record.jsonBytes)
        }
        replay.consume(key: Array("binance:BTC-USDT".utf8), value: Array("not json".utf8))
        XCTAssertFalse(going, "the record after --at stops the partition")
        XCTAssertEqual(replay.updatesBeforeSnapshot, 1)
        XCTAssertEqual(replay.snapshotsApplied, 1)
        XCTAssertEqual(replay.updatesApplied, 2)
        XCTAssertEqual(replay.sequence, "4")
        XCTAssertEqual(replay.invalidRecords, 1)
        XCTAssertEqual(replay.book?.bids(), [Self.level("100.5", "2")])
        XCTAssertEqual(replay.book?.asks(), [Self.level("102", "1")])
    }
}
