import MarketData

/// Poloniex spot `book_lv2` frames (the public websocket's level-2 channel).
///
/// Facts (Poloniex v3 docs, "Book Level 2", and the 2022-08-21 capture in
/// Tests/ExchangesTests/Fixtures): subscribe `{"event":"subscribe","channel":["book_lv2"],"symbols":[...]}`;
/// the first message per symbol is `"action":"snapshot"` (the top 20 levels per side), then
/// `"action":"update"` messages carry the levels that changed (quantity "0" removes the level;
/// a level leaving the top 20 is removed explicitly, so the book stays at 20). Each message has
/// `id` and `lastId`: an update follows the previous message iff its `lastId` equals that
/// message's `id` ("If the id of the last message does not match the lastId of the current
/// message then the client has lost connection with the server and must re-subscribe").
/// `createTime` is when the book changed, `ts` when the message was pushed (the frame's `time`).
///
/// ```
/// {"channel":"book_lv2","data":[{"symbol":"BTC_USDT","createTime":1661123517832,"asks":[["21617.15","0.34"]],
///  "bids":[],"lastId":4485675,"id":4485676,"ts":1661123517837}],"action":"update"}
/// ```
extension Poloniex {
    /// The websocket channel carrying level-2 books.
    public static let bookChannel = "book_lv2"

    /// A real `book_lv2` update of the 2022-08-21 capture (line 17).
    public static let sampleBookUpdateFrame =
        #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","createTime":1661123517832,"asks":[["21617.15","0.34"]],"bids":[],"lastId":4485675,"id":4485676,"ts":1661123517837}],"action":"update"}"#

    /// A `book_lv2` snapshot in the capture's layout, trimmed to three levels per side (the
    /// capture's BTC_USDT snapshot of line 14 starts with these levels).
    public static let sampleBookSnapshotFrame =
        #"{"channel":"book_lv2","data":[{"symbol":"BTC_USDT","createTime":1661123517798,"asks":[["21612.27","0.34"],["21614.62","0.01"],["21614.71","0.68"]],"bids":[["21612.26","0.001"],["21610.79","0.34"],["21609.5","0.018"]],"lastId":4485674,"id":4485675,"ts":1661123517810}],"action":"snapshot"}"#
}

extension FrameParseError {
    /// A scanner error inside a book message: bad values are `invalidBook`, bad JSON stays `malformedJSON`.
    init(book error: JSONError) {
        let code: Code =
            (error.code == .badValue || error.code == .wrongType || error.code == .outOfRange) ? .invalidBook : .malformedJSON
        self.init(code, error.reason, offset: error.offset)
    }
}

extension PoloniexFrameParser {
    /// Parses one frame of a connection carrying trades and books: trades go to `trades`,
    /// `book_lv2` messages to `books` (one `BookFrame` per element of `data`, answered with
    /// `.books(count:)`). A frame that fails anywhere appends nothing to either.
    public mutating func parse(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into trades: inout [Trade], books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        let booksBefore = books.count
        return try appendingAllOrNothing(to: &trades, and: &books) { trades, books throws(FrameParseError) in
            if fastPath, let message = try parseBookFrameFast(frame, receivedAt: receivedAt, into: &books) {
                return message
            }
            books.removeSubrange(booksBefore...)  // the fast path's partial output, if any
            let message = try parse(frame, receivedAt: receivedAt, into: &trades)
            guard message == .ignored(channel: Poloniex.bookChannel) else { return message }
            return try parseBookFrame(frame, receivedAt: receivedAt, into: &books)
        }
    }

