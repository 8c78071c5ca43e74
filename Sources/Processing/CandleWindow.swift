import MarketData

// The windows of `CandleAggregator`: their running aggregates, keys, and saturating time arithmetic.

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

struct WindowKey: Hashable, Sendable {
    var instrument: Int32
    var interval: Int32
    var start: Int64
}

struct SeriesCacheEntry: Sendable {
    var start: Int64
    var slot: Int32
    static let empty = SeriesCacheEntry(start: .min, slot: -1)
}

/// A held window's place in one of `CandleAggregator`'s orderings: `key` (a window end or a first
/// sequence), its slot, and the slot's generation when the entry was made — an entry whose
/// generation no longer matches is stale (the window was evicted; the slot may hold another).
struct WindowRef: Sendable {
    var key: Int64
    var slot: Int32
    var generation: UInt32
}

/// A binary min-heap of `WindowRef`s by `key`: the windows due next (by end, or by first
/// sequence) are found without walking every held window.
struct WindowHeap: Sendable {
    private(set) var entries: [WindowRef] = []

    var count: Int { entries.count }
    var min: WindowRef? { entries.first }

    mutating func removeAll() { entries.removeAll(keepingCapacity: true) }

    mutating func push(_ entry: WindowRef) {
        entries.append(entry)
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if entries[parent].key <= entry.key { break }
            entries[child] = entries[parent]
            child = parent
        }
        entries[child] = entry
    }

    @discardableResult
    mutating func popMin() -> WindowRef? {
        guard let first = entries.first else { return nil }
        let last = entries.removeLast()
        if entries.isEmpty { return first }
        let n = entries.count
        var parent = 0
        while true {
            let left = 2 * parent + 1
            if left >= n { break }
            let right = left + 1
            let child = right < n && entries[right].key < entries[left].key ? right : left
            if last.key <= entries[child].key { break }
            entries[parent] = entries[child]
            parent = child
        }
        entries[parent] = last
        return first
    }
}
