import MarketData

extension PoloniexWire {
    /// A `book_lv2` frame for one symbol, keys in the venue's order:
    /// `{"channel":"book_lv2","data":[{"symbol","createTime","asks","bids","lastId","id","ts"}],"action":"snapshot"|"update"}`,
    /// prices and quantities as strings, asks and bids best first in a snapshot and in the order
    /// they changed in an update.
    public static func bookFrame(
        symbol: String, asks: [BookLevel], bids: [BookLevel], lastId: Int64, id: Int64, createTime: Int64, pushTime: Int64,
        snapshot: Bool
    ) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(160 + (asks.count + bids.count) * 28)
        JSONWriter.appendRaw("{\"channel\":\"book_lv2\",\"data\":[{\"symbol\":", to: &out)
        JSONWriter.appendString(symbol, to: &out)
        JSONWriter.appendRaw(",\"createTime\":", to: &out)
        JSONWriter.appendInt(createTime, to: &out)
        JSONWriter.appendRaw(",\"asks\":", to: &out)
        JSONWriter.appendBookLevels(asks, to: &out)
        JSONWriter.appendRaw(",\"bids\":", to: &out)
        JSONWriter.appendBookLevels(bids, to: &out)
        JSONWriter.appendRaw(",\"lastId\":", to: &out)
        JSONWriter.appendInt(lastId, to: &out)
        JSONWriter.appendRaw(",\"id\":", to: &out)
        JSONWriter.appendInt(id, to: &out)
        JSONWriter.appendRaw(",\"ts\":", to: &out)
        JSONWriter.appendInt(pushTime, to: &out)
        JSONWriter.appendRaw(snapshot ? "}],\"action\":\"snapshot\"}" : "}],\"action\":\"update\"}", to: &out)
        return String(decoding: out, as: UTF8.self)
    }

}
