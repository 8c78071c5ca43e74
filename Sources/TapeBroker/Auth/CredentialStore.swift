import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One user's credentials: per SCRAM mechanism salt/iterations/StoredKey/ServerKey, and for
/// PLAIN a salted hash. Never a password.
public struct UserCredentials: Sendable, Codable, Equatable {
    public var scramSha256: ScramCredential?
    public var scramSha512: ScramCredential?
    public var plain: PlainCredential?

    public init(scramSha256: ScramCredential? = nil, scramSha512: ScramCredential? = nil, plain: PlainCredential? = nil) {
        self.scramSha256 = scramSha256
        self.scramSha512 = scramSha512
        self.plain = plain
    }

    public var isEmpty: Bool { scramSha256 == nil && scramSha512 == nil && plain == nil }

    public func scram(_ m: SaslMechanism) -> ScramCredential? {
        switch m {
        case .scramSha256: scramSha256
        case .scramSha512: scramSha512
        case .plain: nil
        }
    }

    public mutating func setScram(_ m: SaslMechanism, _ c: ScramCredential?) {
        switch m {
        case .scramSha256: scramSha256 = c
        case .scramSha512: scramSha512 = c
        case .plain: break
        }
    }

    /// The mechanisms this user has a credential for.
    public var mechanisms: [SaslMechanism] {
        SaslMechanism.allCases.filter { m in m == .plain ? plain != nil : scram(m) != nil }
    }
}

/// The credentials file's content.
public struct CredentialsFile: Sendable, Codable, Equatable {
    public var version: Int = 1
    public var users: [String: UserCredentials] = [:]
    public init() {}
}

/// Why the credentials file could not be read or written, in one sentence.
public struct CredentialStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The users of a broker, in `credentials.json` of its data directory (mode 0600, replaced
/// atomically). The broker re-reads the file when it changes, so `tape users add` takes
/// effect without a restart.
public final class CredentialStore: Sendable {
    public let path: String
    /// Larger files are refused (a real one holds ~300 bytes per user).
    public static let maxFileBytes = 64 << 20
    public static let fileName = "credentials.json"

    private struct Cache {
        var loaded = false
        var stamp: AtomicFile.Stamp?
        var file = CredentialsFile()
    }
    private let cache = NIOLockedValueBox(Cache())
    /// Users held in memory only (`BrokerSecurity.internalUsers`): never written, and they win
    /// over the file's users of the same name when clients authenticate.
    public let fixedUsers: [String: UserCredentials]

    public init(path: String, fixedUsers: [String: UserCredentials] = [:]) {
        self.path = path
        self.fixedUsers = fixedUsers
    }

    public convenience init(dataDirectory: String) {
        self.init(path: (dataDirectory as NSString).appendingPathComponent(Self.fileName))
    }

    private func stamp() -> AtomicFile.Stamp? { AtomicFile.Stamp(path: path) }

    /// Reads the file now (a missing file holds no users). Throws for unreadable or malformed files.
    public func read() throws -> CredentialsFile {
        guard FileManager.default.fileExists(atPath: path) else { return CredentialsFile() }
        guard let data = AtomicFile.read(path, maxBytes: Self.maxFileBytes) else {
            throw CredentialStoreError(message: "cannot read \(path); check its permissions.")
        }
        guard data.count <= Self.maxFileBytes else {
            throw CredentialStoreError(message: "\(path) is larger than \(Self.maxFileBytes) bytes; it is not a credentials file.")
        }
        do {
            let file = try JSONDecoder().decode(CredentialsFile.self, from: data)
            guard file.version == 1 else { throw CredentialStoreError(message: "\(path) has version \(file.version); this tape reads version 1.") }
            return file
        } catch let e as CredentialStoreError {
            throw e
        } catch {
            throw CredentialStoreError(message: "\(path) is not a valid credentials file (\(error)); fix or remove it.")
        }
    }

    /// The current users, re-read when the file changed since the last call. A file that
    /// became unreadable keeps the last good content.
    public func current() -> CredentialsFile {
        let now = stamp()
        return cache.withLockedValue { c in
            if c.loaded, c.stamp == now { return c.file }
            if let file = try? read() {
                c.file = file
                c.stamp = now
                c.loaded = true
            }
            return c.file
        }
    }

    public func user(_ name: String) -> UserCredentials? { fixedUsers[name] ?? current().users[name] }

    /// Reads, changes and writes the file (atomically, mode 0600); returns what `change` returns.
    @discardableResult
    public func update<R>(_ change: (inout CredentialsFile) throws -> R) throws -> R {
        try cache.withLockedValue { c in
            // One writer at a time across processes (tape users, the broker's AlterUserScramCredentials):
            // an exclusive lock on a file beside it, held from the read to the rename.
            try Self.mapFailure {
                try AtomicFile.withExclusiveLock(path: path) {
                    var file = try read()
                    let result = try change(&file)
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    try AtomicFile.replace(path, with: try encoder.encode(file))
                    c.file = file
                    c.stamp = stamp()
                    c.loaded = true
                    return result
                }
            }
        }
    }

    /// Lock and write failures become `CredentialStoreError`s (what `tape users` prints).
    private static func mapFailure<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as AtomicFile.Failure { throw CredentialStoreError(message: e.message) }
    }
}
