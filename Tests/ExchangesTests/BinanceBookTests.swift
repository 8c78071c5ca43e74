import Exchanges
import MarketData
import TapeTestSupport
import Testing

private let bnbbtc = ListedMarket(nativeSymbol: "BNBBTC", symbol: Symbol(normalizing: "BNB-BTC"), isTrading: true)

/// Parses one frame with a book-aware Binance parser; returns the message, trades and book frames.
private func parseBook(_ frame: String, parser: inout BinanceFrameParser) throws(FrameParseError) -> (
    message: ExchangeMessage, trades: [Trade], books: [BookFrame]
) {
    var trades: [Trade] = []
    var books: [BookFrame] = []
    let bytes = Array(frame.utf8)
    let result = bytes.withUnsafeBufferPointer { buffer in
        Result { () throws(FrameParseError) -> ExchangeMessage in
            try parser.parse(buffer, receivedAt: 7_000, into: &trades, books: &books)
        }
    }
    return (try result.get(), trades, books)
}

private func parseBook(_ frame: String) throws(FrameParseError) -> (message: ExchangeMessage, trades: [Trade], books: [BookFrame]) {
    var parser = Binance.makeFrameParser(markets: [bnbbtc])
    return try parseBook(frame, parser: &parser)
}

private func level(_ price: String, _ quantity: String) -> BookLevel { try! BookLevel(price: price, quantity: quantity) }

/// A depth event `U`...`u` of BNBBTC at time `time`.
private func depth(_ first: Int64, _ last: Int64, bids: [(String, String)] = [], asks: [(String, String)] = [], time: Int64 = 1_700_000_000_000)
    -> BookFrame
{
    BookFrame(
        nativeSymbol: "BNBBTC", kind: .update, bids: bids.map { level($0.0, $0.1) }, asks: asks.map { level($0.0, $0.1) },
        time: time, receivedAt: time * 1000, firstSequence: first, sequence: last)
}

/// A REST depth snapshot with `lastUpdateId`.
private func snapshot(_ lastUpdateId: Int64, bids: [(String, String)], asks: [(String, String)], time: Int64 = 1_700_000_000_500)
    -> BookFrame
{
    BookFrame(
        nativeSymbol: "BNBBTC", kind: .snapshot, bids: bids.map { level($0.0, $0.1) }, asks: asks.map { level($0.0, $0.1) },
        time: time, receivedAt: time * 1000, sequence: lastUpdateId)
}

private func machine() -> BinanceBookSynchronizer { BinanceBookSynchronizer(exchange: Binance.exchange, market: bnbbtc) }

// MARK: - Parsing

@Suite struct BinanceBookFrameTests {
    @Test func documentedDepthUpdateEveryField() throws {
        let (message, trades, books) = try parseBook(Binance.sampleDepthUpdate)
        #expect(message == .books(count: 1))
        #expect(trades.isEmpty)
        let frame = try #require(books.first)
        #expect(books.count == 1)
        #expect(frame.nativeSymbol == "BNBBTC")
        #expect(frame.kind == .update)
        #expect(frame.bids.map(\.price) == ["0.0024"])
        #expect(frame.bids.map(\.quantity) == ["10"])
        #expect(frame.asks.map(\.price) == ["0.0026"])
        #expect(frame.asks.map(\.quantity) == ["100"])
        #expect(frame.time == 1_672_515_782_136, "E, the event time")
        #expect(frame.receivedAt == 7_000)
        #expect(frame.firstSequence == 157, "U")
        #expect(frame.sequence == 160, "u")
        #expect(frame.previousSequence == nil)
        #expect(frame.checksum == nil)
    }

    @Test func combinedStreamEnvelopeParsesTheSame() throws {
        let raw = try parseBook(Binance.sampleDepthUpdate)
        let wrapped = try parseBook(Binance.sampleCombinedDepthUpdate)
        #expect(wrapped.message == .books(count: 1))
        #expect(wrapped.books == raw.books)
    }

