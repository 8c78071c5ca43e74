import Foundation
import Ingest
import KafkaClient
import KafkaProtocol
import Logging
import Synchronization
import TapeBroker
import TapeMetrics

/// `tape up`'s ingestion appending to its embedded broker in-process: the records a `KafkaProducer`
/// would send over loopback go straight to the broker's produce path (acks=all, the same
/// validation, append and fsync policy), without librdkafka's threads, its 1 ms linger, a socket
/// and the request encoding both ways (issue 18).
///
/// - Order: one drain task appends what is queued, topic by topic, one batch per partition, so the
///   records of a partition are appended in the order they were queued.
/// - Partitions: librdkafka's default partitioner (`KafkaPartitioner`), so a key goes where a
///   Kafka producer would put it; records without a key go to partition 0.
/// - Back-pressure: at most `limit` records queued or in flight; `enqueue` waits for room.
/// - Errors: an append refused for a reason that can pass (a storage error such as a full disk, a
///   topic being recreated) is retried every `retryBackoff`, in order, holding later records back
///   (never dropped, as the Kafka producer with `message.timeout.ms=0` would); one refused for
///   good (a record too large, an invalid topic name) is reported failed on `deliveryReports`.
public final class EmbeddedProducer: RecordProducer, Sendable {
    let broker: Broker
    let limit: Int
    let logger: Logger
    let retryBackoff: Duration
    /// How long the first record of a batch waits for others (librdkafka's `linger.ms`): one
    /// append per millisecond rather than per record wakes the broker's readers once per batch.
    let linger: Duration
    /// At most this many records are taken per append round (the rest wait for the next).
    let maxBatch = 5_000
    /// A partition's records go to the broker in batches of about this many bytes at most (well
    /// under the default max.message.bytes of 1 MiB; a batch a topic still refuses as too large is
    /// halved, so only a single record over the limit is ever refused).
    let chunkBytes = 256 << 10
    public let deliveryReports: AsyncStream<[DeliveryReport]>
    private let reports: AsyncStream<[DeliveryReport]>.Continuation

    struct Queued: Sendable {
        var id: UInt64
        var message: ProducerMessage
        /// When it was queued, for 1 record in 64 (`tape_produce_latency_seconds`).
        var sampledAt: ContinuousClock.Instant?
    }

    private struct State {
        var queue: [Queued] = []
        /// Records of `queue` before this index were taken already.
        var head = 0
        var queuedCount: Int { queue.count - head }
        /// When the oldest record of `queue` was queued.
        var firstQueuedAt = ContinuousClock.now
        var outstanding = 0
        var lastID: UInt64 = 0
        var draining = false
        var closed = false
        var waitingForRoom: [CheckedContinuation<Void, Never>] = []
        var waitingForIdle: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    public init(broker: Broker, limit: Int, logger: Logger, linger: Duration = .milliseconds(1), retryBackoff: Duration = .milliseconds(200)) {
        self.broker = broker
        self.linger = linger
        self.limit = max(1, limit)
        self.logger = logger
        self.retryBackoff = retryBackoff
        (deliveryReports, reports) = AsyncStream.makeStream(of: [DeliveryReport].self)
    }

    public var outstanding: Int { state.withLock { $0.outstanding } }

    @discardableResult
    public func tryEnqueue(_ message: ProducerMessage) throws -> UInt64 {
        let (id, startDrain) = try state.withLock { s throws(KafkaError) -> (UInt64, Bool) in
            guard !s.closed else { throw KafkaError(code: .destroyed, message: "The producer is closed.") }
            guard s.outstanding < limit else { throw KafkaError.queueFullError }
            s.lastID += 1
            s.outstanding += 1
            if s.queuedCount == 0 { s.firstQueuedAt = .now }
            s.queue.append(Queued(id: s.lastID, message: message, sampledAt: s.lastID & 63 == 0 ? .now : nil))
            let start = !s.draining
            s.draining = true
            return (s.lastID, start)
        }
        if startDrain { Task { await self.drain() } }
        return id
    }

