/// Prometheus text format (0.0.4) helpers for `/metrics`: `# HELP` lines for the families
/// swift-prometheus prints without one, and the standard `process_*` families.
public enum MetricsText {
    /// `text` (a scrape) with a `# HELP name ...` line before every `# TYPE name ...` line whose
    /// family has help in `help` and no `# HELP` line yet. Other lines are copied unchanged.
    public static func addingHelp(to text: [UInt8], help: [String: String]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count + help.count * 96)
        let typePrefix = Array("# TYPE ".utf8)
        let helpPrefix = Array("# HELP ".utf8)
        var previousHelpName: ArraySlice<UInt8>? = nil
        var start = text.startIndex
        while start < text.endIndex {
            let end = text[start...].firstIndex(of: UInt8(ascii: "\n")) ?? text.endIndex
            let line = text[start..<end]
            if line.starts(with: typePrefix) {
                let rest = line.dropFirst(typePrefix.count)
                let name = rest.prefix { $0 != UInt8(ascii: " ") }
                if previousHelpName.map({ $0.elementsEqual(name) }) != true,
                    let text = help[String(decoding: name, as: UTF8.self)]
                {
                    appendHelpLine(name: String(decoding: name, as: UTF8.self), help: text, to: &out)
                }
                previousHelpName = nil
            } else if line.starts(with: helpPrefix) {
                previousHelpName = line.dropFirst(helpPrefix.count).prefix { $0 != UInt8(ascii: " ") }
            } else {
                previousHelpName = nil
            }
            out.append(contentsOf: line)
            if end < text.endIndex { out.append(UInt8(ascii: "\n")) }
            start = end < text.endIndex ? text.index(after: end) : end
        }
        return out
    }

    /// `# HELP name text`, escaping backslash and line feed as the format requires.
    public static func appendHelpLine(name: String, help: String, to out: inout [UInt8]) {
        out.append(contentsOf: "# HELP ".utf8)
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: " "))
        for byte in help.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\n"))
    }

    /// A sample value: integers without a fraction (up to 2^53), other finite values as Swift
    /// prints them (`0.25`, `1e+20`), `NaN`/`+Inf`/`-Inf` as the format spells them.
    public static func formatValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 { return String(Int64(value)) }
        return "\(value)"
    }

    /// One unlabelled family: `# HELP`, `# TYPE` and its one sample.
    public static func appendFamily(name: String, type: String, help: String, value: Double, to out: inout [UInt8]) {
        appendHelpLine(name: name, help: help, to: &out)
        out.append(contentsOf: "# TYPE \(name) \(type)\n".utf8)
        out.append(contentsOf: "\(name) \(formatValue(value))\n".utf8)
    }

    /// The `process_*` families of `stats` (those known; a missing value leaves its family out),
    /// with the names, types and help of the Prometheus client libraries.
    public static func appendProcessFamilies(_ stats: ProcessStats, to out: inout [UInt8]) {
        if let v = stats.cpuSeconds {
            appendFamily(name: "process_cpu_seconds_total", type: "counter", help: "Total user and system CPU time spent in seconds.", value: v, to: &out)
        }
        if let v = stats.openFDs {
            appendFamily(name: "process_open_fds", type: "gauge", help: "Number of open file descriptors.", value: v, to: &out)
        }
        if let v = stats.maxFDs {
            appendFamily(name: "process_max_fds", type: "gauge", help: "Maximum number of open file descriptors.", value: v, to: &out)
        }
        if let v = stats.virtualMemoryBytes {
            appendFamily(name: "process_virtual_memory_bytes", type: "gauge", help: "Virtual memory size in bytes.", value: v, to: &out)
        }
        if let v = stats.residentMemoryBytes {
            appendFamily(name: "process_resident_memory_bytes", type: "gauge", help: "Resident memory size in bytes.", value: v, to: &out)
        }
        if let v = stats.startTimeSeconds {
            appendFamily(
                name: "process_start_time_seconds", type: "gauge", help: "Start time of the process since unix epoch in seconds.", value: v,
                to: &out)
        }
    }
}
