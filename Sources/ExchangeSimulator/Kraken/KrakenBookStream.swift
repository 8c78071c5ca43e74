import MarketData

/// One instrument's Kraken v2 `book` subscription as the venue streams it: the client sees the
/// top `depth` levels of each side. An order's book changes become one update carrying the levels
/// of the visible book that changed (in the order they changed), the levels that entered the
/// visible book, and removals of levels the client holds that left it — except levels merely
/// pushed below the depth, which Kraken leaves to the client to cut. Every message carries the
/// CRC32 of the top 10 levels, prices at `priceDecimals` and quantities at `quantityDecimals`.
/// Numbers are printed as Kraken prints JSON numbers: no trailing zeros, and below 1e-4 in
/// exponent form ("3.12e-06").
///
/// Written independently of `Exchanges.KrakenBookSynchronizer` and `KrakenBookChecksum` (the
/// checksum here rescales `ExactDecimal`s; the CRC is bitwise), so the two check each other.
struct KrakenBookStream: Sendable {
    let depth: Int
    let priceDecimals: Int
    let quantityDecimals: Int
    /// The instrument's whole book as the venue holds it.
    var venue: OrderBook
    /// The book update id of the last order included.
    var updateId: Int64

    init(book: OrderBook, updateId: Int64, depth: Int, priceDecimals: Int, quantityDecimals: Int) {
        self.venue = book
        self.updateId = updateId
        self.depth = depth
        self.priceDecimals = priceDecimals
        self.quantityDecimals = quantityDecimals
    }

    /// The top `depth` levels of each side.
    var visible: OrderBook { OrderBook(bids: venue.bids(top: depth), asks: venue.asks(top: depth)) }

    /// The snapshot message.
    func snapshotMessage(symbol: String) -> String {
        let shown = visible
        return KrakenBookStream.message(
            type: "snapshot", symbol: symbol, bids: shown.bids(), asks: shown.asks(), checksum: checksum(shown), timestamp: nil)
    }

    /// Applies an order's changes; the update's levels and checksum, or nil when the visible
    /// book did not change (Kraken sends nothing then).
    mutating func apply(_ changes: [SimulatedBookChange], updateId: Int64) -> (bids: [BookLevel], asks: [BookLevel], checksum: UInt32)? {
        self.updateId = updateId
        let before = visible
        var sent: [BookSide: [BookLevel]] = [.bid: [], .ask: []]
        for change in changes {
            let wasVisible = before.quantity(at: change.level.key, side: change.side) != nil
            venue.apply(change.level, side: change.side)
            if wasVisible || isVisible(change.level.key, side: change.side) {
                sent[change.side, default: []].append(change.level)
            }
        }
        let after = visible
        for side in BookSide.allCases {
            // What the client holds after applying what is sent so far (before its cut).
            var client = before
            for level in sent[side] ?? [] { client.apply(level, side: side) }
            let wanted = side == .bid ? after.bids() : after.asks()
            for level in wanted where client.quantity(at: level.key, side: side) != level.quantity {
                sent[side, default: []].append(level)
                client.apply(level, side: side)
            }
            // Levels the client holds that the venue's visible book lacks: removed, unless the
            // client's cut to `depth` drops them anyway.
            var kept = 0
            for level in (side == .bid ? client.bids() : client.asks()) {
                if kept == depth { break }
                if after.quantity(at: level.key, side: side) != nil {
                    kept += 1
                } else {
                    var removal = level
                    removal.quantity = "0"
                    removal.isEmpty = true
                    sent[side, default: []].append(removal)
                }
            }
        }
        let bids = sent[.bid] ?? []
        let asks = sent[.ask] ?? []
        guard !bids.isEmpty || !asks.isEmpty else { return nil }
        return (bids, asks, checksum(after))
    }

    func isVisible(_ key: BookPrice, side: BookSide) -> Bool {
        let levels = side == .bid ? venue.bids(top: depth) : venue.asks(top: depth)
        return levels.contains { $0.key == key }
    }

    /// CRC32 of the top 10 asks then bids, each number at its decimals without '.' and leading zeros.
    func checksum(_ book: OrderBook) -> UInt32 {
        var text = ""
        for level in book.asks(top: 10) + book.bids(top: 10) {
            text += KrakenBookStream.digits(level.price, decimals: priceDecimals)
            text += KrakenBookStream.digits(level.quantity, decimals: quantityDecimals)
        }
        return KrakenBookStream.crc32(Array(text.utf8))
    }

    static func digits(_ text: String, decimals: Int) -> String {
        guard let value = try? ExactDecimal(text), let scaled = value.rescaled(to: decimals) else { return text }
        let plain = scaled.description.filter { $0 != "." }
        let stripped = plain.drop { $0 == "0" }
        return String(stripped)
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }

    /// A decimal as Kraken's JSON prints it: shortest form, exponent form below 1e-4.
    static func jsonNumber(_ text: String) -> String {
        guard let value = try? ExactDecimal(text) else { return text }
        let plain = value.normalized().description
        guard plain.hasPrefix("0.0000") else { return plain }
        let fraction = plain.dropFirst(2)
        let zeros = fraction.prefix { $0 == "0" }.count
        let significant = fraction.dropFirst(zeros)
        guard let first = significant.first else { return plain }
        let rest = significant.dropFirst()
        let exponent = zeros + 1
        return (rest.isEmpty ? "\(first)" : "\(first).\(rest)") + "e-" + (exponent < 10 ? "0" : "") + String(exponent)
    }

    static func message(
        type: String, symbol: String, bids: [BookLevel], asks: [BookLevel], checksum: UInt32, timestamp: String?
    ) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"channel\":\"book\",\"type\":", to: &out)
        JSONWriter.appendString(type, to: &out)
        JSONWriter.appendRaw(",\"data\":[{\"symbol\":", to: &out)
        JSONWriter.appendString(symbol, to: &out)
        JSONWriter.appendRaw(",\"bids\":", to: &out)
        appendLevels(bids, to: &out)
        JSONWriter.appendRaw(",\"asks\":", to: &out)
        appendLevels(asks, to: &out)
        JSONWriter.appendRaw(",\"checksum\":", to: &out)
        JSONWriter.appendInt(Int64(checksum), to: &out)
        if let timestamp {
            JSONWriter.appendRaw(",\"timestamp\":", to: &out)
            JSONWriter.appendString(timestamp, to: &out)
        }
        JSONWriter.appendRaw("}]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendLevels(_ levels: [BookLevel], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (i, level) in levels.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"price\":", to: &out)
            out.append(contentsOf: jsonNumber(level.price).utf8)
            JSONWriter.appendRaw(",\"qty\":", to: &out)
            out.append(contentsOf: jsonNumber(level.quantity).utf8)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
    }

    /// The decimals of a price as the simulated book prints it (always at the instrument's scale).
    static func decimals(of book: OrderBook) -> Int {
        var most = 0
        for level in book.bids() + book.asks() {
            if let point = level.price.firstIndex(of: ".") {
                most = max(most, level.price.distance(from: point, to: level.price.endIndex) - 1)
            }
        }
        return most
    }
}
