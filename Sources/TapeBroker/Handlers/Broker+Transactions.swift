import Foundation
import KafkaProtocol
import Logging
import NIOCore

/// Transactions (KIP-98): FindCoordinator for transactional ids, InitProducerId with a
/// transactional id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn, the
/// markers, and per partition the last stable offset and aborted transactions for fetches.
///
/// Durability: the coordinator's state is saved (`TransactionStateStore`) before a transaction
/// is prepared and after it completes; markers are made durable (per the fsync policy) before the
/// transaction is recorded as complete. After a restart, a transaction left in a prepare state is
/// completed again, and a partition's open and aborted transactions are rebuilt by scanning its
/// log once (batch headers plus control records) at first use; only partitions that ever took
/// part in a transaction are scanned. Transactional data in a partition whose transaction the
/// coordinator no longer has open (it was completed but its marker did not reach the disk before
/// a crash, or its coordinator state was lost) is aborted with a marker during that scan.
extension Broker {
    // MARK: FindCoordinator

    func findCoordinator(_ r: FindCoordinatorRequest) -> FindCoordinatorResponse {
        // 0 = group, 1 = transaction: this node coordinates both.
        guard r.keyType == 0 || r.keyType == 1 else {
            return FindCoordinatorResponse(
                errorCode: .invalidRequest, errorMessage: "unknown coordinator key type \(r.keyType) (0 = group, 1 = transaction)", nodeId: -1, host: "",
                port: -1)
        }
        return FindCoordinatorResponse(errorCode: .none, nodeId: configuration.nodeId, host: advertisedHost, port: Int32(advertisedPort))
    }

    // MARK: InitProducerId

    /// InitProducerId with a transactional id (the caller handles the idempotent-only case).
    func initTransactionalProducerId(_ transactionalId: String, timeoutMs: Int32, current: (Int64, Int16)? = nil, version: Int16 = 1)
        -> InitProducerIdResponse
    {
        ensureTransactionsRecovered()
        let now = clock.nowMs()
        let result = transactions.initProducerId(transactionalId: transactionalId, timeoutMs: timeoutMs, now: now, current: current) { takeProducerId() }
        switch result {
        case .error(let code, let message):
            logger.info("InitProducerId refused: \(message)", metadata: ["transactionalId": "\(transactionalId)", "error": "\(code)"])
            // PRODUCER_FENCED exists from InitProducerId v4.
            let answer = code == .producerFenced && version < 4 ? ErrorCode.invalidProducerEpoch : code
            return InitProducerIdResponse(errorCode: answer, producerId: -1, producerEpoch: -1)
        case .ok(let pid, let epoch, let abort):
            var producerId = pid
            var producerEpoch = epoch
            if let abort {
                logger.info(
                    "InitProducerId fences the previous producer and aborts its ongoing transaction",
                    metadata: ["transactionalId": "\(transactionalId)", "producerId": "\(pid)", "epoch": "\(epoch)"])
                saveTransaction(transactionalId)
                if let code = writeMarkers(abort) {
                    return InitProducerIdResponse(errorCode: code == .kafkaStorageError ? .coordinatorNotAvailable : code, producerId: -1, producerEpoch: -1)
                }
                transactions.completed(abort)
                if let next = transactions.initAfterAbort(transactionalId: transactionalId, newProducerId: { takeProducerId() }) {
                    (producerId, producerEpoch) = next
                }
            }
            guard saveTransaction(transactionalId) else {
                return InitProducerIdResponse(errorCode: .coordinatorNotAvailable, producerId: -1, producerEpoch: -1)
            }
            producers.issued(producerId: producerId, now: now)
            logger.debug("InitProducerId", metadata: ["producerId": "\(producerId)", "epoch": "\(producerEpoch)", "transactionalId": "\(transactionalId)"])
            return InitProducerIdResponse(errorCode: .none, producerId: producerId, producerEpoch: producerEpoch)
        }
    }

    func takeProducerId() -> Int64 {
        let id = nextProducerId
        nextProducerId += 1
        return id
    }

    /// PRODUCER_FENCED exists from v2 of AddPartitionsToTxn, AddOffsetsToTxn and EndTxn; older
    /// versions get INVALID_PRODUCER_EPOCH, as Kafka answers them.
    static func fencedCode(_ code: ErrorCode, version: Int16) -> ErrorCode {
        code == .producerFenced && version < 2 ? .invalidProducerEpoch : code
    }

