import Crdkafka
import Foundation
import Logging
import Synchronization

/// An async Kafka producer over librdkafka.
///
/// Two ways to send:
/// - `send(_:)` waits for the broker's acknowledgement and returns its `DeliveryReport`.
/// - `enqueue(_:)` returns as soon as librdkafka has queued the record; its report arrives later
///   on `deliveryReports`, in batches. This is the high-throughput path.
///
/// A dedicated thread serves librdkafka's callbacks with a blocking `rd_kafka_poll`, which returns
/// as soon as reports are ready: there is no fixed polling delay capping throughput.
public final class KafkaProducer: @unchecked Sendable {
    let rk: OpaquePointer
    let context: ProducerContext
    private let pollThread: PollThread
    /// Batches of reports for `enqueue`d records.
    public let deliveryReports: AsyncStream<[DeliveryReport]>
    private let closed = Atomic<Bool>(false)

    public init(configuration: KafkaProducerConfiguration, logger: Logger = Logger(label: "tape.kafka.producer")) throws {
        let (stream, continuation) = AsyncStream.makeStream(of: [DeliveryReport].self)
        deliveryReports = stream
        let context = ProducerContext(logger: logger, bootstrapServers: configuration.kafka.bootstrapServers, reports: configuration.deliveryReports ? continuation : nil)
        context.lowWatermark = max(1, configuration.maxQueuedMessages / 2)
        self.context = context
        let conf = try configuration.kafka.makeConf(extra: configuration.librdkafkaProperties)
        context.install(on: conf)
        rd_kafka_conf_set_dr_msg_cb(conf) { rk, message, _ in
            guard let rk, let message, let context = ClientContext.from(rk) as? ProducerContext else { return }
            context.delivered(message)
        }
        rk = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: conf)
        nonisolated(unsafe) let handle = rk
        pollThread = PollThread(name: "tape-producer-poll") {
            if rd_kafka_poll(handle, 100) > 0 {
                context.flushReports()
                context.deliveriesServed(outstanding: Int(rd_kafka_outq_len(handle)))
            }
        }
    }

    deinit {
        pollThread.stop { rd_kafka_yield(rk) }
        if !closed.load(ordering: .acquiring) {
            rd_kafka_flush(rk, 5000)
        }
        context.finish()
        // Topic handles belong to `rk`: release them before it is destroyed (the context, which
        // holds them, may outlive this object by a moment; destroying them afterwards was a
        // use-after-free that crashed in free() now and then).
        context.destroyTopicHandles()
        rd_kafka_destroy(rk)
    }

    /// Produces one record and waits for its acknowledgement.
    @discardableResult
    public func send(_ message: ProducerMessage) async throws -> DeliveryReport {
        while true {
            let result: SendAttempt = try await withCheckedThrowingContinuation { continuation in
                let box = Unmanaged.passRetained(DeliveryBox(continuation)).toOpaque()
                do {
                    try produce(message, opaque: box)
                } catch let error as KafkaError where error.code == .queueFull {
                    Unmanaged<DeliveryBox>.fromOpaque(box).release()
                    continuation.resume(returning: .queueFull)
                } catch {
                    Unmanaged<DeliveryBox>.fromOpaque(box).release()
                    continuation.resume(throwing: error)
                }
            }
            switch result {
            case .delivered(let report):
                if let error = report.error { throw error }
                return report
            case .queueFull:
                try await context.waitForDeliveries(after: context.deliveryGeneration)
            }
        }
    }

    /// Queues one record and returns its message id; its report arrives on `deliveryReports`.
    /// Waits (without blocking a thread) while librdkafka's queue is full.
    @discardableResult
    public func enqueue(_ message: ProducerMessage) async throws -> UInt64 {
        while true {
            let generation = context.deliveryGeneration
            do {
                return try tryEnqueue(message)
            } catch let error as KafkaError where error.code == .queueFull {
                // Woken when the next deliveries free space, not on a timer.
                try await context.waitForDeliveries(after: generation)
            }
        }
    }

    /// Queues one record without waiting; throws `KafkaError` with code `.queueFull` when the queue is full.
    @discardableResult
    public func tryEnqueue(_ message: ProducerMessage) throws -> UInt64 {
        // Ids are consecutive over successful enqueues: a failed attempt (queue full) uses none.
        try context.enqueueLock.withLock {
            let id = context.lastID + 1
            // Tag ids with the low bit so they never look like a (pointer-aligned) DeliveryBox.
            try produce(message, opaque: UnsafeMutableRawPointer(bitPattern: UInt(id << 1 | 1)))
            context.lastID = id
            return id
        }
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeout.librdkafkaMilliseconds
        let err = try await Blocking.run { rd_kafka_flush(rk, ms) }
        context.flushReports()
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let left = rd_kafka_outq_len(rk)
            throw KafkaError(code: .init(err), message: "\(left) record(s) still undelivered after \(timeout): \(context.unreachableMessage("deliver them"))", isRetriable: true)
        }
    }

    /// Waits, blocking the calling thread, until every queued record is delivered or `timeout`
    /// passes; returns whether everything was delivered. For synchronous contexts such as a
    /// consumer's rebalance handler.
    @discardableResult
    public func flushBlocking(timeout: Duration = .seconds(30)) -> Bool {
        let err = rd_kafka_flush(rk, timeout.librdkafkaMilliseconds)
        context.flushReports()
        return err == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Flushes outstanding records (graceful shutdown) and ends `deliveryReports`.
    public func close(timeout: Duration = .seconds(30)) async throws {
        defer {
            closed.store(true, ordering: .releasing)
            context.finish()
        }
        try await flush(timeout: timeout)
    }

    /// Records queued in librdkafka and not yet acknowledged.
    public var outstanding: Int { Int(rd_kafka_outq_len(rk)) }

    /// Fetches cluster metadata, to check the cluster is reachable before a long job.
    public func metadata(timeout: Duration = .seconds(5)) async throws -> ClusterMetadata {
        try await ClusterMetadata.fetch(rk: rk, context: context, timeout: timeout)
    }

    // MARK: - produce

    private func produce(_ message: ProducerMessage, opaque: UnsafeMutableRawPointer?) throws {
        if context.hasFatalError.load(ordering: .acquiring), let fatal = context.fatalError.withLock({ $0 }) {
            throw KafkaError(code: .fatal, message: "Producer is unusable after a fatal error: \(fatal)", isFatal: true)
        }
        let rkt = try context.topicHandle(rk: rk, name: message.topic)
        // Headers are built as an application-owned list (VTYPE_HEADERS): on success librdkafka
        // takes it, on failure we destroy it. (VTYPE_HEADER, one per header, double-frees on
        // librdkafka 2.0.2's partitioner-error path.)
        var headers: OpaquePointer? = nil
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                let err: rd_kafka_resp_err_t
                if let value = header.value {
                    err = value.withUnsafeBytes { rd_kafka_header_add(headers, header.key, -1, $0.baseAddress, $0.count) }
                } else {
                    err = rd_kafka_header_add(headers, header.key, -1, nil, 0)
                }
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    rd_kafka_headers_destroy(headers)
                    throw KafkaError(err, "Cannot add header '\(header.key)'")
                }
            }
        }
        let error: OpaquePointer? = withOptionalBytes(message.key) { keyPtr, keyLen in
            withOptionalBytes(message.value) { valuePtr, valueLen in
                // On the stack: this runs once per record.
                withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 8) { vus in
                    var n = 0
                    func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                        var vu = rd_kafka_vu_t()
                        vu.vtype = type
                        set(&vu)
                        vus.initializeElement(at: n, to: vu)
                        n += 1
                    }
                    add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = rkt }
                    add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = message.partition ?? RD_KAFKA_PARTITION_UA }
                    add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                    add(RD_KAFKA_VTYPE_VALUE) { $0.u.mem = .init(ptr: valuePtr, size: valueLen) }
                    add(RD_KAFKA_VTYPE_KEY) { $0.u.mem = .init(ptr: keyPtr, size: keyLen) }
                    add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
                    if let ts = message.timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = ts } }
                    if let headers { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
                    return rd_kafka_produceva(rk, vus.baseAddress, n)
                }
            }
        }
        if let error {
            if let headers { rd_kafka_headers_destroy(headers) }
            if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                // Frequent under load: no string formatting on this path.
                rd_kafka_error_destroy(error)
                throw KafkaError.queueFullError
            }
            throw KafkaError(consuming: error, "Cannot produce to \(message.topic)")
        }
    }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeMutableRawPointer?, Int) -> R) -> R {
    guard let bytes else { return body(nil, 0) }
    if bytes.isEmpty {
        // A present-but-empty value is not a null value: give librdkafka a non-nil pointer.
        var zero: UInt8 = 0
        return withUnsafeMutableBytes(of: &zero) { body($0.baseAddress, 0) }
    }
    return bytes.withUnsafeBytes { body(UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count) }
}

