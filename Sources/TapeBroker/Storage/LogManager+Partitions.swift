import Foundation
import Logging
import NIOConcurrencyHelpers

/// CreatePartitions: growing a topic's partition count.
extension LogManager {
    /// Grows topic `name` to `count` partitions in all:
    /// 1. each new partition directory is created and its log opened (a stale directory of that
    ///    name, left by an interrupted growth, is removed if empty, else moved to `.quarantine/`),
    ///    then the data directory is fsynced;
    /// 2. `topic-configs/<topic>.json` is rewritten with the new count (temp file, fsync, rename,
    ///    fsync directory) — the commit point.
    /// A failure before 2 closes and removes the new directories and throws; a crash before 2 leaves
    /// directories that the topic ignores at the next start (the next growth clears them).
    /// Throws `.unknownTopic`, `.invalidRequest` (a count not larger than today's, or over 100 000)
    /// and `.partitionLimit` (the broker's `maxPartitions`).
    public func createPartitions(name: String, count: Int32) throws {
        try lock.withLock {
            guard !isShutDown else { throw StorageError(.closed, "storage is shut down") }
            guard var state = topicsByName[name] else { throw StorageError(.unknownTopic, "topic \(name) does not exist") }
            let current = Int32(state.logs.count)
            guard count > current else {
                throw StorageError(.invalidRequest, "topic \(name) has \(current) partitions; the new count must be larger, got \(count)")
            }
            guard count <= 100_000 else { throw StorageError(.invalidRequest, "partition count \(count) must be at most 100000") }
            let total = partitionCountLocked
            let added = Int(count - current)
            guard total + added <= configuration.maxPartitions else {
                throw StorageError(
                    .partitionLimit,
                    "adding \(added) partitions to \(name) would bring this broker to \(total + added) partitions; "
                        + "the limit is \(configuration.maxPartitions) (--max-partitions). Delete topics or raise the limit")
            }
            var logs: [Log] = []
            var created: [String] = []
            do {
                for p in current..<count {
                    let dir = path("\(name)-\(p)")
                    if FileManager.default.fileExists(atPath: dir) {
                        clearStaleDirectory(dir, reason: "a directory of that name was left from an interrupted partition growth")
                    }
                    created.append(dir)
                    logs.append(try openLog(topic: name, partition: p, config: state.config))
                }
                try syncDirectory(configuration.dataDirectory)
                try writeTopicFile(name: name, partitions: count, config: state.config, explicit: state.explicitConfigs)
            } catch {
                for log in logs { log.closeWithoutSync() }
                for dir in created { try? FileManager.default.removeItem(atPath: dir) }
                logger.warning(
                    "adding partitions failed and was rolled back",
                    metadata: ["topic": "\(name)", "from": "\(current)", "to": "\(count)", "error": "\(error)"])
                throw error
            }
            state.logs += logs
            topicsByName[name] = state
        }
    }
}
