import ArgumentParser
import Foundation
import Yams

/// `tape up --config FILE`: the same settings as the flags, in YAML. The file becomes flags put
/// before the command line's, so a flag given on the command line wins over the file's value (for
/// `--symbols` and `-X`, which repeat, the command line's replace the file's).
///
/// ```yaml
/// offline: true
/// exchanges:                 # a list of names, or names with their markets
///   poloniex: [BTC_USDT, ETH_USDT]
///   binance: [BTCUSDT]
///   kraken:                  # empty: the default markets
/// http: 127.0.0.1:8080
/// intervals: [1m, 5m, 1h]
/// retention: 3d
/// kafka:                     # raw librdkafka properties (-X)
///   statistics.interval.ms: 0
/// ```
enum UpConfigFile {
    /// Keys that take one value, as `--key value`.
    static let valueKeys = [
        "data-dir", "listen", "http", "intervals", "channels", "rate", "token", "fsync", "brokers", "stale-after", "retention",
        "retention-size", "endpoint", "rest-endpoint", "sasl", "tls-cert", "tls-key", "tls-client-ca", "super-users", "authorizer",
    ]
    /// Keys that are switches, as `--key` when true.
    static let switchKeys = ["offline", "verbose", "insecure", "allow-everyone-if-no-acl-found"]
    static var allKeys: [String] { ["exchanges", "kafka"] + valueKeys + switchKeys }

    /// The flags `path` stands for, minus those the command line (`given`) sets itself.
    static func arguments(path: String, overriddenBy given: [String]) throws -> [String] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError(
                "--config: cannot read \(path) (\(FileManager.default.fileExists(atPath: path) ? "not readable UTF-8 text" : "no such file")).")
        }
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw ValidationError("--config: \(path) is not valid YAML (\(Self.firstLine(of: error))).")
        }
        if root == nil { return [] }
        guard let settings = root as? [String: Any] else {
            throw ValidationError("--config: \(path) must be a mapping of settings (key: value), e.g. 'offline: true'.")
        }
        func isGiven(_ flag: String) -> Bool { given.contains { $0 == flag || $0.hasPrefix(flag + "=") } }
        var out: [String] = []
        for key in settings.keys.sorted() {
            guard allKeys.contains(key) else {
                let hint = CommandLineWords.closest(key, in: Set(allKeys)).map { " (did you mean '\($0)'?)" }
                throw ValidationError(
                    "--config: \(path) has an unknown setting '\(key)'\(hint ?? ""); settings are \(allKeys.sorted().joined(separator: ", ")).")
            }
            let value = settings[key]
            switch key {
            case "exchanges":
                let (names, symbols) = try exchanges(value, path: path)
                if !isGiven("--exchanges") {
                    out += ["--exchanges", names.joined(separator: ",")]
                    if !isGiven("--symbols") { for s in symbols { out += ["--symbols", s] } }
                }
            case "kafka":
                guard !isGiven("-X") else { continue }
                guard let map = value as? [String: Any] else { throw ValidationError("--config: 'kafka' must map librdkafka properties to values.") }
                for (k, v) in map.sorted(by: { $0.key < $1.key }) { out += ["-X", "\(k)=\(try scalar(v, key: "kafka.\(k)"))"] }
            case _ where switchKeys.contains(key):
                guard let on = value as? Bool else { throw ValidationError("--config: '\(key)' must be true or false.") }
                if on && !isGiven("--\(key)") { out.append("--\(key)") }
            default:
                guard !isGiven("--\(key)") else { continue }
                if let list = value as? [Any] {
                    out += ["--\(key)", try list.map { try scalar($0, key: key) }.joined(separator: ",")]
                } else {
                    out += ["--\(key)", try scalar(value, key: key)]
                }
            }
        }
        return out
    }

    /// `exchanges:` as names and `--symbols` values.
    static func exchanges(_ value: Any?, path: String) throws -> (names: [String], symbols: [String]) {
        if let list = value as? [Any] { return (try list.map { try scalar($0, key: "exchanges") }, []) }
        if let text = value as? String { return ([text], []) }
        guard let map = value as? [String: Any] else {
            throw ValidationError("--config: 'exchanges' must be a list of exchange names, or exchange names with their markets.")
        }
        var names: [String] = []
        var symbols: [String] = []
        for (name, markets) in map.sorted(by: { $0.key < $1.key }) {
            names.append(name)
            switch markets {
            case is NSNull: break
            case let list as [Any]: symbols.append(try list.map { "\(name):\(try scalar($0, key: "exchanges.\(name)"))" }.joined(separator: ","))
            default: symbols.append("\(name):\(try scalar(markets, key: "exchanges.\(name)"))")
            }
        }
        return (names, symbols)
    }

    static func scalar(_ value: Any?, key: String) throws -> String {
        switch value {
        case let s as String: return s
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return String(d)
        default: throw ValidationError("--config: '\(key)' must be a single value (text or number).")
        }
    }

    static func firstLine(of error: any Error) -> String {
        String("\(error)".split(separator: "\n").first ?? "").trimmingCharacters(in: .whitespaces)
    }
}
