import Foundation
import TapeMetrics

/// Increments every TapeMetrics series once, as the other stages will.
/// Touches every Tape metric once. Exchange-labelled series use an exchange of their own
/// (`probe`): the metrics system is global to the test process, and an in-process pipeline test
/// (`TapeRuntimeTests`) counts real `poloniex` trades into it.
enum TapeMetricsProbe {
    static let exchange = "probe"

    static func touchAll() {
        TapeMetrics.framesIn(exchange: exchange).increment(by: 4)
        TapeMetrics.tradesIn(exchange: exchange).increment(by: 3)
        TapeMetrics.parseErrors(exchange: exchange).increment()
        TapeMetrics.reconnects(exchange: exchange).increment()
        TapeMetrics.produceLatency(topic: "tape.trades").recordMilliseconds(3)
        TapeMetrics.consumerLag(group: "tape-processor", topic: "tape.trades").record(12)
        TapeMetrics.brokerBytesInCounter().increment(by: 100)
        TapeMetrics.brokerBytesOutCounter().increment(by: 200)
        TapeMetrics.candlesEmitted(interval: "1m").increment()
    }
}

/// A strict reader of the Prometheus text exposition format (0.0.4): every line is a `# HELP`,
/// `# TYPE` or a sample `name{label="value",...} number`, and every sample belongs to a declared family.
enum PrometheusText {
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    static let name = "[a-zA-Z_:][a-zA-Z0-9_:]*"
    static let sample = try! NSRegularExpression(
        pattern:
            "^(\(name))(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"(\\\\.|[^\"\\\\])*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"(\\\\.|[^\"\\\\])*\")*)?\\})? ([-+]?([0-9.]+([eE][-+]?[0-9]+)?|Inf|NaN))( -?[0-9]+)?$"
    )
    static let type = try! NSRegularExpression(pattern: "^# TYPE (\(name)) (counter|gauge|histogram|summary|untyped)$")

    @discardableResult
    static func validate(_ text: String) throws -> [String: String] {
        var families: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
            let range = NSRange(line.startIndex..., in: line)
            if line.hasPrefix("# HELP ") { continue }
            if let m = type.firstMatch(in: line, range: range) {
                families[String(line[Range(m.range(at: 1), in: line)!])] = String(line[Range(m.range(at: 2), in: line)!])
                continue
            }
            guard let m = sample.firstMatch(in: line, range: range) else { throw Invalid(description: "not a Prometheus line: \(line)") }
            let metric = String(line[Range(m.range(at: 1), in: line)!])
            let family = ["_bucket", "_sum", "_count"].reduce(metric) { name, suffix in
                name.hasSuffix(suffix) && families[String(name.dropLast(suffix.count))] == "histogram" ? String(name.dropLast(suffix.count)) : name
            }
            guard families[family] != nil else { throw Invalid(description: "sample without # TYPE: \(line)") }
        }
        return families
    }
}
