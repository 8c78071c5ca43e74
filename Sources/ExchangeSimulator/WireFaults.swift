/// Fault injection shared by every simulated venue (`--malformed-every`): broken versions of a
/// frame in the venue's own format. Nothing here knows one venue's message shapes; the few keys it
/// looks for are those the venues use for price and trade time.
public enum WireFaults {
    /// A deliberately broken version of `frame`: truncated, a quote dropped, a price garbled, or a
    /// trade time out of range (an integer time set to 2^63-1, an RFC 3339 one to the year 0001) —
    /// chosen by `variant`. A frame without the key a variant needs is truncated instead, so the
    /// result is always broken and always still the venue's own text.
    public static func malformed(_ frame: String, variant: UInt64) -> String {
        var bytes = Array(frame.utf8)
        guard bytes.count > 4 else { return "{" }
        switch variant % 4 {
        case 3:
            if let poisoned = poisonedTime(bytes) { return String(decoding: poisoned, as: UTF8.self) }
            return garbledPrice(bytes)
        case 0:
            bytes.removeSubrange((bytes.count / 2)...)
        case 1:
            if let quote = bytes.indices.dropFirst(bytes.count / 3).first(where: { bytes[$0] == UInt8(ascii: "\"") }) {
                bytes.remove(at: quote)
            } else {
                bytes.removeLast()
            }
        default:
            return garbledPrice(bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first string price (`"price":"` on Poloniex and Coinbase, `"p":"` on Binance) with an
    /// `x` in front of its digits; without one, the first half of the frame.
    static func garbledPrice(_ bytes: [UInt8]) -> String {
        for key in [#""price":""#, #""p":""#] {
            guard let at = find(key, in: bytes) else { continue }
            return String(decoding: bytes[..<at] + Array("x".utf8) + bytes[at...], as: UTF8.self)
        }
        return String(decoding: bytes[..<(bytes.count / 2)], as: UTF8.self)
    }

    /// `frame` with its first trade time out of range: the digits after `"createTime":` (Poloniex)
    /// or `"T":` (Binance) replaced by 9223372036854775807, or the year of the first `"time":"`
    /// (Coinbase) or `"timestamp":"` (Kraken) RFC 3339 text set to 0001; nil when it has none.
    static func poisonedTime(_ bytes: [UInt8]) -> [UInt8]? {
        for key in [#""createTime":"#, #""T":"#] {
            guard let start = find(key, in: bytes) else { continue }
            var end = start
            while end < bytes.count, bytes[end] &- UInt8(ascii: "0") < 10 { end += 1 }
            guard end > start else { continue }
            return Array(bytes[..<start]) + Array("9223372036854775807".utf8) + Array(bytes[end...])
        }
        for key in [#""time":""#, #""timestamp":""#] {
            guard let start = find(key, in: bytes), start + 4 <= bytes.count else { continue }
            return Array(bytes[..<start]) + Array("0001".utf8) + Array(bytes[(start + 4)...])
        }
        return nil
    }

    /// The index just past the first occurrence of `key` in `bytes`.
    private static func find(_ key: String, in bytes: [UInt8]) -> Int? {
        let k = Array(key.utf8)
        guard k.count <= bytes.count else { return nil }
        for i in 0...(bytes.count - k.count) where bytes[i..<(i + k.count)].elementsEqual(k) { return i + k.count }
        return nil
    }
}
