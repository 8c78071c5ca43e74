import Foundation
import KafkaClient
import TapeServer
import XCTest

/// The KafkaClient library writes no metric name of its own: a producer records its latency under
/// the name and labels its caller gives (`KafkaConfiguration.produceLatencyMetric`), and none
/// without one. Tape passes `tape_produce_latency_seconds{topic}`.
final class ProduceLatencyMetricTests: XCTestCase {
    func testProducerRecordsLatencyUnderTheCallersNameAndNoneWithoutOne() async throws {
        MetricsExporter.bootstrap()
        let cluster = try MockKafkaCluster(brokers: 1)
        try cluster.createTopic("latency.named", partitions: 1)
        try cluster.createTopic("latency.unnamed", partitions: 1)
        func producer(_ metric: ProduceLatencyMetric?) throws -> KafkaProducer {
            var kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
            kafka.produceLatencyMetric = metric
            var configuration = KafkaProducerConfiguration(kafka: kafka)
            configuration.lingerMilliseconds = 1
            configuration.deliveryReports = false
            return try KafkaProducer(configuration: configuration)
        }
        let named = try producer(ProduceLatencyMetric(label: "embedder_produce_latency_seconds", dimensions: [("app", "demo")]))
        let unnamed = try producer(nil)
        // One record in 64 is sampled: 128 records give two samples.
        for i in 0..<128 {
            try named.tryEnqueue(ProducerMessage(topic: "latency.named", key: "k", value: "\(i)"))
            try unnamed.tryEnqueue(ProducerMessage(topic: "latency.unnamed", key: "k", value: "\(i)"))
        }
        try await named.flush(timeout: .seconds(20))
        try await unnamed.flush(timeout: .seconds(20))
        try await named.close()
        try await unnamed.close()

        var bytes: [UInt8] = []
        MetricsExporter.registry.emit(into: &bytes)
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        let count = lines.first { $0.hasPrefix("embedder_produce_latency_seconds_count{") }
        XCTAssertNotNil(count, "the caller's name is used")
        XCTAssertTrue(count?.contains(#"app="demo""#) ?? false, String(count ?? ""))
        XCTAssertTrue(count?.contains(#"topic="latency.named""#) ?? false, String(count ?? ""))
        XCTAssertEqual(count?.split(separator: " ").last, "2", String(count ?? ""))
        XCTAssertFalse(lines.contains { $0.contains("latency.unnamed") }, "no metric without a name")
        XCTAssertFalse(lines.contains { $0.contains("tape_produce_latency_seconds") && $0.contains("latency.") }, "no hard-coded Tape name")
    }
}
