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

    private var instrumentTable = InstrumentTable()
    private var instruments: [(exchange: Exchange, symbol: Symbol)] = []
    /// `instrument * intervals.count + k` → the window most recently used for that series.
    private var seriesCache: [SeriesCacheEntry] = []

    private var windows: [Window] = []
    /// Per interval, what the trade being ingested would do to its window (see `ingest`).
    private var pending: [PendingWindow] = []
    private var freeSlots: [Int32] = []
    private var windowIndex: [WindowKey: Int32] = [:]
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
        self.largestIntervalMillis = configuration.intervals.map(\.milliseconds).max()!
        self.pending = Array(repeating: PendingWindow(), count: configuration.intervals.count)
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
        let count = intervalMillis.count
        var overflows = false
        for k in 0..<count {
            let length = intervalMillis[k]
            let start = floorStart(time, length)
            if saturatingAdd(start, saturatingAdd(length, lateness)) <= watermark {
                pending[k].slot = PendingWindow.tooLate
                continue
            }
            let slot = existingSlot(instrument: instrument, interval: k, start: start)
            let sums: WindowSums?
            if slot >= 0 {
                sums = windows[Int(slot)].sums(adding: quantity, quoteQuantity: quoteQuantity, side: side)
            } else {
                sums = WindowSums.zero.adding(quantity: quantity, quoteQuantity: quoteQuantity, side: side)
            }
            guard let sums else {
                overflows = true
                break
            }
            pending[k].slot = slot
            pending[k].start = start
            pending[k].sums = sums
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
            if slot == PendingWindow.tooLate {
                outcome = .tooLate
                continue
            }
            if slot < 0 {
                slot = windowSlot(instrument: instrument, interval: k, start: pending[k].start, length: intervalMillis[k], sequence: sequence)
            }
            if windows[Int(slot)].apply(price: price, sums: pending[k].sums, side: side, time: time, sequence: sequence),
                outcome == .applied
            {
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
        for slot in windowIndex.values where windows[Int(slot)].firstSequence < replayFrom {
            replayFrom = windows[Int(slot)].firstSequence
        }
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
        for slot in Array(windowIndex.values) {
            let i = Int(slot)
            if !windows[i].isFinal && windows[i].end <= watermark { windows[i].isFinal = true }
            windows[i].isDirty = false
            windows[i].lastEmitted = .min
        }
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
        for slot in windowIndex.values {
            let i = Int(slot)
            if !windows[i].isFinal && windows[i].end <= finalizeBefore {
                windows[i].isFinal = true
                windows[i].isDirty = true
            }
            if suppressing {
                windows[i].isDirty = false
                continue
            }
            if windows[i].isDirty && (windows[i].isFinal || emitOpen) {
                windows[i].isDirty = false
                windows[i].lastEmitted = now
                out.append(candle(of: windows[i]))
            }
        }
        counters.candlesEmitted += Int64(out.count)
        evict(watermark: watermark)
    }

    private mutating func evict(watermark: Int64) {
        guard watermark != .min else { return }
        let lateness = configuration.allowedLatenessMilliseconds
        var gone: [WindowKey] = []
        for (key, slot) in windowIndex {
            let w = windows[Int(slot)]
            if saturatingAdd(w.end, lateness) <= watermark && !w.isDirty { gone.append(key) }
        }
        for key in gone {
            let slot = windowIndex.removeValue(forKey: key)!
            let cache = Int(key.instrument) * intervalMillis.count + Int(key.interval)
            if seriesCache[cache].slot == slot { seriesCache[cache] = .empty }
            freeSlots.append(slot)
        }
        let bucketHorizon = saturatingAdd(saturatingMultiply(2, largestIntervalMillis), lateness)
        for i in seenIDs.indices where seenIDs[i].buckets.contains(where: { saturatingAdd($0.start, bucketHorizon) <= watermark }) {
            seenIDs[i].buckets.removeAll { saturatingAdd($0.start, bucketHorizon) <= watermark }
        }
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
        let window = Window(
            instrument: instrument, interval: Int32(k), start: start, end: saturatingAdd(start, length), firstSequence: sequence)
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            windows[Int(slot)] = window
        } else {
            slot = Int32(windows.count)
            windows.append(window)
        }
        windowIndex[key] = slot
        seriesCache[cache] = SeriesCacheEntry(start: start, slot: slot)
        return slot
    }

    private func candle(of w: Window) -> Candle {
        let instrument = instruments[Int(w.instrument)]
        return Candle(
            exchange: instrument.exchange, symbol: instrument.symbol, interval: configuration.intervals[Int(w.interval)],
            start: w.start, end: w.end, open: w.open, high: w.high, low: w.low, close: w.close,
            volume: w.volume, quoteVolume: w.quoteVolume, buyVolume: w.buyVolume, sellVolume: w.sellVolume,
            trades: w.trades, vwap: Candle.vwap(quoteVolume: w.quoteVolume, volume: w.volume),
            revision: w.revision, isFinal: w.isFinal)
    }
}

