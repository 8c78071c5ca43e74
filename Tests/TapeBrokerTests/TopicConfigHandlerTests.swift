import KafkaProtocol
import NIOCore
import XCTest

@testable import TapeBroker

/// CreateTopics, AlterConfigs, IncrementalAlterConfigs and DescribeConfigs share one validation;
/// the configs they set are applied to produce (LogAppendTime, compression.type, max.message.bytes).
final class TopicConfigHandlerTests: XCTestCase {
    func makeBroker() -> Broker {
        Broker(configuration: BrokerConfiguration(), topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
    }

    func create(_ b: Broker, _ name: String, _ configs: [String: String?] = [:]) async -> CreateTopicsResponse.Topic {
        await b.createTopics(
            CreateTopicsRequest(
                topics: [.init(name: name, numPartitions: 1, replicationFactor: 1, configs: configs.map { .init(name: $0.key, value: $0.value) })],
                timeoutMs: 1000, validateOnly: false), version: 4
        ).topics[0]
    }

    func describe(_ b: Broker, _ topic: String) async -> [String: DescribeConfigsResponse.Config] {
        let r = await b.describeConfigs(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: topic)]))
        return Dictionary(uniqueKeysWithValues: r.results[0].configs.map { ($0.name, $0) })
    }

    func incremental(_ b: Broker, _ topic: String, _ configs: [(String, Int8, String?)], type: Int8 = 2) async -> AlterConfigsResourceResponse {
        await b.incrementalAlterConfigs(
            IncrementalAlterConfigsRequest(
                resources: [.init(resourceType: type, resourceName: topic, configs: configs.map { .init(name: $0.0, operation: $0.1, value: $0.2) })])
        ).responses[0]
    }

    func testBogusConfigsAreRefusedWithInvalidConfigNamingKeyAndValue() async {
        let b = makeBroker()
        for (key, value) in [
            ("compression.type", "bogus"), ("message.timestamp.type", "bogus"), ("min.cleanable.dirty.ratio", "2"), ("no.such.key", "1"),
            ("unclean.leader.election.enable", "true"),
        ] {
            let r = await create(b, "t-\(key)", [key: value])
            XCTAssertEqual(r.errorCode, .invalidConfig, "\(key)=\(value)")
            XCTAssertTrue(r.errorMessage?.contains("\(key)=\(value)") == true, r.errorMessage ?? "")
        }
        let ok = await create(b, "ok", ["compression.type": "gzip", "message.timestamp.type": "LogAppendTime", "min.cleanable.dirty.ratio": "0.1"])
        XCTAssertEqual(ok.errorCode, ErrorCode.none, ok.errorMessage ?? "")
        let described = await describe(b, "ok")
        XCTAssertEqual(described["compression.type"]?.value, "gzip")
        XCTAssertEqual(described["compression.type"]?.configSource, 1, "DYNAMIC_TOPIC_CONFIG")
        XCTAssertEqual(described["retention.ms"]?.configSource, 5, "DEFAULT_CONFIG")
        XCTAssertEqual(described["min.cleanable.dirty.ratio"]?.value, "0.1")
        XCTAssertEqual(described["delete.retention.ms"]?.value, "86400000")
    }

    func testAlterConfigsReplacesAndIncrementalChangesSingleKeys() async {
        let b = makeBroker()
        _ = await create(b, "t", ["retention.ms": "1000", "cleanup.policy": "compact"])
        // AlterConfigs: the whole set; retention.ms and cleanup.policy revert to defaults.
        let alter = await b.alterConfigs(
            AlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t", configs: [.init(name: "segment.ms", value: "60000")])]))
        XCTAssertEqual(alter.responses[0].errorCode, ErrorCode.none, alter.responses[0].errorMessage ?? "")
        var d = await describe(b, "t")
        XCTAssertEqual(d["segment.ms"]?.value, "60000")
        XCTAssertEqual(d["segment.ms"]?.configSource, 1)
        XCTAssertEqual(d["retention.ms"]?.configSource, 5)
        XCTAssertEqual(d["cleanup.policy"]?.value, "delete")

        let set = await incremental(b, "t", [("retention.ms", 0, "5000"), ("segment.ms", 1, nil), ("cleanup.policy", 2, "compact")])
        XCTAssertEqual(set.errorCode, ErrorCode.none, set.errorMessage ?? "")
        d = await describe(b, "t")
        XCTAssertEqual(d["retention.ms"]?.value, "5000")
        XCTAssertEqual(d["segment.ms"]?.configSource, 5, "DELETE reverts to the default")
        XCTAssertEqual(d["cleanup.policy"]?.value, "delete,compact", "APPEND adds to the default list")
        let subtract = await incremental(b, "t", [("cleanup.policy", 3, "delete")])
        XCTAssertEqual(subtract.errorCode, ErrorCode.none)
        d = await describe(b, "t")
        XCTAssertEqual(d["cleanup.policy"]?.value, "compact")

        // Refusals: all or nothing per resource.
        let bogus = await incremental(b, "t", [("retention.ms", 0, "1"), ("compression.type", 0, "bogus")])
        XCTAssertEqual(bogus.errorCode, .invalidConfig)
        XCTAssertTrue(bogus.errorMessage?.contains("compression.type=bogus") == true, bogus.errorMessage ?? "")
        d = await describe(b, "t")
        XCTAssertEqual(d["retention.ms"]?.value, "5000", "nothing of a refused resource is applied")
        let appendScalar = await incremental(b, "t", [("retention.ms", 2, "1")])
        XCTAssertEqual(appendScalar.errorCode, .invalidConfig)
        let unknownOp = await incremental(b, "t", [("retention.ms", 9, "1")])
        XCTAssertEqual(unknownOp.errorCode, .invalidRequest)
        let duplicate = await incremental(b, "t", [("retention.ms", 0, "1"), ("retention.ms", 0, "2")])
        XCTAssertEqual(duplicate.errorCode, .invalidRequest)
        // Legacy AlterConfigs: the last value of a repeated key wins, as in Apache Kafka.
        let repeated = await b.alterConfigs(
            AlterConfigsRequest(resources: [
                .init(resourceType: 2, resourceName: "t", configs: [.init(name: "retention.ms", value: "1"), .init(name: "retention.ms", value: "7000")])
            ]))
        XCTAssertEqual(repeated.responses[0].errorCode, ErrorCode.none, repeated.responses[0].errorMessage ?? "")
        d = await describe(b, "t")
        XCTAssertEqual(d["retention.ms"]?.value, "7000")
        let missing = await incremental(b, "nope", [("retention.ms", 0, "1")])
        XCTAssertEqual(missing.errorCode, .unknownTopicOrPartition)
        let broker = await incremental(b, "0", [("log.retention.ms", 0, "1")], type: 4)
        XCTAssertEqual(broker.errorCode, .invalidConfig, "not a dynamic broker config Tape stores")
        XCTAssertTrue(broker.errorMessage?.contains("log.retention.ms") == true, broker.errorMessage ?? "")
        let validateOnly = await b.alterConfigs(
            AlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t", configs: [])], validateOnly: true))
        XCTAssertEqual(validateOnly.responses[0].errorCode, ErrorCode.none)
        d = await describe(b, "t")
        XCTAssertEqual(d["retention.ms"]?.value, "7000", "validate_only changes nothing")
    }

    func batch(_ n: Int, timestamp: Int64 = 1_000) -> ByteBuffer {
        RecordBatchBuilder.build(
            records: (0..<n).map { Record(timestampDelta: Int64($0), offsetDelta: Int32($0), key: Array("k\($0)".utf8), value: Array("value-\($0)".utf8)) },
            baseTimestamp: timestamp)
    }

    func produce(_ b: Broker, _ topic: String, _ records: ByteBuffer) async -> ProduceResponse.PartitionResponse {
        await b.produce(ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: topic, partitions: [.init(index: 0, records: records)])]))
            .topics[0].partitions[0]
    }

    func storedHeader(_ b: Broker, _ topic: String) async throws -> RecordBatchHeader {
        let fetched = await b.fetch(
            FetchRequest(
                maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20,
                topics: [.init(topic: topic, partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 1 << 20)])]))
        return try RecordBatchHeader.peek(try XCTUnwrap(fetched.topics[0].partitions[0].records))
    }

    func testProduceAppliesLogAppendTimeCompressionAndMaxMessageBytes() async throws {
        let b = makeBroker()
        _ = await create(b, "stamped", ["message.timestamp.type": "LogAppendTime"])
        let stamped = await produce(b, "stamped", batch(3))
        XCTAssertEqual(stamped.errorCode, ErrorCode.none)
        XCTAssertGreaterThan(stamped.logAppendTimeMs, 1_000_000_000_000, "the broker's append time is returned")
        let sh = try await storedHeader(b, "stamped")
        XCTAssertEqual(sh.attributes & 0x08, 0x08)
        XCTAssertEqual(sh.maxTimestamp, stamped.logAppendTimeMs)

        _ = await create(b, "zipped", ["compression.type": "zstd"])
        let zipped = await produce(b, "zipped", batch(3))
        XCTAssertEqual(zipped.errorCode, ErrorCode.none)
        XCTAssertEqual(zipped.logAppendTimeMs, -1)
        let zh = try await storedHeader(b, "zipped")
        XCTAssertEqual(zh.compression, 4, "stored as zstd")

        _ = await create(b, "small", ["max.message.bytes": "100"])
        let big = await produce(b, "small", batch(5))
        XCTAssertEqual(big.errorCode, .messageTooLarge)

        // Changing compression.type takes effect on the next produce.
        let change = await incremental(b, "zipped", [("compression.type", 0, "uncompressed")])
        XCTAssertEqual(change.errorCode, ErrorCode.none)
        let plain = await produce(b, "zipped", batch(2))
        XCTAssertEqual(plain.baseOffset, 3)
    }
}

