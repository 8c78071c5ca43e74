import ArgumentParser
import Foundation
import KafkaClient
import Logging
import Synchronization
import TapeCommon

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks, in the style of kafka-producer-perf-test.",
        subcommands: [BenchProduce.self, BenchConsume.self, BenchLatency.self, BenchParseCommand.self, BenchBookCommand.self, BenchProcess.self, BenchE2E.self]
    )
}

/// Where a benchmark runs: a given cluster, or an in-process librdkafka mock cluster.
struct BenchTarget: ParsableArguments {
    @OptionGroup var kafka: KafkaOptions
    @Option(name: .customLong("mock-brokers"), help: "Start an in-process librdkafka mock cluster with this many brokers instead of using --brokers.")
    var mockBrokers: Int?
    @Option(help: "Partitions of the topic when it is created on the mock cluster.") var partitions: Int32 = 1

    func validate() throws {
        if let mockBrokers, !(1...100).contains(mockBrokers) { throw ValidationError("--mock-brokers must be from 1 to 100; got \(mockBrokers).") }
        guard (1...10_000).contains(partitions) else { throw ValidationError("--partitions must be from 1 to 10000; got \(partitions).") }
    }

    /// The Kafka configuration to benchmark against: --brokers, or (with --mock-brokers) a new
    /// in-process mock cluster holding `topic`. Keep the cluster alive while benchmarking.
    func connect(topic: String) throws -> (kafka: KafkaConfiguration, mock: MockKafkaCluster?) {
        var kafka = try self.kafka.configuration()
        guard let n = mockBrokers else { return (kafka, nil) }
        let cluster = try MockKafkaCluster(brokers: n)
        try cluster.createTopic(topic, partitions: partitions)
        kafka.bootstrapServers = cluster.bootstrapServers
        return (kafka, cluster)
    }
}

struct BenchResult {
    var records: Int
    var bytes: Int
    var seconds: Double
    var latenciesMicros: [UInt32]
    var recordsPerSecond: Double { Double(records) / seconds }
    var megabytesPerSecond: Double { Double(bytes) / seconds / 1_048_576 }
    func percentile(_ p: Double) -> Double {
        guard !latenciesMicros.isEmpty else { return 0 }
        let i = min(latenciesMicros.count - 1, Int(Double(latenciesMicros.count) * p))
        return Double(latenciesMicros[i]) / 1000
    }
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

struct BenchProduce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce", abstract: "Produce N records of S bytes as fast as possible; report records/s, MB/s and ack latency.")
    @OptionGroup var target: BenchTarget
    @Option(help: "Topic.") var topic: String = "tape.bench"
    @Option(help: "Records per run.") var count: Int = 1_000_000
    @Option(help: "Record size in bytes.") var size: Int = 100
    @Option(help: "acks: all, 0 or 1.") var acks: String = "all"
    @Option(help: "Compression: none, gzip, snappy, lz4, zstd.") var compression: String = "none"
    @Option(help: "linger.ms.") var linger: Double = 5
    @Option(help: "Runs; the median is reported last.") var runs: Int = 1
    @Option(name: .customLong("payload-file"), help: "Write the payload used (one record a line, `count` lines) to this file, for `kcat -P -l`.")
    var payloadFile: String?

    func validate() throws {
        guard KafkaCompression(rawValue: compression) != nil else { throw ValidationError("Unknown compression '\(compression)'.") }
        guard count > 0, size >= 0, runs > 0 else { throw ValidationError("--count and --runs must be positive, --size non-negative; got \(count), \(runs), \(size).") }
        guard ["all", "-1", "0", "1"].contains(acks) else { throw ValidationError("--acks must be all, -1, 0 or 1; got \(acks).") }
        guard size <= 100 << 20 else { throw ValidationError("--size must be at most 104857600 bytes; got \(size).") }
        guard linger.isFinite, linger >= 0, linger <= 900_000 else { throw ValidationError("--linger must be from 0 to 900000 ms; got \(linger.flagText).") }
    }

