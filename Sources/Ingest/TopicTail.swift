import Exchanges
import KafkaClient
import Logging
import Synchronization
import TapeCommon

/// How much of the trades topic `TopicTail` reads back on start, and for how long it tries.
struct TailReadLimits: Sendable {
    /// Records read back from the end of every partition (`--tail-records`). Default 5,000.
    var recordsPerPartition = 5_000
    /// How far back from the end, in records per partition, a subscribed market whose last trade
    /// is not among the last `recordsPerPartition` is looked for (other venues may write most of
    /// the topic). Default: `depthMultiplier` × `recordsPerPartition` (200,000).
    var depthPerPartition: Int
    /// Time allowed for reading the last `recordsPerPartition` records (an error after it).
    var timeout: Duration = .seconds(60)
    /// Time allowed for looking further back (a warning after it; resuming goes on).
    var deepSearchTimeout: Duration = .seconds(20)
    /// A partition that makes no progress for this long gets a new consumer (librdkafka's mock
    /// cluster was seen to stall a consumer after a producer was killed mid-request).
    var stallTimeout: Duration = .seconds(4)
    /// How often the end offsets are re-read once the tail is read.
    var settleInterval: Duration = .milliseconds(300)
    /// At most this long is spent following records of the subscribed markets that keep arriving
    /// after the tail was read (another ingester of the same markets never lets the topic settle).
    var settleLimit: Duration = .seconds(3)

    static let depthMultiplier = 40

    init(recordsPerPartition: Int, depthPerPartition: Int? = nil) {
        self.recordsPerPartition = max(0, recordsPerPartition)
        let (product, overflow) = self.recordsPerPartition.multipliedReportingOverflow(by: Self.depthMultiplier)
        self.depthPerPartition = max(self.recordsPerPartition, depthPerPartition ?? (overflow ? Int.max : product))
    }
}

/// What a tail read found, with the figures its log lines and tests use.
struct TailReadResult: Sendable {
    /// The subscribed markets' trades, per native symbol, in log order.
    var trades: [String: [Trade]] = [:]
    /// Records looked at (every venue's), and how many of them belonged to other venues or markets.
    var recordsRead = 0
    var recordsSkipped = 0
    /// Records of this venue that were not trades.
    var undecodable = 0
    /// Subscribed markets with no trade within `depthPerPartition` records of each partition's end.
    var notFound: [String] = []
    /// Records read further back than `recordsPerPartition` (per partition, at most the depth).
    var deepRecordsRead = 0
    /// False when trades of the subscribed markets were still arriving at `settleLimit`.
    var settled = true
    /// Consumers the forward read used (1 unless a partition stalled).
    var consumersStarted = 0
    var elapsed: Duration = .zero
}

/// Reads back what the trades topic already holds for one venue's markets, so that a restarted
/// ingester (after a crash, or beside other ingesters) publishes neither duplicates nor leaves gaps.
///
/// The topic may be written by other ingesters (other venues, other markets of this venue, or the
/// same markets) while this runs. So:
/// - Records of other venues are skipped by their key (`exchange:SYMBOL`) without decoding them.
/// - One consumer reads from the last `recordsPerPartition` records of every partition onward and
///   keeps reading while the topic grows; it is replaced only when a partition makes no progress.
/// - A subscribed market without a trade there is looked for further back, window by doubling
///   window, up to `depthPerPartition` records per partition.
/// - Once the end offsets read at the start are reached, the end offsets are re-read every
///   `settleInterval`: records of the subscribed markets landing after them (what a crashed run
///   still had in flight) are read too. It stops after two checks without a new record of the
///   subscribed markets, or after `settleLimit` if they keep coming (another live ingester of the
///   same markets) — records of other venues or markets never hold it up.
enum TopicTail {
    /// The subscribed markets' trades found in the topic, per native symbol, in log order. A
    /// missing topic gives nothing. `markets` nil: every market of `exchange`, no deeper search.
    static func read(
        topic: String, exchange: Exchange, markets: [String]?, recordsPerPartition: Int, kafka: KafkaConfiguration,
        logger: Logger
    ) async throws -> [String: [Trade]] {
        try await readDetailed(
            topic: topic, exchange: exchange, markets: markets, limits: TailReadLimits(recordsPerPartition: recordsPerPartition),
            kafka: kafka, logger: logger
        ).trades
    }

