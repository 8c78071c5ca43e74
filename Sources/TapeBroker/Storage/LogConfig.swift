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
    /// `compression.type`: the codec batches are stored in; `producer` keeps each batch's own.
    public var compressionType: CompressionType = .producer
    /// `message.timestamp.type`: `LogAppendTime` stamps batches with the broker's append time.
    public var messageTimestampType: TimestampType = .createTime
    /// `min.cleanable.dirty.ratio`: the log cleaner (maintenance) compacts a log only when at least
    /// this share of its keyed records in closed segments is superseded. Default 0.5.
    public var minCleanableDirtyRatio: Double = 0.5
    /// `delete.retention.ms`: how long the latest tombstone of a key is kept by compaction (by its
    /// timestamp). Default 1 day.
    public var deleteRetentionMs: Int64 = 86_400_000
    /// `min.compaction.lag.ms`: batches newer than this (by max timestamp) are not compacted. Default 0.
    public var minCompactionLagMs: Int64 = 0
    /// `flush.messages`: fsync the topic's partition once this many messages were appended since its
    /// last fsync (the append is acknowledged after that fsync). nil: the broker's `--fsync` policy
    /// decides (see `LogManager.flushDefaults`).
    public var flushMessages: Int64? = nil
    /// `flush.ms`: fsync the topic's partition once its oldest unsynced append is this many ms old
    /// (0: every append, acknowledged after its fsync). nil: the broker's `--fsync` policy decides.
    public var flushMs: Int64? = nil
    /// True when the topic sets `flush.messages` or `flush.ms`, replacing the broker's policy.
    public var overridesFlush: Bool { flushMessages != nil || flushMs != nil }

    /// `compression.type` values.
    public enum CompressionType: String, Sendable, Codable, CaseIterable {
        case producer, uncompressed, gzip, snappy, lz4, zstd
        /// The codec batches are rewritten to, or nil for `producer` (kept as sent).
        public var codec: CompressionCodec? {
            switch self {
            case .producer: nil
            case .uncompressed: CompressionCodec.none
            case .gzip: .gzip
            case .snappy: .snappy
            case .lz4: .lz4
            case .zstd: .zstd
            }
        }
    }

    /// `message.timestamp.type` values.
    public enum TimestampType: String, Sendable, Codable, CaseIterable {
        case createTime = "CreateTime"
        case logAppendTime = "LogAppendTime"
    }

    public init() {}

    /// Kafka's default value of every topic config Tape accepts (and applies).
    /// `message.format.version` is accepted and, as in Apache Kafka 3.0+ (which deprecated it), ignored:
    /// records are always stored as sent, in message format v2.
    /// `flush.messages` and `flush.ms` show Kafka's defaults here; DescribeConfigs shows the broker's
    /// `--fsync` policy in their terms instead (`LogManager.flushDefaults`).
    public static let supportedDefaults: [String: String] = LogConfig().kafkaConfigs.merging([
        "min.insync.replicas": "1", "message.format.version": "3.0-IV1",
        "flush.messages": String(Int64.max), "flush.ms": String(Int64.max),
    ]) { a, _ in a }

    /// Kafka topic configs Tape does not accept: they need replicas, tiered storage or file
    /// handling this single-node broker does not have, or were removed from Kafka.
    public static let unsupportedKafkaTopicConfigs: Set<String> = [
        "compression.gzip.level", "compression.lz4.level", "compression.zstd.level", "file.delete.delay.ms",
        "follower.replication.throttled.replicas", "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
        "max.compaction.lag.ms", "message.downconversion.enable", "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms", "preallocate", "remote.storage.enable",
        "remote.log.copy.disable", "remote.log.delete.on.disable", "segment.index.bytes", "segment.jitter.ms", "unclean.leader.election.enable",
    ]

    /// Why `key=value` cannot be a topic config of this broker (one sentence naming both), or nil if
    /// it is accepted. A nil value (a DELETE, or CreateTopics' null) is only checked for the key.
    public static func problem(key: String, value: String?) -> String? {
        guard supportedDefaults[key] != nil else {
            let shown = value.map { "\(key)=\($0)" } ?? key
            if unsupportedKafkaTopicConfigs.contains(key) {
                return "topic config \(shown) is not supported by this single-node tape broker, which cannot honour it"
            }
            return "unknown topic config \(shown)"
        }
        guard let value else { return nil }
        if key == "message.format.version" {
            // A Kafka version such as 0.10.0, 2.8 or 3.0-IV1; ignored as by Kafka 3.0+.
            let parts = value.split(separator: "-", maxSplits: 1)
            let numbers = parts.first.map { $0.split(separator: ".", omittingEmptySubsequences: false) } ?? []
            let valid =
                (2...4).contains(numbers.count) && numbers.allSatisfy { !$0.isEmpty && $0.count <= 4 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
                && (parts.count == 1 || (parts[1].hasPrefix("IV") && parts[1].count <= 6 && parts[1].dropFirst(2).allSatisfy(\.isNumber) && parts[1].count > 2))
            return valid ? nil : "topic config message.format.version=\(value) is not a Kafka version (e.g. 2.8 or 3.0-IV1)"
        }
        if key == "min.insync.replicas" {
            guard let v = Int32(value.trimmingCharacters(in: .whitespaces)), v >= 1 else {
                return "topic config min.insync.replicas=\(value) must be an integer of at least 1"
            }
            return v == 1 ? nil : "topic config min.insync.replicas=\(value) is impossible on this single-node tape broker (one replica); use 1"
        }
        do {
            _ = try LogConfig(kafkaConfigs: [key: value])
            return nil
        } catch let e as StorageError {
            return e.message
        } catch {
            return "topic config \(key)=\(value) is invalid: \(error)"
        }
    }

    /// Builds a config from Kafka topic config strings (as CreateTopics sends them). Unknown keys are
    /// ignored here (the broker refuses them first, see `problem(key:value:)`); bad values throw
    /// `StorageError(.invalidConfig, ...)` naming the key and value.
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
                    throw StorageError(.invalidConfig, "topic config segment.bytes=\(value) must be between 14 and \(Int32.max)")
                }
                segmentBytes = Int(v)
            case "segment.ms":
                let v = try int64()
                guard v >= 1 else { throw StorageError(.invalidConfig, "topic config segment.ms=\(value) must be at least 1") }
                segmentMs = v
            case "retention.ms":
                let v = try int64()
                guard v >= -1 else { throw StorageError(.invalidConfig, "topic config retention.ms=\(value) must be -1 or more") }
                retentionMs = v
            case "retention.bytes":
                retentionBytes = try int64()
            case "index.interval.bytes":
                let v = try int64()
                guard v >= 0, v <= Int64(Int32.max) else {
                    throw StorageError(.invalidConfig, "topic config index.interval.bytes=\(value) must be 0 or more")
                }
                indexIntervalBytes = Int(v)
            case "max.message.bytes":
                let v = try int64()
                guard v >= 0, v <= Int64(Int32.max) else {
                    throw StorageError(.invalidConfig, "topic config max.message.bytes=\(value) must be 0 or more")
                }
                maxMessageBytes = Int(v)
            case "compression.type":
                guard let v = CompressionType(rawValue: value.trimmingCharacters(in: .whitespaces).lowercased()) else {
                    throw StorageError(
                        .invalidConfig, "topic config compression.type=\(value) must be one of producer, uncompressed, gzip, snappy, lz4, zstd")
                }
                compressionType = v
            case "message.timestamp.type":
                guard let v = TimestampType(rawValue: value.trimmingCharacters(in: .whitespaces)) else {
                    throw StorageError(.invalidConfig, "topic config message.timestamp.type=\(value) must be CreateTime or LogAppendTime")
                }
                messageTimestampType = v
            case "min.cleanable.dirty.ratio":
                guard let v = Double(value.trimmingCharacters(in: .whitespaces)), v >= 0, v <= 1 else {
                    throw StorageError(.invalidConfig, "topic config min.cleanable.dirty.ratio=\(value) must be a number between 0 and 1")
                }
                minCleanableDirtyRatio = v
            case "delete.retention.ms":
                let v = try int64()
                guard v >= 0 else { throw StorageError(.invalidConfig, "topic config delete.retention.ms=\(value) must be 0 or more") }
                deleteRetentionMs = v
            case "min.compaction.lag.ms":
                let v = try int64()
                guard v >= 0 else { throw StorageError(.invalidConfig, "topic config min.compaction.lag.ms=\(value) must be 0 or more") }
                minCompactionLagMs = v
            case "flush.messages":
                let v = try int64()
                guard v >= 1 else { throw StorageError(.invalidConfig, "topic config flush.messages=\(value) must be at least 1") }
                flushMessages = v
            case "flush.ms":
                let v = try int64()
                guard v >= 0 else { throw StorageError(.invalidConfig, "topic config flush.ms=\(value) must be 0 or more") }
                flushMs = v
            case "cleanup.policy":
                let parts = Set(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                switch parts {
                case ["delete"]: cleanupPolicy = .delete
                case ["compact"]: cleanupPolicy = .compact
                case ["compact", "delete"]: cleanupPolicy = .compactDelete
                default:
                    throw StorageError(
                        .invalidConfig, "topic config cleanup.policy=\(value) must be delete, compact or compact,delete")
                }
            default:
                continue
            }
        }
    }

    /// The settings as Kafka config strings (for DescribeConfigs). `flush.messages` and `flush.ms`
    /// only when set on the topic.
    public var kafkaConfigs: [String: String] {
        var out = baseKafkaConfigs
        if let flushMessages { out["flush.messages"] = String(flushMessages) }
        if let flushMs { out["flush.ms"] = String(flushMs) }
        return out
    }

    private var baseKafkaConfigs: [String: String] {
        [
            "segment.bytes": String(segmentBytes),
            "segment.ms": String(segmentMs),
            "retention.ms": String(retentionMs),
            "retention.bytes": String(retentionBytes),
            "index.interval.bytes": String(indexIntervalBytes),
            "max.message.bytes": String(maxMessageBytes),
            "cleanup.policy": cleanupPolicy.rawValue,
            "compression.type": compressionType.rawValue,
            "message.timestamp.type": messageTimestampType.rawValue,
            "min.cleanable.dirty.ratio": Self.format(minCleanableDirtyRatio),
            "delete.retention.ms": String(deleteRetentionMs),
            "min.compaction.lag.ms": String(minCompactionLagMs),
        ]
    }

    /// A ratio as Kafka shows it (0.5, 0.01, 1.0).
    static func format(_ d: Double) -> String {
        d == d.rounded() ? String(format: "%.1f", d) : "\(d)"
    }

    var deletesByRetention: Bool { cleanupPolicy != .compact }
    var compacts: Bool { cleanupPolicy != .delete }
}
