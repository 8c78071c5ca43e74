import Exchanges
import Foundation
import KafkaClient
import MarketData
import TapeTestSupport
import XCTest

/// The issue's "Continuity" done-when, as real processes: `tape up --offline` (its own broker and
/// Poloniex simulator) plus `tape ingest --exchange binance|coinbase|kraken`, each against a
/// `tape simulate` look-alike, all writing the same `tape.trades`. Every ingester starts within
/// seconds beside the others, and across `kill -9` and restart of each of them in turn — `tape up`
/// too, broker included — `tape.trades` ends up holding every trade the simulators generated,
/// once (for Poloniex: every trade of each run except what the killed process itself still held).
final class SharedTopicProcessTests: XCTestCase {
    let venues = ["binance", "coinbase", "kraken"]

    /// Waits until `text` appears in the child's stderr; returns how long that took from `since`.
    func waitFor(_ text: String, in child: ChildProcess, since: Date, timeout: TimeInterval = 30) throws -> TimeInterval {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if child.stderr.contains(text) { return Date().timeIntervalSince(since) }
            if !child.process.isRunning { break }
            usleep(50_000)
        }
        throw TestSupportError("\(child.name) did not log '\(text)' within \(timeout) s; stderr: \(child.stderr.suffix(3000))")
    }

    func testUpAndThreeVenueIngestersShareTheTopicAcrossKillNine() throws {
        let directory = try temporaryDirectory("shared-topic")
        let kafkaPort = Loopback.freePort()
        let httpPort = Loopback.freePort()
        let brokers = "127.0.0.1:\(kafkaPort)"
        var poloniexLogs: [String] = []
        func startUp(_ run: Int) throws -> (ChildProcess, TimeInterval) {
            let log = directory.appendingPathComponent("poloniex-\(run).jsonl").path
            poloniexLogs.append(log)
            let launched = Date()
            let up = try ChildProcess(
                [
                    "up", "--offline", "--data-dir", directory.appendingPathComponent("data").path, "--listen", brokers,
                    "--http", "127.0.0.1:\(httpPort)", "--rate", "40", "--symbols", "BTC_USDT,ETH_USDT,SOL_USDT",
                    "--simulator-trades-log", log,
                ], name: "up-\(run)", logDirectory: directory)
            return (up, try waitFor("Tape is up.", in: up, since: launched, timeout: 60))
        }
        var (up, upStart) = try startUp(1)

        // One simulator per venue, generating throughout.
        var simulators: [String: ChildProcess] = [:]
        var endpoints: [String: [String]] = [:]
        for (i, venue) in venues.enumerated() {
            let simulator = try ChildProcess(
                [
                    "simulate", "--exchange", venue, "--rate", "40", "--seed", String(11 + i),
                    "--trades-log", directory.appendingPathComponent("\(venue).jsonl").path,
                ], name: "simulate-\(venue)", logDirectory: directory)
            simulators[venue] = simulator
            endpoints[venue] = try simulator.firstLine().split(separator: " ").map(String.init)
        }
        var startups: [String] = ["tape up \(String(format: "%.1f", upStart)) s"]
        var ingesters: [String: ChildProcess] = [:]
        var runs: [String: Int] = [:]
        func startIngest(_ venue: String) throws -> TimeInterval {
            runs[venue, default: 0] += 1
            let launched = Date()
            let ingest = try ChildProcess(
                [
                    "ingest", "--exchange", venue, "--symbols", "all", "--endpoint", endpoints[venue]![0], "--rest-endpoint",
                    endpoints[venue]![1], "--brokers", brokers, "--ping-interval", "1",
                ], name: "ingest-\(venue)-\(runs[venue]!)", logDirectory: directory)
            ingesters[venue] = ingest
            // "ingesting" is logged once the tail of tape.trades was read back.
            let ready = try waitFor("ingesting", in: ingest, since: launched)
            startups.append("\(venue)#\(runs[venue]!) \(String(format: "%.1f", ready)) s")
            return ready
        }
        for venue in venues {
            XCTAssertLessThan(try startIngest(venue), 10, "\(venue) beside tape up")
        }
        let reader = try EndToEndTests.TopicReader(brokers: brokers, topic: "tape.trades", partitions: 3)
        defer { reader.stop() }
        sleep(3)

        // kill -9 each venue ingester in turn, 1.5 s down, restarted while the others write.
        for venue in venues {
            ingesters[venue]!.kill9()
            usleep(1_500_000)
            XCTAssertLessThan(try startIngest(venue), 10, "\(venue) restarted beside the others")
            sleep(2)
        }
        // kill -9 tape up: broker, Poloniex simulator and ingestion die together; the venue
        // ingesters hold their records until the broker is back.
        let killedAt = Int64(Date().timeIntervalSince1970 * 1000)
        up.kill9()
        usleep(1_500_000)
        (up, upStart) = try startUp(2)
        startups.append("tape up#2 \(String(format: "%.1f", upStart)) s")
        XCTAssertLessThan(upStart, 15)
        sleep(5)

        // Everything generated until 2 s ago must be in tape.trades by now or soon (the
        // simulators keep going; later trades are left out on both sides).
        let cut = Int64(Date().timeIntervalSince1970 * 1000) - 2_000
        func generated() -> [String: [Trade]] {
            var all: [String: [Trade]] = [:]
            for venue in venues {
                all[venue] = lines(of: directory.appendingPathComponent("\(venue).jsonl").path).compactMap { try? Trade(json: $0) }
            }
            all["poloniex"] = poloniexLogs.flatMap { lines(of: $0).compactMap { try? Trade(json: $0) } }
            return all
        }
        let expected = generated().mapValues { $0.filter { $0.time <= cut } }
        let deadline = Date().addingTimeInterval(30)
        func arrived() -> [String: Int] {
            var counts: [String: Int] = [:]
            for record in reader.all {
                guard record.timestamp <= cut, let key = record.key.map({ String(decoding: $0, as: UTF8.self) }) else { continue }
                counts[String(key.prefix { $0 != ":" }), default: 0] += 1
            }
            return counts
        }
        while Date() < deadline {
            let counts = arrived()
            if expected.allSatisfy({ counts[$0.key, default: 0] >= $0.value.count }) { break }
            usleep(250_000)
        }
        sleep(2)  // anything doubled would arrive now
        for venue in venues {
            XCTAssertEqual(ingesters[venue]!.interrupt(), 0, "\(venue): \(ingesters[venue]!.stderr.suffix(1500))")
        }
        XCTAssertEqual(up.interrupt(), 0, "tape up: \(up.stderr.suffix(3000))")
        for simulator in simulators.values { simulator.interrupt() }

        // What tape.trades holds, per venue.
        var consumed: [String: [Trade]] = [:]
        for record in reader.all {
            guard let value = record.value, let trade = try? Trade(json: value) else {
                XCTFail("undecodable record at \(record.partition)/\(record.offset)")
                continue
            }
            XCTAssertEqual(record.key.map { String(decoding: $0, as: UTF8.self) }, trade.kafkaKey)
            consumed[trade.exchange.name, default: []].append(trade)
        }

        // Every venue, Poloniex included: each trade generated before the cut exactly once, field
        // for field, nothing that was never generated; for Poloniex, less what tape up itself
        // held when it was killed (its simulator died with it: the last second before the kill).
        var summary: [String] = []
        let runsLogged = poloniexLogs.map { lines(of: $0).compactMap { try? Trade(json: $0) } }
        let all = generated()
        for venue in venues + ["poloniex"] {
            let got = consumed[venue] ?? []
            let check = compare(got, all[venue]!)
            XCTAssertEqual(check.duplicates, [], "\(venue) duplicates; logs in \(directory.path)")
            XCTAssertEqual(check.unexpected, [], "\(venue) never generated or differing")
            let ids = Set(got.map { "\($0.nativeSymbol):\($0.tradeId)" })
            let missing = expected[venue]!.filter { !ids.contains("\($0.nativeSymbol):\($0.tradeId)") }
            if venue == "poloniex" {
                let run1 = Set(runsLogged[0].map { "\($0.nativeSymbol):\($0.tradeId)" })
                let lostAtKill = missing.filter { run1.contains("\($0.nativeSymbol):\($0.tradeId)") && $0.time >= killedAt - 1_000 }
                XCTAssertEqual(
                    missing.count, lostAtKill.count,
                    "poloniex missing beyond what tape up held at the kill: \(missing.prefix(5).map { "\($0.nativeSymbol):\($0.tradeId)@\($0.time)" })")
                summary.append(
                    "poloniex \(expected[venue]!.count - missing.count)/\(expected[venue]!.count) (\(lostAtKill.count) held by tape up at its kill -9)")
            } else {
                XCTAssertEqual(
                    missing.count, 0, "\(venue) missing, e.g. \(missing.prefix(5).map { "\($0.nativeSymbol):\($0.tradeId)" }); logs in \(directory.path)")
                summary.append("\(venue) \(expected[venue]!.count - missing.count)/\(expected[venue]!.count)")
            }
            XCTAssertGreaterThan(expected[venue]!.count, 300, venue)
        }
        XCTAssertGreaterThan(runsLogged[1].filter { $0.time <= cut }.count, 40, "tape up #2 ingested")
        for symbol in Set(runsLogged[0].map(\.nativeSymbol)) {
            let last1 = runsLogged[0].filter { $0.nativeSymbol == symbol }.compactMap { Int64($0.tradeId) }.max() ?? 0
            let first2 = runsLogged[1].filter { $0.nativeSymbol == symbol }.compactMap { Int64($0.tradeId) }.min() ?? .max
            XCTAssertGreaterThan(first2, last1, "\(symbol): the restarted simulator's ids continue above the first run's")
        }
        print("shared tape.trades: start-up \(startups.joined(separator: ", ")); trades up to the cut: \(summary.joined(separator: ", ")); 0 duplicates")
        try? FileManager.default.removeItem(at: directory)
    }

    /// Duplicated ids, expected ids missing, and consumed trades never generated (or differing in a field).
    func compare(_ consumed: [Trade], _ expected: [Trade]) -> (duplicates: [String], missing: [String], unexpected: [String]) {
        var want: [String: Trade] = [:]
        for trade in expected { want["\(trade.nativeSymbol):\(trade.tradeId)"] = trade }
        var seen: [String: Int] = [:]
        var unexpected: [String] = []
        for trade in consumed {
            let key = "\(trade.nativeSymbol):\(trade.tradeId)"
            seen[key, default: 0] += 1
            guard var w = want[key] else {
                unexpected.append(key)
                continue
            }
            w.receivedAt = trade.receivedAt
            if w != trade || w.price.description != trade.price.description || w.quantity.description != trade.quantity.description {
                unexpected.append("\(key) differs")
            }
        }
        return (
            seen.filter { $0.value > 1 }.keys.sorted().prefix(10).map { $0 },
            want.keys.filter { seen[$0] == nil }.sorted().prefix(10).map { $0 },
            Array(unexpected.prefix(10))
        )
    }
}
