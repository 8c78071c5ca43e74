import Foundation
import KafkaProtocol
import Logging
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

/// Seeded random *sequences* of well-formed requests whose numbers are chosen to hurt (offsets,
/// timestamps, sizes and counts at the edges of their types), through the request handler onto
/// the durable store; then a restart on the same directory. A trap anywhere fails the run (the
/// test process dies); afterwards the broker must still start, answer and keep acknowledged data.
final class RequestSequenceFuzzTests: XCTestCase {
    typealias Rng = SplitMix64

    static let int64Edges: [Int64] = [.min, .min + 1, -3, -2, -1, 0, 1, 2, 1_000, 1_700_000_000_000, .max - 1_000, .max - 1, .max]
    static let int32Edges: [Int32] = [.min, -1, 0, 1, 2, 3, 1_000, 1 << 20, .max - 1, .max]

    func int64(_ rng: inout Rng) -> Int64 { rng.chance(0.7) ? rng.pick(Self.int64Edges) : Int64.random(in: .min ... .max, using: &rng) }
    func int32(_ rng: inout Rng) -> Int32 { rng.chance(0.7) ? rng.pick(Self.int32Edges) : Int32.random(in: .min ... .max, using: &rng) }

    let topicNames = ["a", "b", "a.b", "a_b", String(repeating: "x", count: 249), String(repeating: "y", count: 246), "c-1"]

    func randomRequest(_ rng: inout Rng) -> KafkaRequestBody {
        let topic = rng.pick(topicNames)
        switch Int.random(in: 0..<16, using: &rng) {
        case 0, 1, 2:
            let count = Int.random(in: 1...4, using: &rng)
            let records = (0..<count).map { i in
                Record(
                    timestampDelta: rng.chance(0.5) ? Int64(i) : int64(&rng), offsetDelta: rng.chance(0.9) ? Int32(i) : int32(&rng),
                    key: rng.chance(0.5) ? [1, 2] : nil,
                    value: [UInt8](repeating: 0x61, count: Int.random(in: 0...300, using: &rng)))
            }
            let pid: Int64 = rng.chance(0.5) ? -1 : rng.pick([0, 1, 7, .max])
            let batch = RecordBatchBuilder.build(
                records: records, baseTimestamp: rng.chance(0.5) ? 1_700_000_000_000 : int64(&rng), producerId: pid,
                producerEpoch: pid >= 0 ? rng.pick([0, 1, .max]) : -1,
                baseSequence: pid >= 0 ? rng.pick([0, 1, 5, .max - 1, .max]) : -1)
            return .produce(
                ProduceRequest(
                    acks: rng.pick([-1, 1, 1, 2]), timeoutMs: 100,
                    topics: [.init(name: topic, partitions: [.init(index: rng.chance(0.8) ? rng.pick([0, 1]) : int32(&rng), records: batch)])]))
        case 3:
            let parts = (0..<Int.random(in: 1...5, using: &rng)).map { _ in
                FetchRequest.Partition(
                    partition: rng.chance(0.8) ? rng.pick([0, 1]) : int32(&rng),
                    fetchOffset: rng.chance(0.5) ? Int64.random(in: 0...20, using: &rng) : int64(&rng), partitionMaxBytes: int32(&rng))
            }
            return .fetch(
                FetchRequest(
                    maxWaitMs: 0, minBytes: int32(&rng), maxBytes: int32(&rng),
                    topics: [.init(topic: topic, partitions: parts), .init(topic: topic, partitions: parts)]))
        case 4:
            return .listOffsets(
                ListOffsetsRequest(topics: [.init(name: topic, partitions: [.init(partitionIndex: rng.pick([0, 1, -1, .max]), timestamp: int64(&rng))])]))
        case 5:
            return .offsetCommit(
                OffsetCommitRequest(
                    groupId: rng.pick(["g", "h", ""]), generationId: -1, memberId: "",
                    topics: [
                        .init(
                            name: topic,
                            partitions: [
                                .init(
                                    partitionIndex: rng.pick([0, 1, -1]), committedOffset: int64(&rng),
                                    committedMetadata: rng.chance(0.2) ? String(repeating: "m", count: 5_000) : "x")
                            ])
                    ]))
        case 6:
            return .offsetFetch(
                OffsetFetchRequest(groupId: rng.pick(["g", "h"]), topics: rng.chance(0.5) ? nil : [.init(name: topic, partitionIndexes: [0, -1, .max])]))
        case 7:
            let configs: [CreateTopicsRequest.Config] =
                rng.chance(0.5)
                ? []
                : [
                    .init(
                        name: rng.pick(["retention.ms", "segment.bytes", "max.message.bytes", "cleanup.policy", "retention.bytes", "segment.ms"]),
                        value: rng.pick(["-5", "0", "1", "9223372036854775807", "99999999999999999999999", "compact", "delete", "", "x"]))
                ]
            return .createTopics(
                CreateTopicsRequest(topics: [
                    .init(
                        name: rng.chance(0.3) ? "new-\(Int.random(in: 0..<5, using: &rng))" : topic, numPartitions: rng.pick([-1, 0, 1, 2, 3, 20_000, .max]),
                        replicationFactor: rng.pick([-1, 1, 3]), configs: configs)
                ]))
        case 8:
            return .deleteTopics(DeleteTopicsRequest(topicNames: [rng.chance(0.5) ? "new-\(Int.random(in: 0..<5, using: &rng))" : topic]))
        case 9:
            return .metadata(MetadataRequest(topics: rng.chance(0.2) ? nil : [topic, "m-\(Int.random(in: 0..<3, using: &rng))"]))
        case 10:
            return .describeGroups(DescribeGroupsRequest(groups: ["g", "h", "nope"]))
        case 12:
            return .deleteRecords(
                DeleteRecordsRequest(topics: [
                    .init(
                        name: topic,
                        partitions: [
                            .init(
                                partitionIndex: rng.chance(0.8) ? rng.pick([0, 1]) : int32(&rng),
                                offset: rng.chance(0.5) ? rng.pick([-1, 0, 1, 2]) : int64(&rng))
                        ])
                ]))
        case 13:
            return .createPartitions(
                CreatePartitionsRequest(
                    topics: [
                        .init(
                            name: topic, count: rng.pick([-1, 0, 1, 2, 3, 4, 5, 20_000, .min, .max]), assignments: rng.chance(0.2) ? [[0], [int32(&rng)]] : nil)
                    ],
                    validateOnly: rng.chance(0.3)))
        case 14:
            return .deleteGroups(DeleteGroupsRequest(groupsNames: [rng.pick(["g", "h", "", "nope"])]))
        case 15:
            return .offsetDelete(
                OffsetDeleteRequest(groupId: rng.pick(["g", "h", ""]), topics: [.init(name: topic, partitions: [rng.pick([0, 1, -1, .max])])]))
        default:
            return .initProducerId(InitProducerIdRequest())
        }
    }

