import MarketData

/// One Binance spot market's order book, kept by the procedure of Binance's spot WebSocket Streams
/// docs, "How to manage a local order book correctly":
///
/// 1. buffer the `<symbol>@depth@100ms` events; note the `U` of the first one;
/// 2. get a REST depth snapshot (`.fetchSnapshot`: `Binance.bookSnapshotPath`, `GET /api/v3/depth`);
/// 3. if its `lastUpdateId` is below that first `U`, get another one;
/// 4. drop the buffered events whose `u` ≤ `lastUpdateId`; the first one left must straddle
///    `lastUpdateId` + 1 (`U` ≤ `lastUpdateId` + 1 ≤ `u`);
/// 5. set the book to the snapshot and apply the buffered events, then every later one: each
///    event's `U` must be the previous event's `u` + 1. An event whose `u` is at or below the
///    book's update id is old and ignored; any other break throws the book away and starts over
///    from step 1 (a `sequence_break` resync).
///
/// Quantities are absolute; zero removes the level; removing a level Tape does not hold is normal
/// (the snapshot has a limited number of levels a side). Records carry `sequence` = `u` (the
/// snapshot's `lastUpdateId`).
///
/// Peers are untrusted: the buffer holds at most `maximumBufferedEvents` events and
/// `maximumBufferedLevels` levels; past either, it keeps only the newest event and asks for a
/// snapshot again. At most one snapshot request is outstanding; a snapshot nobody asked for is
/// ignored.
public struct BinanceBookSynchronizer: BookSynchronizer {
    /// Most depth events buffered while a snapshot is awaited (100 s of a 100 ms stream).
    public static let maximumBufferedEvents = 1_000
    /// Most price levels buffered while a snapshot is awaited (about 16 MB; a busy market's
    /// 100 ms event carries tens to a few hundred levels).
    public static let maximumBufferedLevels = 250_000

    enum State: Sendable, Hashable {
        /// No book and nothing buffered: the next event starts the procedure.
        case idle
        /// Buffering events (maybe none yet) until the requested snapshot arrives.
        case buffering
        /// The book is live. `updateId` is the `u` of the last event applied (or the snapshot's
        /// `lastUpdateId`); `straddled` is false until the first event after the snapshot is applied.
        case synchronized(updateId: Int64, straddled: Bool)
    }

    private(set) var keeper: BookKeeper
    private(set) var state: State = .idle
    /// Events received while the snapshot is awaited, each following the previous one (`U` = `u` + 1).
    private(set) var buffer: [BookFrame] = []
    private var bufferedLevels = 0
    /// True from a `.fetchSnapshot` until its answer (or failure) arrives.
    private(set) var snapshotRequested = false

    public init(exchange: Exchange, market: ListedMarket) {
        keeper = BookKeeper(exchange: exchange, market: market)
    }

    public var book: OrderBook? { keeper.book }
    public var sequence: String? { keeper.sequence }

    public mutating func receive(_ frame: BookFrame) -> BookSyncStep {
        guard frame.kind == .update, let first = frame.firstSequence, let last = frame.sequence, first <= last else {
            return resynchronize(.invalid, detail: "a depth event without valid U and u", frame: frame)
        }
        switch state {
        case .idle:
            state = .buffering
            startBuffer(with: frame)
            return requestSnapshot()
        case .buffering:
            return buffering(frame, first: first, last: last)
        case .synchronized(let updateId, let straddled):
            if last <= updateId {
                return .nothing  // wholly before the book's update id: old news, ignored
            }
            let follows = straddled ? first == updateId &+ 1 : first <= updateId &+ 1
            guard follows else {
                let expected = updateId &+ 1
                return resynchronize(
                    .sequenceBreak, detail: "depthUpdate U \(first) where \(straddled ? "" : "at most ")\(expected) was due",
                    frame: frame)
            }
            var step = keeper.update(frame, sequence: String(last))
            if step.resyncReason != nil {
                // Crossed: the keeper threw the book away; start over with a fresh snapshot.
                state = .buffering
                clearBuffer()
                step.action = requestSnapshot().action
                return step
            }
            state = .synchronized(updateId: last, straddled: true)
            return step
        }
    }

