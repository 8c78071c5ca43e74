import KafkaProtocol
import NIOCore
import XCTest

/// The transaction APIs' wire format (requests round-trip in RoundTripTests through Samples).
final class TransactionMessageTests: XCTestCase {
    func testResponsesRoundTripAtEveryVersion() throws {
        for v in Int16(0)...3 {
            var add = AddPartitionsToTxnResponse(
                results: [.init(name: "t", partitions: [.init(partitionIndex: 0, errorCode: .none), .init(partitionIndex: 2, errorCode: .producerFenced)])])
            add.throttleTimeMs = 9
            var b = ByteBuffer()
            add.encode(into: &b, version: v)
            XCTAssertEqual(try AddPartitionsToTxnResponse.decode(from: &b, version: v), add, "v\(v)")
            XCTAssertEqual(b.readableBytes, 0)

            let end = EndTxnResponse(errorCode: .invalidTxnState)
            b = ByteBuffer()
            end.encode(into: &b, version: v)
            XCTAssertEqual(b.readableBytes, v >= 3 ? 7 : 6, "throttle, error code, and tagged fields from v3")
            XCTAssertEqual(try EndTxnResponse.decode(from: &b, version: v), end)

            let commit = TxnOffsetCommitResponse(topics: [.init(name: "t", partitions: [.init(partitionIndex: 1, errorCode: .unknownMemberId)])])
            b = ByteBuffer()
            commit.encode(into: &b, version: v)
            XCTAssertEqual(try TxnOffsetCommitResponse.decode(from: &b, version: v), commit)
            XCTAssertEqual(b.readableBytes, 0)
        }
    }

