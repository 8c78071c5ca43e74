import MarketData

/// The candle state machine of one input partition: trades in, candle updates out. No I/O.
///
/// Events are `mutating func`s; the caller carries out what they return:
/// - `ingest(_:sequence:now:)` applies one trade (the record's offset is its `sequence`).
/// - `tick(now:)` finalizes windows the watermark has passed and returns their final candles
///   (and corrections caused by late trades), then forgets windows older than the allowed lateness.
/// - `checkpoint(now:)` does what `tick` does and also returns every open window changed since its
///   last emission; afterwards every change from sequences `< emittedThrough` has been handed out.
///   Calling it once per emit interval gives "at most one update per key per emit interval".
///
/// Windows are tumbling per (exchange, symbol, interval), aligned to the epoch by trade time.
/// The watermark is the highest trade time seen minus the grace period; when nothing arrives, it
/// advances with the clock (`now`) for the purpose of marking windows final. Trade time and
/// sequence decide open (earliest `(time, sequence)`) and close (latest), so the result does not
/// depend on arrival order. Duplicates, by (exchange, symbol, tradeId), count once.
///
/// Untrusted input never traps: a record that is not a trade, a trade time outside
/// `Trade.validTimes`, or a trade whose volume sums would need more than 256 bits in any of its
/// windows is *rejected* — checked before anything is changed, so the windows hold exactly what a
/// batch computation over the accepted trades gives (`BatchCandles` applies the same rule) — and
/// reported to the caller (`Rejection`), which dead-letters it. Window arithmetic saturates.
///
/// Recovery (see docs/processing.md): a new instance replays the partition from `replayFrom` with
/// `resumeEmittingAt` set to the last committed `emittedThrough`; changes before that point are
/// rebuilt silently, because they were already emitted.
public struct CandleAggregator: Sendable {
    public let configuration: CandleAggregatorConfiguration
    public private(set) var counters = ProcessingCounters()

    /// Highest trade time seen (ms), `Int64.min` before the first trade.
    public private(set) var maxTradeTime: Int64 = .min
    /// Sequence after the last trade ingested (the next expected record offset).
    public private(set) var position: Int64
    /// While `position < suppressUntil`, changes are rebuilt without being emitted.
    public private(set) var suppressUntil: Int64

    private var lastArrival: Int64 = .min
    private let intervalMillis: [Int64]
    private let largestIntervalMillis: Int64
    /// Candles emitted by `advance` per interval index, folded into `counters` at its end.
    private var emittedPerInterval: [Int64]

    private var instrumentTable = InstrumentTable()
    private var instruments: [(exchange: Exchange, symbol: Symbol)] = []
    /// `instrument * intervals.count + k` → the window most recently used for that series.
    private var seriesCache: [SeriesCacheEntry] = []

    private var windows: [AggregateWindow] = []
    /// Per interval, what the trade being ingested would do to its window (see `ingest`).
    private var pending: [PendingUpdate] = []
    /// Per interval, the 256-bit sums of a pending update that left the fast form (`isWide`).
    private var pendingWide: [WindowSums] = []
    /// The sums of the windows that outgrew the 128-bit fast form (`AggregateWindow.wide`), and
    /// the free entries of this table.
    private var wideVolumes: [WideVolumes] = []
    private var freeWide: [Int32] = []
    private var freeSlots: [Int32] = []
    private var windowIndex: [WindowKey: Int32] = [:]
    /// Per slot, bumped when its window is evicted: entries of the heaps below that carry an
    /// older generation are stale and skipped.
    private var slotGeneration: [UInt32] = []
    /// Open (not final) held windows by end: a tick finalizes only the windows that are due.
    private var openByEnd = WindowHeap()
    /// Final held windows by end: eviction touches only windows past the allowed lateness.
    private var finalByEnd = WindowHeap()
    /// Held windows by first sequence (lazily cleaned): the checkpoint's `replayFrom`.
    private var bySequence = WindowHeap()
    /// Slots of the windows changed since their last emission (`isDirty`), each once.
    private var dirtySlots: [Int32] = []
    /// Trade ids per instrument and largest-interval bucket, for deduplication.
    private var seenIDs: [InstrumentIDs] = []

