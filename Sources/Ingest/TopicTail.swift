import Exchanges
import KafkaClient
import Logging
import Synchronization

/// Reads the last records of every partition of the trades topic, to learn what an earlier run
/// already published (restart after a crash resumes without duplicates).
enum TopicTail {
    /// The trades of `exchange` found in the last `recordsPerPartition` records of each partition,
    /// per native symbol, in log order. A missing topic gives nothing.
    ///
    /// It reads up to the end offsets, then asks for them again (twice, 300 ms apart) and reads on
    /// if they moved: records a crashed run still had in flight may land late and must be known
    /// before anything is published. A consumer that stops making progress for a few seconds is
    /// replaced by a new one at the offsets reached (seen with librdkafka's mock cluster after a
    /// producer was killed mid-request).
    static func read(
        topic: String, exchange: Exchange, recordsPerPartition: Int, kafka: KafkaConfiguration, logger: Logger,
        timeout: Duration = .seconds(60), stallTimeout: Duration = .seconds(4)
    ) async throws -> [String: [Trade]] {
        guard recordsPerPartition > 0 else { return [:] }
        var configuration = KafkaConsumerConfiguration(kafka: kafka)
        configuration.autoOffsetReset = .earliest
        configuration.groupID = "tape-ingest-tail"
        let probe = try KafkaConsumer(configuration: configuration, logger: logger)
        defer { probe.close() }
        let metadata = try await probe.metadata(timeout: .seconds(10))
        guard let info = metadata.topics.first(where: { $0.name == topic }), !info.partitions.isEmpty else {
            return [:]
        }
        let partitions = info.partitions.map(\.id)
        var next: [Int32: Int64] = [:]
        var ends: [Int32: Int64] = [:]
        for partition in partitions {
            let (low, high) = try await probe.watermarks(topic: topic, partition: partition)
            // Watermarks come from the broker: saturate rather than trap on absurd ones.
            let (start, overflow) = high.subtractingReportingOverflow(Int64(recordsPerPartition))
            next[partition] = overflow ? low : max(low, start)
            ends[partition] = high
        }
        guard ends.values.contains(where: { $0 > 0 }) else { return [:] }
        logger.info(
            "reading the tail of \(topic)",
            metadata: [
                "from": "\(next.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ","))",
                "to": "\(ends.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ","))",
            ])
        let state = TailState(next: next, ends: ends, exchange: exchange)
        let deadline = ContinuousClock.now + timeout
        var stableChecks = 0
        var consumersUsed = 0
        while stableChecks < 2 {
            if !state.isComplete {
                guard ContinuousClock.now < deadline, consumersUsed < 8 else {
                    throw IngestError(
                        "could not read the last \(recordsPerPartition) records of \(topic) within \(timeout) (\(state.progressText)); is Kafka healthy? (use --tail-records 0 to skip resuming)")
                }
                consumersUsed += 1
                let missing = state.unfinished
                if consumersUsed > 1 {
                    logger.warning("reading the tail of \(topic) stalled; retrying with a new consumer", metadata: ["at": "\(state.progressText)"])
                }
                try await readUntilStalled(topic: topic, configuration: configuration, logger: logger, state: state, stallTimeout: stallTimeout)
                // A second consumer that also stops short of the same offset: nothing is there.
                if consumersUsed > 1, state.unfinished == missing {
                    let holes = state.acceptHoles(at: missing)
                    logger.warning("offsets with no record in \(topic) skipped while resuming", metadata: ["count": "\(holes)"])
                }
                continue
            }
            try await Task.sleep(for: .milliseconds(300))
            var moved = false
            for partition in partitions {
                let (_, high) = try await probe.watermarks(topic: topic, partition: partition)
                if state.extend(partition: partition, to: high) { moved = true }
            }
            stableChecks = moved ? 0 : stableChecks + 1
        }
        let (perPartition, undecodable) = state.result
        logger.info(
            "read the tail of \(topic)",
            metadata: ["trades": "\(perPartition.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.count)" }.joined(separator: ","))"])
        if undecodable > 0 {
            logger.warning("records in \(topic) that are not trades were skipped while resuming", metadata: ["count": "\(undecodable)"])
        }
        var bySymbol: [String: [Trade]] = [:]
        for partition in perPartition.keys.sorted() {
            for trade in perPartition[partition]! { bySymbol[trade.nativeSymbol, default: []].append(trade) }
        }
        return bySymbol
    }

