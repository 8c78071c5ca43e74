import Foundation
import Hummingbird
import HummingbirdTesting
import TapeServer
import TapeTestSupport
import XCTest
import Yams

/// Checks the running server against docs/openapi.yaml: every documented path is exercised,
/// every response status is documented for its path, and every JSON body validates against the
/// documented schema (a JSON Schema subset: $ref, allOf, nullable, type, enum, pattern, required,
/// properties, additionalProperties, items, minimum, maximum).
final class OpenAPIConformanceTests: XCTestCase {
    static let specURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/openapi.yaml")

    static func loadSpec() throws -> [String: Any] {
        let text = try String(contentsOf: specURL, encoding: .utf8)
        guard let spec = JSONValue.fromYAML(try Yams.load(yaml: text) as Any) as? [String: Any] else {
            throw SchemaError(path: "$", reason: "openapi.yaml is not a mapping")
        }
        return spec
    }

    func testServerMatchesOpenAPIDocument() async throws {
        let spec = try Self.loadSpec()
        let validator = SchemaValidator(spec: spec)
        let paths = spec["paths"] as? [String: Any] ?? [:]
        XCTAssertEqual(Set(paths.keys), ["/api/markets", "/api/trades", "/api/candles", "/api/stats", "/api/gaps", "/api/book", "/health", "/metrics"])

        // Requests: every example parameter of each path at once, each alone, plus bad ones.
        var requests: [(path: String, query: String, headers: HTTPFields, token: Bool)] = []
        for (path, item) in paths.sorted(by: { $0.key < $1.key }) {
            let parameters = ((item as? [String: Any])?["get"] as? [String: Any])?["parameters"] as? [Any] ?? []
            let examples: [(String, String)] = parameters.compactMap { p in
                guard let p = p as? [String: Any], let name = p["name"] as? String, let example = p["example"] else { return nil }
                return (name, "\(example)")
            }
            requests.append((path, "", [:], false))
            requests.append((path, examples.map { "\($0.0)=\($0.1)" }.joined(separator: "&"), [:], false))
            for (name, value) in examples { requests.append((path, "\(name)=\(value)", [:], false)) }
            requests.append((path, "bogus=1", [:], false))
            requests.append((path, "limit=-3&interval=7x&symbol=nope", [:], false))
            requests.append((path, "", [:], true))  // with a token set, no credentials
        }
        XCTAssertTrue(requests.contains { $0.path == "/api/candles" && $0.query.contains("from=") && $0.query.contains("to=") })

        let open = Fixture(gaps: GapServerTests.gaps(), incomplete: [3, 4])
        open.state.accept(
            BookServerTests.event(.snapshot, sequence: 3, bids: [("21614.59", "0.5"), ("21614.5", "2")], asks: [("21614.6", "1")], exchange: "poloniex"))
        let guarded = Fixture(token: "t0ken")
        let allRequests = requests
        let responses = Locked<[(path: String, uri: String, status: String, contentType: String, body: Data)]>([])
        let requestsDegraded = Locked<(Data, String)>((Data(), ""))
        // A server that has seen no trade for longer than --stale-after: /health is 503.
        let stale = Fixture(health: HealthPolicy(staleAfterMilliseconds: 1))
        try await stale.app.test(.router) { client in
            _ = try await client.execute(uri: "/health", method: .get)  // sees the fixture's trades
            try await Task.sleep(for: .milliseconds(5))
            let response = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(response.status, .serviceUnavailable, response.body.text)
            requestsDegraded.withLock { $0 = (Data(buffer: response.body), response.headers[.contentType] ?? "") }
        }
        for (fixture, useToken) in [(open, false), (guarded, true)] {
            try await fixture.app.test(.router) { client in
                for r in allRequests where r.token == useToken {
                    let uri = r.query.isEmpty ? r.path : "\(r.path)?\(r.query)"
                    let response = try await client.execute(uri: uri, method: .get, headers: r.headers)
                    responses.withLock {
                        $0.append((r.path, uri, String(response.status.code), response.headers[.contentType] ?? "", Data(buffer: response.body)))
                    }
                }
            }
        }
        let degraded = requestsDegraded.withLock { $0 }
        responses.withLock { $0.append(("/health", "/health (stale)", "503", degraded.1, degraded.0)) }
        var checked = 0
        var statuses: Set<String> = []
        for r in responses.withLock({ $0 }) {
            statuses.insert("\(r.path) \(r.status)")
            let operation = (paths[r.path] as? [String: Any])?["get"] as? [String: Any] ?? [:]
            guard let documented = (operation["responses"] as? [String: Any])?[r.status] else {
                XCTFail("\(r.uri) answered \(r.status), which docs/openapi.yaml does not document for \(r.path)")
                continue
            }
            let content = (try validator.resolve(documented) as? [String: Any])?["content"] as? [String: Any] ?? [:]
            if r.contentType.hasPrefix("application/json") {
                guard let schema = (content["application/json"] as? [String: Any])?["schema"] else {
                    XCTFail("\(r.uri): JSON body but no JSON schema documented for \(r.status)")
                    continue
                }
                let body = try JSONValue.parse(r.body)
                do { try validator.validate(body, against: schema, at: "$") } catch {
                    XCTFail("\(r.uri) → \(r.status): \(error)\n\(String(decoding: r.body, as: UTF8.self))")
                }
            } else {
                XCTAssertNotNil(content[r.contentType.components(separatedBy: ";")[0]], "\(r.uri): \(r.contentType) not documented")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 30)
        for expected in [
            "/api/candles 200", "/api/candles 400", "/api/candles 401", "/api/trades 200", "/api/trades 400", "/api/markets 200",
            "/api/stats 200", "/api/gaps 200", "/api/gaps 400", "/api/gaps 401", "/api/book 200", "/api/book 400", "/api/book 401", "/health 200", "/health 503", "/metrics 200", "/metrics 401",
        ] {
            XCTAssertTrue(statuses.contains(expected), "never saw \(expected); saw \(statuses.sorted())")
        }
    }

    /// The validator must be able to say no: bodies that break the schema in different ways.
    func testValidatorRejectsBodiesThatBreakTheSchema() throws {
        let validator = SchemaValidator(spec: try Self.loadSpec())
        let candle: [String: Any] = [
            "v": Int64(1), "exchange": "poloniex", "symbol": "BTC-USDT", "interval": "1m", "start": Int64(0), "end": Int64(60000),
            "open": "1.5", "high": "2", "low": "1", "close": "1.75", "volume": "3", "quoteVolume": "4.5", "buyVolume": "1",
            "sellVolume": "2", "trades": Int64(3), "vwap": NSNull(), "revision": Int64(1), "final": true, "complete": true,
        ]
        let good: [String: Any] = ["symbol": "poloniex:BTC-USDT", "interval": "1m", "candles": [candle]]
        let schema: [String: Any] = ["$ref": "#/components/schemas/CandlesResponse"]
        XCTAssertNoThrow(try validator.validate(good, against: schema, at: "$"))
        var mutations: [(String, [String: Any])] = []
        var c = candle
        c["open"] = 1.5
        mutations.append(("number instead of decimal string", ["symbol": "poloniex:BTC-USDT", "interval": "1m", "candles": [c]]))
        c = candle
        c["close"] = nil
        mutations.append(("missing close", ["symbol": "poloniex:BTC-USDT", "interval": "1m", "candles": [c]]))
        c = candle
        c["extra"] = "x"
        mutations.append(("unknown member", ["symbol": "poloniex:BTC-USDT", "interval": "1m", "candles": [c]]))
        c = candle
        c["final"] = Int64(1)
        mutations.append(("integer for boolean", ["symbol": "poloniex:BTC-USDT", "interval": "1m", "candles": [c]]))
        c = candle
        c["high"] = "12,5"
        mutations.append(("malformed decimal", ["symbol": "poloniex:BTC-USDT", "interval": "1m", "candles": [c]]))
        mutations.append(("bad symbol", ["symbol": "BTC-USDT", "interval": "1m", "candles": [candle]]))
        mutations.append(("candles not an array", ["symbol": "poloniex:BTC-USDT", "interval": "1m", "candles": candle]))
        for (what, body) in mutations {
            XCTAssertThrowsError(try validator.validate(body, against: schema, at: "$"), what)
        }
    }
}

struct SchemaError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "\(path): \(reason)" }
}

