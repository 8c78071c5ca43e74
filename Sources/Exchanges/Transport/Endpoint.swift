/// A parsed `ws://`, `wss://`, `http://` or `https://` URL: what the transports need to connect.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    /// Path and query, starting with "/".
    public var path: String

    /// True for `wss` and `https`.
    public var isSecure: Bool { scheme == "wss" || scheme == "https" }

    public init(_ url: String) throws(ExchangeError) {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw ExchangeError(.badURL, "'\(url)' is not a URL (expected e.g. ws://127.0.0.1:8765/ws/public)")
        }
        let scheme = parts[0].lowercased()
        guard ["ws", "wss", "http", "https"].contains(scheme) else {
            throw ExchangeError(.badURL, "'\(url)': scheme \(scheme) is not ws, wss, http or https")
        }
        let rest = parts[1]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var path = String(rest.dropFirst(authority.count))
        if path.isEmpty { path = "/" } else if path.first == "?" { path = "/" + path }
        var host = String(authority)
        var port = (scheme == "wss" || scheme == "https") ? 443 : 80
        if host.hasPrefix("[") {
            // [::1]:port
            guard let close = host.firstIndex(of: "]") else {
                throw ExchangeError(.badURL, "'\(url)': unterminated IPv6 address")
            }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw ExchangeError(.badURL, "'\(url)': bad port") }
                port = p
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else {
                throw ExchangeError(.badURL, "'\(url)': bad port")
            }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw ExchangeError(.badURL, "'\(url)': no host") }
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
    }

    /// This endpoint with `path` appended to its own path (a REST base URL plus a request path).
    public func appending(path extra: String) -> Endpoint {
        var copy = self
        copy.path = (path == "/" ? "" : (path.hasSuffix("/") ? String(path.dropLast()) : path)) + extra
        return copy
    }

    /// The `Host` header value: the port only when it is not the scheme's default.
    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (isSecure ? 443 : 80) ? h : "\(h):\(port)"
    }

    public var description: String {
        let defaultPort = isSecure ? 443 : 80
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(h)\(port == defaultPort ? "" : ":\(port)")\(path)"
    }
}
