import ExchangeSimulator
import Exchanges
import MarketData
import Testing

/// The simulated Poloniex and Kraken sessions speak their book channels well enough for Tape's
/// parsers and synchronizers to rebuild every market's book exactly; each fault knob causes
/// resyncs, never a wrong book.
@Suite struct BookSessionTests {
    static func sessionConfiguration(_ fault: BookFault) -> SimulatedSessionConfiguration {
        var configuration = SimulatedSessionConfiguration()
        configuration.idleTimeout = Int64.max / 4
        fault.apply(to: &configuration)
        return configuration
    }

    static func market(seed: UInt64) -> MarketSimulator {
        var configuration = MarketSimulator.Configuration()
        configuration.seed = seed
        return MarketSimulator(configuration: configuration)
    }

    // MARK: Poloniex

    static func poloniex(_ fault: BookFault) -> BookSessionHarness<Poloniex, PoloniexSession> {
        let market = market(seed: 5)
        var syncs: [String: PoloniexBookSynchronizer] = [:]
        var instrument: [String: String] = [:]
        for symbol in market.nativeSymbols {
            syncs[symbol] = PoloniexBookSynchronizer(exchange: .poloniex, market: ListedMarket(nativeSymbol: symbol))
            instrument[symbol] = symbol
        }
        return BookSessionHarness(
            market: market,
            session: PoloniexSession(
                knownSymbols: market.nativeSymbols, configuration: sessionConfiguration(fault),
                connectedAt: market.configuration.startTime),
            parser: Poloniex.makeFrameParser(), syncs: syncs, instrument: instrument, expected: { $0 }, same: { $0 == $1 },
            now: market.configuration.startTime)
    }

    @Test(arguments: [BookFault.none, .skip, .swap]) func poloniexSessionRebuildsTheMarketsBooks(fault: BookFault) {
        var harness = Self.poloniex(fault)
        harness.subscribe()
        harness.run(orders: 3_000)
        harness.settle(limit: 3_000)
        #expect(harness.mismatches == 0)
        #expect(!harness.nestingLimitHit)
        #expect(harness.crossed == 0)
        #expect(harness.accepted > 2_000)
        #expect(harness.booksAreExact() == [])
        switch fault {
        case .none:
            #expect(harness.resyncCount == 0)
            #expect(harness.gaps == 0)
        case .skip:
            #expect(harness.session.bookUpdatesSkipped > 10)
            #expect(harness.resyncs[.sequenceBreak, default: 0] >= harness.session.bookUpdatesSkipped - 8)
            #expect(harness.gaps >= harness.session.bookUpdatesSkipped - 8)
        case .swap, .corruptChecksum:
            #expect(harness.session.bookUpdatesSwapped > 10)
            #expect(harness.resyncs[.sequenceBreak, default: 0] >= harness.session.bookUpdatesSwapped - 8)
        }
    }

