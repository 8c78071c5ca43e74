import MarketData
import TapeCommon

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The core of `tape bench parse`: parses raw frames in a loop on the calling thread and reports
/// trades per second. One parser, one reused trades buffer, as the ingest hot loop would run.
public enum ParseBenchmark {
    /// What a run measured.
    public struct Result: Sendable, CustomStringConvertible {
        /// Frames parsed (all passes).
        public var frames: Int
        /// Trades produced.
        public var trades: Int
        /// Frames that failed to parse.
        public var errors: Int
        /// Wall time of the parsing loop.
        public var seconds: Double
        /// CPU time the calling thread spent in the loop (≈ `seconds` on an idle machine; less
        /// when other processes compete for the core).
        public var cpuSeconds: Double
        /// Trades per wall-clock second.
        public var tradesPerSecond: Double { seconds > 0 ? Double(trades) / seconds : 0 }
        /// Trades per second of this thread's CPU time: the one-core rate, robust to a busy machine.
        public var tradesPerCPUSecond: Double { cpuSeconds > 0 ? Double(trades) / cpuSeconds : 0 }
        public var framesPerSecond: Double { seconds > 0 ? Double(frames) / seconds : 0 }
        /// A value derived from every trade so the optimizer cannot drop the work.
        public var checksum: Int64

        public var description: String {
            "\(trades) trades in \(frames) frames (\(errors) errors) in \(rounded(seconds, 3)) s "
                + "(\(rounded(cpuSeconds, 3)) s CPU): \(Int(tradesPerSecond)) trades/s, "
                + "\(Int(tradesPerCPUSecond)) trades/CPU-s, \(Int(framesPerSecond)) frames/s"
        }
    }

    /// Why a benchmark cannot run.
    public struct Unsupported: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Parses `lines` (one raw websocket frame each) repeatedly, whole passes only, until at least
    /// `minimumSeconds` have passed.
    public static func run(
        lines: [[UInt8]], exchange: Exchange = .poloniex, minimumSeconds: Double = 1
    ) throws(Unsupported) -> Result {
        guard let adapter = Venues.adapter(named: exchange.name) else {
            throw Unsupported(
                description:
                    "no frame parser for exchange \"\(exchange.name)\" (supported: \(Venues.names.joined(separator: ", ")))")
        }
        return loop(adapter, lines: lines, minimumSeconds: minimumSeconds)
    }

    /// The measured loop with one venue's parser (opened from the existential).
    static func loop<A: ExchangeAdapter>(_ adapter: A.Type, lines: [[UInt8]], minimumSeconds: Double) -> Result {
        var parser = adapter.makeFrameParser()
        var trades: [Trade] = []
        trades.reserveCapacity(64)
        var frames = 0
        var tradeCount = 0
        var errors = 0
        var checksum: Int64 = 0
        let clock = ContinuousClock()
        let cpuStart = threadCPUSeconds()
        let start = clock.now
        var elapsed: Double = 0
        repeat {
            for line in lines {
                line.withUnsafeBufferPointer { buffer in
                    do {
                        _ = try parser.parse(buffer, receivedAt: 0, into: &trades)
                    } catch {
                        errors += 1
                    }
                }
                frames += 1
                tradeCount += trades.count
                for trade in trades {
                    checksum = checksum &+ trade.time &+ Int64(trade.quoteQuantity.scale)
                }
                trades.removeAll(keepingCapacity: true)
            }
            elapsed = (clock.now - start).seconds
        } while elapsed < minimumSeconds && !lines.isEmpty
        let cpu = threadCPUSeconds() - cpuStart
        return Result(
            frames: frames, trades: tradeCount, errors: errors, seconds: elapsed, cpuSeconds: cpu, checksum: checksum)
    }

    /// Convenience: frames as strings.
    public static func run(
        lines: [String], exchange: Exchange = .poloniex, minimumSeconds: Double = 1
    ) throws(Unsupported) -> Result {
        try run(lines: lines.map { Array($0.utf8) }, exchange: exchange, minimumSeconds: minimumSeconds)
    }

    /// Splits a frames file into lines: one raw frame a line; empty lines and a trailing '\r' dropped.
    public static func lines(fromFileContents bytes: [UInt8]) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var start = 0
        for i in 0...bytes.count where i == bytes.count || bytes[i] == UInt8(ascii: "\n") {
            var end = i
            if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            if end > start { result.append(Array(bytes[start..<end])) }
            start = i + 1
        }
        return result
    }

    /// Deterministic realistic Poloniex trades frames for benchmarking: `tradesPerFrame` trades a
    /// frame, a few symbols with price walks, ids counting up, one frame a line.
    public static func syntheticPoloniexFrames(frames: Int, tradesPerFrame: Int, seed: UInt64 = 42) -> [String] {
        var generator = SplitMix64(seed: seed)
        let symbols: [(String, Int64, Int)] = [
            ("BTC_USDT", 2_161_459, 2), ("ETH_USDT", 162_345, 2), ("SOL_USDT", 36_907, 3), ("USDJ_USDT", 9_997, 4),
            ("BCH_BTC", 556_123, 8), ("TRX_USDT", 68_123, 6),
        ]
        var prices = symbols.map { $0.1 }
        var id: Int64 = 60_184_114
        var time: Int64 = 1_661_123_520_381
        var result: [String] = []
        result.reserveCapacity(frames)
        for _ in 0..<frames {
            var frame = #"{"channel":"trades","data":["#
            for t in 0..<tradesPerFrame {
                let k = Int(generator.next() % UInt64(symbols.count))
                let (name, _, scale) = symbols[k]
                prices[k] = max(1, prices[k] + Int64(generator.next() % 21) - 10)
                let price = ExactDecimal(mantissa: prices[k], scale: scale)
                let quantity = ExactDecimal(mantissa: Int64(generator.next() % 5_000_000) + 1, scale: 6).normalized()
                let amount = (price * quantity).normalized()
                let side = generator.next() % 2 == 0 ? "buy" : "sell"
                time += Int64(generator.next() % 50)
                id += 1
                if t > 0 { frame += "," }
                frame += #"{"symbol":"\#(name)","amount":"\#(amount)","quantity":"\#(quantity)","#
                frame += #""takerSide":"\#(side)","createTime":\#(time),"price":"\#(price)","id":"\#(id)","ts":\#(time + 5)}"#
            }
            frame += "]}"
            result.append(frame)
        }
        return result
    }

    /// CPU time of the calling thread, seconds (0 where the platform has no thread clock).
    static func threadCPUSeconds() -> Double {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
            var spec = timespec()
            guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec) == 0 else { return 0 }
            return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
        #else
            return 0
        #endif
    }

    static func rounded(_ value: Double, _ places: Int) -> String {
        var factor = 1.0
        for _ in 0..<places { factor *= 10 }
        return "\((value * factor).rounded() / factor)"
    }
}
