import Exchanges
import KafkaClient
import Logging
import MarketData
import Synchronization

/// One consumer reading `state`'s partitions from where `state` stands, in a task; replaced when
/// a partition stops making progress.
final class TailReader: Sendable {
    let topic: String
    let configuration: KafkaConsumerConfiguration
    let logger: Logger
    let state: TailState
    struct Current {
        var consumer: KafkaConsumer?
        var task: Task<Void, Never>?
        /// Consumers started (the first one included).
        var started = 0
        /// Partition → (lowest missing offset, since when it has not moved).
        var stuck: [Int32: (offset: Int64, since: ContinuousClock.Instant)] = [:]
        /// Partition → the lowest missing offset at which its consumer was last replaced.
        var replacedAt: [Int32: Int64] = [:]
        var stopped = false
    }
    private let current = Mutex(Current())
    static let maxConsumers = 6

    init(topic: String, configuration: KafkaConsumerConfiguration, logger: Logger, state: TailState) {
        self.topic = topic
        self.configuration = configuration
        self.logger = logger
        self.state = state
    }

    var consumersStarted: Int { current.withLock { $0.started } }

    /// Starts (or replaces) the consumer, assigned where `state` stands.
    func start() throws {
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        try consumer.assign(state.positions.map { TopicPartitionOffset(topic: topic, partition: $0.key, offset: $0.value) })
        let state = self.state
        let task = Task {
            do {
                for try await batch in consumer.batches {
                    state.append(batch)
                    if Task.isCancelled { return }
                }
            } catch {}
        }
        let previous = current.withLock { c -> (KafkaConsumer?, Task<Void, Never>?) in
            let old = (c.consumer, c.task)
            if c.stopped {
                return (consumer, task)
            }
            c.consumer = consumer
            c.task = task
            c.started += 1
            return old
        }
        previous.1?.cancel()
        previous.0?.close()
    }

    func stop() {
        let (consumer, task) = current.withLock { c -> (KafkaConsumer?, Task<Void, Never>?) in
            c.stopped = true
            defer {
                c.consumer = nil
                c.task = nil
            }
            return (c.consumer, c.task)
        }
        task?.cancel()
        consumer?.close()
    }

    /// Polls until every offset up to `state`'s ends was read, replacing the consumer when a
    /// partition is stuck. Throws `TailReadFailure` at the deadline or after `maxConsumers`.
    func waitUntilComplete(deadline: ContinuousClock.Instant, stallTimeout: Duration, probe: KafkaConsumer) async throws {
        while !state.isComplete {
            guard ContinuousClock.now < deadline else {
                throw TailReadFailure(reason: "the deadline passed")
            }
            try await Task.sleep(for: .milliseconds(50))
            if let stuck = stuckPartitions(stallTimeout: stallTimeout), !stuck.isEmpty {
                // Records deleted meanwhile (retention): start at the log's new beginning.
                for (partition, _) in stuck {
                    if let (low, _) = try? await probe.watermarks(topic: topic, partition: partition) {
                        state.skip(partition: partition, below: low)
                    }
                }
                try replaceOrAcceptHoles(stuck)
            }
        }
    }

    /// During the settle phase: the same stall handling, without waiting.
    func checkStalls(stallTimeout: Duration) {
        if let stuck = stuckPartitions(stallTimeout: stallTimeout), !stuck.isEmpty {
            try? replaceOrAcceptHoles(stuck)
        }
    }

    /// Unfinished partitions whose lowest missing offset has not moved for `stallTimeout`.
    private func stuckPartitions(stallTimeout: Duration) -> [Int32: Int64]? {
        let unfinished = state.unfinished
        let now = ContinuousClock.now
        return current.withLock { c in
            var stuck: [Int32: Int64] = [:]
            for (partition, offset) in unfinished {
                if let s = c.stuck[partition], s.offset == offset {
                    if s.since.duration(to: now) >= stallTimeout { stuck[partition] = offset }
                } else {
                    c.stuck[partition] = (offset, now)
                }
            }
            for partition in c.stuck.keys where unfinished[partition] == nil { c.stuck[partition] = nil }
            return stuck
        }
    }

    /// A partition stuck again at the offset where its consumer was already replaced has no record
    /// there (a transaction marker, a compacted record): the offset is skipped. Otherwise a new
    /// consumer takes over.
    private func replaceOrAcceptHoles(_ stuck: [Int32: Int64]) throws {
        let (holes, replace, started) = current.withLock { c -> ([Int32: Int64], Bool, Int) in
            var holes: [Int32: Int64] = [:]
            var replace = false
            for (partition, offset) in stuck {
                if c.replacedAt[partition] == offset {
                    holes[partition] = offset
                } else {
                    c.replacedAt[partition] = offset
                    replace = true
                }
                c.stuck[partition] = nil
            }
            return (holes, replace, c.started)
        }
        if !holes.isEmpty {
            let accepted = state.acceptHoles(at: holes)
            logger.warning("offsets with no record in \(topic) skipped while resuming", metadata: ["count": "\(accepted)"])
        }
        if replace {
            guard started < Self.maxConsumers else {
                throw TailReadFailure(reason: "\(started) consumers in turn made no progress")
            }
            logger.warning("reading the tail of \(topic) stalled; retrying with a new consumer", metadata: ["at": "\(state.progressText)"])
            try start()
        }
    }
}

