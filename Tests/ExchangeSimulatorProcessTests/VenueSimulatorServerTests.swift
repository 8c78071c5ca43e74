import ExchangeSimulator
import Exchanges
import Foundation
import MarketData
import Synchronization
import XCTest

/// Each new venue's simulator served on loopback and read by the real adapter through the real
/// connection loop (`ExchangeConnection`: subscribe, pings, REST backfill, dedup, repair).
final class VenueSimulatorServerTests: XCTestCase {
    /// Collects what the connection loop delivers.
    final class CollectingSink: TradeSink {
        let trades = Mutex<[Trade]>([])
        let deadLetters = Mutex<[FrameParseError]>([])
        let gaps = Mutex<[Gap]>([])
        let events = Mutex<[ConnectionEvent]>([])

        func publish(_ trades: [Trade]) async { self.trades.withLock { $0.append(contentsOf: trades) } }
        func deadLetter(frame: [UInt8], error: FrameParseError) async { deadLetters.withLock { $0.append(error) } }
        func gap(_ gap: Gap) async { gaps.withLock { $0.append(gap) } }
        func event(_ event: ConnectionEvent) async { events.withLock { $0.append(event) } }
    }

    /// What `roundTrip` saw, for the callers' own checks.
    struct RoundTrip {
        var metrics: ConnectionMetrics.Snapshot
        /// Latest state of every gap written.
        var gaps: [Gap]
        var skipped: Int
    }

