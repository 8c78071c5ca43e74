import Foundation
import KafkaClient
import KafkaProtocol
import Logging
import Synchronization
import TapeBroker
import TapeMetrics
import TapeServer

/// Reads one topic of the embedded broker in-process: what `tape up`'s server reads instead of
/// running a Kafka consumer per topic against its own broker. The records are the same (read
/// through the broker's Fetch path, read_committed, aborted transactions dropped); what goes away
/// is a librdkafka client per topic with its threads, its TCP connection, and the request and
/// response encoding both ways (issue 18: on 2 cores every thread woken per record is latency).
///
/// Like `KafkaTopicReader`, it reads every partition without a consumer group, waits for the topic
/// to exist, and reports its lag. A partition whose position falls outside the log (the topic was
/// recreated, or retention passed it) starts again from its beginning, or from its end for a
/// reader started at the end, as a Kafka consumer's `auto.offset.reset` does.
public final class EmbeddedTopicReader: TopicRecordSource, Sendable {
    let broker: Broker
    public let topic: String
    public let start: KafkaTopicReader.Start
    public let logger: Logger
    let quietWhileMissing: Bool
    let onLag: @Sendable (ConsumerLag) -> Void
    /// Partition → next offset to read; set by `assignWhenReady`, advanced by reads.
    let positions = Mutex<[Int32: Int64]>([:])
    private let lastContact = Atomic<Int64>(0)
    /// How long a read waits for new data before answering empty (and checking for new partitions).
    let maxWaitMilliseconds: Int

    public init(
        broker: Broker, topic: String, start: KafkaTopicReader.Start, logger: Logger, quietWhileMissing: Bool = false, maxWaitMilliseconds: Int = 500,
        onLag: @escaping @Sendable (ConsumerLag) -> Void = { _ in }
    ) {
        self.broker = broker
        self.topic = topic
        self.start = start
        self.logger = logger
        self.quietWhileMissing = quietWhileMissing
        self.maxWaitMilliseconds = maxWaitMilliseconds
        self.onLag = onLag
    }

    public func touch() { lastContact.store(Int64(Date().timeIntervalSince1970 * 1000), ordering: .relaxed) }

    public var contact: FeedSample {
        let last = lastContact.load(ordering: .relaxed)
        return FeedSample(topic: topic, bootstrap: "embedded broker (in-process)", lastContact: last == 0 ? nil : last, lastError: nil)
    }

    /// The broker is in this process: it answers whenever it runs.
    public func probe() async {
        _ = await broker.localPartitionCount(of: topic)
        touch()
    }

    public func assignWhenReady() async throws -> [Int32] {
        var warned = false
        while true {
            try Task.checkCancellation()
            if let count = await broker.localPartitionCount(of: topic), count > 0 {
                touch()
                let ids = (0..<Int32(clamping: count)).map { $0 }
                let first = await startOffsets(ids)
                positions.withLock { $0 = first }
                logger.info("Reading \(topic) (\(ids.count) partitions, in-process) from \(start.description)")
                return ids
            }
            if !warned {
                logWaitingForTopic(quietly: quietWhileMissing)
                warned = true
            }
            try await Task.sleep(for: .seconds(2))
        }
    }

    /// Where each of `ids` starts, per `start`.
    func startOffsets(_ ids: [Int32]) async -> [Int32: Int64] {
        let earliest = await broker.localOffsets(topic: topic, partitions: ids, at: .earliest)
        var out: [Int32: Int64] = [:]
        switch start {
        case .end:
            let latest = await broker.localOffsets(topic: topic, partitions: ids, at: .latest)
            for id in ids { out[id] = (latest[id] ?? nil) ?? 0 }
        case .beginning:
            for id in ids { out[id] = (earliest[id] ?? nil) ?? 0 }
        case .resume(let next):
            // Kept if still inside the log; otherwise the partition's beginning (as a Kafka consumer
            // reading with auto.offset.reset=earliest would after OFFSET_OUT_OF_RANGE).
            for id in ids { out[id] = next[id].flatMap { $0 >= 0 ? $0 : nil } ?? ((earliest[id] ?? nil) ?? 0) }
        case .since(let time):
            let found = await broker.localOffsets(topic: topic, partitions: ids, at: .timestamp(time))
            let latest = await broker.localOffsets(topic: topic, partitions: ids, at: .latest)
            // Nothing that recent: the end as it is now, as a number (what arrives next is read).
            for id in ids { out[id] = (found[id] ?? nil) ?? (latest[id] ?? nil) ?? 0 }
        }
        return out
    }