    func run() async throws {
        let payload = Self.payload(size: size)
        if let payloadFile {
            var line = payload
            line.append(UInt8(ascii: "\n"))
            var all = [UInt8]()
            all.reserveCapacity(line.count * count)
            for _ in 0..<count { all += line }
            try Data(all).write(to: URL(fileURLWithPath: payloadFile))
        }
        let (kafkaConfig, mock) = try target.connect(topic: topic)
        if let mock { printError("mock cluster: \(mock.bootstrapServers)") }
        var rates: [Double] = []
        var mbs: [Double] = []
        var p99s: [Double] = []
        for run in 1...runs {
            let result = try await Self.produce(
                kafka: kafkaConfig, topic: topic, count: count, payload: payload, acks: acks, compression: KafkaCompression(rawValue: compression)!,
                linger: linger, logger: target.kafka.logger("tape.bench"))
            rates.append(result.recordsPerSecond)
            mbs.append(result.megabytesPerSecond)
            p99s.append(result.percentile(0.99))
            print(
                String(
                    format: "run %d: %d records sent, %.1f records/sec (%.2f MB/sec), latency p50 %.2f ms, p99 %.2f ms, max %.2f ms.",
                    run, result.records, result.recordsPerSecond, result.megabytesPerSecond, result.percentile(0.5), result.percentile(0.99),
                    Double(result.latenciesMicros.last ?? 0) / 1000))
        }
        if runs > 1 {
            print(String(format: "median of %d runs: %.1f records/sec (%.2f MB/sec), p99 %.2f ms.", runs, median(rates), median(mbs), median(p99s)))
        }
        withExtendedLifetime(mock) {}
    }

    /// Printable ASCII (so the same records can be fed to `kcat -P -l`), deterministic.
    static func payload(size: Int) -> [UInt8] {
        var random = SplitMix64(seed: 0x9E37_79B9_7F4A_7C15)
        return (0..<size).map { _ in UInt8(ascii: "A") + UInt8(random.below(26)) }
    }

    static func produce(
        kafka: KafkaConfiguration, topic: String, count: Int, payload: [UInt8], acks: String, compression: KafkaCompression, linger: Double, logger: Logger
    ) async throws -> BenchResult {
        var config = KafkaProducerConfiguration(kafka: kafka)
        config.acks = parseAcks(acks)
        config.idempotence = config.acks == -1
        config.compression = compression
        config.lingerMilliseconds = linger
        let producer = try KafkaProducer(configuration: config, logger: logger)
        _ = try await producer.metadata(timeout: .seconds(5))
        // Like kafka-producer-perf-test, latency is sampled (every 16th record): reading the clock
        // for every record costs more than producing it on some virtual machines.
        let latencySampling = 16
        let sendTimes = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: count / latencySampling + 2)
        defer { sendTimes.deallocate() }
        nonisolated(unsafe) let times = sendTimes
        let collector = Task { () -> (latencies: [UInt32], failures: Int, firstError: String?) in
            var latencies: [UInt32] = []
            latencies.reserveCapacity(count)
            var failures = 0
            var delivered = 0
            var firstError: String?
            for await batch in producer.deliveryReports {
                let now = DispatchTime.now().uptimeNanoseconds
                for report in batch {
                    if let error = report.error {
                        failures += 1
                        if firstError == nil { firstError = error.message }
                    } else if Int(report.messageID) % latencySampling == 0 {
                        latencies.append(UInt32(clamping: (now &- times[Int(report.messageID) / latencySampling]) / 1000))
                    } else {
                        delivered += 1
                    }
                }
                if latencies.count + delivered + failures >= count { break }
            }
            return (latencies, failures, firstError)
        }
        let message = ProducerMessage(topic: topic, value: payload)
        let clock = ContinuousClock()
        let start = clock.now
        var sent = 0
        while sent < count {
            if (sent + 1) % latencySampling == 0 { times[(sent + 1) / latencySampling] = DispatchTime.now().uptimeNanoseconds }
            // The synchronous path first; `enqueue` (which waits for space) only when the queue is full.
            let id: UInt64
            do {
                id = try producer.tryEnqueue(message)
            } catch let error as KafkaError where error.code == .queueFull {
                id = try await producer.enqueue(message)
            }
            precondition(Int(id) == sent + 1, "bench relies on consecutive message ids")
            sent += 1
        }
        var (latencies, failures, firstError) = await collector.value
        let elapsed = clock.now - start
        try await producer.close(timeout: .seconds(30))
        if failures > 0 {
            throw ValidationError("\(failures) of \(count) records failed: \(firstError ?? "unknown error")")
        }
        latencies.sort()
        let seconds = elapsed.seconds
        return BenchResult(records: count, bytes: count * payload.count, seconds: seconds, latenciesMicros: latencies)
    }
}

