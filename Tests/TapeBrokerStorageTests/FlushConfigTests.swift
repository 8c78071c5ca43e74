import Foundation
import KafkaProtocol
import NIOConcurrencyHelpers
import XCTest

@testable import TapeBroker

/// Topic configs `flush.messages` and `flush.ms` replace the broker's `--fsync` policy for their
/// topic (Kafka semantics), counted by the logs' own fsync counter, not by timing.
final class FlushConfigTests: StorageTestCase {
    /// A clock the test moves by hand.
    final class ManualClock: Sendable {
        private let now = NIOLockedValueBox<Int64>(1_000_000)
        func advance(_ ms: Int64) { now.withLockedValue { $0 += ms } }
        var read: @Sendable () -> Int64 { { [now] in now.withLockedValue { $0 } } }
    }

    func testFlushMessagesOneSyncsEveryAppendUnderNeverPolicy() async throws {
        let manager = try LogManager(configuration: .init(dataDirectory: temporaryDirectory(), fsyncPolicy: .never, maintenanceIntervalMs: 0))
        try manager.createTopic(name: "fm1", partitions: 1, configs: ["flush.messages": "1"])
        try manager.createTopic(name: "plain", partitions: 1, configs: [:])
        let log = manager.partitionLog(topic: "fm1", partition: 0)!
        let plain = manager.partitionLog(topic: "plain", partition: 0)!
        for i in 0..<5 {
            _ = try await manager.appendDurably(topic: "fm1", partition: 0, batch: makeBatch(records: values(1)))
            XCTAssertFalse(log.needsSync, "append \(i) was acknowledged before its fsync")
            XCTAssertEqual(log.syncCount, i + 1)
            _ = try await manager.appendDurably(topic: "plain", partition: 0, batch: makeBatch(records: values(1)))
        }
        XCTAssertEqual(plain.syncCount, 0, "the broker's --fsync never still applies to topics without flush.*")
        XCTAssertEqual(manager.fsyncCount, 5)
        await manager.shutdown()
    }

