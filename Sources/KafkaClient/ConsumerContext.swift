import Crdkafka
import Foundation
import Logging
import Synchronization

/// Consumer-side callback state.
final class ConsumerContext: ClientContext, @unchecked Sendable {
    private let events: AsyncStream<RebalanceEvent>.Continuation
    /// The application's synchronous rebalance handler (`setRebalanceHandler`).
    let handler = Mutex<(@Sendable (RebalanceEvent) -> Void)?>(nil)

    private func handle(_ event: RebalanceEvent) {
        if let handler = handler.withLock({ $0 }) { handler(event) }
    }

    init(logger: Logger, bootstrapServers: String, events: AsyncStream<RebalanceEvent>.Continuation) {
        self.events = events
        super.init(logger: logger, bootstrapServers: bootstrapServers)
    }

    func rebalance(rk: OpaquePointer, err: rd_kafka_resp_err_t, partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        let items = TopicPartitionList.read(partitions)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            handle(.assigned(items))
            if cooperative {
                if let error = rd_kafka_incremental_assign(rk, partitions) { events.yield(.error(KafkaError(consuming: error, "Cannot assign").message)) }
            } else {
                rd_kafka_assign(rk, partitions)
            }
            logger.info("Partitions assigned", metadata: ["partitions": "\(items.map { "\($0.topic)[\($0.partition)]" }.joined(separator: ","))"])
            events.yield(.assigned(items))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            handle(.revoked(items))
            events.yield(.revoked(items))
            if cooperative {
                if let error = rd_kafka_incremental_unassign(rk, partitions) { events.yield(.error(KafkaError(consuming: error, "Cannot unassign").message)) }
            } else {
                rd_kafka_assign(rk, nil)
            }
            logger.info("Partitions revoked", metadata: ["partitions": "\(items.map { "\($0.topic)[\($0.partition)]" }.joined(separator: ","))"])
        default:
            handle(.revoked(items))
            rd_kafka_assign(rk, nil)
            events.yield(.error(String(cString: rd_kafka_err2str(err))))
        }
    }

    /// A fatal error (for a consumer, FENCED_INSTANCE_ID: a newer member took this one's
    /// `group.instance.id`) ends the assignment without a rebalance callback from librdkafka: the
    /// handler hears it as `.lost`, so that it stops output for every partition it held.
    override func failed(_ message: String) {
        if lostReported.exchange(true, ordering: .acquiringAndReleasing) { return }
        fatalError.withLock { if $0 == nil { $0 = message } }
        hasFatalError.store(true, ordering: .releasing)
        handle(.lost(message))
        events.yield(.lost(message))
    }
    private let lostReported = Atomic<Bool>(false)

    func finish() { events.finish() }
}