struct BenchConsume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume", abstract: "Consume N records from the beginning of a topic; report records/s and MB/s.")
    @OptionGroup var target: BenchTarget
    @Option(help: "Topic.") var topic: String = "tape.bench"
    @Option(help: "Records to consume per run (with --mock-brokers they are produced first).") var count: Int = 1_000_000
    @Option(help: "Record size when producing into a mock cluster.") var size: Int = 100
    @Option(help: "Runs; the median is reported last.") var runs: Int = 1

    func validate() throws {
        guard count > 0, runs > 0 else { throw ValidationError("--count and --runs must be positive; got \(count), \(runs).") }
        guard (0...(100 << 20)).contains(size) else { throw ValidationError("--size must be from 0 to 104857600 bytes; got \(size).") }
    }

    func run() async throws {
        let (kafkaConfig, mock) = try target.connect(topic: topic)
        let logger = target.kafka.logger("tape.bench")
        if mock != nil {
            _ = try await BenchProduce.produce(
                kafka: kafkaConfig, topic: topic, count: count, payload: BenchProduce.payload(size: size), acks: "1", compression: .none, linger: 5,
                logger: logger)
        }
        var rates: [Double] = []
        var mbs: [Double] = []
        for run in 1...runs {
            var config = KafkaConsumerConfiguration(kafka: kafkaConfig)
            config.kafka.properties["fetch.wait.max.ms"] = config.kafka.properties["fetch.wait.max.ms"] ?? "100"
            let consumer = try KafkaConsumer(configuration: config, logger: logger)
            let md = try await consumer.metadata(timeout: .seconds(5))
            guard let t = md.topics.first(where: { $0.name == topic }), !t.partitions.isEmpty else {
                throw ValidationError("Topic '\(topic)' does not exist; run `tape bench produce --topic \(topic)` first.")
            }
            // Read what is there (at most `count`): librdkafka's mock cluster keeps only the last
            // ~5 MB of each partition, so a topic may hold fewer records than were produced.
            var available: Int64 = 0
            for p in t.partitions {
                let id = p.id
                guard
                    let (low, high) = await answer(
                        within: .seconds(10),
                        {
                            try await consumer.watermarks(topic: topic, partition: id)
                        })
                else {
                    throw ValidationError("The broker did not answer for the offsets of \(topic)[\(id)] within 10 s.")
                }
                available += high - low
            }
            let target = min(count, Int(available))
            if target < count { printError("note: \(topic) holds \(available) records; consuming those.") }
            guard target > 0 else { throw ValidationError("Topic '\(topic)' is empty.") }
            try consumer.assign(t.partitions.map { .init(topic: topic, partition: $0.id, offset: KafkaOffset.beginning) })
            let clock = ContinuousClock()
            let start = clock.now
            var records = 0
            var bytes = 0
            // A run that stops receiving is reported (what arrived, per partition) instead of
            // waiting forever.
            let progress = BenchConsumeProgress(partitions: t.partitions.map(\.id))
            let watchdog = Task {
                var last = -1
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(10))
                    let now = progress.records
                    if now == last && !Task.isCancelled {
                        var lines: [String] = []
                        // The log range comes from the broker; a broker that does not answer (it
                        // may be why nothing arrives) gets 2 s once, not 10 s per partition.
                        var brokerAnswers = true
                        for p in t.partitions {
                            var range = "log range unknown (the broker did not answer within 2 s)"
                            if brokerAnswers {
                                let id = p.id
                                if let (low, high) = await answer(
                                    within: .seconds(2),
                                    {
                                        try await consumer.watermarks(topic: topic, partition: id, timeout: .seconds(2))
                                    })
                                {
                                    range = "log \(low)..<\(high)"
                                } else {
                                    brokerAnswers = false
                                }
                            }
                            let (n, lastOffset) = progress.partition(p.id)
                            lines.append("  partition \(p.id): \(n) records received, last offset \(lastOffset), \(range)")
                        }
                        let queued = consumer.queuedMessages
                        printError(
                            "bench consume: no record for 10 s after \(now) of \(target) (queued in librdkafka: \(queued.inLibrdkafka), "
                                + "batches not yet read: \(queued.bufferedBatches)); per partition:\n" + lines.joined(separator: "\n"))
                        Foundation.exit(3)
                    }
                    last = now
                }
            }
            for try await batch in consumer.batches {
                for m in batch { bytes += m.value?.count ?? 0 }
                progress.add(batch)
                records += batch.count
                if records >= target { break }
            }
            watchdog.cancel()
            let elapsed = clock.now - start
            consumer.close()
            let seconds = elapsed.seconds
            let result = BenchResult(records: records, bytes: bytes, seconds: seconds, latenciesMicros: [])
            rates.append(result.recordsPerSecond)
            mbs.append(result.megabytesPerSecond)
            print(
                String(
                    format: "run %d: %d records consumed, %.1f records/sec (%.2f MB/sec) in %.2f s.", run, records, result.recordsPerSecond,
                    result.megabytesPerSecond, seconds))
        }
        if runs > 1 {
            print(String(format: "median of %d runs: %.1f records/sec (%.2f MB/sec).", runs, median(rates), median(mbs)))
        }
        withExtendedLifetime(mock) {}
    }
}

