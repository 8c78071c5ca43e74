import Exchanges
import KafkaClient
import Logging

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
            guard high > low else { continue }
            start.append(TopicPartitionOffset(topic: topic, partition: partition.id, offset: max(low, high - Int64(recordsPerPartition))))
            end[partition.id] = high
        }
        guard !start.isEmpty else { return [:] }
        try consumer.assign(start)
        let remaining = Set(end.keys)
        let ends = end
        let collected = try await withThrowingTaskGroup(of: ([Int32: [Trade]], Int)?.self) { group in
            group.addTask {
                var perPartition: [Int32: [Trade]] = [:]
                var remaining = remaining
                var undecodable = 0
                for try await batch in consumer.batches {
                    for message in batch {
                        if let value = message.value, let trade = try? Trade(json: value) {
                            if trade.exchange == exchange { perPartition[message.partition, default: []].append(trade) }
                        } else {
                            undecodable += 1
                        }
                        if let high = ends[message.partition], message.offset + 1 >= high { remaining.remove(message.partition) }
                    }
                    if remaining.isEmpty { break }
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
                    "could not read the last \(recordsPerPartition) records of \(topic) within \(timeout); is Kafka healthy? (use --tail-records 0 to skip resuming)")
            }
            return result
        }
        let perPartition = collected.0
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
