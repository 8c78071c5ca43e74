import MarketData

/// One Coinbase Advanced Trade product's order book from the `level2` channel.
///
/// The channel sends a `snapshot` event right after subscribing, then `update` events with the
/// absolute `new_quantity` of each changed level ("0" removes it). It has no per-product sequence:
/// the only loss detector is the connection-wide `sequence_num`, which numbers every message of the
/// connection one by one. A skipped, repeated or backward number means a message was lost or
/// reordered — it may have been this product's update — so every book of the connection is
/// suspect. `CoinbaseFrameParser` sees every frame and stamps each book frame with the run of
/// unbroken numbering it belongs to (`firstSequence` = the `sequence_num` that run started at;
/// `sequence` = the message's own `sequence_num`). This machine:
///
/// - takes a `snapshot` frame as the whole book (publishes it; a gap if the book had been lost);
/// - applies an `update` only when it belongs to the run its snapshot came in (no break on the
///   connection since) and its `sequence` is not below the last one applied;
/// - otherwise throws the book away (`sequence_break`) and answers `.resubscribe`: the
///   unsubscribe + subscribe of `Coinbase.bookResubscribeMessages` makes the venue send a fresh
///   snapshot. Updates of the same run that arrive before it (still in flight from the old
///   subscription) are ignored; an update of yet another run means a message — maybe the awaited
///   snapshot — was lost again, so it asks again;
/// - a crossed book (snapshot or after an update) is thrown away the same way.
///
/// Records carry `sequence` = the message's `sequence_num`.
public struct CoinbaseBookSynchronizer: BookSynchronizer {
    enum State: Sendable, Hashable {
        /// No book. `run`: the run in which the awaited snapshot was asked for; nil for the first
        /// subscription of a connection.
        case awaitingSnapshot(run: Int64?)
        /// The book is live: it came in `run`, and `sequence` is the last `sequence_num` applied.
        case synchronized(run: Int64, sequence: Int64)
    }

    private(set) var keeper: BookKeeper
    private(set) var state: State = .awaitingSnapshot(run: nil)

    public init(exchange: Exchange, market: ListedMarket) {
        keeper = BookKeeper(exchange: exchange, market: market)
    }

    public var book: OrderBook? { keeper.book }
    public var sequence: String? { keeper.sequence }

    public mutating func receive(_ frame: BookFrame) -> BookSyncStep {
        guard let sequence = frame.sequence, let run = frame.firstSequence, run <= sequence else {
            return resubscribe(.invalid, detail: "a level2 message without its sequence_num", frame: frame, run: nil)
        }
        switch frame.kind {
        case .snapshot:
            var step = keeper.snapshot(frame, sequence: String(sequence))
            if step.resyncReason != nil {
                state = .awaitingSnapshot(run: run)
                step.action = .resubscribe(reason: "the level2 snapshot is crossed")
                return step
            }
            state = .synchronized(run: run, sequence: sequence)
            return step
        case .update:
            switch state {
            case .synchronized(let bookRun, let last):
                guard run == bookRun, sequence >= last else {
                    return resubscribe(
                        .sequenceBreak,
                        detail: "sequence_num broke on the connection (message \(sequence), unbroken since \(run); book from \(bookRun))",
                        frame: frame, run: run)
                }
                var step = keeper.update(frame, sequence: String(sequence))
                if step.resyncReason != nil {
                    state = .awaitingSnapshot(run: run)
                    step.action = .resubscribe(reason: "a level2 update crossed the book")
                    return step
                }
                state = .synchronized(run: bookRun, sequence: sequence)
                return step
            case .awaitingSnapshot(let asked):
                if let asked, asked == run {
                    return .nothing  // the old subscription's tail; the snapshot is on its way
                }
                if asked == nil {
                    return resubscribe(.invalid, detail: "a level2 update before any snapshot", frame: frame, run: run)
                }
                return resubscribe(
                    .sequenceBreak, detail: "sequence_num broke while the level2 snapshot was awaited", frame: frame, run: run)
            }
        }
    }

    /// Coinbase books come whole from the channel: there is no REST snapshot to receive.
    public mutating func receiveSnapshot(_ frame: BookFrame) -> BookSyncStep { .nothing }

    public mutating func reset(receivedAt: Int64) -> BookSyncStep {
        var step = BookSyncStep.nothing
        if keeper.lastEventTime != nil {
            step = keeper.lose(reason: .reconnect, detail: "the connection was reset", receivedAt: receivedAt)
        }
        state = .awaitingSnapshot(run: nil)
        return step
    }

    /// Throws the book away (if any) and asks for a fresh snapshot.
    private mutating func resubscribe(_ reason: BookResyncReason, detail: String, frame: BookFrame, run: Int64?) -> BookSyncStep {
        var step = keeper.lose(reason: reason, detail: detail, receivedAt: frame.receivedAt)
        if step.resyncReason == nil { step.resyncReason = reason }
        state = .awaitingSnapshot(run: run)
        step.action = .resubscribe(reason: detail)
        return step
    }
}
