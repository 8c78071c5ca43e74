import Foundation
import KafkaClient
import Logging
import MarketData
import Processing
import TapeTestSupport

/// Which cluster an integration test runs against.
enum ClusterKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// `tape mock-cluster`: librdkafka's in-memory mock cluster, a broker Tape did not write.
    case mockCluster = "mock-cluster"
    /// `tape broker`: Tape's own broker, durable, on a free loopback port with a temporary data directory.
    case tapeBroker = "tape-broker"

    var description: String { rawValue }
}

/// A cluster as a child process, with the topics a test needs created (partition counts as given;
/// `compacted` ones with `cleanup.policy=compact` where the cluster supports topic configs).
final class TestCluster {
    let kind: ClusterKind
    let child: ChildProcess
    let bootstrap: String

    private init(kind: ClusterKind, child: ChildProcess, bootstrap: String) {
        self.kind = kind
        self.child = child
        self.bootstrap = bootstrap
    }

    static func start(_ kind: ClusterKind, topics: [String: Int32], compacted: Set<String> = [], logDirectory: URL) async throws -> TestCluster {
        switch kind {
        case .mockCluster:
            // The mock cluster has no CreateTopics: its command creates them (no topic configs).
            var args = ["mock-cluster", "--brokers", "1"]
            for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) { args += ["--topic", "\(name):\(partitions)"] }
            let child = try ChildProcess(args, name: "mock-cluster", logDirectory: logDirectory)
            return TestCluster(kind: kind, child: child, bootstrap: try child.firstLine())
        case .tapeBroker:
            let dataDir = logDirectory.appendingPathComponent("broker-data")
            // A port that was free a moment ago; another process may take it first, so try a few.
            var lastLog = ""
            for attempt in 0..<5 {
                let port = Loopback.freePort()
                let child = try ChildProcess(
                    ["broker", "--listen", "127.0.0.1:\(port)", "--data-dir", dataDir.path, "--auto-create-topics", "false", "--log-level", "notice"],
                    name: "tape-broker-\(attempt)", logDirectory: logDirectory)
                let deadline = Date().addingTimeInterval(20)
                while Date() < deadline && child.isRunning && !Loopback.canConnect(port: port) { try await Task.sleep(for: .milliseconds(50)) }
                guard child.isRunning, Loopback.canConnect(port: port) else {
                    lastLog = child.stderr
                    child.kill9()
                    continue
                }
                let cluster = TestCluster(kind: kind, child: child, bootstrap: "127.0.0.1:\(port)")
                let admin = try KafkaAdmin(configuration: Kafka.configuration(cluster.bootstrap), timeout: .seconds(10), logger: Kafka.quietLogger)
                for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
                    try await admin.createTopic(name, partitions: partitions, configs: compacted.contains(name) ? ["cleanup.policy": "compact"] : [:])
                }
                let listed = Dictionary(try await admin.listTopics().map { ($0.name, Int32($0.partitions.count)) }, uniquingKeysWith: { a, _ in a })
                for (name, partitions) in topics where listed[name] != partitions {
                    throw TestSupportError("tape broker lists \(name) with \(listed[name] ?? 0) partitions, not \(partitions)")
                }
                return cluster
            }
            throw TestSupportError("tape broker did not start: \(lastLog)")
        }
    }

    deinit { child.terminate(timeout: 5) }
}