    public mutating func receiveSnapshot(_ frame: BookFrame) -> BookSyncStep {
        guard snapshotRequested else { return .nothing }
        snapshotRequested = false
        guard case .buffering = state else { return .nothing }
        guard frame.kind == .snapshot, let lastUpdateId = frame.sequence, lastUpdateId >= 0 else {
            return requestSnapshot()
        }
        // Step 3: a snapshot older than the first buffered event cannot be joined to the stream.
        if let firstBuffered = buffer.first?.firstSequence, lastUpdateId < firstBuffered {
            return requestSnapshot()
        }
        // Step 4: drop what the snapshot already holds.
        let pending = buffer.filter { ($0.sequence ?? .min) > lastUpdateId }
        clearBuffer()
        var step = keeper.snapshot(frame, sequence: String(lastUpdateId))
        if step.resyncReason != nil {
            // A crossed snapshot: keep the events that follow it (still one run) and ask again.
            for event in pending {
                buffer.append(event)
                bufferedLevels &+= event.bids.count &+ event.asks.count
            }
            step.action = requestSnapshot().action
            return step
        }
        state = .synchronized(updateId: lastUpdateId, straddled: false)
        // Step 5: the buffered events, through the same rules as live ones.
        for event in pending {
            step.merge(receive(event))
        }
        return step
    }

    public mutating func snapshotFailed(reason: String, receivedAt: Int64) -> BookSyncStep {
        guard snapshotRequested else { return .nothing }
        snapshotRequested = false
        guard case .buffering = state else { return .nothing }
        return requestSnapshot()
    }

    /// A new connection: the book is unknown, and its snapshot is asked for at once (the stream
    /// is subscribed before the request goes out), so a quiet market — whose diff stream may send
    /// nothing for a long time — is synchronized too. A snapshot that arrives before any event is
    /// joined by the first event that straddles its `lastUpdateId + 1`.
    public mutating func reset(receivedAt: Int64) -> BookSyncStep {
        var step = BookSyncStep.nothing
        if keeper.lastEventTime != nil {
            step = keeper.lose(reason: .reconnect, detail: "the connection was reset", receivedAt: receivedAt)
        }
        state = .buffering
        clearBuffer()
        snapshotRequested = false
        step.action = requestSnapshot().action
        return step
    }

    // MARK: Steps

    /// Buffers one event while the snapshot is awaited.
    private mutating func buffering(_ frame: BookFrame, first: Int64, last: Int64) -> BookSyncStep {
        if let previous = buffer.last?.sequence {
            if last <= previous { return .nothing }  // already buffered
            if first != previous &+ 1 {
                // The buffer broke before the snapshot came: what it holds can never be joined.
                startBuffer(with: frame)
                return requestSnapshot()
            }
        }
        let levels = frame.bids.count &+ frame.asks.count
        if buffer.count >= Self.maximumBufferedEvents || bufferedLevels &+ levels > Self.maximumBufferedLevels {
            // The snapshot is too slow (or was lost): keep the newest event and ask again.
            startBuffer(with: frame)
            snapshotRequested = false
            return requestSnapshot()
        }
        buffer.append(frame)
        bufferedLevels &+= levels
        return requestSnapshot()
    }

    /// Throws the book away (if any) and restarts the procedure with `frame` as the first event.
    private mutating func resynchronize(_ reason: BookResyncReason, detail: String, frame: BookFrame) -> BookSyncStep {
        var step = keeper.lose(reason: reason, detail: detail, receivedAt: frame.receivedAt)
        if step.resyncReason == nil { step.resyncReason = reason }
        state = .buffering
        if frame.kind == .update, frame.firstSequence != nil, frame.sequence != nil {
            startBuffer(with: frame)
        } else {
            clearBuffer()
        }
        step.action = requestSnapshot().action
        return step
    }

    /// `.fetchSnapshot` unless a request is already out.
    private mutating func requestSnapshot() -> BookSyncStep {
        guard !snapshotRequested else { return .nothing }
        snapshotRequested = true
        return BookSyncStep(action: .fetchSnapshot)
    }

    private mutating func startBuffer(with frame: BookFrame) {
        buffer = [frame]
        bufferedLevels = frame.bids.count &+ frame.asks.count
    }

    private mutating func clearBuffer() {
        buffer = []
        bufferedLevels = 0
    }
}

extension BookSyncStep {
    /// Appends a later step: its records and gaps after these, its action if it has one, the first
    /// resync reason.
    fileprivate mutating func merge(_ later: BookSyncStep) {
        events += later.events
        gaps += later.gaps
        if later.action != .none { action = later.action }
        if resyncReason == nil { resyncReason = later.resyncReason }
    }
}
