import Crdkafka
import Foundation
import Logging
import Synchronization

/// A bounded hand-off of batches from a polling thread to one async reader.
final class BatchChannel<T: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var batches: [[T]] = []
    private var waiter: CheckedContinuation<[T]?, any Error>?
    private var finished = false
    private var failure: (any Error)?
    private let capacity: Int
    /// Records of the current batch not yet handed out by a `Messages` iterator.
    private var leftover: [T] = []
    private var leftoverIndex = 0

    func popLeftover() -> T? {
        condition.lock()
        defer { condition.unlock() }
        guard leftoverIndex < leftover.count else { return nil }
        defer { leftoverIndex += 1 }
        return leftover[leftoverIndex]
    }

    func setLeftover(_ items: [T]) {
        condition.lock()
        leftover = items
        leftoverIndex = 0
        condition.unlock()
    }

    /// Lets a blocked `push` notice the poller is stopping.
    var onStopRequested: (@Sendable () -> Bool)?

    init(capacity: Int) { self.capacity = capacity }

    var bufferedCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return batches.count
    }

    /// Called by the polling thread; blocks while the buffer is full.
    func push(_ batch: [T]) {
        condition.lock()
        // A waiting reader means an empty buffer, so the loop is skipped and the check below hands
        // the batch over directly.
        while batches.count >= capacity && !finished {
            if onStopRequested?() == true { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        // The wait released the lock: the reader may have drained every batch meanwhile and be
        // waiting now. Hand it this batch (the buffer is then empty, so order is kept); appending
        // it would leave the reader waiting with a batch in the buffer — the last records of a
        // stream were never delivered, and the next push overtook it.
        if let waiter {
            self.waiter = nil
            condition.unlock()
            waiter.resume(returning: batch)
            return
        }
        if !finished { batches.append(batch) }
        condition.unlock()
    }

    func finish(throwing error: (any Error)?) {
        condition.lock()
        if finished {
            condition.unlock()
            return
        }
        finished = true
        failure = error
        let waiter = self.waiter
        self.waiter = nil
        condition.broadcast()
        condition.unlock()
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    func next() async throws -> [T]? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[T]?, any Error>) in
                condition.lock()
                if leftoverIndex < leftover.count {
                    let rest = Array(leftover[leftoverIndex...])
                    leftover = []
                    leftoverIndex = 0
                    condition.unlock()
                    continuation.resume(returning: rest)
                } else if !batches.isEmpty {
                    let batch = batches.removeFirst()
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: batch)
                } else if finished {
                    let error = failure
                    condition.unlock()
                    if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: nil) }
                } else if Task.isCancelled {
                    condition.unlock()
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiter = continuation
                    condition.unlock()
                }
            }
        } onCancel: {
            condition.lock()
            let waiter = self.waiter
            self.waiter = nil
            condition.unlock()
            waiter?.resume(throwing: CancellationError())
        }
    }
}