    /// The layout Poloniex sends, `{"channel":"book_lv2","data":[...],"action":"..."}`, read in
    /// one pass; nil (books possibly appended, caller truncates) for any other layout.
    mutating func parseBookFrameFast(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage? {
        guard let base = frame.baseAddress else { return nil }
        var cursor = FastCursor(base: base, end: frame.count, position: 0)
        guard cursor.literal(#"{"channel":"book_lv2","data":"#) else { return nil }
        var s = JSONScanner(frame)
        s.position = cursor.position
        let first = books.count
        do throws(JSONError) {
            try parseBookArray(&s, receivedAt: receivedAt, into: &books)
            cursor.position = s.position
            let kind: BookFrame.Kind
            if cursor.literal(#","action":"update"}"#) {
                kind = .update
            } else if cursor.literal(#","action":"snapshot"}"#) {
                kind = .snapshot
            } else {
                return nil
            }
            s.position = cursor.position
            guard s.isAtEnd() else { return nil }
            try finish(&books, from: first, kind: kind, at: 0)
            return .books(count: books.count - first)
        } catch {
            throw FrameParseError(book: error)
        }
    }

    /// Any member order: `channel` must be `book_lv2`, `action` `snapshot` or `update`, `data`
    /// an array of book messages.
    mutating func parseBookFrame(
        _ frame: UnsafeBufferPointer<UInt8>, receivedAt: Int64, into books: inout [BookFrame]
    ) throws(FrameParseError) -> ExchangeMessage {
        var s = JSONScanner(frame)
        let first = books.count
        var action: BookFrame.Kind?
        var dataAt: Int?
        do throws(JSONError) {
            try s.beginObject()
            var firstKey = true
            while let key = try s.nextKey(first: &firstKey) {
                if s.token(key, equals: "data") {
                    dataAt = s.position
                    try s.skipValue()
                } else if s.token(key, equals: "action") {
                    let at = s.position
                    let token = try s.readString()
                    if s.token(token, equals: "snapshot") {
                        action = .snapshot
                    } else if s.token(token, equals: "update") {
                        action = .update
                    } else {
                        throw JSONError(.badValue, "book action must be \"snapshot\" or \"update\"", at: at)
                    }
                } else {
                    try s.skipValue()
                }
            }
            guard let dataAt else { throw JSONError(.badValue, "book frame without data", at: 0) }
            guard let action else { throw JSONError(.badValue, "book frame without action", at: 0) }
            var again = JSONScanner(frame)
            again.position = dataAt
            try parseBookArray(&again, receivedAt: receivedAt, into: &books)
            try finish(&books, from: first, kind: action, at: dataAt)
        } catch {
            throw FrameParseError(book: error)
        }
        return .books(count: books.count - first)
    }

    /// Sets the kind of the messages appended since `first` and checks what that kind requires.
    func finish(_ books: inout [BookFrame], from first: Int, kind: BookFrame.Kind, at offset: Int) throws(JSONError) {
        for index in first..<books.count {
            books[index].kind = kind
            if kind == .update && books[index].previousSequence == nil {
                throw JSONError(.badValue, "book update has no lastId", at: offset)
            }
        }
    }

    mutating func parseBookArray(_ s: inout JSONScanner, receivedAt: Int64, into books: inout [BookFrame]) throws(JSONError) {
        try s.beginArray()
        var first = true
        while try s.nextElement(first: &first) {
            books.append(try parseBookMessage(&s, receivedAt: receivedAt))
        }
    }

    /// One element of `data`, with kind `.update` until the frame's `action` is known.
    mutating func parseBookMessage(_ s: inout JSONScanner, receivedAt: Int64) throws(JSONError) -> BookFrame {
        let start = s.position
        var symbol: CachedSymbol?
        var asks: [BookLevel]?
        var bids: [BookLevel]?
        var createTime: Int64?
        var pushTime: Int64?
        var id: Int64?
        var lastId: Int64?
        try s.beginObject()
        var first = true
        while let key = try s.nextKey(first: &first) {
            if s.token(key, equals: "asks") {
                asks = try s.readBookLevels()
            } else if s.token(key, equals: "bids") {
                bids = try s.readBookLevels()
            } else if s.token(key, equals: "symbol") {
                let token = try s.readString()
                if token.hasEscapes || token.range.isEmpty || token.range.count > 64 {
                    throw JSONError(.badValue, "bad symbol", at: token.range.lowerBound)
                }
                symbol = symbols.lookup(s.rawBytes(token))
            } else if s.token(key, equals: "id") {
                id = try readTime(&s)
            } else if s.token(key, equals: "lastId") {
                lastId = try readTime(&s)
            } else if s.token(key, equals: "createTime") {
                let at = s.position
                createTime = try validTradeTime(try readTime(&s), at: at)
            } else if s.token(key, equals: "ts") {
                let at = s.position
                pushTime = try validTradeTime(try readTime(&s), at: at)
            } else {
                try s.skipValue()
            }
        }
        func missing(_ field: String) -> JSONError { JSONError(.badValue, "book message has no \(field)", at: start) }
        guard let symbol else { throw missing("symbol") }
        guard let asks else { throw missing("asks") }
        guard let bids else { throw missing("bids") }
        guard let id else { throw missing("id") }
        // `ts` (push time) rather than `createTime`: a snapshot's createTime is when that book last
        // changed, possibly hours ago, and records and gap intervals need the message's own time.
        guard let time = pushTime ?? createTime else { throw missing("ts") }
        return BookFrame(
            nativeSymbol: symbol.native, kind: .update, bids: bids, asks: asks, time: time, receivedAt: receivedAt,
            sequence: id, previousSequence: lastId)
    }
}
