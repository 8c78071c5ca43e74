import Foundation
import TapeTestSupport
import XCTest

/// The built `tape` binary as a process, against `tape mock-cluster` (librdkafka's mock Kafka on
/// loopback), with kcat on the other side: what one writes the other reads byte for byte.
final class CLIInteropTests: XCTestCase {
    var cluster: ChildProcess!
    var brokers = ""

    override func setUpWithError() throws {
        cluster = try ChildProcess(["mock-cluster", "--brokers", "3", "--topic", "interop:3", "--topic", "fromkcat:2", "--topic", "grouped:2"])
        brokers = try cluster.firstLine()
        XCTAssertTrue(brokers.contains("127.0.0.1:"), brokers)
    }

    override func tearDown() {
        cluster?.interrupt(timeout: 10)
        cluster = nil
    }

    func kcat() throws -> String {
        guard let k = Executables.which("kcat") else { throw XCTSkip("kcat is not installed (apt-get install kcat)") }
        return k
    }

    func testTapeProduceKeysHeadersCompressionReadByKcatByteForByte() throws {
        let kcat = try kcat()
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let topic = "interop"
            // Binary-safe values: NUL, 0xFF, tabs, UTF-8; the key is split off at the first "|".
            var input = Data()
            var expected: [(key: Data, value: Data)] = []
            for i in 0..<20 {
                let key = Data("poloniex:BTC-USDT-\(i % 3)".utf8)
                var value = Data("\(codec)-\(i)\t€ ".utf8)
                value.append(contentsOf: [0, 255, 1, 127, UInt8(128 + i)])
                expected.append((key, value))
                input.append(key)
                input.append(contentsOf: Array("|".utf8))
                input.append(value)
                input.append(10)
            }
            let produced = try runProcess(
                TapeBinary.path,
                [
                    "produce", "--brokers", brokers, "--topic", topic, "--key-delimiter", "|",
                    "--compression", codec, "--header", "source=tape", "--header", "codec=\(codec)",
                ], stdin: input)
            XCTAssertEqual(produced.status, 0, produced.stderr)
            XCTAssertTrue(produced.stderr.contains("Produced 20 message(s)"), produced.stderr)

            // kcat -J gives the key/value as JSON strings, which cannot carry raw bytes: use a
            // length-prefixed format instead: key length, key, value length, value.
            let read = try runProcess(kcat, ["-b", brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%K|%k|%S|%s|%h\n"])
            XCTAssertEqual(read.status, 0, read.stderr)
            let records = try parseLengthPrefixed(read.stdoutData)
            let mine = records.filter { $0.headers.contains("codec=\(codec)") }
            XCTAssertEqual(mine.count, 20, "codec \(codec): kcat saw \(records.count) records in all")
            XCTAssertEqual(Set(mine.map { $0.key + Data([0]) + $0.value }), Set(expected.map { $0.key + Data([0]) + $0.value }), "codec \(codec)")
            XCTAssertTrue(mine.allSatisfy { $0.headers == "source=tape,codec=\(codec)" }, mine.first?.headers ?? "")
        }
    }

    func testKcatProduceReadByTapeConsumeJSON() throws {
        let kcat = try kcat()
        var input = ""
        for i in 0..<30 { input += "key-\(i % 4):value \(i) \"quoted\" ünïcode\n" }
        let produced = try runProcess(kcat, ["-b", brokers, "-P", "-t", "fromkcat", "-K", ":", "-H", "origin=kcat", "-z", "zstd"], stdin: Data(input.utf8))
        XCTAssertEqual(produced.status, 0, produced.stderr)
        let consumed = try runProcess(
            TapeBinary.path, ["consume", "--brokers", brokers, "--topic", "fromkcat", "--from-beginning", "--exit-at-end", "--format", "json"])
        XCTAssertEqual(consumed.status, 0, consumed.stderr)
        let lines = consumed.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 30)
        var seen: Set<String> = []
        var partitionsByKey: [String: Set<Int>] = [:]
        for line in lines {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let key = try XCTUnwrap(obj["key"] as? String)
            let value = try XCTUnwrap(obj["value"] as? String)
            XCTAssertEqual(obj["topic"] as? String, "fromkcat")
            XCTAssertNotNil(obj["offset"] as? Int)
            XCTAssertNotNil(obj["timestamp"] as? Int)
            let headers = try XCTUnwrap(obj["headers"] as? [[String: Any]])
            XCTAssertEqual(headers.first?["key"] as? String, "origin")
            XCTAssertEqual(headers.first?["value"] as? String, "kcat")
            seen.insert("\(key):\(value)")
            partitionsByKey[key, default: []].insert(try XCTUnwrap(obj["partition"] as? Int))
        }
        XCTAssertEqual(seen, Set(input.split(separator: "\n").map(String.init)))
        XCTAssertTrue(partitionsByKey.values.allSatisfy { $0.count == 1 }, "\(partitionsByKey)")
    }