    static let versions: [ApiKey: Int16] = [
        .produce: 7, .fetch: 11, .listOffsets: 5, .offsetCommit: 7, .offsetFetch: 5, .createTopics: 4, .deleteTopics: 3, .metadata: 8, .describeGroups: 4,
        .initProducerId: 1, .deleteRecords: 2, .createPartitions: 3, .deleteGroups: 2, .offsetDelete: 0,
    ]

    func testEdgeNumberSequencesOnTheDurableStoreThenRestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-seqfuzz-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var quiet = Logger(label: "seqfuzz")
        quiet.logLevel = .critical
        var config = BrokerConfiguration()
        config.numPartitions = 2
        var acknowledged: [String: Int64] = [:]  // topic-partition -> records acknowledged
        for seed in [UInt64(1), 2, 3, 4] {
            let manager = try LogManager(configuration: .init(dataDirectory: dir.path, fsyncPolicy: .never), logger: quiet)
            let broker = Broker(configuration: config, topics: manager, committedOffsets: DurableCommittedOffsetStore(manager.offsetStore), logger: quiet)
            var rng = Rng(seed: seed)
            for step in 0..<TestBudget.iterations(3_000) {
                let body = randomRequest(&rng)
                let version = Self.versions[body.apiKey] ?? 1
                let request = KafkaRequest(
                    header: RequestHeader(apiKey: body.apiKey.rawValue, apiVersion: version, correlationId: Int32(step), clientId: "fuzz"), body: body)
                if case .produce(let p) = body {
                    // Through the produce path directly, to read the acknowledgements.
                    let response = await broker.produce(p)
                    for (t, tr) in zip(p.topics, response.topics) {
                        for (pp, pr) in zip(t.partitions, tr.partitions) where pr.errorCode == .none && pr.baseOffset >= 0 {
                            let records =
                                (try? RecordBatchValidator.validate(records: pp.records!, maxBatchBytes: 1 << 20))?.reduce(0) {
                                    $0 + Int($1.header.recordCount)
                                } ?? 0
                            let key = "\(t.name)-\(pp.index)"
                            acknowledged[key] = max(acknowledged[key, default: 0], pr.baseOffset + Int64(records))
                        }
                    }
                    continue
                }
                _ = await broker.handle(request)
                if case .deleteTopics(let d) = body {
                    for name in d.topicNames { acknowledged = acknowledged.filter { !$0.key.hasPrefix(name + "-") } }
                }
            }
            await manager.shutdown()
        }
        // Restart: the broker starts on what the sequences left, and acknowledged data is there.
        let manager = try LogManager(configuration: .init(dataDirectory: dir.path, fsyncPolicy: .never), logger: quiet)
        let broker = Broker(configuration: config, topics: manager, committedOffsets: DurableCommittedOffsetStore(manager.offsetStore), logger: quiet)
        XCTAssertGreaterThan(acknowledged.count, 3, "the sequences wrote to several partitions: \(acknowledged)")
        for (tp, end) in acknowledged {
            let cut = tp.lastIndex(of: "-")!
            let topic = String(tp[..<cut])
            let partition = Int32(tp[tp.index(after: cut)...])!
            let offsets = await broker.listOffsets(
                ListOffsetsRequest(topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: -1)])]))
            let p = offsets.topics[0].partitions[0]
            // A topic deleted later in the sequence is gone; one that exists holds every record acknowledged.
            if p.errorCode == .unknownTopicOrPartition { continue }
            XCTAssertGreaterThanOrEqual(p.offset, end, "\(tp): acknowledged up to \(end)")
        }
        let alive = await broker.metadata(MetadataRequest(topics: ["after-fuzz"]), version: 4)
        XCTAssertEqual(alive.topics[0].errorCode, ErrorCode.none)
        await manager.shutdown()
    }
}
