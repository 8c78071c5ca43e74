import Foundation
import XCTest

@testable import KafkaClient

/// The hand-off between a consumer's polling thread and its async reader.
final class BatchChannelTests: XCTestCase {
    struct Timeout: Error {}

    /// The reader keeps draining a full buffer while the polling thread is blocked on it. The
    /// polling thread's wait releases the lock, so the reader can empty the buffer and start
    /// waiting before the pusher wakes up: the pushed batch must then go to that reader, not into
    /// the buffer (where it sat while the reader waited, and the next push overtook it; at the end
    /// of a stream its records were never delivered).
    func testEveryBatchArrivesOnceAndInOrderWhileTheBufferFillsAndDrains() async throws {
        for capacity in [1, 2, 8] {
            let channel = BatchChannel<Int>(capacity: capacity)
            let total = 20_000
            let pusher = Thread {
                for i in 0..<total { channel.push([i]) }
                channel.finish(throwing: nil)
            }
            pusher.start()
            let received = try await withThrowingTaskGroup(of: [Int]?.self) { group in
                group.addTask {
                    var seen: [Int] = []
                    seen.reserveCapacity(total)
                    while let batch = try await channel.next() { seen += batch }
                    return seen
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(60))
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                guard let first else { throw Timeout() }
                return first
            }
            XCTAssertEqual(received.count, total, "capacity \(capacity): every batch once")
            let firstOutOfOrder = zip(received, received.dropFirst()).first { $0.0 + 1 != $0.1 }
            XCTAssertNil(firstOutOfOrder, "capacity \(capacity): batches in push order")
        }
    }
}
