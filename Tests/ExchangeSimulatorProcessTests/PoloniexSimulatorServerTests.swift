import ExchangeSimulator
import Exchanges
import Foundation
import MarketData
import XCTest

/// The simulator's real servers (sockets on loopback), read with Tape's own clients and parsers.
final class PoloniexSimulatorServerTests: XCTestCase {
    func withSimulator(
        _ configure: (inout PoloniexSimulatorConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (PoloniexSimulator) async throws -> Void
    ) async throws {
        var configuration = PoloniexSimulatorConfiguration()
        configuration.rate = 400
        configure(&configuration)
        let simulator = try await PoloniexSimulator.build(configuration)
        let server = Task { try await simulator.run() }
        defer { server.cancel() }
        try await body(simulator)
    }

    func testRESTMarketsAndTrades() async throws {
        try await withSimulator { simulator in
            XCTAssertTrue(simulator.restURL.hasPrefix("http://127.0.0.1:"))
            XCTAssertTrue(simulator.websocketURL.hasSuffix("/ws/public"))
            let rest = try Endpoint(simulator.restURL)
            let symbols = try await MarketDirectory.resolve(["all"], adapter: Poloniex.self, rest: rest)
            XCTAssertEqual(Set(symbols), Set(MarketSimulator.defaultInstruments.map(\.nativeSymbol)))
            do {
                _ = try await MarketDirectory.resolve(["BTC_USDT", "NOPE_USDT"], adapter: Poloniex.self, rest: rest)
                XCTFail("unknown symbol accepted")
            } catch let error as ExchangeError {
                XCTAssertTrue(error.message.contains("NOPE_USDT"))
            }
            try await Task.sleep(for: .milliseconds(800))
            let response = try await HTTPClient.get(rest.appending(path: Poloniex.restTradesPath(symbol: "BTC_USDT", limit: 1000)))
            XCTAssertEqual(response.status, 200)
            let body = String(decoding: response.body, as: UTF8.self)
            XCTAssertTrue(body.contains(#""takerSide":"BUY""#) || body.contains(#""takerSide":"SELL""#), "uppercase takerSide on REST")
            let trades = try PoloniexREST.parseTrades(response.body, nativeSymbol: "BTC_USDT", receivedAt: 0)
            XCTAssertGreaterThan(trades.count, 10)
            // The market keeps moving: match by id (REST is a snapshot taken a moment earlier).
            let expected = Dictionary(
                uniqueKeysWithValues: simulator.recentTrades(symbol: "BTC_USDT", limit: 1000).map { ($0.id, $0) })
            for got in trades {
                let sim = try XCTUnwrap(expected[Int64(got.tradeId)!], "REST trade \(got.tradeId) unknown to the simulator")
                XCTAssertEqual(got, sim.expectedTrade(exchange: .poloniex, receivedAt: 0))
            }
            XCTAssertEqual(trades.map(\.tradeId), trades.map(\.tradeId).sorted { Int64($0)! > Int64($1)! }, "newest first")
            let missing = try await HTTPClient.get(rest.appending(path: "/markets/NOPE_USDT/trades"))
            XCTAssertEqual(missing.status, 400)
        }
    }

    func testWebSocketSubscribeAckFramesAndPong() async throws {
        try await withSimulator { simulator in
            let endpoint = try Endpoint(simulator.websocketURL)
            try await WebSocketClient.withConnection(to: endpoint) { inbound, outbound in
                try await outbound.send(text: #"{"event":"subscribe","channel":["trades"],"symbols":["NOPE"]}"#)
                var parser = PoloniexFrameParser()
                var trades: [Trade] = []
                let error = try await inbound.next()
                XCTAssertEqual(
                    try parser.parse(String(decoding: error!.bytes, as: UTF8.self), receivedAt: 0, into: &trades),
                    .error(message: "Invalid symbol: NOPE"))
                try await outbound.send(text: Poloniex.subscribeMessage(symbols: ["BTC_USDT", "ETH_USDT"]))
                let ack = try await inbound.next()
                let ackText = String(decoding: ack!.bytes, as: UTF8.self)
                XCTAssertTrue(ackText.contains(#""channel":"trades""#), "channel echoed as a string: \(ackText)")
                XCTAssertEqual(
                    try parser.parse(ackText, receivedAt: 0, into: &trades), .subscribed(channel: "trades", symbols: ["BTC_USDT", "ETH_USDT"]))
                try await outbound.send(text: Poloniex.pingMessage)
                var sawPong = false
                var frames = 0
                var multiTradeFrames = 0
                var numericIDs = 0
                while frames < 60 || !sawPong {
                    guard let message = try await inbound.next() else { return XCTFail("connection ended") }
                    let text = String(decoding: message.bytes, as: UTF8.self)
                    let before = trades.count
                    switch try parser.parse(text, receivedAt: 0, into: &trades) {
                    case .pong: sawPong = true
                    case .trades(let n):
                        frames += 1
                        if n > 1 { multiTradeFrames += 1 }
                        // A JSON number right after the key (ids start at the wall clock in µs).
                        if text.range(of: #""id":[0-9]"#, options: .regularExpression) != nil { numericIDs += 1 }
                        XCTAssertEqual(trades.count - before, n)
                    default: XCTFail("unexpected \(text)")
                    }
                }
                XCTAssertTrue(Set(trades.map(\.nativeSymbol)).isSubset(of: ["BTC_USDT", "ETH_USDT"]))
                XCTAssertGreaterThan(multiTradeFrames, 0, "several trades per frame")
                XCTAssertGreaterThan(numericIDs, 0, "ids sometimes numbers")
                // Every trade received is one the simulator generated, field for field.
                let recent = Dictionary(
                    uniqueKeysWithValues: ["BTC_USDT", "ETH_USDT"].flatMap { simulator.recentTrades(symbol: $0) }.map {
                        ("\($0.nativeSymbol):\($0.id)", $0.expectedTrade(exchange: .poloniex, receivedAt: 0))
                    })
                for trade in trades.suffix(200) {
                    XCTAssertEqual(recent["\(trade.nativeSymbol):\(trade.tradeId)"], trade)
                }
            }
        }
    }

    func testDropsSilentClientsAndMalformedFrames() async throws {
        try await withSimulator({ c in
            c.silenceTimeout = .seconds(1)
            c.malformedEvery = 5
        }) { simulator in
            let endpoint = try Endpoint(simulator.websocketURL)
            let start = ContinuousClock.now
            var malformed = 0
            try await WebSocketClient.withConnection(to: endpoint) { inbound, outbound in
                try await outbound.send(text: Poloniex.subscribeMessage(symbols: ["BTC_USDT"]))
                var parser = PoloniexFrameParser()
                var trades: [Trade] = []
                while let message = try await inbound.next() {
                    do { _ = try parser.parse(message.bytes, receivedAt: 0, into: &trades) } catch { malformed += 1 }
                }
            }
            let lived = start.duration(to: .now)
            XCTAssertGreaterThanOrEqual(lived, .milliseconds(900), "dropped too early")
            XCTAssertLessThan(lived, .seconds(5), "a silent client must be dropped")
            XCTAssertGreaterThan(malformed, 0)
            XCTAssertEqual(malformed, simulator.malformedFramesSent)
            XCTAssertGreaterThanOrEqual(simulator.connectionsDropped, 1)
        }
    }

    /// A client that stops reading is cut off once its outbox holds `outboxCapacity` frames, as real
    /// venues do with slow consumers: the simulator's memory stays bounded.
    func testCutsOffAClientThatStopsReading() async throws {
        try await withSimulator({ c in
            c.rate = 40_000
            c.outboxCapacity = 500
        }) { simulator in
            let endpoint = try Endpoint(simulator.websocketURL)
            try await WebSocketClient.withConnection(to: endpoint) { inbound, outbound in
                try await outbound.send(text: Poloniex.subscribeMessage(symbols: MarketSimulator.defaultInstruments.map(\.nativeSymbol)))
                // Read nothing: the socket buffers fill, then the outbox.
                let deadline = ContinuousClock.now + .seconds(30)
                while simulator.slowClientsDropped == 0, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                XCTAssertEqual(simulator.slowClientsDropped, 1, "a client that reads nothing must be cut off")
                // What was queued before the cut still arrives, then the connection ends.
                var frames = 0
                while try await inbound.next() != nil { frames += 1 }
                XCTAssertGreaterThan(frames, 500)
            }
        }
    }
}
