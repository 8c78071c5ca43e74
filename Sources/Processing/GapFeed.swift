import KafkaClient
import Logging
import MarketData
import Synchronization

/// Follows the gap ledger topic (`tape.gaps`) from its beginning and keeps the latest state of
/// every gap, for the processor's `complete` flag: a candle whose window overlaps an unrepaired
/// trades gap of its market is incomplete. Reads with a plain assigned consumer (no group, nothing
/// committed); waits for the topic if it does not exist yet; skips records that are not gaps.
public final class GapFeed: Sendable {
    struct State: Sendable {
        var ledger = GapLedger()
        /// Gaps whose state changed since the last `takeChanges()`.
        var changes: [Gap] = []
        var records = 0
        var undecodable = 0
    }

    private let state = Mutex(State())
    public let topic: String

    public init(topic: String) { self.topic = topic }

    /// True unless an unrepaired trades gap of the market overlaps `[start, end)`.
    public func isComplete(exchange: Exchange, symbol: Symbol, start: Int64, end: Int64) -> Bool {
        state.withLock { $0.ledger.isComplete(exchange: exchange, symbol: symbol, start: start, end: end) }
    }

    /// Gaps found or repaired since the last call.
    public func takeChanges() -> [Gap] {
        state.withLock { s in
            defer { s.changes = [] }
            return s.changes
        }
    }

    /// Records read, and how many of them were not gaps.
    public var counts: (records: Int, undecodable: Int) { state.withLock { ($0.records, $0.undecodable) } }

    /// Applies one record's value.
    public func apply(value: [UInt8]) {
        guard let gap = try? Gap(json: value) else {
            state.withLock {
                $0.records += 1
                $0.undecodable += 1
            }
            return
        }
        apply(gap)
    }

    /// Applies one gap (for a caller that reads the topic itself: `tape up` shares the server's reader).
    public func apply(_ gap: Gap) {
        state.withLock { s in
            s.records += 1
            let previous = s.ledger.apply(gap)
            if previous?.repaired != gap.repaired { s.changes.append(gap) }
        }
    }

    /// Reads the topic until cancelled.
    public func run(kafka: KafkaConfiguration, logger: Logger) async {
        var configuration = KafkaConsumerConfiguration(kafka: kafka)
        configuration.groupID = "tape-gaps-reader"
        configuration.autoCommit = false
        configuration.autoOffsetReset = .earliest
        var warned = false
        while !Task.isCancelled {
            do {
                let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
                defer { consumer.close() }
                let metadata = try await consumer.metadata(timeout: .seconds(10))
                guard let info = metadata.topics.first(where: { $0.name == topic }), !info.partitions.isEmpty else {
                    try await Task.sleep(for: .seconds(2))
                    continue
                }
                try consumer.assign(info.partitions.map { TopicPartitionOffset(topic: topic, partition: $0.id, offset: KafkaOffset.beginning) })
                logger.debug("following the gap ledger", metadata: ["topic": "\(topic)", "partitions": "\(info.partitions.count)"])
                for try await batch in consumer.batches {
                    for message in batch { if let value = message.value { apply(value: value) } }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                if !warned {
                    logger.warning("cannot read the gap ledger \(topic); candles are marked complete until it can be read: \(error)")
                    warned = true
                }
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }
}
