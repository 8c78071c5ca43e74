import Testing

@testable import ExchangeSimulator

/// The simulator's per-client outbox: batches, its bound, finishing and cancellation.
@Suite struct FrameOutboxTests {
    @Test func takesEverythingQueuedAtOnce() async {
        let outbox = FrameOutbox(capacity: 10)
        #expect(outbox.push("1") == .queued)
        #expect(outbox.push("2") == .queued)
        #expect(await outbox.next() == ["1", "2"])
        #expect(outbox.count == 0)
    }

    @Test func aWaitingWriterWakesWithTheFirstFrame() async {
        let outbox = FrameOutbox(capacity: 10)
        async let batch = outbox.next()
        // Give the reader a moment to park first (either order must work).
        try? await Task.sleep(for: .milliseconds(20))
        outbox.push("late")
        #expect(await batch == ["late"])
    }

    @Test func overflowCutsTheClientOffAfterWhatWasQueued() async {
        let outbox = FrameOutbox(capacity: 3)
        for i in 0..<3 { #expect(outbox.push("\(i)") == .queued) }
        #expect(outbox.push("3") == .overflowed)
        #expect(outbox.push("4") == .finished)
        #expect(await outbox.next() == ["0", "1", "2"])
        #expect(await outbox.next() == nil)
    }

    @Test func finishDrainsThenEnds() async {
        let outbox = FrameOutbox(capacity: 10)
        outbox.push("a")
        outbox.finish()
        #expect(outbox.push("b") == .finished)
        #expect(await outbox.next() == ["a"])
        #expect(await outbox.next() == nil)
        // A writer already waiting when the outbox finishes ends too.
        let other = FrameOutbox(capacity: 10)
        async let end = other.next()
        try? await Task.sleep(for: .milliseconds(20))
        other.finish()
        #expect(await end == nil)
    }

    @Test func cancellingTheWriterEndsItsWait() async {
        let outbox = FrameOutbox(capacity: 10)
        let writer = Task { await outbox.next() }
        try? await Task.sleep(for: .milliseconds(20))
        writer.cancel()
        #expect(await writer.value == nil)
    }
}
