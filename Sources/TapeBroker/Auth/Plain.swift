import Foundation

/// A PLAIN (RFC 4616) message: `[authzid] NUL authcid NUL passwd`.
public struct PlainMessage: Sendable, Equatable {
    public var authorizationId: String
    public var user: String
    public var password: String

    /// Each field is at most 255 bytes (RFC 4616 §2).
    public static let maxFieldBytes = 255

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case tooLarge, wrongFieldCount, notUTF8, emptyUser, emptyPassword, fieldTooLong
        public var description: String {
            switch self {
            case .tooLarge: "Invalid PLAIN message: longer than \(3 * PlainMessage.maxFieldBytes + 2) bytes"
            case .wrongFieldCount: "Invalid PLAIN message: expected [authzid] NUL user NUL password"
            case .notUTF8: "Invalid PLAIN message: not UTF-8"
            case .emptyUser: "Invalid PLAIN message: empty user name"
            case .emptyPassword: "Invalid PLAIN message: empty password"
            case .fieldTooLong: "Invalid PLAIN message: a field is longer than \(PlainMessage.maxFieldBytes) bytes"
            }
        }
    }

    public static func parse(_ bytes: [UInt8]) throws(ParseError) -> PlainMessage {
        guard bytes.count <= 3 * maxFieldBytes + 2 else { throw .tooLarge }
        let fields = bytes.split(separator: 0, omittingEmptySubsequences: false)
        guard fields.count == 3 else { throw .wrongFieldCount }
        guard fields.allSatisfy({ $0.count <= maxFieldBytes }) else { throw .fieldTooLong }
        guard let authzid = String(validating: fields[0], as: UTF8.self), let user = String(validating: fields[1], as: UTF8.self),
            let password = String(validating: fields[2], as: UTF8.self)
        else { throw .notUTF8 }
        guard !user.isEmpty else { throw .emptyUser }
        guard !password.isEmpty else { throw .emptyPassword }
        return PlainMessage(authorizationId: authzid, user: user, password: password)
    }
}

/// What the server keeps of a PLAIN password: PBKDF2-HMAC-SHA-256 of it with a random salt.
public struct PlainCredential: Sendable, Codable, Equatable {
    public var salt: Data
    public var iterations: Int
    public var hash: Data

    public init(salt: Data, iterations: Int, hash: Data) {
        self.salt = salt
        self.iterations = iterations
        self.hash = hash
    }

    public init(password: String, salt: [UInt8] = secureRandomBytes(32), iterations: Int = 4096) {
        self.init(
            salt: Data(salt), iterations: iterations,
            hash: Data(ScramHash.sha256.pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations, length: 32)))
    }

    /// Constant-time check of `password` (false for a credential with out-of-range iterations).
    public func matches(_ password: String) -> Bool {
        guard ScramServerExchange.iterationRange.contains(iterations), hash.count == 32 else { return false }
        let candidate = ScramHash.sha256.pbkdf2(password: Array(password.utf8), salt: Array(salt), iterations: iterations, length: 32)
        return constantTimeEquals(candidate, Array(hash))
    }
}

/// The server side of a PLAIN exchange: one message, then success or failure.
public struct PlainServerExchange: Sendable {
    let lookup: @Sendable (String) -> PlainCredential?
    private var done = false
    public init(lookup: @escaping @Sendable (String) -> PlainCredential?) { self.lookup = lookup }

    /// Checked against when the user does not exist.
    static let unknownUser = PlainCredential(password: "unknown user", salt: Array(repeating: 0, count: 32))

    public mutating func step(_ message: [UInt8]) -> SaslStep {
        guard !done else { return .failure("Invalid PLAIN state: the exchange is already finished") }
        done = true
        let m: PlainMessage
        do { m = try PlainMessage.parse(message) } catch { return .failure(error.description) }
        guard m.authorizationId.isEmpty || m.authorizationId == m.user else {
            return .failure("Authentication failed: the authorization id must be empty or equal the user name")
        }
        // An unknown user costs the same hashing as a known one: timing does not tell which names exist.
        guard let credential = lookup(m.user) else {
            _ = Self.unknownUser.matches(m.password)
            return .failure("Authentication failed: Invalid username or password")
        }
        guard credential.matches(m.password) else { return .failure("Authentication failed: Invalid username or password") }
        return .success(user: m.user, finalBytes: [])
    }
}
