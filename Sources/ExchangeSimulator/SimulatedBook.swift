import MarketData
import TapeCommon

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One price level one simulated order changed: set to `level.quantity`, or removed when it is zero.
public struct SimulatedBookChange: Sendable, Hashable {
    public var side: BookSide
    public var level: BookLevel

    public init(side: BookSide, level: BookLevel) {
        self.side = side
        self.level = level
    }
}

/// The resting orders of one simulated instrument, in ticks: a book that behaves like a market.
///
/// The book follows the instrument's price `R` (in ticks): bids only below it, asks only above it,
/// so it is never crossed; a taker order consumes the levels its fills walked through; makers
/// refill the top `depth` levels of each side with heavy-tailed sizes, modify and cancel a few
/// levels per order, and levels drifting more than twice `depth` ticks away are cancelled. Every
/// change is reported in the order it happened, as the venue would stream it.
struct SimulatedBook: Sendable {
    let priceScale: Int
    let quantityScale: Int
    let depth: Int64
    /// Median size of a maker level, in units of 10^-quantityScale.
    let medianUnits: Double
    /// Quantity (in units of 10^-quantityScale) per tick.
    var bids: [Int64: Int64] = [:]
    var asks: [Int64: Int64] = [:]
    /// Changes made so far (the venue's book update id).
    var updateId: Int64

    /// `medianQuantity`: the instrument's median trade size; a level holds a few times that.
    init(
        priceScale: Int, quantityScale: Int, medianQuantity: Double, depth: Int, center: Int64, updateId: Int64,
        random: inout SplitMix64
    ) {
        self.priceScale = priceScale
        self.quantityScale = quantityScale
        var unit = 1.0
        for _ in 0..<max(0, quantityScale) { unit *= 10 }
        let median = 4 * medianQuantity * unit
        self.medianUnits = median.isFinite ? max(1, min(median, 1e12)) : 1
        self.depth = Int64(max(1, depth))
        self.updateId = updateId
        var ignored: [SimulatedBookChange] = []
        refill(center: center, random: &random, changes: &ignored)
    }

    /// The book as levels (prices printed with the instrument's tick scale).
    var orderBook: OrderBook {
        OrderBook(
            bids: bids.map { level(tick: $0.key, units: $0.value) },
            asks: asks.map { level(tick: $0.key, units: $0.value) })
    }

    func level(tick: Int64, units: Int64) -> BookLevel {
        let price = ExactDecimal(mantissa: tick, scale: priceScale).description
        let quantity = units == 0 ? "0" : ExactDecimal(mantissa: units, scale: quantityScale).normalized().description
        // Both texts come from ExactDecimal's printing: plain digits, always valid.
        return (try? BookLevel(price: price, quantity: quantity)) ?? SimulatedBook.unreachableLevel
    }

    private static let unreachableLevel = try! BookLevel(price: "1", quantity: "0")

    /// Applies one taker order: the price moved to `center` and the taker took liquidity through
    /// `lastFill` on `takerSide`'s opposite side. Returns the changes, in order.
    mutating func apply(center: Int64, takerSide: Side, lastFill: Int64, random: inout SplitMix64) -> [SimulatedBookChange] {
        var changes: [SimulatedBookChange] = []
        // The taker consumed the opposite side up to its last fill.
        switch takerSide {
        case .buy: remove(from: &asks, side: .ask, where: { $0 <= max(lastFill, center) }, changes: &changes)
        case .sell: remove(from: &bids, side: .bid, where: { $0 >= min(lastFill, center) }, changes: &changes)
        }
        // Nothing rests on the wrong side of the price.
        remove(from: &bids, side: .bid, where: { $0 >= center }, changes: &changes)
        remove(from: &asks, side: .ask, where: { $0 <= center }, changes: &changes)
        // Makers modify or cancel a few levels near the top.
        let touches = Int(random.below(3))
        for _ in 0..<touches {
            let side: BookSide = random.below(2) == 0 ? .bid : .ask
            let offset = 1 + Int64(random.below(UInt64(depth)))
            let tick = side == .bid ? center - offset : center + offset
            guard tick >= 1 else { continue }
            let units = random.below(4) == 0 ? 0 : randomUnits(&random)
            set(side: side, tick: tick, units: units, changes: &changes)
        }
        refill(center: center, random: &random, changes: &changes)
        // Far levels are cancelled.
        let far = 2 * depth
        remove(from: &bids, side: .bid, where: { $0 < center - far }, changes: &changes)
        remove(from: &asks, side: .ask, where: { $0 > center + far }, changes: &changes)
        if !changes.isEmpty { updateId &+= 1 }
        return changes
    }

    /// Fills empty ticks among the `depth` nearest of each side (most of them: a realistic book
    /// has holes).
    private mutating func refill(center: Int64, random: inout SplitMix64, changes: inout [SimulatedBookChange]) {
        for offset in 1...depth {
            let bidTick = center - offset
            if bidTick >= 1, bids[bidTick] == nil, random.below(10) < 8 {
                set(side: .bid, tick: bidTick, units: randomUnits(&random), changes: &changes)
            }
            if asks[center + offset] == nil, random.below(10) < 8 {
                set(side: .ask, tick: center + offset, units: randomUnits(&random), changes: &changes)
            }
        }
    }

    private mutating func set(side: BookSide, tick: Int64, units: Int64, changes: inout [SimulatedBookChange]) {
        switch side {
        case .bid:
            guard bids[tick] != (units == 0 ? nil : units) else { return }
            bids[tick] = units == 0 ? nil : units
        case .ask:
            guard asks[tick] != (units == 0 ? nil : units) else { return }
            asks[tick] = units == 0 ? nil : units
        }
        changes.append(SimulatedBookChange(side: side, level: level(tick: tick, units: units)))
    }

    private func remove(
        from levels: inout [Int64: Int64], side: BookSide, where condition: (Int64) -> Bool,
        changes: inout [SimulatedBookChange]
    ) {
        let doomed = levels.keys.filter(condition).sorted()
        for tick in side == .bid ? doomed.reversed() : doomed {
            levels[tick] = nil
            changes.append(SimulatedBookChange(side: side, level: level(tick: tick, units: 0)))
        }
    }

    /// Log-normal maker size around `medianUnits` (σ 1.2), at least one lot, at most 500 times it.
    private func randomUnits(_ random: inout SplitMix64) -> Int64 {
        let u = 1.0 - random.unit()  // (0, 1]
        let v = random.unit()
        let z = (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        let units = min(medianUnits * 500, medianUnits * exp(1.2 * z)).rounded()
        return units.isFinite ? Int64(max(1, min(units, 1e15))) : 1
    }
}