    /// A state machine for a partition read from `startSequence` on; changes from sequences
    /// below `resumeEmittingAt` are not emitted (they were, by a previous owner).
    public init(configuration: CandleAggregatorConfiguration, startSequence: Int64 = 0, resumeEmittingAt: Int64 = 0) {
        precondition(!configuration.intervals.isEmpty, "at least one interval")
        self.configuration = configuration
        self.position = startSequence
        self.suppressUntil = resumeEmittingAt > startSequence ? resumeEmittingAt : .min
        self.intervalMillis = configuration.intervals.map(\.milliseconds)
        self.emittedPerInterval = Array(repeating: 0, count: configuration.intervals.count)
        self.largestIntervalMillis = configuration.intervals.map(\.milliseconds).max()!
        self.pending = Array(repeating: PendingUpdate(), count: configuration.intervals.count)
        self.pendingWide = Array(repeating: WindowSums.zero, count: configuration.intervals.count)
    }

    /// The event-time watermark: highest trade time minus grace (`Int64.min` before any trade).
    public var watermark: Int64 { watermark(maxTradeTime: maxTradeTime) }

    private func watermark(maxTradeTime: Int64) -> Int64 {
        maxTradeTime == .min ? .min : saturatingSubtract(maxTradeTime, configuration.graceMilliseconds)
    }

    /// True while rebuilding state that a previous owner already emitted.
    public var isSuppressing: Bool { suppressUntil != .min && position < suppressUntil }

    /// Windows currently held (open, or final and within the allowed lateness).
    public var windowCount: Int { windowIndex.count }

    /// Where a new owner of this partition must start reading (the first sequence still
    /// contributing to a window held in memory), and up to where every change was emitted.
    public struct Checkpoint: Sendable, Hashable {
        public var replayFrom: Int64
        public var emittedThrough: Int64
        public init(replayFrom: Int64, emittedThrough: Int64) {
            self.replayFrom = replayFrom
            self.emittedThrough = emittedThrough
        }
    }

    /// What happened to one trade.
    public enum IngestOutcome: Sendable, Hashable {
        /// Applied to every interval's window.
        case applied
        /// Applied, and at least one of its windows was already final (a correction follows).
        case late
        /// Seen before (same exchange, symbol and tradeId): ignored.
        case duplicate
        /// Too old for at least one interval (beyond the allowed lateness): not applied there.
        case tooLate
        /// Not applied anywhere, nothing changed (a time outside `Trade.validTimes`, or sums that
        /// would overflow): the record is to be dead-lettered.
        case rejected(Rejection.Kind)
    }

    /// Why a record was not applied (the processor dead-letters it with `reason`).
    public struct Rejection: Error, Sendable, Hashable, CustomStringConvertible {
        public enum Kind: String, Sendable, Hashable, CaseIterable {
            /// Not a trade value (not JSON, a field missing or bad, another schema version).
            case notATrade = "not-a-trade"
            /// A trade whose time is outside `Trade.validTimes` (1970 through 9999).
            case timeOutOfRange = "time-out-of-range"
            /// A trade whose volume or quote volume sum would need more than 256 bits in one of its
            /// windows.
            case overflow = "overflow"
        }
        public var kind: Kind
        /// One sentence for logs and the dead-letter `error` header.
        public var reason: String
        public init(_ kind: Kind, _ reason: String) {
            self.kind = kind
            self.reason = reason
        }
        public var description: String { "\(kind.rawValue): \(reason)" }

        static let overflowReason =
            "adding this trade would make a volume sum of one of its candle windows need more than 256 bits; rejected before any window changed"
    }

    // MARK: - Events

