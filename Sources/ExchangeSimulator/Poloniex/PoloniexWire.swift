import MarketData

/// Poloniex's wire format as the simulator writes it: the exchange side of what
/// `Exchanges.PoloniexFrameParser` reads. Written independently of the parser on purpose, so the
/// two check each other.
public enum PoloniexWire {
    /// A websocket trades frame for one taker order: `{"channel":"trades","data":[...]}`, keys in
    /// the venue's order, `takerSide` lowercase, `id` a string (or a number when `numericIds`).
    public static func tradesFrame(_ trades: [SimulatedTrade], numericIds: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64 + trades.count * 200)
        JSONWriter.appendRaw("{\"channel\":\"trades\",\"data\":[", to: &out)
        for (i, trade) in trades.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"symbol\":", to: &out)
            JSONWriter.appendString(trade.nativeSymbol, to: &out)
            JSONWriter.appendRaw(",\"amount\":", to: &out)
            JSONWriter.appendDecimal(trade.amount, to: &out)
            JSONWriter.appendRaw(",\"quantity\":", to: &out)
            JSONWriter.appendDecimal(trade.quantity, to: &out)
            JSONWriter.appendRaw(trade.takerSide == .buy ? ",\"takerSide\":\"buy\"" : ",\"takerSide\":\"sell\"", to: &out)
            JSONWriter.appendRaw(",\"createTime\":", to: &out)
            JSONWriter.appendInt(trade.createTime, to: &out)
            JSONWriter.appendRaw(",\"price\":", to: &out)
            JSONWriter.appendDecimal(trade.price, to: &out)
            JSONWriter.appendRaw(",\"id\":", to: &out)
            if numericIds {
                JSONWriter.appendInt(trade.id, to: &out)
            } else {
                out.append(UInt8(ascii: "\""))
                JSONWriter.appendInt(trade.id, to: &out)
                out.append(UInt8(ascii: "\""))
            }
            JSONWriter.appendRaw(",\"ts\":", to: &out)
            JSONWriter.appendInt(trade.pushTime, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        JSONWriter.appendRaw("]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The REST body of `GET /markets/{symbol}/trades`: newest first, `takerSide` uppercase, no symbol.
    public static func restTrades(_ trades: [SimulatedTrade]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, trade) in trades.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendRaw("{\"id\":\"", to: &out)
            JSONWriter.appendInt(trade.id, to: &out)
            JSONWriter.appendRaw("\",\"price\":", to: &out)
            JSONWriter.appendDecimal(trade.price, to: &out)
            JSONWriter.appendRaw(",\"quantity\":", to: &out)
            JSONWriter.appendDecimal(trade.quantity, to: &out)
            JSONWriter.appendRaw(",\"amount\":", to: &out)
            JSONWriter.appendDecimal(trade.amount, to: &out)
            JSONWriter.appendRaw(trade.takerSide == .buy ? ",\"takerSide\":\"BUY\"" : ",\"takerSide\":\"SELL\"", to: &out)
            JSONWriter.appendRaw(",\"ts\":", to: &out)
            JSONWriter.appendInt(trade.pushTime, to: &out)
            JSONWriter.appendRaw(",\"createTime\":", to: &out)
            JSONWriter.appendInt(trade.createTime, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The REST body of `GET /markets` for the simulated instruments (all "NORMAL").
    public static func markets(_ instruments: [SimulatedInstrument], listedAt: Int64) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, instrument) in instruments.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            let parts = instrument.nativeSymbol.split(separator: "_", maxSplits: 1).map(String.init)
            let base = parts.first ?? instrument.nativeSymbol
            let quote = parts.count > 1 ? parts[1] : ""
            JSONWriter.appendRaw("{\"symbol\":", to: &out)
            JSONWriter.appendString(instrument.nativeSymbol, to: &out)
            JSONWriter.appendRaw(",\"baseCurrencyName\":", to: &out)
            JSONWriter.appendString(base, to: &out)
            JSONWriter.appendRaw(",\"quoteCurrencyName\":", to: &out)
            JSONWriter.appendString(quote, to: &out)
            JSONWriter.appendRaw(",\"displayName\":", to: &out)
            JSONWriter.appendString("\(base)/\(quote)", to: &out)
            JSONWriter.appendRaw(",\"state\":\"NORMAL\",\"visibleStartTime\":", to: &out)
            JSONWriter.appendInt(listedAt, to: &out)
            JSONWriter.appendRaw(",\"tradableStartTime\":", to: &out)
            JSONWriter.appendInt(listedAt, to: &out)
            JSONWriter.appendRaw(",\"symbolTradeLimit\":{\"symbol\":", to: &out)
            JSONWriter.appendString(instrument.nativeSymbol, to: &out)
            JSONWriter.appendRaw(",\"priceScale\":", to: &out)
            JSONWriter.appendInt(Int64(instrument.startPrice.scale), to: &out)
            JSONWriter.appendRaw(",\"quantityScale\":", to: &out)
            JSONWriter.appendInt(Int64(instrument.quantityScale), to: &out)
            JSONWriter.appendRaw(",\"amountScale\":", to: &out)
            JSONWriter.appendInt(Int64(instrument.startPrice.scale), to: &out)
            JSONWriter.appendRaw(",\"minQuantity\":", to: &out)
            JSONWriter.appendDecimal(ExactDecimal(mantissa: 1, scale: instrument.quantityScale), to: &out)
            JSONWriter.appendRaw(",\"minAmount\":\"1\",\"highestBid\":\"0\",\"lowestAsk\":\"0\"}}", to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `{"event":"subscribe","channel":"trades","symbols":[...]}` — `channel` a string, as Poloniex acks.
    public static func subscribeAck(channel: String, symbols: [String], event: String = "subscribe") -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"event\":", to: &out)
        JSONWriter.appendString(event, to: &out)
        JSONWriter.appendRaw(",\"channel\":", to: &out)
        JSONWriter.appendString(channel, to: &out)
        JSONWriter.appendRaw(",\"symbols\":[", to: &out)
        for (i, symbol) in symbols.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(symbol, to: &out)
        }
        JSONWriter.appendRaw("]}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static let pong = #"{"event":"pong"}"#

    public static func error(message: String) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"event\":\"error\",\"message\":", to: &out)
        JSONWriter.appendString(message, to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