    static func readDetailed(
        topic: String, exchange: Exchange, markets: [String]?, limits: TailReadLimits, kafka: KafkaConfiguration, logger: Logger
    ) async throws -> TailReadResult {
        let started = ContinuousClock.now
        guard limits.recordsPerPartition > 0 else { return TailReadResult() }
        var configuration = KafkaConsumerConfiguration(kafka: kafka)
        configuration.autoOffsetReset = .earliest
        configuration.groupID = "tape-ingest-tail"
        let probe = try KafkaConsumer(configuration: configuration, logger: logger)
        defer { probe.close() }
        let metadata = try await probe.metadata(timeout: .seconds(10))
        guard let info = metadata.topics.first(where: { $0.name == topic }), !info.partitions.isEmpty else {
            return TailReadResult()
        }
        let partitions = info.partitions.map(\.id).sorted()
        var lows: [Int32: Int64] = [:]
        var highs: [Int32: Int64] = [:]
        var starts: [Int32: Int64] = [:]
        for partition in partitions {
            let (low, high) = try await probe.watermarks(topic: topic, partition: partition)
            lows[partition] = low
            highs[partition] = high
            starts[partition] = Self.back(from: high, by: limits.recordsPerPartition, floor: low)
        }
        guard highs.values.contains(where: { $0 > 0 }) else { return TailReadResult() }
        let wanted = markets.map(Set.init)
        logger.info(
            "reading the tail of \(topic)",
            metadata: [
                "exchange": "\(exchange)", "markets": "\(wanted.map { "\($0.count)" } ?? "all")",
                "from": "\(Self.offsetsText(starts))", "to": "\(Self.offsetsText(highs))",
            ])

        // 1. The last records of every partition, by one consumer that then follows the topic.
        let forward = TailState(
            start: starts, ends: highs, exchange: exchange, markets: wanted, openEnded: true)
        let reader = TailReader(topic: topic, configuration: configuration, logger: logger, state: forward)
        defer { reader.stop() }
        try reader.start()
        do {
            try await reader.waitUntilComplete(
                deadline: started + limits.timeout, stallTimeout: limits.stallTimeout, probe: probe)
        } catch let failure as TailReadFailure {
            throw IngestError(
                "could not read back the last \(limits.recordsPerPartition) records of each partition of \(topic) (what this \(exchange) ingester needs to resume without duplicates): after \(Self.seconds(started.duration(to: .now))) s \(forward.progressText); \(failure.reason). Is Kafka at \(kafka.bootstrapServers) healthy? Retry, or start with --tail-records 0 to skip resuming (trades \(topic) already holds may then be published again)."
            )
        }

        // 2. Subscribed markets with no trade there: further back, in doubling windows.
        var result = TailReadResult()
        var deep: [Int32: [(Int64, Trade)]] = [:]
        if let wanted {
            var missing = wanted.subtracting(forward.marketsFound)
            var windowEnds = starts
            var window = limits.recordsPerPartition
            let deadline = ContinuousClock.now + limits.deepSearchTimeout
            while !missing.isEmpty {
                var windowStarts: [Int32: Int64] = [:]
                for partition in partitions {
                    let end = windowEnds[partition]!
                    let depthFloor = Self.back(from: highs[partition]!, by: limits.depthPerPartition, floor: lows[partition]!)
                    windowStarts[partition] = Self.back(from: end, by: window, floor: depthFloor)
                }
                let open = partitions.filter { windowStarts[$0]! < windowEnds[$0]! }
                guard !open.isEmpty else { break }
                if ContinuousClock.now >= deadline {
                    logger.warning(
                        "looking further back in \(topic) for the last trade of \(missing.count) markets took longer than \(Self.seconds(limits.deepSearchTimeout)) s; going on without it",
                        metadata: ["markets": "\(missing.sorted().prefix(10).joined(separator: ","))"])
                    break
                }
                let state = TailState(
                    start: windowStarts.filter { open.contains($0.key) }, ends: windowEnds.filter { open.contains($0.key) },
                    exchange: exchange, markets: missing, openEnded: false)
                let windowReader = TailReader(topic: topic, configuration: configuration, logger: logger, state: state)
                do {
                    try windowReader.start()
                    try await windowReader.waitUntilComplete(deadline: deadline, stallTimeout: limits.stallTimeout, probe: probe)
                    windowReader.stop()
                } catch {
                    windowReader.stop()
                    logger.warning(
                        "could not look further back in \(topic) for the last trade of \(missing.count) markets (\(error)); going on without it",
                        metadata: ["markets": "\(missing.sorted().prefix(10).joined(separator: ","))"])
                    break
                }
                let (found, _) = state.result
                for (partition, records) in found { deep[partition, default: []].append(contentsOf: records) }
                result.deepRecordsRead += state.counts.read
                result.undecodable += state.counts.undecodable
                missing.subtract(state.marketsFound)
                windowEnds = windowStarts
                window = window > Int.max / 2 ? Int.max : window * 2
            }
            result.notFound = missing.sorted()
        }

        // 3. Follow the end while records of the subscribed markets keep landing.
        let settleStarted = ContinuousClock.now
        var lastOurs = forward.counts.ours
        var quietChecks = 0
        while quietChecks < 2 {
            if settleStarted.duration(to: .now) >= limits.settleLimit {
                result.settled = false
                break
            }
            try await Task.sleep(for: limits.settleInterval)
            // Complete to the ends of the previous check, and nothing of ours since: quiet.
            let complete = forward.isComplete
            let ours = forward.counts.ours
            quietChecks = complete && ours == lastOurs ? quietChecks + 1 : 0
            lastOurs = ours
            for partition in partitions {
                let (_, high) = try await probe.watermarks(topic: topic, partition: partition)
                forward.extend(partition: partition, to: high)
            }
            if !forward.isComplete {
                // A partition stuck for stallTimeout gets a new consumer here too.
                reader.checkStalls(stallTimeout: limits.stallTimeout)
            }
        }
        reader.stop()
        result.consumersStarted = reader.consumersStarted

        // Deeper windows hold older records: per partition, in offset order.
        let (recent, undecodable) = forward.result
        var perPartition = deep
        for (partition, records) in recent { perPartition[partition, default: []].append(contentsOf: records) }
        for partition in perPartition.keys.sorted() {
            for (_, trade) in perPartition[partition]!.sorted(by: { $0.0 < $1.0 }) {
                result.trades[trade.nativeSymbol, default: []].append(trade)
            }
        }
        let counts = forward.counts
        result.recordsRead = counts.read + result.deepRecordsRead
        result.recordsSkipped = counts.skipped
        result.undecodable += undecodable
        result.elapsed = started.duration(to: .now)
        logger.info(
            "read the tail of \(topic)",
            metadata: [
                "trades": "\(result.trades.values.reduce(0) { $0 + $1.count })", "markets": "\(result.trades.count)",
                "records": "\(result.recordsRead)", "other_venues_or_markets": "\(counts.skipped)",
                "further_back": "\(result.deepRecordsRead)", "seconds": "\(Self.seconds(result.elapsed))",
            ])
        if !result.notFound.isEmpty {
            logger.info(
                "no trade of \(result.notFound.count) subscribed markets within \(limits.depthPerPartition) records of the end of each partition of \(topic): taken as new",
                metadata: ["markets": "\(result.notFound.prefix(10).joined(separator: ","))"])
        }
        if !result.settled {
            logger.notice(
                "\(topic) still receives trades of these \(exchange) markets after \(Self.seconds(limits.settleLimit)) s (another tape ingest of the same markets?); resuming from what was read, later ones count as new",
                metadata: ["last_read": "\(forward.progressText)"])
        }
        if result.undecodable > 0 {
            logger.warning("records in \(topic) that are not trades were skipped while resuming", metadata: ["count": "\(result.undecodable)"])
        }
        return result
    }

    /// `count` offsets before `end`, not below `floor` (saturating: watermarks come from the broker).
    static func back(from end: Int64, by count: Int, floor: Int64) -> Int64 {
        let (start, overflow) = end.subtractingReportingOverflow(Int64(count))
        return overflow ? floor : max(floor, start)
    }

    static func offsetsText(_ offsets: [Int32: Int64]) -> String {
        offsets.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    }

    static func seconds(_ duration: Duration) -> String {
        let ms = duration.wholeMilliseconds
        return "\(ms / 1000).\(String(ms % 1000 / 100))"
    }
}

/// Why a tail read gave up (turned into a message naming the topic and what was reached).
struct TailReadFailure: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

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
            defer { c.consumer = nil; c.task = nil }
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
