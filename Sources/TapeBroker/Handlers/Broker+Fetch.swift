import KafkaProtocol
import Logging
import NIOCore

/// Fetch (with long polling on `min_bytes`/`max_wait_ms`) and ListOffsets.
extension Broker {
    /// A fetch parked until enough data arrives, its deadline passes, or its connection closes.
    struct FetchWaiter {
        var partitions: Set<TopicPartition>
        /// Bytes still to be appended to `partitions` before `min_bytes` is met.
        var bytesNeeded: Int
        var bytesSeen = 0
        /// The connection the fetch came on (0: none known).
        var connection: UInt64
        var continuation: CheckedContinuation<Void, Never>
        /// When it is answered with what there is (`max_wait_ms` after it arrived).
        var deadline: ContinuousClock.Instant
    }

    /// Wakes the parked fetches that wait on `tp` once `appended` more bytes bring them to their
    /// `min_bytes`; the data itself is read only once, by the woken fetch.
    func wakeFetchers(_ tp: TopicPartition, appended: Int) {
        guard let ids = waitersByPartition[tp] else { return }
        for id in ids {
            guard var w = fetchWaiters[id] else { continue }
            w.bytesSeen += appended
            if w.bytesSeen >= w.bytesNeeded {
                releaseWaiter(id)
            } else {
                fetchWaiters[id] = w
            }
        }
    }

    /// Wakes every fetch parked on a partition of `topic` (it was deleted).
    func wakeFetchers(topic: String) {
        for (tp, ids) in waitersByPartition where tp.topic == topic {
            for id in ids { releaseWaiter(id) }
        }
    }

    func releaseWaiter(_ id: UInt64) {
        guard let w = fetchWaiters.removeValue(forKey: id) else { return }
        for tp in w.partitions {
            waitersByPartition[tp]?.remove(id)
            if waitersByPartition[tp]?.isEmpty == true { waitersByPartition[tp] = nil }
        }
        w.continuation.resume()
    }