    @Test func tradesStillParseAndTradesOnlyParseIgnoresDepth() throws {
        let trade = try parseBook(Binance.sampleTradeEvent)
        #expect(trade.message == .trades(count: 1))
        #expect(trade.trades.count == 1)
        #expect(trade.books.isEmpty)
        var parser = Binance.makeFrameParser(markets: [bnbbtc])
        var trades: [Trade] = []
        let message = try parser.parse(Binance.sampleDepthUpdate, receivedAt: 7, into: &trades)
        #expect(message == .ignored(channel: "depthUpdate"))
        #expect(trades.isEmpty)
    }

    @Test func zeroQuantityAndNumbersKeepTheirDigits() throws {
        let frame = #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":5,"u":5,"b":[["0.00240000","0.00000000"],["0.0023","1.50"]],"a":[]}"#
        let books = try parseBook(frame).books
        let update = try #require(books.first)
        #expect(update.bids.map(\.price) == ["0.00240000", "0.0023"])
        #expect(update.bids.map(\.isEmpty) == [true, false])
        #expect(update.bids[1].quantity == "1.50")
        #expect(update.asks.isEmpty)
        #expect(update.firstSequence == 5 && update.sequence == 5)
    }

    @Test func badDepthEventsFailWholeAndAppendNothing() {
        let bad = [
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","u":160,"b":[],"a":[]}"#,  // no U
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"b":[],"a":[]}"#,  // no u
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":161,"u":160,"b":[],"a":[]}"#,  // U > u
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":-1,"u":160,"b":[],"a":[]}"#,  // negative
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"a":[]}"#,  // no bids
            #"{"e":"depthUpdate","E":1672515782136,"U":157,"u":160,"b":[],"a":[]}"#,  // no symbol
            #"{"e":"depthUpdate","s":"BNBBTC","U":157,"u":160,"b":[],"a":[]}"#,  // no time
            #"{"e":"depthUpdate","E":-5,"s":"BNBBTC","U":157,"u":160,"b":[],"a":[]}"#,  // time out of range
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["-1","10"]],"a":[]}"#,
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["1","abc"]],"a":[]}"#,
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["1e5","1"]],"a":[]}"#,
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["1"]],"a":[]}"#,
            #"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":99999999999999999999,"b":[],"a":[]}"#,
        ]
        for frame in bad {
            var parser = Binance.makeFrameParser(markets: [bnbbtc])
            var trades = [Trade]()
            var books = [depth(1, 1)]  // something already there must stay untouched
            do {
                _ = try Array(frame.utf8).withUnsafeBufferPointer { buffer throws(FrameParseError) in
                    try parser.parse(buffer, receivedAt: 1, into: &trades, books: &books)
                }
                Issue.record("accepted \(frame)")
            } catch {
                #expect(error.code == .invalidBook, "\(frame): \(error)")
            }
            #expect(books.count == 1 && trades.isEmpty, "\(frame)")
        }
    }

    @Test func restDepthEveryField() throws {
        let frame = try BinanceREST.parseDepth(Binance.sampleRESTDepth, market: bnbbtc, receivedAt: 1_700_000_000_123_456)
        #expect(frame.kind == .snapshot)
        #expect(frame.nativeSymbol == "BNBBTC")
        #expect(frame.sequence == 1_027_024, "lastUpdateId")
        #expect(frame.firstSequence == nil)
        #expect(frame.bids == [level("4.00000000", "431.00000000")])
        #expect(frame.asks == [level("4.00000200", "12.00000000")])
        #expect(frame.time == 1_700_000_000_123, "no time in the body: the receive time")
        #expect(frame.receivedAt == 1_700_000_000_123_456)
        let viaAdapter = try Binance.parseBookSnapshot(Array(Binance.sampleRESTDepth.utf8), market: bnbbtc, receivedAt: 1_700_000_000_123_456)
        #expect(viaAdapter == frame)
        for bad in [
            #"{"bids":[],"asks":[]}"#, #"{"lastUpdateId":-1,"bids":[],"asks":[]}"#, #"{"lastUpdateId":1,"asks":[]}"#,
            #"{"lastUpdateId":1,"bids":[["x","1"]],"asks":[]}"#, #"{"lastUpdateId":1,"bids":[],"asks":[]} x"#,
            #"{"code":-1121,"msg":"Invalid symbol."}"#,
        ] {
            #expect(throws: FrameParseError.self, "\(bad)") { try BinanceREST.parseDepth(bad, market: bnbbtc, receivedAt: 1) }
        }
    }

    @Test func adapterDeclaresTheDepthStreamAndSnapshotPath() {
        #expect(Binance.supportsBooks)
        #expect(
            Binance.bookSubscribeMessages(nativeSymbols: ["BNBBTC", "BTCUSDT"])
                == [#"{"method":"SUBSCRIBE","params":["bnbbtc@depth@100ms","btcusdt@depth@100ms"],"id":1000001}"#])
        #expect(Binance.bookSubscribeMessages(nativeSymbols: []).isEmpty)
        #expect(Binance.bookResubscribeMessages(nativeSymbol: "BNBBTC").isEmpty, "a resync fetches REST instead")
        #expect(Binance.bookSnapshotPath(market: bnbbtc) == "/api/v3/depth?symbol=BNBBTC&limit=1000")
        #expect(Binance.restDepthPath(symbol: "bnbbtc", limit: 9_999) == "/api/v3/depth?symbol=BNBBTC&limit=5000")
        let many = (0..<1_500).map { "S\($0)" }
        let chunks = Binance.bookSubscribeMessages(nativeSymbols: many)
        #expect(chunks.count == 2)
        #expect(chunks[1].hasSuffix(#""id":1000002}"#))
    }
}

