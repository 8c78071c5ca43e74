import ArgumentParser
import Foundation
import KafkaClient
import MarketData
import Processing

struct BenchProcess: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Trades/s through `tape process` from a pre-filled topic to emitted candles; also the core alone.",
        discussion:
            "Build with `swift build -c release` first. Without --brokers, an in-process librdkafka mock cluster is used; it keeps only a few MB per partition, so spread the trades: e.g. --partitions 128 --instruments 400 for 1 000 000 trades."
    )

    @OptionGroup var target: BenchTarget
    @Option(help: "Trades in the pre-filled topic.") var count: Int = 1_000_000
    @Option(help: "Distinct instruments (the topic is keyed by instrument).") var instruments: Int = 400
    @Option(help: "Candle intervals.") var intervals: String = "1m,5m,1h"
    @Option(help: "Topic to pre-fill (created on the mock cluster).") var topic: String = "tape.bench.trades"
    @Option(help: "Runs; the median is reported last.") var runs: Int = 3
    @Flag(name: .customLong("core-only"), help: "Measure only the core (decode + aggregate in memory), no Kafka.")
    var coreOnly = false
    @Option(
        name: .customLong("tick-every"),
        help: "Core: a tick (finalize due windows) every this many trades, besides the checkpoint every 100 000 (the processor ticks every 100 ms).")
    var tickEvery: Int?

    func validate() throws {
        guard count > 0, runs > 0, instruments > 0 else {
            throw ValidationError("--count, --runs and --instruments must be positive; got \(count), \(runs), \(instruments).")
        }
        if let tickEvery, tickEvery <= 0 { throw ValidationError("--tick-every must be positive; got \(tickEvery).") }
        _ = try parseIntervals(intervals)
    }

    func run() async throws {
        tuneMallocForStreaming()
        let aggregation = CandleAggregatorConfiguration(intervals: try parseIntervals(intervals))
        if !coreOnly, target.mockBrokers == nil { try await KafkaOptions.requireCluster(target.kafka.configuration()) }
        let values = ProcessBenchmark.encodedTrades(count: count, instruments: instruments)
        printError("bench process: \(count) trades, \(instruments) instruments, intervals \(intervals), \(ProcessInfo.processInfo.activeProcessorCount) cores")

        // The core alone, in memory.
        var decodeRates: [Double] = []
        var coreRates: [Double] = []
        var aggregateRates: [Double] = []
        let trades = values.map { try! Trade(json: $0) }
        for run in 1...runs {
            let d = ProcessBenchmark.decodeFields(values)
            let a = ProcessBenchmark.aggregate(trades, configuration: aggregation)
            let c = ProcessBenchmark.decodeAndAggregate(values, configuration: aggregation, tickEvery: tickEvery)
            decodeRates.append(d.tradesPerSecond)
            aggregateRates.append(a.tradesPerSecond)
            coreRates.append(c.tradesPerSecond)
            print(
                String(
                    format: "core run %d: decode %.0f trades/s, aggregate %.0f trades/s, decode+aggregate %.0f trades/s (%d candles)",
                    run, d.tradesPerSecond, a.tradesPerSecond, c.tradesPerSecond, c.candles))
        }
        print(
            String(
                format: "core median: decode %.0f trades/s, aggregate %.0f trades/s, decode+aggregate %.0f trades/s",
                median(decodeRates), median(aggregateRates), median(coreRates)))
        if coreOnly { return }

        // Through Kafka: pre-fill, then run the processor until it has read everything.
        var mock: MockKafkaCluster?
        var kafka = try target.kafka.configuration()
        // -X wins over these. The pre-fetch queue stays at librdkafka's defaults, as `tape process`
        // has it (it used to be raised to a million records here, to avoid librdkafka's
        // second-long pause after the queue filled; the consumer now restarts fetching itself,
        // see KafkaClient's FetchRefill). Fetch sizes stay at librdkafka's defaults (1 MB per
        // partition): 8 MB per partition made each fetch a long serial step (the broker reads,
        // then the client parses, while the processor waits) and measured 15–25 % slower.
        let fetchDefaults = ["fetch.wait.max.ms": "1"]
        for (key, value) in fetchDefaults where kafka.properties[key] == nil { kafka.properties[key] = value }
        if let n = target.mockBrokers ?? (target.kafka.brokers == nil ? 1 : nil) {
            let cluster = try MockKafkaCluster(brokers: n)
            try cluster.createTopic(topic, partitions: target.partitions)
            try cluster.createTopic(topic + ".candles", partitions: 1)
            kafka.bootstrapServers = cluster.bootstrapServers
            mock = cluster
        } else {
            // A real cluster (or `tape broker`): create the topics with the partitions asked for,
            // instead of relying on auto-creation with the cluster's default partition count.
            let admin = try KafkaAdmin(configuration: kafka, timeout: .seconds(10), logger: target.kafka.logger("tape.bench"))
            let existing = try await admin.listTopics()
            if let found = existing.first(where: { $0.name == topic }), found.partitions.count != Int(target.partitions) {
                throw ValidationError("Topic \(topic) exists with \(found.partitions.count) partitions; delete it or pass --topic with a new name.")
            }
            for (name, partitions) in [(topic, target.partitions), (topic + ".candles", Int32(1))] where !existing.contains(where: { $0.name == name }) {
                try await admin.createTopic(name, partitions: partitions)
            }
        }
        let logger = target.kafka.logger("tape.bench")
        var producerConfiguration = KafkaProducerConfiguration(kafka: kafka)
        producerConfiguration.maxQueuedMessages = 1_000_000
        producerConfiguration.deliveryReports = false
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        for (i, value) in values.enumerated() {
            let key = Array(Trade.kafkaKey(exchange: trades[i].exchange, symbol: trades[i].symbol).utf8)
            _ = try await producer.enqueue(ProducerMessage(topic: topic, key: key, value: value, timestamp: trades[i].time))
        }
        try await producer.flush(timeout: .seconds(300))
        try await producer.close()
        var watermarkConfig = KafkaConsumerConfiguration(kafka: kafka)
        watermarkConfig.groupID = "tape-bench-watermarks"
        let probe = try KafkaConsumer(configuration: watermarkConfig, logger: logger)
        var ends: [Int32: Int64] = [:]
        var available = 0
        for p in 0..<target.partitions {
            let (low, high) = try await probe.watermarks(topic: topic, partition: p)
            ends[p] = high
            available += Int(high - low)
        }
        probe.close()
        if available < count {
            printError(
                "bench process: the cluster kept only \(available) of \(count) records (librdkafka's mock cluster drops old segments past a few MB per partition: use more --partitions and --instruments)"
            )
        }
        printError(
            "bench process: pre-filled \(topic): \(ends.sorted { $0.key < $1.key }.map { "[\($0.key)] \($0.value)" }.joined(separator: ", ")) records at \(kafka.bootstrapServers)"
        )

        var rates: [Double] = []
        var ratesAfterJoin: [Double] = []
        for run in 1...runs {
            var configuration = CandleProcessorConfiguration(kafka: kafka)
            configuration.inputTopic = topic
            configuration.outputTopic = topic + ".candles"
            configuration.group = "tape-bench-\(run)-\(UInt32.random(in: 0 ... .max))"
            configuration.aggregation = aggregation
            configuration.createOutputTopic = mock == nil
            configuration.stopAtOffsets = ends
            configuration.announcePartitions = target.kafka.verbose
            let processor = CandleProcessor(configuration: configuration, logger: logger, console: consoleLogger("tape.process", prefix: "process: "))
            let start = DispatchTime.now().uptimeNanoseconds
            try await processor.run()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let c = processor.counters
            let processed = available
            let active = processor.activeSeconds ?? seconds
            rates.append(Double(processed) / seconds)
            ratesAfterJoin.append(Double(processed) / active)
            print(
                String(
                    format: "run %d: %d trades → %d candle updates in %.2f s: %.0f trades/s (%.0f trades/s from first record to last candle acknowledged)",
                    run, processed, c.candlesEmitted, seconds, Double(processed) / seconds, Double(processed) / active))
        }
        print(
            String(
                format: "median of %d runs: %.0f trades/s including group join, %.0f trades/s from first record to last candle acknowledged",
                runs, median(rates), median(ratesAfterJoin)))
        withExtendedLifetime(mock) {}
    }
}
