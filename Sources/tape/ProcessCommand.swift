import ArgumentParser
import Foundation
import KafkaClient
import Logging
import MarketData
import Processing

/// A duration flag: `500ms`, `5s`, `2m`, `1h`, `1d` (milliseconds inside).
struct DurationOption: ExpressibleByArgument, Sendable {
    var milliseconds: Int64

    init(milliseconds: Int64) { self.milliseconds = milliseconds }

    init?(argument: String) {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            guard let n = Int64(argument.dropLast(suffix.count)), n >= 0 else { return nil }
            let (ms, overflow) = n.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            milliseconds = ms
            return
        }
        return nil
    }
}

/// Comma-separated candle intervals (`1m,5m,1h`).
func parseIntervals(_ text: String) throws -> [CandleInterval] {
    let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    var out: [CandleInterval] = []
    for item in items {
        guard let interval = CandleInterval(item) else {
            throw ValidationError("'\(item)' is not a candle interval: use N followed by s, m, h or d, from 1s to 1d (e.g. 1m,5m,1h).")
        }
        out.append(interval)
    }
    guard !out.isEmpty else { throw ValidationError("--intervals needs at least one interval, e.g. 1m,5m,1h.") }
    return out
}

struct ProcessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Turn trades into candles (OHLCV, VWAP, buy/sell volume) as a Kafka consumer group.",
        discussion: """
            Reads --input as the consumer group --group, writes candle updates to --output (compacted; created \
            when missing) and upserts them into the SQLite history --db. Run several instances with the same \
            group to share the partitions. The latest candle per key always equals a batch computation over \
            the trades, however the processor is stopped (see docs/processing.md).
            """
    )

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Candle intervals, 1s to 1d.") var intervals: String = "1m,5m,1h"
    @Option(help: "Consumer group.") var group: String = "tape-processor"
    @Option(help: "SQLite candle history.") var db: String = "./tape-data/candles.sqlite"
    @Flag(name: .customLong("no-db"), help: "Do not write the SQLite history.") var noDB = false
    @Option(help: "Topic of trades.") var input: String = "tape.trades"
    @Option(help: "Topic of candles.") var output: String = "tape.candles"
    @Option(
        name: .customLong("deadletter-topic"),
        help: "Topic for input records that cannot be used (not a trade, time outside 1970-9999, sums beyond 256 bits); created when missing.")
    var deadLetterTopic: String = "tape.deadletter"
    @Option(
        name: .customLong("gaps-topic"),
        help: "Gap ledger written by the ingesters: candles overlapping an unrepaired gap carry complete:false ('' = not followed).")
    var gapsTopic: String = "tape.gaps"
    @Option(help: "How far the watermark trails the newest trade time (e.g. 5s).") var grace: DurationOption = .init(milliseconds: 5_000)
    @Option(name: .customLong("emit-interval"), help: "At most one update per open candle per this period (e.g. 1s).")
    var emitInterval: DurationOption = .init(milliseconds: 1_000)
    @Option(
        name: .customLong("commit-interval"),
        help:
            "How often emitted candles are made durable and the input offsets committed, with --transactions as one Kafka transaction (e.g. 10s; default 1s, never shorter than --emit-interval). Longer: fewer commits, and read_committed readers see candles later; a restart replays from the last commit."
    )
    var commitInterval: DurationOption?
    @Option(name: .customLong("allowed-lateness"), help: "How long after a window is final a late trade can still correct it (e.g. 1h).")
    var allowedLateness: DurationOption = .init(milliseconds: 3_600_000)
    @Option(name: .customLong("output-partitions"), help: "Partitions of the candles topic when it is created.")
    var outputPartitions: Int32 = 3
    @Option(name: .customLong("progress"), help: "Seconds between progress lines on stderr (0: none).")
    var progressSeconds: Double = 10
    @Option(name: .customLong("log-level"), help: "Log level on stderr: trace, debug, info, notice, warning, error (default warning; --verbose: trace).")
    var logLevel: String?
    @Option(
        name: .customLong("group-instance-id"),
        help: ArgumentHelp(
            "Static group membership (KIP-345): a processor killed and restarted with the same id gets its partitions back at once instead of waiting for its old session to expire. Default: tape-process.<host>.<hash of the absolute --db path>.<slot>, the slot held by a lock file beside --db so that processors running side by side differ; 'none': dynamic membership.",
            valueName: "id|none"))
    var groupInstanceID: String?
    @Option(
        name: .customLong("session-timeout-ms"),
        help:
            "How long the group waits for a processor that stopped heartbeating before others get its partitions. Default 6000 (the shortest Apache Kafka accepts by default); on librdkafka's mock cluster, which has no static membership, 4000 and the join 2.5 s after start (docs/processing.md)."
    )
    var sessionTimeoutMs: Int?
    @Option(
        name: .customLong("leave-group-on-stop"),
        help: "On Ctrl-C/SIGTERM, leave the group so others take over at once (true), or keep the partitions for a restart within the session timeout (false).")
    var leaveGroupOnStop: Bool = true
    @Option(
        name: .customLong("transactions"),
        help: ArgumentHelp(
            "Write each checkpoint's candles, dead letters and offsets as one Kafka transaction, so a fenced or stalled processor's output is never shown to read_committed readers: auto (when the cluster supports transactions), on, or off (docs/processing.md).",
            valueName: "auto|on|off"))
    var transactions: CandleProcessorConfiguration.TransactionMode = .auto
    @Option(
        name: .customLong("transactional-id"),
        help:
            "The producer's transactional.id with --transactions (default: the group instance id; with --group-instance-id none, the id the default would have been). Stable across restarts, unique per running processor."
    )
    var transactionalID: String?

    func validate() throws {
        _ = try parseIntervals(intervals)
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error.")
        }
        guard emitInterval.milliseconds > 0 else { throw ValidationError("--emit-interval must be positive, e.g. 1s.") }
        // Far beyond any use, and far from Int64's end when added to trade times (year 9999 is 2.5e14 ms).
        let year: Int64 = 366 * 86_400_000
        guard grace.milliseconds <= year, allowedLateness.milliseconds <= year, emitInterval.milliseconds <= year else {
            throw ValidationError("--grace, --allowed-lateness and --emit-interval must be at most 366d.")
        }
        if let commitInterval {
            guard commitInterval.milliseconds > 0, commitInterval.milliseconds <= year else {
                throw ValidationError("--commit-interval must be positive and at most 366d, e.g. 10s.")
            }
        }
        let committedEvery = CandleProcessorConfiguration.effectiveCommitIntervalMilliseconds(
            commit: commitInterval?.milliseconds, emit: emitInterval.milliseconds)
        if transactions != .off && committedEvery > CandleProcessorConfiguration.maxTransactionalCommitIntervalMilliseconds {
            throw ValidationError(
                "With --transactions \(transactions.rawValue), each commit interval (here \(committedEvery / 1000) s: the longer of --commit-interval and --emit-interval) is one Kafka transaction, and Kafka aborts a transaction open longer than transaction.max.timeout.ms (15 min by default). Use an interval up to 14m50s, or --transactions off."
            )
        }
        guard !deadLetterTopic.isEmpty else { throw ValidationError("--deadletter-topic must not be empty.") }
        guard outputPartitions > 0 else { throw ValidationError("--output-partitions must be positive; got \(outputPartitions).") }
        guard progressSeconds.isFinite, progressSeconds >= 0, progressSeconds <= 86_400 else {
            throw ValidationError("--progress must be from 0 (none) to 86400 seconds; got \(progressSeconds.flagText).")
        }
        if let id = groupInstanceID, id != "none", !ProcessorInstance.isValidID(id) {
            throw ValidationError("--group-instance-id must be 1 to 249 of the characters a-z A-Z 0-9 . _ - (Kafka's rule), or 'none'.")
        }
        if let id = transactionalID, id.isEmpty || id.utf8.count > 32767 {
            throw ValidationError("--transactional-id must be 1 to 32767 bytes.")
        }
        if let sessionTimeoutMs, sessionTimeoutMs < 1 || sessionTimeoutMs > 3_600_000 {
            throw ValidationError(
                "--session-timeout-ms must be between 1 and 3600000 (brokers accept their own range: Apache Kafka 6000-1800000 by default, tape broker 1000-3600000)."
            )
        }
    }

    func run() async throws {
        tuneMallocForStreaming()
        var configuration = CandleProcessorConfiguration(kafka: try kafka.configuration())
        configuration.inputTopic = input
        configuration.outputTopic = output
        configuration.deadLetterTopic = deadLetterTopic
        configuration.gapsTopic = gapsTopic.isEmpty ? nil : gapsTopic
        configuration.group = group
        configuration.outputPartitions = outputPartitions
        configuration.aggregation = CandleAggregatorConfiguration(
            intervals: try parseIntervals(intervals), graceMilliseconds: grace.milliseconds,
            emitIntervalMilliseconds: emitInterval.milliseconds, allowedLatenessMilliseconds: allowedLateness.milliseconds)
        configuration.progressSeconds = progressSeconds > 0 ? progressSeconds : nil
        configuration.commitIntervalMilliseconds = commitInterval?.milliseconds
        if !noDB { try Preflight.fileParent(db, flag: "--db") }
        let store: CandleStore?
        do {
            store = noDB ? nil : try CandleStore(path: db)
        } catch let error as CandleStoreError {
            throw error  // names the file and what to do
        } catch {
            throw TapeFailure("Cannot open the candle history --db \(db): \(FailureText.sentence(for: error)) Or pass --no-db.")
        }
        // Static membership: an explicit id, none, or the default claimed beside the state.
        configuration.sessionTimeoutMilliseconds = sessionTimeoutMs
        configuration.leaveGroupOnStop = leaveGroupOnStop
        configuration.transactions = transactions
        configuration.transactionalID = transactionalID
        var instance: ProcessorInstance?
        switch groupInstanceID {
        case "none":
            configuration.groupInstanceID = nil
            // Dynamic membership, but a transactional id that survives a restart all the same: the
            // slot's id, if one can be claimed (else the processor falls back to a random one). A
            // restarted processor then aborts its predecessor's open transaction as it starts; with
            // a new id, read_committed readers would wait for that transaction to time out.
            if transactions != .off && transactionalID == nil {
                instance = try? ProcessorInstance.claim(statePath: noDB ? nil : db, group: group)
                configuration.transactionalID = instance?.id
            }
        case let id?:
            configuration.groupInstanceID = id
        case nil:
            do {
                instance = try ProcessorInstance.claim(statePath: noDB ? nil : db, group: group)
            } catch {
                throw TapeFailure("\(FailureText.sentence(for: error)) Or pass --group-instance-id ID (or none).")
            }
            configuration.groupInstanceID = instance?.id
        }
        // An unreachable cluster within 5 s, in one sentence (the processor would retry for longer).
        try await KafkaOptions.requireCluster(configuration.kafka)
        if let instance, configuration.groupInstanceID != nil {
            printError("process: group instance id \(instance.id) (slot \(instance.slot), held by \(instance.lockPath))")
        }
        var logger = kafka.logger("tape.process")
        if let logLevel, let level = Logger.Level(rawValue: logLevel) { logger.logLevel = level }
        let processor = CandleProcessor(
            configuration: configuration, store: store, logger: logger, console: consoleLogger("tape.process", prefix: "process: "))
        defer { withExtendedLifetime(instance) {} }
        do {
            try await runUntilSignalled { try await processor.run() }
        } catch let error as KafkaError {
            // One line (Tape.main prints it): the error, and what a fenced instance id means.
            var message = error.message
            if error.message.contains("FENCED_INSTANCE_ID") || error.message.contains("same group.instance.id") {
                message +=
                    " Another processor joined group \(group) with this one's --group-instance-id \(configuration.groupInstanceID ?? "") and took its place; processors running at the same time need different ids."
            }
            throw TapeFailure(message)
        } catch let error as ProcessingError {
            throw TapeFailure(error.message)
        }
        let c = processor.counters
        printError(
            "process: stopped after \(c.trades) trades, \(c.candlesEmitted) candle updates, \(c.duplicates) duplicates, "
                + "\(c.lateTrades) late, \(c.droppedTooLate) too late, \(c.unparseable) not trades, \(c.rejectedTimes) times out of range, "
                + "\(c.rejectedOverflows) overflows; \(c.deadLettered) records to \(deadLetterTopic) (\(c.deadLetterFailures) failed).")
    }
}

extension CandleProcessorConfiguration.TransactionMode: ExpressibleByArgument {}