    func testConsumeCountAndGroupCommitsThenResumes() throws {
        let input = Data((0..<10).map { "m\($0)\n" }.joined().utf8)
        XCTAssertEqual(try runProcess(TapeBinary.path, ["produce", "--brokers", brokers, "--topic", "grouped", "--key", "same"], stdin: input).status, 0)
        // The mock cluster's coordinator holds a JoinGroup for a session timeout even after the
        // previous member left, so the timeout is made short here.
        let fast = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]
        let first = try runProcess(
            TapeBinary.path, ["consume", "--brokers", brokers, "--topic", "grouped", "--group", "g1", "--from-beginning", "--count", "4"] + fast)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(first.stdout, "m0\nm1\nm2\nm3\n")
        let second = try runProcess(TapeBinary.path, ["consume", "--brokers", brokers, "--topic", "grouped", "--group", "g1", "--count", "6"] + fast)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(second.stdout, "m4\nm5\nm6\nm7\nm8\nm9\n", "the group resumes after what it committed")
        let described = try runProcess(TapeBinary.path, ["groups", "describe", "g1", "--brokers", brokers, "--topics", "grouped"])
        XCTAssertEqual(described.status, 0, described.stderr)
        let row = described.stdout.split(separator: "\n").first { $0.contains("\t10\t") }
        XCTAssertNotNil(row, described.stdout)
        XCTAssertTrue(described.stdout.contains("TotalLag: 0"), described.stdout)
    }

    func testUnreachableBrokerIsOneClearSentenceWithinSeconds() throws {
        let start = Date()
        let result = try runProcess(TapeBinary.path, ["topics", "list"], environment: ["TAPE_BROKERS": "127.0.0.1:1"], timeout: 30)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("127.0.0.1:1"), result.stderr)
        XCTAssertTrue(result.stderr.contains("--brokers"), result.stderr)
        XCTAssertFalse(result.stderr.contains("Fatal error"), result.stderr)
    }

    func testBadFlagsAreExplained() throws {
        let r = try runProcess(TapeBinary.path, ["produce", "--topic", "x", "--compression", "brotli"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("Unknown compression 'brotli'"), r.stderr)
    }

    func testVersionPrintsLibrdkafkaAndFeatures() throws {
        let r = try runProcess(TapeBinary.path, ["version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("librdkafka 2."), r.stdout)
        for feature in ["gzip", "snappy", "lz4", "zstd", "ssl", "sasl_scram", "regex"] {
            XCTAssertTrue(r.stdout.contains(feature), feature)
        }
        XCTAssertEqual(try runProcess(TapeBinary.path, ["--version"]).stdout, r.stdout)
    }
}

struct KcatRecord {
    var key: Data
    var value: Data
    var headers: String
}

/// Parses kcat's `%K|%k|%S|%s|%h\n` output (lengths make it binary-safe).
func parseLengthPrefixed(_ data: Data) throws -> [KcatRecord] {
    let bytes = [UInt8](data)
    var i = 0
    var out: [KcatRecord] = []
    func number() throws -> Int {
        var n = 0
        var negative = false
        if i < bytes.count && bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
            n = n * 10 + Int(bytes[i] - 48)
            i += 1
        }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "|") else { throw XCTSkip("bad kcat output at \(i)") }
        i += 1
        return negative ? -1 : n
    }
    while i < bytes.count {
        let kl = try number()
        let key = Data(bytes[i..<i + max(kl, 0)])
        i += max(kl, 0) + 1
        let vl = try number()
        let value = Data(bytes[i..<i + max(vl, 0)])
        i += max(vl, 0) + 1
        guard let nl = bytes[i...].firstIndex(of: 10) else { break }
        out.append(KcatRecord(key: key, value: value, headers: String(decoding: bytes[i..<nl], as: UTF8.self)))
        i = nl + 1
    }
    return out
}
