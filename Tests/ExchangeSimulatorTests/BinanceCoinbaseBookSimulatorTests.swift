import ExchangeSimulator
import Exchanges
import MarketData
import TapeTestSupport
import Testing

/// A two-instrument market (BTC_USDT, ETH_USDT) with books.
private func twoInstrumentMarket(seed: UInt64) -> MarketSimulator {
    var configuration = MarketSimulator.Configuration()
    configuration.seed = seed
    configuration.instruments = Array(MarketSimulator.defaultInstruments.prefix(2))
    return MarketSimulator(configuration: configuration)
}

/// A session configuration with one book fault on ("none", "skip", "swap").
private func sessionConfiguration(fault: String) -> SimulatedSessionConfiguration {
    var configuration = SimulatedSessionConfiguration()
    configuration.idleTimeout = .max / 4
    switch fault {
    case "skip": configuration.skipBookUpdateEvery = 37
    case "swap": configuration.swapBookUpdatesEvery = 29
    default: break
    }
    return configuration
}

/// What one market's synchronizer did, as the connection loop and a consumer of tape.books see it.
private struct Observed {
    var consumer = OrderBook()
    var resyncs: [BookResyncReason] = []
    var gaps = 0
    var snapshots = 0

    /// Applies a step's records to the consumer's book and counts the rest.
    mutating func take(_ step: BookSyncStep) {
        for event in step.events {
            consumer.apply(event)
            if event.kind == .snapshot { snapshots += 1 }
        }
        gaps += step.gaps.count
        if let reason = step.resyncReason { resyncs.append(reason) }
    }
}

/// The frames of `actions`, parsed with a book-aware parser; every frame must parse.
private func bookFrames<P: ExchangeFrameParser>(_ actions: [SessionAction], parser: inout P) throws -> [BookFrame] {
    var books: [BookFrame] = []
    for action in actions {
        guard case .send(let text) = action else { continue }
        var trades: [Trade] = []
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            _ = try parser.parse(buffer, receivedAt: 1_700_000_000_000_000, into: &trades, books: &books)
        }
    }
    return books
}