/// JSON values with integers, doubles and booleans kept apart (JSONSerialization blurs them).
enum JSONValue {
    static func parse(_ data: Data) throws -> Any {
        try JSONDecoder().decode(Node.self, from: data).value
    }

    /// Yams gives `[AnyHashable: Any]` mappings; make them `[String: Any]`.
    static func fromYAML(_ value: Any) -> Any {
        if let map = value as? [AnyHashable: Any] {
            var out: [String: Any] = [:]
            for (k, v) in map { out["\(k.base)"] = fromYAML(v) }
            return out
        }
        if let map = value as? [String: Any] { return map.mapValues(fromYAML) }
        if let list = value as? [Any] { return list.map(fromYAML) }
        if let i = value as? Int { return Int64(i) }
        return value
    }

    struct Node: Decodable {
        var value: Any
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() {
                value = NSNull()
            } else if let b = try? c.decode(Bool.self) {
                value = b
            } else if let i = try? c.decode(Int64.self) {
                value = i
            } else if let d = try? c.decode(Double.self) {
                value = d
            } else if let s = try? c.decode(String.self) {
                value = s
            } else if let a = try? c.decode([Node].self) {
                value = a.map(\.value)
            } else {
                value = try c.decode([String: Node].self).mapValues(\.value)
            }
        }
    }
}

