import Exchanges
import Foundation
import KafkaClient
import Logging
import MarketData
import Synchronization
import TapeTestSupport
import XCTest

@testable import Ingest

/// `TopicTail` against a `tape broker` process while other producers write the same topic: the
/// read finishes in bounded time with one consumer, skips other venues, finds a market buried
/// under other venues' records (within the documented depth), and follows — for a bounded time
/// only — records of its own markets that keep landing.
final class TopicTailTests: XCTestCase {
    let topic = "tape.trades"
    var directory: URL!
    var broker: ChildProcess!
    var brokers = ""

    override func setUpWithError() throws {
        directory = try temporaryDirectory("tail")
        let port = Loopback.freePort()
        broker = try ChildProcess(
            ["broker", "--listen", "127.0.0.1:\(port)", "--data-dir", directory.appendingPathComponent("kafka").path], name: "broker",
            logDirectory: directory)
        brokers = "127.0.0.1:\(port)"
        try broker.waitForPort(port)
    }

    override func tearDown() {
        broker?.interrupt()
        try? FileManager.default.removeItem(at: directory)
    }

    var kafka: KafkaConfiguration { KafkaConfiguration(bootstrapServers: brokers) }

    func createTopic() async throws {
        let admin = try KafkaAdmin(configuration: kafka)
        try await admin.createTopic(topic, partitions: 3)
    }

