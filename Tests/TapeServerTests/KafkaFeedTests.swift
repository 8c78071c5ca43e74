import Foundation
import Hummingbird
import HummingbirdTesting
import KafkaClient
import Logging
import MarketData
import TapeServer
import TapeTestSupport
import XCTest

/// The Kafka-backed feeds `tape serve` uses, against librdkafka's mock cluster (real sockets).
final class KafkaFeedTests: XCTestCase {
    func testServeReadsCandleHistoryAndLiveTradesFromTopicsSkippingBadRecords() async throws {
        let cluster = try MockKafkaCluster(brokers: 1)
        try cluster.createTopic("tape.trades", partitions: 2)
        try cluster.createTopic("tape.candles", partitions: 1)
        var producerConfig = KafkaProducerConfiguration(kafka: .init(bootstrapServers: cluster.bootstrapServers))
        producerConfig.lingerMilliseconds = 1
        let producer = try KafkaProducer(configuration: producerConfig)
        @Sendable func send(_ topic: String, _ key: String, _ value: String) async throws {
            _ = try await producer.send(ProducerMessage(topic: topic, key: key, value: value))
        }

        // history written before the server starts: read from the beginning
        let c0 = Fixture.candle(Fixture.btc, .oneMinute, index: 0, base: 100, revision: 1, isFinal: false)
        let c0final = Fixture.candle(Fixture.btc, .oneMinute, index: 0, base: 100, revision: 4, isFinal: true)
        let c1 = Fixture.candle(Fixture.btc, .oneMinute, index: 1, base: 100, revision: 1, isFinal: false)
        try await send("tape.candles", c0.kafkaKey, c0.jsonString)
        try await send("tape.candles", "garbage", "{\"v\":1,\"exchange\":")  // must be skipped
        try await send("tape.candles", c0final.kafkaKey, c0final.jsonString)
        try await send("tape.candles", c1.kafkaKey, c1.jsonString)

        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, properties: ["fetch.wait.max.ms": "20"])
        var logger = Logger(label: "test.kafka-feeds")
        logger.logLevel = .error
        let state = TapeServerState()
        let app = buildTapeServer(
            configuration: TapeServerConfiguration(host: "127.0.0.1", port: 0),
            trades: KafkaTradeFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.trades", start: .end, logger: logger)),
            candles: KafkaCandleFeed(reader: try KafkaTopicReader(kafka: kafka, topic: "tape.candles", start: .beginning, logger: logger)),
            history: InMemoryCandleHistory(), state: state, logger: logger)

        try await app.test(.live) { client in
            try await eventually(30, "candles from tape.candles") {
                state.eventsSeen.candles == 3
            }
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&interval=1m", method: .get) { response in
                let candles = response.body.json["candles"] as? [[String: Any]] ?? []
                XCTAssertEqual(candles.map { $0["revision"] as? Int }, [4, 1], "latest revision per window")
                XCTAssertEqual(candles.first?["final"] as? Bool, true)
            }
            // trades are read from the end: warm up until the reader is assigned, then check order
            var warmup = 0
            while state.recentTrades.newest(market: nil, limit: 1).isEmpty {
                let t = Fixture.trade(Fixture.eth, id: warmup, price: "1600", time: Fixture.t0)
                try await send("tape.trades", t.kafkaKey, t.jsonString)
                warmup += 1
                XCTAssertLessThan(warmup, 300, "the trade feed never delivered")
                if warmup >= 300 { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            let trades = (0..<5).map { Fixture.trade(Fixture.btc, id: 500 + $0, price: "2161\($0).5", time: Fixture.t0 + Int64($0)) }
            for (i, t) in trades.enumerated() {
                try await send("tape.trades", t.kafkaKey, t.jsonString)
                if i == 2 { try await send("tape.trades", t.kafkaKey, "not json") }
            }
            try await eventually(20, "five live trades") {
                state.recentTrades.newest(market: Fixture.btc, limit: 10).count == 5
            }
            XCTAssertEqual(state.recentTrades.newest(market: Fixture.btc, limit: 10).map(\.tradeId), ["504", "503", "502", "501", "500"])
            XCTAssertEqual(state.recentTrades.newest(market: Fixture.btc, limit: 1).first, trades.last)
        }
        try await producer.close()
    }
}
