import Foundation
import MarketData

/// A request a `/ws` client sends (one JSON object per text message):
///
/// ```json
/// {"op":"subscribe","channel":"trades","symbol":"poloniex:BTC-USDT"}
/// {"op":"subscribe","channel":"candles","symbol":"poloniex:BTC-USDT","interval":"1m"}
/// {"op":"unsubscribe","channel":"candles","symbol":"poloniex:BTC-USDT","interval":"1m"}
/// {"op":"subscribe","channel":"gaps","symbol":"poloniex:BTC-USDT"}
/// {"op":"subscribe","channel":"book","symbol":"poloniex:BTC-USDT"}
/// {"op":"ping"}
/// ```
public enum LiveRequest: Sendable, Hashable {
    case subscribe(LiveTopic)
    case unsubscribe(LiveTopic)
    case ping

    private struct Wire: Decodable {
        var op: String?
        var channel: String?
        var symbol: String?
        var interval: String?
    }

    /// Parses one client message; the error text says what was wrong, for the client.
    public static func parse(_ text: String) -> Result<LiveRequest, LiveProtocolError> {
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(text.utf8)) else {
            return .failure(LiveProtocolError("message is not a JSON object with string fields op, channel, symbol, interval"))
        }
        switch wire.op {
        case "ping": return .success(.ping)
        case "subscribe", "unsubscribe":
            guard let symbolText = wire.symbol else { return .failure(LiveProtocolError("symbol is missing (exchange:SYMBOL, e.g. poloniex:BTC-USDT)")) }
            guard let market = MarketID(symbolText) else {
                return .failure(LiveProtocolError("symbol \"\(symbolText)\" is not exchange:SYMBOL, e.g. poloniex:BTC-USDT"))
            }
            let topic: LiveTopic
            switch wire.channel {
            case "trades":
                topic = .trades(market)
            case "gaps":
                topic = .gaps(market)
            case "book":
                topic = .book(market)
            case "candles":
                guard let intervalText = wire.interval else { return .failure(LiveProtocolError("interval is missing for channel candles (e.g. 1m)")) }
                guard let interval = CandleInterval(intervalText) else {
                    return .failure(LiveProtocolError("interval \"\(intervalText)\" is not a length like 1m, 5m, 1h (1s to 1d)"))
                }
                topic = .candles(market, interval)
            case let other:
                return .failure(LiveProtocolError("channel \(other.map { "\"\($0)\"" } ?? "is missing;") must be \"trades\", \"candles\", \"gaps\" or \"book\""))
            }
            return .success(wire.op == "subscribe" ? .subscribe(topic) : .unsubscribe(topic))
        case let other:
            return .failure(LiveProtocolError("op \(other.map { "\"\($0)\"" } ?? "is missing;") must be \"subscribe\", \"unsubscribe\" or \"ping\""))
        }
    }
}

/// Why a client message was refused; sent back as `{"type":"error","message":...}`.
public struct LiveProtocolError: Error, Sendable, Hashable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Messages the server sends on `/ws` (one JSON object per text message). `data` is exactly the
/// docs/contracts.md trade, candle or gap value. Events (trade, candle, gap, book) come as UTF-8
/// bytes, which go to the socket without a `String` in between; replies as `String`.
///
/// ```json
/// {"type":"trade","symbol":"poloniex:BTC-USDT","data":{"v":1,"exchange":"poloniex",...}}
/// {"type":"candle","symbol":"poloniex:BTC-USDT","interval":"1m","data":{"v":1,...,"final":false,"complete":true}}
/// {"type":"gap","symbol":"poloniex:BTC-USDT","data":{"v":1,"exchange":"poloniex",...,"from":1661122800000,"to":1661122805000,"repaired":false}}
/// {"type":"book","symbol":"poloniex:BTC-USDT","data":{"symbol":"poloniex:BTC-USDT","exchange":"poloniex","sequence":"4485678","time":1661123517859,"bestBid":["21612.26","0.68"],"bestAsk":["21612.27","0.68"],"spread":"0.01","mid":"21612.265","crossed":false,"levels":{"bids":20,"asks":20},"bids":[["21612.26","0.68"],...],"asks":[...]}}
/// {"type":"subscribed","channel":"candles","symbol":"poloniex:BTC-USDT","interval":"1m"}
/// {"type":"unsubscribed","channel":"trades","symbol":"poloniex:BTC-USDT"}
/// {"type":"pong"}
/// {"type":"error","message":"interval \"7x\" is not a length like 1m, 5m, 1h (1s to 1d)"}
/// ```
public enum LiveMessage {
    public static func trade(_ trade: Trade) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        JSONWriter.appendRaw("{\"type\":\"trade\",\"symbol\":", to: &out)
        JSONWriter.appendString(trade.market.description, to: &out)
        JSONWriter.appendRaw(",\"data\":", to: &out)
        trade.appendJSON(to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    public static func candle(_ candle: Candle) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        JSONWriter.appendRaw("{\"type\":\"candle\",\"symbol\":", to: &out)
        JSONWriter.appendString(candle.market.description, to: &out)
        JSONWriter.appendRaw(",\"interval\":", to: &out)
        JSONWriter.appendString(candle.interval.description, to: &out)
        JSONWriter.appendRaw(",\"data\":", to: &out)
        candle.appendJSON(to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    public static func gap(_ gap: Gap) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        JSONWriter.appendRaw("{\"type\":\"gap\",\"symbol\":", to: &out)
        JSONWriter.appendString(gap.market.description, to: &out)
        JSONWriter.appendRaw(",\"data\":", to: &out)
        gap.appendJSON(to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The top `LiveHub.bookDepth` levels of a book (sent at most every `LiveHub.bookInterval`).
    public static func book(_ view: BookView) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(2048)
        JSONWriter.appendRaw("{\"type\":\"book\",\"symbol\":", to: &out)
        JSONWriter.appendString(view.market.description, to: &out)
        JSONWriter.appendRaw(",\"data\":", to: &out)
        view.appendJSON(to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `warning`: a sentence about the subscription (a market or interval the server has nothing of yet).
    public static func ack(_ type: String, _ topic: LiveTopic, warning: String? = nil) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"type\":", to: &out)
        JSONWriter.appendString(type, to: &out)
        switch topic {
        case .trades(let market):
            JSONWriter.appendRaw(",\"channel\":\"trades\",\"symbol\":", to: &out)
            JSONWriter.appendString(market.description, to: &out)
        case .candles(let market, let interval):
            JSONWriter.appendRaw(",\"channel\":\"candles\",\"symbol\":", to: &out)
            JSONWriter.appendString(market.description, to: &out)
            JSONWriter.appendRaw(",\"interval\":", to: &out)
            JSONWriter.appendString(interval.description, to: &out)
        case .gaps(let market):
            JSONWriter.appendRaw(",\"channel\":\"gaps\",\"symbol\":", to: &out)
            JSONWriter.appendString(market.description, to: &out)
        case .book(let market):
            JSONWriter.appendRaw(",\"channel\":\"book\",\"symbol\":", to: &out)
            JSONWriter.appendString(market.description, to: &out)
        }
        if let warning {
            JSONWriter.appendRaw(",\"warning\":", to: &out)
            JSONWriter.appendString(warning, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    public static let pong = "{\"type\":\"pong\"}"

    public static func error(_ message: String) -> String {
        var out: [UInt8] = []
        JSONWriter.appendRaw("{\"type\":\"error\",\"message\":", to: &out)
        JSONWriter.appendString(message, to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
