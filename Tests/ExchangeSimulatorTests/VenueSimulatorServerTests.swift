import ExchangeSimulator
import Exchanges
import Foundation
import Synchronization
import XCTest

/// Each new venue's simulator served on loopback and read by the real adapter through the real
/// connection loop (`ExchangeConnection`: subscribe, pings, REST backfill, dedup, repair).
final class VenueSimulatorServerTests: XCTestCase {
    /// Collects what the connection loop delivers.
    final class CollectingSink: TradeSink {
        let trades = Mutex<[Trade]>([])
        let deadLetters = Mutex<[FrameParseError]>([])
        let gaps = Mutex<[TradeGap]>([])
        let events = Mutex<[ConnectionEvent]>([])

        func publish(_ trades: [Trade]) async { self.trades.withLock { $0.append(contentsOf: trades) } }
        func deadLetter(frame: [UInt8], error: FrameParseError) async { deadLetters.withLock { $0.append(error) } }
        func gap(_ gap: TradeGap) async { gaps.withLock { $0.append(gap) } }
        func event(_ event: ConnectionEvent) async { events.withLock { $0.append(event) } }
    }

    /// Runs `Adapter` against `VenueSimulator<Venue>` until every generated trade arrived (or the
    /// deadline), then checks each was delivered exactly once, field for field.
    func roundTrip<Adapter: ExchangeAdapter, Venue: SimulatedVenue>(
        _ adapter: Adapter.Type, _ venue: Venue.Type, maxTrades: Int = 300, malformedEvery: Int? = nil,
        silenceTimeout: Duration = .seconds(3), linger: Duration = .seconds(4), sendsSnapshot: Bool = false
    ) async throws {
        var configuration = SimulatorConfiguration()
        configuration.rate = 250
        configuration.instruments = SimulatorConfiguration.instruments(count: 3)
        configuration.maxTrades = maxTrades
        configuration.malformedEvery = malformedEvery
        configuration.silenceTimeout = silenceTimeout
        let simulator = try await VenueSimulator<Venue>.build(configuration)
        let server = Task { try await simulator.run() }
        defer { server.cancel() }

        // Let some trades happen first: they only reach us through the REST backfill.
        try await Task.sleep(for: .milliseconds(400))
        let rest = try Endpoint(simulator.restURL)
        let markets = try await MarketDirectory.resolveMarkets(["all"], adapter: adapter, rest: rest)
        XCTAssertEqual(Set(markets.map(\.nativeSymbol)), Set(simulator.venueSymbols))
        XCTAssertEqual(Set(markets.map(\.symbol.rawValue)), Set(simulator.symbols.map { Symbol(normalizing: $0).rawValue }))

        var connectionConfiguration = ExchangeConnectionConfiguration(
            websocket: try Endpoint(simulator.websocketURL), rest: rest, markets: markets)
        connectionConfiguration.machine.pingInterval = .seconds(1)
        connectionConfiguration.machine.silenceTimeout = .seconds(5)
        connectionConfiguration.repairDelay = .milliseconds(300)
        connectionConfiguration.tickInterval = .milliseconds(100)
        connectionConfiguration.jitterSeed = 1
        let metrics = ConnectionMetrics()
        let connection = ExchangeConnection(
            adapter: adapter, configuration: connectionConfiguration, clock: ContinuousClock(), metrics: metrics)
        let sink = CollectingSink()
        let reader = Task { await connection.run(sink: sink) }
        defer { reader.cancel() }

        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            if simulator.tradesGenerated >= maxTrades && sink.trades.withLock({ $0.count }) >= simulator.tradesGenerated { break }
        }
        // Stay connected a while with nothing to say: pings (or heartbeats) must keep the session.
        try await Task.sleep(for: linger)
        reader.cancel()
        await reader.value