/// Kafka's InitialDelayedJoin: the first generation waits the delay, each new member restarts it,
/// and the waits together stop at the rebalance timeout.
final class InitialRebalanceDelayTests: XCTestCase {
    func join(_ c: inout GroupCoordinator, client: String, rebalanceTimeoutMs: Int32 = 30_000, now: Int64) -> GroupCoordinator.RequestID {
        let r = JoinGroupRequest(
            groupId: "g", sessionTimeoutMs: 60_000, rebalanceTimeoutMs: rebalanceTimeoutMs, memberId: "", groupInstanceId: nil,
            protocolType: "consumer", protocols: [.init(name: "range", metadata: [])])
        let (id, actions) = c.join(r, version: 3, clientId: client, clientHost: "/127.0.0.1", now: now)
        XCTAssertTrue(actions.isEmpty, "\(client) waits")
        return id
    }

    func answered(_ actions: [GroupCoordinator.Action]) -> [GroupCoordinator.RequestID: JoinGroupResponse] {
        var out: [GroupCoordinator.RequestID: JoinGroupResponse] = [:]
        for case .respondJoin(let id, let r) in actions { out[id] = r }
        return out
    }

    func testEachNewMemberExtendsTheDelay() {
        var settings = ConsumerGroup.Settings()
        settings.initialRebalanceDelayMs = 3_000
        var c = GroupCoordinator(settings: settings)
        let a = join(&c, client: "a", now: 0)
        XCTAssertTrue(c.tick(now: 2_000).isEmpty)
        let bID = join(&c, client: "b", now: 2_000)
        XCTAssertTrue(c.tick(now: 3_000).isEmpty, "b restarted the wait")
        XCTAssertTrue(c.tick(now: 4_999).isEmpty)
        let done = answered(c.tick(now: 5_000))
        XCTAssertEqual(Set(done.keys), [a, bID], "one generation with both members")
        XCTAssertEqual(done[a]?.generationId, 1)
        XCTAssertEqual(done.values.map(\.members.count).max(), 2, "the leader gets both members")
    }