    /// One consumer, assigned where `state` stands, reading until complete or until it makes no
    /// progress for `stallTimeout`.
    static func readUntilStalled(
        topic: String, configuration: KafkaConsumerConfiguration, logger: Logger, state: TailState, stallTimeout: Duration
    ) async throws {
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        defer { consumer.close() }
        try consumer.assign(state.unfinished.map { TopicPartitionOffset(topic: topic, partition: $0.key, offset: $0.value) })
        let reader = Task {
            for try await batch in consumer.batches {
                state.append(batch)
                if state.isComplete { return }
            }
        }
        var lastProgress = ContinuousClock.now
        var lastCount = state.recordsRead
        while !state.isComplete {
            try await Task.sleep(for: .milliseconds(100))
            let count = state.recordsRead
            if count != lastCount {
                lastCount = count
                lastProgress = .now
            } else if lastProgress.duration(to: .now) >= stallTimeout {
                break
            }
        }
        reader.cancel()
        _ = await reader.result
    }
}

/// Where a tail read stands, shared by the reading task and its watchdog. Offsets are tracked one
/// by one: records are taken once each, whatever order they arrive in, and the read is complete
/// only when every offset up to the end was seen (or a hole was confirmed by a second consumer).
final class TailState: Sendable {
    struct Progress: Sendable {
        var start: [Int32: Int64]
        var ends: [Int32: Int64]
        var seen: [Int32: Set<Int64>] = [:]
        /// Lowest offset not seen yet, per partition.
        var low: [Int32: Int64]
        var records: [Int32: [(Int64, Trade)]] = [:]
        var undecodable = 0
        var recordsRead = 0
        var holes = 0

        mutating func advanceLow(_ partition: Int32) {
            var l = low[partition, default: 0]
            let seenHere = seen[partition, default: []]
            while l < Int64.max && seenHere.contains(l) { l += 1 }
            low[partition] = l
        }
    }
    private let progress: Mutex<Progress>
    private let exchange: Exchange

    init(next: [Int32: Int64], ends: [Int32: Int64], exchange: Exchange) {
        progress = Mutex(Progress(start: next, ends: ends, low: next))
        self.exchange = exchange
    }

    func append(_ batch: [KafkaMessage]) {
        progress.withLock { p in
            var touched: Set<Int32> = []
            for message in batch where message.offset >= p.start[message.partition, default: 0] {
                guard p.seen[message.partition, default: []].insert(message.offset).inserted else { continue }
                if let value = message.value, let trade = try? Trade(json: value) {
                    if trade.exchange == exchange { p.records[message.partition, default: []].append((message.offset, trade)) }
                } else {
                    p.undecodable += 1
                }
                p.recordsRead += 1
                touched.insert(message.partition)
            }
            for partition in touched { p.advanceLow(partition) }
        }
    }

    /// Raises a partition's end; true if it moved.
    func extend(partition: Int32, to high: Int64) -> Bool {
        progress.withLock { p in
            guard high > p.ends[partition, default: 0] else { return false }
            p.ends[partition] = high
            return true
        }
    }

    /// Takes the lowest missing offset of each unfinished partition as a hole (nothing there).
    func acceptHoles(at offsets: [Int32: Int64]) -> Int {
        progress.withLock { p in
            var accepted = 0
            for (partition, offset) in offsets where p.low[partition] == offset {
                p.seen[partition, default: []].insert(offset)
                p.advanceLow(partition)
                accepted += 1
            }
            p.holes += accepted
            return accepted
        }
    }

    var isComplete: Bool { progress.withLock { p in !p.ends.contains { p.low[$0.key, default: 0] < $0.value } } }
    /// Unfinished partitions and the lowest offset still missing in each.
    var unfinished: [Int32: Int64] {
        progress.withLock { p in p.low.filter { $0.value < p.ends[$0.key, default: 0] } }
    }
    var recordsRead: Int { progress.withLock { $0.recordsRead } }
    /// Trades per partition in offset order, and the count of records that were not trades.
    var result: ([Int32: [Trade]], Int) {
        progress.withLock { p in
            (p.records.mapValues { $0.sorted { $0.0 < $1.0 }.map(\.1) }, p.undecodable)
        }
    }
    var progressText: String {
        progress.withLock { p in
            p.ends.keys.sorted().map { "partition \($0) complete to \(p.low[$0, default: 0]) of \(p.ends[$0]!)" }.joined(separator: ", ")
        }
    }
}
