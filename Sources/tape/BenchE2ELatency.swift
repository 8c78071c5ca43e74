import ArgumentParser
import ExchangeSimulator
import Exchanges
import Foundation
import MarketData
import Synchronization

/// Percentiles of latencies in microseconds, shown in milliseconds.
struct LatencySummary {
    var count = 0
    var p50 = Double.nan
    var p99 = Double.nan
    var max = Double.nan

    init(_ micros: [Int64]) {
        guard !micros.isEmpty else { return }
        let sorted = micros.sorted()
        func at(_ p: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000 }
        count = sorted.count
        p50 = at(0.5)
        p99 = at(0.99)
        max = Double(sorted.last!) / 1000
    }

    var text: String { count == 0 ? "none" : String(format: "p50 %.2f, p99 %.2f, max %.1f ms (n=%d)", p50, p99, max, count) }
}

struct E2ERunResult {
    var achievedRate: Double
    var candleUpdatesPerSecond: Double
    var trade: LatencySummary
    var candle: LatencySummary
    var candleOldest: LatencySummary
    var generation: LatencySummary
    /// Median generation lag (ms) over the first and the last 2 s measured: growing lag = not keeping up.
    var lagStart: Double
    var lagEnd: Double
    var rssMedianMB: Double
    var rssMaxMB: Double
    var unmatchedCandles: Int
    var missingTrades: Int
    var wsDropped: Double?
    /// What the simulator produced while measuring (nil when its metrics could not be read).
    var load: SimulatedLoad?
    /// CPU `tape up` used while measuring, in cores (1 = one core busy all the time).
    var upCores: Double?
    /// `tape up`'s CPU time per trade delivered on /ws, in µs: what a burst costs to drain.
    var upMicrosPerTrade: Double?
    /// CPU this benchmark's own client (the /ws reader) used meanwhile, in cores.
    var clientCores: Double?
    /// Ingestion's receipt → the server's read of each trade (`tape_server_trade_delay_seconds`
    /// over the measured seconds), p50 and p99 in ms; the rest of a trade's latency is the /ws path.
    var serverRead: (p50: Double, p99: Double)?
    /// Ingestion's produce of a trade → the broker's acknowledgement (`tape_produce_latency_seconds`
    /// of `tape.trades`, 1 record in 64), p50 and p99 in ms.
    var tradeProduce: (p50: Double, p99: Double)?

    func sustained(target: Double) -> Bool {
        achievedRate >= 0.9 * target && lagEnd <= 2 * lagStart + 50 && (wsDropped ?? 0) == 0
    }

    func describe(target: Double) -> String {
        var s = String(
            format: "%.0f trades/s on /ws (%.1f%% of target), %.0f candle updates/s", achievedRate, achievedRate / target * 100, candleUpdatesPerSecond)
        s += (sustained(target: target) ? "" : "  -- NOT SUSTAINED") + "\n"
        s += "    trade  frame receipt -> /ws:                 \(trade.text)\n"
        if let serverRead {
            s += String(
                format: "    trade  frame receipt -> server read:         p50 %.2f, p99 %.2f ms (server's histogram, interpolated in its buckets)\n",
                serverRead.p50, serverRead.p99)
        }
        if let tradeProduce {
            s += String(
                format: "    trade  produced -> broker acknowledged:      p50 %.2f, p99 %.2f ms (producer's histogram, 1 trade in 64)\n",
                tradeProduce.p50, tradeProduce.p99)
        }
        s += "    candle newest included trade -> /ws:         \(candle.text)\n"
        s += "    candle oldest trade added by the update:     \(candleOldest.text)\n"
        s +=
            "    generation -> /ws (includes simulator queue): \(generation.text); median lag first 2 s \(String(format: "%.1f", lagStart)) ms, last 2 s \(String(format: "%.1f", lagEnd)) ms\n"
        s += "    load produced: \(load?.text ?? "unknown (the simulator's metrics could not be read)")\n"
        if let upCores, let upMicrosPerTrade {
            s += String(format: "    tape up CPU: %.2f cores, %.1f µs per trade", upCores, upMicrosPerTrade)
            s += clientCores.map { String(format: " (this client meanwhile: %.2f cores)", $0) } ?? ""
            s += "\n"
        }
        s += String(format: "    tape up RSS: median %.1f MB, max %.1f MB", rssMedianMB, rssMaxMB)
        s +=
            "; candle updates not matched to trades: \(unmatchedCandles); trades missing on /ws: \(missingTrades); /ws messages dropped by the server: \(wsDropped.map { String(Int($0)) } ?? "unknown")"
        return s
    }
}

/// A Prometheus histogram's change between two scrapes of `/metrics` (the label sets that contain
/// `label`, or all, summed):
/// cumulative counts per upper bound, and quantiles interpolated within a bucket the way
/// Prometheus' `histogram_quantile` does (so a figure is at most one bucket wide off).
struct HistogramDelta {
    /// (upper bound in seconds, observations at or below it), ascending; the last is +Inf.
    var buckets: [(bound: Double, count: Double)]

