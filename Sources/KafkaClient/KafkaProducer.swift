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
            rd_kafka_poll(handle, 100)
            context.flushReports()
        }
    }

    deinit {
        pollThread.stop()
        if !closed.load(ordering: .acquiring) {
            rd_kafka_flush(rk, 5000)
        }
        context.finish()
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
                try await Task.sleep(for: .milliseconds(1))
            }
        }
    }

    /// Queues one record and returns its message id; its report arrives on `deliveryReports`.
    /// Waits (without blocking a thread) while librdkafka's queue is full.
    @discardableResult
    public func enqueue(_ message: ProducerMessage) async throws -> UInt64 {
        while true {
            do {
                return try tryEnqueue(message)
            } catch let error as KafkaError where error.code == .queueFull {
                try await Task.sleep(for: .microseconds(500))
            }
        }
    }

    /// Queues one record without waiting; throws `KafkaError` with code `.queueFull` when the queue is full.
    @discardableResult
    public func tryEnqueue(_ message: ProducerMessage) throws -> UInt64 {
        let id = context.nextID()
        // Tag ids with the low bit so they never look like a (pointer-aligned) DeliveryBox.
        try produce(message, opaque: UnsafeMutableRawPointer(bitPattern: UInt(id << 1 | 1)))
        return id
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        nonisolated(unsafe) let rk = self.rk
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let err = try await Blocking.run { rd_kafka_flush(rk, ms) }
        context.flushReports()
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let left = rd_kafka_outq_len(rk)
            throw KafkaError(code: .init(err), message: "\(left) record(s) still undelivered after \(timeout): \(context.unreachableMessage("deliver them"))", isRetriable: true)
        }
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
        if let fatal = context.fatalError.withLock({ $0 }) {
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
                var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 8)
                var n = 0
                vus[n].vtype = RD_KAFKA_VTYPE_RKT; vus[n].u.rkt = rkt; n += 1
                vus[n].vtype = RD_KAFKA_VTYPE_PARTITION; vus[n].u.i32 = message.partition ?? RD_KAFKA_PARTITION_UA; n += 1
                vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[n].u.i = RD_KAFKA_MSG_F_COPY; n += 1
                vus[n].vtype = RD_KAFKA_VTYPE_VALUE; vus[n].u.mem = .init(ptr: valuePtr, size: valueLen); n += 1
                vus[n].vtype = RD_KAFKA_VTYPE_KEY; vus[n].u.mem = .init(ptr: keyPtr, size: keyLen); n += 1
                vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE; vus[n].u.ptr = opaque; n += 1
                if let ts = message.timestamp { vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP; vus[n].u.i64 = ts; n += 1 }
                if let headers { vus[n].vtype = RD_KAFKA_VTYPE_HEADERS; vus[n].u.headers = headers; n += 1 }
                return rd_kafka_produceva(rk, vus, n)
            }
        }
        if let error {
            if let headers { rd_kafka_headers_destroy(headers) }
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
        var nextID: UInt64 = 1
    }
    private let lock = NSLock()
    private var state = State()
    private let reports: AsyncStream<[DeliveryReport]>.Continuation?

    init(logger: Logger, bootstrapServers: String, reports: AsyncStream<[DeliveryReport]>.Continuation?) {
        self.reports = reports
        super.init(logger: logger, bootstrapServers: bootstrapServers)
    }

    deinit {
        for rkt in state.topics.values { rd_kafka_topic_destroy(rkt) }
    }

    func nextID() -> UInt64 {
        lock.withLock {
            defer { state.nextID += 1 }
            return state.nextID
        }
    }

    func topicHandle(rk: OpaquePointer, name: String) throws -> OpaquePointer {
        try lock.withLock {
            if let rkt = state.topics[name] { return rkt }
            guard let rkt = rd_kafka_topic_new(rk, name, nil) else {
                throw KafkaError(rd_kafka_last_error(), "Cannot use topic '\(name)'")
            }
            state.topics[name] = rkt
            state.topicNames[rkt] = name
            return rkt
        }
    }

    /// Called from librdkafka's delivery callback, on the thread that polls.
    func delivered(_ pointer: UnsafePointer<rd_kafka_message_t>) {
        let message = pointer.pointee
        let topic = message.rkt.flatMap { rkt in lock.withLock { state.topicNames[rkt] } } ?? ""
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        // The timestamp is read through librdkafka's own pointer: it finds its message struct from it.
        let timestamp = rd_kafka_message_timestamp(pointer, &tsType)
        var report = DeliveryReport(messageID: 0, topic: topic, partition: message.partition, offset: message.offset, timestamp: timestamp, error: nil)
        if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            var error = KafkaError(message.err, "Delivery to \(topic) failed")
            if message.err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || message.err == RD_KAFKA_RESP_ERR__TRANSPORT {
                error.message = unreachableMessage("deliver to \(topic)")
            }
            report.error = error
        }
        let opaque = UInt(bitPattern: message._private)
        if opaque & 1 == 1 {
            report.messageID = UInt64(opaque >> 1)
            if reports != nil { lock.withLock { state.pending.append(report) } }
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
