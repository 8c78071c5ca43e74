import Crdkafka
import Testing

@testable import KafkaClient
@testable import Processing

/// The value librdkafka ends up with for `key` when a producer is created with `configuration`
/// (the same `rd_kafka_conf_t` `KafkaProducer` builds: typed fields, then raw properties).
private func effective(_ key: String, _ configuration: KafkaProducerConfiguration) throws -> String? {
    try effective(key, configuration.kafka, typed: configuration.librdkafkaProperties)
}

/// As above, for a consumer (`KafkaConsumer` builds its configuration the same way).
private func effective(_ key: String, _ configuration: KafkaConsumerConfiguration) throws -> String? {
    try effective(key, configuration.kafka, typed: configuration.librdkafkaProperties)
}

private func effective(_ key: String, _ kafka: KafkaConfiguration, typed: [(String, String)]) throws -> String? {
    let conf = try kafka.makeConf(extra: typed)
    defer { rd_kafka_conf_destroy(conf) }
    var size = 0
    guard rd_kafka_conf_get(conf, key, nil, &size) == RD_KAFKA_CONF_OK, size > 0 else { return nil }
    var buffer = [CChar](repeating: 0, count: size)
    guard rd_kafka_conf_get(conf, key, &buffer, &size) == RD_KAFKA_CONF_OK else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

@Suite("The candle producer's configuration")
struct CandleProducerConfigurationTests {
    @Test("the typed linger reaches librdkafka")
    func typedLinger() throws {
        var configuration = CandleProcessorConfiguration(kafka: KafkaConfiguration())
        #expect(try effective("linger.ms", configuration.producerConfiguration).flatMap(Double.init) == 5)
        configuration.lingerMilliseconds = 1
        #expect(configuration.producerConfiguration.lingerMilliseconds == 1)
        #expect(try effective("linger.ms", configuration.producerConfiguration).flatMap(Double.init) == 1)
        #expect(try effective("acks", configuration.producerConfiguration) == "-1")
        #expect(try effective("enable.idempotence", configuration.producerConfiguration) == "true")
    }

    @Test("the transaction timeout outlasts a commit interval: 2 × it + 10 s, from 60 s to 15 min")
    func transactionTimeoutFollowsTheCommitInterval() throws {
        var configuration = CandleProcessorConfiguration(kafka: KafkaConfiguration())
        #expect(configuration.effectiveCommitIntervalMilliseconds == 1_000)
        #expect(configuration.transactionTimeoutMilliseconds == 60_000)
        configuration.aggregation.emitIntervalMilliseconds = 70_000  // once aborted at 60 s, every time
        #expect(configuration.effectiveCommitIntervalMilliseconds == 70_000)
        #expect(configuration.transactionTimeoutMilliseconds == 150_000)
        configuration.commitIntervalMilliseconds = 300_000
        #expect(configuration.transactionTimeoutMilliseconds == 610_000)
        configuration.commitIntervalMilliseconds = 5_000  // never shorter than the emit interval
        #expect(configuration.effectiveCommitIntervalMilliseconds == 70_000)
        configuration.commitIntervalMilliseconds = .max
        #expect(configuration.transactionTimeoutMilliseconds == 900_000)
        var producer = configuration.producerConfiguration
        producer.transactionalID = "t"
        #expect(try effective("transaction.timeout.ms", producer) == "900000")
    }

    @Test("a raw -X linger.ms (or its alias) still wins over the typed linger")
    func rawLingerWins() throws {
        var configuration = CandleProcessorConfiguration(kafka: KafkaConfiguration(properties: ["linger.ms": "20"]))
        configuration.lingerMilliseconds = 1
        #expect(try effective("linger.ms", configuration.producerConfiguration).flatMap(Double.init) == 20)
        configuration.kafka.properties = ["queue.buffering.max.ms": "30"]
        #expect(try effective("linger.ms", configuration.producerConfiguration).flatMap(Double.init) == 30)
    }
}

@Suite("The candle processor's fetch batching")
struct CandleConsumerFetchTests {
    @Test("a quarter of the emit interval, at most 5 ms, with 64 KiB; none under 4 ms")
    func batchingFollowsTheEmitInterval() {
        #expect(CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: 1_000) == (5, 65_536))
        #expect(CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: 12) == (3, 65_536))
        #expect(CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: 4) == (1, 65_536))
        #expect(CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: 3) == (nil, nil))
        #expect(CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: 0) == (nil, nil))
        #expect(CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: -5) == (nil, nil))
        #expect(CandleProcessorConfiguration.fetchBatching(emitIntervalMilliseconds: .max) == (5, 65_536))
    }

    @Test("the typed settings reach librdkafka, librdkafka's defaults without them, and a raw -X wins")
    func typedFetchSettings() throws {
        var consumer = KafkaConsumerConfiguration(kafka: KafkaConfiguration())
        #expect(try effective("fetch.wait.max.ms", consumer) == "500")
        #expect(try effective("fetch.min.bytes", consumer) == "1")
        consumer.fetchWaitMaxMilliseconds = 5
        consumer.fetchMinBytes = 65_536
        #expect(try effective("fetch.wait.max.ms", consumer) == "5")
        #expect(try effective("fetch.min.bytes", consumer) == "65536")
        consumer.kafka.properties = ["fetch.wait.max.ms": "1", "fetch.min.bytes": "10"]
        #expect(try effective("fetch.wait.max.ms", consumer) == "1")
        #expect(try effective("fetch.min.bytes", consumer) == "10")
    }
}
