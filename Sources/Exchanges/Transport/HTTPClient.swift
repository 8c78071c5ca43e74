import NIOCore
import NIOHTTP1
import NIOPosix
import TapeCommon

/// A minimal HTTP/1.1 GET client over SwiftNIO for REST backfill and market lists: one connection
/// per request, `Connection: close`, body collected up to a cap. `https://` goes through TLS.
public enum HTTPClient {
    /// A response: status and body.
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    /// GETs `endpoint`; throws `ExchangeError` for connection failures, timeouts and oversized bodies.
    public static func get(
        _ endpoint: Endpoint, timeout: Duration = .seconds(10), maxBodySize: Int = 1 << 26, tls: TLSOptions = TLSOptions()
    ) async throws -> Response {
        do {
            return try await withDeadline(timeout, what: "GET \(endpoint)") {
                try await fetch(endpoint, maxBodySize: maxBodySize, connectTimeout: timeout, tls: tls)
            }
        } catch let error as ExchangeError {
            throw error
        } catch {
            throw ExchangeError(.unreachable, "GET \(endpoint) failed (\(describeConnectError(error)))")
        }
    }

    static func fetch(_ endpoint: Endpoint, maxBodySize: Int, connectTimeout: Duration, tls: TLSOptions) async throws -> Response {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(Int64(connectTimeout.seconds * 1000)))
                .connect(host: endpoint.host, port: endpoint.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if endpoint.isSecure { try tls.addHandler(to: channel, host: endpoint.host) }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw ExchangeError(.unreachable, "cannot connect to \(endpoint) (\(describeConnectError(error)))")
        }
        return try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: endpoint.hostHeader)
            headers.add(name: "Accept", value: "application/json")
            headers.add(name: "User-Agent", value: "tape")
            headers.add(name: "Connection", value: "close")
            // Head and end in one write: a GET has no body, so a server may answer (and close) as
            // soon as it has the head — a separate write of the end could then hit a closed channel.
            try await outbound.write(contentsOf: [
                .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: endpoint.path, headers: headers)), .end(nil),
            ])
            var status = 0
            var body: [UInt8] = []
            for try await part in inbound {
                switch part {
                case .head(let head):
                    status = Int(head.status.code)
                case .body(let buffer):
                    body.append(contentsOf: buffer.readableBytesView)
                    if body.count > maxBodySize {
                        throw ExchangeError(.badResponse, "GET \(endpoint): body larger than \(maxBodySize) bytes")
                    }
                case .end:
                    return Response(status: status, body: body)
                }
            }
            throw ExchangeError(.badResponse, "GET \(endpoint): connection closed before the response ended")
        }
    }
}
