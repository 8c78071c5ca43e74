import ExchangeSimulator
import MarketData
import Testing

@Suite struct SimulatedBookTests {
    /// Applying every order's book changes to the first book reproduces the market's book after
    /// each order, the book is never crossed, and it keeps a realistic depth.
    @Test(arguments: [1, 7, 42] as [UInt64]) func changesRebuildTheBookAndItNeverCrosses(seed: UInt64) throws {
        var config = MarketSimulator.Configuration()
        config.seed = seed
        var market = MarketSimulator(configuration: config)
        var rebuilt: [String: OrderBook] = [:]
        var ids: [String: Int64] = [:]
        for symbol in market.nativeSymbols {
            rebuilt[symbol] = try #require(market.book(nativeSymbol: symbol))
            ids[symbol] = market.bookUpdateId(nativeSymbol: symbol)
        }
        var changed = 0
        for _ in 0..<3_000 {
            let order = market.nextOrder()
            var book = try #require(rebuilt[order.nativeSymbol])
            for change in order.bookChanges { book.apply(change.level, side: change.side) }
            rebuilt[order.nativeSymbol] = book
            #expect(!book.isCrossed)
            if !order.bookChanges.isEmpty {
                changed += 1
                #expect(order.bookUpdateId == ids[order.nativeSymbol, default: 0] + 1)
                ids[order.nativeSymbol] = order.bookUpdateId
            }
            #expect(order.bookUpdateId == market.bookUpdateId(nativeSymbol: order.nativeSymbol))
        }
        #expect(changed > 2_000)
        for symbol in market.nativeSymbols {
            let expected = try #require(market.book(nativeSymbol: symbol))
            #expect(rebuilt[symbol] == expected, "\(symbol)")
            #expect(expected.depth.bids >= 5 && expected.depth.asks >= 5, "\(symbol): \(expected.depth)")
            #expect(!expected.isCrossed)
        }
    }

    /// Books have their own randomness: the trades are the same with and without them.
    @Test func booksDoNotChangeTheTrades() {
        var withBooks = MarketSimulator()
        var config = MarketSimulator.Configuration()
        config.bookDepth = 0
        var without = MarketSimulator(configuration: config)
        for _ in 0..<500 {
            let a = withBooks.nextOrder()
            let b = without.nextOrder()
            #expect(a.trades == b.trades)
            #expect(b.bookChanges.isEmpty)
        }
        #expect(without.book(nativeSymbol: "BTC_USDT") == nil)
    }
}