    /// Applies one trade. `sequence` is the record's offset (strictly increasing); `now` the
    /// clock (ms since the epoch), used only to let an idle partition's watermark advance.
    @discardableResult
    public mutating func ingest(_ trade: Trade, sequence: Int64, now: Int64) -> IngestOutcome {
        guard Trade.validTimes.contains(trade.time) else { return reject(.timeOutOfRange, sequence: sequence) }
        var exchange = trade.exchange.name
        var symbol = trade.symbol.rawValue
        let instrument = exchange.withUTF8 { e in symbol.withUTF8 { s in instrumentID(exchange: e, symbol: s) } }
        return ingest(
            instrument: instrument, id: TradeKey(trade.tradeId), price: trade.price, quantity: trade.quantity,
            quoteQuantity: trade.quoteQuantity, side: trade.side, time: trade.time, sequence: sequence, now: now)
    }

    /// Decodes a `tape.trades` record value and applies it; false (and the record counted) when it
    /// was rejected (see `ingestRecord`). Same result as `Trade(json:)` + `ingest`, faster.
    @discardableResult
    public mutating func ingest(value: [UInt8], sequence: Int64, now: Int64) -> Bool {
        value.withUnsafeBufferPointer { ingestRecord(bytes: $0, sequence: sequence, now: now) } == nil
    }

    /// `ingest(value:sequence:now:)` on bytes in place (e.g. a slice of a packed consumer batch).
    @discardableResult
    public mutating func ingest(bytes b: UnsafeBufferPointer<UInt8>, sequence: Int64, now: Int64) -> Bool {
        ingestRecord(bytes: b, sequence: sequence, now: now) == nil
    }

    /// Decodes a `tape.trades` record value and applies it. Returns why it was rejected — not a
    /// trade, a time outside `Trade.validTimes`, sums that would overflow — or nil when it was
    /// applied (or was a duplicate, or too late: both normal). A rejected record changes nothing
    /// but `position`, and is counted.
    public mutating func ingestRecord(bytes b: UnsafeBufferPointer<UInt8>, sequence: Int64, now: Int64) -> Rejection? {
        let outcome: IngestOutcome
        if let f = TradeFields.decode(b) {  // never a time outside `Trade.validTimes`
            let instrument = instrumentID(exchange: UnsafeBufferPointer(rebasing: b[f.exchange]), symbol: UnsafeBufferPointer(rebasing: b[f.symbol]))
            let id = TradeKey(UnsafeBufferPointer(rebasing: b[f.tradeID]))
            outcome = ingest(
                instrument: instrument, id: id, price: f.price, quantity: f.quantity, quoteQuantity: f.quoteQuantity,
                side: f.side, time: f.time, sequence: sequence, now: now)
        } else {
            let trade: Trade
            do {
                trade = try Trade(json: Array(b))
            } catch {
                let kind: Rejection.Kind = error.code == .outOfRange ? .timeOutOfRange : .notATrade
                reject(kind, sequence: sequence)
                return Rejection(kind, error.description)
            }
            outcome = ingest(trade, sequence: sequence, now: now)
        }
        if case .rejected(let kind) = outcome { return Rejection(kind, kind == .overflow ? Rejection.overflowReason : "rejected (\(kind.rawValue))") }
        return nil
    }