    func testTheExtensionsStopAtTheRebalanceTimeout() {
        var settings = ConsumerGroup.Settings()
        settings.initialRebalanceDelayMs = 10_000
        var c = GroupCoordinator(settings: settings)
        var ids: [GroupCoordinator.RequestID] = []
        ids.append(join(&c, client: "a", now: 0))  // waits until 10 000, 20 000 left
        ids.append(join(&c, client: "b", now: 9_000))  // until 19 000, 10 000 left
        ids.append(join(&c, client: "c", now: 18_000))  // until 28 000, nothing left
        ids.append(join(&c, client: "d", now: 27_000))  // no more extension
        XCTAssertTrue(c.tick(now: 27_999).isEmpty)
        XCTAssertEqual(Set(answered(c.tick(now: 28_000)).keys), Set(ids))
    }

    func testNoDelayFormsTheGroupAtOnce() {
        var c = GroupCoordinator()
        let r = JoinGroupRequest(
            groupId: "g", sessionTimeoutMs: 60_000, rebalanceTimeoutMs: 30_000, memberId: "", groupInstanceId: nil, protocolType: "consumer",
            protocols: [.init(name: "range", metadata: [])])
        let (id, actions) = c.join(r, version: 3, clientId: "a", clientHost: "/127.0.0.1", now: 0)
        XCTAssertEqual(answered(actions)[id]?.generationId, 1)
    }
}
