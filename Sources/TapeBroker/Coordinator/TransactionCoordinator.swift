import KafkaProtocol

/// The transaction coordinator of KIP-98 for one node: per `transactional.id` the producer id and
/// epoch, the timeout, the state, and the partitions, groups and pending group offsets of the
/// ongoing transaction. A pure value (no I/O, time passed in); the broker owns one, writes the
/// markers and offsets a `Completion` asks for, then calls `completed`.
///
/// States: Empty → Ongoing (AddPartitionsToTxn/AddOffsetsToTxn) → PrepareCommit/PrepareAbort
/// (EndTxn, timeout, or InitProducerId fencing an ongoing transaction) → CompleteCommit/CompleteAbort
/// (markers written) → Ongoing again with the next AddPartitionsToTxn. On one node the prepare
/// states last only while the markers are written; one stays if writing them failed, and a retried
/// EndTxn writes them again.
public struct TransactionCoordinator: Sendable {
    public enum State: UInt8, Sendable, Equatable {
        case empty = 0
        case ongoing = 1
        case prepareCommit = 2
        case prepareAbort = 3
        case completeCommit = 4
        case completeAbort = 5
    }

    public struct Transaction: Sendable, Equatable {
        public var transactionalId: String
        public var producerId: Int64
        public var producerEpoch: Int16
        public var timeoutMs: Int32
        public var state: State
        public var partitions: Set<TopicPartition> = []
        public var groups: Set<String> = []
        /// TxnOffsetCommit offsets, committed to their groups only when the transaction commits.
        public var pendingOffsets: [String: [TopicPartition: CommittedOffset]] = [:]
        /// Broker clock (ms) when the ongoing transaction started (its first AddPartitions/AddOffsets).
        public var startMs: Int64 = 0
        public init(transactionalId: String, producerId: Int64, producerEpoch: Int16, timeoutMs: Int32, state: State) {
            self.transactionalId = transactionalId
            self.producerId = producerId
            self.producerEpoch = producerEpoch
            self.timeoutMs = timeoutMs
            self.state = state
        }
    }

    /// What the broker must do to end a transaction: write a marker (commit or abort, with this
    /// producer id and epoch) to every partition, and on commit store the pending offsets.
    public struct Completion: Sendable, Equatable {
        public var transactionalId: String
        public var producerId: Int64
        public var producerEpoch: Int16
        public var commit: Bool
        public var partitions: [TopicPartition]
        public var offsets: [String: [TopicPartition: CommittedOffset]]
    }

    public enum InitResult: Sendable, Equatable {
        /// The producer id and epoch to hand out; `abort` first, if an ongoing transaction of
        /// the previous epoch must be aborted.
        case ok(producerId: Int64, producerEpoch: Int16, abort: Completion?)
        case error(ErrorCode, String)
    }

    public enum EndResult: Sendable, Equatable {
        case complete(Completion)
        /// Already ended this way (a retry): nothing to do.
        case alreadyDone
        case error(ErrorCode, String)
    }

    public private(set) var transactions: [String: Transaction] = [:]
    private var byProducerId: [Int64: String] = [:]
    /// Broker clock (ms) of each transactional id's last request, for expiry (not stored: a
    /// restart counts as a use).
    private var lastUsedMs: [String: Int64] = [:]
    /// Kafka's `transaction.max.timeout.ms`.
    public let maxTimeoutMs: Int32

    public init(maxTimeoutMs: Int32 = 900_000) { self.maxTimeoutMs = maxTimeoutMs }

    /// Restores a transaction read back from the durable store.
    public mutating func restore(_ t: Transaction, now: Int64 = 0) {
        if let old = transactions[t.transactionalId] { byProducerId[old.producerId] = nil }
        transactions[t.transactionalId] = t
        byProducerId[t.producerId] = t.transactionalId
        lastUsedMs[t.transactionalId] = now
    }

    /// Forgets transactional ids without an ongoing or completing transaction that were not used
    /// for `expirationMs` (Kafka's `transactional.id.expiration.ms`), then the least recently used
    /// such ids beyond `maxIds`. Returns the ids forgotten; their next InitProducerId starts afresh.
    public mutating func expireIdle(now: Int64, expirationMs: Int64, maxIds: Int) -> [String] {
        let idle = transactions.values.filter { [.empty, .completeCommit, .completeAbort].contains($0.state) }.map(\.transactionalId)
        var dropped: [String] = []
        let (cutoff, overflow) = now.subtractingReportingOverflow(expirationMs)
        if !overflow { dropped = idle.filter { (lastUsedMs[$0] ?? 0) <= cutoff } }
        let remaining = transactions.count - dropped.count
        if remaining > maxIds {
            let gone = Set(dropped)
            let oldest = idle.filter { !gone.contains($0) }.sorted { (lastUsedMs[$0] ?? 0, $0) < (lastUsedMs[$1] ?? 0, $1) }
            dropped += oldest.prefix(remaining - max(maxIds, 0))
        }
        for id in dropped {
            if let t = transactions.removeValue(forKey: id), byProducerId[t.producerId] == id { byProducerId[t.producerId] = nil }
            lastUsedMs[id] = nil
        }
        return dropped.sorted()
    }

