import CoreMetrics
import Foundation
import KafkaClient
import Logging
import MarketData
import Synchronization
import TapeMetrics

/// Where a feed's records come from: a Kafka consumer (`KafkaTopicReader`), or, inside `tape up`,
/// the embedded broker read in-process. Reads every partition of one topic without a consumer
/// group (each server sees all events), waiting for the topic to exist.
public protocol TopicRecordSource: AnyObject, FeedContactReporting {
    var topic: String { get }
    var start: KafkaTopicReader.Start { get }
    var logger: Logger { get }
    /// Waits until the topic exists, then starts reading all its partitions. Returns the partition ids.
    func assignWhenReady() async throws -> [Int32]
    /// The records read, batch by batch; call after `assignWhenReady`.
    func makeBatchIterator() -> any TopicBatchIterating
    /// Notes that the source answered (for `/health`).
    func touch()
    /// Reports the lag behind the partitions' ends, apart from the feed (never blocking it).
    func reportLagInBackground(positions: [Int32: Int64], partitions: [Int32])
}

extension TopicRecordSource {
    /// Says that the topic does not exist yet (at info for topics that may stay absent, else warning).
    public func logWaitingForTopic(quietly: Bool) {
        let text: Logger.Message = "Topic \(topic) does not exist yet; waiting for a producer to create it (checking every 2 s)"
        if quietly { logger.info(text) } else { logger.warning(text) }
    }
}

/// The batches of a `TopicRecordSource`; nil at the end.
public protocol TopicBatchIterating: AnyObject {
    func next() async throws -> [KafkaMessage]?
}

/// A Kafka consumer's batches as a `TopicBatchIterating`.
final class ConsumerBatchIterator: TopicBatchIterating {
    var inner: KafkaConsumer.MessageBatches.AsyncIterator
    init(_ consumer: KafkaConsumer) { inner = consumer.batches.makeAsyncIterator() }
    func next() async throws -> [KafkaMessage]? { try await inner.next() }
}

/// Reads every partition of one topic through a Kafka consumer without a consumer group (each
/// server sees all events), waiting for the topic to exist, and reports its lag now and then.
public final class KafkaTopicReader: TopicRecordSource, Sendable {
    public enum Start: Sendable {
        /// Only what is produced from now on (live trades).
        case end
        /// Everything the topic still holds (the compacted `tape.candles`, to fill history).
        case beginning
        /// Each partition from the next offset given (where a previous run stopped reading);
        /// partitions not given, from their beginning. An offset past the partition's end (the
        /// topic was recreated) starts that partition over from its beginning.
        case resume([Int32: Int64])
        /// Each partition from its first record at or after this time (ms since the epoch): the
        /// recent past (`tape.books`, whose periodic snapshots make it enough to rebuild every book).
        case since(Int64)

        public var isEnd: Bool {
            if case .end = self { return true }
            return false
        }

        /// The offset to assign to `partition`.
        func offset(of partition: Int32) -> Int64 {
            switch self {
            case .end: return KafkaOffset.end
            case .beginning: return KafkaOffset.beginning
            case .resume(let next): return next[partition].flatMap { $0 >= 0 ? $0 : nil } ?? KafkaOffset.beginning
            case .since: return KafkaOffset.beginning  // replaced by the offsets found for the time
            }
        }

        public var description: String {
            switch self {
            case .end: return "the end"
            case .beginning: return "the beginning"
            case .resume(let next) where next.isEmpty: return "the beginning"
            case .resume: return "where the last run stopped"
            case .since(let ms): return "time \(ms) ms"
            }
        }
    }

    let consumer: KafkaConsumer
    public let topic: String
    public let start: Start
    public let logger: Logger
    let groupLabel: String
    let onLag: @Sendable (ConsumerLag) -> Void
    /// When Kafka last answered this reader (ms since the epoch; 0 = never), for `/health`.
    private let lastContact = Atomic<Int64>(0)
    /// The last failed metadata probe; nil once one succeeds.
    private let lastProbeError = Mutex<String?>(nil)
    /// Logs "does not exist yet" at info instead of warning (topics that may stay absent: tape.gaps).
    let quietWhileMissing: Bool

    /// - Parameter onLag: receives the lag (messages behind the high watermarks) every few seconds.
    /// - Parameter quietWhileMissing: a missing topic is normal (logged at info, not warning).
    public init(
        kafka: KafkaConfiguration, topic: String, start: Start, logger: Logger, quietWhileMissing: Bool = false,
        onLag: @escaping @Sendable (ConsumerLag) -> Void = { _ in }
    ) throws {
        var config = KafkaConsumerConfiguration(kafka: kafka)
        config.groupID = "tape-serve-\(UInt32.random(in: 0 ... .max))"
        config.autoOffsetReset = start.isEnd ? .latest : .earliest
        consumer = try KafkaConsumer(configuration: config, logger: logger)
        groupLabel = "tape-serve"
        self.topic = topic
        self.start = start
        self.logger = logger
        self.onLag = onLag
        self.quietWhileMissing = quietWhileMissing
        bootstrap = kafka.bootstrapServers
    }