    @Test func poloniexBookFramesAreTheVenuesShape() throws {
        var harness = Self.poloniex(.none)
        var session = harness.session
        let ack = session.received(#"{"event":"subscribe","channel":["book_lv2"],"symbols":["BTC_USDT"]}"#, at: harness.now)
        #expect(ack == [.send(#"{"event":"subscribe","channel":"book_lv2","symbols":["BTC_USDT"]}"#)])
        #expect(session.takeBookSnapshotRequests() == ["BTC_USDT"])
        let book = try #require(harness.market.book(nativeSymbol: "BTC_USDT"))
        let id = harness.market.bookUpdateId(nativeSymbol: "BTC_USDT")
        let snapshot = session.bookSnapshot(book, updateId: id, instrument: "BTC_USDT")
        guard case .send(let text)? = snapshot.first else {
            Issue.record("no snapshot")
            return
        }
        #expect(text.hasPrefix(#"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","createTime":"#))
        #expect(text.hasSuffix(#","lastId":\#(id - 1),"id":\#(id),"ts":\#(harness.now)}],"action":"snapshot"}"#))
        // A second snapshot is not owed.
        #expect(session.bookSnapshot(book, updateId: id, instrument: "BTC_USDT").isEmpty)
        // Unsubscribed: no more updates.
        _ = session.received(#"{"event":"unsubscribe","channel":["book_lv2"],"symbols":["BTC_USDT"]}"#, at: harness.now)
        var sent = 0
        for _ in 0..<200 {
            let order = harness.market.nextOrder()
            sent += session.publish([order], at: order.time).count
        }
        #expect(sent == 0)
    }

    // MARK: Kraken

    /// Books equal by price and quantity value (Kraken reprints numbers: "0.500" comes as 0.5).
    static func sameValues(_ a: OrderBook, _ b: OrderBook) -> Bool {
        func values(_ levels: [BookLevel]) -> [String] {
            levels.map { "\($0.key) \((try? ExactDecimal($0.quantity))?.canonicalString ?? $0.quantity)" }
        }
        return values(a.bids()) == values(b.bids()) && values(a.asks()) == values(b.asks())
    }

    static func kraken(_ fault: BookFault, listedDecimals: Bool = true) throws -> BookSessionHarness<Kraken, KrakenSession> {
        let market = market(seed: 9)
        let pairs = KrakenVenue.respond(toPath: Kraken.restMarketsPath, market: market)
        let listed = try Kraken.parseMarkets(Array(pairs.body.utf8))
        var syncs: [String: KrakenBookSynchronizer] = [:]
        var instrument: [String: String] = [:]
        for name in market.nativeSymbols {
            let symbol = KrakenVenue.nativeSymbol(instrument: name)
            let listing = try #require(listed.first { $0.nativeSymbol == symbol })
            #expect(listing.priceDecimals != nil && listing.quantityDecimals == KrakenVenue.lotDecimals)
            syncs[symbol] = KrakenBookSynchronizer(
                exchange: Kraken.exchange, market: listedDecimals ? listing : ListedMarket(nativeSymbol: symbol))
            instrument[symbol] = name
        }
        let depth = Kraken.bookDepth
        return BookSessionHarness(
            market: market,
            session: KrakenVenue.makeSession(
                instruments: market.nativeSymbols, configuration: sessionConfiguration(fault),
                connectedAt: market.configuration.startTime),
            parser: Kraken.makeFrameParser(), syncs: syncs, instrument: instrument,
            expected: { OrderBook(bids: $0.bids(top: depth), asks: $0.asks(top: depth)) }, same: sameValues,
            now: market.configuration.startTime)
    }

    @Test(arguments: BookFault.allCases) func krakenSessionRebuildsTheMarketsBooks(fault: BookFault) throws {
        var harness = try Self.kraken(fault)
        harness.subscribe()
        harness.run(orders: 3_000)
        harness.settle(limit: 3_000)
        // Kraken has no sequence numbers: a message delivered late onto a fresh snapshot that
        // happens to restore the state it describes passes its checksum, and the book is one
        // message old until the next message's checksum fails. Only the swap fault does that.
        if fault == .swap {
            #expect(harness.undetectedMismatches == 0)
        } else {
            #expect(harness.mismatches == 0)
        }
        #expect(!harness.nestingLimitHit)
        #expect(harness.crossed == 0)
        #expect(harness.accepted > 1_000)
        #expect(harness.booksAreExact() == [])
        let session = harness.session
        switch fault {
        case .none:
            #expect(harness.resyncCount == 0)
            #expect(harness.gaps == 0)
        case .skip:
            #expect(session.bookUpdatesSkipped > 10)
            #expect(harness.resyncs[.checksum, default: 0] > 10)
        case .swap:
            #expect(session.bookUpdatesSwapped > 10)
            #expect(harness.resyncs[.checksum, default: 0] > 10)
        case .corruptChecksum:
            #expect(session.checksumsCorrupted > 10)
            #expect(harness.resyncs[.checksum, default: 0] >= session.checksumsCorrupted - 8)
            #expect(harness.gaps >= session.checksumsCorrupted - 8)
        }
    }

    /// Without the listing's decimals the synchronizer learns them from the numbers it sees.
    @Test func krakenWithoutListedDecimals() throws {
        var harness = try Self.kraken(.none, listedDecimals: false)
        harness.subscribe()
        harness.run(orders: 2_000)
        harness.settle(limit: 2_000)
        #expect(harness.mismatches == 0)
        #expect(!harness.nestingLimitHit)
        #expect(harness.resyncCount == 0)
        #expect(harness.booksAreExact() == [])
        #expect(harness.accepted > 500)
    }

    @Test func krakenBookMessagesAreTheVenuesShape() throws {
        let harness = try Self.kraken(.none)
        var session = harness.session
        let ack = session.received(#"{"method":"subscribe","params":{"channel":"book","symbol":["DOGE/BTC"],"depth":25}}"#, at: 1)
        guard case .send(let text)? = ack.first else {
            Issue.record("no ack")
            return
        }
        #expect(text.hasPrefix(#"{"method":"subscribe","result":{"channel":"book","depth":25,"snapshot":true,"symbol":"DOGE/BTC"},"success":true"#))
        var parser = Kraken.makeFrameParser()
        var trades: [Trade] = []
        var books: [BookFrame] = []
        #expect(try parser.parse(text, receivedAt: 1, into: &trades, books: &books) == .subscribed(channel: "book", symbols: ["DOGE/BTC"]))
        #expect(session.takeBookSnapshotRequests() == ["DOGE_BTC"])
        let book = try #require(harness.market.book(nativeSymbol: "DOGE_BTC"))
        let snapshot = session.bookSnapshot(book, updateId: harness.market.bookUpdateId(nativeSymbol: "DOGE_BTC"), instrument: "DOGE_BTC")
        guard case .send(let frame)? = snapshot.first else {
            Issue.record("no snapshot")
            return
        }
        // DOGE/BTC trades near 0.00000312: Kraken's JSON prints such prices in exponent form.
        #expect(frame.contains("e-06"))
        #expect(try parser.parse(frame, receivedAt: 1, into: &trades, books: &books) == .books(count: 1))
        let parsed = try #require(books.first)
        #expect(parsed.kind == .snapshot)
        #expect(parsed.bids.count == min(25, book.depth.bids))
        #expect(!(parsed.bids.first?.price.contains("e") ?? true))
        #expect(
            session.received(#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USDT"],"depth":7}}"#, at: 1).first.map {
                if case .send(let t) = $0 { t.contains(#""success":false"#) } else { false }
            } == true)
    }
}
