import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Loopback sockets for the tests: free ports, connecting, waiting for a listener.
package enum Loopback {
    /// 127.0.0.1:`port` as a socket address.
    package static func address(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return addr
    }

    /// A loopback port nothing listens on right now, below Linux's ephemeral range (32768–60999):
    /// the kernel's own pick for port 0 comes from that range, where every outgoing connection
    /// (librdkafka's, the tests' clients) also takes its local port, so a port picked there and
    /// released could be taken by a connection before the child binds it (CI saw `tape up` fail
    /// with "Address already in use"). Another process may still take it first: callers that can
    /// retry should.
    package static func freePort() -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 10_000..<32_768)
            if isBindable(port) { return port }
        }
        return kernelPickedPort()
    }

    private static func isBindable(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = address(port: port)
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0
    }

    private static func kernelPickedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = address(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A connected TCP socket to 127.0.0.1:`port`, or -1. `receiveTimeout` sets SO_RCVTIMEO.
    package static func connect(port: Int, receiveTimeout: Int? = nil) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = address(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            close(fd)
            return -1
        }
        if let receiveTimeout {
            var tv = timeval(tv_sec: receiveTimeout, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        return fd
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` now.
    package static func canConnect(port: Int) -> Bool {
        let fd = connect(port: port)
        if fd < 0 { return false }
        close(fd)
        return true
    }

    /// Polls until something accepts connections on `port` (true), `timeout` passes or `keepWaiting`
    /// says stop, e.g. because the child that should listen died (false).
    package static func waitForListener(port: Int, timeout: TimeInterval, while keepWaiting: () -> Bool = { true }) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if canConnect(port: port) { return true }
            if !keepWaiting() { return false }
            usleep(50_000)
        }
        return false
    }
}
