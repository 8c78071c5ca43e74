import NIOConcurrencyHelpers

/// Where the transaction coordinator keeps its state: `TransactionLogStore` (a file in the data
/// directory) in `tape broker`, `InMemoryTransactionStateStore` in unit tests.
public protocol TransactionStateStore: Sendable {
    /// The transactions and the partitions that ever got transactional data, as last saved.
    func load() -> (transactions: [TransactionCoordinator.Transaction], partitions: Set<TopicPartition>)
    /// Records a transaction's state; durable (per the fsync policy) when it returns.
    func save(_ transaction: TransactionCoordinator.Transaction) throws
    /// Records that `partition` takes part in transactions, so its markers are scanned after a
    /// restart to rebuild its last stable offset and aborted transactions.
    func markTransactional(_ partition: TopicPartition) throws
    /// Forgets a deleted topic.
    func removeTopic(_ topic: String)
    /// Forgets an expired transactional id.
    func remove(transactionalId: String)
}

/// Transaction state in memory (lost on restart).
public final class InMemoryTransactionStateStore: TransactionStateStore {
    private let state = NIOLockedValueBox<([String: TransactionCoordinator.Transaction], Set<TopicPartition>)>(([:], []))
    public init() {}

    public func load() -> (transactions: [TransactionCoordinator.Transaction], partitions: Set<TopicPartition>) {
        state.withLockedValue { (Array($0.0.values), $0.1) }
    }

    public func save(_ transaction: TransactionCoordinator.Transaction) throws {
        state.withLockedValue { $0.0[transaction.transactionalId] = transaction }
    }

    public func markTransactional(_ partition: TopicPartition) throws {
        _ = state.withLockedValue { $0.1.insert(partition) }
    }

    public func remove(transactionalId: String) {
        _ = state.withLockedValue { $0.0.removeValue(forKey: transactionalId) }
    }

    public func removeTopic(_ topic: String) {
        state.withLockedValue { s in
            s.1 = s.1.filter { $0.topic != topic }
            for (id, var t) in s.0 {
                t.partitions = t.partitions.filter { $0.topic != topic }
                s.0[id] = t
            }
        }
    }
}