    public func transaction(_ id: String) -> Transaction? { transactions[id] }
    public func transaction(producerId: Int64) -> Transaction? { byProducerId[producerId].flatMap { transactions[$0] } }

    // MARK: InitProducerId

    /// InitProducerId with a transactional id: a new producer id (epoch 0), or the same id with
    /// the epoch bumped (fencing the previous producer), after aborting its ongoing transaction;
    /// a new producer id once the epoch is exhausted.
    /// `current` (InitProducerId v3+, KIP-360): the id and epoch the producer has; they must be the
    /// transactional id's current ones (else PRODUCER_FENCED) unless the id is new here.
    public mutating func initProducerId(
        transactionalId: String, timeoutMs: Int32, now: Int64, current: (producerId: Int64, epoch: Int16)? = nil, newProducerId: () -> Int64
    ) -> InitResult {
        guard timeoutMs > 0 && timeoutMs <= maxTimeoutMs else {
            return .error(
                .invalidTransactionTimeout, "transaction.timeout.ms \(timeoutMs) must be between 1 and transaction.max.timeout.ms (\(maxTimeoutMs))")
        }
        guard var t = transactions[transactionalId] else {
            let t = Transaction(transactionalId: transactionalId, producerId: newProducerId(), producerEpoch: 0, timeoutMs: timeoutMs, state: .empty)
            restore(t, now: now)
            return .ok(producerId: t.producerId, producerEpoch: 0, abort: nil)
        }
        if let current, current.producerId >= 0, current.producerId != t.producerId || current.epoch != t.producerEpoch {
            return .error(
                .producerFenced,
                "producer id \(current.producerId) epoch \(current.epoch) of \(transactionalId) is fenced by producer id \(t.producerId) epoch \(t.producerEpoch)"
            )
        }
        lastUsedMs[transactionalId] = now
        var abort: Completion? = nil
        switch t.state {
        case .prepareCommit, .prepareAbort:
            return .error(.concurrentTransactions, "transaction \(transactionalId) is still completing; retry")
        case .ongoing:
            // Fence the producer of the ongoing transaction and abort it with the bumped epoch.
            if t.producerEpoch < Int16.max - 1 { t.producerEpoch += 1 }
            abort = Completion(
                transactionalId: transactionalId, producerId: t.producerId, producerEpoch: t.producerEpoch, commit: false,
                partitions: t.partitions.sorted(), offsets: [:])
            t.state = .prepareAbort
        case .empty, .completeCommit, .completeAbort:
            break
        }
        t.timeoutMs = timeoutMs
        if abort == nil {
            if t.producerEpoch >= Int16.max - 1 {
                byProducerId[t.producerId] = nil
                t.producerId = newProducerId()
                t.producerEpoch = 0
                byProducerId[t.producerId] = transactionalId
            } else {
                t.producerEpoch += 1
            }
            t.state = .empty
            t.partitions = []
            t.groups = []
            t.pendingOffsets = [:]
        }
        transactions[transactionalId] = t
        return .ok(producerId: t.producerId, producerEpoch: t.producerEpoch, abort: abort)
    }

    /// After the abort an InitProducerId asked for: the transaction is empty at the new epoch
    /// (a new producer id if the epoch is exhausted).
    public mutating func initAfterAbort(transactionalId: String, newProducerId: () -> Int64) -> (producerId: Int64, producerEpoch: Int16)? {
        guard var t = transactions[transactionalId] else { return nil }
        clear(&t, state: .empty)
        if t.producerEpoch >= Int16.max - 1 {
            byProducerId[t.producerId] = nil
            t.producerId = newProducerId()
            t.producerEpoch = 0
            byProducerId[t.producerId] = transactionalId
        }
        transactions[transactionalId] = t
        return (t.producerId, t.producerEpoch)
    }

    // MARK: Validation

    /// The transaction of `transactionalId` if this producer id and epoch own it. A stale epoch
    /// gets PRODUCER_FENCED (handlers of versions < 2 answer INVALID_PRODUCER_EPOCH instead).
    func validate(_ transactionalId: String, producerId: Int64, epoch: Int16) -> Result<Transaction, TxnError> {
        guard let t = transactions[transactionalId] else {
            return .failure(TxnError(.invalidProducerIdMapping, "transactional id \(transactionalId) has no producer id; call InitProducerId first"))
        }
        guard t.producerId == producerId else {
            return .failure(TxnError(.invalidProducerIdMapping, "producer id \(producerId) does not belong to transactional id \(transactionalId)"))
        }
        guard t.producerEpoch == epoch else {
            return .failure(
                TxnError(.producerFenced, "producer epoch \(epoch) of \(transactionalId) is fenced by epoch \(t.producerEpoch)"))
        }
        return .success(t)
    }

