import KafkaClient

/// What ingestion needs of a producer: queue records with back-pressure, hear their delivery,
/// and flush on the way out. A `KafkaProducer`, or inside `tape up` a producer that appends to the
/// embedded broker in-process.
public protocol RecordProducer: AnyObject, Sendable {
    /// Queues one record, waiting (without blocking a thread) while the queue is full.
    @discardableResult func enqueue(_ message: ProducerMessage) async throws -> UInt64
    /// Queues one record without waiting; throws a `KafkaError` with code `.queueFull` when full.
    @discardableResult func tryEnqueue(_ message: ProducerMessage) throws -> UInt64
    /// Reports of queued records, in batches; ends after `close`.
    var deliveryReports: AsyncStream<[DeliveryReport]> { get }
    /// Records queued and not yet acknowledged.
    var outstanding: Int { get }
    /// Delivers what is queued (waiting at most `timeout`), then ends `deliveryReports`.
    func close(timeout: Duration) async throws
}

extension KafkaProducer: RecordProducer {}
