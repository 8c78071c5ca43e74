import ArgumentParser
import Dispatch
import Foundation
import Logging
import TapeBroker

/// `tape broker`: runs the embedded single-node Kafka-compatible broker.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the embedded single-node Kafka-compatible broker.")

    enum FsyncPolicyOption: String, ExpressibleByArgument, CaseIterable {
        case always, interval, never
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

    func validate() throws {
        guard (try? Self.parseListen(listen)) != nil else {
            throw ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9092; got \(listen).")
        }
        if let advertise, (try? Self.parseListen(advertise)) == nil {
            throw ValidationError("--advertise must be HOST:PORT, e.g. 127.0.0.1:9092; got \(advertise).")
        }
        guard numPartitions >= 1 else { throw ValidationError("--num-partitions must be at least 1; got \(numPartitions).") }
        guard maxPartitions >= 1 else { throw ValidationError("--max-partitions must be at least 1; got \(maxPartitions).") }
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
        let stores = try Self.buildStores(dataDir: dataDir, fsync: fsync, logger: logger, maxPartitions: maxPartitions)
        let broker = Broker(configuration: config, topics: stores.topics, committedOffsets: stores.offsets, logger: logger)
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

    /// Where topics and committed offsets live, and how to close them on shutdown.
    struct Stores {
        var topics: any TopicStore
        var offsets: any CommittedOffsetStore
        var close: @Sendable () async -> Void
    }

    /// The durable stores: topics in `LogManager`, committed offsets in its `OffsetStore`.
    static func buildStores(dataDir: String, fsync: FsyncPolicyOption, logger: Logger, maxPartitions: Int = 10_000) throws -> Stores {
        let policy: FsyncPolicy
        switch fsync {
        case .always: policy = .always
        case .interval: policy = .interval(milliseconds: 1000)
        case .never: policy = .never
        }
        let manager = try LogManager(
            configuration: .init(dataDirectory: dataDir, fsyncPolicy: policy, maxPartitions: maxPartitions), logger: logger)
        return Stores(topics: manager, offsets: DurableCommittedOffsetStore(manager.offsetStore), close: { await manager.shutdown() })
    }
}
