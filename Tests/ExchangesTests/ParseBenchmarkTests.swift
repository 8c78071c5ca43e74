import Exchanges
import MarketData
import Testing

@Suite struct ParseBenchmarkTests {
    @Test func syntheticFramesAreValidAndConsistent() throws {
        let frames = ParseBenchmark.syntheticPoloniexFrames(frames: 200, tradesPerFrame: 10, seed: 1)
        #expect(frames.count == 200)
        #expect(frames == ParseBenchmark.syntheticPoloniexFrames(frames: 200, tradesPerFrame: 10, seed: 1))
        #expect(frames != ParseBenchmark.syntheticPoloniexFrames(frames: 200, tradesPerFrame: 10, seed: 2))
        var parser = PoloniexFrameParser()
        var trades: [Trade] = []
        for frame in frames {
            #expect(try parser.parse(frame, receivedAt: 0, into: &trades) == .trades(count: 10))
        }
        #expect(trades.count == 2_000)
        #expect(parser.amountMismatches == 0)
        #expect(Set(trades.map(\.tradeId)).count == 2_000)
    }

    @Test func runCountsTradesAndErrors() throws {
        var lines = ParseBenchmark.syntheticPoloniexFrames(frames: 10, tradesPerFrame: 5)
        lines.append("garbage")
        let result = try ParseBenchmark.run(lines: lines, minimumSeconds: 0)
        #expect(result.frames == 11)
        #expect(result.trades == 50)
        #expect(result.errors == 1)
        #expect(result.tradesPerSecond > 0)
        #expect(throws: ParseBenchmark.Unsupported.self) {
            try ParseBenchmark.run(lines: lines, exchange: Exchange("nowhere"), minimumSeconds: 0)
        }
    }

    @Test func linesSplitAFramesFile() {
        let file = Array("a\r\n\nbc\nd".utf8)
        #expect(ParseBenchmark.lines(fromFileContents: file).map { String(decoding: $0, as: UTF8.self) } == ["a", "bc", "d"])
    }
}
