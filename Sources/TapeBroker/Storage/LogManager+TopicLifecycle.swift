import Foundation
import Logging
import NIOConcurrencyHelpers

/// Creating, deleting and altering topics: each all or nothing on disk, with an intent file in
/// `.pending/` that the next start completes or rolls back.
extension LogManager {
    /// Creates a topic with `partitions` empty partition logs. The config is written durably first
    /// (temp file, fsync, rename, fsync directory), so a topic exists after a crash iff its config file does.
    @discardableResult
    public func createTopic(name: String, partitions: Int32, config: LogConfig? = nil) throws -> TopicDescription {
        let config = config ?? configuration.defaultTopicConfig
        return try createTopic(name: name, partitions: partitions, config: config, explicit: Self.nonDefault(config))
    }

    func createTopic(
        name: String, partitions: Int32, config: LogConfig, explicit: [String: String]
    ) throws -> TopicDescription {
        try Self.validateTopicName(name)
        guard partitions >= 1, partitions <= 100_000 else {
            throw StorageError(.invalidRequest, "partition count \(partitions) must be between 1 and 100000")
        }
        return try lock.withLock {
            guard !isShutDown else { throw StorageError(.closed, "storage is shut down") }
            guard topicsByName[name] == nil else {
                throw StorageError(.topicAlreadyExists, "topic \(name) already exists")
            }
            if let why = unavailableTopics[name] {
                throw StorageError(
                    .io, "topic \(name) is on disk but could not be opened at start (\(why)); fix that and restart the broker")
            }
            if let other = collidingTopicLocked(name) {
                throw StorageError(
                    .topicCollision,
                    "Topic '\(name)' collides with existing topic: \(other) ('.' and '_' are the same in metric names, so Kafka "
                        + "allows only one of them)")
            }
            if let other = collidingDirectoryLocked(name) {
                throw StorageError(.topicCollision, "Topic '\(name)' would share its partition directories with existing topic \(other)")
            }
            let total = partitionCountLocked
            guard total + Int(partitions) <= configuration.maxPartitions else {
                throw StorageError(
                    .partitionLimit,
                    "creating \(name) with \(partitions) partitions would bring this broker to \(total + Int(partitions)) "
                        + "partitions; the limit is \(configuration.maxPartitions) (--max-partitions). Delete topics or raise the limit")
            }
            let logs = try createTopicFiles(name: name, partitions: partitions, config: config, explicit: explicit)
            topicsByName[name] = TopicState(config: config, logs: logs, explicitConfigs: explicit)
            namesByCollisionKey[Self.collisionKey(name), default: []].insert(name)
            // The broker logs the creation at info level (it knows whether it was asked or auto-created).
            logger.debug("created topic files", metadata: ["topic": "\(name)", "partitions": "\(partitions)"])
            return TopicDescription(name: name, partitions: partitions, config: config)
        }
    }

    /// Partitions of all topics.
    var partitionCountLocked: Int { topicsByName.values.reduce(0) { $0 + $1.logs.count } }

    /// Kafka's `Topic.hasCollision`: names equal once '.' is read as '_'.
    static func collisionKey(_ name: String) -> String { name.replacingOccurrences(of: ".", with: "_") }

    func collidingTopicLocked(_ name: String) -> String? {
        namesByCollisionKey[Self.collisionKey(name)]?.filter { $0 != name }.min()
    }

    /// Total partitions of all topics (the `maxPartitions` limit counts these).
    public var partitionCount: Int { lock.withLock { partitionCountLocked } }