    func testInitProducerIdV4RequestAndResponseAreFlexible() throws {
        var b = ByteBuffer()
        InitProducerIdRequest(transactionalId: "tx", transactionTimeoutMs: 1000, producerId: 5, producerEpoch: 1).encode(into: &b, version: 4)
        XCTAssertEqual(Array(b.readableBytesView), [3, 0x74, 0x78, 0, 0, 0x03, 0xE8, 0, 0, 0, 0, 0, 0, 0, 5, 0, 1, 0])
        var nullId = ByteBuffer()
        InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 1000).encode(into: &nullId, version: 2)
        XCTAssertEqual(Array(nullId.readableBytesView), [0, 0, 0, 0x03, 0xE8, 0], "null compact string, no producer fields before v3")
        for v in Int16(0)...4 {
            var r = ByteBuffer()
            let response = InitProducerIdResponse(errorCode: .producerFenced, producerId: 9, producerEpoch: 2)
            response.encode(into: &r, version: v)
            XCTAssertEqual(r.readableBytes, v >= 2 ? 17 : 16)
            XCTAssertEqual(try InitProducerIdResponse.decode(from: &r, version: v), response)
        }
    }

    func testEndTxnV3RequestGoldenBytes() {
        var frame = ByteBuffer()
        EndTxnRequest(transactionalId: "tx", producerId: 258, producerEpoch: 3, committed: true).encode(into: &frame, version: 3)
        // compact string "tx" (length+1), producer id, epoch, committed, empty tagged fields
        XCTAssertEqual(Array(frame.readableBytesView), [3, 0x74, 0x78, 0, 0, 0, 0, 0, 0, 1, 2, 0, 3, 1, 0])
        var v0 = ByteBuffer()
        EndTxnRequest(transactionalId: "tx", producerId: 258, producerEpoch: 3, committed: false).encode(into: &v0, version: 0)
        XCTAssertEqual(Array(v0.readableBytesView), [0, 2, 0x74, 0x78, 0, 0, 0, 0, 0, 0, 1, 2, 0, 3, 0])
    }

    func testAddPartitionsToTxnV3UsesCompactArraysAndTaggedFields() throws {
        let r = AddPartitionsToTxnRequest(transactionalId: "a", producerId: 1, producerEpoch: 0, topics: [.init(name: "t", partitions: [5])])
        var b = ByteBuffer()
        r.encode(into: &b, version: 3)
        XCTAssertEqual(
            Array(b.readableBytesView),
            [2, 0x61] + [0, 0, 0, 0, 0, 0, 0, 1] + [0, 0] + [2] + [2, 0x74] + [2, 0, 0, 0, 5] + [0] + [0])
        XCTAssertEqual(try AddPartitionsToTxnRequest.decode(from: &b, version: 3), r)
    }

    func testTxnOffsetCommitV3CarriesTheGroupMemberFields() throws {
        let r = TxnOffsetCommitRequest(
            transactionalId: "tx", groupId: "g", producerId: 1, producerEpoch: 2, generationId: 7, memberId: "m", groupInstanceId: nil,
            topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 10, committedLeaderEpoch: 4, committedMetadata: nil)])])
        for v in Int16(0)...3 {
            var b = ByteBuffer()
            r.encode(into: &b, version: v)
            let back = try TxnOffsetCommitRequest.decode(from: &b, version: v)
            XCTAssertEqual(back.generationId, v >= 3 ? 7 : -1, "v\(v)")
            XCTAssertEqual(back.memberId, v >= 3 ? "m" : "")
            XCTAssertEqual(back.topics[0].partitions[0].committedLeaderEpoch, v >= 2 ? 4 : -1)
            XCTAssertEqual(b.readableBytes, 0)
        }
    }

    func testFetchResponseListsAbortedTransactions() throws {
        var p = FetchResponse.Partition(partitionIndex: 0, errorCode: .none, highWatermark: 10, lastStableOffset: 8, logStartOffset: 0, records: ByteBuffer())
        p.abortedTransactions = [.init(producerId: 7, firstOffset: 3)]
        let response = FetchResponse(topics: [.init(topic: "t", partitions: [p])])
        var b = ByteBuffer()
        response.encode(into: &b, version: 4)
        // throttle, topics[1], "t", partitions[1], index, error, hw, lso, aborted[1] (pid, first), records (empty)
        var expected: [UInt8] = [0, 0, 0, 0] + [0, 0, 0, 1] + [0, 1, 0x74] + [0, 0, 0, 1] + [0, 0, 0, 0] + [0, 0]
        expected += [0, 0, 0, 0, 0, 0, 0, 10] + [0, 0, 0, 0, 0, 0, 0, 8]
        expected += [0, 0, 0, 1] + [0, 0, 0, 0, 0, 0, 0, 7] + [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0]
        XCTAssertEqual(Array(b.readableBytesView), expected)
        var none = ByteBuffer()
        FetchResponse(topics: [
            .init(
                topic: "t",
                partitions: [.init(partitionIndex: 0, errorCode: .none, highWatermark: 10, lastStableOffset: 8, logStartOffset: 0, records: ByteBuffer())])
        ]).encode(into: &none, version: 4)
        XCTAssertEqual(Array(none.readableBytesView)[37..<41], [255, 255, 255, 255], "no list: null")
    }

    func testControlBatchMarkerIsAValidBatchWithTheMarkerRecord() throws {
        for commit in [true, false] {
            let marker = ControlBatch.marker(producerId: 99, producerEpoch: 4, commit: commit, coordinatorEpoch: 6, timestamp: 1234)
            let batches = try RecordBatchValidator.validate(records: marker, maxBatchBytes: 1 << 20)
            XCTAssertEqual(batches.count, 1)
            let h = batches[0].header
            XCTAssertEqual(h.attributes, 0x30)
            XCTAssertTrue(h.isControl && h.isTransactional)
            XCTAssertEqual(h.producerId, 99)
            XCTAssertEqual(h.producerEpoch, 4)
            XCTAssertEqual(h.baseSequence, -1)
            XCTAssertEqual(ControlBatch.isCommit(marker), commit)
            var body = marker
            body.moveReaderIndex(forwardBy: RecordBatchHeader.size)
            let record = try XCTUnwrap(Record.decodeAll(from: &body, count: 1).first)
            XCTAssertEqual(record.key, [0, 0, 0, commit ? 1 : 0])
            XCTAssertEqual(record.value, [0, 0, 0, 0, 0, 6])
        }
        let data = RecordBatchBuilder.build(records: [Record(offsetDelta: 0, key: nil, value: [1])], baseTimestamp: 1)
        XCTAssertNil(ControlBatch.isCommit(data), "not a control batch")
    }
}
