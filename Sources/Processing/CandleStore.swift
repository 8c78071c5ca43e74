import Foundation
import GRDB
import MarketData

/// The candle history: an SQLite file (GRDB, WAL mode) holding the latest value of every candle,
/// one row per (exchange, symbol, interval, start). `tape process` upserts into it; `tape candles`
/// and `tape serve` read it. Several processes may share the file (SQLite locking; writers wait).
public final class CandleStore: Sendable {
    /// One instrument known to the store.
    public struct StoredSymbol: Sendable, Hashable {
        public var exchange: Exchange
        public var symbol: Symbol
        /// Intervals with at least one candle, shortest first.
        public var intervals: [CandleInterval]
    }

    let pool: DatabasePool

    /// Opens (creating the file, its folder and the schema when missing) the store at `path`.
    ///
    /// A file that is not SQLite, or that SQLite cannot open, throws `CandleStoreError` (one sentence).
    public init(path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE candles (
                        exchange TEXT NOT NULL,
                        symbol TEXT NOT NULL,
                        interval INTEGER NOT NULL,
                        start INTEGER NOT NULL,
                        "end" INTEGER NOT NULL,
                        open TEXT NOT NULL,
                        high TEXT NOT NULL,
                        low TEXT NOT NULL,
                        close TEXT NOT NULL,
                        volume TEXT NOT NULL,
                        quoteVolume TEXT NOT NULL,
                        buyVolume TEXT NOT NULL,
                        sellVolume TEXT NOT NULL,
                        trades INTEGER NOT NULL,
                        vwap TEXT,
                        revision INTEGER NOT NULL,
                        final INTEGER NOT NULL,
                        PRIMARY KEY (exchange, symbol, interval, start)
                    ) WITHOUT ROWID
                    """)
        }
        // Candles carry `complete` (false while an unrepaired gap overlaps the window); rows
        // written before it existed read as complete, like records without the member.
        migrator.registerMigration("v2-complete") { db in
            try db.execute(sql: "ALTER TABLE candles ADD COLUMN complete INTEGER NOT NULL DEFAULT 1")
        }
        // Processes opening a new file at once (`tape process` and `tape serve --db` started
        // together) race twice: switching the new file to WAL takes a lock the busy timeout does
        // not wait for ("database is locked"), and each sees no migration applied, so all but the
        // first fail on a table or column the first created. Opening and migrating again sees
        // what the first did.
        do {
            pool = try Self.openMigrated(path: path, configuration: configuration, migrator: migrator)
        } catch let error as DatabaseError {
            throw CandleStoreError(path: path, error)
        }
    }

    private static func openMigrated(path: String, configuration: Configuration, migrator: DatabaseMigrator) throws -> DatabasePool {
        var attempt = 0
        while true {
            do {
                let opened = try DatabasePool(path: path, configuration: configuration)
                try migrator.migrate(opened)
                return opened
            } catch is DatabaseError where attempt < 8 {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.02 * Double(attempt))
            }
        }
    }

    public func upsert(_ candles: [Candle]) throws {
        guard !candles.isEmpty else { return }
        try pool.write { db in try Self.writeRows(candles, to: db, keepingHigherRevisions: false) }
    }

    /// Inserts or replaces each candle's window; with `keepingHigherRevisions`, a stored window of
    /// a higher revision stays.
    static func writeRows(_ candles: [Candle], to db: Database, keepingHigherRevisions: Bool) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO candles (exchange, symbol, interval, start, "end", open, high, low, close, volume,
                    quoteVolume, buyVolume, sellVolume, trades, vwap, revision, final, complete)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (exchange, symbol, interval, start) DO UPDATE SET
                    "end" = excluded."end", open = excluded.open, high = excluded.high, low = excluded.low,
                    close = excluded.close, volume = excluded.volume, quoteVolume = excluded.quoteVolume,
                    buyVolume = excluded.buyVolume, sellVolume = excluded.sellVolume, trades = excluded.trades,
                    vwap = excluded.vwap, revision = excluded.revision, final = excluded.final,
                    complete = excluded.complete
                """ + (keepingHigherRevisions ? "\nWHERE excluded.revision >= candles.revision" : ""))
        for c in candles {
            try statement.execute(arguments: [
                c.exchange.name, c.symbol.rawValue, c.interval.seconds, c.start, c.end,
                c.open.description, c.high.description, c.low.description, c.close.description,
                c.volume.description, c.quoteVolume.description, c.buyVolume.description, c.sellVolume.description,
                c.trades, c.vwap?.description, c.revision, c.isFinal, c.complete,
            ])
        }
    }

    /// Candles of one instrument and interval with `from <= start < to` (ms; nil = unbounded),
    /// oldest first; at most `limit` (the newest ones when the range holds more).
    public func candles(
        exchange: Exchange, symbol: Symbol, interval: CandleInterval, from: Int64? = nil, to: Int64? = nil, limit: Int? = nil
    ) throws -> [Candle] {
        try pool.read { db in
            var sql = "SELECT * FROM candles WHERE exchange = ? AND symbol = ? AND interval = ?"
            var arguments: StatementArguments = [exchange.name, symbol.rawValue, interval.seconds]
            if let from {
                sql += " AND start >= ?"
                arguments += [from]
            }
            if let to {
                sql += " AND start < ?"
                arguments += [to]
            }
            sql += " ORDER BY start DESC"
            if let limit {
                sql += " LIMIT ?"
                arguments += [max(0, limit)]
            }
            let rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            return try rows.reversed().map(Self.candle(from:))
        }
    }

    /// Every instrument with candles, sorted by exchange then symbol.
    public func symbols() throws -> [StoredSymbol] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT DISTINCT exchange, symbol, interval FROM candles ORDER BY exchange, symbol, interval")
            var out: [StoredSymbol] = []
            for row in rows {
                let exchange = Exchange(row["exchange"] as String)
                let symbol = Symbol(normalizing: row["symbol"] as String)
                guard let interval = CandleInterval(seconds: row["interval"] as Int64) else { continue }
                if let last = out.last, last.exchange == exchange, last.symbol == symbol {
                    out[out.count - 1].intervals.append(interval)
                } else {
                    out.append(StoredSymbol(exchange: exchange, symbol: symbol, intervals: [interval]))
                }
            }
            return out
        }
    }

    /// Number of candles stored.
    public func count() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM candles") ?? 0 }
    }

    private static func candle(from row: Row) throws -> Candle {
        func decimal(_ column: String) throws -> ExactDecimal {
            try ExactDecimal(row[column] as String, allowingSignificantDigits: ExactDecimal.maximumSumDigits)
        }
        guard let interval = CandleInterval(seconds: row["interval"] as Int64) else {
            throw DecimalError(.invalidCharacter, "bad interval in the candle store")
        }
        let vwapText: String? = row["vwap"]
        var candle = Candle(
            exchange: Exchange(row["exchange"] as String), symbol: Symbol(normalizing: row["symbol"] as String),
            interval: interval, start: row["start"], end: row["end"], open: try decimal("open"), high: try decimal("high"),
            low: try decimal("low"), close: try decimal("close"), volume: try decimal("volume"),
            quoteVolume: try decimal("quoteVolume"), buyVolume: try decimal("buyVolume"), sellVolume: try decimal("sellVolume"),
            trades: row["trades"], vwap: try vwapText.map { try ExactDecimal($0, allowingSignificantDigits: ExactDecimal.maximumSumDigits) },
            revision: row["revision"],
            isFinal: row["final"])
        candle.complete = row["complete"]
        return candle
    }
}

/// A candle history file SQLite could not open or use, as one sentence naming the file.
public struct CandleStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    init(path: String, _ error: DatabaseError) {
        switch error.resultCode {
        case .SQLITE_NOTADB:
            message = "\(path) is not a Tape candle database (not SQLite): point --db at the file `tape process --db` writes, or at a new path."
        case .SQLITE_CORRUPT:
            message = "\(path) is a damaged SQLite file: move it away (tape process rebuilds history from tape.candles) or pass another --db."
        case .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
            message = "\(path) cannot be written: check its permissions, or pass another --db."
        case .SQLITE_CANTOPEN:
            message = "\(path) cannot be opened: check that its directory exists and is writable, or pass another --db."
        case .SQLITE_FULL:
            message = "\(path) cannot grow: the disk is full."
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            message = "\(path) stayed locked by another process for 30 s: stop the other writer or pass another --db."
        default:
            message = "\(path) cannot be used as a candle history (SQLite: \(error.message ?? "error \(error.resultCode.rawValue)")): pass another --db."
        }
    }
}