    struct TxnError: Error, Equatable {
        var code: ErrorCode
        var message: String
        init(_ code: ErrorCode, _ message: String) {
            self.code = code
            self.message = message
        }
    }

    /// Starts or continues the ongoing transaction (AddPartitionsToTxn, AddOffsetsToTxn).
    private mutating func join(_ transactionalId: String, producerId: Int64, epoch: Int16, now: Int64, _ change: (inout Transaction) -> Void)
        -> (ErrorCode, String)
    {
        switch validate(transactionalId, producerId: producerId, epoch: epoch) {
        case .failure(let e): return (e.code, e.message)
        case .success(var t):
            switch t.state {
            case .prepareCommit, .prepareAbort:
                return (.concurrentTransactions, "transaction \(transactionalId) is still completing; retry")
            case .empty, .completeCommit, .completeAbort:
                clear(&t, state: .ongoing)
                t.startMs = now
            case .ongoing:
                break
            }
            change(&t)
            transactions[transactionalId] = t
            lastUsedMs[transactionalId] = now
            return (.none, "")
        }
    }

    private func clear(_ t: inout Transaction, state: State) {
        t.state = state
        t.partitions = []
        t.groups = []
        t.pendingOffsets = [:]
    }

    /// AddPartitionsToTxn: the partitions join the ongoing transaction (starting it if needed).
    public mutating func addPartitions(
        transactionalId: String, producerId: Int64, epoch: Int16, partitions: [TopicPartition], now: Int64
    ) -> (ErrorCode, String) {
        join(transactionalId, producerId: producerId, epoch: epoch, now: now) { t in t.partitions.formUnion(partitions) }
    }

    /// AddOffsetsToTxn: the group joins the ongoing transaction.
    public mutating func addOffsets(transactionalId: String, producerId: Int64, epoch: Int16, group: String, now: Int64) -> (ErrorCode, String) {
        join(transactionalId, producerId: producerId, epoch: epoch, now: now) { t in t.groups.insert(group) }
    }

    /// TxnOffsetCommit: offsets kept with the transaction until it ends. Needs AddOffsetsToTxn
    /// for the group first. A stale epoch gets INVALID_PRODUCER_EPOCH (as Kafka's group coordinator answers).
    public mutating func txnOffsetCommit(
        transactionalId: String, producerId: Int64, epoch: Int16, group: String, offsets: [TopicPartition: CommittedOffset]
    ) -> (ErrorCode, String) {
        switch validate(transactionalId, producerId: producerId, epoch: epoch) {
        case .failure(let e): return (e.code == .producerFenced ? .invalidProducerEpoch : e.code, e.message)
        case .success(var t):
            guard t.state == .ongoing, t.groups.contains(group) else {
                return (.invalidTxnState, "group \(group) was not added to transaction \(transactionalId) (AddOffsetsToTxn)")
            }
            t.pendingOffsets[group, default: [:]].merge(offsets) { $1 }
            transactions[transactionalId] = t
            return (.none, "")
        }
    }

    // MARK: Produce

    /// A transactional batch from `producerId` at `epoch` to `partition`: nil if the partition is
    /// in that producer's ongoing transaction, else the error code and message.
    public func checkProduce(producerId: Int64, epoch: Int16, partition: TopicPartition) -> (ErrorCode, String)? {
        guard let t = transaction(producerId: producerId) else {
            return (.invalidProducerIdMapping, "producer id \(producerId) has no transactional id")
        }
        guard t.producerEpoch == epoch else {
            return (.invalidProducerEpoch, "producer epoch \(epoch) of \(t.transactionalId) is fenced by epoch \(t.producerEpoch)")
        }
        guard t.state == .ongoing, t.partitions.contains(partition) else {
            return (.invalidTxnState, "partition \(partition) was not added to transaction \(t.transactionalId) (AddPartitionsToTxn)")
        }
        return nil
    }

    // MARK: EndTxn

    /// EndTxn: commit or abort the ongoing transaction.
    public mutating func endTxn(transactionalId: String, producerId: Int64, epoch: Int16, commit: Bool) -> EndResult {
        switch validate(transactionalId, producerId: producerId, epoch: epoch) {
        case .failure(let e): return .error(e.code, e.message)
        case .success(var t):
            switch (t.state, commit) {
            case (.ongoing, _), (.prepareCommit, true), (.prepareAbort, false):
                t.state = commit ? .prepareCommit : .prepareAbort
                transactions[transactionalId] = t
                return .complete(completion(t, commit: commit))
            case (.completeCommit, true), (.completeAbort, false):
                return .alreadyDone
            case (.empty, _):
                return .error(.invalidTxnState, "transaction \(transactionalId) has no ongoing transaction to \(commit ? "commit" : "abort")")
            default:
                return .error(
                    .invalidTxnState, "transaction \(transactionalId) is \(t.state) and cannot be \(commit ? "committed" : "aborted")")
            }
        }
    }

