import Foundation
import KafkaClient
import MarketData
import Processing
import TapeTestSupport
import Testing

/// `tape process` as real processes against `tape mock-cluster` (librdkafka's mock) and against
/// `tape broker` (Tape's own, as a process on a free loopback port): kill -9 at random moments and
/// restarts, instances joining and leaving the group; then the candles topic (latest value per key)
/// and the SQLite history must equal the batch recomputation over the trades topic, key by key.
@Suite("tape process: exactly once in effect", .serialized)
struct ProcessIntegrationTests {
    static let intervals = "15s,1m,1h"
    static let groupSettings = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]

    /// Trades of one market; `part` > 0 continues it with fresh trade ids.
    static func generatedTrades(seed: UInt64, count: Int, startTime: Int64, part: UInt64 = 0) -> [Trade] {
        var options = TradeGenerator.Options()
        options.idBase = part * 100_000_000_000
        options.instruments = (0..<12).map { ("poloniex", "C\($0)_USDT") } + [("binance", "BTCUSDT")]
        options.startTime = startTime
        options.meanGapMilliseconds = 100
        options.duplicateProbability = 0.05
        options.disorderProbability = 0.1
        options.maxDisorderMilliseconds = 30_000  // later than the 5 s grace: corrections
        var generator = TradeGenerator(seed: seed, options: options)
        return generator.trades(count)
    }

    static func processArguments(bootstrap: String, db: URL) -> [String] {
        [
            "process", "--brokers", bootstrap, "--intervals", intervals, "--emit-interval", "300ms", "--db", db.path, "--progress", "0", "--log-level", "info",
            "--allowed-lateness", "3m",
        ]
            + groupSettings
    }

    @Test(.timeLimit(.minutes(5)), arguments: ClusterKind.allCases)
    func killNineAndRestartRepeatedly(_ kind: ClusterKind) async throws {
        let dir = try temporaryDirectory("kill9-\(kind)")
        let cluster = try await TestCluster.start(kind, topics: ["tape.trades": 4, "tape.candles": 2], compacted: ["tape.candles"], logDirectory: dir)
        let bootstrap = cluster.bootstrap
        let db = dir.appendingPathComponent("candles.sqlite")
        var rng = SplitMix64(seed: UInt64(Date().timeIntervalSince1970))
        let seed = rng.next()
        var produced = Self.generatedTrades(seed: seed, count: 40_000, startTime: 1_661_123_520_000)
        try await Kafka.produce(
            produced, extra: [("poloniex:C1-USDT", "not a trade"), ("poloniex:C2-USDT", "{\"v\":1}")], topic: "tape.trades", bootstrap: bootstrap)

        var kills: [String] = []
        for round in 0..<5 {
            let child = try ChildProcess(Self.processArguments(bootstrap: bootstrap, db: db), name: "process-\(round)", logDirectory: dir)
            // Sometimes more trades arrive while it runs (continuing the same market).
            if round % 2 == 1 {
                let more = Self.generatedTrades(seed: seed &+ UInt64(round), count: 3_000, startTime: produced.last!.time + 1_000, part: UInt64(round))
                produced += more
                try await Kafka.produce(more, topic: "tape.trades", bootstrap: bootstrap)
            }
            // Kill it at a random moment after it took over its partitions: during replay,
            // while catching up, or while idle (and once, in round 0, maybe before it got any).
            let assigned = round == 0 ? false : try await child.waitForLog("taken over", timeout: 30)
            let wait = Double(rng.next() % 3_000) / 1000
            try await Task.sleep(for: .seconds(wait))
            #expect(child.isRunning, "process-\(round) died on its own; see \(child.stderrURL.path)")
            child.kill9()
            kills.append(String(format: "%@%.1fs", assigned ? "assigned+" : "", wait))
        }
        let last = try ChildProcess(Self.processArguments(bootstrap: bootstrap, db: db), name: "process-last", logDirectory: dir)
        let caughtUp = try await Kafka.waitUntilCommitted(group: "tape-processor", topic: "tape.trades", partitions: 4, bootstrap: bootstrap, timeout: 120)
        #expect(caughtUp, "the last instance did not catch up; logs in \(dir.path)")
        last.kill9()  // even a kill -9 after catching up must leave the right answer

        let (checked, problems) = try await Contract.mismatches(
            trades: "tape.trades", tradePartitions: 4, candles: "tape.candles", candlePartitions: 2,
            intervals: try Self.intervals.split(separator: ",").map { try #require(CandleInterval(String($0))) }, bootstrap: bootstrap,
            store: try CandleStore(path: db.path))
        #expect(checked > 500, "enough windows were compared")
        withExtendedLifetime(cluster) {}
        try problems.joined(separator: "\n").write(to: dir.appendingPathComponent("problems.txt"), atomically: true, encoding: .utf8)
        defer { if problems.isEmpty { try? FileManager.default.removeItem(at: dir) } }
        #expect(problems.isEmpty, "seed \(seed), kills after \(kills): \(problems.count) problems, first: \(problems.prefix(8)); logs in \(dir.path)")
    }

    @Test(.timeLimit(.minutes(5)), arguments: ClusterKind.allCases)
    func instancesJoiningAndLeavingTheGroup(_ kind: ClusterKind) async throws {
        let dir = try temporaryDirectory("scale-\(kind)")
        let cluster = try await TestCluster.start(kind, topics: ["tape.trades": 6, "tape.candles": 3], compacted: ["tape.candles"], logDirectory: dir)
        let bootstrap = cluster.bootstrap
        let db = dir.appendingPathComponent("candles.sqlite")
        let seed = UInt64(Date().timeIntervalSince1970)
        let produced = Self.generatedTrades(seed: seed, count: 30_000, startTime: 1_661_123_520_000)
        try await Kafka.produce(produced, topic: "tape.trades", bootstrap: bootstrap)
        // Trades keep arriving (the market continues, 150 every 250 ms) through every rebalance
        // below, so members are emitting and committing while partitions move. Not more: the mock
        // keeps about 5 MB per partition and drops the oldest records beyond it (a 50-second run
        // with 250 per chunk brought the busiest partition to 5.2 MB), and the batch result cannot
        // include what the cluster dropped.
        let firstStreamTime = produced.last!.time + 1_000
        let stream = Task { () throws -> Int in
            var part: UInt64 = 1
            var start = firstStreamTime
            while !Task.isCancelled {
                let next = Self.generatedTrades(seed: seed &+ part, count: 150, startTime: start, part: part)
                try await Kafka.produce(next, topic: "tape.trades", bootstrap: bootstrap)
                start = next.map(\.time).max()! + 100
                part += 1
                try await Task.sleep(for: .milliseconds(250))
            }
            return Int(part - 1)
        }
        let args = Self.processArguments(bootstrap: bootstrap, db: db)
        let a = try ChildProcess(args, name: "a", logDirectory: dir)
        try await Task.sleep(for: .seconds(3))
        let b = try ChildProcess(args, name: "b", logDirectory: dir)  // joins: rebalance
        #expect(try await b.waitForLog("taken over", timeout: 30), "b got partitions")
        try await Task.sleep(for: .seconds(1))
        #expect(a.isRunning && b.isRunning)
        a.kill9()  // leaves without a word: its partitions move after the session timeout
        try await Task.sleep(for: .seconds(2))
        let c = try ChildProcess(args, name: "c", logDirectory: dir)  // joins
        #expect(try await c.waitForLog("taken over", timeout: 30), "c got partitions")
        try await Task.sleep(for: .seconds(1))
        #expect(b.terminate() == 0, "graceful stop of b")  // leaves gracefully
        try await Task.sleep(for: .seconds(2))
        let d = try ChildProcess(args, name: "d", logDirectory: dir)
        #expect(try await d.waitForLog("taken over", timeout: 30), "d got partitions")
        try await Task.sleep(for: .seconds(1))
        stream.cancel()
        let chunks = (try? await stream.value) ?? -1
        let caughtUp = try await Kafka.waitUntilCommitted(group: "tape-processor", topic: "tape.trades", partitions: 6, bootstrap: bootstrap, timeout: 120)
        #expect(caughtUp, "the group did not catch up; logs in \(dir.path)")
        #expect(c.terminate() == 0)
        #expect(d.terminate() == 0)

        let (checked, problems) = try await Contract.mismatches(
            trades: "tape.trades", tradePartitions: 6, candles: "tape.candles", candlePartitions: 3,
            intervals: try Self.intervals.split(separator: ",").map { try #require(CandleInterval(String($0))) }, bootstrap: bootstrap,
            store: try CandleStore(path: db.path))
        #expect(checked > 500)
        withExtendedLifetime(cluster) {}
        try problems.joined(separator: "\n").write(to: dir.appendingPathComponent("problems.txt"), atomically: true, encoding: .utf8)
        defer { if problems.isEmpty { try? FileManager.default.removeItem(at: dir) } }
        // This scenario found the offset gap after a seek (librdkafka 2.0.2 delivered records
        // fetched from the committed offset after records from the replay start, on the mock
        // cluster); see "Offset gap" in CandleProcessorStateMachine.recordsArrived.
        #expect(problems.isEmpty, "seed \(seed), \(chunks) streamed chunks: \(problems.count) problems, first: \(problems.prefix(8)); logs in \(dir.path)")
    }

    /// A zombie: a processor frozen (SIGSTOP) past its session timeout while trades keep coming,
    /// so the group gives its partitions to another; then it thaws with candles and a checkpoint
    /// in flight. With transactional output its transaction is refused (KIP-447: its generation is
    /// stale) and aborted, so none of its late output reaches read_committed readers: the latest
    /// candle per key still equals the batch computation. On `tape broker` only: librdkafka's mock
    /// cluster neither fences transactional offset commits nor hides aborted records.
    /// Honest limit: this scenario also passes with `--transactions off` (2 of 2 runs): the
    /// rebalance callback's ownership fencing already drops the zombie's candles once it learns it
    /// was evicted, so only records inside librdkafka's queue at the freeze could leak, and with a
    /// 5 ms linger there are rarely any. It guards the transactional path end to end; the fencing
    /// itself is proven by TransactionProcessTests (epoch fencing) and the coordinator's
    /// TxnOffsetCommit generation checks (TransactionHandlerTests).
    @Test(.timeLimit(.minutes(5)))
    func frozenZombieIsFencedByTransactions() async throws {
        let dir = try temporaryDirectory("zombie")
        let cluster = try await TestCluster.start(.tapeBroker, topics: ["tape.trades": 4, "tape.candles": 2], compacted: ["tape.candles"], logDirectory: dir)
        let bootstrap = cluster.bootstrap
        let seed = UInt64(Date().timeIntervalSince1970)
        let produced = Self.generatedTrades(seed: seed, count: 20_000, startTime: 1_661_123_520_000)
        try await Kafka.produce(produced, topic: "tape.trades", bootstrap: bootstrap)
        let firstStreamTime = produced.last!.time + 1_000
        let stream = Task { () throws -> Int in
            var part: UInt64 = 1
            var start = firstStreamTime
            while !Task.isCancelled {
                let next = Self.generatedTrades(seed: seed &+ part, count: 150, startTime: start, part: part)
                try await Kafka.produce(next, topic: "tape.trades", bootstrap: bootstrap)
                start = next.map(\.time).max()! + 100
                part += 1
                try await Task.sleep(for: .milliseconds(250))
            }
            return Int(part - 1)
        }
        // Each with its own history (the contract reads b's), both transactional.
        let argsA = Self.processArguments(bootstrap: bootstrap, db: dir.appendingPathComponent("a.sqlite")) + ["--transactions", "on"]
        let argsB = Self.processArguments(bootstrap: bootstrap, db: dir.appendingPathComponent("b.sqlite")) + ["--transactions", "on"]
        let a = try ChildProcess(argsA, name: "a", logDirectory: dir)
        #expect(try await a.waitForLog("taken over", timeout: 30), "a got partitions")
        let b = try ChildProcess(argsB, name: "b", logDirectory: dir)
        #expect(try await b.waitForLog("taken over", timeout: 30), "b got partitions")
        try await Task.sleep(for: .seconds(2))
        a.send(SIGSTOP)  // frozen mid-stream, candles and a transaction open
        // Past a's 6 s session: the coordinator evicts it and b takes every partition.
        #expect(try await b.waitForLog("taken over", count: 2, timeout: 40), "b took a's partitions")
        try await Task.sleep(for: .seconds(2))
        a.send(SIGCONT)  // the zombie wakes with output in flight
        try await Task.sleep(for: .seconds(4))
        stream.cancel()
        let chunks = (try? await stream.value) ?? -1
        let caughtUp = try await Kafka.waitUntilCommitted(group: "tape-processor", topic: "tape.trades", partitions: 4, bootstrap: bootstrap, timeout: 120)
        #expect(caughtUp, "the group did not catch up; logs in \(dir.path)")
        _ = a.terminate()
        #expect(b.terminate() == 0)

        let (checked, problems) = try await Contract.mismatches(
            trades: "tape.trades", tradePartitions: 4, candles: "tape.candles", candlePartitions: 2,
            intervals: try Self.intervals.split(separator: ",").map { try #require(CandleInterval(String($0))) }, bootstrap: bootstrap,
            store: nil)
        #expect(checked > 500)
        withExtendedLifetime(cluster) {}
        try problems.joined(separator: "\n").write(to: dir.appendingPathComponent("problems.txt"), atomically: true, encoding: .utf8)
        defer { if problems.isEmpty { try? FileManager.default.removeItem(at: dir) } }
        #expect(problems.isEmpty, "seed \(seed), \(chunks) streamed chunks: \(problems.count) problems, first: \(problems.prefix(8)); logs in \(dir.path)")
    }

    /// The check itself can fail: a candle topic missing trades is caught.
    @Test(.timeLimit(.minutes(2)), arguments: ClusterKind.allCases)
    func contractCheckDetectsAWrongCandle(_ kind: ClusterKind) async throws {
        let dir = try temporaryDirectory("negative-\(kind)")
        let cluster = try await TestCluster.start(kind, topics: ["tape.trades": 2, "tape.candles": 1], compacted: ["tape.candles"], logDirectory: dir)
        let trades = Self.generatedTrades(seed: 7, count: 2_000, startTime: 1_661_123_520_000)
        try await Kafka.produce(trades, topic: "tape.trades", bootstrap: cluster.bootstrap)
        // Candles from all but one trade.
        let intervals = [CandleInterval.oneMinute]
        let partial = BatchCandles.compute(trades.dropLast().enumerated().map { .init(trade: $1, sequence: Int64($0)) }, intervals: intervals)
        var config = KafkaProducerConfiguration(kafka: Kafka.configuration(cluster.bootstrap))
        config.deliveryReports = false
        let producer = try KafkaProducer(configuration: config, logger: Kafka.quietLogger)
        for c in partial.values { _ = try await producer.enqueue(ProducerMessage(topic: "tape.candles", key: Array(c.kafkaKey.utf8), value: c.jsonBytes)) }
        try await producer.flush()
        try await producer.close()
        let (_, problems) = try await Contract.mismatches(
            trades: "tape.trades", tradePartitions: 2, candles: "tape.candles", candlePartitions: 1, intervals: intervals,
            bootstrap: cluster.bootstrap)
        withExtendedLifetime(cluster) {}
        #expect(!problems.isEmpty)
        try? FileManager.default.removeItem(at: dir)
    }
}

@Suite("Candle store")
struct CandleStoreTests {
    @Test func upsertIsIdempotentAndQueriesByRange() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString).sqlite").path
        let store = try CandleStore(path: path)
        var generator = TradeGenerator(seed: 3)
        let trades = generator.trades(3_000)
        let candles = BatchCandles.compute(trades.enumerated().map { .init(trade: $1, sequence: Int64($0)) }, intervals: [.oneMinute, .oneHour])
        try store.upsert(Array(candles.values))
        try store.upsert(Array(candles.values))
        #expect(try store.count() == candles.count)
        let btc = candles.values.filter { $0.symbol.rawValue == "BTC-USDT" && $0.exchange == .poloniex && $0.interval == .oneMinute }
            .sorted { $0.start < $1.start }
        let all = try store.candles(exchange: .poloniex, symbol: Symbol(normalizing: "BTC-USDT"), interval: .oneMinute)
        #expect(all == btc)
        let middle = btc[btc.count / 2].start
        let ranged = try store.candles(exchange: .poloniex, symbol: Symbol(normalizing: "BTC-USDT"), interval: .oneMinute, from: middle, to: middle + 120_000)
        #expect(ranged.map(\.start) == [middle, middle + 60_000].filter { s in btc.contains { $0.start == s } })
        let limited = try store.candles(exchange: .poloniex, symbol: Symbol(normalizing: "BTC-USDT"), interval: .oneMinute, limit: 3)
        #expect(limited == Array(btc.suffix(3)))
        var corrected = btc[0]
        corrected.revision = 4
        corrected.trades += 1
        try store.upsert([corrected])
        #expect(try store.candles(exchange: .poloniex, symbol: Symbol(normalizing: "BTC-USDT"), interval: .oneMinute, limit: nil).first == corrected)
        let symbols = try store.symbols()
        #expect(symbols.map { "\($0.exchange):\($0.symbol)" } == ["binance:BTCUSDT", "poloniex:BTC-USDT", "poloniex:ETH-USDT"])
        #expect(symbols.allSatisfy { $0.intervals == [.oneMinute, .oneHour] })
    }
}