    func testConcurrentAppendsWithFlushMessagesOneAreAcknowledgedOnlyOnceDurable() async throws {
        let manager = try LogManager(
            configuration: .init(dataDirectory: temporaryDirectory(), fsyncPolicy: .interval(milliseconds: 60_000), maintenanceIntervalMs: 0))
        try manager.createTopic(name: "c", partitions: 1, configs: ["flush.messages": "1"])
        let log = manager.partitionLog(topic: "c", partition: 0)!
        let batch = makeBatch(records: values(1, size: 100))
        let appends = 200
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<appends {
                group.addTask {
                    let info = try await manager.appendDurably(topic: "c", partition: 0, batch: batch)
                    // Even when another append's fsync covered this one, the ack waits for it to finish.
                    XCTAssertGreaterThan(log.durableEndOffset, info.lastOffset)
                }
            }
            try await group.waitForAll()
        }
        XCTAssertGreaterThan(log.syncCount, 0)
        XCTAssertLessThanOrEqual(log.syncCount, appends, "group commit still shares fsyncs")
        await manager.shutdown()
    }

    func testFlushMessagesCountsRecordsNotBatches() async throws {
        let manager = try LogManager(configuration: .init(dataDirectory: temporaryDirectory(), fsyncPolicy: .never, maintenanceIntervalMs: 0))
        try manager.createTopic(name: "fm3", partitions: 1, configs: ["flush.messages": "3"])
        let log = manager.partitionLog(topic: "fm3", partition: 0)!
        _ = try await manager.appendDurably(topic: "fm3", partition: 0, batch: makeBatch(records: values(1)))
        _ = try await manager.appendDurably(topic: "fm3", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(log.syncCount, 0, "2 of 3 messages: no fsync yet")
        XCTAssertTrue(log.needsSync)
        _ = try await manager.appendDurably(topic: "fm3", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(log.syncCount, 1, "the third message triggers the fsync")
        XCTAssertFalse(log.needsSync)
        _ = try await manager.appendDurably(topic: "fm3", partition: 0, batch: makeBatch(records: values(4)))
        XCTAssertEqual(log.syncCount, 2, "one batch of 4 messages passes flush.messages=3 alone")
        await manager.shutdown()
    }

    func testTopicOverrideReplacesAlwaysPolicyAndAlterConfigsAppliesLive() async throws {
        let manager = try LogManager(configuration: .init(dataDirectory: temporaryDirectory(), fsyncPolicy: .always, maintenanceIntervalMs: 0))
        try manager.createTopic(name: "lazy", partitions: 1, configs: ["flush.messages": "1000"])
        let log = manager.partitionLog(topic: "lazy", partition: 0)!
        for _ in 0..<4 {
            _ = try await manager.appendDurably(topic: "lazy", partition: 0, batch: makeBatch(records: values(1)))
        }
        XCTAssertEqual(log.syncCount, 0, "flush.messages=1000 (flush.ms unset: never) replaces --fsync always for this topic")
        // Back to the broker policy by removing the override: each append fsynced again.
        try manager.setTopicConfigs(name: "lazy", explicit: [:])
        _ = try await manager.appendDurably(topic: "lazy", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(log.syncCount, 1)
        XCTAssertFalse(log.needsSync)
        // And the other way round, live: flush.messages=2.
        try manager.setTopicConfigs(name: "lazy", explicit: ["flush.messages": "2"])
        _ = try await manager.appendDurably(topic: "lazy", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(log.syncCount, 1)
        _ = try await manager.appendDurably(topic: "lazy", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(log.syncCount, 2)
        await manager.shutdown()
    }

    func testFlushMsSyncsOnceTheOldestUnsyncedAppendIsOldEnough() async throws {
        let clock = ManualClock()
        let manager = try LogManager(
            configuration: .init(dataDirectory: temporaryDirectory(), fsyncPolicy: .never, maintenanceIntervalMs: 0), clock: clock.read)
        try manager.createTopic(name: "fms", partitions: 1, configs: ["flush.ms": "600000"])
        let log = manager.partitionLog(topic: "fms", partition: 0)!
        _ = try await manager.appendDurably(topic: "fms", partition: 0, batch: makeBatch(records: values(1)))
        clock.advance(599_999)
        _ = try await manager.appendDurably(topic: "fms", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(log.syncCount, 0, "the oldest unsynced append is 599 999 ms old: not yet")
        clock.advance(1)
        _ = try await manager.appendDurably(topic: "fms", partition: 0, batch: makeBatch(records: values(1)))
        XCTAssertEqual(log.syncCount, 1, "600 000 ms: synced before the acknowledgement")
        XCTAssertFalse(log.needsSync)
        await manager.shutdown()
    }

    func testFlushMsTimerSyncsWithoutFurtherAppends() async throws {
        let manager = try LogManager(configuration: .init(dataDirectory: temporaryDirectory(), fsyncPolicy: .never, maintenanceIntervalMs: 0))
        try manager.createTopic(name: "fmt", partitions: 1, configs: ["flush.ms": "20"])
        let log = manager.partitionLog(topic: "fmt", partition: 0)!
        _ = try await manager.appendDurably(topic: "fmt", partition: 0, batch: makeBatch(records: values(1)))
        var waited = 0
        while log.syncCount == 0 && waited < 1000 {  // up to 10 s on a loaded machine
            try await Task.sleep(nanoseconds: 10_000_000)
            waited += 1
        }
        XCTAssertEqual(log.syncCount, 1, "the flush.ms timer fsynced the lone append")
        XCTAssertFalse(log.needsSync)
        await manager.shutdown()
    }

    func testFlushConfigsAreValidatedAndDescribedWithTheBrokerPolicyAsDefault() async throws {
        XCTAssertNil(LogConfig.problem(key: "flush.ms", value: "12345678"))
        XCTAssertNil(LogConfig.problem(key: "flush.messages", value: "9223372036854775807"))
        for (k, v) in [("flush.ms", "-1"), ("flush.messages", "0"), ("flush.ms", "soon"), ("flush.messages", "99999999999999999999")] {
            let why = LogConfig.problem(key: k, value: v)
            XCTAssertNotNil(why, "\(k)=\(v)")
            XCTAssertTrue(why?.contains("\(k)=\(v)") == true, why ?? "")
        }
        let manager = try LogManager(
            configuration: .init(dataDirectory: temporaryDirectory(), fsyncPolicy: .interval(milliseconds: 250), maintenanceIntervalMs: 0))
        let broker = Broker(configuration: BrokerConfiguration(), topics: manager, committedOffsets: InMemoryCommittedOffsetStore())
        try manager.createTopic(name: "d", partitions: 1, configs: ["flush.messages": "7"])
        let r = await broker.describeConfigs(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "d")]))
        let configs = Dictionary(uniqueKeysWithValues: r.results[0].configs.map { ($0.name, $0) })
        XCTAssertEqual(configs["flush.messages"]?.value, "7")
        XCTAssertEqual(configs["flush.messages"]?.configSource, 1)
        XCTAssertEqual(configs["flush.ms"]?.value, "250", "--fsync interval:250 shown as flush.ms")
        XCTAssertEqual(configs["flush.ms"]?.configSource, 5)
        await manager.shutdown()
    }

    func testDynamicBrokerConfigsAcceptedStoredDescribedAndOthersRefused() async throws {
        let dir = temporaryDirectory()
        var manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0))
        var broker = Broker(configuration: BrokerConfiguration(), topics: manager, committedOffsets: InMemoryCommittedOffsetStore())
        let id = "\(BrokerConfiguration().nodeId)"
        func alter(_ b: Broker, _ name: String, _ configs: [(String, String?)]) async -> AlterConfigsResourceResponse {
            await b.alterConfigs(
                AlterConfigsRequest(resources: [.init(resourceType: 4, resourceName: name, configs: configs.map { .init(name: $0.0, value: $0.1) })])
            ).responses[0]
        }
        let ok = await alter(broker, id, [("sasl.kerberos.min.time.before.relogin", "58000")])
        XCTAssertEqual(ok.errorCode, ErrorCode.none, ok.errorMessage ?? "")
        for (k, v) in [
            ("log.retention.ms", "1000"), ("sasl.kerberos.min.time.before.relogin", "soon"), ("sasl.login.refresh.buffer.seconds", "3601"),
            ("sasl.login.refresh.window.factor", "0.1"),
        ] {
            let bad = await alter(broker, id, [(k, v)])
            XCTAssertEqual(bad.errorCode, .invalidConfig, "\(k)=\(v)")
            XCTAssertTrue(bad.errorMessage?.contains(k) == true, bad.errorMessage ?? "")
        }
        let other = await alter(broker, "", [("sasl.kerberos.min.time.before.relogin", "1")])
        XCTAssertEqual(other.errorCode, .invalidConfig, "cluster-wide defaults are not accepted (Kafka: per-broker configs)")
        // Survives a restart, and is described as DYNAMIC_BROKER_CONFIG.
        await manager.shutdown()
        manager = try LogManager(configuration: .init(dataDirectory: dir, fsyncPolicy: .never, maintenanceIntervalMs: 0))
        broker = Broker(configuration: BrokerConfiguration(), topics: manager, committedOffsets: InMemoryCommittedOffsetStore())
        let r = await broker.describeConfigs(DescribeConfigsRequest(resources: [.init(resourceType: 4, resourceName: id)]))
        let configs = Dictionary(uniqueKeysWithValues: r.results[0].configs.map { ($0.name, $0) })
        XCTAssertEqual(configs["sasl.kerberos.min.time.before.relogin"]?.value, "58000")
        XCTAssertEqual(configs["sasl.kerberos.min.time.before.relogin"]?.configSource, 2)
        XCTAssertEqual(configs["sasl.kerberos.min.time.before.relogin"]?.readOnly, false)
        XCTAssertEqual(configs["sasl.kerberos.kinit.cmd"]?.configSource, 5)
        XCTAssertEqual(configs["broker.id"]?.readOnly, true)
        // AlterConfigs replaces the whole set.
        let cleared = await alter(broker, id, [])
        XCTAssertEqual(cleared.errorCode, ErrorCode.none)
        XCTAssertEqual(manager.dynamicBrokerConfigs(), [:])
        await manager.shutdown()
    }
}
