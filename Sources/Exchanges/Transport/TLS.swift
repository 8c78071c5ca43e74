import NIOCore
import NIOSSL
import Synchronization

/// TLS settings of the exchange transports (`wss://`, `https://`).
public struct TLSOptions: Sendable, Hashable {
    /// A PEM file of extra trusted certificates, added to the system's (a test CA, a corporate proxy).
    /// Default nil: the system's trust store only.
    public var caFile: String?

    public init(caFile: String? = nil) { self.caFile = caFile }

    /// Contexts are costly (they load the trust store): one per option set, shared.
    private static let contexts = Mutex<[TLSOptions: NIOSSLContext]>([:])

    func context() throws -> NIOSSLContext {
        try TLSOptions.contexts.withLock { cache in
            if let context = cache[self] { return context }
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile { configuration.additionalTrustRoots = [.file(caFile)] }
            let context = try NIOSSLContext(configuration: configuration)
            cache[self] = context
            return context
        }
    }

    /// Adds the TLS client handler (SNI unless the host is an IP address) to a new channel.
    func addHandler(to channel: any Channel, host: String) throws {
        let handler = try NIOSSLClientHandler(context: context(), serverHostname: isIPAddress(host) ? nil : host)
        try channel.pipeline.syncOperations.addHandler(handler)
    }
}

func isIPAddress(_ host: String) -> Bool {
    host.contains(":") || (!host.isEmpty && host.allSatisfy { $0 == "." || $0.isNumber })
}