/// The result of `operation`, or nil if it fails or has not answered within `limit`. Unlike a task
/// group, it does not wait for an operation that ignores cancellation: a blocking librdkafka call
/// such as `rd_kafka_query_watermark_offsets` waits for its request's own timeout (60 s) when the
/// broker is frozen, whatever timeout it is given. The abandoned call finishes in the background.
func answer<R: Sendable>(within limit: Duration, _ operation: @escaping @Sendable () async throws -> R) async -> R? {
    let once = FirstClaim()
    return await withCheckedContinuation { (continuation: CheckedContinuation<R?, Never>) in
        let timer = Task {
            try? await Task.sleep(for: limit)
            if once.claim() { continuation.resume(returning: nil) }
        }
        Task {
            let value = try? await operation()
            if once.claim() {
                timer.cancel()  // no sleeping task left behind per answered call
                continuation.resume(returning: value)
            }
        }
    }
}

/// `claim()` is true for the first caller only.
final class FirstClaim: Sendable {
    private let done = Mutex(false)
    func claim() -> Bool {
        done.withLock { d in
            defer { d = true }
            return !d
        }
    }
}

/// What a `bench consume` run has received, per partition (read by its stall watchdog).
final class BenchConsumeProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [Int32: (records: Int, lastOffset: Int64)] = [:]

    init(partitions: [Int32]) { for p in partitions { counts[p] = (0, -1) } }

    /// One dictionary update per run of same-partition records (a batch is mostly one or a few).
    func add(_ batch: [KafkaMessage]) {
        lock.lock()
        defer { lock.unlock() }
        var i = 0
        while i < batch.count {
            let partition = batch[i].partition
            var j = i + 1
            while j < batch.count && batch[j].partition == partition { j += 1 }
            let c = counts[partition] ?? (0, -1)
            counts[partition] = (c.records + j - i, batch[j - 1].offset)
            i = j
        }
    }

    var records: Int {
        lock.lock()
        defer { lock.unlock() }
        return counts.values.reduce(0) { $0 + $1.records }
    }

    func partition(_ p: Int32) -> (records: Int, lastOffset: Int64) {
        lock.lock()
        defer { lock.unlock() }
        return counts[p] ?? (0, -1)
    }
}
