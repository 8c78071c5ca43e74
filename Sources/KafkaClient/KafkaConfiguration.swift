import Crdkafka

/// Client configuration: typed, documented fields for what Tape uses, plus any raw librdkafka
/// property (`security.protocol`, `sasl.mechanisms`, `ssl.ca.location`, ...) passed through as is.
public struct KafkaConfiguration: Sendable {
    /// Comma-separated `host:port` list. Default `127.0.0.1:9092`.
    public var bootstrapServers: String = "127.0.0.1:9092"
    /// `client.id`. Default `tape`.
    public var clientID: String = "tape"
    /// Raw librdkafka properties; applied after the typed fields, so they win.
    public var properties: [String: String] = [:]
    /// The swift-metrics timer producers record their enqueue → delivery latency in (sampled, 1
    /// record in 64). Default nil: no metric.
    public var produceLatencyMetric: ProduceLatencyMetric? = nil

    public init(bootstrapServers: String = "127.0.0.1:9092", properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
    }

    /// Parses `key=value` strings (the CLI's `-X`).
    public static func parseProperties(_ items: [String]) throws -> [String: String] {
        var result: [String: String] = [:]
        for item in items {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw KafkaError(code: .configuration, message: "Property '\(item)' is not of the form key=value (for example -X security.protocol=SASL_SSL).")
            }
            result[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        return result
    }

    /// Builds an `rd_kafka_conf_t` with the given extra properties (typed fields of producer/consumer).
    func makeConf(extra: [(String, String)]) throws -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(code: .configuration, message: "librdkafka could not allocate a configuration")
        }
        var all: [(String, String)] = [("bootstrap.servers", bootstrapServers), ("client.id", clientID)]
        all += extra
        all += properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        for (key, value) in all {
            try Self.set(conf, key, value)
        }
        return conf
    }

    static func set(_ conf: OpaquePointer, _ key: String, _ value: String) throws {
        var errbuf = [CChar](repeating: 0, count: 512)
        let res = rd_kafka_conf_set(conf, key, value, &errbuf, errbuf.count)
        if res != RD_KAFKA_CONF_OK {
            let reason = string(fromBuffer: errbuf)
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .configuration, message: "Invalid Kafka property \(key)=\(Self.isSecret(key) ? "(redacted)" : value): \(reason)")
        }
    }

    /// Properties whose values are secrets (passwords, keys, tokens): never logged or shown in errors.
    public static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return ["password", "secret", "jaas", "token", "ssl.key.pem", "oauthbearer.config", "ssl_key", "credential"].contains { k.contains($0) }
    }

    /// `properties` with secret values replaced by "(redacted)", for logs and diagnostics.
    public var redactedProperties: [String: String] {
        properties.reduce(into: [:]) { out, p in out[p.key] = Self.isSecret(p.key) ? "(redacted)" : p.value }
    }
}

/// Name and labels of the producers' latency timer: enqueue → delivery report of sampled records.
/// The caller picks them, so the library writes no metric name of its own.
public struct ProduceLatencyMetric: Sendable {
    /// The timer's label (the Prometheus metric name, e.g. `myapp_produce_latency_seconds`).
    public var label: String
    /// The dimension that carries the topic name; nil: no topic dimension.
    public var topicDimension: String?
    /// Fixed dimensions added to every timer, before the topic's.
    public var dimensions: [(String, String)]

    public init(label: String, topicDimension: String? = "topic", dimensions: [(String, String)] = []) {
        self.label = label
        self.topicDimension = topicDimension
        self.dimensions = dimensions
    }

    /// The dimensions of the timer of `topic`.
    func dimensions(topic: String) -> [(String, String)] {
        topicDimension.map { dimensions + [($0, topic)] } ?? dimensions
    }
}

/// Compression codecs librdkafka supports (`compression.codec`).
public enum KafkaCompression: String, Sendable, CaseIterable {
    case none, gzip, snappy, lz4, zstd
}