// MARK: - The synchronizer

@Suite struct BinanceBookSynchronizerTests {
    /// A book synchronized at update id 100 with bids 1.0@5, 0.9@3 and asks 1.1@2, 1.2@4.
    func synchronized() -> BinanceBookSynchronizer {
        var m = machine()
        #expect(m.receive(depth(95, 98)).action == .fetchSnapshot)
        _ = m.receiveSnapshot(snapshot(100, bids: [("1.0", "5"), ("0.9", "3")], asks: [("1.1", "2"), ("1.2", "4")]))
        return m
    }

    @Test func documentedProcedureInOrder() throws {
        var m = machine()
        // 1. buffer; the first event asks for a snapshot, once.
        var step = m.receive(depth(101, 103, bids: [("1.0", "1")]))
        #expect(step.action == .fetchSnapshot)
        #expect(step.events.isEmpty && step.gaps.isEmpty && step.resyncReason == nil)
        step = m.receive(depth(104, 106, asks: [("1.1", "0")]))
        #expect(step == .nothing, "buffered, and the snapshot is already asked for")
        step = m.receive(depth(107, 107, bids: [("0.95", "2")]))
        #expect(step == .nothing)
        #expect(m.book == nil)
        // 3-5. the snapshot at 105: 101-103 is dropped, 104-106 straddles 106, 107 follows.
        step = m.receiveSnapshot(snapshot(105, bids: [("1.0", "5"), ("0.9", "3")], asks: [("1.1", "2"), ("1.2", "4")]))
        #expect(step.action == .none)
        #expect(step.gaps.isEmpty, "the first book is no gap")
        #expect(step.resyncReason == nil)
        #expect(step.events.map(\.kind) == [.snapshot, .update, .update])
        #expect(step.events.map(\.sequence) == ["105", "106", "107"])
        #expect(step.events[0].bids == [level("1.0", "5"), level("0.9", "3")], "best first")
        #expect(step.events[0].asks == [level("1.1", "2"), level("1.2", "4")])
        #expect(step.events[1].asks == [level("1.1", "0")])
        #expect(step.events[1].kafkaKey == "binance:BNB-BTC")
        let expected = OrderBook(
            bids: [level("1.0", "5"), level("0.9", "3"), level("0.95", "2")], asks: [level("1.2", "4")])
        #expect(m.book == expected)
        #expect(m.sequence == "107")
        // Live: U = previous u + 1.
        step = m.receive(depth(108, 110, bids: [("0.9", "0")]))
        #expect(step.events.count == 1)
        #expect(step.events[0].sequence == "110")
        #expect(step.events[0].kind == .update)
        #expect(m.book?.quantity(at: try BookPrice("0.9"), side: .bid) == nil)
        #expect(m.sequence == "110")
    }

