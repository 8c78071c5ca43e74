import Foundation
import KafkaClient
import MarketData
import Processing
import TapeTestSupport
import Testing

/// `tape process` against `tape broker`, with poison in tape.trades: a trade whose time is
/// Int64.max − 5 (the old processor trapped on it, and crash-looped on every restart since the
/// record stays in the topic), a window of 38-digit quantities that one more trade at scale 38
/// would overflow (a precondition failure before), and a value that is not a trade. The processor
/// must stay up, the other trades' candles must be right, and each poison record must be on
/// tape.deadletter with its reason and source.
@Suite("tape process: poison records go to the dead-letter topic", .serialized)
struct DeadLetterIntegrationTests {
    @Test(.timeLimit(.minutes(3)))
    func poisonIsDeadLetteredAndProcessingGoesOn() async throws {
        let dir = try temporaryDirectory("deadletter")
        // tape.deadletter is not created here: the processor creates it (the broker does not auto-create).
        let cluster = try await TestCluster.start(.tapeBroker, topics: ["tape.trades": 1, "tape.candles": 1], compacted: ["tape.candles"], logDirectory: dir)
        let bootstrap = cluster.bootstrap
        let t0: Int64 = 1_661_123_520_000

        func trade(_ id: String, _ symbol: String, price: String, quantity: String, at time: Int64) throws -> Trade {
            Trade(
                exchange: .poloniex, symbol: Symbol(normalizing: symbol), nativeSymbol: symbol, tradeId: id,
                price: try ExactDecimal(price), quantity: try ExactDecimal(quantity), side: .buy, time: time, receivedAt: time * 1000)
        }
        let huge = String(repeating: "9", count: 38)
        let tiny = "0." + String(repeating: "0", count: 37) + "1"
        var options = TradeGenerator.Options()
        options.instruments = [("poloniex", "NORMAL_USDT")]
        options.startTime = t0
        var generator = TradeGenerator(seed: 77, options: options)
        let normal = generator.trades(300)
        let big = try (0..<12).map { try trade("b\($0)", "BIG_USDT", price: "1", quantity: huge, at: t0 + Int64($0)) }
        var poisonTime = try trade("poison-time", "NORMAL_USDT", price: "1", quantity: "1", at: t0)
        poisonTime.time = Int64.max - 5
        let overflow = try trade("poison-overflow", "BIG_USDT", price: "1", quantity: tiny, at: t0 + 30)
        // Record order in the single partition: normal trades, the big window, then the poison,
        // then more normal trades (processing must go on after them).
        try await Kafka.produce(Array(normal[..<150]) + big, topic: "tape.trades", bootstrap: bootstrap)
        // Raw values (no record timestamp from the trade: Int64.max − 5 is no valid record time).
        try await Kafka.produce(
            [],
            extra: [
                (poisonTime.kafkaKey, poisonTime.jsonString), (overflow.kafkaKey, overflow.jsonString),
                ("poloniex:NORMAL-USDT", "not a trade"),
            ], topic: "tape.trades", bootstrap: bootstrap)
        try await Kafka.produce(Array(normal[150...]), topic: "tape.trades", bootstrap: bootstrap)
        let poisonOffsets: [Int64] = [150 + 12, 150 + 13, 150 + 14]

        let process = try ChildProcess(
            ["process", "--brokers", bootstrap, "--intervals", "1m,1h", "--emit-interval", "300ms", "--no-db", "--progress", "0", "--log-level", "info"],
            name: "process", logDirectory: dir)
        let caughtUp = try await Kafka.waitUntilCommitted(group: "tape-processor", topic: "tape.trades", partitions: 1, bootstrap: bootstrap, timeout: 90)
        #expect(caughtUp, "the processor did not get through the poison; log: \(process.stderr.suffix(2_000))")
        try await Task.sleep(for: .seconds(1))
        #expect(process.isRunning, "the processor died: \(process.stderr.suffix(2_000))")
        #expect(!process.stderr.contains("Fatal error"))

        // The candles are the batch result over the accepted trades (BatchCandles rejects the same two).
        let intervals = [CandleInterval.oneMinute, .oneHour]
        let (checked, problems) = try await Contract.mismatches(
            trades: "tape.trades", tradePartitions: 1, candles: "tape.candles", candlePartitions: 1, intervals: intervals, bootstrap: bootstrap)
        #expect(checked >= 4)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        let candles = try await Kafka.readAll(topic: "tape.candles", partitions: 1, bootstrap: bootstrap).compactMap { try? Candle(json: $0.value ?? []) }
        let bigMinute = candles.last { $0.symbol.rawValue == "BIG-USDT" && $0.interval == .oneMinute }
        #expect(bigMinute?.trades == 12)
        #expect(bigMinute?.volume == (try ExactDecimal(huge)) * (try ExactDecimal("12")))

        // Each poison record is on the dead-letter topic, with why and where it came from.
        var letters: [KafkaMessage] = []
        let deadline = Date().addingTimeInterval(30)
        while letters.count < 3 && Date() < deadline {
            letters = (try? await Kafka.readAll(topic: "tape.deadletter", partitions: 1, bootstrap: bootstrap)) ?? []
            if letters.count < 3 { try await Task.sleep(for: .milliseconds(500)) }
        }
        func header(_ m: KafkaMessage, _ key: String) -> String? {
            m.headers.first { $0.key == key }?.value.map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(letters.count == 3, "dead letters: \(letters.map { header($0, "error") ?? "" })")
        let byOffset = Dictionary(letters.compactMap { m in header(m, "source.offset").flatMap(Int64.init).map { ($0, m) } }, uniquingKeysWith: { a, _ in a })
        let expected: [(offset: Int64, code: String, value: String, reason: String)] = [
            (poisonOffsets[0], "time-out-of-range", poisonTime.jsonString, "9223372036854775802"),
            (poisonOffsets[1], "overflow", overflow.jsonString, "256 bits"),
            (poisonOffsets[2], "not-a-trade", "not a trade", "not a trade"),
        ]
        for e in expected {
            guard let m = byOffset[e.offset] else {
                Issue.record("no dead letter for offset \(e.offset)")
                continue
            }
            #expect(header(m, "error.code") == e.code)
            let reason = header(m, "error") ?? ""
            #expect(e.code == "not-a-trade" ? !reason.isEmpty : reason.contains(e.reason), "\(e.code): \(reason)")
            #expect(header(m, "source.topic") == "tape.trades")
            #expect(header(m, "source.partition") == "0")
            #expect(header(m, "type") == "rejected-record")
            #expect(m.value.map { String(decoding: $0, as: UTF8.self) } == e.value)
            #expect(m.key.map { String(decoding: $0, as: UTF8.self) } == "tape.trades:0:\(e.offset)")
        }

        // Counted, and said on the way out.
        #expect(process.terminate() == 0)
        #expect(
            process.stderr.contains("1 not trades, 1 times out of range, 1 overflows; 3 records to tape.deadletter (0 failed)"),
            "\(process.stderr.suffix(1_000))")
    }
}
