import ArgumentParser
import Exchanges
import Foundation
import MarketData

/// `tape bench parse`: how fast one core turns raw exchange frames into trades.
struct BenchParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse",
        abstract: "Parse raw exchange frames (one a line) in a loop on one core and print trades/s.")

    @Option(help: "Exchange whose frame format the file holds.")
    var exchange: String = "poloniex"

    @Option(help: "Frames file: one raw websocket text frame a line.")
    var file: String?

    @Option(help: "Instead of --file: this many generated Poloniex trades frames.")
    var synthetic: Int?

    @Option(help: "Trades per generated frame (with --synthetic).")
    var tradesPerFrame: Int = 10

    @Option(help: "Measured runs; the median is reported.")
    var runs: Int = 5

    @Option(help: "Minimum seconds per run.")
    var seconds: Double = 1

    func validate() throws {
        if Venues.adapter(named: exchange) == nil {
            throw ValidationError(
                "No frame parser for exchange \"\(exchange)\" (supported: \(Venues.names.joined(separator: ", "))).")
        }
        if synthetic != nil && exchange.lowercased() != "poloniex" {
            throw ValidationError("--synthetic generates Poloniex frames; for \(exchange) give --file FRAMES.")
        }
        if (file == nil) == (synthetic == nil) {
            throw ValidationError("Give either --file FRAMES or --synthetic N.")
        }
        if runs < 1 { throw ValidationError("--runs must be at least 1.") }
        if let synthetic, synthetic < 1 { throw ValidationError("--synthetic must be at least 1.") }
        if tradesPerFrame < 1 { throw ValidationError("--trades-per-frame must be at least 1; got \(tradesPerFrame).") }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be between 0 and 600; got \(seconds.flagText).") }
    }

    func run() throws {
        let lines: [[UInt8]]
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw BenchParseError(description: "Cannot read \(file): check the path and permissions.")
            }
            lines = ParseBenchmark.lines(fromFileContents: [UInt8](data))
            if lines.isEmpty {
                throw BenchParseError(description: "\(file) holds no frames (one raw frame a line expected).")
            }
        } else {
            lines = ParseBenchmark.syntheticPoloniexFrames(frames: synthetic ?? 1, tradesPerFrame: tradesPerFrame)
                .map { Array($0.utf8) }
        }
        // Warm-up pass (caches, page faults), then measured runs.
        _ = try runOnce(lines, minimumSeconds: min(seconds, 0.2))
        var results: [ParseBenchmark.Result] = []
        for i in 1...runs {
            let result = try runOnce(lines, minimumSeconds: seconds)
            print("run \(i): \(result)")
            results.append(result)
        }
        let wall = results.map(\.tradesPerSecond).sorted()[results.count / 2]
        let cpu = results.map(\.tradesPerCPUSecond).sorted()[results.count / 2]
        print(
            "median: \(Int(wall)) trades/s wall, \(Int(cpu)) trades per CPU-second, over \(runs) runs "
                + "(\(lines.count) frames, exchange \(exchange))")
        if results.contains(where: { $0.errors > 0 }) {
            print("warning: \(results[0].errors) frames per pass failed to parse")
        }
    }

    func runOnce(_ lines: [[UInt8]], minimumSeconds: Double) throws -> ParseBenchmark.Result {
        do {
            return try ParseBenchmark.run(lines: lines, exchange: Exchange(exchange), minimumSeconds: minimumSeconds)
        } catch {
            throw BenchParseError(description: error.description)
        }
    }
}

/// A run-time failure of `tape bench parse`, printed as one sentence.
struct BenchParseError: Error, CustomStringConvertible {
    var description: String
}
