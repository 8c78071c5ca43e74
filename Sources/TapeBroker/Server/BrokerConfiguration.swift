/// Settings of one `tape broker`.
public struct BrokerConfiguration: Sendable {
    /// Address to listen on. Default 127.0.0.1.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free one. Default 9092.
    public var port: Int = 9092
    /// Host advertised in Metadata/FindCoordinator; nil = the listen host. Default nil.
    public var advertisedHost: String? = nil
    /// Port advertised in Metadata/FindCoordinator; nil = the bound port. Default nil.
    public var advertisedPort: Int? = nil
    /// This node's id. Default 0.
    public var nodeId: Int32 = 0
    /// Cluster id reported in Metadata. Default "tape-single-node".
    public var clusterId: String = "tape-single-node"
    /// Create unknown topics on produce and metadata requests. Default true.
    public var autoCreateTopics: Bool = true
    /// Partitions of auto-created topics and of CreateTopics with -1. Default 1.
    public var numPartitions: Int32 = 1
    /// Largest RecordBatch accepted (max.message.bytes). Default 1 MiB.
    public var maxMessageBytes: Int = 1 << 20
    /// Largest request frame accepted; bigger ones close the connection. Default 100 MiB.
    public var maxFrameBytes: Int = 100 << 20
    /// Consumer-group tunables (session timeout bounds, initial rebalance delay).
    public var group = ConsumerGroup.Settings()
    /// How often session and rebalance timeouts are checked. Default 100 ms.
    public var groupTickIntervalMs: Int = 100
    /// SASL, credentials and TLS of the listener (none by default).
    public var security = BrokerSecurity()

    // MARK: Limits (docs/limits.md). Names follow Kafka's broker settings where one exists.

    /// Client connections served at once; further ones are closed as soon as they are accepted
    /// (Kafka: `max.connections`). Default 1000, lowered at start to what the descriptor limit allows.
    public var maxConnections: Int = 1000
    /// A connection with no bytes read or written for this long is closed (Kafka:
    /// `connections.max.idle.ms`). Default 600 000 ms (10 min).
    public var connectionsMaxIdleMs: Int64 = 600_000
    /// A request frame that has started to arrive must be complete within this long, or the
    /// connection is closed (stops clients that hold a half-sent frame). Default 60 000 ms.
    public var requestReadTimeoutMs: Int64 = 60_000
    /// Bytes of large request frames (over 64 KiB) being read, across all connections; a frame
    /// that does not fit waits, its socket unread, until memory frees (Kafka:
    /// `queued.max.request.bytes`). Default 512 MiB; at least `maxFrameBytes`.
    public var maxRequestMemoryBytes: Int = 512 << 20
    /// Responses a connection may have waiting to be written (its pipelined requests); while this
    /// many wait, the connection's next request is not read. Default 64.
    public var maxQueuedResponsesPerConnection: Int = 64
    /// Bytes of responses a connection may have waiting to be written. Default 64 MiB.
    public var maxQueuedResponseBytesPerConnection: Int = 64 << 20
    /// Largest fetch response, whatever the request asks (Kafka: `fetch.max.bytes`, 55 MiB).
    /// The first batch is returned even if larger, so a consumer always makes progress.
    public var fetchMaxBytes: Int = 57_671_680
    /// Bytes of large responses (over 64 KiB) built and not yet written to their sockets, across
    /// all connections. Beyond it, fetches return one batch at most until clients read what they
    /// asked for (clients that never read their responses cannot make the broker hold
    /// gigabytes). Default 512 MiB.
    public var maxPendingResponseBytes: Int = 512 << 20
    /// Consumer groups held in memory with members or pending joins. Default 10 000.
    public var maxGroups: Int = 10_000
    /// Largest committed-offset metadata string (Kafka: `offset.metadata.max.bytes`). Default 4096.
    public var offsetMetadataMaxBytes: Int = 4096
    /// An idempotent producer's state is dropped after this long without a write (Kafka:
    /// `producer.id.expiration.ms`). Default 86 400 000 ms (1 day).
    public var producerIdExpirationMs: Int64 = 86_400_000
    /// Idempotent-producer states kept (per producer and partition); the least recently used go
    /// first beyond it. Default 100 000.
    public var maxProducerStates: Int = 100_000
    /// The longest `transaction.timeout.ms` a transactional producer may ask for (Kafka:
    /// `transaction.max.timeout.ms`). Default 900 000 ms (15 minutes).
    public var transactionMaxTimeoutMs: Int32 = 900_000
    /// A transactional id without a transaction in progress is forgotten after this long unused
    /// (Kafka: `transactional.id.expiration.ms`). Default 604 800 000 ms (7 days).
    public var transactionalIdExpirationMs: Int64 = 604_800_000
    /// Transactional ids kept; beyond it the least recently used idle ones are forgotten. Default 100 000.
    public var maxTransactionalIds: Int = 100_000

    public init() {}
}
