import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Why the broker could not start, in words a user can act on.
public struct BrokerStartError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The TCP side of the broker: accepts connections, splits frames, decodes requests and
/// writes responses in request order. A bad frame or request closes that connection only.
public final class BrokerServer: Sendable {
    public let broker: Broker
    /// Bytes read from and written to client sockets, for metrics.
    public let traffic = BrokerTraffic()
    /// Connections open, refused and closed by the limits (docs/limits.md).
    public let limits = ConnectionLimitCounters()
    /// The connections being served, for eviction of the idlest at `maxConnections`.
    public let connections = ConnectionTable()
    /// Request frames being read, across connections (`maxRequestMemoryBytes`).
    public let requestMemory: RequestMemoryPool
    /// Connections served at once: `maxConnections`, lowered to what the descriptor limit allows.
    public let maxConnections: Int
    /// Each SASL connection's pre-authentication frame cap, from accept until it is served.
    let frameLimits = FrameLimitTable()
    let configuration: BrokerConfiguration
    let logger: Logger
    let group: any EventLoopGroup

    public init(broker: Broker, logger: Logger = Logger(label: "tape.broker.server"), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.broker = broker
        self.configuration = broker.configuration
        self.logger = logger
        self.group = group
        self.requestMemory = RequestMemoryPool(capacity: max(broker.configuration.maxRequestMemoryBytes, broker.configuration.maxFrameBytes))
        self.maxConnections = DescriptorLimit.connectionBudget(configured: broker.configuration.maxConnections)
    }

