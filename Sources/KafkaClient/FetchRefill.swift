import Crdkafka
import Dispatch
import Synchronization

/// Restarts librdkafka's fetching as soon as a full pre-fetch queue has drained.
///
/// librdkafka (2.0.2, Debian's) stops fetching a partition while the consumer's pre-fetch queue
/// holds `queued.min.messages` records or `queued.max.messages.kbytes` of record values. It looks
/// again only when the broker thread next wakes, and nothing wakes it when the application drains
/// the queue. The thread's longest sleep is a second, so a consumer that reads a backlog faster
/// than a second per queue-full sat idle for most of each second: `tape bench process` with an
/// 8 MB queue read 0.3–0.5 M trades/s instead of ~2 M. (librdkafka 2.2 added
/// `fetch.queue.backoff.ms` for this.)
///
/// The polling thread reports how full the queue was before and after each batch it takes. Once
/// the queue has been at least half full and has drained to a quarter, this asks the assigned
/// partitions' leaders for their end offsets (`rd_kafka_offsets_for_times`, a read-only request,
/// one per leader). Queuing a request wakes that leader's broker thread, which then sees the room
/// in the queue and fetches. If fetching had not stopped, the request costs one round trip and
/// nothing else. The request runs on a queue of its own, so the polling thread never waits for it.
final class FetchRefill: @unchecked Sendable {
    /// `queued.min.messages` and `queued.max.messages.kbytes` (as bytes) of the handle.
    let maxMessages: Int
    let maxBytes: Int
    private nonisolated(unsafe) let rk: OpaquePointer
    /// Touched only by the polling thread.
    private var armed = false
    /// Wake-ups asked for so far, and (on `queue` only) how many of them a request already covered.
    private let wanted = Atomic<Int>(0)
    private var covered = 0
    private let stopped = Atomic<Bool>(false)
    private let sent = Atomic<Int>(0)
    private let queue = DispatchQueue(label: "tape.kafka.consumer.refill")

    init(rk: OpaquePointer) {
        self.rk = rk
        let conf = rd_kafka_conf(rk)
        maxMessages = Self.integer(conf, "queued.min.messages") ?? 100_000
        maxBytes = (Self.integer(conf, "queued.max.messages.kbytes") ?? 65_536) * 1024
    }

    /// Requests sent to wake broker threads so far.
    var nudges: Int { sent.load(ordering: .relaxed) }

    /// Called by the polling thread after it took a batch of `taken` records; `remaining` are
    /// still in librdkafka's queue. The batch's values averaged `bytesPerRecord` (what librdkafka
    /// counts against `queued.max.messages.kbytes`).
    func observe(taken: Int, remaining: Int, bytesPerRecord: Int) {
        if isHalfFull(records: taken + remaining, bytesPerRecord: bytesPerRecord) { armed = true }
        guard armed, isQuarterFullAtMost(records: remaining, bytesPerRecord: bytesPerRecord) else { return }
        armed = false
        nudge()
    }

    private func isHalfFull(records: Int, bytesPerRecord: Int) -> Bool {
        Double(records) * 2 >= Double(maxMessages) || Double(records) * Double(bytesPerRecord) * 2 >= Double(maxBytes)
    }

    private func isQuarterFullAtMost(records: Int, bytesPerRecord: Int) -> Bool {
        Double(records) * 4 <= Double(maxMessages) && Double(records) * Double(bytesPerRecord) * 4 <= Double(maxBytes)
    }

    /// Every call is followed by a request that starts after it; calls made while a request is
    /// waiting to start share it. (A wake-up skipped because another was in flight left
    /// librdkafka asleep when that one had come too early.)
    private func nudge() {
        let asked = wanted.add(1, ordering: .acquiringAndReleasing).newValue
        queue.async { [self] in
            guard !stopped.load(ordering: .acquiring), covered < asked else { return }
            covered = wanted.load(ordering: .acquiring)
            var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
            guard rd_kafka_assignment(rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            guard list.pointee.cnt > 0 else { return }
            // A timestamp of -1 asks for each partition's end offset.
            for i in 0..<Int(list.pointee.cnt) { list.pointee.elems[i].offset = Int64(RD_KAFKA_OFFSET_END) }
            _ = rd_kafka_offsets_for_times(rk, list, 1000)
            sent.add(1, ordering: .relaxed)
        }
    }

    /// Waits for a request in flight and sends no more; before the handle is closed.
    func stop() {
        stopped.store(true, ordering: .releasing)
        queue.sync {}
    }

    private static func integer(_ conf: OpaquePointer?, _ name: String) -> Int? {
        guard let conf else { return nil }
        var buffer = [CChar](repeating: 0, count: 64)
        var size = buffer.count
        guard rd_kafka_conf_get(conf, name, &buffer, &size) == RD_KAFKA_CONF_OK else { return nil }
        return Int(string(fromBuffer: buffer))
    }
}
