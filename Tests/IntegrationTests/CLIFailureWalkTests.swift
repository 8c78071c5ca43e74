import Foundation
import TapeTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Every `tape` subcommand walked through its failures, as a user meets them: bad flag values,
/// unknown flags, missing or wrong files, busy ports, an unreachable cluster, unknown topics. Each
/// must end with one sentence on stderr and the right status: 64 with ArgumentParser's usage for
/// bad flags, 1 without usage for failures at run time — never a Foundation, NIO, SQLite or
/// librdkafka dump. One row per case; a new command adds rows.
final class CLIFailureWalkTests: XCTestCase {
    /// One failing command line and what it must print.
    struct Row: Sendable {
        var arguments: [String]
        /// 64: a bad flag (usage shown); 1: a failure at run time (no usage).
        var status: Int32
        /// Text stderr must contain.
        var says: [String]
        var stdin: String? = nil
        /// Longest run allowed, in seconds (the unreachable-cluster rows: about 5 s).
        var within: TimeInterval = 30

        init(_ arguments: [String], _ status: Int32, _ says: [String], stdin: String? = nil, within: TimeInterval = 30) {
            self.arguments = arguments
            self.status = status
            self.says = says
            self.stdin = stdin
            self.within = within
        }
    }

    /// What no error output may contain: the dumps the one error path replaced.
    static let forbidden = [
        "NSCocoaErrorDomain", "Error Domain", "NSUnderlyingError", "errno", "SQLite error", "sqlite_master", "bind(descriptor",
        "Fatal error", "Stack dump", "CommandError(", "ValidationError(", "%3|", "%4|", "rdkafka#",
    ]

    var dir: URL!
    /// A regular file (where a directory is expected) and a file that is not SQLite.
    var file = ""
    var notSQLite = ""
    /// A loopback port something listens on (held by this test) and one nothing listens on.
    var busyFD: Int32 = -1
    var busyPort = 0
    var closed = ""

    override func setUpWithError() throws {
        dir = try temporaryDirectory("cli-walk")
        file = dir.appendingPathComponent("a-file").path
        notSQLite = dir.appendingPathComponent("not-sqlite.db").path
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x\n".utf8)))
        XCTAssertTrue(FileManager.default.createFile(atPath: notSQLite, contents: Data(repeating: 0x41, count: 4096)))
        (busyFD, busyPort) = try Self.listen()
        closed = "127.0.0.1:\(Loopback.freePort())"
    }