    init?(before: String?, after: String, name: String, label: String? = nil) {
        func parse(_ text: String) -> [Double: Double] {
            var counts: [Double: Double] = [:]
            for (labels, value) in prometheusSamples(text, name: name + "_bucket", label: label) {
                guard let le = labels.range(of: #"le=""#) else { continue }
                let rest = labels[le.upperBound...]
                guard let close = rest.firstIndex(of: "\""), let bound = rest[..<close] == "+Inf" ? Double.infinity : Double(rest[..<close]) else {
                    continue
                }
                counts[bound, default: 0] += value
            }
            return counts
        }
        let end = parse(after)
        guard !end.isEmpty else { return nil }
        let start = before.map(parse) ?? [:]
        buckets = end.keys.sorted().map { ($0, max(0, end[$0]! - (start[$0] ?? 0))) }
    }

    /// Observations between the two scrapes.
    var count: Double { buckets.last?.count ?? 0 }

    /// The `q` quantile in seconds (NaN without observations); past the last finite bound, that bound.
    func quantile(_ q: Double) -> Double {
        guard count > 0 else { return .nan }
        let rank = q * count
        var lower = 0.0
        var below = 0.0
        for (bound, cumulative) in buckets {
            if cumulative >= rank {
                guard bound.isFinite else { return lower }
                let inBucket = cumulative - below
                return inBucket > 0 ? lower + (bound - lower) * (rank - below) / inBucket : bound
            }
            if bound.isFinite { lower = bound }
            below = cumulative
        }
        return lower
    }
}

/// The simulator's load over the measured seconds, from the change of its `/metrics` counters:
/// how many bursts, how big, how fast inside them, so a figure can be compared across machines.
struct SimulatedLoad {
    var bursts: Double
    var burstTrades: Double
    var calmTrades: Double
    var burstSeconds: Double
    var seconds: Double