/// Start of the window of `length` ms holding `time` (floor division, negative times too;
/// `Int64.min` where the true start is below it, never a trap).
@inline(__always)
func floorStart(_ time: Int64, _ length: Int64) -> Int64 {
    let r = time % length
    if r >= 0 { return time - r }
    return saturatingSubtract(time - r, length)
}

/// `a + b`, clamped to `Int64.min ... Int64.max` instead of trapping.
@inline(__always)
func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? .max : .min) : sum
}

/// `a - b`, clamped to `Int64.min ... Int64.max` instead of trapping.
@inline(__always)
func saturatingSubtract(_ a: Int64, _ b: Int64) -> Int64 {
    let (difference, overflow) = a.subtractingReportingOverflow(b)
    return overflow ? (b < 0 ? .max : .min) : difference
}

/// `a × b`, clamped to `Int64.min ... Int64.max` instead of trapping.
@inline(__always)
func saturatingMultiply(_ a: Int64, _ b: Int64) -> Int64 {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? ((a < 0) != (b < 0) ? .min : .max) : product
}

/// A window's volume sums: base volume, quote volume, and the taker side's volume.
struct WindowSums: Sendable {
    var volume: ExactDecimal
    var quoteVolume: ExactDecimal
    /// `buyVolume` or `sellVolume`, whichever side the trade is on.
    var sideVolume: ExactDecimal

    static let zero = WindowSums(volume: .zero, quoteVolume: .zero, sideVolume: .zero)

    /// The sums with one more trade (this value's `sideVolume` being that trade's side's), or nil
    /// when one of them would need more than 256 bits.
    @inline(__always)
    func adding(quantity: ExactDecimal, quoteQuantity: ExactDecimal, side: Side) -> WindowSums? {
        do throws(DecimalError) {
            return WindowSums(
                volume: try volume.adding(quantity), quoteVolume: try quoteVolume.adding(quoteQuantity),
                sideVolume: try sideVolume.adding(quantity))
        } catch {
            return nil
        }
    }
}

/// What the trade being ingested does to one interval's window: which slot (`tooLate`, or -1 for
/// a window still to be created) and the sums it leaves there.
struct PendingWindow: Sendable {
    static let tooLate: Int32 = -2
    var slot: Int32 = -1
    var start: Int64 = 0
    var sums = WindowSums.zero
}

/// One window's running aggregate.
struct Window: Sendable {
    var instrument: Int32
    var interval: Int32
    var start: Int64
    var end: Int64
    /// Lowest sequence (offset) of a trade applied to this window.
    var firstSequence: Int64
    var open = ExactDecimal.zero
    var high = ExactDecimal.zero
    var low = ExactDecimal.zero
    var close = ExactDecimal.zero
    var openTime: Int64 = .max
    var openSequence: Int64 = .max
    var closeTime: Int64 = .min
    var closeSequence: Int64 = .min
    var volume = ExactDecimal.zero
    var quoteVolume = ExactDecimal.zero
    var buyVolume = ExactDecimal.zero
    var sellVolume = ExactDecimal.zero
    var trades: Int64 = 0
    /// Late trades applied after the window was final.
    var revision: Int64 = 0
    var isFinal = false
    /// Changed since it was last emitted.
    var isDirty = false
    var lastEmitted: Int64 = .min

    init(instrument: Int32, interval: Int32, start: Int64, end: Int64, firstSequence: Int64) {
        self.instrument = instrument
        self.interval = interval
        self.start = start
        self.end = end
        self.firstSequence = firstSequence
    }

    /// The window's sums with one more trade, or nil when one would need more than 256 bits.
    @inline(__always)
    func sums(adding quantity: ExactDecimal, quoteQuantity: ExactDecimal, side: Side) -> WindowSums? {
        WindowSums(volume: volume, quoteVolume: quoteVolume, sideVolume: side == .buy ? buyVolume : sellVolume)
            .adding(quantity: quantity, quoteQuantity: quoteQuantity, side: side)
    }