enum SendAttempt: Sendable {
    case delivered(DeliveryReport)
    case queueFull
}

final class DeliveryBox {
    let continuation: CheckedContinuation<SendAttempt, any Error>
    init(_ continuation: CheckedContinuation<SendAttempt, any Error>) { self.continuation = continuation }
}

/// Producer-side callback state: topic handles, message ids and pending report batches.
final class ProducerContext: ClientContext, @unchecked Sendable {
    private struct State {
        var topics: [String: OpaquePointer] = [:]
        var topicNames: [OpaquePointer: String] = [:]
        var pending: [DeliveryReport] = []
        var lastTopic: (name: String, rkt: OpaquePointer)?
        var lastReported: (rkt: OpaquePointer, name: String)?
    }
    private let lock = NSLock()
    private var state = State()
    private let reports: AsyncStream<[DeliveryReport]>.Continuation?

    /// `reports != nil`, without copying the continuation on the per-record path.
    private let hasReports: Bool

    init(logger: Logger, bootstrapServers: String, reports: AsyncStream<[DeliveryReport]>.Continuation?) {
        self.reports = reports
        self.hasReports = reports != nil
        super.init(logger: logger, bootstrapServers: bootstrapServers)
    }

    /// Releases the topic handles; called by the producer before `rd_kafka_destroy`.
    func destroyTopicHandles() {
        lock.withLock {
            for rkt in state.topics.values { rd_kafka_topic_destroy(rkt) }
            state.topics.removeAll()
            state.topicNames.removeAll()
            state.lastTopic = nil
            state.lastReported = nil
        }
    }

