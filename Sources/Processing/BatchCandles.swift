import MarketData

/// The reference computation of candles: all trades at once, no windows kept open, no clock.
///
/// The streaming processor must end up with exactly these values (latest value per key), however
/// it was stopped, restarted or rebalanced. Rules, written as plainly as possible:
/// - a trade counts once per (exchange, symbol, tradeId): the first one in log order wins;
/// - a trade belongs to the window `[start, start + interval)` holding its time;
/// - open is the price of the trade with the earliest (time, log position), close the latest;
/// - high/low are the extreme prices; volumes are exact sums; vwap = quoteVolume / volume at 10
///   fractional digits, half to even;
/// - a trade whose time is outside `Trade.validTimes`, or that would make a volume sum of one of
///   its windows need more than 256 bits (given the trades accepted before it, in log order), is
///   rejected: it counts nowhere, and its id does not make a later trade a duplicate.
public enum BatchCandles {
    /// A trade with its position in the log (per partition: the offset; only the order matters).
    public struct SequencedTrade: Sendable {
        public var trade: Trade
        public var sequence: Int64
        public init(trade: Trade, sequence: Int64) {
            self.trade = trade
            self.sequence = sequence
        }
    }

    /// Final candles by Kafka key (`exchange:SYMBOL:interval:start`); `revision` 0, `final` true.
    /// `trades` must be in log order.
    public static func compute(_ trades: [SequencedTrade], intervals: [CandleInterval]) -> [String: Candle] {
        computeWithRejections(trades, intervals: intervals).candles
    }

    /// `compute`, plus the trades rejected (time out of range, or sums that would overflow).
    public static func computeWithRejections(_ trades: [SequencedTrade], intervals: [CandleInterval]) -> (
        candles: [String: Candle], rejected: [SequencedTrade]
    ) {
        struct DedupKey: Hashable {
            var exchange: String
            var symbol: String
            var id: String
        }
        struct Sums {
            var volume = ExactDecimal.zero
            var quote = ExactDecimal.zero
            var buy = ExactDecimal.zero
            var sell = ExactDecimal.zero
        }
        var seen = Set<DedupKey>()
        var rejected: [SequencedTrade] = []
        var groups: [String: (interval: CandleInterval, members: [SequencedTrade])] = [:]
        var sums: [String: Sums] = [:]
        for t in trades {
            guard Trade.validTimes.contains(t.trade.time) else {
                rejected.append(t)
                continue
            }
            let dedup = DedupKey(exchange: t.trade.exchange.name, symbol: t.trade.symbol.rawValue, id: t.trade.tradeId)
            if seen.contains(dedup) { continue }
            var updated: [(key: String, interval: CandleInterval, sums: Sums)] = []
            var overflows = false
            for interval in intervals {
                let start = interval.windowStart(containing: t.trade.time)
                let key = Candle.kafkaKey(exchange: t.trade.exchange, symbol: t.trade.symbol, interval: interval, start: start)
                var s = sums[key] ?? Sums()
                do throws(DecimalError) {
                    s.volume = try s.volume.adding(t.trade.quantity)
                    s.quote = try s.quote.adding(t.trade.quoteQuantity)
                    if t.trade.side == .buy {
                        s.buy = try s.buy.adding(t.trade.quantity)
                    } else {
                        s.sell = try s.sell.adding(t.trade.quantity)
                    }
                } catch {
                    overflows = true
                    break
                }
                updated.append((key, interval, s))
            }
            if overflows {
                rejected.append(t)
                continue
            }
            seen.insert(dedup)
            for (key, interval, s) in updated {
                sums[key] = s
                groups[key, default: (interval, [])].members.append(t)
            }
        }
        var result: [String: Candle] = [:]
        for (key, (interval, members)) in groups {
            let first = members[0].trade
            let start = interval.windowStart(containing: first.time)
            let byTime = members.sorted { ($0.trade.time, $0.sequence) < ($1.trade.time, $1.sequence) }
            var high = first.price
            var low = first.price
            for m in members {
                if m.trade.price > high { high = m.trade.price }
                if m.trade.price < low { low = m.trade.price }
            }
            let s = sums[key]!
            result[key] = Candle(
                exchange: first.exchange, symbol: first.symbol, interval: interval, start: start,
                end: start + interval.milliseconds, open: byTime.first!.trade.price, high: high, low: low,
                close: byTime.last!.trade.price, volume: s.volume, quoteVolume: s.quote, buyVolume: s.buy, sellVolume: s.sell,
                trades: Int64(members.count), vwap: Candle.vwap(quoteVolume: s.quote, volume: s.volume),
                revision: 0, isFinal: true)
        }
        return (result, rejected)
    }

    /// The fields a batch computation determines (everything but `revision` and `final`), for
    /// comparing a streamed candle with the reference; nil when they agree.
    public static func difference(_ streamed: Candle, _ reference: Candle) -> String? {
        var diffs: [String] = []
        func check<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { diffs.append("\(name): \(a) != \(b)") } }
        check("exchange", streamed.exchange, reference.exchange)
        check("symbol", streamed.symbol, reference.symbol)
        check("interval", streamed.interval, reference.interval)
        check("start", streamed.start, reference.start)
        check("end", streamed.end, reference.end)
        check("open", streamed.open, reference.open)
        check("high", streamed.high, reference.high)
        check("low", streamed.low, reference.low)
        check("close", streamed.close, reference.close)
        check("volume", streamed.volume, reference.volume)
        check("quoteVolume", streamed.quoteVolume, reference.quoteVolume)
        check("buyVolume", streamed.buyVolume, reference.buyVolume)
        check("sellVolume", streamed.sellVolume, reference.sellVolume)
        check("trades", streamed.trades, reference.trades)
        check("vwap", streamed.vwap, reference.vwap)
        return diffs.isEmpty ? nil : diffs.joined(separator: ", ")
    }
}