    /// Runs `Adapter` against `VenueSimulator<Venue>` until every generated trade arrived (or the
    /// deadline, or nothing new came for a few seconds after the simulator stopped), then checks
    /// each was delivered exactly once, field for field — or, where `mayLose`, lies inside an
    /// unrepaired gap that was reported: never a silent loss.
    @discardableResult
    func roundTrip<Adapter: ExchangeAdapter, Venue: SimulatedVenue>(
        _ adapter: Adapter.Type, _ venue: Venue.Type, maxTrades: Int = 300, malformedEvery: Int? = nil,
        silenceTimeout: Duration = .seconds(3), linger: Duration = .seconds(4), sendsSnapshot: Bool = false,
        skipPushEvery: Int? = nil, dropEvery: Duration? = nil, historyLimit: Int = 1000, detectIdJumps: Bool = true,
        reconcileInterval: Duration? = nil, mayLose: Bool = false, rate: Double = 250
    ) async throws -> RoundTrip {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("venue-trades-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        var configuration = SimulatorConfiguration()
        configuration.rate = rate
        configuration.instruments = SimulatorConfiguration.instruments(count: 3)
        configuration.maxTrades = maxTrades
        configuration.malformedEvery = malformedEvery
        configuration.silenceTimeout = silenceTimeout
        configuration.skipPushEvery = skipPushEvery
        configuration.dropEvery = dropEvery
        configuration.historyLimit = historyLimit
        configuration.tradesLog = log
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
        connectionConfiguration.detectIdJumps = detectIdJumps
        connectionConfiguration.reconcileInterval = reconcileInterval
        let metrics = ConnectionMetrics()
        let connection = ExchangeConnection(
            adapter: adapter, configuration: connectionConfiguration, clock: ContinuousClock(), metrics: metrics)
        let sink = CollectingSink()
        let reader = Task { await connection.run(sink: sink) }
        defer { reader.cancel() }

        let deadline = ContinuousClock.now + .seconds(30)
        var lastCount = -1
        var lastChange = ContinuousClock.now
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            let count = sink.trades.withLock({ $0.count })
            if simulator.tradesGenerated >= maxTrades && count >= simulator.tradesGenerated { break }
            if count != lastCount {
                lastCount = count
                lastChange = .now
            } else if mayLose && simulator.tradesGenerated >= maxTrades && lastChange.duration(to: .now) > .seconds(4) {
                break
            }
        }
        // Stay connected a while with nothing to say: pings (or heartbeats) must keep the session.
        try await Task.sleep(for: linger)
        reader.cancel()
        await reader.value

        let received = sink.trades.withLock { $0 }
        var expected: [String: Trade] = [:]
        let logged = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        for line in logged {
            let want = try Trade(json: String(line))
            expected["\(want.nativeSymbol)#\(want.tradeId)"] = want
        }
        XCTAssertGreaterThanOrEqual(simulator.tradesGenerated, maxTrades)
        XCTAssertEqual(expected.count, simulator.tradesGenerated, "the simulator logs every trade")
        var seen: Set<String> = []
        for trade in received {
            let key = "\(trade.nativeSymbol)#\(trade.tradeId)"
            XCTAssertTrue(seen.insert(key).inserted, "\(Venue.exchange): \(key) delivered twice")
            var got = trade
            got.receivedAt = 0
            XCTAssertEqual(got, expected[key], "\(Venue.exchange): \(key) differs")
        }
        var latest: [Gap.Identity: Gap] = [:]
        for gap in sink.gaps.withLock({ $0 }) { latest[gap.identity] = gap }
        let lost = latest.values.filter { !$0.repaired }
        // Continuity starts at the first trade Tape saw of a market: what the venue no longer held
        // when Tape first connected was never Tape's (and is not a gap it can know of).
        var firstSeen: [String: UInt64] = [:]
        for trade in received {
            if let id = UInt64(trade.tradeId), firstSeen[trade.nativeSymbol].map({ id < $0 }) ?? true { firstSeen[trade.nativeSymbol] = id }
        }
        for (key, trade) in expected where !seen.contains(key) {
            if mayLose, let id = UInt64(trade.tradeId), let first = firstSeen[trade.nativeSymbol], id < first { continue }
            let covered = lost.contains {
                $0.exchange == trade.exchange && $0.symbol == trade.symbol && $0.from <= trade.time && trade.time <= $0.to
            }
            XCTAssertTrue(covered, "\(Venue.exchange): \(key) at \(trade.time) was lost silently (no unrepaired gap covers it)")
        }
        if !mayLose {
            XCTAssertEqual(seen, Set(expected.keys), "\(Venue.exchange): every simulated trade, exactly once")
            XCTAssertEqual(lost, [], "\(Venue.exchange): every gap repaired")
        }
        XCTAssertGreaterThan(metrics.snapshot.backfilledTrades, 0, "trades before the connection came over REST")
        if sendsSnapshot {
            // The snapshot sent on subscribe repeats trades the REST backfill already published.
            XCTAssertGreaterThan(metrics.snapshot.duplicates, 0, "\(Venue.exchange): snapshot overlap dropped as duplicates")
        }
        if skipPushEvery == nil && dropEvery == nil && malformedEvery == nil && !mayLose {
            XCTAssertTrue(sink.gaps.withLock { $0.isEmpty }, "\(sink.gaps.withLock { $0 })")
        }
        let outcome = RoundTrip(metrics: metrics.snapshot, gaps: Array(latest.values), skipped: simulator.tradesSkipped)
        if malformedEvery == nil && dropEvery == nil {
            XCTAssertTrue(sink.deadLetters.withLock { $0.isEmpty }, "\(sink.deadLetters.withLock { $0 })")
            XCTAssertEqual(metrics.snapshot.reconnects, 0, "\(sink.events.withLock { $0 })")
            XCTAssertEqual(simulator.connectionsDropped, 0, "the venue dropped us: liveness not kept")
        } else if malformedEvery != nil {
            XCTAssertGreaterThan(sink.deadLetters.withLock { $0.count }, 0)
        }
        let subscribed = sink.events.withLock { $0 }.contains {
            if case .subscribed = $0 { return true } else { return false }
        }
        XCTAssertTrue(subscribed)
        return outcome
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

    /// A venue that silently leaves trades out of its push (ids jump; the trades exist only over
    /// REST), drops its clients every few seconds and batches several trades per frame: on every
    /// venue, each jump triggers a REST repair, every trade arrives exactly once, and each gap is
    /// written down and then written again as repaired.
    func testSkippedPushesAreRepairedOnEveryVenue() async throws {
        func check(_ r: RoundTrip, _ venue: String) {
            XCTAssertGreaterThan(r.skipped, 10, venue)
            XCTAssertGreaterThan(r.metrics.gapsRepaired, 0, "\(venue): jumps found and repaired")
            XCTAssertEqual(r.metrics.gapsUnrepaired, 0, venue)
            XCTAssertGreaterThanOrEqual(r.metrics.repairedTrades, r.skipped - r.metrics.backfilledTrades, venue)
            XCTAssertTrue(r.gaps.allSatisfy(\.repaired), venue)
        }
        check(
            try await roundTrip(
                Poloniex.self, PoloniexVenue.self, linger: .seconds(1), skipPushEvery: 13, dropEvery: .seconds(3), reconcileInterval: .seconds(2)), "poloniex")
        check(try await roundTrip(Binance.self, BinanceVenue.self, linger: .seconds(1), skipPushEvery: 13, reconcileInterval: .seconds(2)), "binance")
        check(
            try await roundTrip(
                Coinbase.self, CoinbaseVenue.self, linger: .seconds(1), skipPushEvery: 13, dropEvery: .seconds(3), reconcileInterval: .seconds(2)), "coinbase")
        check(try await roundTrip(Kraken.self, KrakenVenue.self, linger: .seconds(1), skipPushEvery: 13, reconcileInterval: .seconds(2)), "kraken")
    }

    /// Where REST no longer reaches back (a venue that keeps only its last 10 trades per market),
    /// what the push skipped is lost — and every lost trade lies inside a reported, unrepaired gap.
    func testGapsRESTCannotFillAreReported() async throws {
        let r = try await roundTrip(
            Poloniex.self, PoloniexVenue.self, maxTrades: 600, linger: .seconds(1), skipPushEvery: 4, historyLimit: 10,
            reconcileInterval: .seconds(30), mayLose: true, rate: 600)
        XCTAssertGreaterThan(r.metrics.gapsUnrepaired, 0, "some jumps were out of REST's reach")
        XCTAssertTrue(r.gaps.contains { !$0.repaired && $0.reason.contains("REST") }, "\(r.gaps)")
    }

    /// The second line of defence alone: with id jumps not looked at (as on a venue whose ids are
    /// not consecutive), the periodic reconciliation still finds every skipped trade.
    func testPeriodicReconciliationFindsSkippedTrades() async throws {
        let r = try await roundTrip(
            Poloniex.self, PoloniexVenue.self, linger: .seconds(1), skipPushEvery: 11, detectIdJumps: false,
            reconcileInterval: .seconds(1))
        XCTAssertGreaterThan(r.skipped, 10)
        XCTAssertGreaterThan(r.metrics.repairedTrades, 0)
        XCTAssertEqual(r.metrics.gapsRepaired, 0, "no jump was looked at")
    }

    /// The venue look-alikes answer REST like the venues: parsed back by the adapters exactly.
    func testRESTAnswersParseBack() async throws {
        var configuration = SimulatorConfiguration()
        configuration.rate = 400
        configuration.instruments = try SimulatorConfiguration.instruments(symbols: ["BTC_USDT", "DOGE_BTC"])
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
