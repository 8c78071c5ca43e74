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

    struct TopicState {
        var config: LogConfig
        var logs: [Log]
        /// Configs set explicitly when the topic was created/altered (for DescribeConfigs).
        var explicitConfigs: [String: String]
    }

    /// Stored as `topic-configs/<topic>.json`.
    struct TopicFile: Codable {
        var version: Int
        var name: String
        var partitions: Int32
        /// The effective storage configs.
        var configs: [String: String]
        /// What the creator set explicitly (may include keys storage does not use).
        var explicitConfigs: [String: String]?
    }

    /// Configs of `config` that differ from Kafka's defaults.
    static func nonDefault(_ config: LogConfig) -> [String: String] {
        let defaults = LogConfig().kafkaConfigs
        return config.kafkaConfigs.filter { defaults[$0.key] != $0.value }
    }

    public let configuration: Configuration
    /// Committed consumer-group offsets, synced with the same policy as the data.
    public let offsetStore: OffsetStore
    /// The transaction coordinator's state (`transactions.log`), synced with the same policy.
    public let transactionLog: TransactionLogStore
    let lock = NIOLock()
    var topicsByName: [String: TopicState] = [:]
    var isShutDown = false
    let flusher: Flusher
    let logger: Logger
    let clock: @Sendable () -> Int64
    var lockFD: Int32
    let maintenance = MaintenanceTimer()
    /// Descriptors of segment and index files, shared by every log.
    public let fileCache: OpenFileCache
    /// Topics found on disk at start that could not be opened: name → why. Not served, and their
    /// names cannot be created again until the cause is fixed and the broker restarted.
    var unavailableTopics: [String: String] = [:]
    /// Topic names by `collisionKey` (guarded by `lock`), so the check costs no scan of all topics.
    var namesByCollisionKey: [String: Set<String>] = [:]
    /// Test hook (guarded by `lock`): the next creation fails with EMFILE after this many partitions.
    var failNextCreationAfterPartitions: Int?
    /// Dynamic broker configs set with AlterConfigs (guarded by `lock`; `broker-configs.json`).
    var storedBrokerConfigs: [String: String] = [:]

    var configDirectory: String { path("topic-configs") }
    /// Topic creations and deletions in progress (`<id>.create`: the topic file, `<id>.delete`).
    var pendingDirectory: String { path(".pending") }
    /// Partition directories of deleted topics, renamed here (short names) before removal.
    var trashDirectory: String { path(".trash") }
    /// What start-up found half-made or unreadable and moved aside instead of refusing to start.
    var quarantineDirectory: String { path(".quarantine") }
    func path(_ component: String) -> String {
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
            transactionLog = try TransactionLogStore(
                path: (data as NSString).appendingPathComponent("transactions.log"), fsyncPolicy: configuration.fsyncPolicy, logger: logger)
            try load()
            loadBrokerConfigs()
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

    /// The directory name of a partition: `<topic>-<partition>`, as Kafka names it, whenever that
    /// fits a 255-byte file name — always for legal names (249 characters, '-', at most 5 digits
    /// below the 100 000-partition limit; deletion renames to short `.trash/<id>-<p>` names, so no
    /// suffix is ever added). Should it not fit: `<first 200 characters>~<FNV-1a 64 of the whole
    /// name, 16 hex>-<partition>`, a pure function of the name (durable without a table); '~'
    /// cannot occur in a topic name, so a mapped name never equals a plain one, and two names that
    /// share the hash are refused at creation (`collidingDirectoryLocked`).
    public static func partitionDirectoryName(_ topic: String, _ partition: Int32) -> String {
        let plain = "\(topic)-\(partition)"
        if plain.utf8.count <= 255 { return plain }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in topic.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "\(topic.prefix(200))~\(String(repeating: "0", count: 16 - hex.count))\(hex)-\(partition)"
    }

    /// An existing topic whose partition directories would have the same names as `name`'s (two
    /// long names with the same prefix and hash), or nil. Caller holds `lock`.
    func collidingDirectoryLocked(_ name: String) -> String? {
        let mine = Self.partitionDirectoryName(name, 0)
        guard mine != "\(name)-0" else { return nil }
        return topicsByName.keys.first { $0 != name && $0.utf8.count > 200 && Self.partitionDirectoryName($0, 0) == mine }
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

    // MARK: TopicStore (the broker's view of topics; see Server/DurableStores.swift)

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
        if let log = log as? Log {
            switch log.flushDue(defaults: flushDefaults) {
            case .brokerPolicy: break
            case .now: return try await flusher.waitUntilDurable(log)
            case .after(let ms): return scheduleFlush(log, afterMilliseconds: ms)
            case .notYet: return
            }
        }
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
        if let log = log as? Log {
            switch log.flushDue(defaults: flushDefaults) {
            case .brokerPolicy: break
            case .now: return false  // `waitDurable` decides again and waits for the fsync
            case .after(let ms):
                scheduleFlush(log, afterMilliseconds: ms)
                return true
            case .notYet: return true
            }
        }
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

    /// The broker's `--fsync` policy as Kafka's `flush.messages` / `flush.ms` (what a topic that sets
    /// only one of them gets for the other, and what DescribeConfigs shows as their defaults):
    /// `always` = (1, never), `interval:N` = (never, N), `never` = (never, never), where "never" is
    /// Kafka's default, Int64.max.
    public var flushDefaults: (messages: Int64, ms: Int64) {
        switch configuration.fsyncPolicy {
        case .always: (1, Int64.max)
        case .interval(let ms): (Int64.max, ms)
        case .never: (Int64.max, Int64.max)
        }
    }

    /// A topic's `flush.ms` timer: fsyncs `log` (through the flusher, counted in `fsyncCount`) once
    /// its oldest unsynced append is old enough. One timer per log at a time (`Log.flushDue`).
    func scheduleFlush(_ log: Log, afterMilliseconds ms: Int64) {
        let flusher = self.flusher
        let logger = self.logger
        Task.detached {
            let ns = UInt64(clamping: ms).multipliedReportingOverflow(by: 1_000_000)
            try? await Task.sleep(nanoseconds: ns.overflow ? UInt64.max : ns.partialValue)
            log.flushTimerFired()
            do {
                try await flusher.waitUntilDurable(log)
            } catch {
                logger.error("flush.ms fsync failed", metadata: ["partition": "\(log.topic)-\(log.partition)", "error": "\(error)"])
            }
        }
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
                if log.config.compacts { compacted += try log.compact(respectingDirtyRatio: true) }
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
        await transactionLog.shutdown()
        lock.withLock {
            if lockFD >= 0 {
                closeDescriptor(lockFD)
                lockFD = -1
            }
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
