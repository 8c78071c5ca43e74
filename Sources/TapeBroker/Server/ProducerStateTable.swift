import KafkaProtocol

/// The idempotent-producer window: per (producerId, partition) the producer epoch and the
/// sequence ranges of the last five batches, so a retried batch is acknowledged with its
/// original offset instead of being written twice. A pure value; the broker owns one.
public struct ProducerStateTable: Sendable {
    public static let window = 5

    struct Key: Hashable {
        var producerId: Int64
        var partition: TopicPartition
    }
    struct WrittenBatch {
        var firstSequence: Int32
        var lastSequence: Int32
        var baseOffset: Int64
    }
    struct Entry {
        var epoch: Int16
        var recent: [WrittenBatch]
        /// Broker clock (ms) of the last batch recorded, for expiry.
        var lastUsedMs: Int64 = 0
    }

    /// What to do with a batch.
    public enum Verdict: Sendable, Equatable {
        /// Write it.
        case append
        /// Already written at `baseOffset`: acknowledge without writing.
        case duplicate(baseOffset: Int64)
        case reject(ErrorCode, String)
    }

    private var entries: [Key: Entry] = [:]
    /// Producer ids this broker handed out (a fresh one must start at sequence 0), with when.
    private var issued: [Int64: Int64] = [:]

    public init() {}

    /// States held (per producer and partition) and issued ids not yet forgotten.
    public var count: (states: Int, issued: Int) { (entries.count, issued.count) }

    public mutating func issued(producerId: Int64, now: Int64 = 0) { issued[producerId] = now }

    /// Forgets producers idle for `expirationMs` (Kafka's `producer.id.expiration.ms`), then the
    /// least recently used states beyond `maxStates`, and issued ids beyond `maxStates` (oldest
    /// first). A forgotten producer's next batch is accepted as a new one, as Kafka does once
    /// its state expired. Returns how many states and ids were dropped.
    @discardableResult
    public mutating func expire(now: Int64, expirationMs: Int64, maxStates: Int) -> Int {
        let before = entries.count + issued.count
        let cutoff = now.subtractingReportingOverflow(expirationMs)
        if !cutoff.overflow {
            entries = entries.filter { $0.value.lastUsedMs > cutoff.partialValue }
            issued = issued.filter { $0.value > cutoff.partialValue }
        }
        if entries.count > maxStates {
            let keep = entries.sorted { $0.value.lastUsedMs > $1.value.lastUsedMs }.prefix(max(maxStates, 0))
            entries = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
        if issued.count > maxStates {
            let keep = issued.sorted { $0.value > $1.value }.prefix(max(maxStates, 0))
            issued = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
        return before - entries.count - issued.count
    }

    static func lastSequence(_ header: RecordBatchHeader) -> Int32 {
        let last = Int64(header.baseSequence) + Int64(header.lastOffsetDelta)
        return Int32(truncatingIfNeeded: last > Int64(Int32.max) ? last - Int64(Int32.max) - 1 : last)
    }

    static func next(_ s: Int32) -> Int32 { s == Int32.max ? 0 : s + 1 }

    public func check(_ header: RecordBatchHeader, partition: TopicPartition) -> Verdict {
        guard header.producerId >= 0 else { return .append }
        let key = Key(producerId: header.producerId, partition: partition)
        guard let entry = entries[key] else {
            if issued[header.producerId] != nil && header.baseSequence != 0 {
                return .reject(.outOfOrderSequenceNumber, "producer \(header.producerId) starts \(partition) at sequence \(header.baseSequence), expected 0")
            }
            return .append
        }
        if header.producerEpoch < entry.epoch {
            return .reject(.invalidProducerEpoch, "producer \(header.producerId) epoch \(header.producerEpoch) is older than \(entry.epoch)")
        }
        if header.producerEpoch > entry.epoch {
            return header.baseSequence == 0
                ? .append
                : .reject(
                    .outOfOrderSequenceNumber,
                    "producer \(header.producerId) new epoch \(header.producerEpoch) must start at sequence 0, got \(header.baseSequence)")
        }
        let last = Self.lastSequence(header)
        if let dup = entry.recent.first(where: { $0.firstSequence == header.baseSequence && $0.lastSequence == last }) {
            return .duplicate(baseOffset: dup.baseOffset)
        }
        let expected = Self.next(entry.recent.last?.lastSequence ?? -1)
        if header.baseSequence != expected {
            return .reject(
                .outOfOrderSequenceNumber,
                "producer \(header.producerId) sent sequence \(header.baseSequence) to \(partition), expected \(expected)")
        }
        return .append
    }

    /// Records a batch that was written at `baseOffset`.
    public mutating func record(_ header: RecordBatchHeader, partition: TopicPartition, baseOffset: Int64, now: Int64 = 0) {
        guard header.producerId >= 0 else { return }
        let key = Key(producerId: header.producerId, partition: partition)
        var entry = entries[key] ?? Entry(epoch: header.producerEpoch, recent: [])
        if header.producerEpoch != entry.epoch {
            entry = Entry(epoch: header.producerEpoch, recent: [])
        }
        entry.recent.append(WrittenBatch(firstSequence: header.baseSequence, lastSequence: Self.lastSequence(header), baseOffset: baseOffset))
        if entry.recent.count > Self.window { entry.recent.removeFirst(entry.recent.count - Self.window) }
        entry.lastUsedMs = now
        entries[key] = entry
    }

    /// Forgets a deleted topic.
    public mutating func removeTopic(_ topic: String) {
        entries = entries.filter { $0.key.partition.topic != topic }
    }
}
