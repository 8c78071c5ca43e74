@testable import Processing
import MarketData

// The window types of the aggregator before its sums got a 64-bit fast form (main at 18fbb98),
// kept for `ScanningCandleAggregator` (the differential baseline). Test code only; keep as is.

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

