import Crdkafka
import Foundation
import Logging
import Synchronization
import TapeCommon

/// Shared per-`rd_kafka_t` state reachable from librdkafka's C callbacks through the opaque pointer.
class ClientContext: @unchecked Sendable {
    let logger: Logger
    let bootstrapServers: String
    /// The last few error reasons librdkafka reported (connection refused, auth failed, ...).
    private let recentErrors = Mutex<[String]>([])
    /// Set when librdkafka raises a fatal error.
    let fatalError = Mutex<String?>(nil)
    /// Mirrors `fatalError != nil` for a lock-free check on hot paths.
    let hasFatalError = Atomic<Bool>(false)

    init(logger: Logger, bootstrapServers: String) {
        self.logger = logger
        self.bootstrapServers = bootstrapServers
    }

    func record(error reason: String) {
        recentErrors.withLock {
            $0.append(reason)
            if $0.count > 16 { $0.removeFirst($0.count - 16) }
        }
    }

    var lastErrors: [String] { recentErrors.withLock { $0 } }

    /// Called (on the thread serving callbacks) once librdkafka raised a fatal error.
    func failed(_ message: String) {}

    /// One sentence for "could not reach the cluster", naming the failing address if librdkafka told us.
    /// `within`: how long the request waited, named in the sentence ("within 5 s").
    func unreachableMessage(_ what: String, within: Duration? = nil) -> String {
        let errors = lastErrors
        let detail = errors.last(where: { $0.contains("Connect to") || $0.contains("failed") || $0.contains("resolve") }) ?? errors.last
        var text = "Cannot \(what): no Kafka broker answered at \(bootstrapServers)"
        if let within { text += " within \(Self.seconds(within))" }
        if let detail { text += " (\(Self.shorten(detail)))" }
        text += ". Start one with `tape broker`, or point --brokers (or TAPE_BROKERS) at a running cluster."
        return text
    }

    /// "5 s", "0.5 s".
    static func seconds(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(Double(ms) / 1000) s"
    }

    static func shorten(_ reason: String) -> String {
        // librdkafka: "127.0.0.1:9999/bootstrap: Connect to ipv4#127.0.0.1:9999 failed: Connection refused (after 0ms in state CONNECT)"
        var s = Substring(reason)
        // "[thrd:127.0.0.1:9999/bootstrap]: 127.0.0.1:9999/bootstrap: Connect to ..." -> "Connect to ..."
        if s.hasPrefix("[thrd:"), let r = s.range(of: "]: ") { s = s[r.upperBound...] }
        if let r = s.range(of: "/bootstrap: ") { s = s[r.upperBound...] }
        if let r = s.range(of: " (after ") { s = s[..<r.lowerBound] }
        return String(s)
    }

    /// Installs the error and log callbacks and this context as the opaque.
    func install(on conf: OpaquePointer) {
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(self).toOpaque())
        rd_kafka_conf_set_error_cb(conf) { rk, err, reason, _ in
            guard let rk, let context = ClientContext.from(rk) else { return }
            let text = reason.map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(err)))
            context.record(error: text)
            if rd_kafka_resp_err_t(err) == RD_KAFKA_RESP_ERR__FATAL {
                var buf = [CChar](repeating: 0, count: 512)
                let code = rd_kafka_fatal_error(rk, &buf, buf.count)
                let message = "\(String(cString: rd_kafka_err2name(code))): \(string(fromBuffer: buf))"
                context.fatalError.withLock { $0 = message }
                context.hasFatalError.store(true, ordering: .releasing)
                context.logger.error("Kafka client fatal error", metadata: ["reason": "\(message)"])
                context.failed(message)
            } else {
                context.logger.debug("Kafka client error", metadata: ["reason": "\(text)"])
            }
        }
        rd_kafka_conf_set_log_cb(conf) { rk, level, fac, buf in
            guard let rk, let context = ClientContext.from(rk) else { return }
            let text = buf.map { String(cString: $0) } ?? ""
            let facility = fac.map { String(cString: $0) } ?? ""
            // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug. librdkafka logs connection
            // failures at level 3 while it retries; they reach users through `unreachableMessage`.
            if level <= 4 {
                // Configuration warnings (a producer property given to a consumer, ...) are not
                // why a cluster is unreachable: keep them out of `unreachableMessage`.
                if facility != "CONFWARN" { context.record(error: text) }
                context.logger.debug("librdkafka", metadata: ["facility": "\(facility)", "message": "\(text)"])
            } else {
                context.logger.trace("librdkafka", metadata: ["facility": "\(facility)", "message": "\(text)"])
            }
        }
    }

    static func from(_ rk: OpaquePointer) -> ClientContext? {
        guard let raw = rd_kafka_opaque(rk) else { return nil }
        return Unmanaged<ClientContext>.fromOpaque(raw).takeUnretainedValue()
    }
}

