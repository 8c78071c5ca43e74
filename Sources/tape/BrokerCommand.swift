import ArgumentParser
import Dispatch
import Foundation
import Logging
import TapeBroker
import TapeRuntime

/// `tape broker`: runs the embedded single-node Kafka-compatible broker.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the embedded single-node Kafka-compatible broker.")

    enum FsyncPolicyOption: String, ExpressibleByArgument, CaseIterable {
        case always, interval, never

        var policy: FsyncPolicy {
            switch self {
            case .always: .always
            case .interval: .interval(milliseconds: 1000)
            case .never: .never
            }
        }
    }

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: String = "127.0.0.1:9092"

    @Option(help: ArgumentHelp("Address clients are told to connect to, HOST:PORT (default: the listen address).", visibility: .hidden))
    var advertise: String?

    @Option(help: "Directory for topic data and committed offsets.")
    var dataDir: String = "./tape-data"

    @Option(help: "When appended data is fsynced: always (before acks>=1 answers), interval or never.")
    var fsync: FsyncPolicyOption = .interval

    @Option(help: "Create unknown topics on produce and metadata requests: true or false.")
    var autoCreateTopics: Bool = true

    @Option(help: "Partitions of auto-created topics.")
    var numPartitions: Int32 = 1

    @Option(help: "Partitions of all topics together; creating more is refused with POLICY_VIOLATION.")
    var maxPartitions: Int = 10_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @OptionGroup(title: "Limits (docs/limits.md)")
    var limits: BrokerLimitOptions

    func validate() throws {
        guard (try? Self.parseListen(listen)) != nil else {
            throw ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9092; got \(listen).")
        }
        if let advertise, (try? Self.parseListen(advertise)) == nil {
            throw ValidationError("--advertise must be HOST:PORT, e.g. 127.0.0.1:9092; got \(advertise).")
        }
        guard numPartitions >= 1 else { throw ValidationError("--num-partitions must be at least 1; got \(numPartitions).") }
        guard maxPartitions >= 1 else { throw ValidationError("--max-partitions must be at least 1; got \(maxPartitions).") }
        try limits.validate()
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(logLevel).")
        }
    }

    static func parseListen(_ s: String) throws -> (String, Int) {
        guard let address = HostPort(s) else { throw ValidationError("\(s) is not HOST:PORT with a port from 0 to 65535") }
        return (address.host, address.port)
    }

    func run() async throws {
        // Before NIO and the storage threads start (see ShutdownSignals).
        tuneMallocForStreaming()
        let shutdown = ShutdownSignals()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "tape.broker")
        var config = BrokerConfiguration()
        (config.host, config.port) = try Self.parseListen(listen)
        if let advertise {
            let (host, port) = try Self.parseListen(advertise)
            config.advertisedHost = host
            config.advertisedPort = port
        }
        config.autoCreateTopics = autoCreateTopics
        config.numPartitions = numPartitions
        limits.apply(to: &config)
        // systemd and most shells start processes at 1024 open files (soft) with a far higher hard
        // limit: take what is allowed, then size the connection budget to it.
        DescriptorLimit.raiseSoftLimit()
        let stores = try Self.buildStores(dataDir: dataDir, fsync: fsync, logger: logger, maxPartitions: maxPartitions)
        let broker = Broker(
            configuration: config, topics: stores.topics, committedOffsets: stores.offsets, logger: logger, transactionStore: stores.transactions)
        // A BrokerStartError is one sentence saying what to do; it is printed without usage text.
        let bound = try await BrokerServer(broker: broker, logger: logger).bind()
        // Ctrl-C / SIGTERM stop the server gracefully.
        let signals = shutdown.received
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await bound.run() }
            group.addTask {
                for await sig in signals {
                    logger.info("received \(ShutdownSignals.name(sig)); shutting down")
                    return
                }
            }
            _ = try await group.next()
            group.cancelAll()
        }
        shutdown.cancel()
        await stores.close()
        logger.info("tape broker stopped")
    }

    /// The durable stores: topics in `LogManager`, committed offsets in its `OffsetStore`.
    static func buildStores(dataDir: String, fsync: FsyncPolicyOption, logger: Logger, maxPartitions: Int = 10_000) throws -> BrokerStage.Stores {
        try BrokerStage.openStores(dataDirectory: dataDir, fsync: fsync.policy, logger: logger, maxPartitions: maxPartitions)
    }
}

