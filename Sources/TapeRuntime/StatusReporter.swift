import Foundation
import Logging
import ServiceLifecycle
import TapeCommon
import TapeServer

/// Progress for the person who started `tape up`: every second a compact line rewritten in place on
/// a terminal, or every 30 s a log line; it also takes the samples `/api/stats` measures rates over.
final class StatusReporter: Service, Sendable {
    let ingest: [IngestStage]
    let stats: IngestStats
    let server: TapeServerState
    let mode: TapeConfiguration.StatusLine
    let logger: Logger

    init(ingest: [IngestStage], stats: IngestStats, server: TapeServerState, mode: TapeConfiguration.StatusLine, logger: Logger) {
        self.ingest = ingest
        self.stats = stats
        self.server = server
        self.mode = mode
        self.logger = logger
    }

    func run() async throws {
        var last: (time: ContinuousClock.Instant, trades: Int) = (.now, 0)
        var tick = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) } } catch { return }
            tick += 1
            stats.sample()
            let now = ContinuousClock.now
            let snapshots = ingest.compactMap { $0.service?.metrics.connection.snapshot }
            let trades = snapshots.reduce(0) { $0 + $1.trades }
            let elapsed = (now - last.time).seconds
            let rate = elapsed > 0 ? Double(trades - last.trades) / elapsed : 0
            last = (now, trades)
            let candleUpdates = Int(server.candlesSeen.load(ordering: .relaxed))
            let lag = Double(snapshots.map(\.lastLagMicros).max() ?? 0) / 1000
            let connected = snapshots.filter(\.connected).count
            let state =
                ingest.count == 1
                ? (connected == 1 ? "connected" : "not connected") : "\(connected)/\(ingest.count) exchanges connected"
            let line = String(
                format: "trades %d (%.0f/s) | candle updates %d | lag %.0f ms | reconnects %d | %@",
                trades, rate, candleUpdates, lag, snapshots.reduce(0) { $0 + $1.reconnects }, state)
            switch mode {
            case .terminal: FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            case .log where tick % 30 == 0: logger.notice("status: \(line)")
            case .log, .off: break
            }
        }
    }
}