    override func tearDown() {
        if busyFD >= 0 { close(busyFD) }
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    // MARK: - bad flags: exit 64, usage

    func testBadFlagsExit64WithUsageAndSuggestions() throws {
        let d = path("unused")
        walk([
            Row(["consme"], 64, ["Unexpected argument 'consme'. Did you mean 'consume'?"]),
            Row(["topics", "lst"], 64, ["Did you mean 'list'?"]),
            Row(["bench", "produse"], 64, ["Did you mean 'produce'?"]),
            Row(["consume", "--topik", "x"], 64, ["Unknown option '--topik'. Did you mean '--topic'?"]),
            Row(["users", "list", "--data-dri", d], 64, ["Unknown option '--data-dri'. Did you mean '--data-dir'?"]),
            Row(["version", "--brokres", "x"], 64, ["Unknown option '--brokres'"]),
            Row(["broker", "--max-conection", "5", "--data-dir", d], 64, ["Did you mean '--max-connections'?"]),
            Row(["topics", "create", "x", "--replication", "3"], 64, ["Did you mean '--replication-factor'?"]),
            Row(["up", "--rate", "-5"], 64, ["--rate must be positive, at most 10000000; got -5."]),
            Row(["up", "--stale-after", "0"], 64, ["--stale-after must be from 1 to 86400"]),
            Row(["up", "--channels", "book"], 64, ["--channels must include trades"]),
            Row(["up", "-X", "nonsense"], 64, ["not of the form key=value"]),
            Row(["simulate", "--rate", "-5"], 64, ["--rate must be positive", "got -5"]),
            Row(["simulate", "--silence-timeout", "inf"], 64, ["--silence-timeout must be at most 86400"]),
            Row(["simulate", "--exchange", "nyse"], 64, ["Unknown exchange 'nyse'"]),
            Row(["simulate", "--burst-probability", "nan"], 64, ["--burst-probability must be from 0 to 1", "got nan"]),
            Row(["simulate", "--burst-length", "0"], 64, ["--burst-length must be from 1 to 1000000", "got 0"]),
            Row(["simulate", "--burst-rate", "0.5"], 64, ["--burst-rate must be from 1 to 10000", "got 0.5"]),
            Row(["broker", "--num-partitions", "-1", "--data-dir", d], 64, ["--num-partitions must be at least 1; got -1"]),
            Row(["broker", "--listen", "nonsense", "--data-dir", d], 64, ["--listen must be HOST:PORT"]),
            Row(["topics", "create", "x", "--partitions", "-3"], 64, ["--partitions must be from 1 to 100000; got -3"]),
            Row(["topics", "describe", "x", "-X", "nonsense"], 64, ["not of the form key=value"]),
            Row(["topics", "delete"], 64, ["Missing expected argument"]),
            Row(["groups", "describe"], 64, ["Missing expected argument"]),
            Row(["produce", "--topic", "t", "--header", "bad"], 64, ["--header 'bad' is not of the form key=value"]),
            Row(["produce", "--topic", "t", "--compression", "rar"], 64, ["Unknown compression 'rar'"]),
            Row(["consume", "--topic", "t", "--count", "-5"], 64, ["--count must be positive; got -5"]),
            Row(["consume", "--topic", "t", "--partition", "-1"], 64, ["--partition must be 0 or more; got -1"]),
            Row(["consume", "--topic", "t", "--partition", "0", "--offset", "-2"], 64, ["--offset must be 0 or more; got -2"]),
            Row(["ingest", "--exchange", "nyse"], 64, ["Unknown exchange 'nyse'"]),
            Row(["ingest", "--buffer", "-1"], 64, ["--buffer must be positive"]),
            Row(["ingest", "--mock-brokers", "-5"], 64, ["--mock-brokers must be from 1 to 100; got -5"]),
            Row(["process", "--intervals", "1m,2w", "--no-db"], 64, ["'2w' is not a candle interval"]),
            Row(["process", "--output-partitions", "-4", "--no-db"], 64, ["--output-partitions must be positive; got -4"]),
            Row(["serve", "--http", "nonsense"], 64, ["--http"]),
            Row(["serve", "--book-replay", "-1"], 64, ["--book-replay must be between 0 and 31536000"]),
            Row(["candles", "--interval", "7x", "--db", d], 64, ["--interval '7x' is not an interval"]),
            Row(["books", "--symbol", "nocolon"], 64, ["--symbol must be exchange:SYMBOL"]),
            Row(["books", "--symbol", "a:B", "--depth", "-1"], 64, ["--depth must be between 1 and 100000"]),
            Row(["bench", "produce", "--count", "0"], 64, ["--count and --runs must be positive"]),
            Row(["bench", "produce", "--acks", "-5"], 64, ["--acks must be all, -1, 0 or 1; got -5"]),
            Row(["bench", "consume", "--runs", "0"], 64, ["--count and --runs must be positive"]),
            Row(["bench", "latency", "--rate", "-5"], 64, ["--rate and --seconds must be positive", "got -5"]),
            Row(["bench", "parse"], 64, ["Give either --file FRAMES or --synthetic N"]),
            Row(["bench", "parse", "--synthetic", "10", "--seconds", "-1"], 64, ["--seconds must be between 0 and 600; got -1"]),
            Row(["bench", "book", "--exchange", "binance"], 64, ["Give either --file FRAMES or --synthetic N"]),
            Row(["bench", "process", "--runs", "-1"], 64, ["must be positive", "got"]),
            Row(["bench", "process", "--core-only", "--tick-every", "0"], 64, ["--tick-every must be positive; got 0"]),
            Row(["bench", "e2e", "--rates", "-5"], 64, ["--rates must be positive numbers"]),
            Row(["bench", "e2e", "--tape-binary", dir.path], 64, ["--tape-binary \(dir.path) is not an executable file"]),
            Row(["mock-cluster", "--brokers", "0"], 64, ["--brokers must be from 1 to 100; got 0"]),
            Row(["mock-cluster", "--topic", "x"], 64, ["--topic expects name:partitions"]),
            Row(["users", "add", "bob", "--mechanism", "md5", "--data-dir", d], 64, ["--mechanism takes plain"]),
            Row(["acls", "add", "--data-dir", d], 64, ["--resource-type is required"]),
            Row(["acls", "delete", "--data-dir", d], 64, ["give fields to match"]),
            Row(["acls", "list", "--pattern", "glob", "--data-dir", d], 64, ["--pattern takes literal, prefixed, any or match"]),
        ])
        XCTAssertFalse(FileManager.default.fileExists(atPath: d), "a usage error starts nothing")
    }

    // MARK: - files and ports: exit 1, one sentence

    func testFilesAndPortsFailAtRunTimeInOneSentence() throws {
        let busy = "127.0.0.1:\(busyPort)"
        walk([
            Row(["up", "--offline", "--data-dir", file, "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0"], 1, ["--data-dir \(file) is a file, not a directory"]),
            Row(["up", "--offline", "--data-dir", file + "/sub", "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0"], 1, ["part of that path is a file"]),
            // Tests run as root: a parent nobody can create a directory in is simulated by /proc.
            Row(["up", "--offline", "--data-dir", "/proc/tape-walk/data", "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0"], 1, ["/proc/tape-walk/data"]),
            // ... and a read-only parent (Foundation's Code=513 before) by /sys, where even root may not create.
            Row(["broker", "--data-dir", "/sys/tape-walk", "--listen", "127.0.0.1:0"], 1, ["Cannot write --data-dir /sys/tape-walk: permission denied"]),
            Row(["process", "--db", "/sys/tape-walk/candles.sqlite", "--brokers", closed], 1, ["--db /sys/tape-walk/candles.sqlite: permission denied"]),
            Row(["broker", "--data-dir", file, "--listen", "127.0.0.1:0"], 1, ["--data-dir \(file) is a file, not a directory"]),
            Row(["process", "--db", file + "/candles.sqlite", "--brokers", closed], 1, ["is a file, not a directory", "--db"]),
            Row(["process", "--db", notSQLite, "--brokers", closed], 1, ["is not a Tape candle database (not SQLite)"]),
            Row(["serve", "--data-dir", file, "--brokers", closed, "--http", "127.0.0.1:0"], 1, ["--data-dir \(file) is a file"]),
            Row(["serve", "--db", file + "/candles.sqlite", "--brokers", closed, "--http", "127.0.0.1:0"], 1, ["is a file, not a directory"]),
            Row(["serve", "--db", notSQLite, "--brokers", closed, "--http", "127.0.0.1:0"], 1, ["is not a Tape candle database (not SQLite)"]),
            Row(["candles", "--db", notSQLite], 1, ["\(notSQLite) is not a Tape candle database (not SQLite)"]),
            Row(["candles", "--db", path("missing.sqlite")], 1, ["No candle history at"]),
            Row(["candles", "--db", dir.path], 1, ["is a directory; give the candle history file"]),
            Row(["users", "list", "--data-dir", file], 1, ["--data-dir \(file) is a file"]),
            Row(["users", "add", "bob", "--data-dir", file], 1, ["--data-dir \(file) is a file"], stdin: "secret\n"),
            Row(["users", "add", "bob", "--password-file", path("no-such-file"), "--data-dir", path("users")], 1, ["cannot read the password file"]),
            Row(["users", "delete", "nobody", "--data-dir", path("users")], 1, ["there is no user nobody"]),
            Row(["acls", "list", "--data-dir", file], 1, ["--data-dir \(file) is a file"]),
            Row(["acls", "delete", "--principal", "User:nobody", "--data-dir", path("acls")], 1, ["no ACL"]),
            Row(["bench", "parse", "--file", path("no-frames")], 1, ["Cannot read"]),
            Row(["simulate", "--tls-cert", path("no.pem"), "--tls-key", path("no.key")], 1, ["Cannot load --tls-cert"]),
            Row(["broker", "--tls-cert", path("no.pem"), "--tls-key", path("no.key"), "--data-dir", path("tls")], 1, ["cannot read the TLS certificate"]),
            Row(["ingest", "--ca-file", path("no.pem"), "--brokers", closed], 1, ["Cannot read --ca-file"]),
            Row(["bench", "book", "--exchange", "binance", "--file", path("no-frames")], 1, ["Cannot read"]),
            Row(
                ["up", "--offline", "--http", busy, "--data-dir", path("up-http"), "--listen", "127.0.0.1:0"], 1,
                ["Cannot listen on \(busy): the address is already in use", "--http HOST:PORT"]),
            Row(["up", "--offline", "--listen", busy, "--data-dir", path("up-listen"), "--http", "127.0.0.1:0"], 1, ["\(busy) is already in use", "--listen"]),
            Row(["broker", "--listen", busy, "--data-dir", path("broker")], 1, ["\(busy) is already in use", "--listen"]),
            Row(["simulate", "--listen", busy], 1, ["Cannot listen on \(busy): the address is already in use", "--listen HOST:PORT"]),
            Row(
                ["serve", "--http", busy, "--brokers", closed, "--data-dir", path("serve")], 1,
                ["Cannot listen on \(busy): the address is already in use", "--http HOST:PORT"]),
        ])
    }

    // MARK: - no cluster: exit 1 within about 5 s

    func testUnreachableClusterIsReportedWithinFiveSeconds() throws {
        let says = ["no Kafka broker answered at \(closed) within 5 s"]
        let b = ["--brokers", closed]
        walk(
            [
                Row(["topics", "list"] + b, 1, says),
                Row(["topics", "describe", "x"] + b, 1, says),
                Row(["topics", "create", "x"] + b, 1, says),
                Row(["topics", "delete", "x"] + b, 1, says),
                Row(["groups", "list"] + b, 1, says),
                Row(["groups", "describe", "g"] + b, 1, says),
                Row(["produce", "--topic", "t"] + b, 1, says, stdin: "a\n"),
                Row(["consume", "--topic", "t"] + b, 1, says),
                Row(["books", "--symbol", "binance:BTC-USDT"] + b, 1, says),
                Row(["ingest"] + b, 1, says),
                Row(["process", "--no-db"] + b, 1, says),
                Row(["bench", "produce", "--count", "10"] + b, 1, says),
                Row(["bench", "consume", "--count", "10"] + b, 1, says),
                Row(["bench", "latency", "--seconds", "1"] + b, 1, says),
                Row(["bench", "process", "--count", "10", "--runs", "1"] + b, 1, says),
                Row(["up", "--offline", "--data-dir", path("up-brokers"), "--http", "127.0.0.1:0"] + b, 1, says),
            ].map {
                var row = $0
                row.within = 7  // 5 s, plus starting a debug build on a busy machine
                return row
            }, concurrency: 6)
    }

    // MARK: - a cluster that answers, but not as asked

    func testUnknownTopicsPartitionsAndOffsetsAreNamed() throws {
        let kafkaPort = Loopback.freePort()
        let brokers = "127.0.0.1:\(kafkaPort)"
        let broker = try ChildProcess(["broker", "--listen", brokers, "--data-dir", path("kafka")], name: "walk-broker")
        defer { broker.interrupt(timeout: 10) }
        try broker.waitForPort(kafkaPort)
        let tape = TapeBinary.privateCopy
        let created = try runProcess(tape, ["topics", "create", "walk", "--partitions", "3", "--brokers", brokers])
        XCTAssertEqual(created.status, 0, created.stderr)
        let produced = try runProcess(tape, ["produce", "--topic", "walk", "--partition", "0", "--brokers", brokers], stdin: "a\nb\n")
        XCTAssertEqual(produced.status, 0, produced.stderr)

        let mock = try ChildProcess(["mock-cluster", "--brokers", "1"], name: "walk-mock")
        defer { mock.interrupt(timeout: 10) }
        let mockBrokers = try mock.firstLine()

        let b = ["--brokers", brokers]
        walk([
            Row(["consume", "--topic", "nope.topic"] + b, 1, ["Topic 'nope.topic' does not exist at \(brokers)"]),
            Row(["consume", "--topic", "walk", "--partition", "9"] + b, 1, ["walk has partitions 0-2; --partition 9 does not exist."]),
            Row(["consume", "--topic", "walk", "--partition", "0", "--offset", "999999999"] + b, 1, ["--offset 999999999 is beyond the end", "high watermark 2"]),
            Row(["produce", "--topic", "walk", "--partition", "9"] + b, 1, ["walk has partitions 0-2; --partition 9 does not exist."], stdin: "a\n"),
            Row(["topics", "describe", "nope"] + b, 1, ["Topic 'nope' does not exist"]),
            Row(["topics", "delete", "nope"] + b, 1, ["'nope'"]),
            Row(["topics", "create", "walk"] + b, 1, ["'walk' already exists"]),
            Row(["topics", "create", "replicated", "--replication-factor", "3"] + b, 1, ["replication"]),
            Row(["books", "--symbol", "binance:BTC-USDT"] + b, 1, ["Topic 'tape.books' does not exist"]),
            Row(["bench", "consume", "--topic", "nope.bench", "--count", "5"] + b, 1, ["Topic 'nope.bench' does not exist"]),
            // librdkafka's mock cluster answers metadata but has no CreateTopics: said as such.
            Row(["topics", "create", "x", "--brokers", mockBrokers], 1, ["answers, but not this request", "mock cluster"]),
        ])
    }

    // MARK: - the walk

    /// Runs the rows (`concurrency` at a time) and checks each: status, the sentence, no usage
    /// for failures at run time, usage for bad flags, no dump, the time taken.
    func walk(_ rows: [Row], concurrency: Int = 4) {
        let tape = TapeBinary.privateCopy
        let results = Locked<[Int: (ProcessResult?, TimeInterval, String?)]>([:])
        let next = Locked(0)
        @Sendable func work() {
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }
                    return n
                }
                guard i < rows.count else { return }
                let row = rows[i]
                let start = Date()
                do {
                    let r = try runProcess(tape, row.arguments, stdin: row.stdin, timeout: max(row.within * 3, 30))
                    results.withLock { $0[i] = (r, Date().timeIntervalSince(start), nil) }
                } catch {
                    results.withLock { $0[i] = (nil, Date().timeIntervalSince(start), "\(error)") }
                }
            }
        }
        // Threads of their own (concurrentPerform would use one per core): the rows mostly wait.
        let done = DispatchGroup()
        for _ in 0..<concurrency {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                work()
            }
        }
        done.wait()
        let all = results.withLock { $0 }
        for (i, row) in rows.enumerated() {
            let command = "tape " + row.arguments.joined(separator: " ")
            guard let (result, seconds, failure) = all[i], let result else {
                XCTFail("\(command): \(all[i]?.2 ?? "did not run")")
                continue
            }
            _ = failure
            let stderr = result.stderr
            XCTAssertEqual(result.status, row.status, "\(command): exit status; stderr:\n\(stderr)")
            XCTAssertFalse(stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(command): nothing on stderr")
            for text in row.says {
                XCTAssertTrue(stderr.contains(text), "\(command): stderr lacks \"\(text)\":\n\(stderr)")
            }
            for text in Self.forbidden {
                XCTAssertFalse(stderr.contains(text), "\(command): stderr contains \"\(text)\":\n\(stderr)")
            }
            let lines = stderr.split(separator: "\n", omittingEmptySubsequences: true)
            let errorLines = lines.filter { $0.hasPrefix("Error: ") }
            XCTAssertEqual(errorLines.count, 1, "\(command): one Error line expected:\n\(stderr)")
            if row.status == 64 {
                // ArgumentParser's usage hint follows the one-line message.
                XCTAssertTrue(lines.first?.hasPrefix("Error: ") ?? false, "\(command): \(stderr)")
                XCTAssertTrue(lines.dropFirst().first.map { $0.hasPrefix("Usage: ") || $0.hasPrefix("Help: ") } ?? false, "\(command): \(stderr)")
                XCTAssertTrue(stderr.contains("Usage: "), "\(command): a usage error shows the usage:\n\(stderr)")
            } else {
                XCTAssertFalse(stderr.contains("Usage:"), "\(command): a failure at run time shows no usage:\n\(stderr)")
                XCTAssertEqual(lines.count, 1, "\(command): one line on stderr:\n\(stderr)")
            }
            XCTAssertLessThanOrEqual(seconds, row.within, "\(command): took \(seconds) s")
        }
    }

    /// A loopback listener (port chosen by the kernel), held until closed.
    static func listen() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket failed") }
        var addr = Loopback.address(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            close(fd)
            throw TestSupportError("cannot listen on loopback")
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }
}
