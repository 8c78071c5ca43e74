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
        pollThread = PollThread(name: "tape-producer-poll") {
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
                } catch where error.code == .queueFull {
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
            throw KafkaError(code: .init(err), message: "\(left) record(s) still undelivered after \(timeout): \(context.unreachableMessage("deliver them"))", isRetriable: true)
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

enum SendAttempt: Sendable {
    case delivered(DeliveryReport)
    case queueFull
}

final class DeliveryBox {
    let continuation: CheckedContinuation<SendAttempt, any Error>
    init(_ continuation: CheckedContinuation<SendAttempt, any Error>) { self.continuation = continuation }
}

/// Producer-side callback state: topic handles, message ids and pending report batches.
///
/// Two locks, each a `Mutex` over a plain struct (no Foundation lock, no dynamic exclusivity
/// checks on the per-record paths): `producing` serializes produce calls (consecutive message ids)
/// and owns the topic handles; `delivering` is taken by the delivery callback on the polling thread.
final class ProducerContext: ClientContext, @unchecked Sendable {
    /// Owned by the threads that produce.
    struct Producing: ~Copyable, @unchecked Sendable {
        var handles: [String: OpaquePointer] = [:]
        var last: (name: String, rkt: OpaquePointer)?
        /// The id of the last record `tryEnqueue` queued.
        var lastID: UInt64 = 0
    }
    /// Owned by the polling thread's delivery callback.
    struct Delivering: ~Copyable, @unchecked Sendable {
        var names: [OpaquePointer: String] = [:]
        var last: (rkt: OpaquePointer, name: String)?
        var pending: [DeliveryReport] = []
        /// Latency timers (`KafkaConfiguration.produceLatencyMetric`) by topic, created at the
        /// first sample, so after the application bootstrapped its metrics backend.
        var latencyTimers: [String: CoreMetrics.Timer] = [:]
    }
    let producing = Mutex(Producing())
    private let delivering = Mutex(Delivering())
    private let reports: AsyncStream<[DeliveryReport]>.Continuation?

    /// `reports != nil`, without copying the continuation on the per-record path.
    private let hasReports: Bool

    /// The latency timer's name and labels; nil: latency is not measured.
    let latencyMetric: ProduceLatencyMetric?

    init(
        logger: Logger, bootstrapServers: String, reports: AsyncStream<[DeliveryReport]>.Continuation?,
        latencyMetric: ProduceLatencyMetric? = nil
    ) {
        self.reports = reports
        self.latencyMetric = latencyMetric
        self.hasReports = reports != nil
        super.init(logger: logger, bootstrapServers: bootstrapServers)
    }

    /// Releases the topic handles; called by the producer before `rd_kafka_destroy`.
    func destroyTopicHandles() {
        producing.withLock { state in
            for rkt in state.handles.values { rd_kafka_topic_destroy(rkt) }
            state.handles.removeAll()
            state.last = nil
        }
        delivering.withLock { state in
            state.names.removeAll()
            state.last = nil
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

    /// Held while serving librdkafka's main queue, so reports keep their order whichever thread
    /// serves them.
    let serving = Mutex<Void>(())
    /// Successful `tryEnqueue`s; the polling thread leaves serving to an active enqueuer.
    let enqueues = Atomic<UInt64>(0)
    /// `enqueue` calls waiting for queue space.
    let waitingEnqueuers = Atomic<Int>(0)
    /// Set by the polling thread when it leaves ready reports to the enqueuing thread.
    let servePending = Atomic<Bool>(false)

    /// Serves the events ready now (delivery reports, errors) on the calling thread without
    /// waiting, unless another thread is serving; returns how many it served.
    @discardableResult
    func serveReady(rk: OpaquePointer) -> Int {
        serving.withLockIfAvailable { _ -> Int in
            servePending.store(false, ordering: .relaxed)
            let served = Int(rd_kafka_poll(rk, 0))
            if served > 0 {
                flushReports()
                deliveriesServed(outstanding: Int(rd_kafka_outq_len(rk)))
            }
            return served
        } ?? 0
    }

    /// `rd_kafka_flush`, blocking the calling thread. It serves reports itself: the serving lock is
    /// held so no other thread serves at the same time (reports stay in order).
    func flush(rk: OpaquePointer, milliseconds: Int32) -> rd_kafka_resp_err_t {
        serving.withLock { _ in
            let err = rd_kafka_flush(rk, milliseconds)
            flushReports()
            return err
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

    /// The handle of topic `name` (created on first use); call with `producing` held.
    func topicHandle(_ state: inout Producing, rk: OpaquePointer, name: String) throws(KafkaError) -> OpaquePointer {
        if let last = state.last, last.name == name { return last.rkt }
        if let rkt = state.handles[name] {
            state.last = (name, rkt)
            return rkt
        }
        guard let rkt = rd_kafka_topic_new(rk, name, nil) else {
            throw KafkaError(rd_kafka_last_error(), "Cannot use topic '\(name)'")
        }
        state.handles[name] = rkt
        state.last = (name, rkt)
        delivering.withLock { $0.names[rkt] = name }
        return rkt
    }

    // MARK: produce latency (`KafkaConfiguration.produceLatencyMetric`), sampled

    /// One `enqueue`d record in this many (+1) has its enqueue → report time measured.
    static let latencySampleMask: UInt64 = 63
    private static let latencySlots = 1024
    /// Enqueue times (ns) of sampled records, by (id / 64) modulo the slot count.
    private let latencyStarts = Mutex([UInt64](repeating: 0, count: latencySlots))

    func startLatencySample(id: UInt64) {
        guard latencyMetric != nil else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        latencyStarts.withLock { $0[Int((id >> 6) % UInt64(Self.latencySlots))] = now }
    }

    private func finishLatencySample(id: UInt64, topic: String, state: inout Delivering) {
        let start = latencyStarts.withLock { $0[Int((id >> 6) % UInt64(Self.latencySlots))] }
        let now = DispatchTime.now().uptimeNanoseconds
        guard start > 0, now >= start, let metric = latencyMetric else { return }
        let timer: CoreMetrics.Timer
        if let existing = state.latencyTimers[topic] {
            timer = existing
        } else {
            timer = CoreMetrics.Timer(label: metric.label, dimensions: metric.dimensions(topic: topic), preferredDisplayUnit: .seconds)
            state.latencyTimers[topic] = timer
        }
        timer.recordNanoseconds(Int64(now - start))
    }

    /// Called from librdkafka's delivery callback, on the thread that polls.
    func delivered(_ pointer: UnsafePointer<rd_kafka_message_t>) {
        let message = pointer.pointee
        let opaque = UInt(bitPattern: message._private)
        let isEnqueued = opaque & 1 == 1
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        // The timestamp is read through librdkafka's own pointer: it finds its message struct from it.
        let timestamp = rd_kafka_message_timestamp(pointer, &tsType)
        let fast = isEnqueued && hasReports && message.err == RD_KAFKA_RESP_ERR_NO_ERROR
        let topic: String = delivering.withLock { state in
            let topic: String
            if let rkt = message.rkt, let last = state.last, last.rkt == rkt {
                topic = last.name
            } else {
                topic = message.rkt.flatMap { state.names[$0] } ?? ""
                if let rkt = message.rkt { state.last = (rkt, topic) }
            }
            if isEnqueued && UInt64(opaque >> 1) & Self.latencySampleMask == 0 && message.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                finishLatencySample(id: UInt64(opaque >> 1), topic: topic, state: &state)
            }
            if fast {
                // The high-throughput API: one lock per report.
                state.pending.append(DeliveryReport(messageID: UInt64(opaque >> 1), topic: topic, partition: message.partition, offset: message.offset, timestamp: timestamp, error: nil))
            }
            return topic
        }
        if fast { return }
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
            if hasReports { delivering.withLock { $0.pending.append(report) } }
        } else if let raw = message._private {
            let box = Unmanaged<DeliveryBox>.fromOpaque(raw).takeRetainedValue()
            box.continuation.resume(returning: .delivered(report))
        }
    }

    func flushReports() {
        guard let reports else { return }
        let batch: [DeliveryReport] = delivering.withLock { state in
            if state.pending.isEmpty { return [] }
            // The next batch is likely as large as this one: reserve it once instead of regrowing.
            var next: [DeliveryReport] = []
            next.reserveCapacity(state.pending.count)
            swap(&next, &state.pending)
            return next
        }
        if !batch.isEmpty { reports.yield(batch) }
    }

    func finish() {
        flushReports()
        reports?.finish()
    }
}
