import Exchanges
import KafkaClient
import Logging
import MarketData
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
