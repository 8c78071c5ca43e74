import Foundation
import Logging
import NIOConcurrencyHelpers

/// A topic as storage knows it.
public struct TopicDescription: Sendable, Equatable {
    public var name: String
    public var partitions: Int32
    public var config: LogConfig
    public init(name: String, partitions: Int32, config: LogConfig) {
        self.name = name
        self.partitions = partitions
        self.config = config
    }
}

/// All of the broker's durable state in one data directory: every topic's partition logs, topic
/// configs, and committed consumer-group offsets (`offsetStore`). See docs/broker-storage.md.
///
/// Layout: `<data>/<topic>-<partition>/` (segments), `<data>/topic-configs/<topic>.json`,
/// `<data>/group-offsets.log`, `<data>/.lock`.
public final class LogManager: @unchecked Sendable {
    /// How the manager stores and syncs.
    public struct Configuration: Sendable {
        /// The data directory. Default `./tape-data`.
        public var dataDirectory: String = "./tape-data"
        /// When appends are fsynced. Default `.always` (group commit).
        public var fsyncPolicy: FsyncPolicy = .always
        /// Config of topics created without one (and of adopted partition directories). Default Kafka's defaults.
        public var defaultTopicConfig: LogConfig = LogConfig()
        /// How often a background thread runs `runMaintenance()` (retention and compaction);
        /// 0 = never (call it yourself). Default 300 000 ms, Kafka's `log.retention.check.interval.ms`.
        public var maintenanceIntervalMs: Int64 = 300_000
        /// Partitions of all topics together; creating more is refused (`.partitionLimit`, Kafka
        /// POLICY_VIOLATION). Partitions already on disk at start are all loaded, even beyond it.
        /// (KIP-578 proposed Kafka's `max.broker.partitions` for this.) Default 10 000.
        public var maxPartitions: Int = 10_000
        /// Segment/index files kept open at once (least recently used idle ones are closed and
        /// reopened on demand); nil = `OpenFileCache.defaultCapacity()`, a quarter of the
        /// process's open-files limit less 16, at most 8192.
        public var openFileCacheSize: Int? = nil
        public init(
            dataDirectory: String = "./tape-data", fsyncPolicy: FsyncPolicy = .always,
            defaultTopicConfig: LogConfig = LogConfig(), maintenanceIntervalMs: Int64 = 300_000,
            maxPartitions: Int = 10_000, openFileCacheSize: Int? = nil
        ) {
            self.dataDirectory = dataDirectory
            self.fsyncPolicy = fsyncPolicy
            self.defaultTopicConfig = defaultTopicConfig
            self.maintenanceIntervalMs = maintenanceIntervalMs
            self.maxPartitions = maxPartitions
            self.openFileCacheSize = openFileCacheSize
        }
    }

    private struct TopicState {
        var config: LogConfig
        var logs: [Log]
        /// Configs set explicitly when the topic was created/altered (for DescribeConfigs).
        var explicitConfigs: [String: String]
    }

    /// Stored as `topic-configs/<topic>.json`.
    private struct TopicFile: Codable {
        var version: Int
        var name: String
        var partitions: Int32
        /// The effective storage configs.
        var configs: [String: String]
        /// What the creator set explicitly (may include keys storage does not use).
        var explicitConfigs: [String: String]?
    }

    /// Configs of `config` that differ from Kafka's defaults.
    private static func nonDefault(_ config: LogConfig) -> [String: String] {
        let defaults = LogConfig().kafkaConfigs
        return config.kafkaConfigs.filter { defaults[$0.key] != $0.value }
    }

    public let configuration: Configuration
    /// Committed consumer-group offsets, synced with the same policy as the data.
    public let offsetStore: OffsetStore
    private let lock = NIOLock()
    private var topicsByName: [String: TopicState] = [:]
    private var isShutDown = false
    private let flusher: Flusher
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private var lockFD: Int32
    private let maintenance = MaintenanceTimer()
    /// Descriptors of segment and index files, shared by every log.
    public let fileCache: OpenFileCache
    /// Topics found on disk at start that could not be opened: name → why. Not served, and their
    /// names cannot be created again until the cause is fixed and the broker restarted.
    private var unavailableTopics: [String: String] = [:]
    /// Test hook (guarded by `lock`): the next creation fails with EMFILE after this many partitions.
    var failNextCreationAfterPartitions: Int?

