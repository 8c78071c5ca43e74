import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import TapeCommon

/// A minimal websocket client over SwiftNIO (plain `ws://`): connects, upgrades, then hands the
/// caller whole messages (fragments joined) and a writer. Control frames are handled here: pings
/// are answered with pongs, a close frame ends the inbound sequence. Client frames are masked.
///
/// `wss://` goes through TLS (NIOSSL, the system's trust store plus `TLSOptions.caFile`).
public enum WebSocketClient {
    /// Connects to `endpoint`, runs `body` with the connection, and closes it when `body` returns or throws.
    public static func withConnection<R: Sendable>(
        to endpoint: Endpoint,
        maxMessageSize: Int = 1 << 24,
        connectTimeout: Duration = .seconds(10),
        tls: TLSOptions = TLSOptions(),
        _ body: (inout WebSocketInbound, WebSocketOutbound) async throws -> R
    ) async throws -> R {
        let channel = try await connect(endpoint, maxFrameSize: maxMessageSize, timeout: connectTimeout, tls: tls)
        return try await channel.executeThenClose { inbound, outbound in
            let out = WebSocketOutbound(writer: outbound, channel: channel.channel)
            var messages = WebSocketInbound(frames: inbound, outbound: out, maxMessageSize: maxMessageSize)
            return try await body(&messages, out)
        }
    }

    enum Upgrade: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case refused
    }

    static func connect(_ endpoint: Endpoint, maxFrameSize: Int, timeout: Duration, tls: TLSOptions) async throws
        -> NIOAsyncChannel<WebSocketFrame, WebSocketFrame>
    {
        let ms = Int64(timeout.seconds * 1000)
        let upgrade: EventLoopFuture<Upgrade>
        do {
            upgrade = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(ms))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: endpoint.host, port: endpoint.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if endpoint.isSecure { try tls.addHandler(to: channel, host: endpoint.host) }
                        let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(
                            maxFrameSize: maxFrameSize,
                            upgradePipelineHandler: { channel, _ in
                                channel.eventLoop.makeCompletedFuture {
                                    .websocket(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                                }
                            })
                        var headers = HTTPHeaders()
                        headers.add(name: "Host", value: endpoint.hostHeader)
                        headers.add(name: "Content-Length", value: "0")
                        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: endpoint.path, headers: headers)
                        let configuration = NIOTypedHTTPClientUpgradeConfiguration(
                            upgradeRequestHead: head, upgraders: [upgrader],
                            notUpgradingCompletionHandler: { channel in
                                channel.eventLoop.makeCompletedFuture { .refused }
                            })
                        return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                            configuration: .init(upgradeConfiguration: configuration))
                    }
                }
        } catch {
            throw ExchangeError(.unreachable, "cannot connect to \(endpoint) (\(describeConnectError(error)))")
        }
        let result: Upgrade
        do {
            result = try await withDeadline(timeout, what: "websocket handshake with \(endpoint)") {
                try await upgrade.get()
            }
        } catch let error as ExchangeError {
            throw error
        } catch {
            throw ExchangeError(.unreachable, "cannot connect to \(endpoint) (\(describeConnectError(error)))")
        }
        switch result {
        case .websocket(let channel): return channel
        case .refused:
            throw ExchangeError(.badResponse, "\(endpoint) refused the websocket upgrade (wrong path?)")
        }
    }
}

/// One websocket message: text or binary payload bytes, or (when asked for) a control frame.
public struct WebSocketMessage: Sendable {
    public var isText: Bool
    public var bytes: [UInt8]
    /// True for a ping or pong frame (already answered), returned only when
    /// `WebSocketInbound.returnsControlFrames` is set; `bytes` is then empty.
    public var isControl = false
}

/// Whole inbound messages. Ends when the server closes (close frame or EOF).
public struct WebSocketInbound {
    var iterator: NIOAsyncChannelInboundStream<WebSocketFrame>.AsyncIterator
    let outbound: WebSocketOutbound
    let maxMessageSize: Int
    /// Why the server ended the connection, if it sent a close frame.
    public private(set) var closeReason: String?
    /// Also return ping and pong frames (answered here) as `isControl` messages, so a caller that
    /// keeps liveness at the protocol level sees them as traffic. Default false.
    public var returnsControlFrames = false