/// Creates an `rd_kafka_t`, consuming `conf` (librdkafka owns it on success; we destroy it on failure).
func makeKafkaHandle(type: rd_kafka_type_t, conf: OpaquePointer) throws -> OpaquePointer {
    var errbuf = [CChar](repeating: 0, count: 512)
    guard let rk = rd_kafka_new(type, conf, &errbuf, errbuf.count) else {
        rd_kafka_conf_destroy(conf)
        throw KafkaError(code: .configuration, message: "Cannot create Kafka client: \(string(fromBuffer: errbuf))")
    }
    return rk
}

/// Runs blocking librdkafka calls off Swift's cooperative thread pool, each on a thread of its own.
///
/// Not on a dispatch queue: on Linux a concurrent queue shares its width-limited root-queue threads
/// with Swift's tasks, so calls waiting in librdkafka held tasks up. On 2 cores `tape up` logged
/// nothing for ~4 s after start while the server's three readers sat in `rd_kafka_metadata` on those
/// threads (gdb stacks), and its first trade reached /api/trades ~5 s after launch; with a thread
/// per call, 0.9 s. These calls are occasional (metadata, watermarks, seeks, commits, flushes), so a
/// thread each costs little.
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try body() })
            }
            thread.name = "tape-kafka-blocking"
            thread.start()
        }
    }
}

/// A dedicated OS thread that repeatedly runs `body` until stopped. librdkafka's poll calls block
/// in C until events arrive (they return early when there is work), so nothing here sleeps on a timer.
final class PollThread: Sendable {
    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }
    private let stopped = Flag()
    private let done = DispatchSemaphore(value: 0)

    /// - Parameter name: the thread's name as `top -H` and `perf` show it; Linux keeps 15 bytes.
    init(name: String, body: @escaping @Sendable () -> Void) {
        let shortName = String(decoding: Array(name.utf8.prefix(15)), as: UTF8.self)
        let thread = Thread { [stopped, done] in
            // Foundation's `Thread.name` does not reach the OS thread here (and Glibc's module
            // hides pthread_setname_np): name it from inside, where Linux shows it.
            if let comm = fopen("/proc/thread-self/comm", "w") {
                fputs(shortName, comm)
                fclose(comm)
            }
            while !stopped.value.load(ordering: .acquiring) {
                body()
            }
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    var isStopped: Bool { stopped.value.load(ordering: .acquiring) }

    /// Stops the loop and waits for the current iteration to end; `wake` interrupts a blocking poll
    /// (`rd_kafka_queue_yield`) so stopping does not wait out the poll timeout.
    func stop(wake: () -> Void = {}) {
        if stopped.value.exchange(true, ordering: .acquiringAndReleasing) { return }
        wake()
        done.wait()
    }
}

/// A pipe used as a wake-up signal: readable once signalled, by us or by librdkafka
/// (`rd_kafka_queue_io_event_enable` writes to it when a queue gets events).
final class WakePipe: Sendable {
    /// The end librdkafka (and `signal`) write to.
    let fd: Int32
    private let readEnd: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw KafkaError(code: .state, message: "Cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        for end in fds {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        readEnd = fds[0]
        fd = fds[1]
    }

    deinit {
        close(fd)
        close(readEnd)
    }

    /// Makes the pipe readable.
    func signal() {
        var one: UInt8 = 1
        _ = write(fd, &one, 1)
    }

    /// Waits until signalled or `milliseconds` pass, then drains the signal.
    func wait(milliseconds: Int32) {
        var pfd = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        if poll(&pfd, 1, milliseconds) > 0 {
            var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            while withUnsafeMutableBytes(of: &buffer, { read(readEnd, $0.baseAddress, $0.count) }) == MemoryLayout.size(ofValue: buffer) {}
        }
    }
}

/// A value only one thread ever touches (a polling thread's own state).
final class ThreadOwned<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// A C string written into a fixed buffer (librdkafka's errstr arguments).
func string(fromBuffer buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Topic names by topic handle, used only by one polling thread.
final class TopicNameCache: @unchecked Sendable {
    var names: [OpaquePointer: String] = [:]
    /// The last topic asked for: messages come in runs of one topic, and hashing the pointer for
    /// each one was ~9 % of the poll thread in `tape bench process`.
    private var last: (rkt: OpaquePointer, name: String)?

    func name(_ rkt: OpaquePointer) -> String {
        if let last, last.rkt == rkt { return last.name }
        if let name = names[rkt] {
            last = (rkt, name)
            return name
        }
        let name = String(cString: rd_kafka_topic_name(rkt))
        names[rkt] = name
        last = (rkt, name)
        return name
    }
}

extension Duration {
    /// The duration as librdkafka's `timeout_ms` argument.
    var librdkafkaMilliseconds: Int32 {
        Int32(clamping: wholeMilliseconds)
    }
}

/// Low and high watermark offsets of a partition, asked of the broker (off the cooperative pool).
func queryWatermarks(rk: OpaquePointer, topic: String, partition: Int32, timeout: Duration) async throws -> (low: Int64, high: Int64) {
    nonisolated(unsafe) let rk = rk
    let ms = timeout.librdkafkaMilliseconds
    return try await Blocking.run {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(rk, topic, partition, &low, &high, ms)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot read offsets of \(topic)[\(partition)]") }
        return (low, high)
    }
}