@Suite struct BinanceBookSimulatorTests {
    /// Drives the simulated Binance session with the market's orders, feeds its depth events and
    /// its REST depth answers through Tape's parser and synchronizer, and checks the rebuilt book
    /// against `MarketSimulator.book` whenever the synchronizer has caught up, never crossed; each
    /// fault must cause resyncs, and the final book must still be exact.
    @Test(arguments: ["none", "skip", "swap"])
    func rebuiltBooksAreTheMarketsBooks(fault: String) throws {
        var market = twoInstrumentMarket(seed: 5)
        let start = market.nextOrderTime
        var session = BinanceVenue.makeSession(
            instruments: market.nativeSymbols, configuration: sessionConfiguration(fault: fault), connectedAt: start)
        let listed = market.nativeSymbols.map {
            ListedMarket(nativeSymbol: BinanceVenue.nativeSymbol(instrument: $0), symbol: Symbol(normalizing: $0), isTrading: true)
        }
        for request in Binance.subscribeMessages(symbols: listed.map(\.nativeSymbol))
            + Binance.bookSubscribeMessages(nativeSymbols: listed.map(\.nativeSymbol))
        {
            let answer = session.received(request, at: start)
            #expect(answer.contains { if case .send(let text) = $0 { text.contains(#""result":null"#) } else { false } })
        }
        #expect(session.depthSubscribed.count == 2)
        var parser = Binance.makeFrameParser(markets: listed)
        var syncs = Dictionary(uniqueKeysWithValues: listed.map { ($0.nativeSymbol, BinanceBookSynchronizer(exchange: Binance.exchange, market: $0)) })
        var observed: [String: Observed] = [:]
        var snapshotDue: [String: Int] = [:]  // market → ticks until its REST answer
        var checks = 0

        func handle(_ step: BookSyncStep, _ native: String) {
            observed[native, default: Observed()].take(step)
            if step.action == .fetchSnapshot { snapshotDue[native] = 3 }
        }

        var tick = 0
        var caughtUp = false
        while tick < 4_000 || !caughtUp {
            tick += 1
            guard tick < 6_000 else { break }
            var orders: [SimulatedOrder] = []
            for _ in 0..<(1 + tick % 4) { orders.append(market.nextOrder()) }
            let time = orders.last?.time ?? start
            for frame in try bookFrames(session.publish(orders, at: time), parser: &parser) {
                guard let step = syncs[frame.nativeSymbol]?.receive(frame) else {
                    Issue.record("a frame of an unknown market \(frame.nativeSymbol)")
                    continue
                }
                handle(step, frame.nativeSymbol)
            }
            // The REST depth answers, a few ticks after they were asked for.
            for (native, due) in snapshotDue {
                guard due <= 0 else {
                    snapshotDue[native] = due - 1
                    continue
                }
                snapshotDue[native] = nil
                guard let listedMarket = listed.first(where: { $0.nativeSymbol == native }),
                    let path = Binance.bookSnapshotPath(market: listedMarket)
                else { continue }
                let answer = BinanceVenue.respond(toPath: path, market: market)
                #expect(answer.status == 200)
                let frame = try Binance.parseBookSnapshot(Array(answer.body.utf8), market: listedMarket, receivedAt: 1)
                handle(syncs[native]!.receiveSnapshot(frame), native)
            }
            caughtUp = true
            for (instrument, market_) in zip(market.nativeSymbols, listed) {
                let sync = syncs[market_.nativeSymbol]!
                guard let book = sync.book else {
                    caughtUp = false
                    continue
                }
                #expect(!book.isCrossed)
                #expect(observed[market_.nativeSymbol]?.consumer == book, "the records rebuild the synchronizer's book")
                if sync.sequence == String(market.bookUpdateId(nativeSymbol: instrument)) {
                    #expect(book == market.book(nativeSymbol: instrument), "tick \(tick) \(instrument)")
                    checks += 1
                } else {
                    caughtUp = false
                }
            }
        }
        #expect(caughtUp, "both books synchronized and caught up at the end")
        #expect(checks > 1_000)
        for (instrument, market_) in zip(market.nativeSymbols, listed) {
            #expect(syncs[market_.nativeSymbol]?.book == market.book(nativeSymbol: instrument), "final \(instrument)")
        }
        let resyncs = observed.values.flatMap(\.resyncs)
        switch fault {
        case "none":
            #expect(resyncs.isEmpty)
            #expect(observed.values.map(\.gaps).reduce(0, +) == 0)
        case "skip":
            #expect(session.bookUpdatesSkipped > 0)
            #expect(resyncs.contains(.sequenceBreak))
            #expect(observed.values.map(\.gaps).reduce(0, +) > 0, "each resync ends in a gap record")
        default:
            #expect(session.bookUpdatesSwapped > 0)
            #expect(resyncs.contains(.sequenceBreak))
        }
    }

    @Test func restDepthServesTheBookWithItsUpdateId() throws {
        var market = twoInstrumentMarket(seed: 9)
        for _ in 0..<200 { _ = market.nextOrder() }
        let answer = BinanceVenue.respond(toPath: "/api/v3/depth?symbol=BTCUSDT&limit=5", market: market)
        #expect(answer.status == 200)
        let listed = ListedMarket(nativeSymbol: "BTCUSDT", symbol: Symbol(normalizing: "BTC-USDT"), isTrading: true)
        let frame = try Binance.parseBookSnapshot(Array(answer.body.utf8), market: listed, receivedAt: 1)
        let book = try #require(market.book(nativeSymbol: "BTC_USDT"))
        #expect(frame.sequence == market.bookUpdateId(nativeSymbol: "BTC_USDT"))
        #expect(frame.bids == book.bids(top: 5))
        #expect(frame.asks == book.asks(top: 5))
        #expect(BinanceVenue.respond(toPath: "/api/v3/depth?symbol=NOPE", market: market).status == 400)
        #expect(BinanceVenue.respond(toPath: "/api/v3/depth?symbol=BTCUSDT&limit=0", market: market).status == 400)
        #expect(BinanceVenue.respond(toPath: "/api/v3/depth?symbol=BTCUSDT&limit=5001", market: market).status == 400)
    }
}

