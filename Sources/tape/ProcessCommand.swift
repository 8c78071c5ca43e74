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
    @Option(name: .customLong("allowed-lateness"), help: "How long after a window is final a late trade can still correct it (e.g. 1h).")
    var allowedLateness: DurationOption = .init(milliseconds: 3_600_000)
    @Option(name: .customLong("output-partitions"), help: "Partitions of the candles topic when it is created.")
    var outputPartitions: Int32 = 3
    @Option(name: .customLong("progress"), help: "Seconds between progress lines on stderr (0: none).")
    var progressSeconds: Double = 10
    @Option(name: .customLong("log-level"), help: "Log level on stderr: trace, debug, info, notice, warning, error (default warning; --verbose: trace).")
    var logLevel: String?

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
        guard !deadLetterTopic.isEmpty else { throw ValidationError("--deadletter-topic must not be empty.") }
        guard outputPartitions > 0 else { throw ValidationError("--output-partitions must be positive.") }
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
        let store: CandleStore?
        do {
            store = noDB ? nil : try CandleStore(path: db)
        } catch {
            throw ValidationError("Cannot open the candle history at \(db): \(error). Pass another --db or --no-db.")
        }
        var logger = kafka.logger("tape.process")
        if let logLevel, let level = Logger.Level(rawValue: logLevel) { logger.logLevel = level }
        let processor = CandleProcessor(configuration: configuration, store: store, logger: logger)
        do {
            try await runUntilSignalled { try await processor.run() }
        } catch let error as KafkaError {
            printError("tape process: \(error.message)")
            throw ExitCode(1)
        } catch let error as ProcessingError {
            printError("tape process: \(error.message)")
            throw ExitCode(1)
        }
        let c = processor.counters
        printError(
            "process: stopped after \(c.trades) trades, \(c.candlesEmitted) candle updates, \(c.duplicates) duplicates, "
                + "\(c.lateTrades) late, \(c.droppedTooLate) too late, \(c.unparseable) not trades, \(c.rejectedTimes) times out of range, "
                + "\(c.rejectedOverflows) overflows; \(c.deadLettered) records to \(deadLetterTopic) (\(c.deadLetterFailures) failed).")
    }
}