    @discardableResult
    public func enqueue(_ message: ProducerMessage) async throws -> UInt64 {
        while true {
            do {
                return try tryEnqueue(message)
            } catch let error as KafkaError where error.code == .queueFull {
                try Task.checkCancellation()
                // Woken by deliveries, by `close`, or by cancellation (then the check above throws).
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        let roomNow = state.withLock { s -> Bool in
                            if s.outstanding < limit || s.closed || Task.isCancelled { return true }
                            s.waitingForRoom.append(c)
                            return false
                        }
                        if roomNow { c.resume() }
                    }
                } onCancel: {
                    wakeWaitersForRoom()
                }
            }
        }
    }

    /// Waits until everything queued is appended (or failed), at most `timeout`, then ends
    /// `deliveryReports`. Throws `KafkaError` (timed out) with records still queued.
    ///
    /// The wait takes its full `timeout` even when the calling task is cancelled (a service
    /// stopping on SIGTERM): in a cancelled task the timer ended at once, and `tape up` gave up on
    /// the records of its last millisecond and exited 1.
    public func close(timeout: Duration) async throws {
        // An unstructured task does not inherit the caller's cancellation.
        let finished = await Task {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await self.waitUntilIdle()
                    return true
                }
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                // The wait for idle is no task cancellation reaches: end it by hand.
                if !first { self.resumeIdleWaiters() }
                return first
            }
        }.value
        let left = state.withLock { s -> Int in
            s.closed = true
            return s.outstanding
        }
        wakeWaitersForRoom()
        reports.finish()
        if !finished && left > 0 {
            throw KafkaError(code: .timedOut, message: "\(left) records were still not appended after \(timeout) (the broker kept refusing them).")
        }
    }

    /// Returns once nothing is queued or being appended (or `resumeIdleWaiters` is called).
    private func waitUntilIdle() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if !s.draining && s.queuedCount == 0 { return true }
                s.waitingForIdle.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    private func resumeIdleWaiters() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.waitingForIdle = [] }
            return s.waitingForIdle
        }
        for waiter in waiters { waiter.resume() }
    }

    private func wakeWaitersForRoom() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.waitingForRoom = [] }
            return s.waitingForRoom
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Appends what is queued until the queue is empty.
    func drain() async {
        var partitionCounts: [String: (count: Int, checked: ContinuousClock.Instant)] = [:]
        while true {
            let (oldest, queued) = state.withLock { ($0.firstQueuedAt, $0.queuedCount) }
            let waited = ContinuousClock.now - oldest
            if queued > 0 && queued < maxBatch && waited < linger { try? await Task.sleep(for: linger - waited) }
            let batch = state.withLock { s -> [Queued] in
                if s.queuedCount == 0 {
                    s.draining = false
                    return []
                }
                let end = min(s.queue.count, s.head + maxBatch)
                let taken = Array(s.queue[s.head..<end])
                s.head = end
                if s.head == s.queue.count {
                    s.queue.removeAll(keepingCapacity: true)
                    s.head = 0
                } else {
                    // More waiting: no linger for them; drop the taken prefix now and then.
                    s.firstQueuedAt = .now - linger
                    if s.head >= 4 * maxBatch {
                        s.queue.removeFirst(s.head)
                        s.head = 0
                    }
                }
                return taken
            }
            if batch.isEmpty {
                let idle = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    guard !s.draining else { return [] }
                    defer { s.waitingForIdle = [] }
                    return s.waitingForIdle
                }
                for waiter in idle { waiter.resume() }
                return
            }
            // Topic by topic, in the order each topic first appears.
            var topics: [String] = []
            var byTopic: [String: [Queued]] = [:]
            for item in batch {
                if byTopic[item.message.topic] == nil { topics.append(item.message.topic) }
                byTopic[item.message.topic, default: []].append(item)
            }
            var delivered: [DeliveryReport] = []
            delivered.reserveCapacity(batch.count)
            for topic in topics {
                let items = byTopic[topic]!
                var count = partitionCounts[topic].flatMap { ContinuousClock.now - $0.checked < .seconds(5) ? $0.count : nil }
                if count == nil {
                    count = await broker.localPartitionCountCreating(topic)
                    if let count { partitionCounts[topic] = (count, .now) }
                }
                delivered += await append(items, topic: topic, partitions: count)
            }
            let done = batch.count
            state.withLock { $0.outstanding -= done }
            wakeWaitersForRoom()
            reports.yield(delivered)
        }
    }

    /// Appends `items` of `topic` (one batch per partition), retrying what may pass; returns a
    /// report per item.
    func append(_ items: [Queued], topic: String, partitions: Int?) async -> [DeliveryReport] {
        var reportsOut: [DeliveryReport] = []
        reportsOut.reserveCapacity(items.count)
        // Each partition's records in chunks of at most `chunkBytes` (one batch each), in order.
        var chunks: [Int32: [[Queued]]] = [:]
        var chunkSizes: [Int32: Int] = [:]
        var order: [Int32] = []
        for item in items {
            let partition =
                item.message.partition ?? KafkaPartitioner.consistent(key: item.message.key, partitions: partitions ?? 1) ?? 0
            let size = Self.estimatedSize(item.message)
            if chunks[partition] == nil {
                order.append(partition)
                chunks[partition] = [[item]]
                chunkSizes[partition] = size
            } else if chunkSizes[partition]! + size > chunkBytes {
                chunks[partition]!.append([item])
                chunkSizes[partition] = size
            } else {
                chunks[partition]![chunks[partition]!.count - 1].append(item)
                chunkSizes[partition]! += size
            }
        }
        var attempts = 0
        var lastWarning: ContinuousClock.Instant?
        while true {
            // One round: the first chunk still to append of every partition.
            let round = order.compactMap { p in chunks[p]?.first.map { (partition: p, items: $0) } }
            if round.isEmpty { break }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let request = round.map { entry in
                (
                    partition: entry.partition,
                    messages: entry.items.map {
                        Broker.LocalMessage(
                            key: $0.message.key, value: $0.message.value, headers: $0.message.headers.map { Record.Header(key: $0.key, value: $0.value) },
                            timestamp: $0.message.timestamp ?? now)
                    }
                )
            }
            let answers = await broker.localProduce(topic: topic, partitions: request)
            var backOff = false
            for answer in answers {
                guard let sent = chunks[answer.partition]?.first else { continue }
                if answer.error == .none {
                    for (i, item) in sent.enumerated() {
                        if let at = item.sampledAt { TapeMetrics.produceLatency(topic: topic).recordNanoseconds((ContinuousClock.now - at).nanoseconds) }
                        reportsOut.append(
                            DeliveryReport(
                                messageID: item.id, topic: topic, partition: answer.partition, offset: answer.baseOffset &+ Int64(i),
                                timestamp: item.message.timestamp ?? now))
                    }
                    chunks[answer.partition]!.removeFirst()
                } else if (answer.error == .messageTooLarge || answer.error == .recordListTooLarge) && sent.count > 1 {
                    // Too large as one batch for this topic's max.message.bytes: halve it.
                    let half = sent.count / 2
                    chunks[answer.partition]!.replaceSubrange(0...0, with: [Array(sent[..<half]), Array(sent[half...])])
                } else if Self.mayPass(answer.error) && !isClosedAndStuck(attempts: attempts) {
                    backOff = true
                    if lastWarning.map({ ContinuousClock.now - $0 > .seconds(10) }) ?? true {
                        lastWarning = .now
                        logger.warning(
                            "The embedded broker refused records of \(topic)-\(answer.partition) (error \(answer.error)\(answer.errorMessage.map { ": \($0)" } ?? "")); retrying every \(retryBackoff), nothing is dropped"
                        )
                    }
                } else {
                    let error = KafkaError(
                        code: .init(rawValue: Int32(answer.error.rawValue)),
                        message:
                            "The embedded broker refused \(sent.count) records of \(topic)-\(answer.partition): \(answer.errorMessage ?? "error \(answer.error)")"
                    )
                    for item in sent {
                        reportsOut.append(
                            DeliveryReport(messageID: item.id, topic: topic, partition: answer.partition, offset: -1, timestamp: -1, error: error))
                    }
                    chunks[answer.partition]!.removeFirst()
                }
            }
            if backOff {
                attempts += 1
                try? await Task.sleep(for: retryBackoff)
            }
        }
        return reportsOut
    }

    /// About the bytes `message` takes in a batch (its fields plus the record's framing).
    static func estimatedSize(_ message: ProducerMessage) -> Int {
        var size = 24 + (message.key?.count ?? 0) + (message.value?.count ?? 0)
        for header in message.headers { size += 8 + header.key.utf8.count + (header.value?.count ?? 0) }
        return size
    }

    /// After `close` gave up, a refusal that may pass is not retried forever.
    private func isClosedAndStuck(attempts: Int) -> Bool {
        attempts > 0 && state.withLock { $0.closed }
    }

    /// Errors a later attempt may not see (as librdkafka retries them): everything but a record
    /// or request the broker will never take.
    static func mayPass(_ error: ErrorCode) -> Bool {
        ![
            .corruptMessage, .messageTooLarge, .invalidTopicException, .recordListTooLarge, .invalidRequiredAcks, .invalidTimestamp,
            .topicAuthorizationFailed, .clusterAuthorizationFailed, .invalidRecord,
        ].contains(error)
    }
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (s, a) = components
        return s &* 1_000_000_000 &+ a / 1_000_000_000
    }
}
