import MarketData

/// Parsers for Kraken REST bodies.
public enum KrakenREST {
    /// Parses `GET /0/public/Trades`: `{"error":[],"result":{"<PAIR>":[[price, volume, time,
    /// "b"|"s", "m"|"l", misc, trade_id], ...],"last":"..."}}`. The rows are under the pair's
    /// canonical name ("XXBTZUSD"), whatever the request spelled: the one array in `result` is
    /// read. `time` is seconds with a fraction, read from its text to ms (truncated); "b"/"s" is
    /// the taker side; rows without a trade id (older API) are refused. A non-empty `error` throws.
    public static func parseTrades(_ body: [UInt8], nativeSymbol: String, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    {
        let symbol = Symbol(normalizing: nativeSymbol)
        return try parseBody(body) { (s: inout JSONScanner) throws(JSONError) -> [Trade] in
            var trades: [Trade] = []
            var sawResult = false
            var arrays = 0
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                if s.token(key, equals: "error") {
                    let errors = try readErrors(&s)
                    if !errors.isEmpty { throw JSONError(.badValue, "Kraken error: \(errors.joined(separator: ", "))", at: 0) }
                } else if s.token(key, equals: "result") {
                    sawResult = true
                    try s.beginObject()
                    var firstPair = true
                    while try s.nextKey(first: &firstPair) != nil {
                        guard try s.peek() == UInt8(ascii: "[") else {
                            try s.skipValue()  // "last"
                            continue
                        }
                        arrays += 1
                        if arrays > 1 { throw JSONError(.badValue, "result holds more than one pair", at: s.position) }
                        try s.beginArray()
                        var firstRow = true
                        while try s.nextElement(first: &firstRow) {
                            trades.append(try parseRow(&s, nativeSymbol: nativeSymbol, symbol: symbol, receivedAt: receivedAt))
                        }
                    }
                } else {
                    try s.skipValue()
                }
            }
            guard sawResult else { throw JSONError(.badValue, "body has no result", at: 0) }
            return trades
        }
    }

    public static func parseTrades(_ body: String, nativeSymbol: String, receivedAt: Int64) throws(FrameParseError)
        -> [Trade]
    {
        try parseTrades(Array(body.utf8), nativeSymbol: nativeSymbol, receivedAt: receivedAt)
    }

    static func parseRow(_ s: inout JSONScanner, nativeSymbol: String, symbol: Symbol, receivedAt: Int64) throws(JSONError)
        -> Trade
    {
        let start = s.position
        try s.beginArray()
        var first = true
        var index = 0
        var price: ExactDecimal?
        var volume: ExactDecimal?
        var time: Int64?
        var side: Side?
        var id: String?
        while try s.nextElement(first: &first) {
            switch index {
            case 0: price = try s.readExactNumber()
            case 1: volume = try s.readExactNumber()
            case 2:
                let at = s.position
                let text: UnsafeBufferPointer<UInt8>
                if try s.peek() == UInt8(ascii: "\"") {
                    text = s.rawBytes(try s.readString())
                } else {
                    text = UnsafeBufferPointer(rebasing: s.bytes[try s.readNumber()])
                }
                guard let ms = millisecondsFromSecondsText(text) else { throw JSONError(.badValue, "bad trade time", at: at) }
                time = try validTradeTime(ms, at: at)
            case 3:
                let token = try s.readString()
                let bytes = s.rawBytes(token)
                guard bytes.count == 1, bytes[0] == UInt8(ascii: "b") || bytes[0] == UInt8(ascii: "s") else {
                    throw JSONError(.badValue, "side must be \"b\" or \"s\"", at: token.range.lowerBound)
                }
                side = bytes[0] == UInt8(ascii: "b") ? .buy : .sell
            case 6: id = try readIdText(&s)
            default: try s.skipValue()
            }
            index += 1
        }
        guard let price, let volume, let time, let side else {
            throw JSONError(.badValue, "trade row has fewer than 4 fields", at: start)
        }
        guard let id else { throw JSONError(.badValue, "trade row has no trade id (7th field)", at: start) }
        let quote = try exactQuote(price, volume, at: start)
        return Trade(
            exchange: Kraken.exchange, symbol: symbol, nativeSymbol: nativeSymbol, tradeId: id, price: price, quantity: volume,
            quoteQuantity: quote, side: side, time: time, receivedAt: receivedAt)
    }

    static func readErrors(_ s: inout JSONScanner) throws(JSONError) -> [String] {
        var errors: [String] = []
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) { errors.append(try s.readStringValue()) }
        return errors
    }

    /// A count of decimals (`pair_decimals`, `lot_decimals`): nil unless an integer in 0...18.
    static func readDecimals(_ s: inout JSONScanner) throws(JSONError) -> Int? {
        if try s.consumeNull() { return nil }
        guard try s.peek() != UInt8(ascii: "\"") else {
            try s.skipValue()
            return nil
        }
        let range = try s.readNumber()
        guard let value = try? JSONScanner.int64(UnsafeBufferPointer(rebasing: s.bytes[range])), (0...18).contains(value) else {
            return nil
        }
        return Int(value)
    }

    /// Parses `GET /0/public/AssetPairs`: native symbol = the v2 name of `wsname` ("XBT/USD" →
    /// "BTC/USD"), REST spelling = `altname`; trading when `status` is "online" (or absent);
    /// `pair_decimals` and `lot_decimals` as the market's price and quantity decimals (the book
    /// checksum needs them). Pairs without a `wsname` (dark pools) are skipped.
    public static func parseAssetPairs(_ body: [UInt8]) throws(FrameParseError) -> [ListedMarket] {
        try parseBody(body) { (s: inout JSONScanner) throws(JSONError) -> [ListedMarket] in
            var markets: [ListedMarket] = []
            var sawResult = false
            try s.beginObject()
            var first = true
            while let key = try s.nextKey(first: &first) {
                if s.token(key, equals: "error") {
                    let errors = try readErrors(&s)
                    if !errors.isEmpty { throw JSONError(.badValue, "Kraken error: \(errors.joined(separator: ", "))", at: 0) }
                } else if s.token(key, equals: "result") {
                    sawResult = true
                    try s.beginObject()
                    var firstPair = true
                    while let pairKey = try s.nextKey(first: &firstPair) {
                        let name = try s.string(pairKey)
                        var altname: String?
                        var wsname: String?
                        var status = "online"
                        var pairDecimals: Int?
                        var lotDecimals: Int?
                        try s.beginObject()
                        var firstField = true
                        while let field = try s.nextKey(first: &firstField) {
                            if s.token(field, equals: "altname") {
                                altname = try s.readStringValue()
                            } else if s.token(field, equals: "wsname") {
                                wsname = try s.readStringValue()
                            } else if s.token(field, equals: "status") {
                                status = try s.readStringValue()
                            } else if s.token(field, equals: "pair_decimals") {
                                pairDecimals = try readDecimals(&s)
                            } else if s.token(field, equals: "lot_decimals") {
                                lotDecimals = try readDecimals(&s)
                            } else {
                                try s.skipValue()
                            }
                        }
                        guard let wsname, !wsname.isEmpty else { continue }
                        let native = Kraken.v2Symbol(wsname: wsname)
                        markets.append(
                            ListedMarket(
                                nativeSymbol: native, symbol: Symbol(normalizing: native), isTrading: status == "online",
                                restSymbol: altname ?? name, priceDecimals: pairDecimals, quantityDecimals: lotDecimals))
                    }
                } else {
                    try s.skipValue()
                }
            }
            guard sawResult else { throw JSONError(.badValue, "body has no result", at: 0) }
            return markets
        }
    }
}