/// `tape broker`'s resource limits; names follow Kafka's broker settings (docs/limits.md).
struct BrokerLimitOptions: ParsableArguments {
    @Option(help: "Client connections served at once; more are closed when accepted (lowered to fit the open-files limit).")
    var maxConnections: Int = 1000

    @Option(help: "Close connections without traffic for this many milliseconds (0: never).")
    var connectionsMaxIdleMs: Int64 = 600_000

    @Option(help: "Close a connection whose started request frame is not complete within this many milliseconds (0: never).")
    var requestReadTimeoutMs: Int64 = 60_000

    @Option(help: "Bytes of request frames being read across all connections; beyond it, connections wait unread.")
    var queuedMaxRequestBytes: Int = 512 << 20

    @Option(help: "Largest fetch response in bytes, whatever a client asks (the first batch is always returned).")
    var fetchMaxBytes: Int = 57_671_680

    @Option(help: "Members of one consumer group; joins beyond it get GROUP_MAX_SIZE_REACHED.")
    var groupMaxSize: Int = 1000

    @Option(help: "Consumer groups with members held at once; new groups beyond it get GROUP_MAX_SIZE_REACHED.")
    var maxGroups: Int = 10_000

    @Option(help: "Largest committed-offset metadata in bytes; larger commits get OFFSET_METADATA_TOO_LARGE.")
    var offsetMetadataMaxBytes: Int = 4096

    @Option(help: "Forget an idempotent producer's state after this many milliseconds without a write.")
    var producerIdExpirationMs: Int64 = 86_400_000

    @Option(help: "Longest transaction.timeout.ms a transactional producer may ask for; longer gets INVALID_TRANSACTION_TIMEOUT.")
    var transactionMaxTimeoutMs: Int32 = 900_000

    func validate() throws {
        let positive: [(String, Int64)] = [
            ("--max-connections", Int64(maxConnections)), ("--queued-max-request-bytes", Int64(queuedMaxRequestBytes)),
            ("--fetch-max-bytes", Int64(fetchMaxBytes)), ("--group-max-size", Int64(groupMaxSize)), ("--max-groups", Int64(maxGroups)),
            ("--producer-id-expiration-ms", producerIdExpirationMs),
        ]
        if transactionMaxTimeoutMs < 1 { throw ValidationError("--transaction-max-timeout-ms must be at least 1; got \(transactionMaxTimeoutMs).") }
        for (flag, value) in positive where value < 1 { throw ValidationError("\(flag) must be at least 1; got \(value).") }
        let nonNegative: [(String, Int64)] = [
            ("--connections-max-idle-ms", connectionsMaxIdleMs), ("--request-read-timeout-ms", requestReadTimeoutMs),
            ("--offset-metadata-max-bytes", Int64(offsetMetadataMaxBytes)),
        ]
        for (flag, value) in nonNegative where value < 0 { throw ValidationError("\(flag) must be 0 or more; got \(value).") }
        if fetchMaxBytes > Int(Int32.max) / 2 { throw ValidationError("--fetch-max-bytes must be at most \(Int(Int32.max) / 2); got \(fetchMaxBytes).") }
    }

    func apply(to config: inout BrokerConfiguration) {
        config.maxConnections = maxConnections
        config.connectionsMaxIdleMs = connectionsMaxIdleMs
        config.requestReadTimeoutMs = requestReadTimeoutMs
        config.maxRequestMemoryBytes = queuedMaxRequestBytes
        config.fetchMaxBytes = fetchMaxBytes
        config.group.maxSize = groupMaxSize
        config.maxGroups = maxGroups
        config.offsetMetadataMaxBytes = offsetMetadataMaxBytes
        config.producerIdExpirationMs = producerIdExpirationMs
        config.transactionMaxTimeoutMs = transactionMaxTimeoutMs
    }
}
