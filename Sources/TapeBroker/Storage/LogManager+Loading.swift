import Foundation
import Logging
import NIOConcurrencyHelpers

/// Opening logs, topic files, and loading the data directory at start.
extension LogManager {
    func openLog(topic: String, partition: Int32, config: LogConfig) throws -> Log {
        try Log(
            directory: path(Self.partitionDirectoryName(topic, partition)), topic: topic, partition: partition, config: config,
            logger: logger, clock: clock, fileCache: fileCache)
    }

    func encodeTopicFile(name: String, partitions: Int32, config: LogConfig, explicit: [String: String]) throws -> [UInt8] {
        let file = TopicFile(
            version: 1, name: name, partitions: partitions, configs: config.kafkaConfigs, explicitConfigs: explicit)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try Array(encoder.encode(file))
    }

    func writeTopicFile(name: String, partitions: Int32, config: LogConfig, explicit: [String: String]) throws {
        let bytes = try encodeTopicFile(name: name, partitions: partitions, config: config, explicit: explicit)
        try writeFileDurably(bytes, to: (configDirectory as NSString).appendingPathComponent(name + ".json"))
    }

    /// `<topic>-<partition>` → (topic, partition).
    static func parsePartitionDirectory(_ name: String) -> (String, Int32)? {
        guard let dash = name.lastIndex(of: "-") else { return nil }
        let topic = String(name[..<dash])
        let digits = name[name.index(after: dash)...]
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int32(digits),
            (try? validateTopicName(topic)) != nil
        else { return nil }
        return (topic, p)
    }