    /// Binds the listening socket; returns the bound channel wrapper. Throws `BrokerStartError`.
    public func bind() async throws -> BoundBrokerServer {
        let maxFrame = configuration.maxFrameBytes
        let pool = requestMemory
        let table = connections
        let pending = broker.pendingResponseBytes
        let counters = limits
        let idleMs = configuration.connectionsMaxIdleMs
        let readTimeoutMs = configuration.requestReadTimeoutMs
        let logger = self.logger
        // TLS: the context is built before binding, so a bad certificate or key stops the start.
        let tls = try configuration.security.tls.map { try $0.makeContext() }
        let saslEnabled = !configuration.security.saslMechanisms.isEmpty
        let frameLimits = self.frameLimits
        if let credentials = broker.credentials, !configuration.security.saslMechanisms.isEmpty {
            do { _ = try credentials.read() } catch { throw BrokerStartError(message: "\(error)") }
        }
        let channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                // Produce requests are ~1 MB: let reads grow to 1 MiB (adaptively, so idle
                // connections keep small buffers) instead of NIO's 64 KiB cap.
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 1 << 20))
                .bind(host: configuration.host, port: configuration.port) { child in
                    child.eventLoop.makeCompletedFuture {
                        let peer = child.remoteAddress?.description ?? "?"
                        if let tls { try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                        try child.pipeline.syncOperations.addHandler(
                            ConnectionGuard(
                                pool: pool, table: table, pending: pending, maxFrameBytes: maxFrame, idleMs: idleMs, readTimeoutMs: readTimeoutMs,
                                counters: counters,
                                onClose: { reason in logger.info("closing connection: \(reason)", metadata: ["peer": "\(peer)"]) }))
                        // SASL: frames over 512 KiB are refused until the connection authenticated.
                        let limit = saslEnabled ? UnauthenticatedFrameLimit(bytes: SaslSession.maxUnauthenticatedFrameBytes) : nil
                        if let limit {
                            frameLimits.register(limit, for: child)
                            child.closeFuture.whenComplete { _ in _ = frameLimits.take(for: child) }
                        }
                        try child.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: maxFrame, unauthenticatedLimit: limit)))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: child)
                    }
                }
        } catch let e as IOError where e.errnoCode == EADDRINUSE {
            throw BrokerStartError(
                message:
                    "\(configuration.host):\(configuration.port) is already in use; stop the process listening there or choose another address with --listen HOST:PORT."
            )
        } catch let e as IOError where e.errnoCode == EADDRNOTAVAIL {
            throw BrokerStartError(
                message: "\(configuration.host) is not an address of this machine; choose one with --listen HOST:PORT (e.g. 127.0.0.1:9092).")
        } catch let e as IOError where e.errnoCode == EACCES {
            throw BrokerStartError(
                message: "not allowed to listen on \(configuration.host):\(configuration.port); choose a port above 1023 with --listen HOST:PORT.")
        } catch {
            throw BrokerStartError(
                message: "could not listen on \(configuration.host):\(configuration.port): \(error); choose another address with --listen HOST:PORT.")
        }
        let port = channel.channel.localAddress?.port ?? configuration.port
        await broker.setAdvertisedPort(port)
        return BoundBrokerServer(server: self, channel: channel, port: port)
    }

    private static let nextConnectionID = Atomic<UInt64>(1)

    func serve(connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let peer = connection.channel.remoteAddress?.description ?? "?"
        let host = "/" + (connection.channel.remoteAddress?.ipAddress ?? "unknown")
        var log = logger
        log[metadataKey: "peer"] = "\(peer)"
        let id = Self.nextConnectionID.add(1, ordering: .relaxed).newValue
        let gate = ReplyGate(maxCount: configuration.maxQueuedResponsesPerConnection, maxBytes: configuration.maxQueuedResponseBytesPerConnection)
        let broker = self.broker
        // A closed connection's parked requests (a long-polling fetch) are released at once, and
        // a reader waiting for its replies to drain stops waiting.
        connection.channel.closeFuture.whenComplete { _ in
            gate.close()
            Task { await broker.connectionClosed(id) }
        }
        do {
            try await withTaskCancellationHandler {
                try await serveRequests(connection, id: id, gate: gate, host: host, log: log)
            } onCancel: {
                connection.channel.close(promise: nil)
            }
        } catch let e as FrameSizeError {
            log.warning("closing connection: \(e)")
        } catch {
            log.debug("connection ended: \(error)")
        }
    }

    private func serveRequests(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, id: UInt64, gate: ReplyGate, host: String, log: Logger) async throws {
        try await connection.executeThenClose { inbound, outbound in
            // Requests are handled one at a time in arrival order; replies are written in the
            // same order by a writer task, which may still be waiting for a produce's fsync
            // while the next request is handled.
            // A ready answer is written by this task directly when the writer has nothing queued
            // (one task hop less per request); `gate` counts replies handed to the writer and
            // not yet written, so a direct write never overtakes an earlier reply, and bounds
            // them: while too many wait, the next request is not read (the socket pushes back).
            let traffic = self.traffic
            /// Writes one frame, given in consecutive buffers.
            @Sendable func write(_ frame: [ByteBuffer]) async throws {
                traffic.bytesOut.add(frame.reduce(0) { $0 + $1.readableBytes }, ordering: .relaxed)
                try await outbound.write(contentsOf: frame)
            }
            let (replies, queue) = AsyncStream<(Broker.Reply, Int)>.makeStream()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { gate.close() }
                    for await (reply, bytes) in replies {
                        switch reply {
                        case .none: break
                        case .now(let frame): try await write(frame)
                        case .later(let produce): try await write([await produce()])
                        case .closeConnection: break
                        }
                        gate.remove(bytes: bytes)
                    }
                }
                defer { queue.finish() }
                /// A reply frame of this connection's own (SASL), in order with the others.
                func send(_ frame: ByteBuffer) async throws {
                    if gate.isEmpty {
                        try await write([frame])
                        return
                    }
                    gate.add(bytes: frame.readableBytes)
                    queue.yield((.now([frame]), frame.readableBytes))
                }
                // SASL: until authenticated, only ApiVersions and the SASL requests are answered.
                let security = configuration.security
                var sasl = security.saslMechanisms.isEmpty ? nil : broker.credentials.map { SaslSession(mechanisms: security.saslMechanisms, credentials: $0) }
                if !security.saslMechanisms.isEmpty, sasl == nil {
                    log.error("closing connection: SASL is enabled but the broker has no credentials file")
                    return
                }
                let frameLimit = frameLimits.take(for: connection.channel)
                var certificateChecked = security.tls?.clientCAPath == nil
                requests: for try await var frame in inbound {
                    traffic.bytesIn.add(frame.readableBytes + 4, ordering: .relaxed)  // + the size prefix the decoder removed
                    if !certificateChecked {
                        // mTLS: the handshake verified the certificate; its subject is the principal.
                        certificateChecked = true
                        if let certificate = try? await connection.channel.nioSSL_peerCertificate().get(), let der = try? certificate.toDERBytes(),
                            let subject = CertificateSubject.distinguishedName(der: der)
                        {
                            await broker.setPrincipal("User:\(subject)", connection: id)
                            log.info("client certificate accepted", metadata: ["principal": "User:\(subject)"])
                        }
                    }
                    if var session = sasl, !session.isAuthenticated {
                        if frame.readableBytes > SaslSession.maxUnauthenticatedFrameBytes {
                            log.warning("closing connection: a \(frame.readableBytes)-byte frame before authentication")
                            break requests
                        }
                        if session.expectsRawToken {
                            // SaslHandshake v0: a bare token in, a bare token out.
                            let token = frame.readBytes(length: frame.readableBytes) ?? []
                            let step = session.step(token)
                            sasl = session
                            // Lifted before the answer goes out: the client's next frame may be large.
                            if session.isAuthenticated { frameLimit?.lift() }
                            switch step {
                            case .challenge(let bytes), .success(_, let bytes):
                                var out = ByteBuffer()
                                out.writeInteger(Int32(bytes.count), endianness: .big)
                                out.writeBytes(bytes)
                                try await send(out)
                            case .failure(let reason):
                                log.warning(
                                    "closing connection: SASL authentication failed: \(reason)",
                                    metadata: ["mechanism": "\(session.mechanism?.rawValue ?? "?")"])
                                break requests
                            }
                            if let principal = session.principal {
                                await broker.setPrincipal(principal, connection: id)
                                log.info("authenticated", metadata: ["principal": "\(principal)", "mechanism": "\(session.mechanism?.rawValue ?? "?")"])
                            }
                            continue requests
                        }
                    }
                    let keyAndVersion = KafkaRequest.peekKeyAndVersion(frame)
                    let request: KafkaRequest
                    do {
                        request = try KafkaRequest.decode(frame: &frame)
                    } catch {
                        let what = keyAndVersion.map { "api key \($0.0) v\($0.1)" } ?? "a frame"
                        log.warning("closing connection: could not decode \(what): \(error)")
                        break
                    }
                    if var session = sasl {
                        let h = request.header
                        switch request.body {
                        case .saslHandshake(let r):
                            let (response, close) = session.handshake(r, version: h.apiVersion)
                            sasl = session
                            try await send(KafkaResponse.encodeFrame(response, apiKey: .saslHandshake, version: h.apiVersion, correlationId: h.correlationId))
                            if close {
                                log.warning("closing connection: SASL handshake for \(r.mechanism) refused (error \(response.errorCode))")
                                break requests
                            }
                            continue requests
                        case .saslAuthenticate(let r):
                            let (response, close) = session.authenticate(r)
                            sasl = session
                            if session.isAuthenticated { frameLimit?.lift() }
                            try await send(
                                KafkaResponse.encodeFrame(response, apiKey: .saslAuthenticate, version: h.apiVersion, correlationId: h.correlationId))
                            if close {
                                log.warning(
                                    "closing connection: SASL authentication failed: \(response.errorMessage ?? "")",
                                    metadata: ["mechanism": "\(session.mechanism?.rawValue ?? "?")"])
                                break requests
                            }
                            if let principal = session.principal {
                                await broker.setPrincipal(principal, connection: id)
                                log.info("authenticated", metadata: ["principal": "\(principal)", "mechanism": "\(session.mechanism?.rawValue ?? "?")"])
                            }
                            continue requests
                        case .apiVersions, .unsupportedApiVersions: break
                        default:
                            if !session.isAuthenticated {
                                log.warning("closing connection: \(request.body.apiKey) before SASL authentication")
                                break requests
                            }
                        }
                    }
                    let reply = await broker.receive(request, clientHost: host, connection: id)
                    if case .closeConnection(let reason) = reply {
                        log.info("closing connection: \(reason)")
                        break
                    }
                    var bytes = 0
                    if case .now(let frame) = reply {
                        if gate.isEmpty {
                            try await write(frame)
                            continue
                        }
                        bytes = frame.reduce(0) { $0 + $1.readableBytes }
                    }
                    gate.add(bytes: bytes)
                    queue.yield((reply, bytes))
                    if !gate.hasRoom, !(await gate.waitForRoom()) { break }  // the connection closed
                }
                queue.finish()
                try await group.waitForAll()
            }
        }
    }
}

