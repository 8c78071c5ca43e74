import ArgumentParser
import CTapeMalloc
import Foundation
import KafkaClient
import Logging
import TapeMetrics
import TapeRuntime

/// `--brokers` and `-X` shared by every command that talks to Kafka.
struct KafkaOptions: ParsableArguments {
    @Option(name: .long, help: "Kafka bootstrap servers, host:port[,host:port...]. Default: $TAPE_BROKERS, else 127.0.0.1:9092.")
    var brokers: String?

    @Option(
        name: [.customShort("X"), .customLong("kafka-option")],
        help: ArgumentHelp(
            "Raw librdkafka property key=value (repeatable), e.g. --kafka-option security.protocol=SASL_SSL --kafka-option sasl.mechanism=SCRAM-SHA-256; secret values are never logged.",
            valueName: "key=value"))
    var properties: [String] = []

    @Flag(name: .long, help: "Log librdkafka's and Tape's debug output to stderr.")
    var verbose = false

    var bootstrapServers: String {
        if let brokers, !brokers.isEmpty { return brokers }
        if let env = ProcessInfo.processInfo.environment["TAPE_BROKERS"], !env.isEmpty { return env }
        return "127.0.0.1:9092"
    }

    func validate() throws {
        do { _ = try KafkaConfiguration.parseProperties(properties) } catch let error as KafkaError { throw ValidationError(error.message) }
    }

    /// Fails within `timeout` with one sentence ("no Kafka broker answered at HOST:PORT within 5 s
    /// ...") when no broker of `configuration` answers a metadata request: commands that would
    /// otherwise retry for longer check this first.
    static func requireCluster(_ configuration: KafkaConfiguration, timeout: Duration = .seconds(5)) async throws {
        var quiet = Logger(label: "tape.kafka.check")
        quiet.logLevel = .critical
        let admin = try KafkaAdmin(configuration: configuration, timeout: timeout, logger: quiet)
        _ = try await admin.metadata()
    }

    func configuration() throws -> KafkaConfiguration {
        var configuration = KafkaConfiguration(bootstrapServers: bootstrapServers, properties: try KafkaConfiguration.parseProperties(properties))
        configuration.produceLatencyMetric = .tape
        return configuration
    }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = verbose ? .trace : .warning
        return logger
    }
}

/// Writes bytes to stdout through a buffer (binary-safe, fast).
final class OutputBuffer {
    private var buffer: [UInt8] = []
    init() { buffer.reserveCapacity(1 << 16) }
    func write(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }
    func write(_ string: String) { write(string.utf8) }
    func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes {
            var offset = 0
            while offset < $0.count {
                let n = Foundation.write(1, $0.baseAddress! + offset, $0.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Prints a line to stderr.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// `--acks all|0|1` as librdkafka's `acks` (-1 for all; anything unparsable is all).
func parseAcks(_ text: String) -> Int { text == "all" ? -1 : Int(text) ?? -1 }

/// glibc malloc settings for the throughput-bound commands (`tape broker`, `tape process`, `tape
/// bench process`; called once, at the start): buffers of a few MB (fetch responses, packed consumer batches) come from
/// the heap and are reused instead of each being a fresh `mmap` whose every page the kernel must
/// fault in and clear — that was ~8% of all CPU time on the broker's fetch path. Up to 32 MB
/// of freed memory per arena is kept for reuse rather than returned to the kernel at once.
func tuneMallocForStreaming() {
    _ = tape_set_malloc_thresholds(16 << 20, 32 << 20)
}

/// glibc malloc settings for `tape up` (called once, before any thread starts): two arenas.
/// glibc gives busy threads arenas of their own (up to 8 per core) and keeps what is freed in
/// each; with a dozen threads passing messages to each other, `tape up` at 10k trades/s held
/// 155 MB of arena memory with 15 MB in use, and its RSS grew past 150 MB within a minute. With
/// two arenas it stays at 65–85 MB, and `tape bench e2e` latencies did not change.
func tuneMallocForOneProcess() {
    _ = tape_set_malloc_arena_max(2)
}

/// Hands memory that malloc's arenas hold free back to the kernel every `interval`, until
/// cancelled (`malloc_trim(0)`: a few ms, once per interval), so a burst's buffers do not stay
/// resident for the rest of the process's life.
func releaseFreedMemoryPeriodically(every interval: Duration = .seconds(5)) -> Task<Void, Never> {
    Task.detached(priority: .background) {
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            _ = tape_malloc_trim()
        }
    }
}

/// SIGINT and SIGTERM as an async stream: the one place a command takes them over.
///
/// Install it at the very start of `run()`, before librdkafka, NIO or SQLite start threads of their
/// own, so that a signal never lands on a thread that did not ask for it.
final class ShutdownSignals: @unchecked Sendable {  // `sources` are only read (cancelled) after init
    /// The signals received (SIGINT or SIGTERM), in order.
    let received: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        received = stream
        sources = [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            return source
        }
    }

    /// Stops listening (the signals stay ignored).
    func cancel() { sources.forEach { $0.cancel() } }

    static func name(_ sig: Int32) -> String { sig == SIGINT ? "SIGINT" : "SIGTERM" }
}

/// Runs `body` until it ends or Ctrl-C / SIGTERM cancels it (graceful shutdown).
func runUntilSignalled(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let signals = ShutdownSignals()
    defer { signals.cancel() }
    let task = Task { try await body() }
    let canceller = Task {
        for await _ in signals.received {
            task.cancel()
            return
        }
    }
    defer { canceller.cancel() }
    do {
        try await task.value
    } catch is CancellationError {
        // graceful stop
    }
}

/// JSON string literal escaping.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// Writes each message as one plain line to stderr, after `prefix` (no level, label or metadata):
/// how the commands show the operator a library's status lines, e.g. `CandleProcessor`'s console
/// (`process: partition 0 taken over: ...`).
struct PlainLineLogHandler: LogHandler {
    let prefix: String
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(prefix: String) { self.prefix = prefix }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        printError(prefix + event.message.description)
    }
}

/// A logger whose messages reach stderr as plain lines (`PlainLineLogHandler`).
func consoleLogger(_ label: String, prefix: String) -> Logger {
    Logger(label: label) { _ in PlainLineLogHandler(prefix: prefix) }
}
