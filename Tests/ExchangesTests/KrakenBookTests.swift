import Exchanges
import MarketData
import TapeTestSupport
import Testing

/// Kraken v2 `book`: the checksum against Kraken's own worked example, number texts at the
/// precision edges, frames field by field, the synchronizer's rules, and a seeded fuzz against a
/// model venue that prints JSON numbers the way Kraken does.
@Suite struct KrakenBookTests {
    static let btc = ListedMarket(
        nativeSymbol: "BTC/USD", symbol: Symbol(normalizing: "BTC/USD"), isTrading: true, restSymbol: "XBTUSD",
        priceDecimals: 1, quantityDecimals: 8)

    static func level(_ price: String, _ quantity: String) -> BookLevel {
        do { return try BookLevel(price: price, quantity: quantity) } catch {
            Issue.record("bad level \(price) \(quantity)")
            return try! BookLevel(price: "1", quantity: "0")
        }
    }

    static func parseBooks(_ frame: String, receivedAt: Int64 = 7_000) throws(FrameParseError) -> (ExchangeMessage, [BookFrame]) {
        var parser = KrakenFrameParser()
        var trades: [Trade] = []
        var books: [BookFrame] = []
        let message = try parser.parse(frame, receivedAt: receivedAt, into: &trades, books: &books)
        #expect(trades.isEmpty)
        return (message, books)
    }

    // MARK: Checksum

    @Test func documentedExampleChecksum() throws {
        let (message, books) = try Self.parseBooks(Kraken.sampleBookChecksumFrame)
        #expect(message == .books(count: 1))
        let frame = try #require(books.first)
        #expect(frame.checksum == 3_310_070_434)
        let book = OrderBook(bids: frame.bids, asks: frame.asks)
        // The guide's first step: ask 45285.2 × 0.00100000 → "452852" + "100000".
        #expect(KrakenBookChecksum.text(of: book, priceDecimals: 1, quantityDecimals: 8).hasPrefix("452852100000"))
        #expect(KrakenBookChecksum.checksum(of: book, priceDecimals: 1, quantityDecimals: 8) == 3_310_070_434)
        // The same book as JSON numbers (trailing zeros gone, one exponent) gives the same checksum.
        let (_, numbers) = try Self.parseBooks(Kraken.sampleBookNumbersFrame)
        let numbersFrame = try #require(numbers.first)
        #expect(numbersFrame.asks.first == Self.level("45285.2", "0.001"))
        #expect(numbersFrame.bids[3] == Self.level("45281", "0.1"))
        let numbersBook = OrderBook(bids: numbersFrame.bids, asks: numbersFrame.asks)
        #expect(KrakenBookChecksum.checksum(of: numbersBook, priceDecimals: 1, quantityDecimals: 8) == 3_310_070_434)
        // Wrong decimals give another checksum: the precision matters.
        #expect(KrakenBookChecksum.checksum(of: numbersBook, priceDecimals: 2, quantityDecimals: 8) != 3_310_070_434)
    }

    @Test func crc32IsZlibs() {
        #expect(KrakenBookChecksum.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(KrakenBookChecksum.crc32([UInt8]()) == 0)
    }

    @Test func numberTextsAtThePrecisionEdges() throws {
        func formatted(_ price: String, _ decimals: Int) throws -> String {
            let book = OrderBook(bids: [], asks: [try BookLevel(price: price, quantity: "1")])
            return String(KrakenBookChecksum.text(of: book, priceDecimals: decimals, quantityDecimals: 0).dropLast())
        }
        #expect(try formatted("0.566", 4) == "5660")
        #expect(try formatted("45281", 1) == "452810")
        #expect(try formatted("45281.0", 1) == "452810")
        #expect(try formatted("0.00001", 8) == "1000")
        #expect(try formatted("0.00001000", 8) == "1000")
        #expect(try formatted("40.0", 0) == "40")
        #expect(try formatted("0.05000", 5) == "5000")
        #expect(try formatted("100", 0) == "100")
        #expect(try formatted("0.12345", 3) == "12345")  // surplus non-zero digits are kept
        // Exponent forms JSON encoders print, written out exactly.
        let cases: [(String, String)] = [
            ("1e-05", "0.00001"), ("1E-5", "0.00001"), ("1.5e-3", "0.0015"), ("1.5E+3", "1500"), ("2e2", "200"),
            ("0.5e1", "5"), ("123.456e-2", "1.23456"), ("12e-1", "1.2"), ("1.000e-8", "0.00000001000"), ("7e0", "7"),
        ]
        for (json, plain) in cases {
            let frame =
                #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":\#(json),"qty":\#(json)}],"asks":[],"checksum":1}]}"#
            let (_, books) = try Self.parseBooks(frame)
            #expect(books.first?.bids.first?.price == plain, "\(json)")
            #expect(books.first?.bids.first?.quantity == plain, "\(json)")
        }
    }