enum Kafka {
    static func configuration(_ bootstrap: String) -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: bootstrap)
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "tape.test")
        logger.logLevel = .critical
        return logger
    }

    /// Produces trades keyed `exchange:SYMBOL` (plus raw extra values), waiting for every ack.
    static func produce(_ trades: [Trade], extra: [(key: String, value: String)] = [], topic: String, bootstrap: String) async throws {
        var config = KafkaProducerConfiguration(kafka: configuration(bootstrap))
        config.deliveryReports = false
        let producer = try KafkaProducer(configuration: config, logger: quietLogger)
        for t in trades {
            _ = try await producer.enqueue(ProducerMessage(topic: topic, key: Array(t.kafkaKey.utf8), value: t.jsonBytes, timestamp: t.time))
        }
        for e in extra {
            _ = try await producer.enqueue(ProducerMessage(topic: topic, key: Array(e.key.utf8), value: Array(e.value.utf8)))
        }
        try await producer.flush(timeout: .seconds(60))
        try await producer.close()
    }

    /// Every record of a topic as it is now (all partitions, beginning to high watermark).
    static func readAll(topic: String, partitions: Int32, bootstrap: String) async throws -> [KafkaMessage] {
        var config = KafkaConsumerConfiguration(kafka: configuration(bootstrap))
        config.autoOffsetReset = .earliest
        let consumer = try KafkaConsumer(configuration: config, logger: quietLogger)
        defer { consumer.close() }
        var ends: [Int32: Int64] = [:]
        for p in 0..<partitions {
            let high = try await consumer.watermarks(topic: topic, partition: p).high
            if high > 0 { ends[p] = high }
        }
        if ends.isEmpty { return [] }
        try consumer.assign(ends.keys.map { .init(topic: topic, partition: $0, offset: KafkaOffset.beginning) })
        // Done when the consumer's position reached each high watermark: a transactional topic
        // ends in a commit or abort marker, which no consumer is handed, so the last record read
        // is not the last offset.
        let out = Locked<[KafkaMessage]>([])
        let limits = ends
        let reader = Task {
            for try await batch in consumer.batches {
                out.withLock { $0 += batch.filter { $0.offset < (limits[$0.partition] ?? 0) } }
            }
        }
        defer { reader.cancel() }
        let deadline = Date().addingTimeInterval(60)
        while true {
            let positions = consumer.positions(ends.keys.map { (topic, $0) })
            if ends.allSatisfy({ end in positions.contains { $0.partition == end.key && $0.offset >= end.value } }) { break }
            if Date() > deadline { throw TestSupportError("could not read \(topic) to its end (positions \(positions), ends \(ends))") }
            try await Task.sleep(for: .milliseconds(100))
        }
        // The positions move when librdkafka hands records to the consumer's polling thread; the
        // reader takes them from there a moment later: wait until no more arrive.
        var count = -1
        while count != out.withLock({ $0.count }) {
            count = out.withLock { $0.count }
            try await Task.sleep(for: .milliseconds(250))
        }
        return out.withLock { $0 }
    }

    /// Records of `topic` in transactions still open: over all partitions, the high watermark
    /// (what a read_uncommitted reader can read up to) less the last stable offset (read_committed).
    static func openTransactionRecords(topic: String, partitions: Int32, bootstrap: String) async throws -> Int64 {
        var uncommitted = KafkaConsumerConfiguration(kafka: configuration(bootstrap))
        uncommitted.kafka.properties["isolation.level"] = "read_uncommitted"
        var committed = KafkaConsumerConfiguration(kafka: configuration(bootstrap))
        committed.kafka.properties["isolation.level"] = "read_committed"
        let high = try KafkaConsumer(configuration: uncommitted, logger: quietLogger)
        let stable = try KafkaConsumer(configuration: committed, logger: quietLogger)
        defer {
            high.close()
            stable.close()
        }
        var open: Int64 = 0
        for p in 0..<partitions {
            open += try await high.watermarks(topic: topic, partition: p).high - stable.watermarks(topic: topic, partition: p).high
        }
        return open
    }

    /// Waits until `group` has committed the high watermark of every non-empty partition.
    static func waitUntilCommitted(group: String, topic: String, partitions: Int32, bootstrap: String, timeout: TimeInterval) async throws -> Bool {
        let admin = try KafkaAdmin(configuration: configuration(bootstrap), logger: quietLogger)
        var highs: [TopicPartitionOffset] = []
        for p in 0..<partitions {
            let high = try await admin.watermarks(topic: topic, partition: p).high
            if high > 0 { highs.append(.init(topic: topic, partition: p, offset: high)) }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let committed = try await admin.committedOffsets(
                group: group, partitions: highs.map { .init(topic: $0.topic, partition: $0.partition, offset: KafkaOffset.invalid) })
            let done = highs.allSatisfy { h in committed.contains { $0.partition == h.partition && $0.offset >= h.offset } }
            if done { return true }
            try await Task.sleep(for: .milliseconds(500))
        }
        return false
    }
}

/// The contract check: latest candle per key in the candles topic (and optionally the store) vs.
/// the batch recomputation over every trade in the trades topic.
enum Contract {
    static func mismatches(
        trades tradesTopic: String, tradePartitions: Int32, candles candlesTopic: String, candlePartitions: Int32,
        intervals: [CandleInterval], bootstrap: String, store: CandleStore? = nil
    ) async throws -> (checked: Int, problems: [String]) {
        let tradeRecords = try await Kafka.readAll(topic: tradesTopic, partitions: tradePartitions, bootstrap: bootstrap)
        // A cluster that dropped the oldest trades (the mock keeps about 5 MB per partition) makes
        // the batch result incomplete: say so instead of listing the windows that differ.
        let admin = try KafkaAdmin(configuration: Kafka.configuration(bootstrap), logger: Kafka.quietLogger)
        for p in 0..<tradePartitions {
            let low = try await admin.watermarks(topic: tradesTopic, partition: p).low
            if low > 0 {
                return (
                    0,
                    [
                        "\(tradesTopic) partition \(p) starts at offset \(low): the cluster dropped its oldest trades, so the batch result cannot be computed (too many trades for the mock's ~5 MB per partition?)"
                    ]
                )
            }
        }
        var sequenced: [BatchCandles.SequencedTrade] = []
        for m in tradeRecords.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
            guard let value = m.value, let trade = try? Trade(json: value) else { continue }
            sequenced.append(.init(trade: trade, sequence: m.offset))
        }
        let reference = BatchCandles.compute(sequenced, intervals: intervals)
        var latest: [String: Candle] = [:]
        var problems: [String] = []
        for m in try await Kafka.readAll(topic: candlesTopic, partitions: candlePartitions, bootstrap: bootstrap) {
            guard let key = m.key, let value = m.value else { continue }
            do {
                let candle = try Candle(json: value)
                if candle.kafkaKey != String(decoding: key, as: UTF8.self) {
                    problems.append("key \(String(decoding: key, as: UTF8.self)) holds \(candle.kafkaKey)")
                }
                latest[candle.kafkaKey] = candle
            } catch {
                problems.append("undecodable candle at \(m.partition)@\(m.offset): \(error)")
            }
        }
        problems += compare(latest, reference, source: "topic")
        if let store {
            var stored: [String: Candle] = [:]
            for s in try store.symbols() {
                for interval in s.intervals {
                    for c in try store.candles(exchange: s.exchange, symbol: s.symbol, interval: interval) { stored[c.kafkaKey] = c }
                }
            }
            problems += compare(stored, reference, source: "sqlite")
        }
        return (reference.count, problems)
    }

    static func compare(_ latest: [String: Candle], _ reference: [String: Candle], source: String) -> [String] {
        var problems: [String] = []
        for (key, ref) in reference.sorted(by: { $0.key < $1.key }) {
            guard let got = latest[key] else {
                problems.append("\(source) \(key): missing")
                continue
            }
            if let diff = BatchCandles.difference(got, ref) { problems.append("\(source) \(key): \(diff)") }
        }
        for key in latest.keys.sorted() where reference[key] == nil { problems.append("\(source) \(key): not in the batch result") }
        return problems
    }
}