    deinit { consumer.close() }

    /// The bootstrap servers this reader uses.
    public let bootstrap: String

    public func touch() { lastContact.store(Int64(Date().timeIntervalSince1970 * 1000), ordering: .relaxed) }

    /// Waits until the topic exists, then assigns all its partitions. Returns the partition ids.
    public func makeBatchIterator() -> any TopicBatchIterating { ConsumerBatchIterator(consumer) }

    public func assignWhenReady() async throws -> [Int32] {
        var warnedBroker = false
        var warnedTopic = false
        while true {
            try Task.checkCancellation()
            do {
                let md = try await consumer.metadata(timeout: .seconds(5))
                touch()
                if let t = md.topics.first(where: { $0.name == topic }), t.error == .noError, !t.partitions.isEmpty {
                    let ids = t.partitions.map(\.id).sorted()
                    if case .since(let time) = start {
                        // Partitions with nothing that recent start at their end as it is now, as a
                        // number: the logical "end" would be resolved when fetching starts and skip
                        // what arrives in between (a fresh pipeline's first snapshots).
                        let found = try await consumer.offsets(forTimestamp: time, partitions: ids.map { (topic, $0) })
                        var assignment: [TopicPartitionOffset] = []
                        for position in found {
                            var offset = position.offset
                            if offset < 0 { offset = try await consumer.watermarks(topic: topic, partition: position.partition).high }
                            assignment.append(TopicPartitionOffset(topic: topic, partition: position.partition, offset: offset))
                        }
                        try consumer.assign(assignment)
                        logger.info("Reading \(topic) (\(ids.count) partitions) from \(start.description)")
                        return ids
                    }
                    try consumer.assign(ids.map { TopicPartitionOffset(topic: topic, partition: $0, offset: start.offset(of: $0)) })
                    logger.info("Reading \(topic) (\(ids.count) partitions) from \(start.description)")
                    return ids
                }
                if !warnedTopic {
                    logWaitingForTopic(quietly: quietWhileMissing)
                    warnedTopic = true
                }
            } catch let error as KafkaError {
                lastProbeError.withLock { $0 = error.message }
                if !warnedBroker { logger.warning("Kafka is not answering yet; retrying every 2 s. \(error)") }
                warnedBroker = true
            }
            try await Task.sleep(for: .seconds(2))
        }
    }

    private let lagQueryInFlight = Atomic<Bool>(false)

    /// Starts a lag report unless one is still running. It runs apart from the feed: librdkafka's
    /// watermark query can wait for a broker that has gone away, and the feed (and so a graceful
    /// shutdown) must never wait for it.
    public func reportLagInBackground(positions: [Int32: Int64], partitions: [Int32]) {
        guard !lagQueryInFlight.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Task.detached { [self] in
            await reportLag(positions: positions, partitions: partitions)
            lagQueryInFlight.store(false, ordering: .releasing)
        }
    }

    /// High watermark minus next offset to read, summed over partitions.
    func reportLag(positions: [Int32: Int64], partitions: [Int32]) async {
        var total: Int64 = 0
        for p in partitions {
            guard let marks = try? await consumer.watermarks(topic: topic, partition: p, timeout: .seconds(2)) else { return }
            let next = positions[p] ?? (start.isEnd ? marks.high : marks.low)
            total += max(0, marks.high - next)
        }
        let lag = ConsumerLag(group: groupLabel, topic: topic, messages: total)
        TapeMetrics.consumerLag(group: groupLabel, topic: topic).record(total)
        onLag(lag)
    }

    /// Decoded values of one topic, batch by batch; undecodable records are counted and skipped.
    /// `onBatch`, when given, receives each batch's values and the next offset of every partition
    /// read so far before the values are handed out (an error from it ends the iteration).
    struct Iterator<Value: Sendable> {
        let reader: any TopicRecordSource
        let decode: @Sendable ([UInt8]) throws -> Value
        let onBatch: (@Sendable ([Value], [Int32: Int64]) throws -> Void)?
        var batches: (any TopicBatchIterating)?
        var partitions: [Int32] = []
        var buffer: [Value] = []
        var index = 0
        var positions: [Int32: Int64] = [:]
        var lastLagReport = ContinuousClock.now
        var badRecords = 0

        init(
            reader: any TopicRecordSource, decode: @escaping @Sendable ([UInt8]) throws -> Value,
            onBatch: (@Sendable ([Value], [Int32: Int64]) throws -> Void)? = nil
        ) {
            self.reader = reader
            self.decode = decode
            self.onBatch = onBatch
            if case .resume(let next) = reader.start { positions = next.filter { $0.value >= 0 } }
        }

