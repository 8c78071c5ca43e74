import Foundation
import XCTest

@testable import TapeBroker

/// The bytes of the `.index` and `.timeindex` files and which files count as well-formed.
final class SegmentIndexTests: StorageTestCase {
    func testOffsetIndexFileIsBigEndianRelativeOffsetThenPosition() throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("0.index")
        let index = try OffsetIndex(path: path, faults: nil)
        try index.append(.init(relativeOffset: 1, position: 0x0102))
        try index.append(.init(relativeOffset: 0x0A0B_0C0D, position: 0x1000_0000))
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: path))), [0, 0, 0, 1, 0, 0, 1, 2, 0x0A, 0x0B, 0x0C, 0x0D, 0x10, 0, 0, 0])
        XCTAssertEqual(index.floor(0), nil)
        XCTAssertEqual(index.floor(1)?.position, 0x0102)
        XCTAssertEqual(index.floor(0x0A0B_0C0C)?.position, 0x0102)
        XCTAssertEqual(index.floor(UInt32.max)?.position, 0x1000_0000)
        index.file.close()
        let reopened = try OffsetIndex(path: path, faults: nil)
        XCTAssertTrue(reopened.wellFormed)
        XCTAssertEqual(reopened.entries, index.entries)
    }

    func testOffsetIndexEntriesMustStrictlyIncreaseInBothFields() {
        XCTAssertNotNil(OffsetIndex.parse([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2]))
        XCTAssertNil(OffsetIndex.parse([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2]))
        XCTAssertNil(OffsetIndex.parse([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1]))
        XCTAssertNil(OffsetIndex.parse([0, 0, 0, 1, 0, 0, 0]))
    }

    func testTimeIndexFileIsBigEndianTimestampThenRelativeOffset() throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("0.timeindex")
        let index = try TimeIndex(path: path, faults: nil)
        try index.maybeAppend(.init(timestamp: -2, relativeOffset: 3))
        try index.maybeAppend(.init(timestamp: -2, relativeOffset: 4))  // not larger: skipped
        try index.maybeAppend(.init(timestamp: 0x0102_0304_0506_0708, relativeOffset: 3))
        XCTAssertEqual(
            Array(try Data(contentsOf: URL(fileURLWithPath: path))),
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3])
        XCTAssertEqual(index.lastBefore(-2), nil)
        XCTAssertEqual(index.lastBefore(-1)?.timestamp, -2)
        XCTAssertEqual(index.lastBefore(Int64.max)?.timestamp, 0x0102_0304_0506_0708)
        // Timestamps strictly increase; relative offsets may repeat but not go back.
        XCTAssertNil(TimeIndex.parse(TimeIndex.encode([.init(timestamp: 5, relativeOffset: 1), .init(timestamp: 5, relativeOffset: 2)])))
        XCTAssertNil(TimeIndex.parse(TimeIndex.encode([.init(timestamp: 5, relativeOffset: 2), .init(timestamp: 6, relativeOffset: 1)])))
    }

    func testRewriteDiscardAndAMalformedFile() throws {
        let path = (temporaryDirectory() as NSString).appendingPathComponent("0.index")
        try Data([0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3]).write(to: URL(fileURLWithPath: path))
        let index = try OffsetIndex(path: path, faults: nil)
        XCTAssertFalse(index.wellFormed)
        XCTAssertEqual(index.entries, [])
        try index.rewrite([.init(relativeOffset: 1, position: 1), .init(relativeOffset: 2, position: 9)])
        XCTAssertTrue(index.wellFormed)
        index.discard(toCount: 1)
        XCTAssertEqual(index.entries, [.init(relativeOffset: 1, position: 1)])
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: path))), [0, 0, 0, 1, 0, 0, 0, 1])
    }
}