    private var configDirectory: String { path("topic-configs") }
    /// Topic creations and deletions in progress (`<id>.create`: the topic file, `<id>.delete`).
    private var pendingDirectory: String { path(".pending") }
    /// Partition directories of deleted topics, renamed here (short names) before removal.
    private var trashDirectory: String { path(".trash") }
    /// What start-up found half-made or unreadable and moved aside instead of refusing to start.
    private var quarantineDirectory: String { path(".quarantine") }
    private func path(_ component: String) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent(component)
    }

    /// Opens the data directory (creating it), takes its lock, and loads and recovers every topic.
    public init(
        configuration: Configuration, logger: Logger = Logger(label: "tape.storage"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.fileCache = OpenFileCache(capacity: configuration.openFileCacheSize ?? OpenFileCache.defaultCapacity())
        let fm = FileManager.default
        let data = configuration.dataDirectory
        do {
            try fm.createDirectory(atPath: data, withIntermediateDirectories: true)
            for sub in ["topic-configs", ".pending", ".trash"] {
                try fm.createDirectory(atPath: (data as NSString).appendingPathComponent(sub), withIntermediateDirectories: true)
            }
        } catch {
            throw StorageError(.io, "cannot create data directory \(data): \(error.localizedDescription)")
        }
        let lockPath = (data as NSString).appendingPathComponent(".lock")
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw storageError(errno: errno, operation: "opening", path: lockPath) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            closeDescriptor(fd)
            throw StorageError(
                .io,
                "data directory \(data) is in use by another tape broker (lock \(lockPath) is held); "
                    + "stop it or use another --data-dir")
        }
        lockFD = fd
        flusher = Flusher(policy: configuration.fsyncPolicy, name: "tape-log-flusher", logger: logger)
        do {
            offsetStore = try OffsetStore(
                path: (data as NSString).appendingPathComponent("group-offsets.log"),
                fsyncPolicy: configuration.fsyncPolicy, logger: logger, clock: clock)
            try load()
        } catch {
            flusher.stopSoon()
            closeDescriptor(fd)
            throw error
        }
        if configuration.maintenanceIntervalMs > 0 {
            let thread = Thread { [weak self, maintenance, interval = configuration.maintenanceIntervalMs] in
                while maintenance.waitForTick(milliseconds: interval) {
                    guard let self else { return }
                    self.runMaintenance()
                }
            }
            thread.name = "tape-log-maintenance"
            thread.start()
        }
    }

    deinit {
        maintenance.stop()
        if lockFD >= 0 { closeDescriptor(lockFD) }
    }

    // MARK: Topics

    /// Checks a topic name as Kafka does: 1–249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
    public static func validateTopicName(_ name: String) throws {
        guard !name.isEmpty else { throw StorageError(.invalidRequest, "topic name is empty") }
        guard name.utf8.count <= 249 else {
            throw StorageError(.invalidRequest, "topic name is \(name.utf8.count) characters; the limit is 249")
        }
        guard name != ".", name != ".." else {
            throw StorageError(.invalidRequest, "topic name cannot be \"\(name)\"")
        }
        let ok = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E
                || c == 0x5F || c == 0x2D
        }
        guard ok else {
            throw StorageError(
                .invalidRequest,
                "topic name \"\(name)\" is illegal: it may contain only ASCII letters, digits, '.', '_' and '-'")
        }
    }

    /// Creates a topic with `partitions` empty partition logs. The config is written durably first
    /// (temp file, fsync, rename, fsync directory), so a topic exists after a crash iff its config file does.
    @discardableResult
    public func createTopic(name: String, partitions: Int32, config: LogConfig? = nil) throws -> TopicDescription {
        let config = config ?? configuration.defaultTopicConfig
        return try createTopic(name: name, partitions: partitions, config: config, explicit: Self.nonDefault(config))
    }

    private func createTopic(
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
    private var partitionCountLocked: Int { topicsByName.values.reduce(0) { $0 + $1.logs.count } }

    /// Kafka's `Topic.hasCollision`: names equal once '.' is read as '_'.
    static func collisionKey(_ name: String) -> String { name.replacingOccurrences(of: ".", with: "_") }

    private func collidingTopicLocked(_ name: String) -> String? {
        namesByCollisionKey[Self.collisionKey(name)]?.filter { $0 != name }.min()
    }

    /// Topic names by `collisionKey` (guarded by `lock`), so the check costs no scan of all topics.
    private var namesByCollisionKey: [String: Set<String>] = [:]

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
    private func createTopicFiles(name: String, partitions: Int32, config: LogConfig, explicit: [String: String]) throws -> [Log] {
        let id = newOperationID()
        let intent = (pendingDirectory as NSString).appendingPathComponent(id + ".create")
        try writeFileDurably(try encodeTopicFile(name: name, partitions: partitions, config: config, explicit: explicit), to: intent)
        var logs: [Log] = []
        var created: [String] = []
        do {
            for p in 0..<partitions {
                let dir = path("\(name)-\(p)")
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
    private func newOperationID() -> String {
        String(format: "%012llx", UInt64(max(0, clock()))) + "-" + String(temporaryFileCounter.next() & 0xFFFF_FFFF, radix: 36)
    }

    /// A partition directory in the way: removed if it holds no data (only empty files), else
    /// moved to `.quarantine/` so nothing is lost.
    private func clearStaleDirectory(_ dir: String, reason: String) {
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
    private func moveAside(_ item: String, reason: String) -> String? {
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

    private struct DeleteIntent: Codable {
        var topic: String
        var partitions: Int32
    }

    private func deleteTopicLocked(name: String) throws {
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
            logger.error("could not remove the deleted topic's config file; the delete finishes at the next start",
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
    private func finishDelete(topic: String, partitions: Int32, id: String) -> Bool {
        var ok = true
        var trashed: [String] = []
        for p in 0..<partitions {
            let dir = path("\(topic)-\(p)")
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

    /// All topics, sorted by name.
    public var topics: [TopicDescription] {
        lock.withLock {
            topicsByName.map { TopicDescription(name: $0.key, partitions: Int32($0.value.logs.count), config: $0.value.config) }
                .sorted { $0.name < $1.name }
        }
    }

    public func topic(named name: String) -> TopicDescription? {
        lock.withLock {
            topicsByName[name].map { TopicDescription(name: name, partitions: Int32($0.logs.count), config: $0.config) }
        }
    }

    /// The log of one partition, or nil if the topic or partition does not exist.
    public func log(topic: String, partition: Int32) -> (any PartitionLog)? {
        partitionLog(topic: topic, partition: partition)
    }

    /// The concrete `Log` of one partition.
    public func partitionLog(topic: String, partition: Int32) -> Log? {
        lock.withLock {
            guard let state = topicsByName[topic], partition >= 0, Int(partition) < state.logs.count else { return nil }
            return state.logs[Int(partition)]
        }
    }

    // MARK: The shape of Server/'s `TopicStore` protocol (broker branch)
    // An adapter there only has to forward these and map StorageError codes
    // (.topicAlreadyExists, .unknownTopic, .invalidRequest, .invalidConfig) to its own errors.

    /// Topic names, sorted.
    public func topicNames() -> [String] {
        lock.withLock { topicsByName.keys.sorted() }
    }

    /// The topic's partition logs, index = partition number; nil if the topic does not exist.
    public func partitionLogs(of topic: String) -> [any PartitionLog]? {
        lock.withLock { topicsByName[topic]?.logs }
    }

    /// Configs set explicitly on the topic (not defaults); nil if the topic does not exist.
    public func configs(of topic: String) -> [String: String]? {
        lock.withLock { topicsByName[topic]?.explicitConfigs }
    }

    /// Creates a topic from Kafka config strings (as CreateTopics carries them). Storage configs are
    /// validated (`.invalidConfig`); other keys are remembered for DescribeConfigs but not used.
    public func createTopic(name: String, partitions: Int32, configs: [String: String]) throws {
        let config = try LogConfig(kafkaConfigs: configs, base: configuration.defaultTopicConfig)
        var explicit = Self.nonDefault(config)
        for (k, v) in configs { explicit[k] = v }
        _ = try createTopic(name: name, partitions: partitions, config: config, explicit: explicit)
    }

    /// Returns once what was appended to `log` so far is as durable as the fsync policy promises
    /// (`.always`: fsynced, group commit; `.interval`: scheduled; `.never`: nothing).
    public func waitDurable(_ log: any PartitionLog) async throws {
        switch configuration.fsyncPolicy {
        case .always:
            if let log = log as? Log {
                try await flusher.waitUntilDurable(log)
            } else {
                try log.sync()
            }
        case .interval:
            if let log = log as? Log { flusher.markDirty(log) }
        case .never:
            break
        }
    }

    /// True (after scheduling the log for the next interval fsync) when the policy needs no wait:
    /// `.interval` and `.never`; false for `.always` (call `waitDurable`).
    public func durableWithoutWaiting(_ log: any PartitionLog) -> Bool {
        switch configuration.fsyncPolicy {
        case .always: return false
        case .interval:
            if let log = log as? Log { flusher.markDirty(log) }
            return true
        case .never: return true
        }
    }

    // MARK: Durable appends

    /// Appends a batch and returns once it is as durable as the fsync policy promises:
    /// `.always` — fsynced (group commit: concurrent callers share fsyncs); `.interval` — written,
    /// fsynced by the background flusher within the interval; `.never` — written to the OS.
    public func appendDurably(topic: String, partition: Int32, batch: [UInt8]) async throws -> LogAppendInfo {
        guard let log = partitionLog(topic: topic, partition: partition) else {
            throw StorageError(.unknownTopic, "topic-partition \(topic)-\(partition) does not exist")
        }
        let info = try log.append(batch: batch)
        try await waitDurable(log)
        return info
    }

    /// fsync calls made by the flusher (one per distinct log per group-commit round or tick).
    public var fsyncCount: Int { flusher.syncCalls }

    /// Group-commit rounds the flusher ran.
    public var flushRounds: Int { flusher.rounds }

    // MARK: Maintenance

    /// Applies retention to delete-policy topics and compaction to compact-policy topics.
    /// Call it periodically (Kafka checks every 5 minutes). Errors are logged, not thrown.
    @discardableResult
    public func runMaintenance(now: Int64? = nil) -> (segmentsDeleted: Int, recordsCompacted: Int) {
        let now = now ?? clock()
        let logs = lock.withLock { topicsByName.values.flatMap(\.logs) }
        var deleted = 0
        var compacted = 0
        for log in logs {
            do {
                deleted += try log.enforceRetention(now: now)
                if log.config.compacts { compacted += try log.compact() }
            } catch {
                logger.error(
                    "log maintenance failed",
                    metadata: ["partition": "\(log.topic)-\(log.partition)", "error": "\(error)"])
            }
        }
        return (deleted, compacted)
    }

    /// Flushes and closes every log and the offset store. Later appends throw `.closed`.
    public func shutdown() async {
        maintenance.stop()
        let logs: [Log] = lock.withLock {
            isShutDown = true
            return topicsByName.values.flatMap(\.logs)
        }
        await flusher.shutdown()
        for log in logs {
            do { try log.close() } catch {
                logger.error("closing log failed", metadata: ["partition": "\(log.topic)-\(log.partition)", "error": "\(error)"])
            }
        }
        await offsetStore.shutdown()
        lock.withLock {
            if lockFD >= 0 {
                closeDescriptor(lockFD)
                lockFD = -1
            }
        }
    }

    // MARK: Loading

    private func openLog(topic: String, partition: Int32, config: LogConfig) throws -> Log {
        try Log(
            directory: path("\(topic)-\(partition)"), topic: topic, partition: partition, config: config,
            logger: logger, clock: clock, fileCache: fileCache)
    }

    private func encodeTopicFile(name: String, partitions: Int32, config: LogConfig, explicit: [String: String]) throws -> [UInt8] {
        let file = TopicFile(
            version: 1, name: name, partitions: partitions, configs: config.kafkaConfigs, explicitConfigs: explicit)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try Array(encoder.encode(file))
    }

    private func writeTopicFile(name: String, partitions: Int32, config: LogConfig, explicit: [String: String]) throws {
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
    private func load() throws {
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
                for p in 0..<max(0, tf.partitions) where fm.fileExists(atPath: path("\(tf.name)-\(p)")) {
                    clearStaleDirectory(path("\(tf.name)-\(p)"), reason: "topic creation interrupted")
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
                logger.error("could not write the adopted topic's config; adopting it again at the next start",
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

/// Ticks for the maintenance thread; `stop()` wakes and ends it.
final class MaintenanceTimer: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false

    /// Sleeps `milliseconds`; false once stopped.
    func waitForTick(milliseconds: Int64) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: Double(milliseconds) / 1000)
        while !stopped && condition.wait(until: deadline) {}
        return !stopped
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
