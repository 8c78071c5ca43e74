import Synchronization

/// One websocket client's queue of frames to send, bounded, taken a batch at a time.
///
/// The generator pushes every frame of a tick at once; the writer takes whatever is queued in one
/// call and hands it to the channel as one write (one flush, one syscall) instead of one per frame.
/// A client that falls `capacity` frames behind is cut off, as real venues disconnect consumers that
/// do not keep up: memory stays bounded whatever the client does.
final class FrameOutbox: Sendable {
    enum Push: Equatable {
        case queued
        /// The queue was full: the frame was not queued and the outbox is now finished.
        case overflowed
        /// Already finished (closed or overflowed before): the frame was not queued.
        case finished
    }

    private struct State {
        var frames: [String] = []
        var finished = false
        var waiter: CheckedContinuation<[String]?, Never>?
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Queues a frame for the writer.
    @discardableResult
    func push(_ frame: String) -> Push {
        let (result, resume) = state.withLock { s -> (Push, (CheckedContinuation<[String]?, Never>, [String])?) in
            if s.finished { return (.finished, nil) }
            if s.frames.count >= capacity {
                // What was queued still goes out; then the connection closes.
                s.finished = true
                return (.overflowed, takeForWaiter(&s))
            }
            s.frames.append(frame)
            return (.queued, takeForWaiter(&s))
        }
        if let (waiter, batch) = resume { waiter.resume(returning: batch) }
        return result
    }

    /// No more frames: the writer sends what is queued, then `next` returns nil.
    func finish() {
        let resume = state.withLock { s -> (CheckedContinuation<[String]?, Never>, [String]?)? in
            s.finished = true
            guard let waiter = s.waiter else { return nil }
            s.waiter = nil
            if s.frames.isEmpty { return (waiter, nil) }
            defer { s.frames = [] }
            return (waiter, s.frames)
        }
        if let (waiter, batch) = resume { waiter.resume(returning: batch) }
    }

    /// Frames queued now.
    var count: Int { state.withLock { $0.frames.count } }

    /// Every frame queued so far (waiting until there is one), or nil once finished and drained.
    /// One caller at a time. Returns nil when the calling task is cancelled.
    func next() async -> [String]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[String]?, Never>) in
                let ready = state.withLock { s -> [String]?? in
                    if !s.frames.isEmpty {
                        defer { s.frames = [] }
                        return .some(s.frames)
                    }
                    if s.finished || Task.isCancelled { return .some(nil) }
                    s.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<[String]?, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    private func takeForWaiter(_ s: inout State) -> (CheckedContinuation<[String]?, Never>, [String])? {
        guard let waiter = s.waiter, !s.frames.isEmpty else { return nil }
        s.waiter = nil
        defer { s.frames = [] }
        return (waiter, s.frames)
    }
}
