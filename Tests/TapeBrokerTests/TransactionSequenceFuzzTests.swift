import Foundation
import KafkaProtocol
import Logging
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

/// Seeded random sequences of transaction requests (ids, producer ids, epochs, partitions, offsets
/// and timeouts at the edges) through the handler onto the durable store and transactions.log, with
/// the clock moving and ticks in between; then restarts. Nothing may trap; the last stable offset
/// never passes the high watermark; once every timeout has passed, no partition's last stable
/// offset stays behind its high watermark.
final class TransactionSequenceFuzzTests: XCTestCase {
    typealias Rng = SplitMix64

    func transactional(_ batch: ByteBuffer) -> ByteBuffer {
        var b = batch
        b.setInteger(Int16(0x10), at: 21, endianness: .big)
        let crc = b.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.crcCoveredStart...])) }
        b.setInteger(crc, at: 17, endianness: .big)
        return b
    }

    func testRandomTransactionSequencesOnTheDurableStoreThenRestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-txnfuzz-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var quiet = Logger(label: "txnfuzz")
        quiet.logLevel = .critical
        var config = BrokerConfiguration()
        config.numPartitions = 2
        config.transactionMaxTimeoutMs = 5_000
        let ids = ["t1", "t2", "t3", ""]
        let topics = ["a", "b"]
        let clock = ManualMillisecondClock()
        var requests = 0
        var transactionalWrites = 0
        var ended = 0
        var codes: [Int16: Int] = [:]
        var addCodes: [Int16: Int] = [:]
        for seed in [UInt64(11), 12, 13] {
            let manager = try LogManager(configuration: .init(dataDirectory: dir.path, fsyncPolicy: .never), logger: quiet)
            let broker = Broker(
                configuration: config, topics: manager, committedOffsets: DurableCommittedOffsetStore(manager.offsetStore), clock: clock, logger: quiet,
                transactionStore: manager.transactionLog)
            var rng = Rng(seed: seed)
            for topic in topics {
                _ = await broker.createTopics(CreateTopicsRequest(topics: [.init(name: topic, numPartitions: 2, replicationFactor: 1)]), version: 4)
            }
            var known: [(Int64, Int16)] = [(0, 0), (-1, -1), (.max, .max)]
            var current: [String: (Int64, Int16)] = [:]
            var lastAdded: (id: String, topic: String, partition: Int32)? = nil
            var sequences: [Int64: Int32] = [:]
            for _ in 0..<TestBudget.iterations(2_000) {
                let id = rng.pick(ids)
                let topic = rng.pick(topics)
                let partition: Int32 = rng.chance(0.9) ? rng.pick([0, 1]) : rng.pick([-1, 2, .max])
                let (pid, epoch) =
                    if let c = current[id], rng.chance(0.7) {
                        c
                    } else if rng.chance(0.85) {
                        rng.pick(known)
                    } else {
                        (Int64.random(in: .min ... .max, using: &rng), rng.pick([Int16.min, -1, 0, 1, .max]))
                    }
                let version: Int16 = rng.pick([0, 1, 2, 3])
                requests += 1
                switch Int.random(in: 0..<10, using: &rng) {
                case 0:
                    let r = await broker.initProducerId(
                        InitProducerIdRequest(transactionalId: id, transactionTimeoutMs: rng.pick([Int32.min, -1, 0, 1, 100, 1_000, 5_000, 5_001, .max])))
                    if r.errorCode == .none {
                        known.append((r.producerId, r.producerEpoch))
                        current[id] = (r.producerId, r.producerEpoch)
                        sequences[r.producerId] = 0  // a new epoch starts at sequence 0
                    }
                case 1:
                    let r = await broker.addPartitionsToTxn(
                        AddPartitionsToTxnRequest(
                            transactionalId: id, producerId: pid, producerEpoch: epoch,
                            topics: [.init(name: topic, partitions: [partition]), .init(name: "missing", partitions: [0])].prefix(rng.chance(0.8) ? 1 : 2).map {
                                $0
                            }), version: version)
                    addCodes[r.results[0].partitions[0].errorCode.rawValue, default: 0] += 1
                    if r.results[0].partitions[0].errorCode == .none { lastAdded = (id, topic, partition) }
                case 2:
                    _ = await broker.addOffsetsToTxn(
                        AddOffsetsToTxnRequest(transactionalId: id, producerId: pid, producerEpoch: epoch, groupId: rng.pick(["g", ""])), version: version)
                case 3:
                    _ = await broker.txnOffsetCommit(
                        TxnOffsetCommitRequest(
                            transactionalId: id, groupId: "g", producerId: pid, producerEpoch: epoch, generationId: rng.pick([-1, 0, 5]),
                            memberId: rng.pick(["", "m"]),
                            topics: [
                                .init(name: topic, partitions: [.init(partitionIndex: partition, committedOffset: rng.pick([Int64.min, -1, 0, 7, .max]))])
                            ]),
                        version: version)
                case 4:
                    let r = await broker.endTxn(
                        EndTxnRequest(transactionalId: id, producerId: pid, producerEpoch: epoch, committed: rng.chance(0.5)), version: version)
                    if r.errorCode == .none { ended += 1 }
                case 5, 6:
                    // Mostly to a partition just added to a transaction, with its producer's id and epoch.
                    var (pid, epoch, topic, partition) = (pid, epoch, topic, partition)
                    if let added = lastAdded, let c = current[added.id], rng.chance(0.7) {
                        (pid, epoch, topic, partition) = (c.0, c.1, added.topic, added.partition)
                    }
                    let seq = sequences[pid, default: 0]
                    let batch = RecordBatchBuilder.build(
                        records: [Record(offsetDelta: 0, key: [1], value: [UInt8](repeating: 0x61, count: 10))], baseTimestamp: 1_700_000_000_000,
                        producerId: pid, producerEpoch: epoch, baseSequence: rng.chance(0.9) ? seq : rng.pick([0, -1, .max]))
                    let isTransactional = rng.chance(0.8)
                    let response = await broker.produce(
                        ProduceRequest(
                            acks: -1, timeoutMs: 100,
                            topics: [.init(name: topic, partitions: [.init(index: partition, records: isTransactional ? transactional(batch) : batch)])]))
                    if isTransactional { codes[response.topics[0].partitions[0].errorCode.rawValue, default: 0] += 1 }
                    if response.topics[0].partitions[0].errorCode == .none {
                        sequences[pid] = seq &+ 1
                        if isTransactional { transactionalWrites += 1 }
                    }
                case 7:
                    var f = FetchRequest(
                        maxWaitMs: 0, minBytes: 0, maxBytes: rng.pick([0, 100, 1 << 20, .max]),
                        topics: [
                            .init(
                                topic: topic,
                                partitions: [
                                    .init(
                                        partition: partition, fetchOffset: rng.pick([Int64.min, -1, 0, 1, 5, .max]),
                                        partitionMaxBytes: rng.pick([0, 64, 1 << 20]))
                                ])
                        ])
                    f.isolationLevel = rng.pick([0, 1, 2, -1])
                    let r = await broker.fetch(f)
                    for p in r.topics.flatMap(\.partitions) where p.errorCode == .none {
                        XCTAssertLessThanOrEqual(p.lastStableOffset, p.highWatermark)
                    }
                case 8:
                    var l = ListOffsetsRequest(topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: -1)])])
                    l.isolationLevel = rng.pick([0, 1, 7])
                    _ = await broker.listOffsets(l)
                default:
                    clock.advance(rng.pick([0, 10, 999, 1_000, 6_000]))
                    await broker.tick()
                    if rng.chance(0.05) { _ = await broker.deleteTopics(DeleteTopicsRequest(topicNames: [topic])) }
                }
            }
            await manager.shutdown()
        }
        XCTAssertGreaterThan(requests, 100)
        XCTAssertGreaterThan(transactionalWrites, 0, "some transactional batches were accepted")
        XCTAssertGreaterThan(ended, 0, "some transactions were ended")
        print("transaction fuzz: \(requests) requests, \(transactionalWrites) transactional writes, \(ended) EndTxn accepted \(codes) \(addCodes)")
        // Restart: every transaction left open is aborted once its timeout passes; no stuck LSO.
        let manager = try LogManager(configuration: .init(dataDirectory: dir.path, fsyncPolicy: .never), logger: quiet)
        let broker = Broker(
            configuration: config, topics: manager, committedOffsets: DurableCommittedOffsetStore(manager.offsetStore), clock: clock, logger: quiet,
            transactionStore: manager.transactionLog)
        clock.advance(10_000)
        await broker.tick()
        var checked = 0
        for topic in manager.topicNames() {
            for partition in Int32(0)..<Int32(manager.partitionLogs(of: topic)?.count ?? 0) {
                var f = FetchRequest(
                    maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20,
                    topics: [.init(topic: topic, partitions: [.init(partition: partition, fetchOffset: 0, partitionMaxBytes: 1 << 20)])])
                f.isolationLevel = 1
                let p = await broker.fetch(f).topics[0].partitions[0]
                XCTAssertEqual(p.errorCode, .none, "\(topic)-\(partition)")
                XCTAssertEqual(p.lastStableOffset, p.highWatermark, "\(topic)-\(partition): no transaction stays open past its timeout")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0)
        await manager.shutdown()
    }
}