@Suite struct CoinbaseBookSimulatorTests {
    /// Drives the simulated Coinbase session (trades, heartbeats and level2 of two products on one
    /// connection), answers resubscribes as the connection loop does, feeds every frame through
    /// Tape's parser and synchronizers, and checks the rebuilt books against `MarketSimulator.book`
    /// after every tick; each fault must cause resyncs of both books, and the final books must
    /// still be exact.
    @Test(arguments: ["none", "skip", "swap"])
    func rebuiltBooksAreTheMarketsBooks(fault: String) throws {
        var market = twoInstrumentMarket(seed: 6)
        let start = market.nextOrderTime
        var session = CoinbaseVenue.makeSession(
            instruments: market.nativeSymbols, configuration: sessionConfiguration(fault: fault), connectedAt: start)
        let listed = market.nativeSymbols.map {
            ListedMarket(nativeSymbol: CoinbaseVenue.nativeSymbol(instrument: $0), symbol: Symbol(normalizing: $0), isTrading: true)
        }
        var parser = Coinbase.makeFrameParser()
        var syncs = Dictionary(
            uniqueKeysWithValues: listed.map { ($0.nativeSymbol, CoinbaseBookSynchronizer(exchange: Coinbase.exchange, market: $0)) })
        var observed: [String: Observed] = [:]
        var resubscribes: [String] = []

        func deliver(_ actions: [SessionAction]) throws {
            for frame in try bookFrames(actions, parser: &parser) {
                guard let step = syncs[frame.nativeSymbol]?.receive(frame) else {
                    Issue.record("a frame of an unknown product \(frame.nativeSymbol)")
                    continue
                }
                observed[frame.nativeSymbol, default: Observed()].take(step)
                if case .resubscribe = step.action { resubscribes.append(frame.nativeSymbol) }
            }
        }

        /// Sends client requests as the server would: the answers, then any owed book snapshots.
        func send(_ requests: [String], at time: Int64) throws {
            var actions: [SessionAction] = []
            for request in requests { actions += session.received(request, at: time) }
            for instrument in session.takeBookSnapshotRequests() {
                let book = try #require(market.book(nativeSymbol: instrument))
                actions += session.bookSnapshot(book, updateId: market.bookUpdateId(nativeSymbol: instrument), instrument: instrument)
            }
            try deliver(actions)
        }

        let products = listed.map(\.nativeSymbol)
        try send(
            Coinbase.tradeSubscribeMessages(nativeSymbols: products) + Coinbase.bookSubscribeMessages(nativeSymbols: products),
            at: start)
        #expect(session.level2Subscribed.count == 2)
        var checks = 0
        var tick = 0
        var caughtUp = false
        while tick < 4_000 || !caughtUp {
            tick += 1
            guard tick < 6_000 else { break }
            var orders: [SimulatedOrder] = []
            for _ in 0..<(1 + tick % 4) { orders.append(market.nextOrder()) }
            let time = orders.last?.time ?? start
            try deliver(session.publish(orders, at: time))
            // The connection loop carries out the resubscribes.
            let pending = resubscribes
            resubscribes = []
            for product in pending { try send(Coinbase.bookResubscribeMessages(nativeSymbol: product), at: time) }
            caughtUp = true
            for (instrument, product) in zip(market.nativeSymbols, products) {
                guard let book = syncs[product]?.book else {
                    caughtUp = false
                    continue
                }
                #expect(!book.isCrossed)
                #expect(observed[product]?.consumer == book, "the records rebuild the synchronizer's book")
                // Every message of a tick is delivered at once, so a synchronized book is current
                // unless its latest update is the one held back by the swap fault.
                if book == market.book(nativeSymbol: instrument) {
                    checks += 1
                } else {
                    // Only a fault leaves a synchronized book behind the market: the update held
                    // back, or the one lost, is noticed at the next message.
                    #expect(fault != "none", "tick \(tick) \(product): a book that is neither current nor resyncing")
                    caughtUp = false
                }
            }
        }
        #expect(caughtUp)
        #expect(checks > 1_000)
        for (instrument, product) in zip(market.nativeSymbols, products) {
            #expect(syncs[product]?.book == market.book(nativeSymbol: instrument), "final \(product)")
        }
        let resyncs = observed.mapValues(\.resyncs)
        switch fault {
        case "none":
            #expect(resyncs.values.allSatisfy { $0.isEmpty })
        case "skip":
            #expect(session.bookUpdatesSkipped > 0)
            for product in products {
                #expect(resyncs[product]?.contains(.sequenceBreak) == true, "a lost message resyncs every book: \(product)")
                #expect((observed[product]?.gaps ?? 0) > 0)
            }
        default:
            #expect(session.bookUpdatesSwapped > 0)
            for product in products { #expect(resyncs[product]?.contains(.sequenceBreak) == true, "\(product)") }
        }
    }
}