/// Replies of one connection handed to its writer and not yet written: the reader waits while
/// `maxCount` or `maxBytes` are reached, so a client that pipelines requests without reading
/// its responses holds a bounded amount of the broker's memory.
final class ReplyGate: Sendable {
    private struct State {
        var count = 0
        var bytes = 0
        var closed = false
        var waiter: CheckedContinuation<Bool, Never>?
    }
    private let state = NIOLockedValueBox(State())
    let maxCount: Int
    let maxBytes: Int

    init(maxCount: Int, maxBytes: Int) {
        self.maxCount = max(maxCount, 1)
        self.maxBytes = max(maxBytes, 1)
    }

    var isEmpty: Bool { state.withLockedValue { $0.count == 0 } }

    /// Room for another reply now (no suspension needed).
    var hasRoom: Bool { state.withLockedValue { $0.count < maxCount && $0.bytes < maxBytes } }

    func add(bytes: Int) {
        state.withLockedValue {
            $0.count += 1
            $0.bytes += bytes
        }
    }

    func remove(bytes: Int) {
        let waiter: CheckedContinuation<Bool, Never>? = state.withLockedValue { s in
            s.count -= 1
            s.bytes -= bytes
            guard s.count < maxCount && s.bytes < maxBytes, let w = s.waiter else { return nil }
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: true)
    }

