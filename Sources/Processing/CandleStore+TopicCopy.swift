import GRDB
import MarketData

/// A candle store filled from the candle topic by a reader that is not the processor
/// (`tape serve` on its own data directory): it keeps the highest revision of each window and,
/// in the same transaction, how far into each partition of the topic it has read, so a restart
/// resumes there instead of at the topic's beginning.
extension CandleStore {
    /// Creates the table of read positions when missing (a processor's file never needs it).
    public func prepareTopicPositions() throws {
        try pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS topic_positions (
                        topic TEXT NOT NULL,
                        partition INTEGER NOT NULL,
                        next INTEGER NOT NULL,
                        PRIMARY KEY (topic, partition)
                    ) WITHOUT ROWID
                    """)
        }
    }

    /// The next offset to read of each partition of `topic` (partitions never read are absent;
    /// a stored value that is not an offset is left out, so that partition starts over).
    public func topicPositions(topic: String) throws -> [Int32: Int64] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT partition, next FROM topic_positions WHERE topic = ?", arguments: [topic])
            var out: [Int32: Int64] = [:]
            for row in rows {
                let partition: Int64 = row["partition"]
                let next: Int64 = row["next"]
                guard let p = Int32(exactly: partition), p >= 0, next >= 0 else { continue }
                out[p] = next
            }
            return out
        }
    }

    /// Writes candles read from `topic` and the positions reached, in one transaction. A candle
    /// replaces the stored window only when its `revision` is at least the stored one (the highest
    /// revision wins; among equal revisions the later record, which is the topic's order).
    public func upsertFromTopic(_ candles: [Candle], topic: String, positions: [Int32: Int64]) throws {
        guard !candles.isEmpty || !positions.isEmpty else { return }
        try pool.write { db in
            if !candles.isEmpty { try Self.writeRows(candles, to: db, keepingHigherRevisions: true) }
            let position = try db.cachedStatement(
                sql: "INSERT INTO topic_positions (topic, partition, next) VALUES (?, ?, ?) ON CONFLICT (topic, partition) DO UPDATE SET next = excluded.next"
            )
            for (partition, next) in positions {
                try position.execute(arguments: [topic, Int64(partition), next])
            }
        }
    }
}
