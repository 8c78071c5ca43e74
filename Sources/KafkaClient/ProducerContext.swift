import CoreMetrics
import Crdkafka
import Foundation
import Logging
import Synchronization

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
                state.pending.append(
                    DeliveryReport(
                        messageID: UInt64(opaque >> 1), topic: topic, partition: message.partition, offset: message.offset, timestamp: timestamp, error: nil))
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
