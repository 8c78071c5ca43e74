import Foundation

/// Reads the Poloniex captures kept next to the tests (copied from ../shared/fixtures/poloniex/).
enum FixtureFiles {
    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    static func lines(_ name: String) throws -> [String] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }
}

/// One line of a cryptofeed raw capture (see Fixtures/README.md).
enum CaptureLine: Equatable {
    /// `URL <-> TS`: connected.
    case connected(url: String)
    /// `URL <- TS: TEXT`: sent by the client.
    case sent(url: String, text: String)
    /// `TS: TEXT`: received; `receivedAt` in µs, converted exactly from the decimal seconds.
    case received(receivedAt: Int64, text: String)

    init?(_ line: String) {
        if line.hasPrefix("wss://") || line.hasPrefix("https://") {
            if let r = line.range(of: " <-> ") {
                self = .connected(url: String(line[..<r.lowerBound]))
            } else if let r = line.range(of: " <- "), let colon = line.range(of: ": ", range: r.upperBound..<line.endIndex) {
                self = .sent(url: String(line[..<r.lowerBound]), text: String(line[colon.upperBound...]))
            } else {
                return nil
            }
            return
        }
        guard let colon = line.range(of: ": ") else { return nil }
        guard let micros = CaptureLine.microseconds(String(line[..<colon.lowerBound])) else { return nil }
        self = .received(receivedAt: micros, text: String(line[colon.upperBound...]))
    }

    /// "1661123533.6439822" → 1661123533643982 (truncated to µs, no floating point).
    static func microseconds(_ seconds: String) -> Int64? {
        let parts = seconds.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int64(parts[0]) else { return nil }
        var fraction = parts.count == 2 ? String(parts[1].prefix(6)) : ""
        while fraction.count < 6 { fraction += "0" }
        guard let micros = Int64(fraction) else { return nil }
        return whole * 1_000_000 + micros
    }
}
