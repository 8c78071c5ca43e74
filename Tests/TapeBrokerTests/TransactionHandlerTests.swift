import KafkaProtocol
import NIOCore
import Synchronization
import XCTest

@testable import TapeBroker

/// A clock tests move by hand.
final class ManualMillisecondClock: MillisecondClock {
    let now = Atomic<Int64>(0)
    func nowMs() -> Int64 { now.load(ordering: .relaxed) }
    func advance(_ ms: Int64) { now.add(ms, ordering: .relaxed) }
}

/// Transactions through the broker's handlers, without sockets: markers, last stable offset,
/// read_committed fetches, offsets, fencing, timeouts, and the state after a restart.
final class TransactionHandlerTests: XCTestCase {
    let clock = ManualMillisecondClock()

    func makeBroker(
        topics: any TopicStore = InMemoryTopicStore(), offsets: any CommittedOffsetStore = InMemoryCommittedOffsetStore(),
        store: any TransactionStateStore = InMemoryTransactionStateStore(), partitions: Int32 = 2
    ) -> Broker {
        var c = BrokerConfiguration()
        c.numPartitions = partitions
        return Broker(configuration: c, topics: topics, committedOffsets: offsets, clock: clock, firstProducerId: 5000, transactionStore: store)
    }

    /// A batch with the transactional attribute when `transactional`.
    func batch(_ values: [String], pid: Int64, epoch: Int16, seq: Int32, transactional: Bool = true) -> ByteBuffer {
        var b = RecordBatchBuilder.build(
            records: values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8)) }, baseTimestamp: 1_000,
            producerId: pid, producerEpoch: epoch, baseSequence: seq)
        if transactional {
            b.setInteger(Int16(0x10), at: 21, endianness: .big)
            let crc = b.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.crcCoveredStart...])) }
            b.setInteger(crc, at: 17, endianness: .big)
        }
        return b
    }

    func produce(_ b: Broker, _ records: ByteBuffer, partition: Int32 = 0) async -> ProduceResponse.PartitionResponse {
        let r = await b.produce(ProduceRequest(acks: -1, timeoutMs: 1000, topics: [.init(name: "t", partitions: [.init(index: partition, records: records)])]))
        return r.topics[0].partitions[0]
    }

    func fetch(_ b: Broker, offset: Int64 = 0, partition: Int32 = 0, committed: Bool) async -> FetchResponse.Partition {
        var r = FetchRequest(
            maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20,
            topics: [.init(topic: "t", partitions: [.init(partition: partition, fetchOffset: offset, partitionMaxBytes: 1 << 20)])])
        r.isolationLevel = committed ? 1 : 0
        return await b.fetch(r).topics[0].partitions[0]
    }

    /// Values of the data records (markers left out), as a client reading `p` would see them:
    /// records of aborted transactions dropped when the fetch listed them.
    func visible(_ p: FetchResponse.Partition) throws -> [String] {
        guard let bytes = p.records, bytes.readableBytes > 0 else { return [] }
        // As clients do: an aborted transaction's batches are skipped from its first offset to its abort marker.
        var pending = (p.abortedTransactions ?? []).sorted { $0.firstOffset < $1.firstOffset }
        var aborting: Set<Int64> = []
        var out: [String] = []
        for batch in try RecordBatchValidator.validate(records: bytes, maxBatchBytes: 1 << 20) {
            while let next = pending.first, next.firstOffset <= batch.header.baseOffset {
                aborting.insert(next.producerId)
                pending.removeFirst()
            }
            if batch.header.isControl {
                if ControlBatch.isCommit(batch.bytes) == false { aborting.remove(batch.header.producerId) }
                continue
            }
            if batch.header.isTransactional && aborting.contains(batch.header.producerId) { continue }
            var body = batch.bytes
            body.moveReaderIndex(forwardBy: RecordBatchHeader.size)
            out += try Record.decodeAll(from: &body, count: Int(batch.header.recordCount)).map { String(decoding: $0.value ?? [], as: UTF8.self) }
        }
        return out
    }

    func markers(_ p: FetchResponse.Partition) throws -> [Bool] {
        guard let bytes = p.records, bytes.readableBytes > 0 else { return [] }
        return try RecordBatchValidator.validate(records: bytes, maxBatchBytes: 1 << 20).filter(\.header.isControl).map {
            try XCTUnwrap(ControlBatch.isCommit($0.bytes))
        }
    }

    func initTxn(_ b: Broker, _ id: String = "tx", timeoutMs: Int32 = 60_000) async -> (Int64, Int16) {
        let r = await b.initProducerId(InitProducerIdRequest(transactionalId: id, transactionTimeoutMs: timeoutMs))
        XCTAssertEqual(r.errorCode, .none)
        return (r.producerId, r.producerEpoch)
    }

    func add(_ b: Broker, _ pid: Int64, _ epoch: Int16, partitions: [Int32] = [0], id: String = "tx", version: Int16 = 3) async -> ErrorCode {
        let r = await b.addPartitionsToTxn(
            AddPartitionsToTxnRequest(transactionalId: id, producerId: pid, producerEpoch: epoch, topics: [.init(name: "t", partitions: partitions)]),
            version: version)
        return r.results[0].partitions[0].errorCode
    }

    func end(_ b: Broker, _ pid: Int64, _ epoch: Int16, commit: Bool, id: String = "tx", version: Int16 = 3) async -> ErrorCode {
        await b.endTxn(EndTxnRequest(transactionalId: id, producerId: pid, producerEpoch: epoch, committed: commit), version: version).errorCode
    }

    func createTopic(_ b: Broker) async {
        let r = await b.createTopics(CreateTopicsRequest(topics: [.init(name: "t", numPartitions: 2, replicationFactor: 1)], timeoutMs: 1000), version: 4)
        XCTAssertEqual(r.topics[0].errorCode, .none)
    }

    func testFindCoordinatorAnswersTransactionKeysAndRefusesUnknownKeyTypes() async {
        let b = makeBroker()
        let txn = await b.findCoordinator(FindCoordinatorRequest(key: "tx", keyType: 1))
        XCTAssertEqual(txn.errorCode, .none)
        XCTAssertEqual(txn.nodeId, BrokerConfiguration().nodeId)
        let bad = await b.findCoordinator(FindCoordinatorRequest(key: "tx", keyType: 7))
        XCTAssertEqual(bad.errorCode, .invalidRequest)
    }

    func testCommitAndAbortWithReadCommittedAndReadUncommittedFetches() async throws {
        let b = makeBroker()
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        // Transactional data to a partition not added is refused.
        let early = await produce(b, batch(["x"], pid: pid, epoch: epoch, seq: 0))
        XCTAssertEqual(early.errorCode, .invalidTxnState)

        let added = await add(b, pid, epoch)
        XCTAssertEqual(added, .none)
        let first = await produce(b, batch(["c1", "c2"], pid: pid, epoch: epoch, seq: 0))
        XCTAssertEqual(first.errorCode, .none)
        XCTAssertEqual(first.baseOffset, 0)
        // A plain producer writes in the middle of the open transaction.
        let plain = await produce(b, RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: Array("p".utf8))], baseTimestamp: 1))
        XCTAssertEqual(plain.baseOffset, 2)

        var open = await fetch(b, committed: true)
        XCTAssertEqual(open.highWatermark, 3)
        XCTAssertEqual(open.lastStableOffset, 0, "the open transaction holds the last stable offset at its first offset")
        XCTAssertEqual(try visible(open), [], "read_committed stops at the last stable offset")
        open = await fetch(b, committed: false)
        XCTAssertEqual(try visible(open), ["c1", "c2", "p"])
        XCTAssertEqual(open.lastStableOffset, 0)
        let latest = await b.listOffsets(
            {
                var r = ListOffsetsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -1)])])
                r.isolationLevel = 1
                return r
            }())
        XCTAssertEqual(latest.topics[0].partitions[0].offset, 0, "ListOffsets latest with read_committed is the last stable offset")

        let committed = await end(b, pid, epoch, commit: true)
        XCTAssertEqual(committed, .none)
        var after = await fetch(b, committed: true)
        XCTAssertEqual(after.highWatermark, 4, "the commit marker takes an offset")
        XCTAssertEqual(after.lastStableOffset, 4)
        XCTAssertEqual(try visible(after), ["c1", "c2", "p"])
        XCTAssertEqual(try markers(after), [true])
        XCTAssertNil(after.abortedTransactions)

        // Second transaction: aborted.
        await assertEqualAsync(await add(b, pid, epoch), .none)
        await assertEqualAsync(await produce(b, batch(["a1"], pid: pid, epoch: epoch, seq: 2)).errorCode, .none, "sequences continue across transactions")
        await assertEqualAsync(await end(b, pid, epoch, commit: false), .none)
        await assertEqualAsync(await end(b, pid, epoch, commit: false), .none, "a retried EndTxn succeeds")
        await assertEqualAsync(await end(b, pid, epoch, commit: true), .invalidTxnState)
        after = await fetch(b, committed: true)
        XCTAssertEqual(after.highWatermark, 6)
        XCTAssertEqual(after.lastStableOffset, 6)
        XCTAssertEqual(after.abortedTransactions, [.init(producerId: pid, firstOffset: 4)])
        XCTAssertEqual(try visible(after), ["c1", "c2", "p"], "read_committed clients drop the aborted records")
        XCTAssertEqual(try markers(after), [true, false])
        let uncommitted = await fetch(b, committed: false)
        XCTAssertNil(uncommitted.abortedTransactions)
        XCTAssertEqual(try visible(uncommitted), ["c1", "c2", "p", "a1"])
        // A fetch starting after the aborted range does not list it.
        await assertNilAsync(await fetch(b, offset: 6, committed: true).abortedTransactions)
    }

    /// `tape up`'s in-process reads: the same read_committed view a Kafka consumer gets, decoded.
    func testLocalReadShowsCommittedRecordsOnlyAndStepsOverMarkers() async throws {
        let b = makeBroker()
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        await assertEqualAsync(await add(b, pid, epoch), .none)
        await assertEqualAsync(await produce(b, batch(["c1", "c2"], pid: pid, epoch: epoch, seq: 0)).errorCode, .none)
        await assertEqualAsync(
            await produce(b, RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: Array("k".utf8), value: Array("p".utf8))], baseTimestamp: 7))
                .errorCode,
            .none)
        // While the transaction is open, nothing at or past its first offset is read.
        var read = await b.localRead(topic: "t", positions: [0: 0], maxWaitMs: 0)
        XCTAssertEqual(read.records, [])
        XCTAssertEqual(read.partitions.map(\.nextOffset), [0])
        await assertEqualAsync(await end(b, pid, epoch, commit: true), .none)
        await assertEqualAsync(await add(b, pid, epoch), .none)
        await assertEqualAsync(await produce(b, batch(["a1"], pid: pid, epoch: epoch, seq: 2)).errorCode, .none)
        await assertEqualAsync(await end(b, pid, epoch, commit: false), .none)
        await assertEqualAsync(await add(b, pid, epoch), .none)
        await assertEqualAsync(await produce(b, batch(["c3"], pid: pid, epoch: epoch, seq: 3)).errorCode, .none)
        await assertEqualAsync(await end(b, pid, epoch, commit: true), .none)
        // Offsets: c1 0, c2 1, p 2, commit 3, a1 4, abort 5, c3 6, commit 7.
        read = await b.localRead(topic: "t", positions: [0: 0], maxWaitMs: 0)
        XCTAssertEqual(read.records.map { String(decoding: $0.value ?? [], as: UTF8.self) }, ["c1", "c2", "p", "c3"])
        XCTAssertEqual(read.records.map(\.offset), [0, 1, 2, 6])
        XCTAssertEqual(read.records[2].key, Array("k".utf8))
        XCTAssertEqual(read.records[2].timestamp, 7)
        XCTAssertEqual(read.partitions.first?.nextOffset, 8, "past the last marker")
        XCTAssertEqual(read.partitions.first?.highWatermark, 8)
        // From inside a batch: the records before the position are not repeated.
        read = await b.localRead(topic: "t", positions: [0: 1], maxWaitMs: 0)
        XCTAssertEqual(read.records.map(\.offset), [1, 2, 6])
        // From inside the aborted range: still dropped.
        read = await b.localRead(topic: "t", positions: [0: 4], maxWaitMs: 0)
        XCTAssertEqual(read.records.map(\.offset), [6])
        // Nothing new: an empty answer at the end.
        read = await b.localRead(topic: "t", positions: [0: 8, 1: 0], maxWaitMs: 0)
        XCTAssertEqual(read.records, [])
        XCTAssertEqual(read.partitions.map(\.error), [.none, .none])
        // Out of range and unknown topics answer with their errors.
        read = await b.localRead(topic: "t", positions: [0: 100], maxWaitMs: 0)
        XCTAssertEqual(read.partitions.map(\.error), [.offsetOutOfRange])
        read = await b.localRead(topic: "nope", positions: [0: 0], maxWaitMs: 0)
        XCTAssertEqual(read.partitions.map(\.error), [.unknownTopicOrPartition])
        await assertEqualAsync(await b.localPartitionCount(of: "t"), 2)
        await assertNilAsync(await b.localPartitionCount(of: "nope"))
        let latest = await b.localOffsets(topic: "t", partitions: [0, 1, 9], at: .latest)
        XCTAssertEqual(latest[0], .some(8))
        XCTAssertEqual(latest[1], .some(0))
        XCTAssertEqual(latest[9], .some(nil), "a partition that does not exist has no offset")
        await assertEqualAsync(await b.localOffsets(topic: "t", partitions: [0], at: .timestamp(5))[0], .some(0), "c1 (time 1000) is the first at or after 5")
        await assertEqualAsync(await b.localOffsets(topic: "t", partitions: [0], at: .timestamp(4_000_000_000_000))[0], .some(nil), "nothing that recent")
    }

    /// A long-polling local read answers as soon as a record arrives.
    func testLocalReadWaitsForData() async throws {
        let b = makeBroker()
        await createTopic(b)
        async let waiting = b.localRead(topic: "t", positions: [0: 0, 1: 0], maxWaitMs: 10_000)
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        await assertEqualAsync(
            await produce(b, RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: Array("x".utf8))], baseTimestamp: 1), partition: 1)
                .errorCode, .none)
        let read = await waiting
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
        XCTAssertEqual(read.records.map(\.partition), [1])
        XCTAssertEqual(read.records.map(\.value), [Array("x".utf8)])
    }

    func testTxnOffsetCommitBecomesCommittedOnlyOnCommit() async throws {
        let offsets = InMemoryCommittedOffsetStore()
        let b = makeBroker(offsets: offsets)
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        func commitOffset(_ offset: Int64) async -> ErrorCode {
            await b.txnOffsetCommit(
                TxnOffsetCommitRequest(
                    transactionalId: "tx", groupId: "g", producerId: pid, producerEpoch: epoch,
                    topics: [.init(name: "t", partitions: [.init(partitionIndex: 1, committedOffset: offset)])]), version: 3
            ).topics[0].partitions[0].errorCode
        }
        await assertEqualAsync(await commitOffset(5), .invalidTxnState, "AddOffsetsToTxn comes first")
        await assertEqualAsync(
            await b.addOffsetsToTxn(AddOffsetsToTxnRequest(transactionalId: "tx", producerId: pid, producerEpoch: epoch, groupId: "g"), version: 3).errorCode,
            .none)
        await assertEqualAsync(await commitOffset(5), .none)
        XCTAssertEqual(offsets.offsets(group: "g"), [:], "not committed before the transaction is")
        await assertEqualAsync(await end(b, pid, epoch, commit: false), .none)
        XCTAssertEqual(offsets.offsets(group: "g"), [:], "aborted offsets are discarded")

        _ = await b.addOffsetsToTxn(AddOffsetsToTxnRequest(transactionalId: "tx", producerId: pid, producerEpoch: epoch, groupId: "g"), version: 3)
        await assertEqualAsync(await commitOffset(7), .none)
        await assertEqualAsync(await end(b, pid, epoch, commit: true), .none)
        XCTAssertEqual(offsets.offsets(group: "g")[TopicPartition("t", 1)]?.offset, 7)
    }

    func testTxnOffsetCommitV3ChecksTheGroupMember() async {
        let b = makeBroker()
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        _ = await b.addOffsetsToTxn(AddOffsetsToTxnRequest(transactionalId: "tx", producerId: pid, producerEpoch: epoch, groupId: "g"), version: 3)
        let r = await b.txnOffsetCommit(
            TxnOffsetCommitRequest(
                transactionalId: "tx", groupId: "g", producerId: pid, producerEpoch: epoch, generationId: 4, memberId: "ghost",
                topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 1)])]), version: 3)
        XCTAssertEqual(r.topics[0].partitions[0].errorCode, .unknownMemberId)
    }

    func testASecondInitProducerIdFencesTheFirstAndAbortsItsTransaction() async throws {
        let b = makeBroker()
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        _ = await add(b, pid, epoch)
        await assertEqualAsync(await produce(b, batch(["zombie"], pid: pid, epoch: epoch, seq: 0)).errorCode, .none)
        let (pid2, epoch2) = await initTxn(b)
        XCTAssertEqual(pid2, pid)
        XCTAssertEqual(epoch2, epoch + 1)
        let after = await fetch(b, committed: true)
        XCTAssertEqual(after.lastStableOffset, 2, "the fenced producer's transaction was aborted")
        XCTAssertEqual(try visible(after), [])
        XCTAssertEqual(try markers(after), [false])
        await assertEqualAsync(await produce(b, batch(["late"], pid: pid, epoch: epoch, seq: 1)).errorCode, .invalidProducerEpoch)
        await assertEqualAsync(await add(b, pid, epoch, version: 3), .producerFenced)
        await assertEqualAsync(await add(b, pid, epoch, version: 1), .invalidProducerEpoch, "PRODUCER_FENCED exists from v2")
        await assertEqualAsync(await end(b, pid, epoch, commit: true, version: 0), .invalidProducerEpoch)
        await assertEqualAsync(await add(b, pid2, epoch2), .none)
        await assertEqualAsync(await produce(b, batch(["new"], pid: pid2, epoch: epoch2, seq: 0)).errorCode, .none)
        await assertEqualAsync(await end(b, pid2, epoch2, commit: true), .none)
        let final = await fetch(b, committed: true)
        XCTAssertEqual(try visible(final), ["new"])
    }

    func testInitProducerIdV3WithTheCurrentEpochBumpsItAndAStaleOneIsFenced() async {
        let b = makeBroker()
        let (pid, epoch) = await initTxn(b)
        let bumped = await b.initProducerId(
            InitProducerIdRequest(transactionalId: "tx", transactionTimeoutMs: 1000, producerId: pid, producerEpoch: epoch), version: 4)
        XCTAssertEqual(bumped.errorCode, .none)
        XCTAssertEqual(bumped.producerId, pid)
        XCTAssertEqual(bumped.producerEpoch, epoch + 1)
        let stale = InitProducerIdRequest(transactionalId: "tx", transactionTimeoutMs: 1000, producerId: pid, producerEpoch: epoch)
        await assertEqualAsync(await b.initProducerId(stale, version: 4).errorCode, .producerFenced)
        await assertEqualAsync(await b.initProducerId(stale, version: 3).errorCode, .invalidProducerEpoch, "PRODUCER_FENCED exists from v4")
        let idempotent = await b.initProducerId(InitProducerIdRequest(transactionalId: nil, producerId: 5, producerEpoch: 3), version: 4)
        XCTAssertEqual(idempotent.errorCode, .none)
        XCTAssertEqual(idempotent.producerEpoch, 0, "an idempotent producer gets a fresh id")
        XCTAssertNotEqual(idempotent.producerId, 5)
    }

    func testInitProducerIdRefusesATimeoutAboveTheMaximum() async {
        let b = makeBroker()
        let r = await b.initProducerId(InitProducerIdRequest(transactionalId: "tx", transactionTimeoutMs: Int32.max))
        XCTAssertEqual(r.errorCode, .invalidTransactionTimeout)
        let idempotent = await b.initProducerId(InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: Int32.max))
        XCTAssertEqual(idempotent.errorCode, .none, "the timeout only matters with a transactional id")
    }

    func testAddPartitionsToAnUnknownTopicNamesItAndDoesNotAttemptTheRest() async {
        let b = makeBroker()
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        let r = await b.addPartitionsToTxn(
            AddPartitionsToTxnRequest(
                transactionalId: "tx", producerId: pid, producerEpoch: epoch,
                topics: [.init(name: "t", partitions: [0, 9]), .init(name: "nope", partitions: [0])]),
            version: 3)
        XCTAssertEqual(r.results[0].partitions.map(\.errorCode), [.operationNotAttempted, .unknownTopicOrPartition])
        XCTAssertEqual(r.results[1].partitions.map(\.errorCode), [.unknownTopicOrPartition])
    }

    func testTickAbortsATransactionOpenLongerThanItsTimeout() async throws {
        let b = makeBroker()
        await createTopic(b)
        let (pid, epoch) = await initTxn(b, timeoutMs: 1000)
        _ = await add(b, pid, epoch)
        _ = await produce(b, batch(["slow"], pid: pid, epoch: epoch, seq: 0))
        clock.advance(1000)
        await b.tick()
        await assertEqualAsync(await fetch(b, committed: true).lastStableOffset, 0, "not yet past its timeout")
        clock.advance(999)
        await b.tick()
        await assertEqualAsync(await fetch(b, committed: true).lastStableOffset, 0, "checked at most once a second")
        clock.advance(1)
        await b.tick()
        let after = await fetch(b, committed: true)
        XCTAssertEqual(after.lastStableOffset, 2)
        XCTAssertEqual(try markers(after), [false])
        XCTAssertEqual(try visible(after), [])
        await assertEqualAsync(await end(b, pid, epoch, commit: true), .producerFenced, "the producer that let it time out is fenced")
        await assertEqualAsync(await produce(b, batch(["more"], pid: pid, epoch: epoch, seq: 1)).errorCode, .invalidProducerEpoch)
    }

    func testClientsCannotWriteControlBatches() async {
        let b = makeBroker()
        await createTopic(b)
        let marker = ControlBatch.marker(producerId: 1, producerEpoch: 0, commit: true, timestamp: 1)
        await assertEqualAsync(await produce(b, marker).errorCode, .invalidRecord)
    }

    func testAfterARestartTheOpenTransactionContinuesAndAbortedOnesStayAborted() async throws {
        let topics = InMemoryTopicStore()
        let store = InMemoryTransactionStateStore()
        let b = makeBroker(topics: topics, store: store)
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        _ = await add(b, pid, epoch)
        _ = await produce(b, batch(["aborted"], pid: pid, epoch: epoch, seq: 0))
        _ = await end(b, pid, epoch, commit: false)
        _ = await add(b, pid, epoch)
        _ = await produce(b, batch(["open"], pid: pid, epoch: epoch, seq: 1))

        // A new broker over the same log and coordinator state: the partition's state is rebuilt.
        let restarted = makeBroker(topics: topics, store: store)
        let before = await fetch(restarted, committed: true)
        XCTAssertEqual(before.lastStableOffset, 2, "the open transaction still holds the last stable offset")
        XCTAssertEqual(before.abortedTransactions, [.init(producerId: pid, firstOffset: 0)])
        XCTAssertEqual(try visible(before), [])
        await assertEqualAsync(await end(restarted, pid, epoch, commit: true), .none, "the transaction continues")
        let after = await fetch(restarted, committed: true)
        XCTAssertEqual(try visible(after), ["open"])
        XCTAssertEqual(try markers(after), [false, true])
    }

    func testAfterARestartDataWithoutAnOpenTransactionIsAborted() async throws {
        let topics = InMemoryTopicStore()
        let store = InMemoryTransactionStateStore()
        let b = makeBroker(topics: topics, store: store)
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        _ = await add(b, pid, epoch)
        _ = await produce(b, batch(["orphan"], pid: pid, epoch: epoch, seq: 0))
        // The coordinator's record of the transaction says it completed, but no marker reached the log.
        var t = try XCTUnwrap(store.load().transactions.first)
        t.state = .completeCommit
        t.partitions = []
        try store.save(t)
        let restarted = makeBroker(topics: topics, store: store)
        let after = await fetch(restarted, committed: true)
        XCTAssertEqual(after.lastStableOffset, 2, "the last stable offset is not stuck")
        XCTAssertEqual(try markers(after), [false])
        XCTAssertEqual(try visible(after), [])
    }

    func testAPreparedCommitIsCompletedAfterARestart() async throws {
        let topics = InMemoryTopicStore()
        let store = InMemoryTransactionStateStore()
        let offsets = InMemoryCommittedOffsetStore()
        let b = makeBroker(topics: topics, offsets: offsets, store: store)
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        _ = await add(b, pid, epoch)
        _ = await produce(b, batch(["kept"], pid: pid, epoch: epoch, seq: 0))
        // The broker stopped after saving PrepareCommit, before writing the marker.
        var t = try XCTUnwrap(store.load().transactions.first)
        t.state = .prepareCommit
        try store.save(t)
        let restarted = makeBroker(topics: topics, offsets: offsets, store: store)
        let after = await fetch(restarted, committed: true)
        XCTAssertEqual(try visible(after), ["kept"])
        XCTAssertEqual(try markers(after), [true])
        XCTAssertEqual(store.load().transactions.first?.state, .completeCommit)
    }

    func testAMarkerThatCannotBeMadeDurableLeavesTheTransactionPreparedUntilARetryOrTickCompletesIt() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-txnfail-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let manager = try LogManager(configuration: .init(dataDirectory: dir.path, fsyncPolicy: .always))
        let b = makeBroker(topics: manager, store: manager.transactionLog)
        await createTopic(b)
        let log = try XCTUnwrap(manager.partitionLogs(of: "t")?[0] as? Log)
        for commit in [true, false] {
            let (pid, epoch) = await initTxn(b)
            _ = await add(b, pid, epoch)
            _ = await produce(b, batch(["v"], pid: pid, epoch: epoch, seq: 0))
            log.faults.failNextSync()
            await assertEqualAsync(await end(b, pid, epoch, commit: commit), .coordinatorNotAvailable, "retriable")
            XCTAssertEqual(manager.transactionLog.load().transactions.first?.state, commit ? .prepareCommit : .prepareAbort)
            if commit {
                await assertEqualAsync(await end(b, pid, epoch, commit: true), .none, "the retry writes the marker again")
            } else {
                clock.advance(1000)
                await b.tick()
            }
            XCTAssertEqual(manager.transactionLog.load().transactions.first?.state, commit ? .completeCommit : .completeAbort)
        }
        let p = await fetch(b, committed: true)
        XCTAssertEqual(p.lastStableOffset, p.highWatermark)
        XCTAssertEqual(try visible(p), ["v"], "the committed value; the aborted one is dropped")
        await manager.shutdown()
    }

    func testDeletingATopicForgetsItsTransactionState() async {
        let store = InMemoryTransactionStateStore()
        let b = makeBroker(store: store)
        await createTopic(b)
        let (pid, epoch) = await initTxn(b)
        _ = await add(b, pid, epoch)
        XCTAssertEqual(store.load().partitions, [TopicPartition("t", 0)])
        _ = await b.deleteTopics(DeleteTopicsRequest(topicNames: ["t"], timeoutMs: 1000))
        XCTAssertEqual(store.load().partitions, [])
        XCTAssertEqual(store.load().transactions.first?.partitions, [])
        let partitions = await b.partitionTransactions
        XCTAssertTrue(partitions.isEmpty)
    }
}

/// XCTAssertEqual / XCTAssertNil for a value that needs `await` (XCTest's autoclosures are synchronous).
func assertEqualAsync<T: Equatable>(
    _ value: @autoclosure () async throws -> T, _ expected: T, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async rethrows {
    let v = try await value()
    XCTAssertEqual(v, expected, message, file: file, line: line)
}

func assertNilAsync<T>(_ value: @autoclosure () async throws -> T?, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) async rethrows {
    let v = try await value()
    XCTAssertNil(v, message, file: file, line: line)
}
