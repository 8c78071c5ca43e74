import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import NIOPosix

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
    let configuration: BrokerConfiguration
    let logger: Logger
    let group: any EventLoopGroup

    public init(broker: Broker, logger: Logger = Logger(label: "tape.broker.server"), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.broker = broker
        self.configuration = broker.configuration
        self.logger = logger
        self.group = group
    }

    /// Binds the listening socket; returns the bound channel wrapper. Throws `BrokerStartError`.
    public func bind() async throws -> BoundBrokerServer {
        let maxFrame = configuration.maxFrameBytes
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
                        try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: maxFrame)))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: child)
                    }
                }
        } catch let e as IOError where e.errnoCode == EADDRINUSE {
            throw BrokerStartError(
                message: "\(configuration.host):\(configuration.port) is already in use; stop the process listening there or choose another address with --listen HOST:PORT.")
        } catch let e as IOError where e.errnoCode == EADDRNOTAVAIL {
            throw BrokerStartError(message: "\(configuration.host) is not an address of this machine; choose one with --listen HOST:PORT (e.g. 127.0.0.1:9092).")
        } catch let e as IOError where e.errnoCode == EACCES {
            throw BrokerStartError(message: "not allowed to listen on \(configuration.host):\(configuration.port); choose a port above 1023 with --listen HOST:PORT.")
        } catch {
            throw BrokerStartError(message: "could not listen on \(configuration.host):\(configuration.port): \(error); choose another address with --listen HOST:PORT.")
        }
        let port = channel.channel.localAddress?.port ?? configuration.port
        await broker.setAdvertisedPort(port)
        return BoundBrokerServer(server: self, channel: channel, port: port)
    }

    func serve(connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let peer = connection.channel.remoteAddress?.description ?? "?"
        let host = "/" + (connection.channel.remoteAddress?.ipAddress ?? "unknown")
        var log = logger
        log[metadataKey: "peer"] = "\(peer)"
        do {
            try await withTaskCancellationHandler {
                try await serveRequests(connection, host: host, log: log)
            } onCancel: {
                connection.channel.close(promise: nil)
            }
        } catch let e as FrameSizeError {
            log.warning("closing connection: \(e)")
        } catch {
            log.debug("connection ended: \(error)")
        }
    }

    private func serveRequests(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, host: String, log: Logger) async throws {
        try await connection.executeThenClose { inbound, outbound in
            // Requests are handled one at a time in arrival order; replies are written in the
            // same order by a writer task, which may still be waiting for a produce's fsync
            // while the next request is handled.
            // A ready answer is written by this task directly when the writer has nothing queued
            // (one task hop less per request); `queued` counts replies handed to the writer and
            // not yet written, so a direct write never overtakes an earlier reply.
            let traffic = self.traffic
            @Sendable func write(_ frame: ByteBuffer) async throws {
                traffic.bytesOut.add(frame.readableBytes, ordering: .relaxed)
                try await outbound.write(frame)
            }
            let (replies, queue) = AsyncStream<Broker.Reply>.makeStream()
            let queued = NIOLockedValueBox(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await reply in replies {
                        switch reply {
                        case .none: break
                        case .now(let frame): try await write(frame)
                        case .later(let produce): try await write(await produce())
                        case .closeConnection: break
                        }
                        queued.withLockedValue { $0 -= 1 }
                    }
                }
                defer { queue.finish() }
                for try await var frame in inbound {
                    traffic.bytesIn.add(frame.readableBytes + 4, ordering: .relaxed)  // + the size prefix the decoder removed
                    let keyAndVersion = KafkaRequest.peekKeyAndVersion(frame)
                    let request: KafkaRequest
                    do {
                        request = try KafkaRequest.decode(frame: &frame)
                    } catch {
                        let what = keyAndVersion.map { "api key \($0.0) v\($0.1)" } ?? "a frame"
                        log.warning("closing connection: could not decode \(what): \(error)")
                        break
                    }
                    let reply = await broker.receive(request, clientHost: host)
                    if case .closeConnection(let reason) = reply {
                        log.info("closing connection: \(reason)")
                        break
                    }
                    if case .now(let frame) = reply, queued.withLockedValue({ $0 == 0 }) {
                        try await write(frame)
                        continue
                    }
                    queued.withLockedValue { $0 += 1 }
                    queue.yield(reply)
                }
                queue.finish()
                try await group.waitForAll()
            }
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
    /// Bytes read from and written to client sockets.
    public var traffic: BrokerTraffic { server.traffic }
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
                            for try await connection in inbound {
                                connections.addTask { await server.serve(connection: connection) }
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