    @discardableResult
    private mutating func ingest(
        instrument: Int32, id: TradeKey, price: ExactDecimal, quantity: ExactDecimal, quoteQuantity: ExactDecimal,
        side: Side, time: Int64, sequence: Int64, now: Int64
    ) -> IngestOutcome {
        guard Trade.validTimes.contains(time) else { return reject(.timeOutOfRange, sequence: sequence) }
        defer {
            position = saturatingAdd(sequence, 1)
            if suppressUntil != .min && position >= suppressUntil { endSuppression() }
        }
        lastArrival = now
        // The watermark as it is once this trade counts (committed below unless it is rejected).
        let newMaxTradeTime = max(maxTradeTime, time)
        let watermark = self.watermark(maxTradeTime: newMaxTradeTime)
        let lateness = configuration.allowedLatenessMilliseconds

        // Deduplicate across all intervals with one id set per largest-interval bucket.
        let bucketStart = floorStart(time, largestIntervalMillis)
        if saturatingAdd(bucketStart, saturatingAdd(saturatingMultiply(2, largestIntervalMillis), lateness)) <= watermark {
            maxTradeTime = newMaxTradeTime
            counters.droppedTooLate += 1
            return .tooLate
        }

        // First, without changing anything: the window of each interval and its sums with this
        // trade. If any sum would overflow, the trade is rejected and no window has changed.
        // Sums stay in the 128-bit fast form while they fit (the common case); a window whose sums
        // would leave it continues in the exact 256-bit form (the same values, bit for bit).
        let count = intervalMillis.count
        var overflows = false
        let q = quantity.int128Mantissa
        let qq = quoteQuantity.int128Mantissa
        let qs = quantity.scale
        let qqs = quoteQuantity.scale
        for k in 0..<count {
            let length = intervalMillis[k]
            let start = floorStart(time, length)
            if saturatingAdd(start, saturatingAdd(length, lateness)) <= watermark {
                pending[k].slot = PendingUpdate.tooLate
                continue
            }
            let slot = existingSlot(instrument: instrument, interval: k, start: start)
            pending[k].slot = slot
            pending[k].start = start
            let base: WindowSums
            let wide = slot >= 0 ? windows[Int(slot)].wide : -1
            if wide < 0 {
                let fast = slot >= 0 ? windows[Int(slot)].fastSums(side: side) : FastWindowSums.zero
                if let q, let qq, let sums = fast.adding(quantity: q, scale: qs, quoteQuantity: qq, scale: qqs) {
                    pending[k].isWide = false
                    pending[k].sums = sums
                    continue
                }
                base = fast.exact
            } else {
                let w = wideVolumes[Int(wide)]
                base = WindowSums(volume: w.volume, quoteVolume: w.quoteVolume, sideVolume: side == .buy ? w.buyVolume : w.sellVolume)
            }
            guard let sums = base.adding(quantity: quantity, quoteQuantity: quoteQuantity, side: side) else {
                overflows = true
                break
            }
            pending[k].isWide = true
            pendingWide[k] = sums
        }
        if overflows {
            // A duplicate stays a duplicate (it would not have been applied anyway).
            if seenIDs[Int(instrument)].contains(id, bucket: bucketStart) {
                maxTradeTime = newMaxTradeTime
                counters.duplicates += 1
                return .duplicate
            }
            counters.rejectedOverflows += 1
            return .rejected(.overflow)
        }
        maxTradeTime = newMaxTradeTime
        if !seenIDs[Int(instrument)].insert(id, bucket: bucketStart) {
            counters.duplicates += 1
            return .duplicate
        }

        var outcome = IngestOutcome.applied
        for k in 0..<count {
            var slot = pending[k].slot
            if slot == PendingUpdate.tooLate {
                outcome = .tooLate
                continue
            }
            if slot < 0 {
                slot = windowSlot(instrument: instrument, interval: k, start: pending[k].start, length: intervalMillis[k], sequence: sequence)
            }
            let i = Int(slot)
            if !windows[i].isDirty { dirtySlots.append(slot) }
            if sequence < windows[i].firstSequence {
                bySequence.push(WindowRef(key: sequence, slot: slot, generation: slotGeneration[i]))
            }
            if pending[k].isWide {
                storeWide(pendingWide[k], side: side, slot: i)
            } else {
                windows[i].store(pending[k].sums, side: side)
            }
            if windows[i].apply(price: price, time: time, sequence: sequence), outcome == .applied {
                outcome = .late
            }
        }
        switch outcome {
        case .applied: counters.trades += 1
        case .late:
            counters.trades += 1
            counters.lateTrades += 1
        case .tooLate:
            counters.trades += 1
            counters.droppedTooLate += 1
        case .duplicate, .rejected: break
        }
        return outcome
    }

    /// Moves past a record that is not a trade (unparseable: counted, not applied).
    public mutating func skip(sequence: Int64) {
        reject(.notATrade, sequence: sequence)
    }