    /// Adds a trade whose sums were computed (and checked) by `sums(adding:...)`; returns true
    /// when the window was already final (a late trade).
    @inline(__always)
    mutating func apply(price: ExactDecimal, sums: WindowSums, side: Side, time: Int64, sequence: Int64) -> Bool {
        if trades == 0 {
            open = price
            high = price
            low = price
            close = price
            openTime = time
            openSequence = sequence
            closeTime = time
            closeSequence = sequence
        } else {
            if price > high { high = price }
            if price < low { low = price }
            if time < openTime || (time == openTime && sequence < openSequence) {
                open = price
                openTime = time
                openSequence = sequence
            }
            if time > closeTime || (time == closeTime && sequence > closeSequence) {
                close = price
                closeTime = time
                closeSequence = sequence
            }
        }
        if sequence < firstSequence { firstSequence = sequence }
        volume = sums.volume
        quoteVolume = sums.quoteVolume
        switch side {
        case .buy: buyVolume = sums.sideVolume
        case .sell: sellVolume = sums.sideVolume
        }
        trades += 1
        isDirty = true
        if isFinal {
            revision += 1
            return true
        }
        return false
    }
}

/// (exchange, symbol) bytes → instrument id, without building strings: open addressing over an
/// FNV-1a hash, keys compared byte for byte.
struct InstrumentTable: Sendable {
    private var keys: [[UInt8]] = []
    private var ids: [Int32] = []
    private var slots: [Int32] = Array(repeating: -1, count: 64)

    @inline(__always)
    private static func hash(_ exchange: UnsafeBufferPointer<UInt8>, _ symbol: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for c in exchange { h = (h ^ UInt64(c)) &* 0x100_0000_01b3 }
        h = (h ^ 0x3A) &* 0x100_0000_01b3
        for c in symbol { h = (h ^ UInt64(c)) &* 0x100_0000_01b3 }
        return h
    }

    @inline(__always)
    private func matches(_ key: [UInt8], _ exchange: UnsafeBufferPointer<UInt8>, _ symbol: UnsafeBufferPointer<UInt8>) -> Bool {
        guard key.count == exchange.count + 1 + symbol.count else { return false }
        return key.withUnsafeBufferPointer { k in
            for i in 0..<exchange.count where k[i] != exchange[i] { return false }
            if k[exchange.count] != 0x3A { return false }
            let base = exchange.count + 1
            for i in 0..<symbol.count where k[base + i] != symbol[i] { return false }
            return true
        }
    }

    func find(exchange: UnsafeBufferPointer<UInt8>, symbol: UnsafeBufferPointer<UInt8>) -> Int32? {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: Self.hash(exchange, symbol)) & mask
        while true {
            let entry = slots[i]
            if entry < 0 { return nil }
            if matches(keys[Int(entry)], exchange, symbol) { return ids[Int(entry)] }
            i = (i + 1) & mask
        }
    }

    mutating func insert(exchange: UnsafeBufferPointer<UInt8>, symbol: UnsafeBufferPointer<UInt8>, id: Int32) {
        keys.append(Array(exchange) + [0x3A] + Array(symbol))
        ids.append(id)
        if keys.count * 2 > slots.count {
            slots = Array(repeating: -1, count: slots.count * 2)
            for (entry, key) in keys.enumerated() {
                let colon = key.firstIndex(of: 0x3A)!
                key.withUnsafeBufferPointer { k in
                    place(entry: Int32(entry), hash: Self.hash(UnsafeBufferPointer(rebasing: k[..<colon]), UnsafeBufferPointer(rebasing: k[(colon + 1)...])))
                }
            }
        } else {
            place(entry: Int32(keys.count - 1), hash: Self.hash(exchange, symbol))
        }
    }

    private mutating func place(entry: Int32, hash: UInt64) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = entry
    }
}

struct WindowKey: Hashable, Sendable {
    var instrument: Int32
    var interval: Int32
    var start: Int64
}

/// The trade ids seen for one instrument, in buckets of the largest interval (a few at a time).
struct InstrumentIDs: Sendable {
    struct Bucket: Sendable {
        var start: Int64
        var numbers = UInt64Set()
        var texts: Set<String> = []
    }
    var buckets: [Bucket] = []

    /// True when `id` is in the bucket starting at `bucket` (changes nothing).
    func contains(_ id: TradeKey, bucket: Int64) -> Bool {
        guard let b = buckets.last(where: { $0.start == bucket }) else { return false }
        switch id {
        case .number(let n): return b.numbers.contains(n)
        case .text(let t): return b.texts.contains(t)
        }
    }

    /// Inserts `id` into the bucket starting at `bucket`; false when it was there already.
    @inline(__always)
    mutating func insert(_ id: TradeKey, bucket: Int64) -> Bool {
        var i = buckets.count - 1
        while i >= 0 && buckets[i].start != bucket { i -= 1 }
        if i < 0 {
            buckets.append(Bucket(start: bucket))
            i = buckets.count - 1
        }
        switch id {
        case .number(let n): return buckets[i].numbers.insert(n)
        case .text(let t): return buckets[i].texts.insert(t).inserted
        }
    }
}

