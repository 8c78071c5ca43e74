import Foundation

/// Dynamic broker configs (see `DynamicBrokerConfigs`), kept in `broker-configs.json` in the data
/// directory: a JSON object of strings, written durably (temp file, fsync, rename, directory fsync).
extension LogManager {
    var brokerConfigsPath: String { path("broker-configs.json") }

    /// Reads `broker-configs.json` at start. An unreadable file is moved to `.quarantine/` and logged;
    /// it never stops the broker from starting. Keys this build does not accept are dropped.
    func loadBrokerConfigs() {
        let file = brokerConfigsPath
        guard FileManager.default.fileExists(atPath: file) else { return }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            let decoded = try JSONDecoder().decode([String: String].self, from: data)
            let kept = decoded.filter { DynamicBrokerConfigs.problem(key: $0.key, value: $0.value) == nil }
            if kept.count != decoded.count {
                logger.warning(
                    "dropping stored dynamic broker configs this build does not accept",
                    metadata: ["configs": "\(decoded.keys.filter { kept[$0] == nil }.sorted())"])
            }
            lock.withLock { storedBrokerConfigs = kept }
        } catch {
            logger.error("cannot read \(file); dynamic broker configs start empty", metadata: ["error": "\(error)"])
            let fm = FileManager.default
            try? fm.createDirectory(atPath: quarantineDirectory, withIntermediateDirectories: true)
            try? fm.moveItem(
                atPath: file,
                toPath: (quarantineDirectory as NSString).appendingPathComponent("broker-configs.json.\(Int(Date().timeIntervalSince1970))"))
        }
    }

    /// The dynamic broker configs set (not defaults).
    public func dynamicBrokerConfigs() -> [String: String] {
        lock.withLock { storedBrokerConfigs }
    }

    /// Replaces the dynamic broker configs (already validated), durably.
    public func setDynamicBrokerConfigs(_ configs: [String: String]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes = try Array(encoder.encode(configs))
        try lock.withLock {
            try writeFileDurably(bytes, to: brokerConfigsPath)
            storedBrokerConfigs = configs
        }
    }

    /// DescribeConfigs defaults of the topic configs that follow the broker's `--fsync` policy.
    public func topicConfigDefaults() -> [String: String] {
        let d = flushDefaults
        return ["flush.messages": String(d.messages), "flush.ms": String(d.ms)]
    }
}
