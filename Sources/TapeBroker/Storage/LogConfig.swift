import Foundation

/// Per-topic log settings, named and defaulted as Kafka's topic configs are.
public struct LogConfig: Sendable, Equatable, Codable {
    /// What happens to old data (`cleanup.policy`).
    public enum CleanupPolicy: String, Sendable, Codable, CaseIterable {
        /// Delete whole old segments by retention time / size.
        case delete
        /// Keep at least the latest record per key (see `Log.compact()`).
        case compact
        /// Both (`compact,delete`).
        case compactDelete = "compact,delete"
    }

    /// `segment.bytes`: roll to a new segment when the active one would grow past this. Default 1 GiB.
    public var segmentBytes: Int = 1 << 30
    /// `segment.ms`: roll when the record timestamps in the active segment span more than this. Default 7 days.
    public var segmentMs: Int64 = 7 * 24 * 3_600_000
    /// `retention.ms`: delete closed segments whose newest record is older than this; -1 = forever. Default 7 days.
    public var retentionMs: Int64 = 7 * 24 * 3_600_000
    /// `retention.bytes`: delete the oldest closed segments while the log is larger; -1 = no limit. Default -1.
    public var retentionBytes: Int64 = -1
    /// `index.interval.bytes`: bytes between offset-index entries. Default 4096.
    public var indexIntervalBytes: Int = 4096
    /// `max.message.bytes`: largest batch accepted. Default 1048588 (Kafka's).
    public var maxMessageBytes: Int = 1_048_588
    /// `cleanup.policy`. Default `delete`.
    public var cleanupPolicy: CleanupPolicy = .delete

    public init() {}

    /// Builds a config from Kafka topic config strings (as CreateTopics sends them). Unknown keys are
    /// ignored (and kept out of `kafkaConfigs`); bad values throw `StorageError(.invalidConfig, ...)`.
    public init(kafkaConfigs: [String: String], base: LogConfig = LogConfig()) throws {
        self = base
        for (key, value) in kafkaConfigs {
            func int64() throws -> Int64 {
                guard let v = Int64(value.trimmingCharacters(in: .whitespaces)) else {
                    throw StorageError(.invalidConfig, "topic config \(key)=\(value) is not an integer")
                }
                return v
            }
            switch key {
            case "segment.bytes":
                let v = try int64()
                guard v >= 14, v <= Int64(Int32.max) else {
                    throw StorageError(.invalidConfig, "segment.bytes=\(value) must be between 14 and \(Int32.max)")
                }
                segmentBytes = Int(v)
            case "segment.ms":
                let v = try int64()
                guard v >= 1 else { throw StorageError(.invalidConfig, "segment.ms=\(value) must be at least 1") }
                segmentMs = v
            case "retention.ms":
                let v = try int64()
                guard v >= -1 else { throw StorageError(.invalidConfig, "retention.ms=\(value) must be -1 or more") }
                retentionMs = v
            case "retention.bytes":
                retentionBytes = try int64()
            case "index.interval.bytes":
                let v = try int64()
                guard v >= 0, v <= Int64(Int32.max) else {
                    throw StorageError(.invalidConfig, "index.interval.bytes=\(value) must be 0 or more")
                }
                indexIntervalBytes = Int(v)
            case "max.message.bytes":
                let v = try int64()
                guard v >= 0, v <= Int64(Int32.max) else {
                    throw StorageError(.invalidConfig, "max.message.bytes=\(value) must be 0 or more")
                }
                maxMessageBytes = Int(v)
            case "cleanup.policy":
                let parts = Set(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                switch parts {
                case ["delete"]: cleanupPolicy = .delete
                case ["compact"]: cleanupPolicy = .compact
                case ["compact", "delete"]: cleanupPolicy = .compactDelete
                default:
                    throw StorageError(
                        .invalidConfig, "cleanup.policy=\(value) must be delete, compact or compact,delete")
                }
            default:
                continue
            }
        }
    }

    /// The settings as Kafka config strings (for DescribeConfigs).
    public var kafkaConfigs: [String: String] {
        [
            "segment.bytes": String(segmentBytes),
            "segment.ms": String(segmentMs),
            "retention.ms": String(retentionMs),
            "retention.bytes": String(retentionBytes),
            "index.interval.bytes": String(indexIntervalBytes),
            "max.message.bytes": String(maxMessageBytes),
            "cleanup.policy": cleanupPolicy.rawValue,
        ]
    }

    var deletesByRetention: Bool { cleanupPolicy != .compact }
    var compacts: Bool { cleanupPolicy != .delete }
}
