import KafkaProtocol
import NIOCore

/// Reading a topic from inside the broker's process, without a socket or a Kafka client: what
/// `tape up`'s own server does with the embedded broker. It is a Fetch (read_committed, long
/// polling) and ListOffsets answered by the same code a network client reaches, with the records
/// decoded here: control batches and aborted transactions are dropped, as a Kafka consumer does.
extension Broker {
    /// One record read locally.
    public struct LocalRecord: Sendable, Equatable {
        public var partition: Int32
        public var offset: Int64
        /// Milliseconds since the epoch (-1 when it does not fit).
        public var timestamp: Int64
        public var key: [UInt8]?
        public var value: [UInt8]?
    }

    /// What one partition answered.
    public struct LocalPartitionRead: Sendable, Equatable {
        public var partition: Int32
        /// `.none`, or why nothing was read (`.offsetOutOfRange`, `.unknownTopicOrPartition`, ...).
        public var error: ErrorCode
        /// Where the next read of this partition starts (past control batches and aborted records too).
        public var nextOffset: Int64
        public var highWatermark: Int64
        public var logStartOffset: Int64
        /// Batches that could not be decoded (skipped, counted).
        public var corruptBatches: Int
    }

    public struct LocalRead: Sendable {
        public var records: [LocalRecord]
        public var partitions: [LocalPartitionRead]
    }

    /// Where to start reading a partition.
    public enum LocalOffsetSpec: Sendable {
        case earliest
        /// The last stable offset (read_committed).
        case latest
        /// The first record at or after this time (ms since the epoch); nil offset when none.
        case timestamp(Int64)
    }

    /// The number of partitions of `topic`, or nil if it does not exist.
    public func localPartitionCount(of topic: String) -> Int? {
        topics.partitionLogs(of: topic)?.count
    }

    /// The offset `spec` names in each of `partitions` (nil: the partition does not exist or no
    /// record is that recent).
    public func localOffsets(topic: String, partitions: [Int32], at spec: LocalOffsetSpec) -> [Int32: Int64?] {
        let timestamp: Int64
        switch spec {
        case .earliest: timestamp = ListOffsetsRequest.earliestTimestamp
        case .latest: timestamp = ListOffsetsRequest.latestTimestamp
        case .timestamp(let ms): timestamp = max(ms, 0)
        }
        var request = ListOffsetsRequest(
            topics: [.init(name: topic, partitions: partitions.map { ListOffsetsRequest.Partition(partitionIndex: $0, timestamp: timestamp) })])
        request.isolationLevel = 1
        var out: [Int32: Int64?] = [:]
        for t in listOffsets(request).topics {
            for p in t.partitions { out[p.partitionIndex] = p.errorCode == .none && p.offset >= 0 ? p.offset : nil }
        }
        return out
    }

    /// Reads `topic` from `positions` (partition → next offset), waiting up to `maxWaitMs` for
    /// data when there is none. At most about `maxBytes` of batches are read.
    public func localRead(topic: String, positions: [Int32: Int64], maxBytes: Int = 1 << 20, maxWaitMs: Int = 500) async -> LocalRead {
        let cap = Int32(clamping: max(maxBytes, 1))
        var request = FetchRequest(
            maxWaitMs: Int32(clamping: max(maxWaitMs, 0)), minBytes: 1, maxBytes: cap,
            topics: [
                .init(
                    topic: topic,
                    partitions: positions.keys.sorted().map { FetchRequest.Partition(partition: $0, fetchOffset: positions[$0]!, partitionMaxBytes: cap) })
            ])
        request.isolationLevel = 1
        let response = await fetch(request)
        var records: [LocalRecord] = []
        var partitions: [LocalPartitionRead] = []
        for t in response.topics {
            for p in t.partitions {
                let from = positions[p.partitionIndex] ?? 0
                var read = LocalPartitionRead(
                    partition: p.partitionIndex, error: p.errorCode, nextOffset: from, highWatermark: p.highWatermark, logStartOffset: p.logStartOffset,
                    corruptBatches: 0)
                if p.errorCode == .none, let buffer = p.records, buffer.readableBytes > 0 {
                    buffer.withUnsafeReadableBytes { bytes in
                        Self.decodeLocal(
                            bytes, partition: p.partitionIndex, from: from, aborted: p.abortedTransactions ?? [], into: &records, read: &read)
                    }
                }
                partitions.append(read)
            }
        }
        return LocalRead(records: records, partitions: partitions)
    }