    init?(before: String, after: String, seconds: Double) {
        func delta(_ name: String, _ label: String? = nil) -> Double? {
            guard let a = prometheusSum(after, name: name, label: label) else { return nil }
            return a - (prometheusSum(before, name: name, label: label) ?? 0)
        }
        guard let bursts = delta("tape_simulator_bursts_total"), let burstTrades = delta("tape_simulator_trades_total", #"phase="burst""#),
            let calmTrades = delta("tape_simulator_trades_total", #"phase="calm""#), let burstSeconds = delta("tape_simulator_burst_seconds_total")
        else { return nil }
        self.bursts = bursts
        self.burstTrades = burstTrades
        self.calmTrades = calmTrades
        self.burstSeconds = burstSeconds
        self.seconds = seconds
    }

    /// Trades per second inside bursts.
    var burstRate: Double { burstSeconds > 0 ? burstTrades / burstSeconds : .nan }
    /// Share of the trades that came in bursts.
    var burstShare: Double { burstTrades + calmTrades > 0 ? burstTrades / (burstTrades + calmTrades) : .nan }

    var text: String {
        String(
            format: "%.0f trades (%.0f/s); %.0f bursts, %.0f trades each on average, %.0f trades/s inside them (%.1f s in all), %.0f%% of the trades",
            burstTrades + calmTrades, (burstTrades + calmTrades) / max(seconds, 0.001), bursts, bursts > 0 ? burstTrades / bursts : 0, burstRate,
            burstSeconds, burstShare * 100)
    }
}

/// Follows the `/ws` messages of one run: latencies of trades, and of candle updates matched to the
/// trades they include.
struct LatencyTracker {
    struct Window {
        var receivedAt: [Int64] = []
        /// Candle updates whose newest trade has not been seen yet: (trades in the update, received).
        var pending: [(count: Int, at: Int64, previous: Int)] = []
        var lastCount = 0
    }

    let firstWindow: Int64
    let measureFrom: Int64
    let measureUntil: Int64
    var windows: [String: Window] = [:]
    var tradeLatency: [Int64] = []
    var candleLatency: [Int64] = []
    var candleOldestLatency: [Int64] = []
    var generationLatency: [(at: Int64, micros: Int64)] = []
    var tradesMeasured = 0
    var candlesMeasured = 0
    var rssKilobytes: [Int] = []
    /// `/metrics` as measuring started (the simulator's counters then).
    var metricsAtStart: String?
    var upCPUSeconds: Double?
    var clientCPUSeconds: Double?

    init(firstWindow: Int64, measureFrom: Int64, measureUntil: Int64) {
        self.firstWindow = firstWindow
        self.measureFrom = measureFrom
        self.measureUntil = measureUntil
        tradeLatency.reserveCapacity(1 << 20)
    }

    mutating func record(_ bytes: [UInt8], at now: Int64) {
        let measuring = now >= measureFrom
        if bytes.starts(with: Self.tradePrefix) {
            guard let symbol = Self.string(after: Self.symbolKey, in: bytes),
                let receivedAt = Self.integer(after: Self.receivedAtKey, in: bytes),
                let time = Self.integer(after: Self.timeKey, in: bytes)
            else { return }
            if measuring {
                tradesMeasured += 1
                tradeLatency.append(now - receivedAt)
                generationLatency.append((now, now - time * 1000))
            }
            let start = time - time % 1000
            guard start >= firstWindow else { return }
            let key = symbol + "|" + String(start)
            windows[key, default: Window()].receivedAt.append(receivedAt)
            // A candle update may reach the client before the trades channel delivers its newest trade.
            let window = windows[key]!
            if !window.pending.isEmpty {
                var w = window
                w.pending.removeAll { p in
                    guard p.count <= w.receivedAt.count else { return false }
                    candleLatency.append(p.at - w.receivedAt[p.count - 1])
                    candleOldestLatency.append(p.at - w.receivedAt[p.previous])
                    return true
                }
                windows[key] = w
            }
        } else if bytes.starts(with: Self.candlePrefix) {
            guard let symbol = Self.string(after: Self.symbolKey, in: bytes),
                let start = Self.integer(after: Self.startKey, in: bytes),
                let count64 = Self.integer(after: Self.tradesKey, in: bytes), start >= firstWindow
            else { return }
            let count = Int(count64)
            let key = symbol + "|" + String(start)
            var w = windows[key, default: Window()]
            let previous = w.lastCount
            guard count > previous else { return }  // only finalizes the window: no new trade
            w.lastCount = count
            if measuring {
                candlesMeasured += 1
                if count <= w.receivedAt.count {
                    candleLatency.append(now - w.receivedAt[count - 1])
                    candleOldestLatency.append(now - w.receivedAt[previous])
                } else {
                    w.pending.append((count, now, previous))
                }
            }
            windows[key] = w
        }
    }

    func result(seconds: Double, wsDropped: Double?) -> E2ERunResult {
        let rss = rssKilobytes.sorted()
        let mb = { (kb: Int) in Double(kb) / 1024 }
        func lag(from: Int64, to: Int64) -> Double {
            let values = generationLatency.filter { $0.at >= from && $0.at < to }.map(\.micros)
            return LatencySummary(values).p50
        }
        var unmatched = 0
        var missing = 0
        for (_, w) in windows {
            unmatched += w.pending.count
            missing += max(0, w.lastCount - w.receivedAt.count)
        }
        return E2ERunResult(
            achievedRate: Double(tradesMeasured) / seconds,
            candleUpdatesPerSecond: Double(candlesMeasured) / seconds,
            trade: LatencySummary(tradeLatency), candle: LatencySummary(candleLatency), candleOldest: LatencySummary(candleOldestLatency),
            generation: LatencySummary(generationLatency.map(\.micros)),
            lagStart: lag(from: measureFrom, to: measureFrom + 2_000_000), lagEnd: lag(from: measureUntil - 2_000_000, to: measureUntil),
            rssMedianMB: rss.isEmpty ? 0 : mb(rss[rss.count / 2]), rssMaxMB: rss.last.map(mb) ?? 0,
            unmatchedCandles: unmatched, missingTrades: missing, wsDropped: wsDropped,
            upCores: upCPUSeconds.map { $0 / seconds },
            upMicrosPerTrade: upCPUSeconds.flatMap { tradesMeasured > 0 ? $0 / Double(tradesMeasured) * 1_000_000 : nil },
            clientCores: clientCPUSeconds.map { $0 / seconds })
    }

    // A small scanner for the server's own messages (fixed key order, no whitespace).
    static let tradePrefix = Array(#"{"type":"trade","#.utf8)
    static let candlePrefix = Array(#"{"type":"candle","#.utf8)
    static let symbolKey = Array(#""symbol":""#.utf8)
    static let receivedAtKey = Array(#""receivedAt":"#.utf8)
    static let timeKey = Array(#""time":"#.utf8)
    static let startKey = Array(#""start":"#.utf8)
    static let tradesKey = Array(#""trades":"#.utf8)

    static func find(_ needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count, let first = needle.first else { return nil }
        var i = 0
        let last = bytes.count - needle.count
        while i <= last {
            if bytes[i] == first {
                var j = 1
                while j < needle.count && bytes[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i + needle.count }
            }
            i += 1
        }
        return nil
    }

    static func integer(after key: [UInt8], in bytes: [UInt8]) -> Int64? {
        guard var i = find(key, in: bytes) else { return nil }
        var value: Int64 = 0
        var digits = 0
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            value = value * 10 + Int64(bytes[i] - UInt8(ascii: "0"))
            i += 1
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    static func string(after key: [UInt8], in bytes: [UInt8]) -> String? {
        guard let start = find(key, in: bytes) else { return nil }
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

// MARK: - the child process