    /// Creates a topic's files all or nothing (caller holds `lock`):
    /// 1. the topic file is written durably to `.pending/<id>.create` (the intent);
    /// 2. each partition directory is created and its log opened (a stale directory of that name is
    ///    removed if empty, else moved to `.quarantine/`), then the data directory is fsynced;
    /// 3. the topic file is renamed to `topic-configs/<topic>.json` — the commit point — and
    ///    `topic-configs/` fsynced.
    /// Any failure closes what was opened, removes the new directories and the intent, and throws
    /// (too many open files is reported as such). A crash before 3 leaves the intent, and the next
    /// start removes that topic's directories; after 3 the topic exists.
    func createTopicFiles(name: String, partitions: Int32, config: LogConfig, explicit: [String: String]) throws -> [Log] {
        let id = newOperationID()
        let intent = (pendingDirectory as NSString).appendingPathComponent(id + ".create")
        try writeFileDurably(try encodeTopicFile(name: name, partitions: partitions, config: config, explicit: explicit), to: intent)
        var logs: [Log] = []
        var created: [String] = []
        do {
            for p in 0..<partitions {
                let dir = path(Self.partitionDirectoryName(name, p))
                if FileManager.default.fileExists(atPath: dir) {
                    clearStaleDirectory(dir, reason: "a directory of that name was left from an earlier failure")
                }
                if let n = failNextCreationAfterPartitions, Int(p) >= n {
                    failNextCreationAfterPartitions = nil
                    throw storageError(errno: EMFILE, operation: "opening", path: dir)
                }
                created.append(dir)
                logs.append(try openLog(topic: name, partition: p, config: config))
            }
            try syncDirectory(configuration.dataDirectory)
            let final = (configDirectory as NSString).appendingPathComponent(name + ".json")
            guard rename(intent, final) == 0 else {
                throw storageError(errno: errno, operation: "renaming \(intent) to", path: final)
            }
            try syncDirectory(configDirectory)
        } catch {
            for log in logs { log.closeWithoutSync() }
            var leftovers = false
            for dir in created where (try? FileManager.default.removeItem(atPath: dir)) == nil && FileManager.default.fileExists(atPath: dir) {
                leftovers = true
            }
            if !leftovers { unlink(intent) }
            logger.warning(
                "topic creation failed and was rolled back",
                metadata: [
                    "topic": "\(name)", "partitions": "\(partitions)", "opened": "\(logs.count)", "error": "\(error)",
                    "leftovers": "\(leftovers ? "removed at the next start" : "none")",
                ])
            throw error
        }
        unlink(intent)  // Not fsynced: a leftover intent whose topic file exists is just removed at start.
        return logs
    }

    /// Unique, short, time-ordered name for a pending operation.
    func newOperationID() -> String {
        String(format: "%012llx", UInt64(max(0, clock()))) + "-" + String(temporaryFileCounter.next() & 0xFFFF_FFFF, radix: 36)
    }

    /// A partition directory in the way: removed if it holds no data (only empty files), else
    /// moved to `.quarantine/` so nothing is lost.
    func clearStaleDirectory(_ dir: String, reason: String) {
        let fm = FileManager.default
        let files = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        let empty = files.allSatisfy { f in
            let full = (dir as NSString).appendingPathComponent(f)
            return ((try? fm.attributesOfItem(atPath: full)[.size] as? NSNumber)?.int64Value ?? 0) == 0
        }
        if empty, (try? fm.removeItem(atPath: dir)) != nil {
            logger.warning("removed an empty partition directory", metadata: ["directory": "\(dir)", "reason": "\(reason)"])
            return
        }
        moveAside(dir, reason: reason)
    }

    /// Moves `item` into `.quarantine/<time>-<n>/` and logs one line saying so.
    @discardableResult
    func moveAside(_ item: String, reason: String) -> String? {
        let fm = FileManager.default
        let box = (quarantineDirectory as NSString).appendingPathComponent(newOperationID())
        let target = (box as NSString).appendingPathComponent((item as NSString).lastPathComponent)
        do {
            try fm.createDirectory(atPath: box, withIntermediateDirectories: true)
            guard rename(item, target) == 0 else { throw storageError(errno: errno, operation: "moving \(item) to", path: target) }
            try? syncDirectory((item as NSString).deletingLastPathComponent)
            logger.warning("moved aside to quarantine", metadata: ["from": "\(item)", "to": "\(target)", "reason": "\(reason)"])
            return target
        } catch {
            logger.error("could not move aside", metadata: ["item": "\(item)", "reason": "\(reason)", "error": "\(error)"])
            return nil
        }
    }

    /// The topic if it exists, else creates it (for auto-creation on produce/metadata; races
    /// between two creators are fine).
    @discardableResult
    public func ensureTopic(name: String, partitions: Int32, config: LogConfig? = nil) throws -> TopicDescription {
        if let existing = topic(named: name) { return existing }
        do {
            return try createTopic(name: name, partitions: partitions, config: config)
        } catch let error as StorageError where error.code == .topicAlreadyExists {
            if let existing = topic(named: name) { return existing }
            throw error
        }
    }

    /// Deletes a topic and all its data:
    /// 1. a delete intent is written durably to `.pending/<id>.delete`;
    /// 2. the logs are closed and `topic-configs/<topic>.json` removed (fsynced) — the commit point;
    /// 3. each partition directory is renamed to `.trash/<id>-<p>` (a short name whatever the topic's
    ///    length), the data directory fsynced, the trash removed, the intent removed.
    /// An interrupted delete (crash, or a failure in 3) is finished on the next start.
    public func deleteTopic(name: String) throws {
        // Under the manager lock, so a concurrent create of the same name waits for the files to go.
        try lock.withLock { try deleteTopicLocked(name: name) }
    }