    /// Saves the coordinator's state of `transactionalId`; false (logged) if it could not be stored.
    @discardableResult
    func saveTransaction(_ transactionalId: String) -> Bool {
        guard let t = transactions.transaction(transactionalId) else { return true }
        do {
            try transactionStore.save(t)
            return true
        } catch {
            logger.error("could not store the state of transaction \(transactionalId): \(error)")
            return false
        }
    }

    // MARK: AddPartitionsToTxn / AddOffsetsToTxn / TxnOffsetCommit

    func addPartitionsToTxn(_ r: AddPartitionsToTxnRequest, version: Int16) -> AddPartitionsToTxnResponse {
        ensureTransactionsRecovered()
        var unknown: Set<TopicPartition> = []
        var wanted: [TopicPartition] = []
        for t in r.topics {
            let logs = topics.partitionLogs(of: t.name)
            for p in t.partitions {
                let tp = TopicPartition(t.name, p)
                if let logs, p >= 0, Int(p) < logs.count { wanted.append(tp) } else { unknown.insert(tp) }
            }
        }
        func answer(_ code: (TopicPartition) -> ErrorCode) -> AddPartitionsToTxnResponse {
            AddPartitionsToTxnResponse(
                results: r.topics.map { t in
                    .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0, errorCode: code(TopicPartition(t.name, $0))) })
                })
        }
        if !unknown.isEmpty {
            logger.info("AddPartitionsToTxn refused: unknown partitions \(unknown.sorted())", metadata: ["transactionalId": "\(r.transactionalId)"])
            return answer { unknown.contains($0) ? .unknownTopicOrPartition : .operationNotAttempted }
        }
        // Partitions that join a transaction for the first time are recorded before any
        // transactional data can reach them, so a restart knows to rebuild their state.
        for tp in wanted where !transactionalPartitions.contains(tp) {
            guard let log = topics.partitionLogs(of: tp.topic)?[safe: Int(tp.partition)] else { continue }
            _ = transactionState(tp, log)
            do {
                try transactionStore.markTransactional(tp)
                transactionalPartitions.insert(tp)
            } catch {
                logger.error("could not record \(tp) as transactional: \(error)")
                return answer { _ in .coordinatorNotAvailable }
            }
        }
        let (code, message) = transactions.addPartitions(
            transactionalId: r.transactionalId, producerId: r.producerId, epoch: r.producerEpoch, partitions: wanted, now: clock.nowMs())
        if code != .none {
            logger.info("AddPartitionsToTxn refused: \(message)", metadata: ["transactionalId": "\(r.transactionalId)", "error": "\(code)"])
            let mapped = Self.fencedCode(code, version: version)
            return answer { _ in mapped }
        }
        guard saveTransaction(r.transactionalId) else { return answer { _ in .coordinatorNotAvailable } }
        return answer { _ in .none }
    }

    func addOffsetsToTxn(_ r: AddOffsetsToTxnRequest, version: Int16) -> TxnErrorResponse {
        ensureTransactionsRecovered()
        guard !r.groupId.isEmpty else { return TxnErrorResponse(errorCode: .invalidGroupId) }
        let (code, message) = transactions.addOffsets(
            transactionalId: r.transactionalId, producerId: r.producerId, epoch: r.producerEpoch, group: r.groupId, now: clock.nowMs())
        if code != .none {
            logger.info("AddOffsetsToTxn refused: \(message)", metadata: ["transactionalId": "\(r.transactionalId)", "error": "\(code)"])
            return TxnErrorResponse(errorCode: Self.fencedCode(code, version: version))
        }
        guard saveTransaction(r.transactionalId) else { return TxnErrorResponse(errorCode: .coordinatorNotAvailable) }
        return TxnErrorResponse(errorCode: .none)
    }

    func txnOffsetCommit(_ r: TxnOffsetCommitRequest, version: Int16) -> TxnOffsetCommitResponse {
        ensureTransactionsRecovered()
        func answer(_ code: (String, TxnOffsetCommitRequest.Partition) -> ErrorCode) -> TxnOffsetCommitResponse {
            TxnOffsetCommitResponse(
                topics: r.topics.map { t in
                    .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: code(t.name, $0)) })
                })
        }
        // KIP-447: a v3 request that names a member is checked against the group's generation.
        if version >= 3 && (r.generationId >= 0 || !r.memberId.isEmpty || r.groupInstanceId != nil) {
            let check = OffsetCommitRequest(
                groupId: r.groupId, generationId: r.generationId, memberId: r.memberId, groupInstanceId: r.groupInstanceId, topics: [])
            let code = coordinator.validateCommit(check, now: clock.nowMs())
            if code != .none {
                logger.info("TxnOffsetCommit refused by the group", metadata: ["group": "\(r.groupId)", "member": "\(r.memberId)", "error": "\(code)"])
                return answer { _, _ in code }
            }
        }
        var offsets: [TopicPartition: CommittedOffset] = [:]
        var invalid: [TopicPartition: ErrorCode] = [:]
        for t in r.topics {
            let logs = topics.partitionLogs(of: t.name)
            for p in t.partitions {
                let tp = TopicPartition(t.name, p.partitionIndex)
                guard let logs, p.partitionIndex >= 0, Int(p.partitionIndex) < logs.count else {
                    invalid[tp] = .unknownTopicOrPartition
                    continue
                }
                if let m = p.committedMetadata, m.utf8.count > configuration.offsetMetadataMaxBytes {
                    invalid[tp] = .offsetMetadataTooLarge
                    continue
                }
                offsets[tp] = CommittedOffset(offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch, metadata: p.committedMetadata)
            }
        }
        let (code, message) = transactions.txnOffsetCommit(
            transactionalId: r.transactionalId, producerId: r.producerId, epoch: r.producerEpoch, group: r.groupId, offsets: offsets)
        if code != .none {
            logger.info("TxnOffsetCommit refused: \(message)", metadata: ["transactionalId": "\(r.transactionalId)", "error": "\(code)"])
            return answer { _, _ in code }
        }
        if !offsets.isEmpty && !saveTransaction(r.transactionalId) { return answer { _, _ in .coordinatorNotAvailable } }
        return answer { t, p in invalid[TopicPartition(t, p.partitionIndex)] ?? .none }
    }

    // MARK: EndTxn

    func endTxn(_ r: EndTxnRequest, version: Int16) async -> TxnErrorResponse {
        ensureTransactionsRecovered()
        switch transactions.endTxn(transactionalId: r.transactionalId, producerId: r.producerId, epoch: r.producerEpoch, commit: r.committed) {
        case .error(let code, let message):
            logger.info("EndTxn refused: \(message)", metadata: ["transactionalId": "\(r.transactionalId)", "error": "\(code)"])
            return TxnErrorResponse(errorCode: Self.fencedCode(code, version: version))
        case .alreadyDone:
            return TxnErrorResponse(errorCode: .none)
        case .complete(let c):
            guard saveTransaction(r.transactionalId) else { return TxnErrorResponse(errorCode: .coordinatorNotAvailable) }
            return TxnErrorResponse(errorCode: await complete(c))
        }
    }

    /// Ends a prepared transaction: markers, pending offsets on commit, then the complete state.
    func complete(_ c: TransactionCoordinator.Completion) async -> ErrorCode {
        // Retriable for the client: a retried EndTxn (or the next tick) writes the markers again.
        if writeMarkers(c) != nil { return .coordinatorNotAvailable }
        for (group, offsets) in c.offsets.sorted(by: { $0.key < $1.key }) where !offsets.isEmpty {
            do {
                try await committedOffsets.commit(group: group, offsets: offsets)
            } catch {
                logger.error("could not store the offsets transaction \(c.transactionalId) committed for group \(group): \(error)")
                return .coordinatorNotAvailable
            }
        }
        transactions.completed(c)
        saveTransaction(c.transactionalId)
        logger.debug(
            "transaction \(c.commit ? "committed" : "aborted")",
            metadata: ["transactionalId": "\(c.transactionalId)", "producerId": "\(c.producerId)", "partitions": "\(c.partitions.count)"])
        return .none
    }

    /// Appends the marker of `c` to each of its partitions and makes them durable (per the fsync
    /// policy, synchronously); nil when done, else the error code (the transaction stays prepared
    /// and a retry writes the markers again). Partitions of deleted topics are skipped.
    func writeMarkers(_ c: TransactionCoordinator.Completion) -> ErrorCode? {
        var written: [any PartitionLog] = []
        for tp in c.partitions {
            guard let log = topics.partitionLogs(of: tp.topic)?[safe: Int(tp.partition)] else { continue }
            if let code = appendMarker(tp, log, producerId: c.producerId, epoch: c.producerEpoch, commit: c.commit) { return code }
            written.append(log)
        }
        for log in written where !topics.durableWithoutWaiting(log) {
            do { try log.sync() } catch {
                logger.error("could not make the transaction marker in \(log.topic)-\(log.partition) durable: \(error)")
                return .kafkaStorageError
            }
        }
        return nil
    }

    private func appendMarker(_ tp: TopicPartition, _ log: any PartitionLog, producerId: Int64, epoch: Int16, commit: Bool) -> ErrorCode? {
        var state = transactionState(tp, log)
        let batch = ControlBatch.marker(producerId: producerId, producerEpoch: epoch, commit: commit, timestamp: Int64(Date().timeIntervalSince1970 * 1000))
        do {
            let info = try batch.withUnsafeReadableBytes { try log.append(batchBytes: $0) }
            state.marker(producerId: producerId, commit: commit, offset: info.baseOffset)
            partitionTransactions[tp] = state
            wakeFetchers(tp, appended: batch.readableBytes)
            return nil
        } catch {
            logger.error("could not write the transaction marker to \(tp): \(error)")
            return .kafkaStorageError
        }
    }

    // MARK: Produce

    /// For each transactional batch: nil if its partition is in its producer's ongoing
    /// transaction, else the error. Clients may not write control batches.
    func checkTransactionalBatch(_ header: RecordBatchHeader, partition: TopicPartition) -> (ErrorCode, String)? {
        if header.isControl { return (.invalidRecord, "clients may not write control batches") }
        guard header.isTransactional else { return nil }
        ensureTransactionsRecovered()
        return transactions.checkProduce(producerId: header.producerId, epoch: header.producerEpoch, partition: partition)
    }

    /// A transactional batch was appended at `offset`.
    func recordTransactionalBatch(_ header: RecordBatchHeader, partition tp: TopicPartition, log: any PartitionLog, offset: Int64) {
        guard header.isTransactional else { return }
        var state = transactionState(tp, log)
        state.data(producerId: header.producerId, offset: offset)
        partitionTransactions[tp] = state
    }

    // MARK: Partition state

    /// The open and aborted transactions of `tp`, rebuilt from the log at first use if the
    /// partition ever took part in a transaction.
    func transactionState(_ tp: TopicPartition, _ log: any PartitionLog) -> PartitionTransactions {
        if var state = partitionTransactions[tp] {
            // The common case on every fetch: a partition that never had transactional data.
            if state.open.isEmpty && state.aborted.isEmpty { return state }
            state.dropBefore(log.logStartOffset)
            partitionTransactions[tp] = state
            return state
        }
        var state = PartitionTransactions()
        partitionTransactions[tp] = state
        guard transactionalPartitions.contains(tp) else { return state }
        ensureTransactionsRecovered()
        state = scanTransactions(log)
        partitionTransactions[tp] = state
        // Data of transactions the coordinator does not have open here can never be completed: abort it.
        for (pid, _) in state.open.sorted(by: { $0.value < $1.value }) {
            if let t = transactions.transaction(producerId: pid), t.partitions.contains(tp),
                [.ongoing, .prepareCommit, .prepareAbort].contains(t.state)
            {
                continue
            }
            let epoch = transactions.transaction(producerId: pid)?.producerEpoch ?? 0
            logger.warning("aborting transactional data without an open transaction", metadata: ["partition": "\(tp)", "producerId": "\(pid)"])
            _ = appendMarker(tp, log, producerId: pid, epoch: epoch, commit: false)
            if !topics.durableWithoutWaiting(log) { try? log.sync() }
        }
        return partitionTransactions[tp] ?? state
    }

    /// Reads every batch of `log` once: transactional data opens a transaction, a marker ends it.
    func scanTransactions(_ log: any PartitionLog) -> PartitionTransactions {
        var state = PartitionTransactions()
        var offset = log.logStartOffset
        let end = log.logEndOffset
        var batches = 0
        while offset < end {
            var rest = ByteBuffer()
            guard let read = try? log.read(from: offset, maxBytes: 8 << 20, appendingTo: &rest), read.bytes > 0 else { break }
            var next = offset
            while let header = try? RecordBatchHeader.peek(rest), header.totalSize >= RecordBatchHeader.size, header.totalSize <= rest.readableBytes {
                batches += 1
                if header.isControl {
                    if let commit = ControlBatch.isCommit(rest.getSlice(at: rest.readerIndex, length: header.totalSize) ?? ByteBuffer()) {
                        state.marker(producerId: header.producerId, commit: commit, offset: header.baseOffset)
                    }
                } else if header.isTransactional && header.producerId >= 0 {
                    state.data(producerId: header.producerId, offset: header.baseOffset)
                }
                // Numbers from the file: a corrupt header ends the scan instead of trapping.
                let (last, overflow) = header.baseOffset.addingReportingOverflow(Int64(header.lastOffsetDelta))
                guard !overflow, last < Int64.max else { break }
                next = last + 1
                rest.moveReaderIndex(forwardBy: header.totalSize)
            }
            if next <= offset { break }
            offset = next
        }
        logger.info(
            "rebuilt transaction state from the log",
            metadata: [
                "partition": "\(log.topic)-\(log.partition)", "batches": "\(batches)", "open": "\(state.open.count)", "aborted": "\(state.aborted.count)",
            ])
        return state
    }

    /// Once per start: transactions the previous run left prepared are completed.
    func ensureTransactionsRecovered() {
        guard !transactionsRecovered else { return }
        transactionsRecovered = true
        for c in transactions.unfinished() {
            logger.info("completing a transaction prepared before the restart", metadata: ["transactionalId": "\(c.transactionalId)", "commit": "\(c.commit)"])
            guard writeMarkers(c) == nil else { continue }
            if c.commit && !c.offsets.isEmpty {
                // Offsets commit asynchronously; the state completes once they are stored.
                Task { _ = await self.finishRecovered(c) }
            } else {
                transactions.completed(c)
                saveTransaction(c.transactionalId)
            }
        }
    }

    private func finishRecovered(_ c: TransactionCoordinator.Completion) async -> Bool {
        for (group, offsets) in c.offsets where !offsets.isEmpty {
            guard (try? await committedOffsets.commit(group: group, offsets: offsets)) != nil else { return false }
        }
        transactions.completed(c)
        saveTransaction(c.transactionalId)
        return true
    }

    // MARK: Time

    /// How often `tick` looks for transactions past their timeout (Kafka checks every 10 s).
    static let transactionTimeoutCheckIntervalMs: Int64 = 1000

    /// Aborts transactions open longer than their timeout (bumping the epoch fences their producer).
    func tickTransactions(now: Int64) {
        ensureTransactionsRecovered()
        guard now >= nextTransactionTimeoutCheckMs else { return }
        nextTransactionTimeoutCheckMs = now + Self.transactionTimeoutCheckIntervalMs
        // Transactions whose markers could not be written (a full or failing disk) are retried.
        for c in transactions.unfinished() where c.offsets.isEmpty {
            guard writeMarkers(c) == nil else { continue }
            logger.info("completed a transaction whose markers failed before", metadata: ["transactionalId": "\(c.transactionalId)"])
            transactions.completed(c)
            saveTransaction(c.transactionalId)
        }
        for c in transactions.expire(now: now) {
            logger.info(
                "aborting a transaction open longer than its timeout", metadata: ["transactionalId": "\(c.transactionalId)", "producerId": "\(c.producerId)"])
            saveTransaction(c.transactionalId)
            guard writeMarkers(c) == nil else { continue }
            transactions.completed(c)
            saveTransaction(c.transactionalId)
        }
    }

    /// Forgets transactional ids idle past `transactionalIdExpirationMs`, and the least recently
    /// used beyond `maxTransactionalIds`.
    func expireTransactionalIds(now: Int64) {
        let dropped = transactions.expireIdle(
            now: now, expirationMs: configuration.transactionalIdExpirationMs, maxIds: configuration.maxTransactionalIds)
        for id in dropped { transactionStore.remove(transactionalId: id) }
        if !dropped.isEmpty { logger.info("forgot idle transactional ids", metadata: ["count": "\(dropped.count)"]) }
    }

    /// A deleted topic leaves the transactions.
    func removeTopicFromTransactions(_ topic: String) {
        transactions.removeTopic(topic)
        transactionStore.removeTopic(topic)
        transactionalPartitions = transactionalPartitions.filter { $0.topic != topic }
        partitionTransactions = partitionTransactions.filter { $0.key.topic != topic }
    }
}