/// A set of `UInt64` trade ids. Exchanges number trades densely and (almost) in order per
/// market, so ids near the first one seen live in a bitmap (one bit each, touched nearly in
/// order: cache-friendly at millions of ids per hour); any other id goes to a hash set.
/// Where an id is kept depends only on the id and the first id seen, so lookups are exact.
struct UInt64Set: Sendable {
    /// Ids in `base ..< base + denseSpan` are bits in `words` (grown on demand).
    static let denseSpan: UInt64 = 1 << 24
    /// How far below the first id the bitmap starts (ids arrive slightly out of order).
    static let denseSlack: UInt64 = 4096
    private var base: UInt64 = 0
    private var hasBase = false
    private var words: [UInt64] = []
    private var sparse = SparseUInt64Set()
    private(set) var count = 0

    @inline(__always)
    mutating func insert(_ value: UInt64) -> Bool {
        if !hasBase {
            hasBase = true
            base = (value > Self.denseSlack ? value - Self.denseSlack : 0) & ~63
        }
        if value >= base && value - base < Self.denseSpan {
            let offset = value - base
            let w = Int(truncatingIfNeeded: offset >> 6)
            if w >= words.count { growWords(toInclude: w) }
            let bit: UInt64 = 1 << (offset & 63)
            if words[w] & bit != 0 { return false }
            words[w] |= bit
            count += 1
            return true
        }
        guard sparse.insert(value) else { return false }
        count += 1
        return true
    }

    func contains(_ value: UInt64) -> Bool {
        guard hasBase else { return false }
        if value >= base && value - base < Self.denseSpan {
            let offset = value - base
            let w = Int(truncatingIfNeeded: offset >> 6)
            return w < words.count && words[w] & (1 << (offset & 63)) != 0
        }
        return sparse.contains(value)
    }

    private mutating func growWords(toInclude w: Int) {
        let limit = Int(Self.denseSpan / 64)
        let target = min(limit, max(w + 1, max(64, words.count * 2)))
        words.append(contentsOf: repeatElement(0, count: target - words.count))
    }
}

/// Open addressing, multiplicative hashing, linear probing; one array, 0 marks an empty slot
/// (values are stored + 1; `UInt64.max` is kept aside).
struct SparseUInt64Set: Sendable {
    private var slots: [UInt64] = []
    private var containsMax = false
    private(set) var count = 0

    @inline(__always)
    mutating func insert(_ value: UInt64) -> Bool {
        if value == .max {
            if containsMax { return false }
            containsMax = true
            count += 1
            return true
        }
        if (count + 1) * 2 > slots.count { grow() }
        let stored = value &+ 1
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: (value &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
        while slots[i] != 0 {
            if slots[i] == stored { return false }
            i = (i + 1) & mask
        }
        slots[i] = stored
        count += 1
        return true
    }

    func contains(_ value: UInt64) -> Bool {
        if value == .max { return containsMax }
        guard !slots.isEmpty else { return false }
        let stored = value &+ 1
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: (value &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
        while slots[i] != 0 {
            if slots[i] == stored { return true }
            i = (i + 1) & mask
        }
        return false
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: max(16, old.count * 2))
        count = containsMax ? 1 : 0
        for stored in old where stored != 0 { _ = insert(stored &- 1) }
    }
}

struct SeriesCacheEntry: Sendable {
    var start: Int64
    var slot: Int32
    static let empty = SeriesCacheEntry(start: .min, slot: -1)
}

/// A trade id for deduplication: canonical decimal ids (most venues) as numbers, anything else as text.
enum TradeKey: Hashable, Sendable {
    case number(UInt64)
    case text(String)

    init(_ id: UnsafeBufferPointer<UInt8>) {
        if let value = Self.number(id) {
            self = .number(value)
        } else {
            self = .text(String(decoding: id, as: UTF8.self))
        }
    }

    @inline(__always)
    static func number(_ id: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard id.count > 0 && id.count <= 19 else { return nil }
        if id.count > 1 && id[0] == UInt8(ascii: "0") { return nil }
        var value: UInt64 = 0
        for b in id {
            let d = b &- UInt8(ascii: "0")
            if d > 9 { return nil }
            value = value * 10 + UInt64(d)
        }
        return value
    }

    init(_ id: String) {
        var value: UInt64 = 0
        var count = 0
        var numeric = true
        for b in id.utf8 {
            let d = b &- UInt8(ascii: "0")
            if d > 9 || count >= 19 || (count == 1 && value == 0) {
                numeric = false
                break
            }
            value = value * 10 + UInt64(d)
            count += 1
        }
        self = numeric && count > 0 ? .number(value) : .text(id)
    }
}
