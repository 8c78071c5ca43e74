import Foundation
import KafkaClient
import MarketData
import Processing
import TapeTestSupport
import XCTest

/// Two `tape ingest` of the same venue with overlapping markets, as documented in docs/ingest.md
/// ("Several ingesters on one topic"): both publish the markets they share — `tape.trades` holds
/// those trades up to twice, never more, never none, across `kill -9` and restart of either — and
/// everything downstream counts each trade once: `tape process`'s candles equal a batch
/// computation over the simulator's trades, and `tape serve`'s /api/trades lists each id once.
final class SameMarketIngestersTests: XCTestCase {
    func testTwoIngestersOfOneMarketBothPublishAndDownstreamCountsEachTradeOnce() throws {
        let dir = try temporaryDirectory("same-market")
        defer { try? FileManager.default.removeItem(at: dir) }
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let brokers = "127.0.0.1:\(kafkaPort)"
        let broker = try ChildProcess(["broker", "--listen", brokers, "--data-dir", dir.appendingPathComponent("kafka").path])
        defer { broker.interrupt(timeout: 10) }
        let topics = try runProcess(TapeBinary.path, ["topics", "create", "tape.trades", "--partitions", "3", "--brokers", brokers], timeout: 30)
        XCTAssertEqual(topics.status, 0, topics.stderr + broker.stderr)

        let tradesLog = dir.appendingPathComponent("kraken.jsonl").path
        let simulator = try ChildProcess(["simulate", "--exchange", "kraken", "--rate", "60", "--seed", "5", "--trades-log", tradesLog])
        defer { simulator.interrupt(timeout: 10) }
        let urls = try simulator.firstLine().split(separator: " ").map(String.init)
        let db = dir.appendingPathComponent("candles.sqlite").path
        let process = try ChildProcess(["process", "--brokers", brokers, "--intervals", "1s", "--db", db])
        defer { process.interrupt(timeout: 10) }
        let serve = try ChildProcess(["serve", "--brokers", brokers, "--db", db, "--http", "127.0.0.1:\(httpPort)"])
        defer { serve.interrupt(timeout: 10) }
        let base = "http://127.0.0.1:\(httpPort)"
        XCTAssertTrue(waitForHealthAnswer(base), "tape serve: \(serve.stderr.suffix(2000))")

        // A: every market; B: two of them. BTC/USDT and ETH/USDT are ingested twice.
        let shared = ["BTC/USDT", "ETH/USDT"]
        func ingest(_ symbols: String) throws -> ChildProcess {
            try ChildProcess([
                "ingest", "--exchange", "kraken", "--symbols", symbols, "--endpoint", urls[0], "--rest-endpoint", urls[1],
                "--brokers", brokers, "--ping-interval", "1",
            ])
        }
        var a = try ingest("all")
        var b = try ingest(shared.joined(separator: ","))
        sleep(5)
        kill(a.process.processIdentifier, SIGKILL)
        a.process.waitUntilExit()
        usleep(1_500_000)
        a = try ingest("all")
        sleep(3)
        kill(b.process.processIdentifier, SIGKILL)
        b.process.waitUntilExit()
        usleep(1_500_000)
        b = try ingest(shared.joined(separator: ","))
        sleep(4)
        let cut = Int64(Date().timeIntervalSince1970 * 1000) - 2_000
        let expected = lines(of: tradesLog).compactMap { try? Trade(json: String($0)) }.filter { $0.time <= cut }

        // tape.trades, read back from the start, until every trade up to the cut is there.
        var configuration = KafkaConsumerConfiguration(kafka: KafkaConfiguration(bootstrapServers: brokers))
        configuration.autoOffsetReset = .earliest
        let consumer = try KafkaConsumer(configuration: configuration)
        defer { consumer.close() }
        try consumer.assign((0..<3).map { TopicPartitionOffset(topic: "tape.trades", partition: $0, offset: KafkaOffset.beginning) })
        let records = Locked<[Trade]>([])
        let reading = Task {
            for try await batch in consumer.batches {
                let trades = batch.compactMap { $0.value.flatMap { try? Trade(json: $0) } }
                records.value = records.value + trades
            }
        }
        defer { reading.cancel() }
        let wanted = Set(expected.map(\.tradeId))
        let deadline = Date().addingTimeInterval(30)
        while Set(records.value.map(\.tradeId)).intersection(wanted).count < wanted.count && Date() < deadline { usleep(250_000) }
        sleep(3)  // candles of the last windows, and anything more than doubled
        let queriedAt = Int64(Date().timeIntervalSince1970 * 1000)

        var copies: [String: Int] = [:]
        for trade in records.value { copies["\(trade.nativeSymbol):\(trade.tradeId)", default: 0] += 1 }
        var missing: [String] = []
        var doubled = 0
        var tooMany: [String] = []
        var onceShared = 0
        for trade in expected {
            let key = "\(trade.nativeSymbol):\(trade.tradeId)"
            let n = copies[key, default: 0]
            if n == 0 { missing.append(key) }
            if shared.contains(trade.nativeSymbol) {
                if n > 2 { tooMany.append(key) }
                if n == 2 { doubled += 1 } else if n == 1 { onceShared += 1 }
            } else if n > 1 {
                tooMany.append(key)
            }
        }
        XCTAssertEqual(missing, [], "trades lost; ingest A: \(a.stderr.suffix(1500)) B: \(b.stderr.suffix(1500))")
        XCTAssertEqual(tooMany, [], "more copies than ingesters publishing the market")
        XCTAssertGreaterThan(doubled, 100, "both ingesters publish the shared markets")
        XCTAssertEqual(
            Set(copies.keys).subtracting(Set(lines(of: tradesLog).compactMap { try? Trade(json: String($0)) }.map { "\($0.nativeSymbol):\($0.tradeId)" })), [],
            "never generated")

        // tape serve: each id once in /api/trades.
        for symbol in ["BTC-USDT", "ETH-USDT"] {
            let r = try httpGet(base + "/api/trades?symbol=kraken:\(symbol)&limit=1000")
            XCTAssertEqual(r.status, 200, r.body)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
            let ids = (object["trades"] as? [[String: Any]] ?? []).compactMap { $0["tradeId"] as? String }
            XCTAssertGreaterThan(ids.count, 50, symbol)
            XCTAssertEqual(ids.count, Set(ids).count, "\(symbol): /api/trades lists a trade twice")
        }

        // tape process: 1s candles equal a batch computation over the simulator's trades.
        let reference = BatchCandles.compute(
            expected.enumerated().map { BatchCandles.SequencedTrade(trade: $0.element, sequence: Int64($0.offset)) },
            intervals: [CandleInterval("1s")!])
        let comparable = reference.filter { $0.value.end <= cut - 1_000 && shared.contains($0.value.symbol.rawValue.replacingOccurrences(of: "-", with: "/")) }
        var served: [String: Candle] = [:]
        for symbol in ["BTC-USDT", "ETH-USDT"] {
            let r = try httpGet(base + "/api/candles?symbol=kraken:\(symbol)&interval=1s&limit=1000")
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
            for item in object["candles"] as? [Any] ?? [] {
                let candle = try Candle(json: [UInt8](try JSONSerialization.data(withJSONObject: item)))
                served[candle.kafkaKey] = candle
            }
        }
        XCTAssertGreaterThan(comparable.count, 10)
        var mismatches: [String] = []
        for (key, want) in comparable {
            guard let got = served[key] else {
                mismatches.append("\(key): missing")
                continue
            }
            if let diff = BatchCandles.difference(got, want) { mismatches.append("\(key): \(diff)") }
        }
        XCTAssertEqual(mismatches, [], "candles differ from the batch computation (queried at \(queriedAt)); process: \(process.stderr.suffix(1500))")
        a.interrupt(timeout: 10)
        b.interrupt(timeout: 10)
        print(
            "two ingesters of kraken BTC/USDT, ETH/USDT: \(expected.count) trades up to the cut, \(doubled) of the shared markets' published twice (\(onceShared) once, while one ingester was down), 0 lost, 0 more than twice; \(comparable.count) candles equal the batch computation; /api/trades ids unique"
        )
    }
}

/// Polls `base`/health until it answers at all (200 or 503: a server with no data yet is degraded).
func waitForHealthAnswer(_ base: String, timeout: TimeInterval = 60) -> Bool {
    let started = Date()
    while Date().timeIntervalSince(started) < timeout {
        if let status = (try? httpGet(base + "/health"))?.status, status == 200 || status == 503 { return true }
        usleep(300_000)
    }
    return false
}