/// A JSON Schema subset as OpenAPI 3.0 uses it.
struct SchemaValidator {
    let spec: [String: Any]

    func resolve(_ node: Any) throws -> Any {
        guard let map = node as? [String: Any], let ref = map["$ref"] as? String else { return node }
        guard ref.hasPrefix("#/") else { throw SchemaError(path: ref, reason: "only local references are supported") }
        var current: Any = spec
        for part in ref.dropFirst(2).split(separator: "/") {
            guard let next = (current as? [String: Any])?[String(part)] else { throw SchemaError(path: ref, reason: "unresolved reference") }
            current = next
        }
        return try resolve(current)
    }

    func validate(_ value: Any, against schemaNode: Any, at path: String) throws {
        guard let schema = try resolve(schemaNode) as? [String: Any] else { throw SchemaError(path: path, reason: "schema is not a mapping") }
        if value is NSNull {
            if schema["nullable"] as? Bool == true { return }
            throw SchemaError(path: path, reason: "null where the schema does not allow it")
        }
        for sub in schema["allOf"] as? [Any] ?? [] { try validate(value, against: sub, at: path) }
        if let type = schema["type"] as? String {
            let ok: Bool
            switch type {
            case "object": ok = value is [String: Any]
            case "array": ok = value is [Any]
            case "string": ok = value is String
            case "integer": ok = value is Int64
            case "number": ok = value is Int64 || value is Double
            case "boolean": ok = value is Bool
            default: throw SchemaError(path: path, reason: "unknown schema type \(type)")
            }
            if !ok { throw SchemaError(path: path, reason: "expected \(type), got \(Swift.type(of: value)) \(value)") }
        }
        if let options = schema["enum"] as? [Any] {
            guard options.contains(where: { "\($0)" == "\(value)" }) else { throw SchemaError(path: path, reason: "\(value) is not one of \(options)") }
        }
        if let pattern = schema["pattern"] as? String, let s = value as? String {
            guard s.range(of: pattern, options: .regularExpression) != nil else {
                throw SchemaError(path: path, reason: "\"\(s)\" does not match \(pattern)")
            }
        }
        if let n = (value as? Int64).map(Double.init) ?? (value as? Double) {
            if let min = schema["minimum"], let m = Double("\(min)"), n < m { throw SchemaError(path: path, reason: "\(n) < minimum \(m)") }
            if let max = schema["maximum"], let m = Double("\(max)"), n > m { throw SchemaError(path: path, reason: "\(n) > maximum \(m)") }
        }
        if let object = value as? [String: Any] {
            for name in schema["required"] as? [Any] ?? [] where object["\(name)"] == nil {
                throw SchemaError(path: path, reason: "required member \(name) is missing")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for (key, member) in object {
                if let sub = properties[key] {
                    try validate(member, against: sub, at: "\(path).\(key)")
                } else if let extra = schema["additionalProperties"] {
                    if let allowed = extra as? Bool {
                        if !allowed { throw SchemaError(path: path, reason: "member \(key) is not in the schema") }
                    } else {
                        try validate(member, against: extra, at: "\(path).\(key)")
                    }
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] {
            for (i, item) in array.enumerated() { try validate(item, against: items, at: "\(path)[\(i)]") }
        }
    }
}