    /// Moves past a rejected record: counted, nothing else changes.
    @discardableResult
    private mutating func reject(_ kind: Rejection.Kind, sequence: Int64) -> IngestOutcome {
        switch kind {
        case .notATrade: counters.unparseable += 1
        case .timeOutOfRange: counters.rejectedTimes += 1
        case .overflow: counters.rejectedOverflows += 1
        }
        position = saturatingAdd(sequence, 1)
        if suppressUntil != .min && position >= suppressUntil { endSuppression() }
        return .rejected(kind)
    }

    /// Marks windows the watermark has passed as final and returns the candles that must go out
    /// now: new finals and corrections of final windows. Open windows are left for `checkpoint`.
    public mutating func tick(now: Int64) -> [Candle] {
        var out: [Candle] = []
        advance(now: now, emitOpen: false, into: &out)
        return out
    }

    /// `tick`, plus every changed open window; returns the candles and the checkpoint that holds
    /// once they are delivered.
    public mutating func checkpoint(now: Int64) -> (candles: [Candle], checkpoint: Checkpoint) {
        var out: [Candle] = []
        advance(now: now, emitOpen: true, into: &out)
        var replayFrom = position
        if let first = firstSequenceHeld(), first < replayFrom { replayFrom = first }
        let emittedThrough = isSuppressing ? suppressUntil : position
        return (out, Checkpoint(replayFrom: replayFrom, emittedThrough: emittedThrough))
    }

    /// Marks the held windows of (exchange, symbol) that overlap `from...to` (ms, inclusive) as
    /// changed — a final one gets a new revision — so they go out again: a gap in their trades was
    /// found or repaired and their `complete` changes. Returns how many windows. Nothing while
    /// replaying (those windows were emitted by the previous owner).
    @discardableResult
    public mutating func revise(exchange: Exchange, symbol: Symbol, from: Int64, to: Int64) -> Int {
        guard !isSuppressing else { return 0 }
        guard let instrument = instruments.firstIndex(where: { $0.exchange == exchange && $0.symbol == symbol }) else { return 0 }
        var count = 0
        for slot in windowIndex.values {
            let i = Int(slot)
            guard windows[i].instrument == Int32(instrument), windows[i].start <= to, windows[i].end > from else { continue }
            if windows[i].isFinal && !windows[i].isDirty { windows[i].revision += 1 }
            if !windows[i].isDirty { dirtySlots.append(slot) }
            windows[i].isDirty = true
            count += 1
        }
        return count
    }

    /// The current value of every window held (for inspection and tests).
    public func currentCandles() -> [Candle] {
        windowIndex.values.map { candle(of: windows[Int($0)]) }
    }

    // MARK: - Internals

    private mutating func endSuppression() {
        suppressUntil = .min
        // Everything up to here was emitted by the previous owner: finalize by event time only,
        // forget what is too old, and start clean.
        let watermark = self.watermark
        finalizeWindows(endingBy: watermark, markDirty: false)
        for slot in windowIndex.values {
            let i = Int(slot)
            windows[i].isDirty = false
            windows[i].lastEmitted = .min
        }
        dirtySlots.removeAll(keepingCapacity: true)
        evict(watermark: watermark)
    }

    private mutating func advance(now: Int64, emitOpen: Bool, into out: inout [Candle]) {
        let watermark = self.watermark
        let suppressing = isSuppressing
        // An idle partition: assume event time moves on with the clock since the last trade.
        var finalizeBefore = watermark
        if !suppressing, maxTradeTime != .min, lastArrival != .min, now > lastArrival {
            finalizeBefore = saturatingAdd(watermark, saturatingSubtract(now, lastArrival))
        }
        // Only the windows that are due (by end) and the ones changed (`dirtySlots`) are touched.
        finalizeWindows(endingBy: finalizeBefore, markDirty: true)
        if suppressing {
            for slot in dirtySlots { windows[Int(slot)].isDirty = false }
            dirtySlots.removeAll(keepingCapacity: true)
        } else {
            var kept = 0
            for n in dirtySlots.indices {
                let slot = dirtySlots[n]
                let i = Int(slot)
                if windows[i].isFinal || emitOpen {
                    windows[i].isDirty = false
                    windows[i].lastEmitted = now
                    out.append(candle(of: windows[i]))
                    emittedPerInterval[Int(windows[i].interval)] += 1
                } else {
                    dirtySlots[kept] = slot
                    kept += 1
                }
            }
            dirtySlots.removeLast(dirtySlots.count - kept)
        }
        counters.candlesEmitted += Int64(out.count)
        for (index, count) in emittedPerInterval.enumerated() where count > 0 {
            counters.candlesEmittedByInterval[configuration.intervals[index], default: 0] += count
            emittedPerInterval[index] = 0
        }
        evict(watermark: watermark)
    }

