import Foundation
import MarketData

// Lookup structures of `CandleAggregator`: instrument ids by (exchange, symbol) bytes, and the trade ids seen (deduplication).

/// (exchange, symbol) bytes → instrument id, without building strings: open addressing over a
/// hash of at most four 8-byte words per key (first and last eight bytes of each part, and the
/// lengths: constant work per record however long the names), keys compared with `memcmp`.
struct InstrumentTable: Sendable {
    private var keys: [[UInt8]] = []
    private var ids: [Int32] = []
    private var slots: [Int32] = Array(repeating: -1, count: 64)

    /// The first and the last (up to) eight bytes of `p`, as two words (zero-extended when shorter).
    @inline(__always)
    private static func ends(_ p: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64) {
        let n = p.count
        guard let base = p.baseAddress, n > 0 else { return (0, 0) }
        let raw = UnsafeRawPointer(base)
        if n >= 8 {
            return (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self))
        }
        var w: UInt64 = 0
        for k in 0..<n { w |= UInt64(base[k]) << (8 * UInt64(k)) }
        return (w, 0)
    }

    @inline(__always)
    private static func hash(_ exchange: UnsafeBufferPointer<UInt8>, _ symbol: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let (e0, e1) = ends(exchange)
        let (s0, s1) = ends(symbol)
        var h = UInt64(truncatingIfNeeded: exchange.count) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: symbol.count)
        @inline(__always) func mix(_ w: UInt64) {
            h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 29
        }
        mix(e0)
        mix(e1)
        mix(s0)
        mix(s1)
        return h
    }

    @inline(__always)
    private func matches(_ key: [UInt8], _ exchange: UnsafeBufferPointer<UInt8>, _ symbol: UnsafeBufferPointer<UInt8>) -> Bool {
        guard key.count == exchange.count + 1 + symbol.count else { return false }
        return key.withUnsafeBufferPointer { k in
            guard let kb = k.baseAddress else { return false }
            if k[exchange.count] != 0x3A { return false }
            if let e = exchange.baseAddress, memcmp(kb, e, exchange.count) != 0 { return false }
            if let s = symbol.baseAddress, memcmp(kb + exchange.count + 1, s, symbol.count) != 0 { return false }
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