    /// The writer stopped (connection closed or failed): the reader must not wait any more.
    func close() {
        let waiter: CheckedContinuation<Bool, Never>? = state.withLockedValue { s in
            s.closed = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: false)
    }

    /// Returns true once there is room for another reply, false if the gate closed.
    func waitForRoom() async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let ready: Bool? = state.withLockedValue { s in
                if s.closed { return false }
                if s.count < maxCount && s.bytes < maxBytes { return true }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}

/// Bytes the broker read from and wrote to its client sockets (Kafka frames, size prefix included).
public final class BrokerTraffic: Sendable {
    public let bytesIn = Atomic<Int>(0)
    public let bytesOut = Atomic<Int>(0)
    public init() {}
}

/// A listening broker: `run()` serves until cancelled.
public struct BoundBrokerServer: Sendable {
    let server: BrokerServer
    /// The broker behind the socket, for reading it in-process (`Broker.localRead`).
    public var broker: Broker { server.broker }
    /// Bytes read from and written to client sockets.
    public var traffic: BrokerTraffic { server.traffic }
    /// Connections open, refused and closed by the limits.
    public var limits: ConnectionLimitCounters { server.limits }
    let channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    /// The port actually bound (useful with port 0).
    public let port: Int

    /// Accepts and serves connections, and ticks group timeouts, until the task is cancelled.
    public func run() async throws {
        let broker = server.broker
        let tick = server.configuration.groupTickIntervalMs
        let c = server.configuration
        let advertised = "\(await broker.advertisedHost):\(await broker.advertisedPort)"
        server.logger.info(
            "tape broker listening",
            metadata: [
                "address": "\(c.host):\(port)", "advertised": "\(advertised)",
                "autoCreateTopics": "\(c.autoCreateTopics)", "numPartitions": "\(c.numPartitions)", "maxMessageBytes": "\(c.maxMessageBytes)",
                "maxConnections": "\(server.maxConnections)", "openFilesLimit": "\(DescriptorLimit.current)",
            ])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(tick))
                    await broker.tick()
                }
            }
            // The accept loop runs in a task of its own that cancellation does not reach: a
            // cancelled iteration would drop connections NIO had already accepted and buffered,
            // and NIO traps on a dropped, unfinished connection ("Deinited NIOAsyncWriter without
            // calling finish()"; seen when clients reconnected during `tape up`'s shutdown).
            // Cancelling closes the listening socket instead; the loop then ends by itself
            // after handing over every connection accepted until then.
            let accepting = Task {
                try await withThrowingDiscardingTaskGroup { connections in
                    var failure: (any Error)?
                    do {
                        try await channel.executeThenClose { inbound in
                            var lastRefusalLog = ContinuousClock.now - .seconds(60)
                            for try await connection in inbound {
                                let counters = server.limits
                                // At the limit, a connection idle for a while makes room (idle hoarders cannot
                                // lock clients out); if none has been idle for a second, the new one is refused.
                                var admit = counters.open.load(ordering: .relaxed) < server.maxConnections
                                if !admit, server.connections.evictIdlest(now: Int64(NIODeadline.now().uptimeNanoseconds), minimumIdleNanos: 1_000_000_000) {
                                    counters.evicted.add(1, ordering: .relaxed)
                                    admit = true
                                }
                                guard admit else {
                                    let refused = counters.rejected.add(1, ordering: .relaxed).newValue
                                    if ContinuousClock.now - lastRefusalLog > .seconds(10) {
                                        lastRefusalLog = .now
                                        server.logger.warning(
                                            "refusing connections: \(server.maxConnections) are open (--max-connections)",
                                            metadata: ["peer": "\(connection.channel.remoteAddress?.description ?? "?")", "refusedSoFar": "\(refused)"])
                                    }
                                    connections.addTask { try? await connection.executeThenClose { _, _ in } }
                                    continue
                                }
                                counters.open.add(1, ordering: .relaxed)
                                connections.addTask {
                                    await server.serve(connection: connection)
                                    counters.open.subtract(1, ordering: .relaxed)
                                }
                            }
                        }
                    } catch {
                        failure = error
                    }
                    // Stop accepting, answer parked requests, then close every connection (each
                    // connection task closes its channel when cancelled).
                    await broker.shutDown()
                    connections.cancelAll()
                    if let failure { throw failure }
                }
            }
            var acceptError: (any Error)? = nil
            do {
                try await withTaskCancellationHandler {
                    try await accepting.value
                } onCancel: {
                    channel.channel.close(promise: nil)
                }
            } catch is CancellationError {
            } catch {
                acceptError = error
            }
            group.cancelAll()
            if let acceptError { throw acceptError }
        }
    }
}

/// Pre-authentication frame caps of accepted connections, handed from the channel initializer
/// to the connection's task.
final class FrameLimitTable: Sendable {
    private let limits = NIOLockedValueBox([ObjectIdentifier: UnauthenticatedFrameLimit]())
    func register(_ limit: UnauthenticatedFrameLimit, for channel: any Channel) {
        limits.withLockedValue { $0[ObjectIdentifier(channel)] = limit }
    }
    func take(for channel: any Channel) -> UnauthenticatedFrameLimit? {
        limits.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}