    private mutating func evict(watermark: Int64) {
        guard watermark != .min else { return }
        let lateness = configuration.allowedLatenessMilliseconds
        // Final windows, oldest end first. (An open window can only be this old when the allowed
        // lateness is negative: then it goes too, as long as its change was emitted.)
        var heap = WindowHeap()
        swap(&heap, &finalByEnd)  // taken out while evicting (no copy)
        evictDue(from: &heap, lateness: lateness, watermark: watermark)
        swap(&heap, &finalByEnd)
        if lateness < 0 {
            swap(&heap, &openByEnd)
            evictDue(from: &heap, lateness: lateness, watermark: watermark)
            swap(&heap, &openByEnd)
        }
        // The first-sequence heap is cleaned lazily; keep it from growing past the windows held.
        if bySequence.count > 2 * windowIndex.count + 64 {
            bySequence.removeAll()
            for slot in windowIndex.values {
                let i = Int(slot)
                bySequence.push(WindowRef(key: windows[i].firstSequence, slot: slot, generation: slotGeneration[i]))
            }
        }
        let bucketHorizon = saturatingAdd(saturatingMultiply(2, largestIntervalMillis), lateness)
        for i in seenIDs.indices where seenIDs[i].buckets.contains(where: { saturatingAdd($0.start, bucketHorizon) <= watermark }) {
            seenIDs[i].buckets.removeAll { saturatingAdd($0.start, bucketHorizon) <= watermark }
        }
    }

    /// Marks the open windows ending at or before `end` final, in end order (`markDirty`: to be
    /// emitted).
    private mutating func finalizeWindows(endingBy end: Int64, markDirty: Bool) {
        while let top = openByEnd.min, top.key <= end {
            openByEnd.popMin()
            let i = Int(top.slot)
            guard slotGeneration[i] == top.generation, !windows[i].isFinal else { continue }
            windows[i].isFinal = true
            finalByEnd.push(top)
            if markDirty && !windows[i].isDirty {
                windows[i].isDirty = true
                dirtySlots.append(top.slot)
            }
        }
    }

    /// Evicts the windows of `heap` whose end plus `lateness` the watermark has passed, unless a
    /// change of theirs is still to be emitted (those stay, and are tried again next time).
    private mutating func evictDue(from heap: inout WindowHeap, lateness: Int64, watermark: Int64) {
        var keep: [WindowRef] = []
        while let top = heap.min, saturatingAdd(top.key, lateness) <= watermark {
            heap.popMin()
            let i = Int(top.slot)
            guard slotGeneration[i] == top.generation else { continue }
            if windows[i].isDirty {
                keep.append(top)
                continue
            }
            let key = WindowKey(instrument: windows[i].instrument, interval: windows[i].interval, start: windows[i].start)
            guard windowIndex.removeValue(forKey: key) != nil else { continue }
            let cache = Int(key.instrument) * intervalMillis.count + Int(key.interval)
            if seriesCache[cache].slot == top.slot { seriesCache[cache] = .empty }
            slotGeneration[i] &+= 1
            freeSlots.append(top.slot)
            if windows[i].wide >= 0 {
                freeWide.append(windows[i].wide)
                windows[i].wide = -1
            }
        }
        for entry in keep { heap.push(entry) }
    }

    /// The lowest first sequence of a held window (nil when none is held); drops stale entries.
    private mutating func firstSequenceHeld() -> Int64? {
        while let top = bySequence.min {
            let i = Int(top.slot)
            if slotGeneration[i] == top.generation && windows[i].firstSequence == top.key { return top.key }
            bySequence.popMin()
        }
        return nil
    }

