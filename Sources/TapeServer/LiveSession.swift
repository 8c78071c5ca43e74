import HummingbirdWebSocket
import Logging
import NIOWebSocket

/// One `/ws` connection: reads subscribe/unsubscribe/ping requests and writes the client's queue.
enum LiveSession {
    static func run(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, hub: LiveHub, catalog: MarketCatalog, maxMessage: Int, logger: Logger
    ) async throws {
        let client = hub.connect()
        defer { hub.disconnect(client) }
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await bytes in client.messages {
                    try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: bytes)))
                }
            }
            do {
                for try await message in inbound.messages(maxSize: maxMessage) {
                    guard case .text(let text) = message else {
                        client.send(LiveMessage.error("send requests as JSON text messages"))
                        continue
                    }
                    switch LiveRequest.parse(text) {
                    case .success(.subscribe(let topic)):
                        // Subscribing ahead of the data is fine (a market may start trading later),
                        // but a name the server has nothing of is said so: it may be a typo.
                        hub.subscribe(client, to: topic)
                        let warning = await catalog.refusal(topic).map { "no data yet: \($0)" }
                        client.send(LiveMessage.ack("subscribed", topic, warning: warning))
                    case .success(.unsubscribe(let topic)):
                        hub.unsubscribe(client, from: topic)
                        client.send(LiveMessage.ack("unsubscribed", topic))
                    case .success(.ping):
                        client.send(LiveMessage.pong)
                    case .failure(let error):
                        client.send(LiveMessage.error(error.message))
                    }
                }
            } catch {
                logger.debug("WebSocket client closed with an error", metadata: ["error": "\(error)"])
            }
            group.cancelAll()
        }
    }
}