    func producer() throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(kafka: kafka)
        configuration.acks = -1
        configuration.idempotence = true
        return try KafkaProducer(configuration: configuration)
    }

    func publish(_ trades: [Trade], with producer: KafkaProducer) async throws {
        try await TailData.publish(trades, to: topic, with: producer)
    }

    /// Another venue writes ~2,000 records/s throughout: before, each re-check saw the end move
    /// and started a new consumer, and the eighth gave up ("could not read the last 5000 records
    /// ... within 60.0 seconds" after ~3 s).
    func testReadsWhileAnotherVenueWritesWithOneConsumer() async throws {
        try await createTopic()
        let producer = try producer()
        let markets = ["BTC_USDT", "ETH_USDT"]
        var ours: [Trade] = []
        for i in 0..<3_000 { ours.append(TailData.trade(.poloniex, markets[i % 2], id: 1_000 + Int64(i))) }
        try await publish(ours, with: producer)
        let kraken = Exchange("kraken")
        try await publish((0..<6_000).map { TailData.trade(kraken, ["BTC/USD", "ETH/EUR", "SOL/USD"][$0 % 3], id: Int64($0)) }, with: producer)

        let writing = Flag()
        let topic = self.topic
        let writer = Task {
            var id: Int64 = 10_000
            while writing.value.load(ordering: .relaxed) {
                for _ in 0..<100 {
                    let trade = TailData.trade(kraken, ["BTC/USD", "ETH/EUR", "SOL/USD"][Int(id % 3)], id: id)
                    _ = try? await producer.enqueue(
                        ProducerMessage(topic: topic, key: Array(trade.kafkaKey.utf8), value: trade.jsonBytes, timestamp: trade.time))
                    id += 1
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return id
        }
        try await Task.sleep(for: .seconds(1))  // the other venue is writing when the read starts
        let started = ContinuousClock.now
        let result = try await TopicTail.readDetailed(
            topic: topic, exchange: .poloniex, markets: markets, limits: TailReadLimits(recordsPerPartition: 5_000), kafka: kafka,
            logger: Logger(label: "test"))
        let elapsed = started.duration(to: .now)
        writing.value.store(false, ordering: .relaxed)
        let written = await writer.value
        try await producer.close()

        XCTAssertGreaterThan(written, 12_000, "the other venue wrote throughout")
        XCTAssertLessThan(elapsed, .seconds(5), "tail read took \(elapsed)")
        XCTAssertTrue(result.settled, "records of other venues must not hold the read up")
        XCTAssertEqual(result.consumersStarted, 1)
        XCTAssertEqual(Set(result.trades.keys), Set(markets))
        for market in markets {
            // The newest of them, in log order (all of them unless the key shares its partition
            // with so many records of the other venue that the window holds only the latest).
            let expected = ours.filter { $0.nativeSymbol == market }.map(\.tradeId)
            let got = result.trades[market]?.map(\.tradeId) ?? []
            XCTAssertGreaterThan(got.count, 100, market)
            XCTAssertEqual(got, Array(expected.suffix(got.count)), market)
        }
        XCTAssertGreaterThan(result.recordsSkipped, 0)
        print("tail read beside a writing venue: \(elapsed), \(result.recordsRead) records read, \(result.recordsSkipped) of other venues skipped")
    }

    /// A market whose last trade lies under many records of another venue is found further back,
    /// up to the depth; a market that never traded is reported as new after a bounded read.
    func testFindsAMarketBuriedUnderAnotherVenueWithinTheDepth() async throws {
        try await createTopic()
        let producer = try producer()
        let buried = (0..<10).map { TailData.trade(.poloniex, "SOL_USDT", id: 500 + Int64($0)) }
        try await publish(buried, with: producer)
        let binance = Exchange("binance")
        let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]
        try await publish((0..<24_000).map { TailData.trade(binance, symbols[$0 % symbols.count], id: Int64($0)) }, with: producer)
        try await producer.close()

        var limits = TailReadLimits(recordsPerPartition: 1_000)
        XCTAssertEqual(limits.depthPerPartition, 40_000, "documented default: 40 × --tail-records")
        let started = ContinuousClock.now
        let found = try await TopicTail.readDetailed(
            topic: topic, exchange: .poloniex, markets: ["SOL_USDT", "NEVER_USDT"], limits: limits, kafka: kafka, logger: Logger(label: "test"))
        XCTAssertEqual(found.trades["SOL_USDT"]?.map(\.tradeId), buried.map(\.tradeId))
        XCTAssertEqual(found.notFound, ["NEVER_USDT"])
        XCTAssertGreaterThan(found.deepRecordsRead, 0)
        XCTAssertLessThanOrEqual(found.recordsRead, 24_010, "nothing read twice")
        XCTAssertLessThan(started.duration(to: .now), .seconds(10))

        // Beyond the depth it is not found (the bound is a bound).
        limits = TailReadLimits(recordsPerPartition: 1_000, depthPerPartition: 2_000)
        let shallow = try await TopicTail.readDetailed(
            topic: topic, exchange: .poloniex, markets: ["SOL_USDT"], limits: limits, kafka: kafka, logger: Logger(label: "test"))
        XCTAssertNil(shallow.trades["SOL_USDT"])
        XCTAssertEqual(shallow.notFound, ["SOL_USDT"])
        XCTAssertLessThanOrEqual(shallow.recordsRead, 3 * 2_000)
    }

    /// Records of the subscribed markets landing after the end offsets were read (a crashed run's
    /// in-flight records) are read too; if they never stop (another ingester of the same markets),
    /// the read ends at the settle limit.
    func testFollowsOwnRecordsInFlightButOnlyUpToTheLimit() async throws {
        try await createTopic()
        let producer = try producer()
        try await publish((0..<2_000).map { TailData.trade(.poloniex, "BTC_USDT", id: Int64($0)) }, with: producer)

        // Landing just after the read started: read as well.
        let topic = self.topic
        let late = Task {
            try await Task.sleep(for: .milliseconds(150))
            try await TailData.publish((2_000..<2_300).map { TailData.trade(.poloniex, "BTC_USDT", id: Int64($0)) }, to: topic, with: producer)
        }
        let first = try await TopicTail.readDetailed(
            topic: topic, exchange: .poloniex, markets: ["BTC_USDT"], limits: TailReadLimits(recordsPerPartition: 5_000), kafka: kafka,
            logger: Logger(label: "test"))
        try await late.value
        XCTAssertEqual(first.trades["BTC_USDT"]?.last?.tradeId, "2299", "records landing after the start are waited for")
        XCTAssertTrue(first.settled)

        // A second writer of the same market that never stops: bounded by the settle limit.
        let writing = Flag()
        let writer = Task {
            var id: Int64 = 3_000
            while writing.value.load(ordering: .relaxed) {
                let trade = TailData.trade(.poloniex, "BTC_USDT", id: id)
                _ = try? await producer.enqueue(
                    ProducerMessage(topic: topic, key: Array(trade.kafkaKey.utf8), value: trade.jsonBytes, timestamp: trade.time))
                id += 1
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        var limits = TailReadLimits(recordsPerPartition: 5_000)
        limits.settleLimit = .milliseconds(1_500)
        let started = ContinuousClock.now
        let second = try await TopicTail.readDetailed(
            topic: topic, exchange: .poloniex, markets: ["BTC_USDT"], limits: limits, kafka: kafka, logger: Logger(label: "test"))
        let elapsed = started.duration(to: .now)
        writing.value.store(false, ordering: .relaxed)
        await writer.value
        try await producer.close()
        XCTAssertFalse(second.settled)
        XCTAssertLessThan(elapsed, .seconds(4), "settle limit 1.5 s; took \(elapsed)")
        XCTAssertGreaterThan(Int(second.trades["BTC_USDT"]?.last?.tradeId ?? "0") ?? 0, 3_000)
        XCTAssertEqual(second.consumersStarted, 1)
    }
}

final class Flag: Sendable {
    let value = Atomic<Bool>(true)
}

enum TailData {
    static func trade(_ exchange: Exchange, _ native: String, id: Int64) -> Trade {
        Trade(
            exchange: exchange, symbol: Symbol(normalizing: native), nativeSymbol: native, tradeId: String(id),
            price: try! ExactDecimal("100.5"), quantity: try! ExactDecimal("0.25"), quoteQuantity: try! ExactDecimal("25.125"),
            side: .buy, time: 1_700_000_000_000 + id, receivedAt: 1_700_000_000_000_000)
    }

    static func publish(_ trades: [Trade], to topic: String, with producer: KafkaProducer) async throws {
        for trade in trades {
            try await producer.enqueue(
                ProducerMessage(topic: topic, key: Array(trade.kafkaKey.utf8), value: trade.jsonBytes, timestamp: trade.time))
        }
        try await producer.flush()
    }
}