    private mutating func instrumentID(exchange: UnsafeBufferPointer<UInt8>, symbol: UnsafeBufferPointer<UInt8>) -> Int32 {
        if let id = instrumentTable.find(exchange: exchange, symbol: symbol) { return id }
        let id = Int32(instruments.count)
        instruments.append((Exchange(String(decoding: exchange, as: UTF8.self)), Symbol(normalizing: symbol)))
        instrumentTable.insert(exchange: exchange, symbol: symbol, id: id)
        seenIDs.append(InstrumentIDs())
        seriesCache.append(contentsOf: repeatElement(.empty, count: intervalMillis.count))
        return id
    }

    /// The slot of the window of (instrument, interval, start) if it is held, else -1; changes nothing.
    private func existingSlot(instrument: Int32, interval k: Int, start: Int64) -> Int32 {
        let cached = seriesCache[Int(instrument) * intervalMillis.count + k]
        if cached.start == start { return cached.slot }
        return windowIndex[WindowKey(instrument: instrument, interval: Int32(k), start: start)] ?? -1
    }

    private mutating func windowSlot(instrument: Int32, interval k: Int, start: Int64, length: Int64, sequence: Int64) -> Int32 {
        let cache = Int(instrument) * intervalMillis.count + k
        let cached = seriesCache[cache]
        if cached.start == start { return cached.slot }
        let key = WindowKey(instrument: instrument, interval: Int32(k), start: start)
        if let slot = windowIndex[key] {
            seriesCache[cache] = SeriesCacheEntry(start: start, slot: slot)
            return slot
        }
        let window = AggregateWindow(
            instrument: instrument, interval: Int32(k), start: start, end: saturatingAdd(start, length), firstSequence: sequence)
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            windows[Int(slot)] = window
        } else {
            slot = Int32(windows.count)
            windows.append(window)
            slotGeneration.append(0)
        }
        windowIndex[key] = slot
        let generation = slotGeneration[Int(slot)]
        let end = window.end
        openByEnd.push(WindowRef(key: end, slot: slot, generation: generation))
        bySequence.push(WindowRef(key: sequence, slot: slot, generation: generation))
        seriesCache[cache] = SeriesCacheEntry(start: start, slot: slot)
        return slot
    }

    /// Stores a trade's 256-bit sums in window `i`, moving the window to the wide table first if
    /// it was still in the fast form.
    private mutating func storeWide(_ sums: WindowSums, side: Side, slot i: Int) {
        var wide = windows[i].wide
        if wide < 0 {
            let volumes = windows[i].exactVolumes
            if let free = freeWide.popLast() {
                wide = free
                wideVolumes[Int(wide)] = volumes
            } else {
                wide = Int32(wideVolumes.count)
                wideVolumes.append(volumes)
            }
            windows[i].wide = wide
        }
        let w = Int(wide)
        wideVolumes[w].volume = sums.volume
        wideVolumes[w].quoteVolume = sums.quoteVolume
        switch side {
        case .buy: wideVolumes[w].buyVolume = sums.sideVolume
        case .sell: wideVolumes[w].sellVolume = sums.sideVolume
        }
    }

    private func candle(of w: AggregateWindow) -> Candle {
        let instrument = instruments[Int(w.instrument)]
        let v = w.wide >= 0 ? wideVolumes[Int(w.wide)] : w.exactVolumes
        return Candle(
            exchange: instrument.exchange, symbol: instrument.symbol, interval: configuration.intervals[Int(w.interval)],
            start: w.start, end: w.end, open: w.open, high: w.high, low: w.low, close: w.close,
            volume: v.volume, quoteVolume: v.quoteVolume, buyVolume: v.buyVolume, sellVolume: v.sellVolume,
            trades: w.trades, vwap: Candle.vwap(quoteVolume: v.quoteVolume, volume: v.volume),
            revision: w.revision, isFinal: w.isFinal)
    }

    /// How many held windows keep their sums in the 256-bit form (for tests).
    var wideWindowCount: Int { wideVolumes.count - freeWide.count }
}