/// Producer settings.
public struct KafkaProducerConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    /// `acks`: -1 (all), 0 or 1. Default -1.
    public var acks: Int = -1
    /// `enable.idempotence`. Default true: retries never duplicate or reorder records.
    public var idempotence: Bool = true
    /// `compression.codec`. Default none.
    public var compression: KafkaCompression = .none
    /// `linger.ms`. Default 5 (librdkafka's default).
    public var lingerMilliseconds: Double = 5
    /// `queue.buffering.max.messages`. Default 100000.
    public var maxQueuedMessages: Int = 100_000
    /// Whether `enqueue` reports go to `deliveryReports`. Default true.
    public var deliveryReports: Bool = true
    /// `transactional.id`: makes the producer transactional (see `KafkaProducer.initTransactions`).
    /// One id per producer instance that must fence its own earlier incarnations: a producer that
    /// initializes with an id fences every older one with the same id. nil (default): not transactional.
    public var transactionalID: String? = nil
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer. Default 60000.
    public var transactionTimeoutMilliseconds: Int = 60_000

    public init(kafka: KafkaConfiguration = .init()) { self.kafka = kafka }

    var librdkafkaProperties: [(String, String)] {
        [
            ("acks", String(acks)),
            ("enable.idempotence", idempotence ? "true" : "false"),
            ("compression.codec", compression.rawValue),
            ("linger.ms", String(lingerMilliseconds)),
            ("queue.buffering.max.messages", String(maxQueuedMessages)),
        ]
            + (transactionalID.map { [("transactional.id", $0), ("transaction.timeout.ms", String(transactionTimeoutMilliseconds))] } ?? [])
    }
}

/// Consumer settings.
public struct KafkaConsumerConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    /// `group.id`. Required by librdkafka even for manual assignment; default `tape-<random>`.
    public var groupID: String = "tape-\(UInt32.random(in: 0 ... .max))"
    /// `auto.offset.reset`: where to start without a committed offset. Default `latest`.
    public var autoOffsetReset: AutoOffsetReset = .latest
    /// `enable.auto.commit`. Default false: commit explicitly with `commit`.
    public var autoCommit: Bool = false
    /// `session.timeout.ms`. Default 45000.
    public var sessionTimeoutMilliseconds: Int = 45_000
    /// `heartbeat.interval.ms`; nil: librdkafka's default (3000). Keep it well below the session
    /// timeout (Kafka suggests at most a third of it).
    public var heartbeatIntervalMilliseconds: Int? = nil
    /// `group.instance.id`: static group membership (KIP-345). A member that comes back with the
    /// same id before its session expired takes its own place again — on a coordinator that
    /// implements KIP-345 (Apache Kafka 2.3+, `tape broker`) with its previous assignment and no
    /// rebalance of the others. Two members running at the same time must never share one: the
    /// newer fences the older (FENCED_INSTANCE_ID, a fatal error for the older). librdkafka sends
    /// no LeaveGroup for a static member on `close()` (see `KafkaConsumer.close(leaveGroup:)`).
    /// nil (default): dynamic membership.
    public var groupInstanceID: String? = nil
    /// `fetch.wait.max.ms` and `fetch.min.bytes`: how long the broker may hold a fetch for more
    /// data, and how much it waits for. nil: librdkafka's defaults (500 ms, 1 byte: an answer as
    /// soon as anything arrives, so a steady trickle costs a round trip and a chain of thread
    /// wake-ups per append). Raw `-X` values win.
    public var fetchWaitMaxMilliseconds: Int? = nil
    public var fetchMinBytes: Int? = nil
    /// Messages handed to the application per batch at most. Default 1000.
    public var batchSize: Int = 1000
    /// Batches buffered between librdkafka and the application. Default 8.
    public var bufferedBatches: Int = 8
    /// Deliver records through `KafkaConsumer.packedBatches` instead of `batches`/`messages`:
    /// per poll, the values are copied into one buffer and the records carry only partition,
    /// offset, timestamp and where their value lies (no key, no headers, no array per record).
    /// For high-rate readers that only need values. Default false.
    public var packedValues: Bool = false

    public enum AutoOffsetReset: String, Sendable { case earliest, latest, error }

    public init(kafka: KafkaConfiguration = .init()) { self.kafka = kafka }

    var librdkafkaProperties: [(String, String)] {
        var all: [(String, String)] = [
            ("group.id", groupID),
            ("auto.offset.reset", autoOffsetReset.rawValue),
            ("enable.auto.commit", autoCommit ? "true" : "false"),
            ("enable.auto.offset.store", "false"),
            ("session.timeout.ms", String(sessionTimeoutMilliseconds)),
        ]
        if let heartbeatIntervalMilliseconds { all.append(("heartbeat.interval.ms", String(heartbeatIntervalMilliseconds))) }
        if let groupInstanceID { all.append(("group.instance.id", groupInstanceID)) }
        if let fetchWaitMaxMilliseconds { all.append(("fetch.wait.max.ms", String(fetchWaitMaxMilliseconds))) }
        if let fetchMinBytes { all.append(("fetch.min.bytes", String(fetchMinBytes))) }
        return all
    }
}
