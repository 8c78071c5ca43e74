import Crdkafka

/// Versions and built-in features of the linked librdkafka.
public enum LibrdkafkaInfo {
    /// librdkafka's version string, e.g. "2.0.2".
    public static var version: String { String(cString: rd_kafka_version_str()) }
}
