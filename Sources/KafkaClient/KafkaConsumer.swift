import Crdkafka
import Foundation
import Logging
import Synchronization

/// A change of a group member's assignment.
public enum RebalanceEvent: Sendable, Hashable {
    case assigned([TopicPartitionOffset])
    case revoked([TopicPartitionOffset])
    case error(String)
    /// Every partition this member held is lost, without a revocation: the consumer failed
    /// fatally (for a static member, FENCED_INSTANCE_ID: a newer member took its
    /// `group.instance.id`). The reason is librdkafka's.
    case lost(String)
}

/// An async Kafka consumer over librdkafka: group subscription (names or `^regex` patterns) or
/// manual assignment, seeks, commits, pause/resume, rebalance events, and `messages`, an
/// `AsyncSequence` with back-pressure (a bounded number of batches is buffered; when the
/// application falls behind, the polling thread waits).
public final class KafkaConsumer: @unchecked Sendable {
    let rk: OpaquePointer
    let context: ConsumerContext
    private let pollThread: PollThread
    private let channel: BatchChannel<KafkaMessage>
    private let packedChannel: BatchChannel<PackedBatch>
    private let closed = Atomic<Bool>(false)
    private let consumerQueue: OpaquePointer
    private let pollBuffer: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    private let refill: FetchRefill
    /// Assignment changes of this member (group subscriptions only).
    public let rebalanceEvents: AsyncStream<RebalanceEvent>