    // MARK: Frames

    @Test func updateFieldByField() throws {
        let (message, books) = try Self.parseBooks(Kraken.sampleBookUpdateFrame, receivedAt: 1_696_613_755_500_000)
        #expect(message == .books(count: 1))
        let frame = try #require(books.first)
        #expect(frame.nativeSymbol == "ETH/BTC")
        #expect(frame.kind == .update)
        #expect(frame.bids == [Self.level("0.5657", "1098.3947558")])
        #expect(frame.bids.first?.price == "0.5657")
        #expect(frame.bids.first?.quantity == "1098.3947558")
        #expect(frame.asks.isEmpty)
        #expect(frame.checksum == 2_114_181_697)
        #expect(frame.time == 1_696_613_755_440)
        #expect(frame.receivedAt == 1_696_613_755_500_000)
        #expect(frame.sequence == nil)
        #expect(frame.previousSequence == nil)
    }

    @Test func snapshotWithoutTimestampUsesReceiveTime() throws {
        let (_, books) = try Self.parseBooks(Kraken.sampleBookChecksumFrame, receivedAt: 1_700_000_000_123_456)
        let frame = try #require(books.first)
        #expect(frame.kind == .snapshot)
        #expect(frame.nativeSymbol == "BTC/USD")
        #expect(frame.time == 1_700_000_000_123)
        #expect(frame.bids.count == 10)
        #expect(frame.asks.count == 10)
        #expect(frame.bids.first == Self.level("45283.5", "0.10000000"))
        #expect(frame.asks.last == Self.level("45299.5", "0.18772827"))
    }