    private let waiters = Mutex<(generation: UInt64, continuations: [CheckedContinuation<Void, Never>])>((0, []))

    /// Counts the times deliveries brought the local queue below `lowWatermark`; `enqueue` waits
    /// for it to move when the queue is full. (Waking on every delivery instead makes the enqueuing
    /// task and the polling thread ping-pong, one batch at a time.)
    var deliveryGeneration: UInt64 { waiters.withLock { $0.generation } }

    /// Returns once a poll after `generation` has served events (immediately if one already has).
    func waitForDeliveries(after generation: UInt64) async throws {
        try Task.checkCancellation()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = waiters.withLock { state -> Bool in
                if state.generation != generation { return true }
                state.continuations.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Queued records below which waiting enqueuers resume.
    var lowWatermark = 50_000

    /// Called by the polling thread after it served events.
    func deliveriesServed(outstanding: Int) {
        guard outstanding < lowWatermark else { return }
        let ready = waiters.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation &+= 1
            defer { state.continuations.removeAll() }
            return state.continuations
        }
        for continuation in ready { continuation.resume() }
    }

    /// Serializes `tryEnqueue` so message ids are consecutive; guards `lastID`.
    let enqueueLock = NSLock()
    /// The id of the last record `tryEnqueue` queued.
    var lastID: UInt64 = 0

    func topicHandle(rk: OpaquePointer, name: String) throws -> OpaquePointer {
        try lock.withLock {
            if let last = state.lastTopic, last.name == name { return last.rkt }
            if let rkt = state.topics[name] {
                state.lastTopic = (name, rkt)
                return rkt
            }
            guard let rkt = rd_kafka_topic_new(rk, name, nil) else {
                throw KafkaError(rd_kafka_last_error(), "Cannot use topic '\(name)'")
            }
            state.topics[name] = rkt
            state.topicNames[rkt] = name
            state.lastTopic = (name, rkt)
            return rkt
        }
    }

    /// Called from librdkafka's delivery callback, on the thread that polls.
    func delivered(_ pointer: UnsafePointer<rd_kafka_message_t>) {
        let message = pointer.pointee
        let opaque = UInt(bitPattern: message._private)
        let isEnqueued = opaque & 1 == 1
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        // The timestamp is read through librdkafka's own pointer: it finds its message struct from it.
        let timestamp = rd_kafka_message_timestamp(pointer, &tsType)
        lock.lock()
        let topic: String
        if let rkt = message.rkt, let last = state.lastReported, last.rkt == rkt {
            topic = last.name
        } else {
            topic = message.rkt.flatMap { state.topicNames[$0] } ?? ""
            if let rkt = message.rkt { state.lastReported = (rkt, topic) }
        }
        if isEnqueued && hasReports && message.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            // Fast path for the high-throughput API: one lock per report.
            state.pending.append(DeliveryReport(messageID: UInt64(opaque >> 1), topic: topic, partition: message.partition, offset: message.offset, timestamp: timestamp, error: nil))
            lock.unlock()
            return
        }
        lock.unlock()
        var report = DeliveryReport(messageID: 0, topic: topic, partition: message.partition, offset: message.offset, timestamp: timestamp, error: nil)
        if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            var error = KafkaError(message.err, "Delivery to \(topic) failed")
            if message.err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || message.err == RD_KAFKA_RESP_ERR__TRANSPORT {
                error.message = unreachableMessage("deliver to \(topic)")
            }
            report.error = error
        }
        if isEnqueued {
            report.messageID = UInt64(opaque >> 1)
            if hasReports { lock.withLock { state.pending.append(report) } }
        } else if let raw = message._private {
            let box = Unmanaged<DeliveryBox>.fromOpaque(raw).takeRetainedValue()
            box.continuation.resume(returning: .delivered(report))
        }
    }

    func flushReports() {
        guard let reports else { return }
        let batch: [DeliveryReport] = lock.withLock {
            let b = state.pending
            state.pending.removeAll(keepingCapacity: true)
            return b
        }
        if !batch.isEmpty { reports.yield(batch) }
    }

    func finish() {
        flushReports()
        reports?.finish()
    }
}