    public init(configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "tape.kafka.consumer")) throws {
        let (events, eventsContinuation) = AsyncStream.makeStream(of: RebalanceEvent.self, bufferingPolicy: .bufferingNewest(1000))
        rebalanceEvents = events
        let context = ConsumerContext(logger: logger, bootstrapServers: configuration.kafka.bootstrapServers, events: eventsContinuation)
        self.context = context
        let conf = try configuration.kafka.makeConf(extra: configuration.librdkafkaProperties)
        context.install(on: conf)
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, _ in
            guard let rk, let context = ClientContext.from(rk) as? ConsumerContext else { return }
            context.rebalance(rk: rk, err: err, partitions: partitions)
        }
        rk = try makeKafkaHandle(type: RD_KAFKA_CONSUMER, conf: conf)
        rd_kafka_poll_set_consumer(rk)
        let channel = BatchChannel<KafkaMessage>(capacity: max(1, configuration.bufferedBatches))
        self.channel = channel
        let packedChannel = BatchChannel<PackedBatch>(capacity: max(1, configuration.bufferedBatches))
        self.packedChannel = packedChannel
        let packed = configuration.packedValues
        let batchSize = max(1, configuration.batchSize)
        let topicNames = TopicNameCache()
        // librdkafka hands out up to `batchSize` messages per call (rd_kafka_consume_batch_queue
        // also serves the rebalance callback); two calls per batch, not one per message.
        nonisolated(unsafe) let queue = rd_kafka_queue_get_consumer(rk)!
        self.consumerQueue = queue
        let buffer = UnsafeSendable(UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: batchSize))
        self.pollBuffer = buffer.value
        let refill = FetchRefill(rk: rk)
        self.refill = refill
        pollThread = PollThread(name: "tape-cons-poll") {
            // Wait (up to 100 ms) for one message only, then take what else is already there
            // without waiting: a batch call with a timeout waits for a *full* batch, which
            // added up to 100 ms of latency at low rates.
            let first = rd_kafka_consume_batch_queue(queue, 100, buffer.value, 1)
            guard first > 0 else { return }
            let more = batchSize > 1 ? rd_kafka_consume_batch_queue(queue, 0, buffer.value + 1, batchSize - 1) : 0
            let n = 1 + max(0, more)
            var size = 0
            for i in 0..<n { if let raw = buffer.value[i], raw.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR { size += raw.pointee.len } }
            refill.observe(taken: n, remaining: Int(rd_kafka_queue_length(queue)), bytesPerRecord: size / n)
            /// Whether the message is a record (errors are reported here and skipped).
            func isRecord(_ raw: UnsafeMutablePointer<rd_kafka_message_t>) -> Bool {
                let m = raw.pointee
                if m.err == RD_KAFKA_RESP_ERR_NO_ERROR { return true }
                if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return false }
                let reason = rd_kafka_message_errstr(raw).map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(m.err))
                context.record(error: reason)
                context.logger.warning("Kafka consumer error", metadata: ["error": "\(reason)", "code": "\(String(cString: rd_kafka_err2name(m.err)))"])
                if m.err == RD_KAFKA_RESP_ERR__FATAL {
                    // A consumer hears of a fatal error here, not through the error callback; the
                    // assignment is gone without a rebalance callback (see `RebalanceEvent.lost`).
                    context.failed(reason)
                    let error = KafkaError(code: .fatal, message: "Consumer failed: \(reason)", isFatal: true)
                    channel.finish(throwing: error)
                    packedChannel.finish(throwing: error)
                }
                return false
            }
            if packed {
                var batch = PackedBatch(topics: [], records: [], bytes: [])
                batch.records.reserveCapacity(n)
                batch.bytes.reserveCapacity(size)
                var topicIndex: [OpaquePointer: Int32] = [:]
                // Messages come in runs of one topic: compare with the last before hashing.
                var lastTopic: (rkt: OpaquePointer, index: Int32)?
                for i in 0..<n {
                    guard let raw = buffer.value[i] else { continue }
                    defer { rd_kafka_message_destroy(raw) }
                    guard isRecord(raw) else { continue }
                    let m = raw.pointee
                    var topic: Int32 = 0
                    if let rkt = m.rkt {
                        if let lastTopic, lastTopic.rkt == rkt {
                            topic = lastTopic.index
                        } else if let index = topicIndex[rkt] {
                            topic = index
                        } else {
                            topic = Int32(batch.topics.count)
                            topicIndex[rkt] = topic
                            batch.topics.append(topicNames.name(rkt))
                        }
                        lastTopic = (rkt, topic)
                    }
                    let ts = rd_kafka_message_timestamp(raw, nil)
                    var start = Int32(batch.bytes.count)
                    var length: Int32 = -1
                    if let payload = m.payload {
                        batch.bytes.append(contentsOf: UnsafeRawBufferPointer(start: payload, count: m.len))
                        length = Int32(m.len)
                    } else {
                        start = 0
                    }
                    batch.records.append(.init(partition: m.partition, offset: m.offset, timestamp: ts, topic: topic, valueStart: start, valueLength: length))
                }
                if !batch.records.isEmpty { packedChannel.push([batch]) }
                return
            }
            var batch: [KafkaMessage] = []
            batch.reserveCapacity(n)
            for i in 0..<n {
                guard let raw = buffer.value[i] else { continue }
                defer { rd_kafka_message_destroy(raw) }
                guard isRecord(raw) else { continue }
                batch.append(Self.message(raw, topicNames: topicNames))
            }
            if !batch.isEmpty {
                channel.push(batch)
            }
        }
        channel.onStopRequested = { [pollThread] in pollThread.isStopped }
        packedChannel.onStopRequested = { [pollThread] in pollThread.isStopped }
    }

    deinit {
        close()
        rd_kafka_queue_destroy(consumerQueue)
        pollBuffer.deallocate()
        rd_kafka_destroy(rk)
    }

    private static func message(_ raw: UnsafeMutablePointer<rd_kafka_message_t>, topicNames: TopicNameCache) -> KafkaMessage {
        let m = raw.pointee
        var topic = ""
        if let rkt = m.rkt { topic = topicNames.name(rkt) }
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(raw, &tsType)
        let type: KafkaMessage.TimestampType =
            tsType == RD_KAFKA_TIMESTAMP_CREATE_TIME ? .createTime : tsType == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? .logAppendTime : .none
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer? = nil
        if rd_kafka_message_headers(raw, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var idx = 0
            var name: UnsafePointer<CChar>? = nil
            var val: UnsafeRawPointer? = nil
            var size = 0
            while rd_kafka_header_get_all(hdrs, idx, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(
                    KafkaHeader(key: name.map { String(cString: $0) } ?? "", value: val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
                idx += 1
            }
        }
        return KafkaMessage(
            topic: topic, partition: m.partition, offset: m.offset, timestamp: ts, timestampType: type, key: key, value: value, headers: headers)
    }

    /// Runs `handler` synchronously on the polling thread whenever the group assigns or revokes
    /// partitions: for an assignment before librdkafka starts fetching them, for a revocation before
    /// librdkafka gives them up and the member rejoins — so in an eager rebalance no other member
    /// owns them until the handler has returned. Use it to stop output for revoked partitions and
    /// wait for what is in flight (flush a producer, finish a commit). It must not wait for this
    /// consumer's own `batches`. Set it before `subscribe`; `nil` removes it.
    public func setRebalanceHandler(_ handler: (@Sendable (RebalanceEvent) -> Void)?) {
        context.handler.withLock { $0 = handler }
    }

    // MARK: - Subscription and assignment

    /// Joins the group and subscribes to topics; names starting with `^` are regular expressions.
    public func subscribe(_ topics: [String]) throws {
        let list = TopicPartitionList.make(topics.map { .init(topic: $0, partition: RD_KAFKA_PARTITION_UA, offset: KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_subscribe(rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot subscribe to \(topics.joined(separator: ", "))") }
    }

    /// Consumes exactly these partitions (no group rebalancing), from the given offsets
    /// (absolute, or `KafkaOffset.beginning` / `.end` / `.stored`).
    public func assign(_ partitions: [TopicPartitionOffset]) throws {
        let list = TopicPartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_assign(rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot assign partitions") }
    }

    /// The current assignment.
    public func assignment() throws -> [TopicPartitionOffset] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>? = nil
        let err = rd_kafka_assignment(rk, &list)
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot read assignment") }
        return TopicPartitionList.read(list)
    }

    // MARK: - Positioning

    /// Moves assigned partitions to offsets (absolute, `KafkaOffset.beginning` or `.end`).
    public func seek(_ positions: [TopicPartitionOffset], timeout: Duration = .seconds(10)) async throws {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeout.librdkafkaMilliseconds
        try await Blocking.run {
            let list = TopicPartitionList.make(positions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            if let error = rd_kafka_seek_partitions(rk, list, ms) {
                throw KafkaError(consuming: error, "Cannot seek")
            }
            if let (tp, err) = TopicPartitionList.firstError(list) {
                throw KafkaError(err, "Cannot seek \(tp.topic)[\(tp.partition)] to \(tp.offset)")
            }
        }
    }

    /// For each partition, the first offset whose timestamp is >= the given one (ms); `KafkaOffset.end` where none.
    public func offsets(forTimestamp timestamp: Int64, partitions: [(topic: String, partition: Int32)], timeout: Duration = .seconds(10)) async throws
        -> [TopicPartitionOffset]
    {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeout.librdkafkaMilliseconds
        let items = partitions.map { TopicPartitionOffset(topic: $0.topic, partition: $0.partition, offset: timestamp) }
        return try await Blocking.run {
            let list = TopicPartitionList.make(items)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_offsets_for_times(rk, list, ms)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot look up offsets for timestamp \(timestamp)") }
            return TopicPartitionList.read(list)
        }
    }

    /// Seeks assigned partitions to the first record at or after `timestamp` (ms since epoch).
    public func seek(toTimestamp timestamp: Int64, timeout: Duration = .seconds(10)) async throws {
        let assigned = try assignment()
        let positions = try await offsets(forTimestamp: timestamp, partitions: assigned.map { ($0.topic, $0.partition) }, timeout: timeout)
        try await seek(positions, timeout: timeout)
    }

    /// Stops fetching from these partitions until `resume`.
    public func pause(_ partitions: [(topic: String, partition: Int32)]) throws {
        let list = TopicPartitionList.make(partitions.map { .init(topic: $0.topic, partition: $0.partition, offset: KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_pause_partitions(rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot pause partitions") }
    }

    public func resume(_ partitions: [(topic: String, partition: Int32)]) throws {
        let list = TopicPartitionList.make(partitions.map { .init(topic: $0.topic, partition: $0.partition, offset: KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_resume_partitions(rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot resume partitions") }
    }

    // MARK: - Commits

    /// Commits "consumed up to and including `message`" for its partition, waiting for the broker.
    public func commit(_ message: KafkaMessage) async throws {
        try await commit([.init(topic: message.topic, partition: message.partition, offset: message.offset + 1)])
    }

    /// Commits next-offsets-to-read, waiting for the broker.
    public func commit(_ offsets: [TopicPartitionOffset]) async throws {
        nonisolated(unsafe) let rk = self.rk
        try await Blocking.run {
            let list = TopicPartitionList.make(offsets)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_commit(rk, list, 0)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot commit offsets") }
            if let (tp, err) = TopicPartitionList.firstError(list) {
                throw KafkaError(err, "Cannot commit \(tp.topic)[\(tp.partition)]@\(tp.offset)")
            }
        }
    }

    /// Commits next-offsets-to-read, blocking the calling thread until the broker answered. For
    /// callers that must hold a lock across the commit (never call it on Swift's cooperative pool
    /// for long: wrap it in a dedicated thread or dispatch queue).
    public func commitBlocking(_ offsets: [TopicPartitionOffset]) throws {
        let list = TopicPartitionList.make(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(rk, list, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot commit offsets") }
        if let (tp, err) = TopicPartitionList.firstError(list) {
            throw KafkaError(err, "Cannot commit \(tp.topic)[\(tp.partition)]@\(tp.offset)")
        }
    }

    /// Commits without waiting; failures are logged.
    public func commitAsync(_ offsets: [TopicPartitionOffset]) throws {
        let list = TopicPartitionList.make(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(rk, list, 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot commit offsets") }
    }

    /// The group's committed offsets for these partitions (offset < 0 where nothing is committed).
    public func committed(_ partitions: [TopicPartitionOffset], timeout: Duration = .seconds(10)) async throws -> [TopicPartitionOffset] {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeout.librdkafkaMilliseconds
        let context = self.context
        return try await Blocking.run {
            let list = TopicPartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_committed(rk, list, ms)
            if err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT {
                throw KafkaError(code: .init(err), message: context.unreachableMessage("read committed offsets"), isRetriable: true)
            }
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot read committed offsets") }
            return TopicPartitionList.read(list)
        }
    }

    /// Low and high watermark offsets of a partition, asked of the broker.
    /// The consumer's position in each partition: the offset of the next record it will hand out
    /// (past control records and aborted transactions it skipped), or a negative `KafkaOffset`
    /// when it has none yet. Local, no broker round trip.
    public func positions(_ partitions: [(topic: String, partition: Int32)]) -> [TopicPartitionOffset] {
        let list = TopicPartitionList.make(partitions.map { .init(topic: $0.topic, partition: $0.partition, offset: KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard rd_kafka_position(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [] }
        return TopicPartitionList.read(list)
    }

    public func watermarks(topic: String, partition: Int32, timeout: Duration = .seconds(10)) async throws -> (low: Int64, high: Int64) {
        try await queryWatermarks(rk: rk, topic: topic, partition: partition, timeout: timeout)
    }

    /// Cluster metadata through this consumer's connection.
    public func metadata(timeout: Duration = .seconds(5)) async throws -> ClusterMetadata {
        try await ClusterMetadata.fetch(rk: rk, context: context, timeout: timeout)
    }

    // MARK: - Messages

    /// Diagnostics: messages librdkafka has fetched for this consumer and not yet handed to the
    /// polling thread (`rd_kafka_queue_length` of the consumer queue), and batches the polling
    /// thread has handed over that no reader has taken yet.
    public var queuedMessages: (inLibrdkafka: Int, bufferedBatches: Int) {
        (Int(rd_kafka_queue_length(consumerQueue)), channel.bufferedCount)
    }

    /// Requests this consumer sent only to restart fetching after its pre-fetch queue had filled
    /// (see `FetchRefill`).
    public var fetchRefills: Int { refill.nudges }

    /// Consumed records, in batches (the cheapest way to read fast).
    public var batches: MessageBatches { MessageBatches(channel: channel) }

    /// Consumed records one by one.
    public var messages: Messages { Messages(channel: channel) }

    /// Consumed records with their values packed, one `PackedBatch` per poll; only for consumers
    /// configured with `packedValues` (then `batches` and `messages` deliver nothing).
    public var packedBatches: PackedBatches { PackedBatches(channel: packedChannel) }

    public struct PackedBatches: AsyncSequence, Sendable {
        public typealias Element = PackedBatch
        let channel: BatchChannel<PackedBatch>
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: channel) }
        public struct AsyncIterator: AsyncIteratorProtocol {
            let channel: BatchChannel<PackedBatch>
            public mutating func next() async throws -> PackedBatch? {
                while true {
                    guard let batches = try await channel.next() else { return nil }
                    if let first = batches.first { return first }
                }
            }
        }
    }

    public struct MessageBatches: AsyncSequence, Sendable {
        public typealias Element = [KafkaMessage]
        let channel: BatchChannel<KafkaMessage>
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: channel) }
        public struct AsyncIterator: AsyncIteratorProtocol {
            let channel: BatchChannel<KafkaMessage>
            public mutating func next() async throws -> [KafkaMessage]? { try await channel.next() }
        }
    }

    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = KafkaMessage
        let channel: BatchChannel<KafkaMessage>
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: channel) }
        /// Iterators share the consumer's position: records of a batch that one iterator did not
        /// reach (it was abandoned after a `break`) are what the next iterator returns first.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let channel: BatchChannel<KafkaMessage>
            public mutating func next() async throws -> KafkaMessage? {
                if let message = channel.popLeftover() { return message }
                while true {
                    guard var batch = try await channel.next() else { return nil }
                    if batch.isEmpty { continue }
                    let first = batch.removeFirst()
                    channel.setLeftover(batch)
                    return first
                }
            }
        }
    }

    /// The member id the group coordinator gave this consumer ("" while not in a group).
    public var memberID: String {
        guard let raw = rd_kafka_memberid(rk) else { return "" }
        defer { rd_kafka_mem_free(rk, raw) }
        return String(cString: raw)
    }

    /// The fatal error librdkafka raised, if any (for a consumer: typically FENCED_INSTANCE_ID —
    /// another member took over this one's `group.instance.id`). The consumer is unusable then.
    public var fatalError: String? {
        context.hasFatalError.load(ordering: .acquiring) ? context.fatalError.withLock { $0 } : nil
    }

    /// Leaves the group (revoking partitions) and ends `messages`. Commit first if you need to.
    public func close() { close(leaveGroup: false) }

    /// Ends `messages`, leaves the group and closes. A dynamic member always sends LeaveGroup
    /// (librdkafka does it on close); a static member (`groupInstanceID`) does only with
    /// `leaveGroup: true` — librdkafka keeps KIP-345's rule that a static member does not leave on
    /// close, so that a restart gets its partitions back, and until its session expires nobody
    /// else gets them. With `leaveGroup`, the consumer unsubscribes first (the rebalance handler
    /// sees the revocation, on the polling thread, as in any rebalance) and waits, at most
    /// `timeout`, until librdkafka has sent its LeaveGroup (the member id is cleared then);
    /// closing waits for the answer.
    public func close(leaveGroup: Bool, timeout: Duration = .seconds(5)) {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        channel.finish(throwing: nil)
        packedChannel.finish(throwing: nil)
        // The polling thread keeps serving librdkafka's callbacks (the revocation) until stopped;
        // with the channels finished it no longer waits for a reader.
        if leaveGroup && fatalError == nil && !memberID.isEmpty {
            if rd_kafka_unsubscribe(rk) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let deadline = ContinuousClock.now + timeout
                while !memberID.isEmpty && ContinuousClock.now < deadline { usleep(10_000) }
                if !memberID.isEmpty { context.logger.notice("LeaveGroup not sent before the timeout; closing anyway") }
            }
        }
        pollThread.stop { [consumerQueue] in rd_kafka_queue_yield(consumerQueue) }
        refill.stop()
        rd_kafka_consumer_close(rk)
        context.finish()
    }
}
