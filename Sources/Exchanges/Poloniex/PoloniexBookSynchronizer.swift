import MarketData

/// One Poloniex market's `book_lv2` book, kept by the venue's rule: a snapshot replaces the book;
/// an update applies iff its `lastId` equals the `id` of the previous message of the market,
/// otherwise the book is lost and the channel is resubscribed (which makes Poloniex send a fresh
/// snapshot). An update whose `id` is not above its `lastId` cannot be vouched for either.
/// Records carry `id` as their `sequence`.
///
/// While the book is unknown (before the first snapshot, after a break or a reconnect) updates
/// are dropped without a record: the snapshot the subscription brings publishes the book whole,
/// with a `tape.gaps` record for the interval when it had been lost.
public struct PoloniexBookSynchronizer: BookSynchronizer {
    var keeper: BookKeeper
    /// `id` of the last message applied; nil while unsynchronized.
    public private(set) var lastId: Int64?
    /// Updates dropped while waiting for a snapshot.
    public private(set) var droppedWhileUnsynchronized = 0

    public init(exchange: Exchange, market: ListedMarket) {
        keeper = BookKeeper(exchange: exchange, market: market)
    }

    public var book: OrderBook? { keeper.book }
    public var sequence: String? { keeper.sequence }

    public mutating func receive(_ frame: BookFrame) -> BookSyncStep {
        switch frame.kind {
        case .snapshot:
            guard let id = frame.sequence else {
                return lose(.invalid, "a snapshot without an id", frame.receivedAt)
            }
            var step = keeper.snapshot(frame, sequence: String(id))
            if keeper.isSynchronized {
                lastId = id
            } else {
                lastId = nil
                step.action = .resubscribe(reason: "the snapshot is crossed")
            }
            return step
        case .update:
            guard keeper.isSynchronized, let lastId else {
                droppedWhileUnsynchronized &+= 1
                return .nothing
            }
            guard let id = frame.sequence, let previous = frame.previousSequence else {
                return lose(.invalid, "an update without id or lastId", frame.receivedAt)
            }
            guard id > previous else {
                return lose(.invalid, "update id \(id) does not advance on its lastId \(previous)", frame.receivedAt)
            }
            guard previous == lastId else {
                return lose(.sequenceBreak, "update lastId \(previous) does not follow id \(lastId)", frame.receivedAt)
            }
            var step = keeper.update(frame, sequence: String(id))
            if keeper.isSynchronized {
                self.lastId = id
            } else {
                self.lastId = nil
                step.action = .resubscribe(reason: "update \(id) crossed the book")
            }
            return step
        }
    }

    /// Poloniex needs no REST snapshot: one given anyway is refused without touching the book.
    public mutating func receiveSnapshot(_ frame: BookFrame) -> BookSyncStep { .nothing }

    public mutating func reset(receivedAt: Int64) -> BookSyncStep {
        lastId = nil
        return keeper.lose(reason: .reconnect, detail: "the connection was reset", receivedAt: receivedAt)
    }

    /// Throws the book away and asks for a fresh snapshot.
    mutating func lose(_ reason: BookResyncReason, _ detail: String, _ receivedAt: Int64) -> BookSyncStep {
        lastId = nil
        var step = keeper.lose(reason: reason, detail: detail, receivedAt: receivedAt)
        step.action = .resubscribe(reason: detail)
        return step
    }
}
