/// A record header: a name and optional bytes.
public struct KafkaHeader: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]?
    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}

/// A record to produce.
public struct ProducerMessage: Sendable {
    public var topic: String
    /// nil lets the partitioner choose (a key always maps to the same partition).
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// Milliseconds since the Unix epoch; nil means now.
    public var timestamp: Int64?

    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?, headers: [KafkaHeader] = [], timestamp: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    public init(topic: String, key: String?, value: String, headers: [KafkaHeader] = [], timestamp: Int64? = nil) {
        self.init(topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8), headers: headers, timestamp: timestamp)
    }
}

/// Where and when Kafka stored a produced record.
public struct DeliveryReport: Sendable, Hashable {
    /// The id `enqueue` returned (0 for `send`).
    public var messageID: UInt64
    public var topic: String
    public var partition: Int32
    /// -1 when delivery failed or offsets are unknown (acks=0).
    public var offset: Int64
    /// Milliseconds since the Unix epoch, -1 when unknown.
    public var timestamp: Int64
    /// nil on success.
    public var error: KafkaError? {
        get { failure?.error }
        set { failure = newValue.map(Failure.init) }
    }

    /// The error behind one reference: reports are made a million a second and almost never
    /// fail, so a successful one should not carry an error's bytes (56 bytes a report, not 80).
    private var failure: Failure?

    private final class Failure: Sendable {
        let error: KafkaError
        init(_ error: KafkaError) { self.error = error }
    }

    public init(messageID: UInt64, topic: String, partition: Int32, offset: Int64, timestamp: Int64, error: KafkaError? = nil) {
        self.messageID = messageID
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.failure = error.map(Failure.init)
    }

    public static func == (a: DeliveryReport, b: DeliveryReport) -> Bool {
        a.messageID == b.messageID && a.topic == b.topic && a.partition == b.partition && a.offset == b.offset
            && a.timestamp == b.timestamp && a.error == b.error
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(messageID)
        hasher.combine(topic)
        hasher.combine(partition)
        hasher.combine(offset)
        hasher.combine(timestamp)
        hasher.combine(error)
    }
}

/// Consumed records of one poll with their values packed into one buffer (see
/// `KafkaConsumerConfiguration.packedValues`): no key, no headers, no array per record.
public struct PackedBatch: Sendable {
    public struct Record: Sendable {
        public var partition: Int32
        public var offset: Int64
        /// Milliseconds since the Unix epoch; -1 when the broker sent none.
        public var timestamp: Int64
        /// Index into `topics`.
        public var topic: Int32
        /// Where the value lies in `bytes`; `valueLength` is -1 for a null value (tombstone).
        public var valueStart: Int32
        public var valueLength: Int32
    }
    /// Topic names the records refer to by index.
    public var topics: [String]
    public var records: [Record]
    /// The values, back to back.
    public var bytes: [UInt8]

    public var count: Int { records.count }
}

/// A consumed record.
public struct KafkaMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// Milliseconds since the Unix epoch; -1 when the broker sent none.
    public var timestamp: Int64
    public var timestampType: TimestampType
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [KafkaHeader]

    public enum TimestampType: String, Sendable {
        case none
        case createTime = "CreateTime"
        case logAppendTime = "LogAppendTime"
    }

    public init(
        topic: String, partition: Int32, offset: Int64, timestamp: Int64, timestampType: TimestampType = .createTime, key: [UInt8]?, value: [UInt8]?,
        headers: [KafkaHeader] = []
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.timestampType = timestampType
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// A topic-partition with an offset (committed offsets, seeks, assignments).
public struct TopicPartitionOffset: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    /// An absolute offset or one of the `KafkaOffset` constants.
    public var offset: Int64
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// librdkafka's logical offsets.
public enum KafkaOffset {
    public static let beginning: Int64 = -2
    public static let end: Int64 = -1
    public static let stored: Int64 = -1000
    public static let invalid: Int64 = -1001
}
