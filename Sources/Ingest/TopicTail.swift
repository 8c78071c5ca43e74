import Exchanges
import KafkaClient
import Logging
import Synchronization

/// Reads the last records of every partition of the trades topic, to learn what an earlier run
/// already published (restart after a crash resumes without duplicates).
enum TopicTail {
    /// The trades of `exchange` found in the last `recordsPerPartition` records of each partition,
    /// per native symbol, in log order. A missing topic gives nothing.
    static func read(
        topic: String, exchange: Exchange, recordsPerPartition: Int, kafka: KafkaConfiguration, logger: Logger,
        timeout: Duration = .seconds(30)
    ) async throws -> [String: [Trade]] {
        guard recordsPerPartition > 0 else { return [:] }
        var configuration = KafkaConsumerConfiguration(kafka: kafka)
        configuration.autoOffsetReset = .earliest
        configuration.groupID = "tape-ingest-tail"
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        defer { consumer.close() }
        let metadata = try await consumer.metadata(timeout: .seconds(10))
        guard let info = metadata.topics.first(where: { $0.name == topic }), !info.partitions.isEmpty else {
            return [:]
        }
        var start: [TopicPartitionOffset] = []
        var end: [Int32: Int64] = [:]
        for partition in info.partitions {
            let (low, high) = try await consumer.watermarks(topic: topic, partition: partition.id)
            start.append(TopicPartitionOffset(topic: topic, partition: partition.id, offset: max(low, high - Int64(recordsPerPartition))))
            end[partition.id] = high
        }
        guard end.values.contains(where: { $0 > 0 }) else { return [:] }
        logger.info(
            "reading the tail of \(topic)",
            metadata: ["from": "\(start.map { "\($0.partition):\($0.offset)" }.joined(separator: ","))", "to": "\(end.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ","))"])
        try consumer.assign(start)
        let initialEnds = end
        let firstOffsets = Dictionary(uniqueKeysWithValues: start.map { ($0.partition, $0.offset) })
        let partitions = info.partitions.map(\.id)
        let progress = TailProgress()
        let collected = try await withThrowingTaskGroup(of: ([Int32: [Trade]], Int)?.self) { group in
            group.addTask {
                var perPartition: [Int32: [Trade]] = [:]
                var ends = initialEnds
                var next = firstOffsets
                var undecodable = 0
                var iterator = consumer.batches.makeAsyncIterator()
                // Read to the end; then ask again, and again after a pause: records a crashed run
                // still had in flight may land late, and must be known before anything is published.
                var stableChecks = 0
                while true {
                    while ends.contains(where: { next[$0.key, default: 0] < $0.value }) {
                        guard let batch = try await iterator.next() else { return nil }
                        for message in batch {
                            if let value = message.value, let trade = try? Trade(json: value) {
                                if trade.exchange == exchange { perPartition[message.partition, default: []].append(trade) }
                            } else {
                                undecodable += 1
                            }
                            next[message.partition] = message.offset + 1
                        }
                        progress.update(next: next, ends: ends)
                    }
                    try await Task.sleep(for: .milliseconds(300))
                    var moved = false
                    for partition in partitions {
                        let (_, high) = try await consumer.watermarks(topic: topic, partition: partition)
                        if high > ends[partition, default: 0] {
                            ends[partition] = high
                            moved = true
                        }
                    }
                    stableChecks = moved ? 0 : stableChecks + 1
                    if stableChecks >= 2 { break }
                }
                return (perPartition, undecodable)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw IngestError(
                    "could not read the last \(recordsPerPartition) records of \(topic) within \(timeout) (\(progress.text)); is Kafka healthy? (use --tail-records 0 to skip resuming)")
            }
            return result
        }
        let perPartition = collected.0
        logger.info(
            "read the tail of \(topic)",
            metadata: ["trades": "\(perPartition.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.count)" }.joined(separator: ","))"])
        let undecodable = collected.1
        if undecodable > 0 {
            logger.warning("records in \(topic) that are not trades were skipped while resuming", metadata: ["count": "\(undecodable)"])
        }
        var bySymbol: [String: [Trade]] = [:]
        for partition in perPartition.keys.sorted() {
            for trade in perPartition[partition]! { bySymbol[trade.nativeSymbol, default: []].append(trade) }
        }
        return bySymbol
    }
}

/// How far a tail read got (for the error when it cannot finish).
final class TailProgress: Sendable {
    private let state = Mutex<String>("nothing read")
    func update(next: [Int32: Int64], ends: [Int32: Int64]) {
        let text = ends.keys.sorted().map { "partition \($0) at \(next[$0, default: 0]) of \(ends[$0]!)" }.joined(separator: ", ")
        state.withLock { $0 = text }
    }
    var text: String { state.withLock { $0 } }
}
