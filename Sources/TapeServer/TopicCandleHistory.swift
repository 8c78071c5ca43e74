import Foundation
import Logging
import MarketData
import Processing
import Synchronization

/// The server's own candle history (`tape serve` without `--db`): an SQLite `CandleStore` the server
/// fills itself from the candle topic, so it needs no file of the processor's and may run on
/// another machine. The highest revision of each window wins. The positions read are stored with
/// the candles, so a restarted server keeps its history and resumes reading where it stopped;
/// writing a record twice changes nothing.
///
/// Give `start` to the `KafkaTopicReader` of the candle topic and this history to its
/// `KafkaCandleFeed(reader:recordingInto:)`.
public final class TopicCandleHistory: CandleHistory, Sendable {
    public let store: CandleStore
    public let topic: String
    /// Where to read the topic from: the positions a previous run stored, else the beginning.
    public let start: KafkaTopicReader.Start
    /// Candles the store held when opened.
    public let candlesAtStart: Int
    let logger: Logger

    private struct Progress {
        var records = 0
        var lastLog = ContinuousClock.now
        var caughtUp = false
    }

    private let progress = Mutex(Progress())
    private let startedAt = ContinuousClock.now

    /// Opens (or creates) the store at `path` and reads the positions stored for `topic`.
    public init(path: String, topic: String, logger: Logger) throws {
        store = try CandleStore(path: path)
        try store.prepareTopicPositions()
        self.topic = topic
        self.logger = logger
        let positions = try store.topicPositions(topic: topic)
        start = .resume(positions)
        candlesAtStart = try store.count()
        if positions.isEmpty {
            logger.info("Candle history \(path): \(candlesAtStart) candles; reading \(topic) from its beginning")
        } else {
            logger.info(
                "Candle history \(path): \(candlesAtStart) candles kept from the last run; reading \(topic) from where it stopped (\(positions.count) partitions)"
            )
        }
    }

    /// Writes one batch read from the topic and the positions reached (one transaction).
    public func record(_ candles: [Candle], positions: [Int32: Int64]) throws {
        try store.upsertFromTopic(candles, topic: topic, positions: positions)
        let due: Int? = progress.withLock { p in
            p.records += candles.count
            guard !p.caughtUp, ContinuousClock.now - p.lastLog >= .seconds(5) else { return nil }
            p.lastLog = .now
            return p.records
        }
        if let due { logger.info("Loading candle history from \(topic): \(due) records read so far") }
    }

    /// How close to the topic's end (records) counts as caught up: a topic being written is
    /// rarely at lag 0 at the moment the reader samples it.
    public static let caughtUpLag: Int64 = 1000

    /// Takes the reader's lag reports (every 5 s while records arrive): the first time the lag is
    /// within `caughtUpLag`, logs how much was loaded, and the loading progress lines stop.
    public func noteLag(_ lag: ConsumerLag) {
        guard lag.messages <= Self.caughtUpLag else { return }
        let records: Int? = progress.withLock { p in
            guard !p.caughtUp else { return nil }
            p.caughtUp = true
            return p.records
        }
        guard let records else { return }
        let elapsed = (ContinuousClock.now - startedAt).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        let total = (try? store.count()).map(String.init) ?? "?"
        logger.info(
            "Candle history caught up with \(topic): \(records) records read in \(String(format: "%.1f", seconds)) s, \(total) candles stored; following it live"
        )
    }

    public func candles(market: MarketID, interval: CandleInterval, from: Int64?, to: Int64?, limit: Int) async throws -> [Candle] {
        try store.candles(exchange: market.exchange, symbol: market.symbol, interval: interval, from: from, to: to, limit: limit)
    }

    public func markets() async throws -> [MarketID] {
        try store.symbols().map { MarketID(exchange: $0.exchange, symbol: $0.symbol) }
    }
}
