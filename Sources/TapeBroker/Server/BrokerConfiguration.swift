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

    public init() {}
}
