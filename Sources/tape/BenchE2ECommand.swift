import ArgumentParser
import ExchangeSimulator
import Exchanges
import Foundation
import MarketData
import Synchronization

/// `tape bench e2e`: runs `tape up --offline` as a child process at each simulator rate, listens on
/// its `/ws` like a dashboard would, and reports how long events take from the moment ingestion
/// received the exchange frame to the moment a WebSocket client holds the trade or candle update,
/// together with the resident memory of the `tape up` process.
///
/// What each figure measures (all clocks are this machine's wall clock; "client receive time" is
/// when this client took the message off its socket, stamped before any message is parsed, which
/// happens after the run):
/// - trade latency: client receive time − the trade's `receivedAt` (stamped by ingestion when the
///   simulator's websocket frame arrived). Path: ingest → produce `tape.trades` → embedded broker
///   → server's consumer → `/ws` → this client.
/// - candle latency: client receive time of a candle update − `receivedAt` of the newest trade that
///   update includes. The candle JSON carries `trades` (the count of trades in its window); trades of
///   one market stay in one partition, so the Nth trade of the window seen on the trades channel is
///   the newest trade the update includes. Only updates that added trades count (re-emissions that
///   only finalize a window are not a reaction to a trade). The "oldest" figure takes the first trade
///   the update added instead, which shows the emit throttle. Candles are 1-second candles (the path
///   is the same for every interval; 1 s windows start often, so the bench sees each window from its
///   first trade).
/// - generation lag: client receive time − the trade's `time` (the simulator's clock when it made
///   the trade, 1 ms resolution, the simulator ticks every 1 ms): it includes time spent queued in
///   the simulator before ingestion read the frame, so it shows whether the pipeline keeps up.
struct BenchE2E: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "End-to-end latency of `tape up --offline`: simulator frame receipt to trade and candle updates on /ws, and its memory.",
        discussion: """
            For each rate, starts `tape up --offline` as a child process on free loopback ports with a \
            fresh data directory, subscribes to the trades and 1s candles of every market on /ws, waits \
            --warmup seconds, then measures for --seconds. Resident memory is the child's VmRSS, sampled \
            every 0.5 s while measuring.
            """
    )

    @Option(help: "Simulator rates to run, trades per second over all markets.") var rates = "1000,10000,100000"
    @Option(help: "Seconds measured per run (after the warm-up).") var seconds: Double = 20
    @Option(help: "Seconds of warm-up per run, not measured.") var warmup: Double = 5
    @Option(help: "Number of markets (the simulator's default instruments first).") var symbols = 6
    @Option(
        name: .customLong("candle-emit-ms"), help: "Candle throttle of the processor: at most one update per key per this many ms (tape up's default is 1000).")
    var candleEmitMilliseconds = 10
    @Option(help: "Runs per rate; the median is reported last.") var runs = 1
    @Option(name: .customLong("tape-binary"), help: "The tape executable to run as the child (default: this one).") var tapeBinary: String?
    @Option(
        name: .customLong("compare"),
        help: ArgumentHelp(
            "Another tape executable (e.g. the previous build) to run alternately with the first: each run of build A (--tape-binary) is followed by one of build B, so both see the same minutes of a shared machine; the summary has a row for each.",
            valueName: "tape-binary"))
    var compareBinary: String?
    @Flag(
        help:
            "Run the simulator at a steady rate, without its bursts (by default about a third of the trades come in bursts at 20x the rate, which is what the p99 mostly measures)."
    )
    var steady = false
    @Option(
        name: .customLong("up-arg"),
        help: ArgumentHelp("An extra argument for the child `tape up` (repeatable), e.g. --up-arg=-X --up-arg=linger.ms=1.", valueName: "ARG"))
    var upArguments: [String] = []
    @Flag(help: "Show the child's log lines.") var verbose = false

    func parsedRates() throws -> [Double] {
        let values = rates.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--rates must be positive numbers separated by commas, e.g. 1000,10000,100000; got \(rates).")
        }
        return values.map { $0! }
    }

    func validate() throws {
        _ = try parsedRates()
        guard seconds > 0, warmup >= 0 else { throw ValidationError("--seconds must be positive and --warmup not negative.") }
        guard symbols > 0 else { throw ValidationError("--symbols must be positive.") }
        guard candleEmitMilliseconds > 0 else { throw ValidationError("--candle-emit-ms must be positive.") }
        guard runs > 0 else { throw ValidationError("--runs must be positive; got \(runs).") }
        for (flag, path) in [("--tape-binary", tapeBinary), ("--compare", compareBinary)] {
            var isDirectory: ObjCBool = false
            if let path,
                !FileManager.default.isExecutableFile(atPath: path) || !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                    || isDirectory.boolValue
            {
                throw ValidationError("\(flag) \(path) is not an executable file.")
            }
        }
    }

    func run() async throws {
        let binary = try tapeBinary ?? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let natives = PoloniexSimulatorConfiguration.instruments(count: symbols).map(\.nativeSymbol)
        printError(
            "tape bench e2e: \(binary) up --offline \(upArguments.joined(separator: " ")), \(natives.count) markets, candle emit interval \(candleEmitMilliseconds) ms, \(warmup) s warm-up + \(seconds) s measured per run, \(ProcessInfo.processInfo.activeProcessorCount) cores."
        )
        // One build, or A and B run alternately (A, B, A, B, ...) at each rate.
        let builds: [(label: String, path: String)] = compareBinary.map { [("A", binary), ("B", $0)] } ?? [("", binary)]
        if builds.count > 1 {
            for build in builds { print("build \(build.label): \(build.path)") }
        }
        var summary: [(rate: Double, build: String, results: [E2ERunResult])] = []
        for rate in try parsedRates() {
            var results = [[E2ERunResult]](repeating: [], count: builds.count)
            for run in 1...runs {
                for (index, build) in builds.enumerated() {
                    let loadBefore = loadAverage()
                    let result = try await runOnce(binary: build.path, natives: natives, rate: rate)
                    print("rate \(Int(rate))/s run \(run)\(build.label.isEmpty ? "" : ", build \(build.label)"): " + result.describe(target: rate))
                    print("    load average before: \(loadBefore), after: \(loadAverage())")
                    results[index].append(result)
                }
            }
            for (index, build) in builds.enumerated() { summary.append((rate, build.label, results[index])) }
        }
        print("")
        print(
            "summary (median over \(runs) run\(runs == 1 ? "" : "s") per rate\(builds.count > 1 ? " and build" : ""); latencies in ms; candles: 1s candles, emit interval \(candleEmitMilliseconds) ms; simulator \(steady ? "steady, no bursts" : "with bursts")):"
        )
        let buildColumn = builds.count > 1 ? "build" : ""
        print(
            buildColumn
                + "  target/s  achieved/s  sustained  trade p50   p99     max  | read p50   p99 | candle p50   p99     max  | oldest-trade p99 | gen-lag p99 | RSS median  max MB | burst/s  in bursts | CPU cores  µs/trade"
        )
        for (rate, build, results) in summary {
            // Runs without such events (n/a) are left out of a median; "nan" when no run had any.
            func m(_ f: (E2ERunResult) -> Double) -> Double {
                let values = results.map(f).filter { !$0.isNaN }
                return values.isEmpty ? .nan : median(values)
            }
            let sustained = results.allSatisfy { $0.sustained(target: rate) } ? "yes" : results.contains { $0.sustained(target: rate) } ? "some runs" : "NO"
            let padded = String(repeating: " ", count: max(0, 9 - sustained.count)) + sustained
            print(
                (buildColumn.isEmpty ? "" : "    " + build) + String(format: "  %8.0f  %10.0f  ", rate, m(\.achievedRate)) + padded
                    + String(
                        format: "  %9.2f %7.2f %7.1f | %8.2f %5.2f | %10.2f %7.2f %7.1f | %16.2f | %11.1f | %10.1f %5.1f | %7.0f  %7.0f%% | %9.2f  %8.1f",
                        m { $0.trade.p50 }, m { $0.trade.p99 }, m { $0.trade.max }, m { $0.serverRead?.p50 ?? .nan }, m { $0.serverRead?.p99 ?? .nan },
                        m { $0.candle.p50 }, m { $0.candle.p99 }, m { $0.candle.max }, m { $0.candleOldest.p99 }, m { $0.generation.p99 },
                        m(\.rssMedianMB), m(\.rssMaxMB), m { $0.load?.burstRate ?? .nan }, m { ($0.load?.burstShare ?? .nan) * 100 },
                        m { $0.upCores ?? .nan }, m { $0.upMicrosPerTrade ?? .nan }))
        }
    }

    // MARK: - one run

    func runOnce(binary: String, natives: [String], rate: Double) async throws -> E2ERunResult {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-bench-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dataDir) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [
                "up", "--offline", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                "--rate", String(rate), "--symbols", natives.joined(separator: ","), "--intervals", "1s,1m,5m,1h",
                "--candle-emit-ms", String(candleEmitMilliseconds),
            ] + (steady ? ["--simulator-burst-probability", "0"] : []) + upArguments
        var environment = ProcessInfo.processInfo.environment
        environment["TAPE_TOKEN"] = nil
        process.environment = environment
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let log = ChildLog(echo: verbose)
        try process.run()
        // The reader thread owns a duplicate of the read end; it sees end of file once the child
        // exited, as this process closes its copy of the write end.
        try? pipe.fileHandleForWriting.close()
        let readFD = dup(pipe.fileHandleForReading.fileDescriptor)
        Thread.detachNewThread {
            log.drain(fd: readFD)
            close(readFD)
        }
        let pid = process.processIdentifier

        func stopChild() {
            guard process.isRunning else { return }
            kill(pid, SIGINT)
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning {
                printError("tape bench e2e: the child did not stop within 20 s of SIGINT; killing it.")
                kill(pid, SIGKILL)
            }
            process.waitUntilExit()
        }

        // The child prints "Dashboard:       http://127.0.0.1:PORT/" once its server is bound.
        var port: Int?
        let startDeadline = Date().addingTimeInterval(60)
        while port == nil {
            port = log.dashboardPort()
            if port != nil { break }
            guard process.isRunning, Date() < startDeadline else {
                stopChild()
                throw ValidationError("`tape up --offline` did not start (no dashboard URL within 60 s). Its last lines:\n\(log.tail())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }

        let markets = natives.map { "poloniex:" + $0.replacingOccurrences(of: "_", with: "-") }
        let warmup = self.warmup
        let measured = self.seconds
        let outcome: Result<E2ERunResult, any Error>
        do {
            let endpoint = try Endpoint("ws://127.0.0.1:\(port!)/ws")
            let tracker = try await WebSocketClient.withConnection(to: endpoint) { inbound, outbound in
                for market in markets {
                    try await outbound.send(text: #"{"op":"subscribe","channel":"trades","symbol":"\#(market)"}"#)
                    try await outbound.send(text: #"{"op":"subscribe","channel":"candles","symbol":"\#(market)","interval":"1s"}"#)
                }
                let subscribedAt = wallMicros()
                let measureFrom = subscribedAt + Int64(warmup * 1_000_000)
                let measureUntil = measureFrom + Int64(measured * 1_000_000)
                // Memory samples, and the CPU time `tape up` and this client used while measuring.
                let rss = Task { () -> (samples: [Int], upCPU: Double?, clientCPU: Double?) in
                    try? await Task.sleep(for: .microseconds(max(0, measureFrom - wallMicros())))
                    let upStart = cpuSeconds(pid: pid)
                    let clientStart = cpuSeconds(pid: nil)
                    var samples: [Int] = []
                    while wallMicros() < measureUntil, !Task.isCancelled {
                        if let kb = residentKilobytes(pid: pid) { samples.append(kb) }
                        try? await Task.sleep(for: .microseconds(max(1, min(500_000, measureUntil - wallMicros()))))
                    }
                    let upEnd = cpuSeconds(pid: pid)
                    let clientEnd = cpuSeconds(pid: nil)
                    let up = upStart.flatMap { start in upEnd.map { $0 - start } }
                    let client = clientStart.flatMap { start in clientEnd.map { $0 - start } }
                    return (samples, up, client)
                }
                // The simulator's counters as measuring starts (the load is their change until the end).
                let metricsPort = port!
                let loadAtStart = Task { () -> String? in
                    try? await Task.sleep(for: .microseconds(max(0, measureFrom - wallMicros())))
                    return await scrapeMetrics(port: metricsPort)
                }
                let stopper = Task {
                    try? await Task.sleep(for: .microseconds(max(0, measureUntil - wallMicros()) + 200_000))
                    outbound.close()
                }
                // Windows of 1 s starting a whole second after subscribing: the bench saw all their trades.
                var tracker = LatencyTracker(firstWindow: (subscribedAt / 1_000_000 + 2) * 1000, measureFrom: measureFrom, measureUntil: measureUntil)
                // Each message is stamped as it is taken off the socket and parsed after the run:
                // parsing as they came made the last message of a burst wait for this client to
                // parse the hundreds before it, which counted the client's JSON work as Tape's
                // latency and took CPU from `tape up` while the burst drained.
                var received: [(bytes: [UInt8], at: Int64)] = []
                received.reserveCapacity(1 << 16)
                do {
                    while let message = try await inbound.next() {
                        let now = wallMicros()
                        if now >= measureUntil { break }
                        received.append((message.bytes, now))
                    }
                } catch {
                    if wallMicros() < measureUntil {
                        stopper.cancel()
                        rss.cancel()
                        throw error
                    }
                }
                stopper.cancel()
                for message in received { tracker.record(message.bytes, at: message.at) }
                received = []
                let usage = await rss.value
                tracker.rssKilobytes = usage.samples
                tracker.upCPUSeconds = usage.upCPU
                tracker.clientCPUSeconds = usage.clientCPU
                tracker.metricsAtStart = await loadAtStart.value
                return tracker
            }
            var result: E2ERunResult
            if let metrics = await scrapeMetrics(port: port!) {
                let before = tracker.metricsAtStart
                result = tracker.result(seconds: measured, wsDropped: prometheusSum(metrics, name: "tape_ws_messages_dropped_total"))
                result.load = before.flatMap { SimulatedLoad(before: $0, after: metrics, seconds: measured) }
                // p50 and p99 in ms of a histogram's change over the measured seconds, if it saw any.
                func percentiles(_ name: String, label: String? = nil) -> (p50: Double, p99: Double)? {
                    guard let h = HistogramDelta(before: before, after: metrics, name: name, label: label), h.count > 0 else { return nil }
                    return (h.quantile(0.5) * 1000, h.quantile(0.99) * 1000)
                }
                result.serverRead = percentiles("tape_server_trade_delay_seconds")
                result.tradeProduce = percentiles("tape_produce_latency_seconds", label: #"topic="tape.trades""#)
            } else {
                result = tracker.result(seconds: measured, wsDropped: nil)
            }
            outcome = .success(result)
        } catch {
            outcome = .failure(error)
        }
        stopChild()
        switch outcome {
        case .success(let result): return result
        case .failure(let error):
            throw ValidationError("The run at \(Int(rate)) trades/s failed: \(error). Last lines of tape up:\n\(log.tail())")
        }
    }
}

// MARK: - measurement

/// The child's stderr: kept (last lines) for error messages, scanned for the dashboard URL.
final class ChildLog: Sendable {
    private let state = Mutex<(lines: [String], port: Int?, partial: [UInt8])>(([], nil, []))
    private let echo: Bool

    init(echo: Bool) { self.echo = echo }

    /// Reads `fd` until end of file (the child exited). Runs on its own thread.
    func drain(fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            if echo { buffer.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, n) } }
            let chunk = buffer[0..<n]
            state.withLock { state in
                state.partial += chunk
                while let newline = state.partial.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: state.partial[..<newline], as: UTF8.self)
                    state.partial.removeSubrange(...newline)
                    if state.port == nil, let range = line.range(of: "Dashboard:") {
                        let rest = line[range.upperBound...].trimmingCharacters(in: .whitespaces)
                        if let colon = rest.lastIndex(of: ":") {
                            state.port = Int(rest[rest.index(after: colon)...].prefix { $0.isNumber })
                        }
                    }
                    state.lines.append(line)
                    if state.lines.count > 40 { state.lines.removeFirst(state.lines.count - 40) }
                }
            }
        }
    }

    func dashboardPort() -> Int? { state.withLock { $0.port } }
    func tail() -> String { state.withLock { $0.lines.suffix(20).joined(separator: "\n") } }
}

func wallMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}

/// The first three fields of /proc/loadavg.
func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// User plus system CPU time of a process so far (nil: this process), in seconds.
func cpuSeconds(pid: Int32?) -> Double? {
    let path = pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return ticks > 0 ? (user + system) / ticks : nil
}

/// VmRSS of a process, in kB.
func residentKilobytes(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
    }
    return nil
}

/// The sum of all samples of a Prometheus metric (all label sets).
/// `/metrics` of the child, or nil.
func scrapeMetrics(port: Int) async -> String? {
    guard let endpoint = try? Endpoint("http://127.0.0.1:\(port)/metrics"), let response = try? await HTTPClient.get(endpoint), response.status == 200
    else { return nil }
    return String(decoding: response.body, as: UTF8.self)
}

/// The sum of every series of `name` (whose labels include `label`, when given).
func prometheusSum(_ text: String, name: String, label: String? = nil) -> Double? {
    let values = prometheusSamples(text, name: name, label: label).map(\.value)
    return values.isEmpty ? nil : values.reduce(0, +)
}

/// Every series of `name` (whose labels include `label`, when given): its label text (after the
/// name, up to the closing brace; empty without labels) and its value.
func prometheusSamples(_ text: String, name: String, label: String? = nil) -> [(labels: Substring, value: Double)] {
    var samples: [(labels: Substring, value: Double)] = []
    for line in text.split(separator: "\n") where line.hasPrefix(name) {
        let rest = line.dropFirst(name.count)
        guard rest.first == " " || rest.first == "{" else { continue }
        let labels = rest.first == "{" ? rest.prefix(while: { $0 != "}" }) : rest.prefix(0)
        if let label, !labels.contains(label) { continue }
        if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { samples.append((labels, value)) }
    }
    return samples
}
