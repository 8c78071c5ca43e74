/// Rebuilds one market's book at a point in time from `tape.books` records read in log order (what
/// `tape books` does): records after `until` are ignored, updates before the first snapshot are
/// skipped (counted), and from the first snapshot on every record is applied. Pure: the caller
/// reads Kafka.
public struct BookReplay: Sendable {
    public let key: String
    /// Records with a time after this (ms since the epoch) are not applied; nil = every record.
    public let until: Int64?
    public private(set) var book: OrderBook?
    public private(set) var sequence: String?
    /// Time (ms) of the last record applied.
    public private(set) var time: Int64?
    /// Time (ms) of the snapshot the book was last rebuilt from.
    public private(set) var snapshotTime: Int64?
    public private(set) var snapshotsApplied = 0
    public private(set) var updatesApplied = 0
    /// Updates read before any snapshot of the key (the replay started too late for them).
    public private(set) var updatesBeforeSnapshot = 0
    /// Records of the key that are not valid book values.
    public private(set) var invalidRecords = 0
    /// Times the book was crossed after a record (never, for records written by `tape ingest`).
    public private(set) var crossedAfterRecord = 0

    /// `key` is `exchange:SYMBOL` ("binance:BTC-USDT").
    public init(key: String, until: Int64?) {
        self.key = key
        self.until = until
    }

    /// Takes one record of the topic (any key). Returns false once a record of the key is newer
    /// than `until`: this partition holds nothing more to apply.
    @discardableResult
    public mutating func consume(key recordKey: [UInt8]?, value: [UInt8]?) -> Bool {
        guard let recordKey, recordKey.elementsEqual(key.utf8), let value else { return true }
        guard let event = try? BookEvent(json: value) else {
            invalidRecords += 1
            return true
        }
        if let until, event.time > until { return false }
        switch event.kind {
        case .snapshot:
            book = OrderBook(bids: event.bids, asks: event.asks)
            snapshotsApplied += 1
            snapshotTime = event.time
        case .update:
            guard book != nil else {
                updatesBeforeSnapshot += 1
                return true
            }
            book?.apply(bids: event.bids, asks: event.asks)
            updatesApplied += 1
        }
        if book?.isCrossed == true { crossedAfterRecord += 1 }
        sequence = event.sequence
        time = event.time
        return true
    }
}
