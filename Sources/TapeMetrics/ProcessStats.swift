#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the standard `process_*` metrics report about this process (Linux: `/proc/self/stat`,
/// `/proc/stat`, `/proc/self/fd`, `getrlimit`). A value that could not be read is nil.
public struct ProcessStats: Sendable, Equatable {
    public var cpuSeconds: Double?
    public var residentMemoryBytes: Double?
    public var virtualMemoryBytes: Double?
    public var startTimeSeconds: Double?
    public var openFDs: Double?
    public var maxFDs: Double?

    public init(
        cpuSeconds: Double? = nil, residentMemoryBytes: Double? = nil, virtualMemoryBytes: Double? = nil,
        startTimeSeconds: Double? = nil, openFDs: Double? = nil, maxFDs: Double? = nil
    ) {
        self.cpuSeconds = cpuSeconds
        self.residentMemoryBytes = residentMemoryBytes
        self.virtualMemoryBytes = virtualMemoryBytes
        self.startTimeSeconds = startTimeSeconds
        self.openFDs = openFDs
        self.maxFDs = maxFDs
    }

    /// The fields of `/proc/<pid>/stat` the metrics need, in the kernel's units.
    public struct StatFields: Sendable, Equatable {
        /// User and system CPU time, in clock ticks.
        public var userTicks, systemTicks: UInt64
        /// Start time after boot, in clock ticks.
        public var startTicks: UInt64
        /// Virtual memory size in bytes.
        public var virtualBytes: UInt64
        /// Resident set size in pages.
        public var residentPages: UInt64
    }

    /// Parses the text of `/proc/<pid>/stat`. The second field (the command name in parentheses)
    /// may hold spaces and parentheses itself, so fields are counted from the last `)`. Nil when
    /// the text is not in that shape or a number does not fit 64 bits.
    public static func parseStat(_ text: [UInt8]) -> StatFields? {
        guard let close = text.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After ")": field 3 (state) is index 0, so field n is index n - 3.
        let fields = text[text.index(after: close)...].split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") })
        func field(_ n: Int) -> UInt64? {
            let i = n - 3
            guard i >= 0, i < fields.count else { return nil }
            return parseUInt64(fields[i])
        }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23), let rss = field(24) else {
            return nil
        }
        return StatFields(userTicks: utime, systemTicks: stime, startTicks: start, virtualBytes: vsize, residentPages: rss)
    }

    /// The boot time (`btime` line, seconds since the epoch) in the text of `/proc/stat`.
    public static func parseBootTime(_ text: [UInt8]) -> UInt64? {
        for line in text.split(separator: UInt8(ascii: "\n")) {
            let parts = line.split(separator: UInt8(ascii: " "))
            if parts.count == 2, parts[0].elementsEqual("btime".utf8) { return parseUInt64(parts[1]) }
        }
        return nil
    }

    /// Decimal digits only, no sign; nil when empty, not digits, or above `UInt64.max`.
    public static func parseUInt64(_ digits: some Collection<UInt8>) -> UInt64? {
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = sum
        }
        return value
    }

    /// Combines the parsed values: ticks per second and page size from `sysconf`, boot time from
    /// `/proc/stat`. Values that need a missing or non-positive input stay nil.
    public static func from(
        stat: StatFields?, bootTime: UInt64?, ticksPerSecond: Int, pageSize: Int, openFDs: Int?, maxFDs: UInt64?
    ) -> ProcessStats {
        var s = ProcessStats()
        if let stat {
            if ticksPerSecond > 0 {
                let ticks = Double(ticksPerSecond)
                s.cpuSeconds = (Double(stat.userTicks) + Double(stat.systemTicks)) / ticks
                if let bootTime { s.startTimeSeconds = Double(bootTime) + Double(stat.startTicks) / ticks }
            }
            s.virtualMemoryBytes = Double(stat.virtualBytes)
            if pageSize > 0 { s.residentMemoryBytes = Double(stat.residentPages) * Double(pageSize) }
        }
        // Closures, not `Double.init`: for a UInt64 that would pick `init(bitPattern:)`.
        s.openFDs = openFDs.map { Double($0) }
        s.maxFDs = maxFDs.map { Double($0) }
        return s
    }

    /// This process, now (everything nil where `/proc` is missing).
    public static func current() -> ProcessStats {
        #if os(Linux)
        var limit = rlimit()
        let maxFDs: UInt64? = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? UInt64(limit.rlim_cur) : nil
        return from(
            stat: readFile("/proc/self/stat").flatMap(parseStat), bootTime: readFile("/proc/stat").flatMap(parseBootTime),
            ticksPerSecond: sysconf(Int32(_SC_CLK_TCK)), pageSize: sysconf(Int32(_SC_PAGESIZE)), openFDs: countDirectoryEntries("/proc/self/fd"),
            maxFDs: maxFDs)
        #else
        return ProcessStats()
        #endif
    }

    /// The bytes of a (small, `/proc`) file, at most `limit`; nil when it cannot be opened or read.
    static func readFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        #if os(Linux)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            out.append(contentsOf: chunk.prefix(n))
        }
        return out
        #else
        return nil
        #endif
    }

    /// Entries of a directory other than `.` and `..` (for `/proc/self/fd`: open descriptors, the
    /// one reading the directory included, as the Prometheus clients count them).
    static func countDirectoryEntries(_ path: String) -> Int? {
        #if os(Linux)
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name -> Bool in
                (name[0] == UInt8(ascii: ".") && name[1] == 0) || (name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: ".") && name[2] == 0)
            }
            if !isDot { count += 1 }
        }
        return count
        #else
        return nil
        #endif
    }
}
