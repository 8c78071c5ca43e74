import Foundation
import NIOConcurrencyHelpers

/// The content of `acls.json`.
public struct AclsFile: Sendable, Codable, Equatable {
    public var version: Int = 1
    /// Each binding once, in the order they were created.
    public var acls: [AclBinding] = []
    public init(acls: [AclBinding] = []) { self.acls = acls }
}

/// Why the ACL file could not be read or written, in one sentence.
public struct AclStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The ACLs of a broker, in `acls.json` of its data directory (mode 0600, replaced atomically, as
/// `credentials.json` is). The broker re-reads the file when it changes, so `tape acls add` on a
/// running broker's directory takes effect without a restart.
public final class AclStore: Sendable {
    public let path: String
    public static let fileName = "acls.json"
    /// Larger files are refused (a binding takes ~200 bytes).
    public static let maxFileBytes = 64 << 20
    /// Bindings kept; CreateAcls beyond it is refused (Kafka has no limit; a bound keeps a client from filling the disk).
    public static let maxBindings = 100_000

    private struct Cache {
        var loaded = false
        var stamp: AtomicFile.Stamp?
        var file = AclsFile()
    }
    private let cache = NIOLockedValueBox(Cache())

    public init(path: String) { self.path = path }

    public convenience init(dataDirectory: String) {
        self.init(path: (dataDirectory as NSString).appendingPathComponent(Self.fileName))
    }

    /// Reads the file now (a missing file holds no ACLs). Throws for unreadable or malformed files.
    public func read() throws -> AclsFile {
        guard FileManager.default.fileExists(atPath: path) else { return AclsFile() }
        guard let data = AtomicFile.read(path, maxBytes: Self.maxFileBytes) else {
            throw AclStoreError(message: "cannot read \(path); check its permissions.")
        }
        guard data.count <= Self.maxFileBytes else { throw AclStoreError(message: "\(path) is larger than \(Self.maxFileBytes) bytes; it is not an ACL file.") }
        let file: AclsFile
        do {
            file = try JSONDecoder().decode(AclsFile.self, from: data)
        } catch {
            throw AclStoreError(message: "\(path) is not a valid ACL file (\(error)); fix or remove it.")
        }
        guard file.version == 1 else { throw AclStoreError(message: "\(path) has version \(file.version); this tape reads version 1.") }
        for b in file.acls {
            do { try b.validate() } catch { throw AclStoreError(message: "\(path) holds an invalid ACL (\(error)); fix or remove it.") }
        }
        return file
    }

    /// The current ACLs, re-read when the file changed since the last call. A file that became
    /// unreadable keeps the last good content.
    public func current() -> [AclBinding] {
        let now = AtomicFile.Stamp(path: path)
        return cache.withLockedValue { c in
            if c.loaded, c.stamp == now { return c.file.acls }
            if let file = try? read() {
                c.file = file
                c.stamp = now
                c.loaded = true
            }
            return c.file.acls
        }
    }

    /// Reads, changes and writes the file (atomically, under the lock file); returns what `change` returns.
    @discardableResult
    public func update<R>(_ change: (inout AclsFile) throws -> R) throws -> R {
        try cache.withLockedValue { c in
            do {
                return try AtomicFile.withExclusiveLock(path: path) {
                    var file = try read()
                    let result = try change(&file)
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    try AtomicFile.replace(path, with: try encoder.encode(file))
                    c.file = file
                    c.stamp = AtomicFile.Stamp(path: path)
                    c.loaded = true
                    return result
                }
            } catch let e as AtomicFile.Failure {
                throw AclStoreError(message: e.message)
            }
        }
    }

    /// Adds the bindings not already present; returns how many were new.
    @discardableResult
    public func add(_ bindings: [AclBinding]) throws -> Int {
        try update { file in
            var present = Set(file.acls)
            var added = 0
            for b in bindings where present.insert(b).inserted {
                guard file.acls.count < Self.maxBindings else {
                    throw AclStoreError(message: "the broker holds \(Self.maxBindings) ACLs, the most it keeps; delete some first.")
                }
                file.acls.append(b)
                added += 1
            }
            return added
        }
    }

    /// Removes every binding matched by any of `filters`; returns, per filter, the bindings it matched.
    public func remove(matching filters: [AclBindingFilter]) throws -> [[AclBinding]] {
        try update { file in
            let matched = filters.map { f in file.acls.filter { f.matches($0) } }
            file.acls.removeAll { b in filters.contains { $0.matches(b) } }
            return matched
        }
    }
}
