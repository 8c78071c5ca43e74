import Foundation
import KafkaClient
import MarketData
import Processing
import TapeTestSupport
import Testing

/// `tape process` against `tape broker` with a gap ledger: candles whose window overlaps an
/// unrepaired gap in `tape.gaps` carry `"complete":false`, others `true`; when the gap's repaired
/// record arrives the affected candles go out again, `complete` and with a newer revision.
@Suite("tape process: candles overlapping a gap are incomplete", .serialized)
struct GapCompletenessIntegrationTests {
    @Test(.timeLimit(.minutes(3)))
    func candlesFollowTheGapLedger() async throws {
        let dir = try temporaryDirectory("gapflag")
        let cluster = try await TestCluster.start(
            .tapeBroker, topics: ["tape.trades": 1, "tape.candles": 1, "tape.gaps": 1], compacted: ["tape.candles"], logDirectory: dir)
        let bootstrap = cluster.bootstrap
        let t0: Int64 = 1_661_123_520_000  // a minute boundary
        let symbol = Symbol(normalizing: "GAP_USDT")
        var trades: [Trade] = []
        for i in 0..<120 {
            let time: Int64 = t0 + Int64(i) * 1_000
            let price = try ExactDecimal(String(100 + i % 7) + ".5")
            let side: Side = i % 2 == 0 ? .buy : .sell
            trades.append(
                Trade(
                    exchange: .poloniex, symbol: symbol, nativeSymbol: "GAP_USDT", tradeId: String(1_000 + i), price: price,
                    quantity: try ExactDecimal("0.25"), side: side, time: time, receivedAt: time * 1_000))
        }
        let gap = Gap(
            exchange: .poloniex, symbol: symbol, channel: .trades, from: t0 + 30_000, to: t0 + 40_000,
            reason: "the stream skipped trade ids 2000…2009", repaired: false, missing: 10)
        try await Kafka.produce([], extra: [(gap.kafkaKey, gap.jsonString)], topic: "tape.gaps", bootstrap: bootstrap)
        try await Kafka.produce(trades, topic: "tape.trades", bootstrap: bootstrap)

        let process = try ChildProcess(
            [
                "process", "--brokers", bootstrap, "--intervals", "1m,1h", "--emit-interval", "200ms", "--no-db", "--progress", "0",
                "--log-level", "info", "--allowed-lateness", "10m",
            ], name: "process", logDirectory: dir)
        defer { _ = process.terminate() }

        /// The latest candle per (interval, start), once the topic has them.
        func latest(until done: ([String: Candle]) -> Bool) async throws -> [String: Candle] {
            var byKey: [String: Candle] = [:]
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                byKey = [:]
                for record in try await Kafka.readAll(topic: "tape.candles", partitions: 1, bootstrap: bootstrap) {
                    guard let candle = try? Candle(json: record.value ?? []) else { continue }
                    byKey["\(candle.interval):\(candle.start)"] = candle
                }
                if done(byKey) { return byKey }
                try await Task.sleep(for: .milliseconds(300))
            }
            return byKey
        }
        let first = "1m:\(t0)"
        let second = "1m:\(t0 + 60_000)"
        let hour = "1h:\(CandleInterval.oneHour.windowStart(containing: t0))"
        // The minute and the hour are re-emitted in one batch, which may reach the topic in parts.
        let open = try await latest {
            $0[first]?.trades == 60 && $0[second]?.trades == 60 && $0[first]?.complete == false && $0[hour]?.complete == false
        }
        #expect(open[first]?.complete == false, "the minute holding the gap: \(open[first]?.jsonString ?? "none"); log \(process.stderr.suffix(1_500))")
        #expect(open[hour]?.complete == false, "the hour holding the gap")
        #expect(open[second]?.complete == true, "the next minute has no gap")

        var repaired = gap
        repaired.repaired = true
        try await Kafka.produce([], extra: [(repaired.kafkaKey, repaired.jsonString)], topic: "tape.gaps", bootstrap: bootstrap)
        let closed = try await latest { $0[first]?.complete == true && $0[hour]?.complete == true }
        #expect(closed[first]?.complete == true, "repaired: \(closed[first]?.jsonString ?? "none")")
        #expect(closed[hour]?.complete == true)
        #expect((closed[first]?.revision ?? 0) >= (open[first]?.revision ?? 0))
        #expect(closed[first]?.trades == 60, "re-emitting changes nothing else")

        let (checked, problems) = try await Contract.mismatches(
            trades: "tape.trades", tradePartitions: 1, candles: "tape.candles", candlePartitions: 1,
            intervals: [.oneMinute, .oneHour], bootstrap: bootstrap)
        #expect(checked >= 3)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(process.terminate() == 0)
    }
}
