import Exchanges
import Foundation
import MarketData
import TapeTestSupport
import Testing

/// Poloniex `book_lv2`: frames field by field (documented shape and the real 2022-08-21 capture),
/// the capture's books rebuilt end to end, the synchronizer's rules, and a seeded fuzz.
@Suite struct PoloniexBookTests {
    static let btc = ListedMarket(nativeSymbol: "BTC_USDT")

    static func level(_ price: String, _ quantity: String) -> BookLevel {
        do { return try BookLevel(price: price, quantity: quantity) } catch {
            Issue.record("bad level \(price) \(quantity)")
            return try! BookLevel(price: "1", quantity: "0")
        }
    }

    static func parseBooks(_ frame: String, receivedAt: Int64 = 7) throws(FrameParseError) -> (ExchangeMessage, [BookFrame]) {
        var parser = PoloniexFrameParser()
        var trades: [Trade] = []
        var books: [BookFrame] = []
        let message = try parser.parse(frame, receivedAt: receivedAt, into: &trades, books: &books)
        #expect(trades.isEmpty)
        return (message, books)
    }

    // MARK: Frames

    @Test func sampleUpdateFieldByField() throws {
        let (message, books) = try Self.parseBooks(Poloniex.sampleBookUpdateFrame, receivedAt: 1_661_123_517_945_039)
        #expect(message == .books(count: 1))
        let frame = try #require(books.first)
        #expect(frame.nativeSymbol == "BTC_USDT")
        #expect(frame.kind == .update)
        #expect(frame.asks == [Self.level("21617.15", "0.34")])
        #expect(frame.asks.first?.price == "21617.15")
        #expect(frame.asks.first?.quantity == "0.34")
        #expect(frame.bids.isEmpty)
        #expect(frame.previousSequence == 4_485_675)
        #expect(frame.sequence == 4_485_676)
        #expect(frame.firstSequence == nil)
        #expect(frame.checksum == nil)
        #expect(frame.time == 1_661_123_517_837)  // ts, not createTime
        #expect(frame.receivedAt == 1_661_123_517_945_039)
    }

    @Test func sampleSnapshotFieldByField() throws {
        let (message, books) = try Self.parseBooks(Poloniex.sampleBookSnapshotFrame)
        #expect(message == .books(count: 1))
        let frame = try #require(books.first)
        #expect(frame.kind == .snapshot)
        #expect(frame.nativeSymbol == "BTC_USDT")
        #expect(frame.asks.map(\.price) == ["21612.27", "21614.62", "21614.71"])
        #expect(frame.asks.map(\.quantity) == ["0.34", "0.01", "0.68"])
        #expect(frame.bids.map(\.price) == ["21612.26", "21610.79", "21609.5"])
        #expect(frame.bids.map(\.quantity) == ["0.001", "0.34", "0.018"])
        #expect(frame.previousSequence == 4_485_674)
        #expect(frame.sequence == 4_485_675)
        #expect(frame.time == 1_661_123_517_810)
    }

    @Test func anyMemberOrderParsesTheSame() throws {
        let reordered =
            #"{"action":"update","data":[{"ts":1661123517837,"id":4485676,"lastId":4485675,"bids":[],"asks":[["21617.15","0.34"]],"createTime":1661123517832,"symbol":"BTC_USDT"}],"channel":"book_lv2"}"#
        let (message, books) = try Self.parseBooks(reordered)
        let (_, expected) = try Self.parseBooks(Poloniex.sampleBookUpdateFrame)
        #expect(message == .books(count: 1))
        #expect(books == expected)
        // The general path alone (no fast path) agrees too.
        var slow = PoloniexFrameParser(fastPath: false)
        var trades: [Trade] = []
        var slowBooks: [BookFrame] = []
        _ = try slow.parse(Poloniex.sampleBookUpdateFrame, receivedAt: 7, into: &trades, books: &slowBooks)
        #expect(slowBooks == expected)
    }

    @Test func tradesOnlyParseIgnoresBooksAndBooksParseKeepsTrades() throws {
        var parser = PoloniexFrameParser()
        var trades: [Trade] = []
        #expect(try parser.parse(Poloniex.sampleBookUpdateFrame, receivedAt: 7, into: &trades) == .ignored(channel: "book_lv2"))
        var books: [BookFrame] = []
        #expect(try parser.parse(Poloniex.sampleTradesFrame, receivedAt: 7, into: &trades, books: &books) == .trades(count: 1))
        #expect(trades.count == 1)
        #expect(books.isEmpty)
        #expect(
            try parser.parse(#"{"event":"subscribe","channel":"book_lv2","symbols":["BTC_USDT"]}"#, receivedAt: 7, into: &trades, books: &books)
                == .subscribed(channel: "book_lv2", symbols: ["BTC_USDT"]))
    }