    /// Makes sure the sweeper wakes by `deadline`. One timer serves every parked fetch: a timer
    /// per fetch (a task sleeping, then cancelled when data came, as it nearly always does) cost a
    /// task and a trip through the dispatch timer thread per fetch, thousands a second in `tape up`.
    /// Fetches of one client share their `max_wait_ms`, so a new deadline is rarely the earliest
    /// and the timer is rarely re-armed.
    func armFetchSweeper(for deadline: ContinuousClock.Instant) {
        if let armed = fetchSweeperDeadline, armed <= deadline { return }
        fetchSweeper?.cancel()
        fetchSweeperDeadline = deadline
        fetchSweeper = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            if Task.isCancelled { return }
            await self?.sweepExpiredFetches(armedFor: deadline)
        }
    }

    /// Answers the parked fetches whose deadline has passed, then re-arms for the earliest left.
    func sweepExpiredFetches(armedFor deadline: ContinuousClock.Instant) {
        // A sweeper replaced meanwhile (cancelled too late) leaves the newer one armed.
        guard fetchSweeperDeadline == deadline else { return }
        fetchSweeper = nil
        fetchSweeperDeadline = nil
        let now = ContinuousClock.now
        var next: ContinuousClock.Instant?
        for (id, w) in fetchWaiters {
            if w.deadline <= now {
                releaseWaiter(id)
            } else if next.map({ w.deadline < $0 }) ?? true {
                next = w.deadline
            }
        }
        if let next { armFetchSweeper(for: next) }
    }

    /// Parked fetches (one at most per connection, as a connection's requests run in order).
    public var parkedFetchCount: Int { fetchWaiters.count }

    /// Waits until `bytesNeeded` more bytes were appended to `partitions`, `timeoutMs` passes,
    /// or the task is cancelled (its connection closed).
    func waitForData(_ partitions: Set<TopicPartition>, bytesNeeded: Int, timeoutMs: Int64, connection: UInt64) async {
        let id = nextWaiterID
        nextWaiterID += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                if Task.isCancelled {
                    c.resume()
                    return
                }
                let deadline = ContinuousClock.now + .milliseconds(max(timeoutMs, 0))
                fetchWaiters[id] = FetchWaiter(partitions: partitions, bytesNeeded: bytesNeeded, connection: connection, continuation: c, deadline: deadline)
                for tp in partitions { waitersByPartition[tp, default: []].insert(id) }
                armFetchSweeper(for: deadline)
            }
        } onCancel: {
            Task { await self.releaseWaiter(id) }
        }
    }

    /// The request with each partition once (the first mention wins, duplicate topics merged) and
    /// `max_bytes` within the broker's `fetchMaxBytes`, so no request can make a response
    /// bigger than the protocol's 2 GiB frame or read the same data twice.
    static func normalized(_ r: FetchRequest, fetchMaxBytes: Int) -> FetchRequest {
        var out = r
        let cap = Int32(clamping: max(fetchMaxBytes, 1))
        out.maxBytes = r.maxBytes <= 0 ? cap : min(r.maxBytes, cap)
        var seen = Set<TopicPartition>()
        var topicIndex: [String: Int] = [:]
        var topics: [FetchRequest.Topic] = []
        var duplicates = false
        for t in r.topics {
            for p in t.partitions {
                guard seen.insert(TopicPartition(t.topic, p.partition)).inserted else {
                    duplicates = true
                    continue
                }
                if let i = topicIndex[t.topic] {
                    duplicates = true
                    topics[i].partitions.append(p)
                } else {
                    topicIndex[t.topic] = topics.count
                    topics.append(FetchRequest.Topic(topic: t.topic, partitions: [p]))
                }
            }
            if t.partitions.isEmpty && topicIndex[t.topic] == nil {
                topicIndex[t.topic] = topics.count
                topics.append(t)
            }
        }
        if duplicates { out.topics = topics }
        return out
    }

    func fetch(_ request: FetchRequest, connection: UInt64 = 0) async -> FetchResponse {
        let r = Self.normalized(request, fetchMaxBytes: configuration.fetchMaxBytes)
        let start = clock.nowMs()
        let (response, bytes, hadError) = readFetch(r)
        let waitMs = Int64(max(r.maxWaitMs, 0))
        if bytes >= Int(r.minBytes) || hadError || waitMs == 0 || r.topics.isEmpty || isShuttingDown || Task.isCancelled {
            return response
        }
        let wanted = Set(r.topics.flatMap { t in t.partitions.map { TopicPartition(t.topic, $0.partition) } })
        await waitForData(wanted, bytesNeeded: Int(r.minBytes) - bytes, timeoutMs: waitMs - (clock.nowMs() - start), connection: connection)
        return readFetch(r).0
    }

    func readFetch(_ r: FetchRequest) -> (FetchResponse, Int, Bool) {
        // While sockets hold too many unwritten responses, answer with one batch at most.
        let room = configuration.maxPendingResponseBytes - pendingResponseBytes.value
        var remaining = min(Int(max(r.maxBytes, 0)), max(room, 0))
        var total = 0
        var hadError = false
        var topicsOut: [FetchResponse.Topic] = []
        for t in r.topics {
            let logs = topics.partitionLogs(of: t.topic)
            var partitionsOut: [FetchResponse.Partition] = []
            for p in t.partitions {
                func failed(_ code: ErrorCode, hw: Int64 = -1, start: Int64 = -1) -> FetchResponse.Partition {
                    .init(partitionIndex: p.partition, errorCode: code, highWatermark: hw, lastStableOffset: hw, logStartOffset: start, records: nil)
                }
                guard let logs, p.partition >= 0, Int(p.partition) < logs.count else {
                    hadError = true
                    partitionsOut.append(failed(.unknownTopicOrPartition))
                    continue
                }
                let log = logs[Int(p.partition)]
                let limit = min(Int(max(p.partitionMaxBytes, 0)), remaining)
                let tp = TopicPartition(t.topic, p.partition)
                if limit == 0 && total > 0 {
                    // The response is full: report the partition's offsets without reading data.
                    let hw = log.logEndOffset
                    partitionsOut.append(
                        .init(
                            partitionIndex: p.partition, errorCode: .none, highWatermark: hw,
                            lastStableOffset: transactionState(tp, log).lastStableOffset(highWatermark: hw),
                            logStartOffset: log.logStartOffset, records: ByteBuffer()))
                    continue
                }
                // First, as rebuilding it after a restart may write markers.
                let txns = transactionState(tp, log)
                do {
                    // Read straight into the buffer the response sends (no array in between).
                    var records = ByteBuffer()
                    let read = try log.read(from: p.fetchOffset, maxBytes: max(limit, 1), appendingTo: &records)
                    if records.readableBytes > remaining && total > 0 { records.clear() }  // only the first data may exceed the limits
                    let lso = txns.lastStableOffset(highWatermark: read.highWatermark)
                    var aborted: [FetchResponse.AbortedTransaction]? = nil
                    // A partition without transactional data (open or aborted) needs neither.
                    if r.isolationLevel == 1 && !(txns.open.isEmpty && txns.aborted.isEmpty) {
                        // read_committed: nothing at or past the last stable offset, and the aborted
                        // transactions in the returned range so the client drops their records.
                        let (kept, end) = records.withUnsafeReadableBytes { Self.batches($0, before: lso) }
                        if kept < records.readableBytes { records.moveWriterIndex(to: records.readerIndex + kept) }
                        let list = txns.aborted(from: p.fetchOffset, upTo: end ?? p.fetchOffset)
                        if !list.isEmpty && records.readableBytes > 0 {
                            aborted = list.map { FetchResponse.AbortedTransaction(producerId: $0.producerId, firstOffset: $0.firstOffset) }
                        }
                    }
                    total += records.readableBytes
                    remaining = max(remaining - records.readableBytes, 0)
                    var partition = FetchResponse.Partition(
                        partitionIndex: p.partition, errorCode: .none, highWatermark: read.highWatermark, lastStableOffset: lso,
                        logStartOffset: read.logStartOffset, records: records)
                    partition.abortedTransactions = aborted
                    partitionsOut.append(partition)
                } catch let e as StorageError {
                    if e.code != .offsetOutOfRange { logger.error("fetch from \(t.topic)-\(p.partition) failed: \(e)") }
                    hadError = true
                    partitionsOut.append(failed(Self.errorCode(e), hw: log.logEndOffset, start: log.logStartOffset))
                } catch {
                    logger.error("fetch from \(t.topic)-\(p.partition) failed: \(error)")
                    hadError = true
                    partitionsOut.append(failed(.kafkaStorageError))
                }
            }
            topicsOut.append(FetchResponse.Topic(topic: t.topic, partitions: partitionsOut))
        }
        return (FetchResponse(topics: topicsOut), total, hadError)
    }

    /// The bytes of the whole batches in `raw` that start before `offset`, and the offset
    /// after the last of them (nil if none). Reads only the batch headers, in place.
    static func batches(_ raw: UnsafeRawBufferPointer, before offset: Int64) -> (bytes: Int, end: Int64?) {
        var position = 0
        var end: Int64? = nil
        while raw.count - position >= RecordBatchHeader.size {
            let base = Int64(bitPattern: BigEndian.u64(raw, position))
            let size = Int(Int32(bitPattern: BigEndian.u32(raw, position + 8))) + RecordBatchHeader.logOverhead
            let lastDelta = Int64(Int32(bitPattern: BigEndian.u32(raw, position + 23)))
            guard base < offset, size >= RecordBatchHeader.size, size <= raw.count - position else { break }
            position += size
            let (next, overflow) = base.addingReportingOverflow(lastDelta + 1)
            end = overflow ? Int64.max : next
        }
        return (position, end)
    }

    func listOffsets(_ r: ListOffsetsRequest) -> ListOffsetsResponse {
        ListOffsetsResponse(
            topics: r.topics.map { t in
                let logs = topics.partitionLogs(of: t.name)
                return .init(
                    name: t.name,
                    partitions: t.partitions.map { p in
                        guard let logs, p.partitionIndex >= 0, Int(p.partitionIndex) < logs.count else {
                            return .init(partitionIndex: p.partitionIndex, errorCode: .unknownTopicOrPartition, timestamp: -1, offset: -1)
                        }
                        let log = logs[Int(p.partitionIndex)]
                        switch p.timestamp {
                        case ListOffsetsRequest.latestTimestamp:
                            // read_committed: the latest offset is the last stable offset.
                            let end = log.logEndOffset
                            let latest =
                                r.isolationLevel == 1
                                ? transactionState(TopicPartition(t.name, p.partitionIndex), log).lastStableOffset(highWatermark: end) : end
                            return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: -1, offset: latest)
                        case ListOffsetsRequest.earliestTimestamp:
                            return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: -1, offset: log.logStartOffset)
                        case ListOffsetsRequest.maxTimestamp:
                            do {
                                if let lookup = log as? any MaxTimestampLookup, let found = try lookup.offsetOfMaxTimestamp() {
                                    return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: found.timestamp, offset: found.offset)
                                }
                                return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: -1, offset: -1)
                            } catch {
                                logger.error("ListOffsets (max timestamp) on \(t.name)-\(p.partitionIndex) failed: \(error)")
                                return .init(partitionIndex: p.partitionIndex, errorCode: .kafkaStorageError, timestamp: -1, offset: -1)
                            }
                        default:
                            do {
                                if let found = try log.offset(forTimestamp: p.timestamp) {
                                    return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: found.timestamp, offset: found.offset)
                                }
                                return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: -1, offset: -1)
                            } catch {
                                logger.error("ListOffsets on \(t.name)-\(p.partitionIndex) failed: \(error)")
                                return .init(partitionIndex: p.partitionIndex, errorCode: .kafkaStorageError, timestamp: -1, offset: -1)
                            }
                        }
                    })
            })
    }
}