    /// Loads every topic. Never refuses to start because of a topic: interrupted creations are
    /// rolled back, interrupted deletions finished, unreadable topic files moved to `.quarantine/`
    /// (their partition directories are then adopted with the default config), and a topic whose
    /// logs cannot be opened is logged and left unserved — each with one log line.
    func load() throws {
        let fm = FileManager.default
        let data = configuration.dataDirectory
        // Leftovers of deletes: the topic is already gone.
        for name in (try? fm.contentsOfDirectory(atPath: trashDirectory)) ?? [] {
            try? fm.removeItem(atPath: (trashDirectory as NSString).appendingPathComponent(name))
        }
        let decoder = JSONDecoder()
        // Interrupted creations and deletions, oldest first.
        for name in ((try? fm.contentsOfDirectory(atPath: pendingDirectory)) ?? []).sorted() {
            let full = (pendingDirectory as NSString).appendingPathComponent(name)
            if name.hasPrefix(temporaryFilePrefix) {
                unlink(full)
                continue
            }
            let id = (name as NSString).deletingPathExtension
            if name.hasSuffix(".create") {
                guard let contents = fm.contents(atPath: full), let tf = try? decoder.decode(TopicFile.self, from: contents) else {
                    moveAside(full, reason: "unreadable record of a topic creation")
                    continue
                }
                let configFile = (configDirectory as NSString).appendingPathComponent(tf.name + ".json")
                if fm.fileExists(atPath: configFile) {
                    unlink(full)  // it was committed
                    continue
                }
                var cleared = 0
                for p in 0..<max(0, tf.partitions) where fm.fileExists(atPath: path(Self.partitionDirectoryName(tf.name, p))) {
                    clearStaleDirectory(path(Self.partitionDirectoryName(tf.name, p)), reason: "topic creation interrupted")
                    cleared += 1
                }
                unlink(full)
                logger.warning(
                    "rolled back a topic creation that was interrupted (it was never acknowledged)",
                    metadata: ["topic": "\(tf.name)", "partitions": "\(tf.partitions)", "directoriesFound": "\(cleared)"])
            } else if name.hasSuffix(".delete") {
                guard let contents = fm.contents(atPath: full), let intent = try? decoder.decode(DeleteIntent.self, from: contents)
                else {
                    moveAside(full, reason: "unreadable record of a topic deletion")
                    continue
                }
                unlink((configDirectory as NSString).appendingPathComponent(intent.topic + ".json"))
                try? syncDirectory(configDirectory)
                if finishDelete(topic: intent.topic, partitions: max(0, intent.partitions), id: id) { unlink(full) }
                logger.warning("finished an interrupted topic delete", metadata: ["topic": "\(intent.topic)"])
            } else {
                moveAside(full, reason: "unknown file in .pending")
            }
        }
        let entries = try fm.contentsOfDirectory(atPath: data)
        var partitionDirs: [String: Set<Int32>] = [:]
        for name in entries {
            if let (topic, p) = Self.parsePartitionDirectory(name) { partitionDirs[topic, default: []].insert(p) }
        }
        // Interrupted deletes of older versions (`<topic>-<p>.deleted`).
        for name in entries where name.hasSuffix(".deleted") {
            if let (topic, _) = Self.parsePartitionDirectory(String(name.dropLast(".deleted".count))),
                partitionDirs[topic] == nil
            {
                unlink((configDirectory as NSString).appendingPathComponent(topic + ".json"))
            }
            try? fm.removeItem(atPath: path(name))
            logger.warning("finished an interrupted topic delete", metadata: ["directory": "\(name)"])
        }
        var loaded: [String: TopicState] = [:]
        func open(_ topic: String, partitions: Int32, config: LogConfig, explicit: [String: String]) {
            var logs: [Log] = []
            do {
                for p in 0..<partitions { logs.append(try openLog(topic: topic, partition: p, config: config)) }
                loaded[topic] = TopicState(config: config, logs: logs, explicitConfigs: explicit)
            } catch {
                for log in logs { log.closeWithoutSync() }
                unavailableTopics[topic] = "\(error)"
                logger.error(
                    "topic not served: its partition logs could not be opened; the broker runs without it",
                    metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
        }
        for file in try fm.contentsOfDirectory(atPath: configDirectory) {
            let full = (configDirectory as NSString).appendingPathComponent(file)
            if file.hasSuffix(".tmp") || file.hasPrefix(temporaryFilePrefix) {
                unlink(full)
                continue
            }
            guard file.hasSuffix(".json") else { continue }
            let topic = String(file.dropLast(5))
            guard (try? Self.validateTopicName(topic)) != nil else {
                moveAside(full, reason: "topic config file with an invalid topic name")
                continue
            }
            guard let contents = fm.contents(atPath: full), let tf = try? decoder.decode(TopicFile.self, from: contents),
                tf.partitions >= 1, tf.partitions <= 100_000, let config = try? LogConfig(kafkaConfigs: tf.configs)
            else {
                moveAside(
                    full,
                    reason: "unreadable topic config (its partition directories \(data)/\(topic)-* are adopted with the default config)")
                continue
            }
            open(topic, partitions: tf.partitions, config: config, explicit: tf.explicitConfigs ?? Self.nonDefault(config))
        }
        // Partition directories without a config file (copied in, or created by an older version): adopt.
        for (topic, parts) in partitionDirs where loaded[topic] == nil && unavailableTopics[topic] == nil {
            let count = (parts.max() ?? 0) + 1
            let config = configuration.defaultTopicConfig
            logger.warning(
                "adopting partition directories without a topic config", metadata: ["topic": "\(topic)", "partitions": "\(count)"])
            do {
                try writeTopicFile(name: topic, partitions: count, config: config, explicit: Self.nonDefault(config))
            } catch {
                logger.error(
                    "could not write the adopted topic's config; adopting it again at the next start",
                    metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
            open(topic, partitions: count, config: config, explicit: Self.nonDefault(config))
        }
        topicsByName = loaded
        namesByCollisionKey = [:]
        for name in loaded.keys { namesByCollisionKey[Self.collisionKey(name), default: []].insert(name) }
        let total = partitionCountLocked
        if total > configuration.maxPartitions {
            logger.warning(
                "the data directory holds more partitions than --max-partitions; all are served, new ones are refused",
                metadata: ["partitions": "\(total)", "maxPartitions": "\(configuration.maxPartitions)"])
        }
    }
}