    public func makeBatchIterator() -> any TopicBatchIterating { Batches(reader: self) }

    private let lagQueryInFlight = Atomic<Bool>(false)

    /// The last stable offsets now, minus the positions, summed (one query at a time).
    public func reportLagInBackground(positions: [Int32: Int64], partitions: [Int32]) {
        guard !lagQueryInFlight.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Task { [self] in
            let latest = await broker.localOffsets(topic: topic, partitions: partitions, at: .latest)
            let next = self.positions.withLock { $0 }
            var total: Int64 = 0
            for p in partitions {
                guard let end = latest[p] ?? nil, let at = next[p] else { continue }
                total += max(0, end - at)
            }
            TapeMetrics.consumerLag(group: "tape-serve", topic: topic).record(total)
            onLag(ConsumerLag(group: "tape-serve", topic: topic, messages: total))
            lagQueryInFlight.store(false, ordering: .releasing)
        }
    }

    /// One read after another; an empty read (the wait passed) reads again.
    final class Batches: TopicBatchIterating {
        let reader: EmbeddedTopicReader
        var lastPartitionCheck = ContinuousClock.now
        var corrupt = 0

        init(reader: EmbeddedTopicReader) { self.reader = reader }

        func next() async throws -> [KafkaMessage]? {
            while true {
                try Task.checkCancellation()
                if ContinuousClock.now - lastPartitionCheck > .seconds(5) {
                    lastPartitionCheck = .now
                    await reader.addNewPartitions()
                }
                let from = reader.positions.withLock { $0 }
                let began = ContinuousClock.now
                let read = await reader.broker.localRead(topic: reader.topic, positions: from, maxWaitMs: reader.maxWaitMilliseconds)
                try Task.checkCancellation()
                let settled = await reader.settle(read, from: from)
                corrupt += read.partitions.reduce(0) { $0 + $1.corruptBatches }
                if corrupt > 0 && read.partitions.contains(where: { $0.corruptBatches > 0 }) {
                    reader.logger.error("Skipped \(corrupt) undecodable batches of \(reader.topic) so far (read in-process)")
                }
                if !read.records.isEmpty {
                    reader.touch()
                    let topic = reader.topic
                    return read.records.map {
                        KafkaMessage(topic: topic, partition: $0.partition, offset: $0.offset, timestamp: $0.timestamp, key: $0.key, value: $0.value)
                    }
                }
                if settled { reader.touch() }
                // An answer that came back at once with nothing (an error, a broker shutting down):
                // wait a little instead of asking again in a tight loop.
                if ContinuousClock.now - began < .milliseconds(20) { try await Task.sleep(for: .milliseconds(100)) }
            }
        }
    }

    /// Moves the positions past what `read` returned; a partition out of range restarts per
    /// `start`. Returns whether every partition answered without an error.
    func settle(_ read: Broker.LocalRead, from: [Int32: Int64]) async -> Bool {
        var outOfRange: [Int32] = []
        var fine = true
        positions.withLock { next in
            for p in read.partitions {
                switch p.error {
                case .none:
                    if p.nextOffset > (next[p.partition] ?? 0) { next[p.partition] = p.nextOffset }
                case .offsetOutOfRange:
                    outOfRange.append(p.partition)
                default:
                    fine = false
                }
            }
        }
        guard !outOfRange.isEmpty else { return fine }
        let spec: Broker.LocalOffsetSpec = start.isEnd ? .latest : .earliest
        let reset = await broker.localOffsets(topic: topic, partitions: outOfRange, at: spec)
        positions.withLock { next in
            for p in outOfRange {
                guard let offset = reset[p] ?? nil else { continue }
                logger.warning(
                    "Position \(from[p] ?? -1) of \(topic)-\(p) is outside the log; reading from \(start.isEnd ? "its end" : "its beginning") (\(offset))")
                next[p] = offset
            }
        }
        return fine
    }

    /// Partitions added to the topic since `assignWhenReady` are read from their beginning.
    func addNewPartitions() async {
        guard let count = await broker.localPartitionCount(of: topic) else { return }
        let known = positions.withLock { Set($0.keys) }
        let added = (0..<Int32(clamping: count)).filter { !known.contains($0) }
        guard !added.isEmpty else { return }
        let first = await broker.localOffsets(topic: topic, partitions: added, at: .earliest)
        positions.withLock { next in
            for p in added { next[p] = (first[p] ?? nil) ?? 0 }
        }
        logger.info("Reading \(added.count) new partitions of \(topic)")
    }
}
