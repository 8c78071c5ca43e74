import Logging
import ServiceLifecycle
import Synchronization
import TapeBroker
import TapeMetrics

/// The embedded Kafka broker as a service: bound when built (so the other stages know its address
/// before anything runs), serving until graceful shutdown, then its files synced and closed. It
/// reports its socket bytes and connection limits as `tape_broker_*` metrics.
public final class BrokerStage: Service, Sendable {
    /// The address clients bootstrap from.
    public let bootstrapServers: String
    public let port: Int
    let server: BoundBrokerServer
    /// The broker itself, for the stages of this process that read it in-process.
    public var broker: Broker { server.broker }
    private let close: @Sendable () async -> Void
    private let stopped: StageLog

    /// The durable stores: topics in `LogManager`, committed offsets in its `OffsetStore`.
    public struct Stores: Sendable {
        public var topics: any TopicStore
        public var offsets: any CommittedOffsetStore
        public var close: @Sendable () async -> Void
        /// The transaction coordinator's state (in the data directory).
        public var transactions: any TransactionStateStore = InMemoryTransactionStateStore()
    }

    public static func openStores(dataDirectory: String, fsync: FsyncPolicy, logger: Logger, maxPartitions: Int = 10_000) throws -> Stores {
        let manager = try LogManager(
            configuration: .init(dataDirectory: dataDirectory, fsyncPolicy: fsync, maxPartitions: maxPartitions), logger: logger)
        return Stores(
            topics: manager, offsets: DurableCommittedOffsetStore(manager.offsetStore), close: { await manager.shutdown() },
            transactions: manager.transactionLog)
    }

    /// Opens the stores under `dataDirectory`, creates `topics` where missing (with
    /// `topicConfigs`, which are also set on topics that exist with other values), and binds
    /// `host:port` (0: any free port). Throws `BrokerStartError` (a sentence) when the address
    /// cannot be bound.
    init(
        dataDirectory: String, host: String, port: Int, fsync: FsyncPolicy, maxConnections: Int, topics: [(name: String, partitions: Int32)],
        topicConfigs: [String: [String: String]] = [:], security: BrokerSecurity = BrokerSecurity(), stopped: StageLog
    ) async throws {
        let logger = Logger(label: "tape.broker")
        let stores = try Self.openStores(dataDirectory: dataDirectory, fsync: fsync, logger: logger)
        do {
            let existing = Set(stores.topics.topicNames())
            for topic in topics {
                let wanted = topicConfigs[topic.name] ?? [:]
                if !existing.contains(topic.name) {
                    try stores.topics.createTopic(name: topic.name, partitions: topic.partitions, configs: wanted)
                } else if let current = stores.topics.configs(of: topic.name), wanted.contains(where: { current[$0.key] != $0.value }) {
                    // The flags of this run win over what an earlier run (or a client) set.
                    try stores.topics.setConfigs(of: topic.name, to: current.merging(wanted) { $1 })
                }
            }
        } catch {
            await stores.close()
            throw error
        }
        var config = BrokerConfiguration()
        config.host = host
        config.port = port
        config.numPartitions = 3
        config.maxConnections = maxConnections
        config.security = security
        // The pipeline's own consumer groups have one member each: no initial rebalance delay
        // (`tape broker` waits Kafka's 3 s; here it would only hold the processor back at each start).
        config.group.initialRebalanceDelayMs = 0
        let broker = Broker(
            configuration: config, topics: stores.topics, committedOffsets: stores.offsets, logger: logger, transactionStore: stores.transactions)
        do {
            server = try await BrokerServer(broker: broker, logger: logger).bind()
        } catch {
            await stores.close()
            throw error
        }
        self.port = server.port
        self.bootstrapServers = "\(host):\(server.port)"
        self.close = stores.close
        self.stopped = stopped
    }

    /// Closes the stores of a broker that never ran (the pipeline could not be built).
    func closeUnstarted() async { await close() }

    public func run() async throws {
        let traffic = server.traffic
        let limits = server.limits
        let connections = TapeMetrics.brokerConnectionsGauge()
        defer { stopped.append("broker") }
        do {
            try await withMetricsReporter(BrokerCounters()) { c in
                c.bytesIn.record(total: traffic.bytesIn.load(ordering: .relaxed))
                c.bytesOut.record(total: traffic.bytesOut.load(ordering: .relaxed))
                let closed = [
                    limits.rejected.load(ordering: .relaxed), limits.evicted.load(ordering: .relaxed), limits.idleClosed.load(ordering: .relaxed),
                    limits.readTimeouts.load(ordering: .relaxed),
                ]
                for i in c.closed.indices { c.closed[i].record(total: closed[i]) }
                connections.record(limits.open.load(ordering: .relaxed))
            } work: {
                try await cancelWhenGracefulShutdown { try await self.server.run() }
            }
        } catch is CancellationError {
            // graceful shutdown
        } catch {
            await close()
            throw error
        }
        await close()
    }
}

/// `tape_broker_bytes_*` and `tape_broker_connections_closed_total{reason}`.
struct BrokerCounters: Sendable {
    var bytesIn = DeltaCounter(TapeMetrics.brokerBytesInCounter())
    var bytesOut = DeltaCounter(TapeMetrics.brokerBytesOutCounter())
    /// In the order refused, evicted, idle, read-timeout.
    var closed = ["refused", "evicted", "idle", "read-timeout"].map { DeltaCounter(TapeMetrics.brokerConnectionsClosed(reason: $0)) }
}

/// The order in which stages stopped (for logs and tests).
public final class StageLog: Sendable {
    private let names = Mutex<[String]>([])
    public init() {}
    func append(_ name: String) { names.withLock { $0.append(name) } }
    public var entries: [String] { names.withLock { $0 } }
}
