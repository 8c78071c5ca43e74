import ArgumentParser
import Foundation
import KafkaClient

/// `tape bench latency`: one Kafka hop at a steady rate — producer → broker → consumer — timed
/// per record. Each value starts with the wall-clock time it was handed to the producer; the
/// consumer (in the same process, so the same clock) subtracts it from the time it holds the
/// record. This is the hop every stage of `tape up` adds (ingest → process → serve is two).
struct BenchLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Produce-to-consume latency of one Kafka hop at a steady rate (p50/p99/max).",
        discussion: """
            librdkafka's mock cluster (--mock-brokers) does not answer a waiting fetch when data \
            arrives, only after fetch.wait.max.ms (500 ms by default): against it, pass \
            -X fetch.wait.max.ms=1 or the figure is that timeout. Kafka and `tape broker` answer at once.
            """)
    @OptionGroup var target: BenchTarget
    @Option(help: "Topic (created on the mock cluster; on a real cluster it must exist or be auto-created).") var topic: String = "tape.bench.latency"
    @Option(help: "Records per second.") var rate: Double = 2_000
    @Option(help: "Seconds measured (after a 1 s warm-up).") var seconds: Double = 10
    @Option(help: "Record size in bytes (at least 8).") var size: Int = 200
    @Option(help: "Producer linger.ms.") var linger: Double = 0
    @Option(help: "acks: all, 0 or 1.") var acks: String = "all"

    func validate() throws {
        guard rate > 0, seconds > 0, size >= 8 else {
            throw ValidationError("--rate and --seconds must be positive, --size at least 8; got \(rate.flagText), \(seconds.flagText), \(size).")
        }
        guard ["all", "-1", "0", "1"].contains(acks) else { throw ValidationError("--acks must be all, -1, 0 or 1; got \(acks).") }
        guard rate <= 10_000_000, seconds <= 86_400, size <= 100 << 20, linger.isFinite, linger >= 0, linger <= 900_000 else {
            throw ValidationError("--rate at most 10000000, --seconds at most 86400, --size at most 104857600, --linger from 0 to 900000 ms.")
        }
    }

    func run() async throws {
        let (kafka, mock) = try target.connect(topic: topic)
        let logger = target.kafka.logger("tape.bench")
        var producerConfig = KafkaProducerConfiguration(kafka: kafka)
        producerConfig.acks = parseAcks(acks)
        producerConfig.idempotence = producerConfig.acks == -1
        producerConfig.lingerMilliseconds = linger
        let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        let metadata = try await producer.metadata(timeout: .seconds(5))
        // A record makes sure the topic exists (auto-creation) before the consumer looks it up.
        try await producer.send(ProducerMessage(topic: topic, value: Array(repeating: 0, count: size)))
        var partitions = metadata.topics.first(where: { $0.name == topic })?.partitions.map(\.id) ?? []
        if partitions.isEmpty {
            let again = try await producer.metadata(timeout: .seconds(5))
            partitions = again.topics.first(where: { $0.name == topic })?.partitions.map(\.id) ?? []
        }
        guard !partitions.isEmpty else { throw ValidationError("Topic '\(topic)' does not exist.") }

        let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(kafka: kafka), logger: logger)
        try consumer.assign(partitions.map { .init(topic: topic, partition: $0, offset: KafkaOffset.end) })
        let warmup = 1.0
        let total = Int(rate * (seconds + warmup))
        let measuredFrom = Int(rate * warmup)
        let receiver = Task { () -> [UInt32] in
            var latencies: [UInt32] = []
            latencies.reserveCapacity(total)
            var seen = 0
            for try await batch in consumer.batches {
                let now = DispatchTime.now().uptimeNanoseconds
                for m in batch {
                    guard let value = m.value, value.count >= 16 else { continue }
                    let sent = value.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    let index = value.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
                    seen += 1
                    if index >= UInt64(measuredFrom) { latencies.append(UInt32(clamping: (now &- sent) / 1000)) }
                }
                if seen >= total { break }
            }
            return latencies
        }
        // Give the consumer time to fetch from the end before the first timed record.
        try await Task.sleep(for: .milliseconds(500))
        printError(
            "bench latency: \(Int(rate)) records/s of \(size) bytes for \(seconds) s (+\(warmup) s warm-up), linger.ms \(linger), acks \(acks), partitions \(partitions.count), \(kafka.bootstrapServers)"
        )
        var value = [UInt8](repeating: UInt8(ascii: "x"), count: max(size, 16))
        let start = DispatchTime.now().uptimeNanoseconds
        let interval = 1e9 / rate
        var sent = 0
        while sent < total {
            let due = start + UInt64(Double(sent) * interval)
            let now = DispatchTime.now().uptimeNanoseconds
            if due > now {
                try await Task.sleep(for: .nanoseconds(Int(due - now)))
                continue
            }
            let stamp = DispatchTime.now().uptimeNanoseconds
            value.withUnsafeMutableBytes {
                $0.storeBytes(of: stamp, as: UInt64.self)
                $0.storeBytes(of: UInt64(sent), toByteOffset: 8, as: UInt64.self)
            }
            let message = ProducerMessage(topic: topic, partition: partitions[sent % partitions.count], value: value)
            do {
                _ = try producer.tryEnqueue(message)
            } catch let error as KafkaError where error.code == .queueFull {
                _ = try await producer.enqueue(message)
            }
            sent += 1
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(10))
            consumer.close()
        }
        var latencies = try await receiver.value
        timeout.cancel()
        consumer.close()
        try await producer.close(timeout: .seconds(10))
        latencies.sort()
        guard !latencies.isEmpty else { throw ValidationError("No record came back within 10 s of the last send.") }
        let result = BenchResult(records: latencies.count, bytes: 0, seconds: seconds, latenciesMicros: latencies)
        print(
            String(
                format: "%d records, one hop produce → consume: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms",
                latencies.count, result.percentile(0.5), result.percentile(0.9), result.percentile(0.99), result.percentile(0.999),
                Double(latencies.last!) / 1000))
        withExtendedLifetime(mock) {}
    }
}