    @Test func acksTradesAndOtherChannels() throws {
        var parser = KrakenFrameParser()
        var trades: [Trade] = []
        var books: [BookFrame] = []
        #expect(
            try parser.parse(Kraken.sampleBookSubscribeAck, receivedAt: 7, into: &trades, books: &books)
                == .subscribed(channel: "book", symbols: ["MATIC/USD"]))
        #expect(
            try parser.parse(Kraken.sampleSubscribeAck, receivedAt: 7, into: &trades, books: &books)
                == .subscribed(channel: "trade", symbols: ["BTC/USD"]))
        #expect(try parser.parse(Kraken.sampleTradesFrame, receivedAt: 7, into: &trades, books: &books) == .trades(count: 2))
        #expect(try parser.parse(Kraken.sampleHeartbeat, receivedAt: 7, into: &trades, books: &books) == .ignored(channel: "heartbeat"))
        #expect(books.isEmpty)
        // A trades-only parse leaves books alone.
        #expect(try parser.parse(Kraken.sampleBookUpdateFrame, receivedAt: 7, into: &trades) == .ignored(channel: "book"))
        // Another member order parses the same.
        let reordered =
            #"{"data":[{"checksum":2114181697,"asks":[],"timestamp":"2023-10-06T17:35:55.440295Z","bids":[{"qty":1098.3947558,"price":0.5657}],"symbol":"ETH/BTC"}],"type":"update","channel":"book"}"#
        let (_, expected) = try Self.parseBooks(Kraken.sampleBookUpdateFrame)
        #expect(try Self.parseBooks(reordered).1 == expected)
    }

    @Test func badFramesAppendNothing() {
        let bad = [
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":-1,"qty":1}],"asks":[],"checksum":1}]}"#,
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":1}],"asks":[],"checksum":1}]}"#,
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":1e400,"qty":1}],"asks":[],"checksum":1}]}"#,
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":4294967296}]}"#,
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":-1}]}"#,
            #"{"channel":"book","type":"delta","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1}]}"#,
            #"{"channel":"book","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1}]}"#,
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1},{"bids":[]}]}"#,
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1,"timestamp":"yesterday"}]}"#,
            #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1}]"#,
        ]
        for frame in bad {
            var parser = KrakenFrameParser()
            var trades: [Trade] = []
            var books: [BookFrame] = [BookFrame(nativeSymbol: "X", kind: .update, bids: [], asks: [], time: 1, receivedAt: 1)]
            do {
                let message = try parser.parse(frame, receivedAt: 7, into: &trades, books: &books)
                Issue.record("parsed as \(message): \(frame)")
            } catch {
                #expect(error.code == .invalidBook || error.code == .malformedJSON, "\(error)")
            }
            #expect(books.count == 1)
        }
    }

    @Test func assetPairsCarryDecimals() throws {
        let markets = try Kraken.parseMarkets(Array(Kraken.sampleAssetPairs.utf8))
        let btc = try #require(markets.first { $0.nativeSymbol == "BTC/USD" })
        #expect(btc.priceDecimals == 1)
        #expect(btc.quantityDecimals == 8)
        let eth = try #require(markets.first { $0.nativeSymbol == "ETH/EUR" })
        #expect(eth.priceDecimals == nil)
        #expect(eth.quantityDecimals == nil)
    }

    @Test func adapterMessages() {
        #expect(Kraken.supportsBooks)
        #expect(
            Kraken.bookSubscribeMessages(nativeSymbols: ["BTC/USD", "ETH/USD"])
                == [#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","ETH/USD"],"depth":10}}"#])
        #expect(
            Kraken.bookResubscribeMessages(nativeSymbol: "BTC/USD") == [
                #"{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}"#,
                #"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}"#,
            ])
        #expect(Kraken.bookSnapshotPath(market: Self.btc) == nil)
    }

    // MARK: The state machine

    /// A snapshot frame of `book` with its true checksum (or `checksum`).
    static func snapshot(_ book: OrderBook, time: Int64 = 1_000, checksum: UInt32? = nil, decimals: (Int, Int) = (1, 8)) -> BookFrame {
        BookFrame(
            nativeSymbol: "BTC/USD", kind: .snapshot, bids: book.bids(), asks: book.asks(), time: time,
            receivedAt: time * 1000,
            checksum: checksum ?? KrakenBookChecksum.checksum(of: book, priceDecimals: decimals.0, quantityDecimals: decimals.1))
    }

    /// An update frame whose checksum is that of `after` (the venue's book after it).
    static func update(bids: [BookLevel] = [], asks: [BookLevel] = [], after: OrderBook, time: Int64 = 2_000, checksum: UInt32? = nil)
        -> BookFrame
    {
        BookFrame(
            nativeSymbol: "BTC/USD", kind: .update, bids: bids, asks: asks, time: time, receivedAt: time * 1000,
            checksum: checksum ?? KrakenBookChecksum.checksum(of: after, priceDecimals: 1, quantityDecimals: 8))
    }

    /// Ten levels a side around 100.
    static func tenByTen() -> OrderBook {
        var bids: [BookLevel] = []
        var asks: [BookLevel] = []
        for i in 0..<10 {
            bids.append(level("\(99 - i).5", "1.\(i)"))
            asks.append(level("\(100 + i).5", "2.\(i)"))
        }
        return OrderBook(bids: bids, asks: asks)
    }

    @Test func snapshotAndUpdatesWithTruncation() throws {
        var sync = KrakenBookSynchronizer(exchange: Kraken.exchange, market: Self.btc)
        let venue = Self.tenByTen()
        #expect(sync.receive(Self.update(after: venue)) == .nothing)  // before any snapshot
        let first = sync.receive(Self.snapshot(venue))
        #expect(first.events.map(\.kind) == [.snapshot])
        #expect(first.events.first?.sequence == nil)
        #expect(sync.book == venue)
        #expect(sync.sequence == nil)
        // A new best bid: Kraken sends only it; the 11th bid falls out of scope silently.
        var after = venue
        after.apply(Self.level("99.7", "3"), side: .bid)
        after.apply(Self.level("90.5", "0"), side: .bid)
        let step = sync.receive(Self.update(bids: [Self.level("99.7", "3")], after: after))
        #expect(step.resyncReason == nil)
        #expect(sync.book == after)
        #expect(sync.book?.depth.bids == 10)
        // The record removes the cut level, so a consumer needs no depth.
        #expect(step.events.first?.bids == [Self.level("99.7", "3"), Self.level("90.5", "0")])
        var consumer = venue
        for event in step.events { consumer.apply(event) }
        #expect(consumer == after)
        #expect(sync.checksumsVerified == 2)
        // The same price twice in one message: applied in order.
        var again = after
        again.apply(Self.level("100.5", "7"), side: .ask)
        let twice = sync.receive(Self.update(asks: [Self.level("100.5", "5"), Self.level("100.5", "7")], after: again))
        #expect(twice.resyncReason == nil)
        #expect(sync.book == again)
    }

    @Test func failedChecksumResyncsThenSnapshotBringsAGap() throws {
        var sync = KrakenBookSynchronizer(exchange: Kraken.exchange, market: Self.btc)
        let venue = Self.tenByTen()
        _ = sync.receive(Self.snapshot(venue, time: 1_000))
        var after = venue
        after.apply(Self.level("100.5", "9"), side: .ask)
        let ok = sync.receive(Self.update(asks: [Self.level("100.5", "9")], after: after, time: 1_500))
        #expect(ok.events.count == 1)
        // A lost message: the next update's checksum covers a change Tape never saw.
        var lost = after
        lost.apply(Self.level("101.5", "4"), side: .ask)
        var next = lost
        next.apply(Self.level("99.5", "8"), side: .bid)
        let failed = sync.receive(Self.update(bids: [Self.level("99.5", "8")], after: next, time: 2_000))
        #expect(failed.events.isEmpty)
        #expect(failed.resyncReason == .checksum)
        guard case .resubscribe = failed.action else {
            Issue.record("expected resubscribe, got \(failed.action)")
            return
        }
        #expect(sync.book == nil)
        #expect(sync.receive(Self.update(after: next, time: 2_100)) == .nothing)
        let fresh = sync.receive(Self.snapshot(next, time: 3_000))
        #expect(fresh.events.map(\.kind) == [.snapshot])
        #expect(fresh.gaps.map(\.from) == [1_500])
        #expect(fresh.gaps.map(\.to) == [3_000])
        #expect(fresh.gaps.first?.channel == .book)
        #expect(sync.book == next)
    }

    @Test func badSnapshotChecksumAndMissingChecksumsResync() {
        var sync = KrakenBookSynchronizer(exchange: Kraken.exchange, market: Self.btc)
        let venue = Self.tenByTen()
        let refused = sync.receive(Self.snapshot(venue, checksum: 12345))
        #expect(refused.events.isEmpty)
        #expect(refused.resyncReason == .checksum)
        #expect(sync.book == nil)
        _ = sync.receive(Self.snapshot(venue))
        var noChecksum = Self.update(asks: [Self.level("100.5", "1")], after: venue)
        noChecksum.checksum = nil
        let step = sync.receive(noChecksum)
        #expect(step.events.isEmpty)
        #expect(step.resyncReason == .invalid)
        #expect(sync.book == nil)
    }

    @Test func resetGivesAGapAtTheNextSnapshot() {
        var sync = KrakenBookSynchronizer(exchange: Kraken.exchange, market: Self.btc)
        #expect(sync.reset(receivedAt: 1).resyncReason == nil)
        let venue = Self.tenByTen()
        _ = sync.receive(Self.snapshot(venue, time: 1_000))
        #expect(sync.reset(receivedAt: 4_000_000).resyncReason == .reconnect)
        #expect(sync.receive(Self.update(after: venue)) == .nothing)
        let fresh = sync.receive(Self.snapshot(venue, time: 5_000))
        #expect(fresh.gaps.map(\.from) == [1_000])
        #expect(fresh.gaps.map(\.to) == [5_000])
    }

    @Test func crossedBooksResync() {
        var sync = KrakenBookSynchronizer(exchange: Kraken.exchange, market: Self.btc)
        let venue = Self.tenByTen()
        _ = sync.receive(Self.snapshot(venue))
        var crossed = venue
        crossed.apply(Self.level("100.5", "1"), side: .bid)
        crossed.apply(Self.level("90.5", "0"), side: .bid)
        let step = sync.receive(Self.update(bids: [Self.level("100.5", "1")], after: crossed))
        #expect(step.events.isEmpty)
        #expect(step.resyncReason == .crossed)
        #expect(sync.book == nil)
    }

    @Test func decimalsAreLearnedWhenTheListingHasNone() throws {
        var sync = KrakenBookSynchronizer(exchange: Kraken.exchange, market: ListedMarket(nativeSymbol: "BTC/USD"))
        let (_, books) = try Self.parseBooks(Kraken.sampleBookNumbersFrame)
        let step = sync.receive(try #require(books.first))
        #expect(step.resyncReason == nil)
        #expect(step.events.count == 1)
        #expect(sync.priceDecimals == 1)
        #expect(sync.quantityDecimals == 8)
    }

    // MARK: Fuzz against a model venue

    /// A venue holding a deep book; clients see its top `depth`. Each step changes random levels
    /// and prints the update as Kraken does: changed levels of the visible book, removals only for
    /// deleted levels, JSON numbers without trailing zeros (sometimes in exponent form).
    struct ModelVenue {
        var book = OrderBook()
        let depth = 10
        var r: SplitMix64

        /// Price of tick `t` with 1 decimal, as JSON prints it.
        static func price(_ tick: Int) -> String {
            tick % 10 == 0 ? "\(tick / 10)" : "\(tick / 10).\(tick % 10)"
        }

        /// Units of 1e-8 as JSON prints them: trailing zeros dropped; sometimes exponent form.
        static func quantity(_ units: Int, exponent: Bool) -> String {
            let whole = units / 100_000_000
            var fraction = String(units % 100_000_000)
            fraction = String(repeating: "0", count: 8 - fraction.count) + fraction
            while fraction.last == "0" { fraction.removeLast() }
            if exponent && whole == 0 && !fraction.isEmpty {
                let zeros = fraction.prefix { $0 == "0" }.count
                let digits = fraction.dropFirst(zeros)
                let mantissa = digits.count > 1 ? "\(digits.first!).\(digits.dropFirst())" : "\(digits)"
                return "\(mantissa)e-\(zeros + 1 < 10 ? "0" : "")\(zeros + 1)"
            }
            return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
        }

        mutating func randomLevel(side: BookSide, remove: Bool) -> (BookSide, String, String) {
            let tick = side == .bid ? 450_000 - 1 - Int(r.below(40)) : 450_000 + Int(r.below(40))
            let units = remove ? 0 : 1 + Int(r.below(r.below(2) == 0 ? 100_000 : 300_000_000))
            return (side, Self.price(tick), remove ? "0" : Self.quantity(units, exponent: r.below(3) == 0))
        }

        var visible: OrderBook { OrderBook(bids: book.bids(top: depth), asks: book.asks(top: depth)) }

        static func json(_ levels: [BookLevel]) -> String {
            "[" + levels.map { #"{"price":\#($0.price),"qty":\#($0.quantity)}"# }.joined(separator: ",") + "]"
        }

        mutating func snapshotFrame() -> String {
            let v = visible
            let checksum = KrakenBookChecksum.checksum(of: v, priceDecimals: 1, quantityDecimals: 8)
            return
                #"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":\#(Self.json(v.bids())),"asks":\#(Self.json(v.asks())),"checksum":\#(checksum)}]}"#
        }

        /// Changes the book and returns the update frame.
        mutating func step() -> String {
            let before = visible
            var sent: [BookSide: [BookLevel]] = [.bid: [], .ask: []]
            for _ in 0..<(1 + Int(r.below(4))) {
                let side: BookSide = r.below(2) == 0 ? .bid : .ask
                let (s, price, quantity) = randomLevel(side: side, remove: r.below(3) == 0)
                guard let level = try? BookLevel(price: price, quantity: quantity) else { continue }
                let key = level.key
                let wasVisible = before.quantity(at: key, side: s) != nil
                book.apply(level, side: s)
                let isVisible = visible.quantity(at: key, side: s) != nil
                if wasVisible || isVisible { sent[s, default: []].append(level) }
            }
            // Levels that became visible because others left: Kraken sends them.
            let after = visible
            for side in BookSide.allCases {
                let levels = side == .bid ? after.bids() : after.asks()
                for level in levels
                where before.quantity(at: level.key, side: side) == nil
                    && !(sent[side] ?? []).contains(where: { $0.key == level.key })
                {
                    sent[side, default: []].append(level)
                }
            }
            let checksum = KrakenBookChecksum.checksum(of: after, priceDecimals: 1, quantityDecimals: 8)
            return
                #"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":\#(Self.json(sent[.bid] ?? [])),"asks":\#(Self.json(sent[.ask] ?? [])),"checksum":\#(checksum),"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#
        }
    }

    /// The model's updates rebuild its book exactly and never resync; faults (a dropped update,
    /// a corrupted checksum, a mutated byte) always end in a resync, never in a published update
    /// Tape could not vouch for, and the book is exact again after the next snapshot.
    @Test(arguments: [false, true]) func fuzzAgainstAModelVenue(listedDecimals: Bool) throws {
        var venue = ModelVenue(r: SplitMix64(seed: listedDecimals ? 7 : 8))
        var r = SplitMix64(seed: 2_023_1006)
        let market = listedDecimals ? Self.btc : ListedMarket(nativeSymbol: "BTC/USD")
        for _ in 0..<40 { _ = venue.step() }
        var parser = KrakenFrameParser()
        var sync = KrakenBookSynchronizer(exchange: Kraken.exchange, market: market)
        var consumer: OrderBook?
        var resyncs = 0
        var faults = 0
        var pendingSnapshot = true
        var cleanUpdates = 0
        for round in 0..<4_000 {
            var text = pendingSnapshot ? venue.snapshotFrame() : venue.step()
            var faulty = false
            if !pendingSnapshot {
                switch r.below(40) {
                case 0:  // dropped: the venue moved on, Tape never saw it
                    text = venue.step()
                    faulty = true
                case 1:  // corrupted checksum
                    text = text.replacingFirst(of: #""checksum":"#, with: #""checksum":1"#)
                    faulty = true
                case 2:  // a mutated byte (may or may not still parse)
                    var bytes = Array(text.utf8)
                    bytes[Int(r.below(bytes.count))] = UInt8(truncatingIfNeeded: r.next())
                    text = String(decoding: bytes, as: UTF8.self)
                    faulty = true
                default: break
                }
            }
            pendingSnapshot = false
            if faulty { faults += 1 }
            var trades: [Trade] = []
            var books: [BookFrame] = []
            do {
                _ = try parser.parse(text, receivedAt: Int64(round) * 1000, into: &trades, books: &books)
            } catch {
                #expect(books.isEmpty)
                // An unreadable frame: the connection would drop it; resync to stay exact.
                _ = sync.reset(receivedAt: Int64(round) * 1000)
                consumer = nil
                pendingSnapshot = true
                continue
            }
            for frame in books {
                let step = sync.receive(frame)
                for event in step.events {
                    switch event.kind {
                    case .snapshot: consumer = OrderBook(bids: event.bids, asks: event.asks)
                    case .update:
                        #expect(consumer != nil, "an update published on no book")
                        consumer?.apply(event)
                    }
                }
                if step.resyncReason != nil {
                    resyncs += 1
                    consumer = nil
                    pendingSnapshot = true
                } else if sync.book != nil, !faulty {
                    cleanUpdates += 1
                }
                // Whatever Tape published is the venue's book (or nothing).
                if let consumer {
                    #expect(consumer == sync.book)
                    if !faulty || step.resyncReason == nil {
                        // A fault the checksum did not catch would show here.
                        #expect(consumer == venue.visible, "round \(round)")
                    }
                    #expect(!consumer.isCrossed)
                }
            }
        }
        #expect(faults > 100)
        #expect(resyncs > 50)
        #expect(cleanUpdates > 2_000)
    }
}
