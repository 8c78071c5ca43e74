import CoreMetrics
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
    /// The queue `rd_kafka_poll` serves; held to interrupt the polling thread when stopping.
    private let mainQueue: OpaquePointer
    /// Readable when librdkafka's main queue has events (or when stopping).
    private let wake: WakePipe
    /// Batches of reports for `enqueue`d records.
    public let deliveryReports: AsyncStream<[DeliveryReport]>
    private let closed = Atomic<Bool>(false)

    public init(configuration: KafkaProducerConfiguration, logger: Logger = Logger(label: "tape.kafka.producer")) throws {
        let (stream, continuation) = AsyncStream.makeStream(of: [DeliveryReport].self)
        deliveryReports = stream
        let context = ProducerContext(
            logger: logger, bootstrapServers: configuration.kafka.bootstrapServers, reports: configuration.deliveryReports ? continuation : nil,
            latencyMetric: configuration.kafka.produceLatencyMetric)
        context.lowWatermark = max(1, configuration.maxQueuedMessages / 2)
        self.context = context
        let conf = try configuration.kafka.makeConf(extra: configuration.librdkafkaProperties)
        context.install(on: conf)
        rd_kafka_conf_set_dr_msg_cb(conf) { rk, message, _ in
            guard let rk, let message, let context = ClientContext.from(rk) as? ProducerContext else { return }
            context.delivered(message)
        }
        rk = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: conf)
        mainQueue = rd_kafka_queue_get_main(rk)
        let wake: WakePipe
        do { wake = try WakePipe() } catch {
            rd_kafka_queue_destroy(mainQueue)
            rd_kafka_destroy(rk)
            throw error
        }
        self.wake = wake
        // librdkafka writes to `wake` whenever its main queue (delivery reports, errors) goes from
        // empty to non-empty.
        var one: UInt8 = 1
        rd_kafka_queue_io_event_enable(mainQueue, wake.fd, &one, 1)
        nonisolated(unsafe) let handle = rk
        nonisolated(unsafe) let queue = mainQueue
        // Who serves delivery reports: librdkafka frees each delivered message on the thread that
        // serves its report. Served here while the application enqueues on another thread, every
        // free contends for the allocator arena the enqueuing thread is allocating from (measured:
        // ~25% more CPU than kcat, which produces and polls on one thread). So while records are
        // being enqueued, this thread hands the serving to the enqueuer (`tryEnqueue` serves when
        // `servePending` is set) and serves itself only if the enqueuer has not within 1 ms, or
        // when nothing is being enqueued (`send`, idle periods) — then at once.
        let deferred = ThreadOwned(false)
        pollThread = PollThread(name: "tape-prod-poll") {
            let enqueuesBefore = context.enqueues.load(ordering: .relaxed)
            wake.wait(milliseconds: deferred.value ? 1 : 100)
            guard rd_kafka_queue_length(queue) > 0 else {
                deferred.value = false
                return
            }
            if !deferred.value && context.waitingEnqueuers.load(ordering: .relaxed) == 0
                && context.enqueues.load(ordering: .relaxed) != enqueuesBefore
            {
                deferred.value = true
                context.servePending.store(true, ordering: .relaxed)
                return
            }
            deferred.value = false
            context.serveReady(rk: handle)
        }
    }

    deinit {
        pollThread.stop { [wake] in wake.signal() }
        rd_kafka_queue_io_event_enable(mainQueue, -1, nil, 0)
        if !closed.load(ordering: .acquiring) {
            rd_kafka_flush(rk, 5000)
        }
        context.finish()
        // Topic handles belong to `rk`: release them before it is destroyed (the context, which
        // holds them, may outlive this object by a moment; destroying them afterwards would be a
        // use-after-free).
        context.destroyTopicHandles()
        rd_kafka_queue_destroy(mainQueue)
        rd_kafka_destroy(rk)
    }

    /// Produces one record and waits for its acknowledgement.
    @discardableResult
    public func send(_ message: ProducerMessage) async throws -> DeliveryReport {
        while true {
            let result: SendAttempt = try await withCheckedThrowingContinuation { continuation in
                let box = Unmanaged.passRetained(DeliveryBox(continuation)).toOpaque()
                do throws(KafkaError) {
                    try context.producing.withLock { state throws(KafkaError) in try produce(message, state: &state, opaque: box) }
                } catch  where error.code == .queueFull {
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
                // Reports already waiting free space at once; otherwise wait for the next
                // deliveries (woken by them, not by a timer).
                if context.serveReady(rk: rk) > 0 { continue }
                // While we wait, the polling thread serves at once (it would otherwise leave the
                // reports to us for 1 ms).
                context.waitingEnqueuers.add(1, ordering: .relaxed)
                defer { context.waitingEnqueuers.subtract(1, ordering: .relaxed) }
                try await context.waitForDeliveries(after: generation)
            }
        }
    }

    /// Queues one record without waiting; throws `KafkaError` with code `.queueFull` when the queue is full.
    @discardableResult
    public func tryEnqueue(_ message: ProducerMessage) throws -> UInt64 {
        // Ids are consecutive over successful enqueues: a failed attempt (queue full) uses none.
        let id = try context.producing.withLock { state throws(KafkaError) -> UInt64 in
            let id = state.lastID + 1
            // Tag ids with the low bit so they never look like a (pointer-aligned) DeliveryBox.
            try produce(message, state: &state, opaque: UnsafeMutableRawPointer(bitPattern: UInt(id << 1 | 1)))
            state.lastID = id
            return id
        }
        context.enqueues.add(1, ordering: .relaxed)
        if id & ProducerContext.latencySampleMask == 0 { context.startLatencySample(id: id) }
        // Reports the polling thread left to us (see `init`): served here, on the enqueuing thread.
        if context.servePending.load(ordering: .relaxed) { context.serveReady(rk: rk) }
        return id
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeout.librdkafkaMilliseconds
        let context = self.context
        let err = try await Blocking.run { context.flush(rk: rk, milliseconds: ms) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let left = rd_kafka_outq_len(rk)
            throw KafkaError(
                code: .init(err), message: "\(left) record(s) still undelivered after \(timeout): \(context.unreachableMessage("deliver them"))",
                isRetriable: true)
        }
    }

    /// The cluster id the brokers report (Metadata v2+), waiting at most `timeout` for it; nil when
    /// none arrived (no broker answered, or a broker too old to have one).
    public func clusterID(timeout: Duration = .seconds(5)) async -> String? {
        nonisolated(unsafe) let rk = self.rk
        let ms = timeout.librdkafkaMilliseconds
        return try? await Blocking.run { () -> String? in
            guard let raw = rd_kafka_clusterid(rk, ms) else { return nil }
            defer { rd_kafka_mem_free(rk, raw) }
            return String(cString: raw)
        }
    }

    /// Waits, blocking the calling thread, until every queued record is delivered or `timeout`
    /// passes; returns whether everything was delivered. For synchronous contexts such as a
    /// consumer's rebalance handler.
    @discardableResult
    public func flushBlocking(timeout: Duration = .seconds(30)) -> Bool {
        context.flush(rk: rk, milliseconds: timeout.librdkafkaMilliseconds) == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Flushes outstanding records (graceful shutdown) and ends `deliveryReports`.
    public func close(timeout: Duration = .seconds(30)) async throws {
        defer {
            closed.store(true, ordering: .releasing)
            context.finish()
        }
        try await flush(timeout: timeout)
    }

    /// Records queued with `enqueue`/`tryEnqueue` since the producer was made (a running count, to
    /// tell whether anything was produced between two points).
    public var enqueuedRecords: UInt64 { context.enqueues.load(ordering: .relaxed) }

    /// Records queued in librdkafka and not yet acknowledged.
    public var outstanding: Int { Int(rd_kafka_outq_len(rk)) }

    /// Fetches cluster metadata, to check the cluster is reachable before a long job.
    public func metadata(timeout: Duration = .seconds(5)) async throws -> ClusterMetadata {
        try await ClusterMetadata.fetch(rk: rk, context: context, timeout: timeout)
    }

    // MARK: - produce

    /// Hands one record to librdkafka; call with `context.producing` held (it owns the topic handles).
    private func produce(_ message: ProducerMessage, state: inout ProducerContext.Producing, opaque: UnsafeMutableRawPointer?) throws(KafkaError) {
        if context.hasFatalError.load(ordering: .acquiring), let fatal = context.fatalError.withLock({ $0 }) {
            throw KafkaError(code: .fatal, message: "Producer is unusable after a fatal error: \(fatal)", isFatal: true)
        }
        let rkt = try context.topicHandle(&state, rk: rk, name: message.topic)
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