    @Test func badFramesAppendNothing() {
        let bad = [
            // a level with a sign, an exponent, no quantity
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[["-1","0.34"]],"bids":[],"lastId":1,"id":2,"ts":1661123517837}],"action":"update"}"#,
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[["1e3","0.34"]],"bids":[],"lastId":1,"id":2,"ts":1661123517837}],"action":"update"}"#,
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[["1"]],"bids":[],"lastId":1,"id":2,"ts":1661123517837}],"action":"update"}"#,
            // the second message is bad: the first must not stay appended
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[],"bids":[],"lastId":1,"id":2,"ts":1661123517837},{"symbol":"ETH_USDT","asks":[],"bids":[],"lastId":1,"ts":1661123517837}],"action":"update"}"#,
            // update without lastId, unknown action, no action, time out of range
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[],"bids":[],"id":2,"ts":1661123517837}],"action":"update"}"#,
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[],"bids":[],"lastId":1,"id":2,"ts":1661123517837}],"action":"delta"}"#,
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[],"bids":[],"lastId":1,"id":2,"ts":1661123517837}]}"#,
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[],"bids":[],"lastId":1,"id":2,"ts":-5}],"action":"update"}"#,
            #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","asks":[],"bids":[],"lastId":1,"id":2,"ts":1661123517837}],"action":"update""#,
        ]
        for frame in bad {
            var parser = PoloniexFrameParser()
            var trades: [Trade] = []
            var books: [BookFrame] = [BookFrame(nativeSymbol: "X", kind: .update, bids: [], asks: [], time: 1, receivedAt: 1)]
            do {
                let message = try parser.parse(frame, receivedAt: 7, into: &trades, books: &books)
                Issue.record("parsed as \(message): \(frame)")
            } catch {
                #expect(error.code == .invalidBook || error.code == .malformedJSON, "\(error)")
            }
            #expect(books.count == 1)
            #expect(trades.isEmpty)
        }
    }

    // MARK: The real capture

    /// Every book frame of the capture parses; each market's books chain without a break, are
    /// never crossed, and a consumer applying the records holds the synchronizer's book.
    @Test func captureBooksChainAndAreNeverCrossed() throws {
        let lines = try FixtureFiles.lines("ws-capture-2022-08-21.txt")
        var parser = PoloniexFrameParser()
        var synchronizers: [String: PoloniexBookSynchronizer] = [:]
        var consumers: [String: OrderBook] = [:]
        var snapshots = 0
        var updates = 0
        var events = 0
        for line in lines {
            guard case .received(let receivedAt, let text)? = CaptureLine(line) else { continue }
            var trades: [Trade] = []
            var books: [BookFrame] = []
            _ = try parser.parse(text, receivedAt: receivedAt, into: &trades, books: &books)
            for frame in books {
                if frame.kind == .snapshot { snapshots += 1 } else { updates += 1 }
                var sync =
                    synchronizers[frame.nativeSymbol]
                    ?? PoloniexBookSynchronizer(exchange: .poloniex, market: ListedMarket(nativeSymbol: frame.nativeSymbol))
                let step = sync.receive(frame)
                #expect(step.resyncReason == nil, "\(frame.nativeSymbol) id \(frame.sequence ?? -1)")
                #expect(step.action == .none)
                #expect(step.gaps.isEmpty)
                let book = try #require(sync.book)
                #expect(!book.isCrossed)
                #expect(sync.sequence == frame.sequence.map(String.init))
                for event in step.events {
                    events += 1
                    consumers[frame.nativeSymbol, default: OrderBook()].apply(event)
                    #expect(event.sequence == frame.sequence.map(String.init))
                }
                #expect(consumers[frame.nativeSymbol] == book)
                synchronizers[frame.nativeSymbol] = sync
            }
        }
        #expect(snapshots == 11)
        #expect(updates == 283)
        #expect(events == 294)
        #expect(synchronizers.count == 11)
        for (symbol, sync) in synchronizers {
            let depth = try #require(sync.book?.depth)
            #expect(depth.asks == 20, "\(symbol)")
            #expect(depth.bids == (symbol == "DYP_USDT" ? 11 : 20), "\(symbol)")
        }
        // BTC_USDT's final top of book, replayed independently from the capture (a script over the file).
        let btc = try #require(synchronizers["BTC_USDT"]?.book)
        #expect(btc.asks(top: 3) == [Self.level("21602.02", "0.68"), Self.level("21605.76", "0.34"), Self.level("21614.45", "0.001027")])
        #expect(btc.bids(top: 3) == [Self.level("21599.85", "0.68"), Self.level("21589.96", "0.34"), Self.level("21587.11", "0.933041")])
        #expect(btc.quantity(at: try BookPrice("21657.91"), side: .ask) == nil)
    }

    @Test func captureLinesFieldByField() throws {
        let lines = try FixtureFiles.lines("ws-capture-2022-08-21.txt")
        func frames(line: Int) throws -> [BookFrame] {
            guard case .received(let receivedAt, let text)? = CaptureLine(lines[line - 1]) else {
                Issue.record("line \(line)")
                return []
            }
            var parser = PoloniexFrameParser()
            var trades: [Trade] = []
            var books: [BookFrame] = []
            _ = try parser.parse(text, receivedAt: receivedAt, into: &trades, books: &books)
            return books
        }
        let snapshot = try #require(try frames(line: 14).first)
        #expect(snapshot.kind == .snapshot)
        #expect(snapshot.nativeSymbol == "BTC_USDT")
        #expect(snapshot.previousSequence == 4_485_674)
        #expect(snapshot.sequence == 4_485_675)
        #expect(snapshot.asks.count == 20)
        #expect(snapshot.bids.count == 20)
        #expect(snapshot.asks.first == Self.level("21612.27", "0.34"))
        #expect(snapshot.asks[1] == Self.level("21614.62", "0.01"))
        #expect(snapshot.receivedAt == 1_661_123_517_944_536)
        let removal = try #require(try frames(line: 21).first)
        #expect(removal.nativeSymbol == "SOL_USDT")
        #expect(removal.asks == [Self.level("36.842", "353.838425"), Self.level("47", "0")])
        #expect(removal.asks[1].isEmpty)
        #expect(removal.previousSequence == 1_838_395)
        #expect(removal.sequence == 1_838_396)
        #expect(removal.time == 1_661_123_517_876)
        let mdt = try #require(try frames(line: 10).first)
        #expect(mdt.nativeSymbol == "MDT_BTC")
        #expect(mdt.asks.first == Self.level("0.000001368", "64"))
    }

    // MARK: The state machine

    static func snapshot(id: Int64, time: Int64 = 1_000) -> BookFrame {
        BookFrame(
            nativeSymbol: "BTC_USDT", kind: .snapshot, bids: [level("100", "1"), level("99", "2")],
            asks: [level("101", "1"), level("102", "3")], time: time, receivedAt: time * 1000, sequence: id,
            previousSequence: id - 1)
    }

    static func update(last: Int64, id: Int64, bids: [BookLevel] = [], asks: [BookLevel] = [], time: Int64 = 2_000) -> BookFrame {
        BookFrame(
            nativeSymbol: "BTC_USDT", kind: .update, bids: bids, asks: asks, time: time, receivedAt: time * 1000,
            sequence: id, previousSequence: last)
    }

    @Test func inOrderUpdatesApply() throws {
        var sync = PoloniexBookSynchronizer(exchange: .poloniex, market: Self.btc)
        // Updates before the first snapshot are dropped without a record.
        #expect(sync.receive(Self.update(last: 8, id: 9, bids: [Self.level("100", "5")])) == .nothing)
        let first = sync.receive(Self.snapshot(id: 10))
        #expect(first.events.map(\.kind) == [.snapshot])
        #expect(first.events.first?.sequence == "10")
        #expect(first.gaps.isEmpty)
        let second = sync.receive(Self.update(last: 10, id: 11, bids: [Self.level("100", "0"), Self.level("99.5", "4")]))
        #expect(second.events.count == 1)
        #expect(second.events.first?.kind == .update)
        #expect(second.events.first?.sequence == "11")
        #expect(second.events.first?.bids == [Self.level("100", "0"), Self.level("99.5", "4")])
        #expect(sync.book?.bestBid == Self.level("99.5", "4"))
        #expect(sync.sequence == "11")
        #expect(sync.lastId == 11)
    }

    @Test func skippedUpdateResyncsThenSnapshotBringsAGap() throws {
        var sync = PoloniexBookSynchronizer(exchange: .poloniex, market: Self.btc)
        _ = sync.receive(Self.snapshot(id: 10, time: 1_000))
        _ = sync.receive(Self.update(last: 10, id: 11, asks: [Self.level("101", "2")], time: 1_500))
        let skipped = sync.receive(Self.update(last: 12, id: 13, asks: [Self.level("101", "3")], time: 2_000))
        #expect(skipped.events.isEmpty)
        #expect(skipped.resyncReason == .sequenceBreak)
        guard case .resubscribe = skipped.action else {
            Issue.record("expected resubscribe, got \(skipped.action)")
            return
        }
        #expect(sync.book == nil)
        // Whatever comes before the fresh snapshot publishes nothing, chained or not.
        #expect(sync.receive(Self.update(last: 13, id: 14, asks: [Self.level("101", "9")], time: 2_100)) == .nothing)
        #expect(sync.receive(Self.update(last: 11, id: 12, time: 2_200)) == .nothing)
        let fresh = sync.receive(Self.snapshot(id: 20, time: 3_000))
        #expect(fresh.events.map(\.kind) == [.snapshot])
        #expect(fresh.gaps.count == 1)
        let gap = try #require(fresh.gaps.first)
        #expect(gap.channel == .book)
        #expect(gap.from == 1_500)
        #expect(gap.to == 3_000)
        #expect(gap.symbol == Self.btc.symbol)
        #expect(!gap.repaired)
        #expect(fresh.resyncReason == nil)
        #expect(sync.receive(Self.update(last: 20, id: 21, time: 3_100)).resyncReason == nil)
    }

    @Test func duplicateAndStaleUpdatesResync() {
        for (last, id) in [(Int64(10), Int64(11)), (9, 10), (11, 11), (5, 6)] {
            var sync = PoloniexBookSynchronizer(exchange: .poloniex, market: Self.btc)
            _ = sync.receive(Self.snapshot(id: 10))
            _ = sync.receive(Self.update(last: 10, id: 11))
            let step = sync.receive(Self.update(last: last, id: id, bids: [Self.level("100", "7")]))
            #expect(step.events.isEmpty, "\(last)→\(id)")
            #expect(step.resyncReason == (id > last ? .sequenceBreak : .invalid), "\(last)→\(id)")
            #expect(sync.book == nil)
        }
    }

    @Test func resetGivesAGapAtTheNextSnapshot() throws {
        var sync = PoloniexBookSynchronizer(exchange: .poloniex, market: Self.btc)
        // A reset before any book is not a resync.
        #expect(sync.reset(receivedAt: 500_000).resyncReason == nil)
        _ = sync.receive(Self.snapshot(id: 10, time: 1_000))
        let reset = sync.reset(receivedAt: 5_000_000)
        #expect(reset.resyncReason == .reconnect)
        #expect(reset.events.isEmpty)
        #expect(sync.book == nil)
        #expect(sync.receive(Self.update(last: 10, id: 11)) == .nothing)
        let fresh = sync.receive(Self.snapshot(id: 30, time: 6_000))
        #expect(fresh.gaps.map(\.from) == [1_000])
        #expect(fresh.gaps.map(\.to) == [6_000])
        #expect(fresh.events.map(\.kind) == [.snapshot])
    }

    @Test func crossedBooksResync() throws {
        var sync = PoloniexBookSynchronizer(exchange: .poloniex, market: Self.btc)
        _ = sync.receive(Self.snapshot(id: 10))
        let crossed = sync.receive(Self.update(last: 10, id: 11, bids: [Self.level("101.5", "1")]))
        #expect(crossed.events.isEmpty)
        #expect(crossed.resyncReason == .crossed)
        guard case .resubscribe = crossed.action else {
            Issue.record("expected resubscribe, got \(crossed.action)")
            return
        }
        #expect(sync.book == nil)
        // A crossed snapshot is refused as well.
        var bad = Self.snapshot(id: 40)
        bad.bids.append(Self.level("103", "1"))
        let refused = sync.receive(bad)
        #expect(refused.events.isEmpty)
        #expect(refused.resyncReason == .crossed)
        #expect(sync.book == nil)
        #expect(sync.receive(Self.snapshot(id: 50)).events.count == 1)
    }

    @Test func adapterMessages() {
        #expect(Poloniex.supportsBooks)
        #expect(
            Poloniex.bookSubscribeMessages(nativeSymbols: ["BTC_USDT", "ETH_USDT"])
                == [#"{"event":"subscribe","channel":["book_lv2"],"symbols":["BTC_USDT","ETH_USDT"]}"#])
        #expect(
            Poloniex.bookResubscribeMessages(nativeSymbol: "BTC_USDT") == [
                #"{"event":"unsubscribe","channel":["book_lv2"],"symbols":["BTC_USDT"]}"#,
                #"{"event":"subscribe","channel":["book_lv2"],"symbols":["BTC_USDT"]}"#,
            ])
        #expect(Poloniex.bookSnapshotPath(market: Self.btc) == nil)
    }

    // MARK: Fuzz

    /// Capture frames, mutated bytes and random id chains through parser and synchronizer: no
    /// trap, and no update record is ever published unless it chains onto what was published.
    @Test func fuzzNeverPublishesAnUnvouchedUpdate() throws {
        let lines = try FixtureFiles.lines("ws-capture-2022-08-21.txt")
        let texts: [String] = lines.compactMap {
            guard case .received(_, let text)? = CaptureLine($0), text.contains("book_lv2") else { return nil }
            return text
        }
        var r = SplitMix64(seed: 2_022_0821)
        var parser = PoloniexFrameParser()
        var synchronizers: [String: PoloniexBookSynchronizer] = [:]
        var published: [String: (book: OrderBook?, id: String?)] = [:]
        var parsed = 0
        var resyncs = 0
        for round in 0..<6_000 {
            var bytes = Array(texts[r.below(texts.count)].utf8)
            switch r.below(6) {
            case 0:  // flip a byte
                if !bytes.isEmpty { bytes[r.below(bytes.count)] = UInt8(truncatingIfNeeded: r.next()) }
            case 1:  // truncate
                bytes = Array(bytes.prefix(r.below(bytes.count + 1)))
            case 2:  // rewrite the ids
                var text = String(decoding: bytes, as: UTF8.self)
                let last = Int64(r.below(20))
                text = text.replacingFirst(of: #""lastId":"#, with: #""lastId":\#(last),"x":"#)
                text = text.replacingFirst(of: #""id":"#, with: #""id":\#(last + Int64(r.below(3))),"y":"#)
                bytes = Array(text.utf8)
            default: break
            }
            var trades: [Trade] = []
            var books: [BookFrame] = []
            let countBefore = books.count
            do {
                _ = try bytes.withUnsafeBufferPointer { buffer throws(FrameParseError) in
                    try parser.parse(buffer, receivedAt: Int64(round), into: &trades, books: &books)
                }
            } catch {
                #expect(books.count == countBefore)
                continue
            }
            parsed += 1
            for frame in books {
                var sync =
                    synchronizers[frame.nativeSymbol]
                    ?? PoloniexBookSynchronizer(exchange: .poloniex, market: ListedMarket(nativeSymbol: frame.nativeSymbol))
                let sequenceBefore = sync.book == nil ? nil : sync.sequence
                let step = r.below(200) == 0 ? sync.reset(receivedAt: Int64(round)) : sync.receive(frame)
                if step.resyncReason != nil { resyncs += 1 }
                var view = published[frame.nativeSymbol] ?? (nil, nil)
                for event in step.events {
                    switch event.kind {
                    case .snapshot:
                        view.book = OrderBook(bids: event.bids, asks: event.asks)
                    case .update:
                        // An update is only ever published on top of a published book, chaining on its id.
                        #expect(view.book != nil)
                        #expect(sequenceBefore != nil)
                        #expect(frame.previousSequence.map(String.init) == sequenceBefore)
                        view.book?.apply(event)
                    }
                    view.id = event.sequence
                }
                if sync.book == nil { view = (nil, nil) }
                #expect(view.book == sync.book)
                #expect(sync.book?.isCrossed != true)
                published[frame.nativeSymbol] = view
                synchronizers[frame.nativeSymbol] = sync
            }
        }
        #expect(parsed > 1_000)
        #expect(resyncs > 10)
    }
}

extension String {
    /// This string with the first occurrence of `target` replaced (tests).
    func replacingFirst(of target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