    struct DeleteIntent: Codable {
        var topic: String
        var partitions: Int32
    }

    func deleteTopicLocked(name: String) throws {
        guard let state = topicsByName[name] else {
            throw StorageError(.unknownTopic, "topic \(name) does not exist")
        }
        let id = newOperationID()
        let intent = (pendingDirectory as NSString).appendingPathComponent(id + ".delete")
        try writeFileDurably(
            Array(try JSONEncoder().encode(DeleteIntent(topic: name, partitions: Int32(state.logs.count)))), to: intent)
        topicsByName[name] = nil
        namesByCollisionKey[Self.collisionKey(name)]?.remove(name)
        if namesByCollisionKey[Self.collisionKey(name)]?.isEmpty == true { namesByCollisionKey[Self.collisionKey(name)] = nil }
        for log in state.logs { try? log.close() }
        let configFile = (configDirectory as NSString).appendingPathComponent(name + ".json")
        if unlink(configFile) != 0 && errno != ENOENT {
            let e = errno
            logger.error(
                "could not remove the deleted topic's config file; the delete finishes at the next start",
                metadata: ["topic": "\(name)", "error": "\(storageError(errno: e, operation: "removing", path: configFile))"])
        }
        try? syncDirectory(configDirectory)
        let finished = finishDelete(topic: name, partitions: Int32(state.logs.count), id: id)
        if finished { unlink(intent) }
        do { try offsetStore.removeTopic(name) } catch {
            logger.error("could not remove the deleted topic's committed offsets", metadata: ["topic": "\(name)", "error": "\(error)"])
        }
        logger.info("deleted topic", metadata: ["topic": "\(name)"])
    }

    /// Renames the topic's partition directories into `.trash/` and removes them. True when nothing
    /// is left.
    func finishDelete(topic: String, partitions: Int32, id: String) -> Bool {
        var ok = true
        var trashed: [String] = []
        for p in 0..<partitions {
            let dir = path(Self.partitionDirectoryName(topic, p))
            let target = (trashDirectory as NSString).appendingPathComponent("\(id)-\(p)")
            if rename(dir, target) == 0 {
                trashed.append(target)
            } else if errno != ENOENT {
                ok = false
                logger.error(
                    "could not move a deleted topic's partition directory to the trash; the delete finishes at the next start",
                    metadata: ["directory": "\(dir)", "error": "\(storageError(errno: errno, operation: "renaming \(dir) to", path: target))"])
            }
        }
        if !trashed.isEmpty { try? syncDirectory(configuration.dataDirectory) }
        for dir in trashed {
            try? FileManager.default.removeItem(atPath: dir)  // what is left in .trash/ is emptied at the next start
        }
        return ok
    }

    /// Replaces the configs set on a topic (AlterConfigs, IncrementalAlterConfigs): `explicit` is the
    /// whole new set of overrides (keys left out revert to the broker's defaults). Written durably to
    /// the topic file, then applied to the live logs (retention, compaction and the produce path read
    /// them from there). Bad values throw `.invalidConfig`.
    public func setTopicConfigs(name: String, explicit: [String: String]) throws {
        let config = try LogConfig(kafkaConfigs: explicit, base: configuration.defaultTopicConfig)
        try lock.withLock {
            guard var state = topicsByName[name] else { throw StorageError(.unknownTopic, "topic \(name) does not exist") }
            try writeTopicFile(name: name, partitions: Int32(state.logs.count), config: config, explicit: explicit)
            state.config = config
            state.explicitConfigs = explicit
            for log in state.logs { log.config = config }
            topicsByName[name] = state
        }
    }

    /// Changes a topic's config (durably), applying it to its logs.
    public func alterTopicConfig(name: String, config: LogConfig) throws {
        try lock.withLock {
            guard var state = topicsByName[name] else { throw StorageError(.unknownTopic, "topic \(name) does not exist") }
            var explicit = state.explicitConfigs
            for (k, v) in Self.nonDefault(config) { explicit[k] = v }
            for (k, v) in config.kafkaConfigs where explicit[k] != nil { explicit[k] = v }
            try writeTopicFile(name: name, partitions: Int32(state.logs.count), config: config, explicit: explicit)
            state.config = config
            state.explicitConfigs = explicit
            for log in state.logs { log.config = config }
            topicsByName[name] = state
        }
    }
}
