import Crdkafka

/// A consumer group's identity as a transaction's offsets are committed under it (KIP-447): group
/// id, and for a consumer's own metadata its generation, member id and instance id, which the
/// coordinator checks, so a member that lost its partitions (a zombie) cannot commit.
public final class ConsumerGroupMetadata: @unchecked Sendable {
    let pointer: OpaquePointer

    init(pointer: OpaquePointer) { self.pointer = pointer }

    /// Metadata naming only a group: offsets committed under it are not checked against a member.
    /// For groups without members (Tape's replay-offset group).
    public convenience init(groupID: String) throws {
        guard let p = rd_kafka_consumer_group_metadata_new(groupID) else {
            throw KafkaError(code: .invalidArgument, message: "Cannot make group metadata for '\(groupID)'")
        }
        self.init(pointer: p)
    }

    deinit { rd_kafka_consumer_group_metadata_destroy(pointer) }
}

extension KafkaConsumer {
    /// This member's group metadata (generation and member id as of now), for
    /// `KafkaProducer.sendOffsetsToTransaction`. nil when the consumer has no group.
    public func groupMetadata() -> ConsumerGroupMetadata? {
        rd_kafka_consumer_group_metadata(rk).map(ConsumerGroupMetadata.init(pointer:))
    }
}

/// Kafka transactions (KIP-98) on a producer made with `KafkaProducerConfiguration.transactionalID`.
///
/// `initTransactions` once, then per transaction `beginTransaction`, records, optionally
/// `sendOffsetsToTransaction`, and `commitTransaction` — or `abortTransaction`. A failure with
/// `requiresAbort` leaves the producer usable after an abort; one with `isFatal` (fenced by a newer
/// producer with the same transactional id) means this producer must be closed. The calls block a
/// thread of their own (librdkafka's API is synchronous), never Swift's cooperative pool.
extension KafkaProducer {
    /// Registers the transactional id with its coordinator, fencing older producers with the same
    /// id and aborting a transaction they left open. Call once, before the first transaction.
    public func initTransactions(timeout: Duration = .seconds(30)) async throws {
        try await Blocking.run {
            if let error = rd_kafka_init_transactions(self.rk, timeout.librdkafkaMilliseconds) {
                throw KafkaError(consuming: error, "Cannot initialize transactions")
            }
        }
    }

    /// Starts a transaction: every record produced from now until the commit or abort belongs to it.
    public func beginTransaction() throws {
        if let error = rd_kafka_begin_transaction(rk) { throw KafkaError(consuming: error, "Cannot begin a transaction") }
    }

    /// Adds consumer offsets (next offsets to read) to the transaction: they are committed for the
    /// group exactly when the transaction commits. With a consumer's own `groupMetadata()`, the
    /// coordinator refuses them (and the transaction must abort) if the member is no longer current.
    public func sendOffsetsToTransaction(_ offsets: [TopicPartitionOffset], group: ConsumerGroupMetadata, timeout: Duration = .seconds(30)) async throws {
        try await Blocking.run { try self.sendOffsetsToTransactionBlocking(offsets, group: group, timeout: timeout) }
    }

    /// Like `sendOffsetsToTransaction`, blocking the calling thread (for callers holding a lock).
    public func sendOffsetsToTransactionBlocking(_ offsets: [TopicPartitionOffset], group: ConsumerGroupMetadata, timeout: Duration = .seconds(30)) throws {
        guard !offsets.isEmpty else { return }
        let list = TopicPartitionList.make(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_send_offsets_to_transaction(rk, list, group.pointer, timeout.librdkafkaMilliseconds) {
            throw KafkaError(consuming: error, "Cannot add offsets to the transaction")
        }
    }

    /// Flushes the transaction's records and commits it: its records become visible to
    /// read_committed consumers and its offsets are committed, all or nothing.
    public func commitTransaction(timeout: Duration = .seconds(60)) async throws {
        try await Blocking.run { try self.commitTransactionBlocking(timeout: timeout) }
    }

    /// Like `commitTransaction`, blocking the calling thread.
    public func commitTransactionBlocking(timeout: Duration = .seconds(60)) throws {
        if let error = rd_kafka_commit_transaction(rk, timeout.librdkafkaMilliseconds) {
            throw KafkaError(consuming: error, "Cannot commit the transaction")
        }
    }

    /// Aborts the transaction: its records are never shown to read_committed consumers and its
    /// offsets are not committed. Records still queued are purged.
    public func abortTransaction(timeout: Duration = .seconds(60)) async throws {
        try await Blocking.run { try self.abortTransactionBlocking(timeout: timeout) }
    }

    /// Like `abortTransaction`, blocking the calling thread.
    public func abortTransactionBlocking(timeout: Duration = .seconds(60)) throws {
        if let error = rd_kafka_abort_transaction(rk, timeout.librdkafkaMilliseconds) {
            throw KafkaError(consuming: error, "Cannot abort the transaction")
        }
    }
}
