import Crdkafka

/// Versions and built-in features of the linked librdkafka.
public enum LibrdkafkaInfo {
    /// librdkafka's version string, e.g. "2.0.2".
    public static var version: String { String(cString: rd_kafka_version_str()) }

    /// librdkafka's `builtin.features`, e.g. gzip, snappy, ssl, sasl_scram, zstd, lz4, regex, ...
    public static var features: [String] {
        guard let conf = rd_kafka_conf_new() else { return [] }
        defer { rd_kafka_conf_destroy(conf) }
        var size = 0
        guard rd_kafka_conf_get(conf, "builtin.features", nil, &size) == RD_KAFKA_CONF_OK, size > 0 else { return [] }
        var buffer = [CChar](repeating: 0, count: size)
        guard rd_kafka_conf_get(conf, "builtin.features", &buffer, &size) == RD_KAFKA_CONF_OK else { return [] }
        return string(fromBuffer: buffer).split(separator: ",").map(String.init)
    }
}

/// librdkafka's in-memory mock Kafka cluster (`rdkafka_mock.h`), listening on loopback ports so
/// that any Kafka client (ours, kcat) can use it. No persistence, no admin API, no SASL.
public final class MockKafkaCluster: @unchecked Sendable {
    private let rk: OpaquePointer
    private let cluster: OpaquePointer
    /// `host:port,...` of the mock brokers.
    public let bootstrapServers: String

    public init(brokers: Int = 3) throws {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError(code: .state, message: "Cannot allocate configuration") }
        try KafkaConfiguration.set(conf, "log_level", "0")
        rk = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: conf)
        guard let cluster = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            throw KafkaError(code: .state, message: "Cannot start librdkafka's mock cluster")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    /// Creates a topic (the mock cluster has no CreateTopics API).
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws {
        let err = rd_kafka_mock_topic_create(cluster, name, partitions, replicationFactor)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, "Cannot create mock topic '\(name)'") }
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(rk)
    }
}