/// Where a tail read stands, shared by the reading task and its watchdog. Offsets are tracked one
/// by one: records are taken once each, whatever order they arrive in, and the read is complete
/// only when every offset up to the ends was seen (or confirmed to hold no record). Records of
/// other venues are skipped by their key, undecoded.
final class TailState: Sendable {
    struct Progress: Sendable {
        var start: [Int32: Int64]
        var ends: [Int32: Int64]
        /// Offsets seen above `low`, per partition (those below are dropped as `low` passes them).
        var seen: [Int32: Set<Int64>] = [:]
        /// Lowest offset not seen yet, per partition.
        var low: [Int32: Int64]
        var records: [Int32: [(Int64, Trade)]] = [:]
        var marketsFound: Set<String> = []
        var undecodable = 0
        var read = 0
        var skipped = 0
        var ours = 0
        var holes = 0

        mutating func advanceLow(_ partition: Int32) {
            var l = low[partition, default: 0]
            guard var seenHere = seen[partition] else { return }
            while l < Int64.max, seenHere.remove(l) != nil { l += 1 }
            seen[partition] = seenHere
            low[partition] = l
        }
    }
    private let progress: Mutex<Progress>
    private let exchange: Exchange
    private let keyPrefix: [UInt8]
    /// Native symbols wanted; nil = every market of `exchange`.
    private let markets: Set<String>?
    /// Keeps reading past `ends` (the forward read); otherwise records at or past `ends` are ignored.
    private let openEnded: Bool

    init(start: [Int32: Int64], ends: [Int32: Int64], exchange: Exchange, markets: Set<String>?, openEnded: Bool) {
        progress = Mutex(Progress(start: start, ends: ends, low: start))
        self.exchange = exchange
        self.keyPrefix = Array((exchange.name + ":").utf8)
        self.markets = markets
        self.openEnded = openEnded
    }

    func append(_ batch: [KafkaMessage]) {
        progress.withLock { p in
            var touched: Set<Int32> = []
            for message in batch {
                let partition = message.partition
                guard let low = p.low[partition], message.offset >= low else { continue }
                if !openEnded, message.offset >= p.ends[partition, default: 0] { continue }
                guard p.seen[partition, default: []].insert(message.offset).inserted else { continue }
                touched.insert(partition)
                p.read += 1
                guard let key = message.key, key.starts(with: keyPrefix) else {
                    p.skipped += 1
                    continue
                }
                guard let value = message.value, let trade = try? Trade(json: value), trade.exchange == exchange else {
                    p.undecodable += 1
                    continue
                }
                guard markets?.contains(trade.nativeSymbol) ?? true else {
                    p.skipped += 1
                    continue
                }
                p.ours += 1
                p.marketsFound.insert(trade.nativeSymbol)
                p.records[partition, default: []].append((message.offset, trade))
            }
            for partition in touched { p.advanceLow(partition) }
        }
    }

    /// Where a consumer starts: the lowest offset not seen, per partition still to read.
    var positions: [Int32: Int64] {
        progress.withLock { p in openEnded ? p.low : p.low.filter { $0.value < p.ends[$0.key, default: 0] } }
    }

    /// Raises a partition's end.
    func extend(partition: Int32, to high: Int64) {
        progress.withLock { p in
            guard p.ends[partition] != nil, high > p.ends[partition]! else { return }
            p.ends[partition] = high
        }
    }

    /// Records below `offset` no longer exist (the log start moved): stop waiting for them.
    func skip(partition: Int32, below offset: Int64) {
        progress.withLock { p in
            guard let low = p.low[partition], offset > low else { return }
            p.low[partition] = offset
            p.seen[partition] = p.seen[partition]?.filter { $0 >= offset }
            p.advanceLow(partition)
        }
    }

    /// Takes the lowest missing offset of each given partition as a hole (nothing there).
    func acceptHoles(at offsets: [Int32: Int64]) -> Int {
        progress.withLock { p in
            var accepted = 0
            for (partition, offset) in offsets where p.low[partition] == offset {
                p.seen[partition, default: []].insert(offset)
                p.advanceLow(partition)
                accepted += 1
            }
            p.holes += accepted
            return accepted
        }
    }

    var isComplete: Bool { progress.withLock { p in !p.ends.contains { p.low[$0.key, default: 0] < $0.value } } }
    /// Unfinished partitions and the lowest offset still missing in each.
    var unfinished: [Int32: Int64] {
        progress.withLock { p in p.low.filter { $0.value < p.ends[$0.key, default: 0] } }
    }
    var marketsFound: Set<String> { progress.withLock { $0.marketsFound } }
    var counts: (read: Int, skipped: Int, ours: Int, undecodable: Int) {
        progress.withLock { ($0.read, $0.skipped, $0.ours, $0.undecodable) }
    }
    /// The wanted records per partition in offset order, and the count of records that were not trades.
    var result: ([Int32: [(Int64, Trade)]], Int) {
        progress.withLock { p in
            (p.records.mapValues { $0.sorted { $0.0 < $1.0 } }, p.undecodable)
        }
    }
    var progressText: String {
        progress.withLock { p in
            "(" + p.ends.keys.sorted().map { "partition \($0) read to offset \(p.low[$0, default: 0]) of \(p.ends[$0]!)" }.joined(separator: ", ") + ")"
        }
    }
}
