#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The process's open-files limit (RLIMIT_NOFILE) and how the broker shares it: client
/// connections get what is left after a reserve for storage files, clients of the same process
/// (`tape up`) and the runtime.
public enum DescriptorLimit {
    /// The soft limit now (Int.max when unlimited or unknown).
    public static var current: Int {
        var l = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) == 0 else { return .max }
        return l.rlim_cur >= UInt64(Int.max) ? .max : Int(l.rlim_cur)
    }

    /// Raises the soft limit to the hard limit (as Go's runtime and many servers do: systemd
    /// starts services at 1024 soft, 524288 hard). Returns the soft limit afterwards.
    @discardableResult
    public static func raiseSoftLimit() -> Int {
        var l = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) == 0 else { return current }
        if l.rlim_cur < l.rlim_max {
            var raised = l
            raised.rlim_cur = l.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) != 0 {
                // Some systems refuse values above their own ceiling (macOS: OPEN_MAX).
                raised.rlim_cur = min(l.rlim_max, 65_536)
                _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
            }
        }
        return current
    }

    /// Descriptors kept out of the connection budget: a quarter of the limit (at least 64) for
    /// segment and index files, offsets, the data directory, plus 32 for the listener, event
    /// loops, stdio and logging.
    public static func reserve(limit: Int) -> Int { max(64, limit / 4) + 32 }

    /// Segment and index files storage keeps open: the reserve's quarter less 16 for the offset
    /// store, the data directory lock and short-lived descriptors (directory fsyncs, config writes,
    /// the flusher's dup of a segment being fsynced); at most 8192.
    public static func storageFiles(limit: Int) -> Int {
        guard limit != .max else { return 8192 }
        return min(max(64, limit / 4) - 16, 8192)
    }

    /// Connections that fit: `configured`, lowered so connections and the reserve fit the limit
    /// (never below 8).
    public static func connectionBudget(configured: Int, limit: Int = current) -> Int {
        guard limit != .max else { return max(configured, 1) }
        return max(1, min(configured, max(8, limit - reserve(limit: limit))))
    }
}