    /// Appends the records of the whole batches in `bytes` at or past `from` to `records`, skipping
    /// control batches and the batches of aborted transactions, and moves `read.nextOffset` past
    /// every batch looked at. A batch that cannot be decoded is counted and stepped over.
    static func decodeLocal(
        _ bytes: UnsafeRawBufferPointer, partition: Int32, from: Int64, aborted: [FetchResponse.AbortedTransaction], into records: inout [LocalRecord],
        read: inout LocalPartitionRead
    ) {
        var pendingAborts = aborted.sorted { $0.firstOffset < $1.firstOffset }[...]
        var abortedProducers = Set<Int64>()
        var position = 0
        while bytes.count - position >= RecordBatchLayout.headerSize {
            let batch = UnsafeRawBufferPointer(rebasing: bytes[position...])
            guard let header = StoredBatchHeader(batch), header.totalSize >= RecordBatchLayout.headerSize, header.totalSize <= batch.count else { break }
            position += header.totalSize
            let (end, overflow) = header.baseOffset.addingReportingOverflow(Int64(header.lastOffsetDelta) &+ 1)
            guard !overflow, end > read.nextOffset else { continue }
            read.nextOffset = end
            let producerId = Int64(bitPattern: BigEndian.u64(batch, RecordBatchLayout.producerId))
            while let next = pendingAborts.first, next.firstOffset <= header.lastOffset {
                abortedProducers.insert(next.producerId)
                pendingAborts.removeFirst()
            }
            if header.isControl {
                // The marker that ends a transaction: an abort ends the skipping for its producer.
                if header.isTransactional { abortedProducers.remove(producerId) }
                continue
            }
            if header.isTransactional && abortedProducers.contains(producerId) { continue }
            guard
                let decoded = try? StoredBatchHeader.records(of: UnsafeRawBufferPointer(rebasing: batch[0..<header.totalSize]), header: header)
            else {
                read.corruptBatches += 1
                continue
            }
            for record in decoded {
                guard let offset = record.offset(base: header.baseOffset), offset >= from else { continue }
                records.append(
                    LocalRecord(
                        partition: partition, offset: offset, timestamp: record.timestamp(base: header.baseTimestamp) ?? -1, key: record.key,
                        value: record.value))
            }
        }
    }
}

/// Producing from inside the broker's process (`tape up`'s ingestion): a Produce with acks=all
/// answered by the same code a network client reaches (validation, append, the wait for the
/// fsync policy), without a socket or a Kafka client.
extension Broker {
    /// One record to append locally.
    public struct LocalMessage: Sendable {
        public var key: [UInt8]?
        public var value: [UInt8]?
        public var headers: [Record.Header]
        /// Milliseconds since the epoch.
        public var timestamp: Int64
        public init(key: [UInt8]?, value: [UInt8]?, headers: [Record.Header] = [], timestamp: Int64) {
            self.key = key
            self.value = value
            self.headers = headers
            self.timestamp = timestamp
        }
    }

    /// What one partition's append answered.
    public struct LocalAppend: Sendable, Equatable {
        public var partition: Int32
        public var error: ErrorCode
        /// The offset of the first message (-1 on error).
        public var baseOffset: Int64
        public var errorMessage: String?
    }

    /// Appends each partition's messages, in order, as one batch per partition (acks=all: returns
    /// once the broker's fsync policy is met). A topic that does not exist is created as a producer
    /// would have it created (when the broker auto-creates topics).
    public func localProduce(topic: String, partitions: [(partition: Int32, messages: [LocalMessage])]) async -> [LocalAppend] {
        var data: [ProduceRequest.PartitionData] = []
        for (partition, messages) in partitions where !messages.isEmpty {
            let base = messages.lazy.map(\.timestamp).min() ?? 0
            let records = messages.enumerated().map { i, m in
                Record(timestampDelta: m.timestamp &- base, offsetDelta: Int32(truncatingIfNeeded: i), key: m.key, value: m.value, headers: m.headers)
            }
            data.append(.init(index: partition, records: RecordBatchBuilder.build(records: records, baseTimestamp: base)))
        }
        guard !data.isEmpty else { return [] }
        let response = await produce(ProduceRequest(acks: -1, timeoutMs: 30_000, topics: [.init(name: topic, partitions: data)]))
        return response.topics.flatMap { t in
            t.partitions.map { LocalAppend(partition: $0.index, error: $0.errorCode, baseOffset: $0.baseOffset, errorMessage: $0.errorMessage) }
        }
    }

    /// The number of partitions of `topic`, creating it (as a produce would) if it does not exist
    /// and the broker auto-creates topics; nil otherwise.
    public func localPartitionCountCreating(_ topic: String) -> Int? {
        logsCreatingIfAllowed(topic, allowed: true).0?.count
    }
}
