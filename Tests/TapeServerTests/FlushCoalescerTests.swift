import NIOCore
import NIOEmbedded
import TapeServer
import Testing

/// The `/ws` flush coalescing: the flushes of one event-loop pass leave as one, and a close never
/// loses what was written before it.
@Suite struct FlushCoalescerTests {
    /// What the socket end of the channel has received so far, in order.
    func flushed(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            out.append(String(buffer: buffer))
        }
        return out
    }

    /// Counts the flushes that reach the socket.
    final class FlushCounter: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = NIOAny
        var flushes = 0
        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    @Test func flushesOfOnePassLeaveTogetherAfterTheQueuedTasks() throws {
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(FlushCoalescer())
        defer { _ = try? channel.finish() }
        // Three messages, each written and flushed by its own task, as the WebSocket writer does.
        for text in ["a", "b", "c"] {
            channel.embeddedEventLoop.execute {
                channel.writeAndFlush(ByteBuffer(string: text), promise: nil)
            }
        }
        // Before the loop runs nothing was flushed.
        #expect(try flushed(channel).isEmpty)
        channel.embeddedEventLoop.run()
        #expect(try flushed(channel) == ["a", "b", "c"])
        #expect(counter.flushes == 1)
        // Another pass: flushed again, once its tasks have run.
        channel.writeAndFlush(ByteBuffer(string: "d"), promise: nil)
        #expect(try flushed(channel).isEmpty)
        channel.embeddedEventLoop.run()
        #expect(try flushed(channel) == ["d"])
        #expect(counter.flushes == 2)
    }

    @Test func aWriteWithoutFlushStaysUnflushed() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescer())
        defer { _ = try? channel.finish() }
        channel.write(ByteBuffer(string: "x"), promise: nil)
        channel.embeddedEventLoop.run()
        #expect(try flushed(channel).isEmpty)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(try flushed(channel) == ["x"])
    }

    @Test func closeFlushesWhatWasWrittenFirst() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescer())
        channel.writeAndFlush(ByteBuffer(string: "last words"), promise: nil)
        // Closed before the deferred flush ran: the bytes must still leave, before the close.
        let closed = channel.close()
        #expect(try flushed(channel) == ["last words"])
        channel.embeddedEventLoop.run()
        try closed.wait()
    }
}