        mutating func next() async throws -> Value? {
            while index >= buffer.count {
                if batches == nil {
                    partitions = try await reader.assignWhenReady()
                    batches = reader.makeBatchIterator()
                }
                guard let batch = try await batches!.next() else { return nil }
                reader.touch()
                buffer.removeAll(keepingCapacity: true)
                index = 0
                for message in batch {
                    positions[message.partition] = message.offset + 1
                    guard let value = message.value else { continue }
                    do {
                        buffer.append(try decode(value))
                    } catch {
                        badRecords += 1
                        if badRecords <= 5 || badRecords % 1000 == 0 {
                            reader.logger.warning(
                                "Skipping a record of \(reader.topic) that is not a valid value (\(badRecords) so far): \(error)",
                                metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)"])
                        }
                    }
                }
                try onBatch?(buffer, positions)
                if ContinuousClock.now - lastLagReport > .seconds(5) {
                    lastLagReport = .now
                    reader.reportLagInBackground(positions: positions, partitions: partitions)
                }
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}

extension KafkaTopicReader {
    public var contact: FeedSample {
        let last = lastContact.load(ordering: .relaxed)
        return FeedSample(topic: topic, bootstrap: bootstrap, lastContact: last == 0 ? nil : last, lastError: lastProbeError.withLock { $0 })
    }

    /// Metadata through this reader's own consumer, within 2 s: proof that Kafka answers it even
    /// while its topic is quiet.
    public func probe() async {
        do {
            _ = try await consumer.metadata(timeout: .seconds(2))
            touch()
            lastProbeError.withLock { $0 = nil }
        } catch let error as KafkaError {
            lastProbeError.withLock { $0 = error.message }
        } catch {
            lastProbeError.withLock { $0 = "\(error)" }
        }
    }
}

/// Live trades from `tape.trades` (docs/contracts.md trade JSON), read from the end of every partition.
public struct KafkaTradeFeed: TradeFeed {
    public typealias Element = Trade
    let reader: any TopicRecordSource

    public init(reader: any TopicRecordSource) { self.reader = reader }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: KafkaTopicReader.Iterator<Trade>
        public mutating func next() async throws -> Trade? { try await inner.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(inner: .init(reader: reader) { try Trade(json: $0) })
    }
}

/// Candle updates from `tape.candles` (docs/contracts.md candle JSON). Read from the beginning (or where a
/// `TopicCandleHistory` stopped) so that the server's own history fills with what the compacted
/// topic holds; from the end when the history is a processor's file.
public struct KafkaCandleFeed: CandleFeed {
    public typealias Element = Candle
    let reader: any TopicRecordSource
    let history: TopicCandleHistory?

    /// - Parameter history: when given, every batch is written into it (with the positions reached)
    ///   before its candles are handed out; start `reader` at `history.start`.
    public init(reader: any TopicRecordSource, recordingInto history: TopicCandleHistory? = nil) {
        self.reader = reader
        self.history = history
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: KafkaTopicReader.Iterator<Candle>
        public mutating func next() async throws -> Candle? { try await inner.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        var onBatch: (@Sendable ([Candle], [Int32: Int64]) throws -> Void)?
        if let history {
            onBatch = { candles, positions in try history.record(candles, positions: positions) }
        }
        let decode: @Sendable ([UInt8]) throws -> Candle = { try Candle(json: $0) }
        return AsyncIterator(inner: KafkaTopicReader.Iterator<Candle>(reader: reader, decode: decode, onBatch: onBatch))
    }
}

/// Gap records from `tape.gaps`, read from the beginning (the ledger needs every gap's latest state).
public struct KafkaGapFeed: GapRecordFeed {
    public typealias Element = Gap
    let reader: any TopicRecordSource

    public init(reader: any TopicRecordSource) { self.reader = reader }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: KafkaTopicReader.Iterator<Gap>
        public mutating func next() async throws -> Gap? { try await inner.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(inner: .init(reader: reader) { try Gap(json: $0) })
    }
}

extension KafkaTradeFeed: FeedContactReporting {
    public var contact: FeedSample { reader.contact }
    public func probe() async { await reader.probe() }
}

extension KafkaCandleFeed: FeedContactReporting {
    public var contact: FeedSample { reader.contact }
    public func probe() async { await reader.probe() }
}

extension KafkaGapFeed: FeedContactReporting {
    public var contact: FeedSample { reader.contact }
    public func probe() async { await reader.probe() }
}

/// Book records from `tape.books`, read from the recent past (`KafkaTopicReader.Start.since`).
public struct KafkaBookFeed: BookRecordFeed {
    public typealias Element = BookEvent
    let reader: any TopicRecordSource

    public init(reader: any TopicRecordSource) { self.reader = reader }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: KafkaTopicReader.Iterator<BookEvent>
        public mutating func next() async throws -> BookEvent? { try await inner.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(inner: .init(reader: reader) { try BookEvent(json: $0) })
    }
}

extension KafkaBookFeed: FeedContactReporting {
    public var contact: FeedSample { reader.contact }
    public func probe() async { await reader.probe() }
}