    init(frames: NIOAsyncChannelInboundStream<WebSocketFrame>, outbound: WebSocketOutbound, maxMessageSize: Int) {
        self.iterator = frames.makeAsyncIterator()
        self.outbound = outbound
        self.maxMessageSize = maxMessageSize
    }

    /// The next whole message, or nil when the connection ended.
    public mutating func next() async throws -> WebSocketMessage? {
        var partial: [UInt8] = []
        var partialIsText = true
        var inMessage = false
        while let frame = try await iterator.next() {
            switch frame.opcode {
            case .text, .binary:
                let data = frame.unmaskedData
                partial = Array(data.readableBytesView)
                partialIsText = frame.opcode == .text
                inMessage = true
            case .continuation:
                guard inMessage else { continue }
                partial.append(contentsOf: frame.unmaskedData.readableBytesView)
            case .ping:
                try await outbound.send(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
                if returnsControlFrames { return WebSocketMessage(isText: false, bytes: [], isControl: true) }
                continue
            case .pong:
                if returnsControlFrames { return WebSocketMessage(isText: false, bytes: [], isControl: true) }
                continue
            case .connectionClose:
                var data = frame.unmaskedData
                let code = data.readInteger(as: UInt16.self).map(String.init) ?? "no code"
                let text = data.readString(length: data.readableBytes) ?? ""
                closeReason = "server sent close (\(code)\(text.isEmpty ? "" : ": " + text))"
                return nil
            default:
                continue
            }
            if partial.count > maxMessageSize {
                throw ExchangeError(.badResponse, "websocket message larger than \(maxMessageSize) bytes")
            }
            if frame.fin && inMessage {
                return WebSocketMessage(isText: partialIsText, bytes: partial)
            }
        }
        return nil
    }
}

/// Sends messages on a websocket connection.
public struct WebSocketOutbound: Sendable {
    let writer: NIOAsyncChannelOutboundWriter<WebSocketFrame>
    let channel: any Channel

    /// Sends a text message.
    public func send(text: String) async throws {
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        try await send(WebSocketFrame(fin: true, opcode: .text, data: buffer))
    }

    /// Sends a protocol-level ping frame (the peer answers with a pong).
    public func sendPing() async throws {
        var buffer = channel.allocator.buffer(capacity: 4)
        buffer.writeString("tape")
        try await send(WebSocketFrame(fin: true, opcode: .ping, data: buffer))
    }

    func send(_ frame: WebSocketFrame) async throws {
        var masked = frame
        masked.maskKey = .random()
        try await writer.write(masked)
    }

    /// Closes the connection at once (the inbound sequence then ends).
    public func close() {
        channel.close(promise: nil)
    }
}

/// A short reason for a failed connect ("connection refused") instead of NIO's nested dump.
func describeConnectError(_ error: any Error) -> String {
    if let error = error as? ExchangeError { return error.message }
    let text = String(describing: error)
    if text.contains("CERTIFICATE_VERIFY_FAILED") { return "TLS certificate not trusted; for a private CA pass --ca-file" }
    if text.contains("handshakeFailed") { return "TLS handshake failed: \(text)" }
    if text.contains("UnknownHost") || text.contains("Name or service not known") { return "unknown host" }
    if text.contains("Connection refused") { return "connection refused" }
    if text.contains("connectTimeout") || text.contains("timed out") { return "timed out" }
    if text.contains("No such host") || text.contains("unknown host") || text.contains("resolve") { return "unknown host" }
    if text.contains("Network is unreachable") { return "network unreachable" }
    return text
}

/// Runs `operation`, failing with a timeout error if it takes longer than `limit`.
func withDeadline<R: Sendable>(
    _ limit: Duration, what: String, _ operation: @escaping @Sendable () async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw ExchangeError(.timeout, "\(what) took longer than \(limit.seconds.formatted1) s")
        }
        return value
    }
}