        let received = sink.trades.withLock { $0 }
        var expected: [String: Trade] = [:]
        for instrument in simulator.symbols {
            for trade in simulator.recentTrades(symbol: instrument) {
                let want = simulator.expectedTrade(trade)
                expected["\(want.nativeSymbol)#\(want.tradeId)"] = want
            }
        }
        XCTAssertGreaterThanOrEqual(simulator.tradesGenerated, maxTrades)
        XCTAssertEqual(expected.count, simulator.tradesGenerated, "the simulator keeps every trade for REST")
        var seen: Set<String> = []
        for trade in received {
            let key = "\(trade.nativeSymbol)#\(trade.tradeId)"
            XCTAssertTrue(seen.insert(key).inserted, "\(Venue.exchange): \(key) delivered twice")
            var got = trade
            got.receivedAt = 0
            XCTAssertEqual(got, expected[key], "\(Venue.exchange): \(key) differs")
        }
        XCTAssertEqual(seen, Set(expected.keys), "\(Venue.exchange): every simulated trade, exactly once")
        XCTAssertGreaterThan(metrics.snapshot.backfilledTrades, 0, "trades before the connection came over REST")
        if sendsSnapshot {
            // The snapshot sent on subscribe repeats trades the REST backfill already published.
            XCTAssertGreaterThan(metrics.snapshot.duplicates, 0, "\(Venue.exchange): snapshot overlap dropped as duplicates")
        }
        XCTAssertTrue(sink.gaps.withLock { $0.isEmpty })
        if malformedEvery == nil {
            XCTAssertTrue(sink.deadLetters.withLock { $0.isEmpty }, "\(sink.deadLetters.withLock { $0 })")
            XCTAssertEqual(metrics.snapshot.reconnects, 0, "\(sink.events.withLock { $0 })")
            XCTAssertEqual(simulator.connectionsDropped, 0, "the venue dropped us: liveness not kept")
        } else {
            XCTAssertGreaterThan(sink.deadLetters.withLock { $0.count }, 0)
        }
        let subscribed = sink.events.withLock { $0 }.contains {
            if case .subscribed = $0 { return true } else { return false }
        }
        XCTAssertTrue(subscribed)
    }

    func testBinanceThroughTheConnectionLoop() async throws {
        try await roundTrip(Binance.self, BinanceVenue.self)
    }

    func testCoinbaseThroughTheConnectionLoop() async throws {
        try await roundTrip(Coinbase.self, CoinbaseVenue.self, sendsSnapshot: true)
    }

    func testKrakenThroughTheConnectionLoop() async throws {
        try await roundTrip(Kraken.self, KrakenVenue.self, sendsSnapshot: true)
    }

    /// Broken frames are dead-lettered and their trades recovered over REST, still exactly once.
    func testMalformedFramesAreRepairedFromREST() async throws {
        try await roundTrip(Binance.self, BinanceVenue.self, malformedEvery: 9, linger: .seconds(1))
        try await roundTrip(Kraken.self, KrakenVenue.self, malformedEvery: 5, linger: .seconds(1))
    }

    /// The venue look-alikes answer REST like the venues: parsed back by the adapters exactly.
    func testRESTAnswersParseBack() async throws {
        var configuration = SimulatorConfiguration()
        configuration.rate = 400
        configuration.instruments = SimulatorConfiguration.instruments(symbols: ["BTC_USDT", "DOGE_BTC"])
        let kraken = try await KrakenSimulator.build(configuration)
        let server = Task { try await kraken.run() }
        defer { server.cancel() }
        try await Task.sleep(for: .milliseconds(500))
        let rest = try Endpoint(kraken.restURL)
        let markets = try await MarketDirectory.resolveMarkets(["BTC-USDT", "DOGE/BTC"], adapter: Kraken.self, rest: rest)
        XCTAssertEqual(markets.map(\.nativeSymbol), ["BTC/USDT", "DOGE/BTC"])
        XCTAssertEqual(markets.map(\.restSymbol), ["XBTUSDT", "XDGXBT"], "REST spells XBT and XDG")
        let path = try XCTUnwrap(Kraken.recentTradesPath(market: markets[0], limit: 1000))
        let response = try await HTTPClient.get(rest.appending(path: path))
        XCTAssertEqual(response.status, 200)
        let trades = try Kraken.parseRecentTrades(response.body, market: markets[0], receivedAt: 0)
        XCTAssertGreaterThan(trades.count, 5)
        let known = Dictionary(uniqueKeysWithValues: kraken.recentTrades(symbol: "BTC_USDT").map { (String($0.id), kraken.expectedTrade($0)) })
        for trade in trades { XCTAssertEqual(trade, known[trade.tradeId]) }
        let unknown = try await HTTPClient.get(rest.appending(path: "/0/public/Trades?pair=NOPE"))
        XCTAssertThrowsError(try Kraken.parseRecentTrades(unknown.body, nativeSymbol: "NOPE/USD", receivedAt: 0))
    }
}
