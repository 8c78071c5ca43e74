import KafkaProtocol
import NIOCore
import XCTest

@testable import TapeBroker

final class ProducerStateTableTests: XCTestCase {
    func header(pid: Int64 = 7, epoch: Int16 = 0, seq: Int32, count: Int32) -> RecordBatchHeader {
        RecordBatchHeader(
            baseOffset: 0, batchLength: 0, partitionLeaderEpoch: 0, magic: 2, crc: 0, attributes: 0, lastOffsetDelta: count - 1, baseTimestamp: 0,
            maxTimestamp: 0,
            producerId: pid, producerEpoch: epoch, baseSequence: seq, recordCount: count)
    }

    let tp = TopicPartition("t", 0)

    func testInOrderDuplicateAndOutOfOrder() {
        var s = ProducerStateTable()
        s.issued(producerId: 7)
        XCTAssertEqual(s.check(header(seq: 3, count: 1), partition: tp), .reject(.outOfOrderSequenceNumber, s.rejectMessage(header(seq: 3, count: 1))))
        XCTAssertEqual(s.check(header(seq: 0, count: 2), partition: tp), .append)
        s.record(header(seq: 0, count: 2), partition: tp, baseOffset: 100)
        XCTAssertEqual(s.check(header(seq: 0, count: 2), partition: tp), .duplicate(baseOffset: 100))
        XCTAssertEqual(s.check(header(seq: 2, count: 3), partition: tp), .append)
        s.record(header(seq: 2, count: 3), partition: tp, baseOffset: 102)
        XCTAssertEqual(s.check(header(seq: 2, count: 3), partition: tp), .duplicate(baseOffset: 102))
        guard case .reject(let code, _) = s.check(header(seq: 9, count: 1), partition: tp) else { return XCTFail() }
        XCTAssertEqual(code, .outOfOrderSequenceNumber)
        // Other partitions are independent.
        XCTAssertEqual(s.check(header(seq: 0, count: 1), partition: TopicPartition("t", 1)), .append)
    }

    func testEpochs() {
        var s = ProducerStateTable()
        s.record(header(epoch: 1, seq: 0, count: 1), partition: tp, baseOffset: 0)
        guard case .reject(let code, _) = s.check(header(epoch: 0, seq: 1, count: 1), partition: tp) else { return XCTFail() }
        XCTAssertEqual(code, .invalidProducerEpoch)
        XCTAssertEqual(s.check(header(epoch: 2, seq: 0, count: 1), partition: tp), .append)
    }

    func testNonIdempotentBatchesAreNotTracked() {
        let s = ProducerStateTable()
        XCTAssertEqual(s.check(header(pid: -1, seq: -1, count: 1), partition: tp), .append)
    }

    func testSequenceWrapsAtInt32Max() {
        var s = ProducerStateTable()
        s.record(header(seq: Int32.max - 1, count: 2), partition: tp, baseOffset: 0)
        XCTAssertEqual(s.check(header(seq: 0, count: 1), partition: tp), .append)
    }
}

extension ProducerStateTable {
    func rejectMessage(_ h: RecordBatchHeader) -> String {
        if case .reject(_, let m) = check(h, partition: TopicPartition("t", 0)) { return m }
        return ""
    }
}