    private func completion(_ t: Transaction, commit: Bool) -> Completion {
        Completion(
            transactionalId: t.transactionalId, producerId: t.producerId, producerEpoch: t.producerEpoch, commit: commit,
            partitions: t.partitions.sorted(), offsets: commit ? t.pendingOffsets : [:])
    }

    /// The markers of a completion were written: the transaction is complete.
    public mutating func completed(_ c: Completion) {
        guard var t = transactions[c.transactionalId], t.producerId == c.producerId else { return }
        guard t.state == .prepareCommit || t.state == .prepareAbort else { return }
        clear(&t, state: c.commit ? .completeCommit : .completeAbort)
        transactions[c.transactionalId] = t
    }

    // MARK: Time

    /// Ongoing transactions open longer than their timeout: each is aborted with its epoch
    /// bumped, so the producer that let it time out is fenced (as Kafka does).
    public mutating func expire(now: Int64) -> [Completion] {
        var out: [Completion] = []
        for (id, var t) in transactions where t.state == .ongoing {
            let (age, overflow) = now.subtractingReportingOverflow(t.startMs)
            guard !overflow, age > Int64(t.timeoutMs) else { continue }
            if t.producerEpoch < Int16.max - 1 { t.producerEpoch += 1 }
            t.state = .prepareAbort
            transactions[id] = t
            out.append(completion(t, commit: false))
        }
        return out.sorted { $0.transactionalId < $1.transactionalId }
    }

    /// Completions left in a prepare state (their markers could not be written, or the broker
    /// stopped while writing them): the broker retries them.
    public func unfinished() -> [Completion] {
        transactions.values.filter { $0.state == .prepareCommit || $0.state == .prepareAbort }
            .map { completion($0, commit: $0.state == .prepareCommit) }.sorted { $0.transactionalId < $1.transactionalId }
    }

    /// Forgets a deleted topic's partitions and offsets in every transaction.
    public mutating func removeTopic(_ topic: String) {
        for (id, var t) in transactions {
            t.partitions = t.partitions.filter { $0.topic != topic }
            for g in t.pendingOffsets.keys { t.pendingOffsets[g] = t.pendingOffsets[g]!.filter { $0.key.topic != topic } }
            transactions[id] = t
        }
    }
}

/// Per partition: the transactions with data in it that have no marker yet (producer id → first
/// offset) and the aborted ones (for read_committed fetches). A pure value.
public struct PartitionTransactions: Sendable, Equatable {
    public struct Aborted: Sendable, Equatable {
        public var producerId: Int64
        public var firstOffset: Int64
        /// The offset of the abort marker.
        public var lastOffset: Int64
    }
    public private(set) var open: [Int64: Int64] = [:]
    /// Ordered by `lastOffset`.
    public private(set) var aborted: [Aborted] = []

    public init() {}

    /// A transactional data batch of `producerId` at `offset`.
    public mutating func data(producerId: Int64, offset: Int64) {
        if open[producerId] == nil { open[producerId] = offset }
    }

    /// A marker of `producerId` at `offset`.
    public mutating func marker(producerId: Int64, commit: Bool, offset: Int64) {
        guard let first = open.removeValue(forKey: producerId) else { return }
        if !commit { aborted.append(Aborted(producerId: producerId, firstOffset: first, lastOffset: offset)) }
    }

    /// The last stable offset: the first offset of the earliest open transaction, else `highWatermark`.
    public func lastStableOffset(highWatermark: Int64) -> Int64 {
        min(open.values.min() ?? highWatermark, highWatermark)
    }

    /// Aborted transactions that overlap offsets `from ..< upTo`. Those whose marker is before
    /// `from` are skipped by binary search (the list is ordered by marker offset), so a consumer near
    /// the end of a partition with many aborts looks at few.
    public func aborted(from: Int64, upTo: Int64) -> [Aborted] {
        var lo = 0
        var hi = aborted.count
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if aborted[mid].lastOffset < from { lo = mid + 1 } else { hi = mid }
        }
        return aborted[lo...].filter { $0.firstOffset < upTo }
    }

    /// Forgets aborted transactions wholly before `logStartOffset` (their segments were deleted).
    public mutating func dropBefore(_ logStartOffset: Int64) {
        if let first = aborted.first, first.lastOffset < logStartOffset {
            aborted.removeAll { $0.lastOffset < logStartOffset }
        }
    }
}
