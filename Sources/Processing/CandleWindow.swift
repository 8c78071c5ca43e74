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

/// 10^n as an Int128, for n in 0...38.
@inline(__always)
func powerOfTen(_ n: Int32) -> Int128 {
    var p: Int128 = 1
    var k = n
    while k > 0 {
        p &*= 10
        k -= 1
    }
    return p
}

/// An exact running sum in 128 bits: `mantissa × 10^-scale`, the scale being the largest of the
/// values added (and 0) — exactly the value and scale `ExactDecimal.adding` gives, so `exact` is
/// bit-identical to the 256-bit sum. (Stored as two words, 24 bytes with the scale, instead of
/// `Int128`'s 16-byte alignment.) `adding` reports instead of trapping when the result, or the
/// rescaling of either side to the common scale, needs more than 128 bits — and only then: a
/// nonzero value rescaled by more than 38 digits never fits — and the caller goes on in the
/// 256-bit form (`WindowSums`). 64 bits were not enough: a quote volume at scale 7 (price at
/// scale 2 × quantity at scale 5) passes 2^63 after some 10^4 trades of a busy hour.
struct FastSum: Sendable, Equatable {
    var low: UInt64 = 0
    var high: Int64 = 0
    var scale: Int32 = 0

    static let zero = FastSum()

    init() {}

    @inline(__always)
    init(mantissa: Int128, scale: Int32) {
        low = UInt64(truncatingIfNeeded: mantissa)
        high = Int64(truncatingIfNeeded: mantissa >> 64)
        self.scale = scale
    }

    @inline(__always)
    var mantissa: Int128 { Int128(high) << 64 | Int128(low) }

    /// This sum plus `m × 10^-s`, or nil when it does not fit in the fast form.
    @inline(__always)
    func adding(_ m: Int128, scale s: Int32) -> FastSum? {
        let mantissa = self.mantissa
        if s == scale {
            let (sum, overflow) = mantissa.addingReportingOverflow(m)
            return overflow ? nil : FastSum(mantissa: sum, scale: s)
        }
        if s > scale {
            if mantissa == 0 { return FastSum(mantissa: m, scale: s) }
            guard s - scale <= 38 else { return nil }
            let (x, o1) = mantissa.multipliedReportingOverflow(by: powerOfTen(s - scale))
            if o1 { return nil }
            let (sum, o2) = x.addingReportingOverflow(m)
            return o2 ? nil : FastSum(mantissa: sum, scale: s)
        }
        if m == 0 { return self }
        guard scale - s <= 38 else { return nil }
        let (y, o1) = m.multipliedReportingOverflow(by: powerOfTen(scale - s))
        if o1 { return nil }
        let (sum, o2) = mantissa.addingReportingOverflow(y)
        return o2 ? nil : FastSum(mantissa: sum, scale: scale)
    }

    /// The same value and scale as a 256-bit decimal.
    var exact: ExactDecimal { ExactDecimal(int128Mantissa: mantissa, scale: Int(scale)) }
}

/// A window's volume sums in the fast form: base volume, quote volume, and the taker side's volume.
struct FastWindowSums: Sendable {
    var volume: FastSum
    var quoteVolume: FastSum
    /// `buyVolume` or `sellVolume`, whichever side the trade is on.
    var sideVolume: FastSum

    static let zero = FastWindowSums(volume: .zero, quoteVolume: .zero, sideVolume: .zero)

    /// The sums with one more trade whose quantity is `q × 10^-qs` and quote quantity
    /// `qq × 10^-qqs`; nil when one of them leaves the fast form.
    @inline(__always)
    func adding(quantity q: Int128, scale qs: Int32, quoteQuantity qq: Int128, scale qqs: Int32) -> FastWindowSums? {
        guard let v = volume.adding(q, scale: qs), let qv = quoteVolume.adding(qq, scale: qqs),
            let sv = sideVolume.adding(q, scale: qs)
        else { return nil }
        return FastWindowSums(volume: v, quoteVolume: qv, sideVolume: sv)
    }

    /// The same sums in the 256-bit form.
    var exact: WindowSums { WindowSums(volume: volume.exact, quoteVolume: quoteVolume.exact, sideVolume: sideVolume.exact) }
}

/// A window's four volume sums in the 256-bit form (a window that outgrew the fast form).
struct WideVolumes: Sendable {
    var volume: ExactDecimal
    var quoteVolume: ExactDecimal
    var buyVolume: ExactDecimal
    var sellVolume: ExactDecimal
}

/// What the trade being ingested does to one interval's window: which slot (`tooLate`, or -1 for
/// a window still to be created) and the sums it leaves there — in the fast form, or (`isWide`) in
/// the 256-bit form held in the aggregator's `pendingWide[k]`.
struct PendingUpdate: Sendable {
    static let tooLate: Int32 = -2
    var slot: Int32 = -1
    var isWide = false
    var start: Int64 = 0
    var sums = FastWindowSums.zero
}

/// One window's running aggregate. Its volume sums are in the 128-bit fast form (`FastSum`) until one of
/// them outgrows it; from then on (`wide >= 0`) all four live in the aggregator's table of
/// `WideVolumes` at that index and the fast fields are ignored.
struct AggregateWindow: Sendable {
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
    var volume = FastSum.zero
    var quoteVolume = FastSum.zero
    var buyVolume = FastSum.zero
    var sellVolume = FastSum.zero
    /// Index of this window's sums in the aggregator's wide table, or -1 (fast form).
    var wide: Int32 = -1
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

    /// The fast sums a trade on `side` adds to (meaningless once `wide >= 0`).
    @inline(__always)
    func fastSums(side: Side) -> FastWindowSums {
        FastWindowSums(volume: volume, quoteVolume: quoteVolume, sideVolume: side == .buy ? buyVolume : sellVolume)
    }

    /// The four sums in the 256-bit form, from the fast fields (for a window still in the fast form).
    var exactVolumes: WideVolumes {
        WideVolumes(volume: volume.exact, quoteVolume: quoteVolume.exact, buyVolume: buyVolume.exact, sellVolume: sellVolume.exact)
    }

    /// Adds a trade's price, time and sequence (the sums are stored by the caller); returns true
    /// when the window was already final (a late trade).
    @inline(__always)
    mutating func apply(price: ExactDecimal, time: Int64, sequence: Int64) -> Bool {
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
        trades += 1
        isDirty = true
        if isFinal {
            revision += 1
            return true
        }
        return false
    }

    /// Stores fast sums computed (and checked) for a trade on `side`.
    @inline(__always)
    mutating func store(_ sums: FastWindowSums, side: Side) {
        volume = sums.volume
        quoteVolume = sums.quoteVolume
        switch side {
        case .buy: buyVolume = sums.sideVolume
        case .sell: sellVolume = sums.sideVolume
        }
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
