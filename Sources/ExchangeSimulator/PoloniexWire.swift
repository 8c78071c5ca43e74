import MarketData

/// Poloniex's wire format, written independently of Tape's parser (so tests of one check the other):
/// websocket trades frames, acks, pongs and errors; REST trades and markets bodies.
public enum PoloniexWire {
    /// A websocket `trades` frame holding `trades` (several per frame, as Poloniex sends them).
    /// `numericIDs` writes ids as JSON numbers, as Poloniex sometimes does. `pushTime` is `ts`.
    public static func tradesFrame(_ trades: ArraySlice<Trade>, numericIDs: Bool, pushTime: Int64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64 + trades.count * 200)
        JSONWriter.appendRaw("{\"channel\":\"trades\",\"data\":[", to: &out)
        for (i, trade) in trades.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"symbol\":", to: &out)
            JSONWriter.appendString(trade.nativeSymbol, to: &out)
            JSONWriter.appendRaw(",\"amount\":", to: &out)
            JSONWriter.appendDecimal(trade.quoteQuantity, to: &out)
            JSONWriter.appendRaw(",\"quantity\":", to: &out)
            JSONWriter.appendDecimal(trade.quantity, to: &out)
            JSONWriter.appendRaw(trade.side == .buy ? ",\"takerSide\":\"buy\"" : ",\"takerSide\":\"sell\"", to: &out)
            JSONWriter.appendRaw(",\"createTime\":", to: &out)
            JSONWriter.appendInt(trade.time, to: &out)
            JSONWriter.appendRaw(",\"price\":", to: &out)
            JSONWriter.appendDecimal(trade.price, to: &out)
            JSONWriter.appendRaw(",\"id\":", to: &out)
            if numericIDs {
                out.append(contentsOf: trade.tradeId.utf8)
            } else {
                JSONWriter.appendString(trade.tradeId, to: &out)
            }
            JSONWriter.appendRaw(",\"ts\":", to: &out)
            JSONWriter.appendInt(pushTime, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        JSONWriter.appendRaw("]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The subscribe acknowledgement (`channel` is a string here, unlike in the request).
    public static func subscribeAck(symbols: [String]) -> String {
        event("subscribe", symbols: symbols)
    }

    public static func unsubscribeAck(symbols: [String]) -> String {
        event("unsubscribe", symbols: symbols)
    }

    static func event(_ name: String, symbols: [String]) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"event\":", to: &out)
        JSONWriter.appendString(name, to: &out)
        JSONWriter.appendRaw(",\"channel\":\"trades\",\"symbols\":[", to: &out)
        for (i, s) in symbols.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(s, to: &out)
        }
        JSONWriter.appendRaw("]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static let pong = #"{"event":"pong"}"#

    public static func error(_ message: String) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"event\":\"error\",\"message\":", to: &out)
        JSONWriter.appendString(message, to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Malformed frames, one of several kinds chosen by `n`: truncated JSON, a trade with a bad
    /// number, a bad side. None of them carries a real trade.
    public static func malformedFrame(_ n: Int, symbol: String, time: Int64) -> String {
        switch n % 3 {
        case 0:
            return #"{"channel":"trades","data":[{"symbol":""# + symbol + #"","amount":"12.5","quantity":"0.5","takerSide":"bu"#
        case 1:
            return #"{"channel":"trades","data":[{"symbol":""# + symbol
                + #"","amount":"1","quantity":"abc","takerSide":"buy","createTime":\#(time),"price":"2","id":"malformed-\#(n)","ts":\#(time)}]}"#
        default:
            return #"{"channel":"trades","data":[{"symbol":""# + symbol
                + #"","amount":"1","quantity":"0.5","takerSide":"up","createTime":\#(time),"price":"2","id":"malformed-\#(n)","ts":\#(time)}]}"#
        }
    }

    /// `GET /markets/{symbol}/trades`: newest first, `takerSide` uppercase, ids as strings.
    public static func restTrades(_ newestFirst: [Trade]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(newestFirst.count * 180 + 2)
        out.append(UInt8(ascii: "["))
        for (i, trade) in newestFirst.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"id\":", to: &out)
            JSONWriter.appendString(trade.tradeId, to: &out)
            JSONWriter.appendRaw(",\"price\":", to: &out)
            JSONWriter.appendDecimal(trade.price, to: &out)
            JSONWriter.appendRaw(",\"quantity\":", to: &out)
            JSONWriter.appendDecimal(trade.quantity, to: &out)
            JSONWriter.appendRaw(",\"amount\":", to: &out)
            JSONWriter.appendDecimal(trade.quoteQuantity, to: &out)
            JSONWriter.appendRaw(trade.side == .buy ? ",\"takerSide\":\"BUY\"" : ",\"takerSide\":\"SELL\"", to: &out)
            JSONWriter.appendRaw(",\"ts\":", to: &out)
            JSONWriter.appendInt(trade.time + 3, to: &out)
            JSONWriter.appendRaw(",\"createTime\":", to: &out)
            JSONWriter.appendInt(trade.time, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// `GET /markets`.
    public static func markets(_ markets: [MarketGenerator.Market], paused: [String], listedSince: Int64) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        var first = true
        func market(_ native: String, state: StaticString, priceScale: Int, quantityScale: Int) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            let parts = native.split(separator: "_", maxSplits: 1).map(String.init)
            let base = parts.first ?? native
            let quote = parts.count > 1 ? parts[1] : ""
            JSONWriter.appendRaw("{\"symbol\":", to: &out)
            JSONWriter.appendString(native, to: &out)
            JSONWriter.appendRaw(",\"baseCurrencyName\":", to: &out)
            JSONWriter.appendString(base, to: &out)
            JSONWriter.appendRaw(",\"quoteCurrencyName\":", to: &out)
            JSONWriter.appendString(quote, to: &out)
            JSONWriter.appendRaw(",\"displayName\":", to: &out)
            JSONWriter.appendString("\(base)/\(quote)", to: &out)
            JSONWriter.appendRaw(",\"state\":\"", to: &out)
            JSONWriter.appendRaw(state, to: &out)
            JSONWriter.appendRaw("\",\"visibleStartTime\":", to: &out)
            JSONWriter.appendInt(listedSince, to: &out)
            JSONWriter.appendRaw(",\"tradableStartTime\":", to: &out)
            JSONWriter.appendInt(listedSince, to: &out)
            JSONWriter.appendRaw(",\"symbolTradeLimit\":{\"symbol\":", to: &out)
            JSONWriter.appendString(native, to: &out)
            JSONWriter.appendRaw(",\"priceScale\":", to: &out)
            JSONWriter.appendInt(Int64(priceScale), to: &out)
            JSONWriter.appendRaw(",\"quantityScale\":", to: &out)
            JSONWriter.appendInt(Int64(quantityScale), to: &out)
            JSONWriter.appendRaw(",\"amountScale\":2,\"minQuantity\":\"0\",\"minAmount\":\"1\",\"highestBid\":\"0\",\"lowestAsk\":\"0\"}}", to: &out)
        }
        for m in markets { market(m.native, state: "NORMAL", priceScale: m.priceScale, quantityScale: m.quantityScale) }
        for p in paused { market(p, state: "PAUSE", priceScale: 2, quantityScale: 4) }
        out.append(UInt8(ascii: "]"))
        return out
    }
}