    @Test func recordsRebuildTheBookExactly() {
        var m = machine()
        var consumer = OrderBook()
        var all: [BookEvent] = []
        all += m.receive(depth(10, 12, bids: [("5", "1")])).events
        all += m.receive(depth(13, 13, asks: [("6", "1")])).events
        all += m.receiveSnapshot(snapshot(12, bids: [("5", "1"), ("4", "2")], asks: [("7", "1")])).events
        all += m.receive(depth(14, 15, bids: [("4", "0"), ("4.5", "3")], asks: [("6.5", "2")])).events
        for event in all { consumer.apply(event) }
        #expect(consumer == m.book)
        #expect(all.map(\.sequence) == ["12", "13", "15"])
    }

    @Test func snapshotOlderThanTheFirstBufferedEventIsFetchedAgain() {
        var m = machine()
        _ = m.receive(depth(200, 205, bids: [("1", "2")]))
        var step = m.receiveSnapshot(snapshot(150, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(step.action == .fetchSnapshot, "lastUpdateId 150 < U 200: step 4 says fetch again")
        #expect(step.events.isEmpty)
        #expect(m.book == nil)
        step = m.receiveSnapshot(snapshot(203, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(step.events.map(\.sequence) == ["203", "205"])
    }

    @Test func skippedUpdateResyncsWithNothingUntilTheSnapshotThenAGap() throws {
        var m = synchronized()
        #expect(m.receive(depth(101, 102, bids: [("1.0", "6")])).events.count == 1)
        // 103 is lost: 104 does not follow 102.
        var step = m.receive(depth(104, 105, bids: [("1.0", "7")], time: 1_700_000_001_000))
        #expect(step.resyncReason == .sequenceBreak)
        #expect(step.action == .fetchSnapshot)
        #expect(step.events.isEmpty && step.gaps.isEmpty)
        #expect(m.book == nil)
        // Nothing is published while the snapshot is awaited, and it is asked for once.
        step = m.receive(depth(106, 106, bids: [("0.9", "1")]))
        #expect(step == .nothing)
        // The fresh snapshot: a snapshot record, the buffered events after it, and a gap.
        step = m.receiveSnapshot(
            snapshot(105, bids: [("1.0", "7"), ("0.9", "3")], asks: [("1.1", "2")], time: 1_700_000_002_000))
        #expect(step.events.map(\.kind) == [.snapshot, .update])
        #expect(step.events.map(\.sequence) == ["105", "106"])
        let gap = try #require(step.gaps.first)
        #expect(step.gaps.count == 1)
        #expect(gap.channel == .book)
        #expect(gap.exchange == Binance.exchange)
        #expect(gap.symbol.rawValue == "BNB-BTC")
        #expect(gap.from == 1_700_000_000_000, "from the last good record")
        #expect(gap.to == 1_700_000_002_000)
        #expect(!gap.repaired)
        #expect(step.resyncReason == nil)
        #expect(m.book?.bids(top: 1) == [level("1.0", "7")])
    }

    @Test func staleAndDuplicateEventsAreIgnoredOverlapsResync() {
        var m = synchronized()
        #expect(m.receive(depth(101, 103, bids: [("1.0", "6")])).events.count == 1)
        let before = m.book
        #expect(m.receive(depth(101, 103, bids: [("1.0", "99")])) == .nothing, "duplicate")
        #expect(m.receive(depth(90, 100, bids: [("1.0", "99")])) == .nothing, "stale")
        #expect(m.book == before)
        #expect(m.sequence == "103")
        // After the first event, U must be exactly u + 1: an overlap is a break.
        let step = m.receive(depth(103, 105))
        #expect(step.resyncReason == .sequenceBreak)
        #expect(step.action == .fetchSnapshot)
        #expect(m.book == nil)
    }

    @Test func theFirstEventAfterTheSnapshotMustStraddleIt() {
        var n = machine()
        _ = n.receive(depth(50, 60))
        _ = n.receiveSnapshot(snapshot(100, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(n.book != nil, "every buffered event was older: the book is the snapshot")
        #expect(n.receive(depth(90, 99)) == .nothing, "u ≤ lastUpdateId: dropped")
        let straddling = n.receive(depth(95, 103, bids: [("1", "2")]))
        #expect(straddling.events.map(\.sequence) == ["103"])
        var o = machine()
        _ = o.receive(depth(50, 60))
        _ = o.receiveSnapshot(snapshot(100, bids: [("1", "1")], asks: [("2", "1")]))
        let late = o.receive(depth(102, 103))
        #expect(late.resyncReason == .sequenceBreak, "101 was missed")
        #expect(late.action == .fetchSnapshot)
    }

    @Test func brokenBufferRestartsFromTheNewestEvent() {
        var m = machine()
        _ = m.receive(depth(10, 11, bids: [("1", "5")]))
        #expect(m.receive(depth(13, 14, bids: [("1", "6")])) == .nothing, "the buffer restarts at 13; the snapshot is already asked for")
        var step = m.receiveSnapshot(snapshot(12, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(step.action == .fetchSnapshot, "12 is older than the restarted buffer's first U (13)")
        #expect(step.events.isEmpty)
        step = m.receiveSnapshot(snapshot(13, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(step.events.map(\.sequence) == ["13", "14"])
        #expect(m.book?.bids() == [level("1", "6")])
    }

    @Test func reconnectLosesTheBookAndReportsAGapAtTheNextSnapshot() {
        var m = synchronized()
        var step = m.reset(receivedAt: 1_700_000_005_000_000)
        #expect(step.resyncReason == .reconnect)
        #expect(step.events.isEmpty)
        #expect(step.action == .fetchSnapshot, "a new connection asks for the snapshot at once (quiet markets too)")
        #expect(m.book == nil)
        step = m.receive(depth(300, 301, asks: [("2", "3")]))
        #expect(step.action == .none, "the snapshot is already asked for")
        step = m.receiveSnapshot(snapshot(300, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(step.gaps.count == 1)
        #expect(step.gaps.first?.reason.contains("reset") == true)
        #expect(step.events.map(\.sequence) == ["300", "301"])
        #expect(m.receiveSnapshot(snapshot(1, bids: [], asks: [])) == .nothing, "nobody asked: ignored")
        // A fresh machine's reset reports nothing but asks for the snapshot.
        var fresh = machine()
        #expect(fresh.reset(receivedAt: 1) == BookSyncStep(action: .fetchSnapshot))
        _ = fresh.receive(depth(1, 1))
        #expect(fresh.receiveSnapshot(snapshot(1, bids: [], asks: [])).gaps.isEmpty)
        // A quiet market: the snapshot comes before any event, and the first event must straddle it.
        var quiet = machine()
        _ = quiet.reset(receivedAt: 1)
        step = quiet.receiveSnapshot(snapshot(50, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(step.events.map(\.sequence) == ["50"], "published at once")
        #expect(quiet.receive(depth(40, 50)) == .nothing, "old news")
        #expect(quiet.receive(depth(49, 52, bids: [("1", "2")])).events.map(\.sequence) == ["52"], "straddles 51")
        #expect(quiet.receive(depth(54, 55)).resyncReason == .sequenceBreak, "53 was missed")
    }

    @Test func crossedBooksAreThrownAwayAndFetchedAgain() {
        var m = synchronized()
        let step = m.receive(depth(101, 101, bids: [("1.15", "1")]))
        #expect(step.resyncReason == .crossed)
        #expect(step.action == .fetchSnapshot)
        #expect(step.events.isEmpty)
        #expect(m.book == nil)
        var n = machine()
        _ = n.receive(depth(5, 6, bids: [("1", "2")]))
        let crossed = n.receiveSnapshot(snapshot(5, bids: [("2", "1")], asks: [("1", "1")]))
        #expect(crossed.resyncReason == .crossed)
        #expect(crossed.action == .fetchSnapshot)
        #expect(crossed.events.isEmpty)
        #expect(n.receiveSnapshot(snapshot(5, bids: [("1", "1")], asks: [("2", "1")])).events.map(\.sequence) == ["5", "6"])
    }

    @Test func snapshotFailuresAreRetriedAndTheBufferIsBounded() {
        var m = machine()
        _ = m.receive(depth(1, 1))
        #expect(m.snapshotFailed(reason: "HTTP 429", receivedAt: 1).action == .fetchSnapshot)
        var refetches = 0
        for id in 2...Int64(BinanceBookSynchronizer.maximumBufferedEvents + 10) {
            if m.receive(depth(id, id, bids: [("1", "1")])).action == .fetchSnapshot { refetches += 1 }
        }
        #expect(refetches == 1, "at the bound the buffer restarts and asks again")
        let step = m.receiveSnapshot(snapshot(1_005, bids: [("1", "1")], asks: [("2", "1")]))
        #expect(step.events.first?.sequence == "1005")
        #expect(m.sequence == String(BinanceBookSynchronizer.maximumBufferedEvents + 10))
        // The levels are bounded too: big events overflow long before the event bound.
        let big = (0..<1_000).map { ("\(1 + $0)", "1") }
        var n = machine()
        var asked = 0
        var id: Int64 = 0
        while asked < 2 && id < 1_000 {
            id += 1
            if n.receive(depth(id, id, bids: big)).action == .fetchSnapshot { asked += 1 }
        }
        let eventsPerBuffer = Int64(BinanceBookSynchronizer.maximumBufferedLevels / 1_000)
        #expect(asked == 2 && id == eventsPerBuffer + 1, "the first event asks; the one past the level bound asks again")
    }
}

// MARK: - Fuzz

@Suite struct BinanceBookFuzzTests {
    /// A venue whose true book moves by one contiguous id range per event; the stream loses,
    /// repeats and swaps events, snapshots come late or fail. Whenever the machine holds a book,
    /// it must be the true book at the machine's update id, and the records published so far must
    /// rebuild it exactly.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func machineNeverHoldsABookItCannotVouchFor(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var truth = OrderBook()
        var truthAt: [Int64: OrderBook] = [0: truth]
        var updateId: Int64 = 0
        var m = machine()
        var consumer = OrderBook()
        var pendingSnapshot: Int?  // steps until the requested snapshot is answered
        var held: BookFrame?  // an event the wire delivers after the next one
        for step in 0..<1_500 {
            // The venue moves: bids 1–49, asks 51–99 never cross.
            var bids: [BookLevel] = []
            var asks: [BookLevel] = []
            for _ in 0..<(1 + random.below(4)) {
                let quantity = random.chance(0.3) ? "0" : String(1 + random.below(9))
                if random.chance(0.5) {
                    bids.append(level(String(1 + random.below(49)), quantity))
                } else {
                    asks.append(level(String(51 + random.below(49)), quantity))
                }
            }
            let first = updateId + 1
            updateId += Int64(1 + random.below(3))
            truth.apply(bids: bids, asks: asks)
            truthAt[updateId] = truth
            let event = BookFrame(
                nativeSymbol: "BNBBTC", kind: .update, bids: bids, asks: asks, time: 1_700_000_000_000 + Int64(step),
                receivedAt: 1, firstSequence: first, sequence: updateId)
            // The wire: loses, repeats or swaps.
            var wire = [event]
            if random.chance(0.02) { wire = [] }
            if random.chance(0.02) { wire.append(event) }
            if let late = held {
                wire.append(late)
                held = nil
            } else if random.chance(0.02) {
                held = event
                wire.removeAll { $0 == event }
            }
            var results: [BookSyncStep] = []
            for frame in wire { results.append(m.receive(frame)) }
            if random.chance(0.003) {
                results.append(m.reset(receivedAt: 1))
                pendingSnapshot = nil  // the reconnect drops the request in flight
            }
            if let wait = pendingSnapshot {
                if wait == 0 {
                    pendingSnapshot = nil
                    if random.chance(0.1) {
                        results.append(m.snapshotFailed(reason: "fuzz", receivedAt: 1))
                    } else {
                        // Sometimes an old snapshot (step 4 must refuse it).
                        let at = random.chance(0.2) ? max(0, updateId - Int64(random.below(20))) : updateId
                        let id = truthAt.keys.filter { $0 <= at }.max() ?? 0
                        let book = truthAt[id] ?? OrderBook()
                        results.append(
                            m.receiveSnapshot(
                                BookFrame(
                                    nativeSymbol: "BNBBTC", kind: .snapshot, bids: book.bids(), asks: book.asks(),
                                    time: 1_700_000_000_000 + Int64(step), receivedAt: 1, sequence: id)))
                    }
                } else {
                    pendingSnapshot = wait - 1
                }
            }
            for result in results {
                if result.action == .fetchSnapshot {
                    #expect(pendingSnapshot == nil, "one request at a time")
                    pendingSnapshot = random.below(5)
                }
                for event in result.events { consumer.apply(event) }
            }
            if let book = m.book {
                let id = try #require(m.sequence.flatMap { Int64($0) })
                #expect(book == truthAt[id], "seed \(seed) step \(step): the book at \(id) is not the venue's")
                #expect(consumer == book, "seed \(seed) step \(step): the records do not rebuild the book")
                #expect(!book.isCrossed)
            }
        }
    }

    @Test func mutatedDepthFramesNeverTrapAndFailWhole() {
        var random = SplitMix64(seed: 42)
        let seeds = [
            Binance.sampleDepthUpdate, Binance.sampleCombinedDepthUpdate, Binance.sampleTradeEvent,
            #"{"e":"depthUpdate","E":1672515782136,"s":"BTCUSDT","U":9223372036854775806,"u":9223372036854775807,"b":[["0.1","0"]],"a":[["99999999999999999999","1"]]}"#,
        ]
        var parser = Binance.makeFrameParser(markets: [bnbbtc])
        var m = machine()
        for round in 0..<20_000 {
            var bytes = Array(random.pick(seeds).utf8)
            random.mutateFrame(&bytes)
            var trades: [Trade] = []
            var books: [BookFrame] = []
            let ok = bytes.withUnsafeBufferPointer { buffer in
                (try? parser.parse(buffer, receivedAt: 1, into: &trades, books: &books)) != nil
            }
            if !ok { #expect(trades.isEmpty && books.isEmpty, "round \(round)") }
            for frame in books { _ = m.receive(frame) }
            if round % 97 == 0 {
                _ = m.receiveSnapshot(
                    BookFrame(
                        nativeSymbol: "BNBBTC", kind: .snapshot, bids: [], asks: [], time: 1, receivedAt: 1,
                        sequence: Int64(random.below(1_000_000))))
            }
            if let book = m.book { #expect(!book.isCrossed) }
        }
        var rest = SplitMix64(seed: 7)
        for _ in 0..<5_000 {
            var bytes = Array(Binance.sampleRESTDepth.utf8)
            rest.mutateFrame(&bytes)
            _ = try? BinanceREST.parseDepth(bytes, market: bnbbtc, receivedAt: 1)
        }
    }
}

@Suite struct BookKeeperLimitTests {
    /// A venue that keeps adding levels gets its book thrown away, not memory without end.
    @Test func anOversizedBookIsThrownAwayAndResynchronized() throws {
        let market = ListedMarket(nativeSymbol: "BNBBTC", symbol: Symbol(normalizing: "BNB-BTC"), isTrading: true)
        var keeper = BookKeeper(exchange: Exchange("binance"), market: market)
        let limit = BookKeeper.maximumLevelsPerSide
        let bids = try (1...limit).map { try BookLevel(price: String($0), quantity: "1") }
        let ask = try BookLevel(price: String(limit + 10), quantity: "1")
        var step = keeper.snapshot(
            BookFrame(nativeSymbol: "BNBBTC", kind: .snapshot, bids: bids, asks: [ask], time: 1, receivedAt: 1_000), sequence: "1")
        #expect(step.resyncReason == nil, "exactly the limit is a book")
        #expect(keeper.book?.depth.bids == limit)
        step = keeper.update(
            BookFrame(
                nativeSymbol: "BNBBTC", kind: .update, bids: [try BookLevel(price: "0.5", quantity: "1")], asks: [], time: 2,
                receivedAt: 2_000), sequence: "2")
        #expect(step.resyncReason == .invalid)
        #expect(step.events.isEmpty, "nothing published for the oversized book")
        #expect(keeper.book == nil)
        step = keeper.snapshot(
            BookFrame(nativeSymbol: "BNBBTC", kind: .snapshot, bids: bids + [try BookLevel(price: "0.25", quantity: "1")], asks: [ask], time: 3, receivedAt: 3_000),
            sequence: "3")
        #expect(step.resyncReason == .invalid, "an oversized snapshot is refused too")
        #expect(keeper.book == nil)
    }
}
