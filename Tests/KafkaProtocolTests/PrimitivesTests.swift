import KafkaProtocol
import NIOCore
import XCTest

final class PrimitivesTests: XCTestCase {
    func testZigzagVarintKnownEncodings() throws {
        let cases: [(Int32, [UInt8])] = [
            (0, [0x00]), (-1, [0x01]), (1, [0x02]), (-2, [0x03]), (150, [0xAC, 0x02]), (Int32.max, [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
            (Int32.min, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ]
        for (value, bytes) in cases {
            var b = ByteBuffer()
            b.encodeVarint(value)
            XCTAssertEqual(Array(b.readableBytesView), bytes, "encoding \(value)")
            XCTAssertEqual(try b.decodeVarint(), value)
            XCTAssertEqual(b.readableBytes, 0)
        }
    }

    func testVarlongRoundTripExtremes() throws {
        for v: Int64 in [0, -1, 1, 63, -64, 64, Int64(Int32.max) + 1, Int64.max, Int64.min] {
            var b = ByteBuffer()
            b.encodeVarlong(v)
            XCTAssertEqual(try b.decodeVarlong(), v)
        }
    }

    func testUnsignedVarintRejectsOverlongAndTruncated() {
        var long = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        XCTAssertThrowsError(try long.decodeUnsignedVarint())
        var cut = ByteBuffer(bytes: [0x80, 0x80])
        XCTAssertThrowsError(try cut.decodeUnsignedVarint())
        var tooManyLongBytes = ByteBuffer(bytes: [UInt8](repeating: 0xFF, count: 11))
        XCTAssertThrowsError(try tooManyLongBytes.decodeUnsignedVarlong())
    }

    func testStrings() throws {
        var b = ByteBuffer()
        b.encodeString("héllo")
        b.encodeNullableString(nil)
        b.encodeCompactNullableString("kafka")
        b.encodeCompactNullableString(nil)
        XCTAssertEqual(Array(b.readableBytesView.prefix(2)), [0x00, 0x06])
        XCTAssertEqual(try b.decodeString(), "héllo")
        XCTAssertNil(try b.decodeNullableString())
        XCTAssertEqual(try b.decodeCompactString(), "kafka")
        XCTAssertNil(try b.decodeCompactNullableString())
        XCTAssertEqual(b.readableBytes, 0)
    }

    func testStringLongerThanBufferThrows() {
        var b = ByteBuffer(bytes: [0x00, 0x10, 0x41])
        XCTAssertThrowsError(try b.decodeString()) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .truncated) }
        var negative = ByteBuffer(bytes: [0xFF, 0xFE])
        XCTAssertThrowsError(try negative.decodeNullableString())
    }

    func testArrayCountIsBoundedByBytesLeftBeforeAllocating() {
        var b = ByteBuffer()
        b.encodeInt32(Int32.max)
        b.encodeInt32(7)
        XCTAssertThrowsError(try b.decodeArray { try $0.decodeInt32() }) { error in
            XCTAssertNotNil(error as? KafkaProtocolError)
        }
        var compact = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        XCTAssertThrowsError(try compact.decodeCompactArray { try $0.decodeInt8() })
    }

    func testArraysRoundTrip() throws {
        var b = ByteBuffer()
        b.encodeArray([1, 2, 3] as [Int32]) { $0.encodeInt32($1) }
        b.encodeNullableArray(nil as [Int32]?) { $0.encodeInt32($1) }
        b.encodeCompactNullableArray(["a", "b"]) { $0.encodeCompactNullableString($1) }
        XCTAssertEqual(try b.decodeArray { try $0.decodeInt32() }, [1, 2, 3])
        XCTAssertNil(try b.decodeNullableArray { try $0.decodeInt32() })
        XCTAssertEqual(try b.decodeCompactArray { try $0.decodeCompactString() }, ["a", "b"])
    }

    func testTaggedFieldsAreSkipped() throws {
        var b = ByteBuffer()
        b.encodeUnsignedVarint(2)
        b.encodeUnsignedVarint(0)
        b.encodeUnsignedVarint(3)
        b.writeBytes([1, 2, 3])
        b.encodeUnsignedVarint(5)
        b.encodeUnsignedVarint(0)
        b.encodeInt8(42)
        try b.skipTaggedFields()
        XCTAssertEqual(try b.decodeInt8(), 42)
        var bad = ByteBuffer(bytes: [0x01, 0x00, 0x09, 0x01])
        XCTAssertThrowsError(try bad.skipTaggedFields())
    }

    func testCRC32CKnownValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        // Slicing-by-8 and the byte-wise tail agree for every length.
        let data = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for n in 0...data.count {
            let whole = CRC32C.checksum(Array(data[..<n]))
            let split = data[..<n].withUnsafeBytes { raw -> UInt32 in
                let half = n / 2
                let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<half]))
                return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[half...]), continuing: first)
            }
            XCTAssertEqual(whole, split, "length \(n)")
        }
    }

    func testCRC32CHardwareAndTablePathsAgree() {
        XCTAssertEqual("123456789".utf8.withContiguousStorageIfAvailable { CRC32C.tableChecksum(UnsafeRawBufferPointer($0)) }, 0xE306_9283)
        // Every length and misalignment up to 300 bytes, and continuation from a nonzero value.
        let data = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        data.withUnsafeBytes { raw in
            for start in 0..<9 {
                for end in start...raw.count {
                    let part = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    XCTAssertEqual(CRC32C.checksum(part), CRC32C.tableChecksum(part), "bytes \(start)..<\(end)")
                    XCTAssertEqual(CRC32C.checksum(part, continuing: 0xDEAD_BEEF), CRC32C.tableChecksum(part, continuing: 0xDEAD_BEEF))
                }
            }
        }
    }

    /// Long buffers take the three-stream path (blocks of 3 x 4096 bytes, joined with shift tables):
    /// lengths around the block edges, misaligned starts and continuation, against the table path.
    func testCRC32CHardwareThreeStreamPathAgreesWithTablePath() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<(1 << 20) + 100).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let block = 3 * 4096
        let lengths = [block - 1, block, block + 1, block + 8, 2 * block - 3, 2 * block, 5 * block + 7, 1 << 20, (1 << 20) + 99]
        data.withUnsafeBytes { raw in
            for start in [0, 1, 3, 8] {
                for n in lengths where start + n <= raw.count {
                    let part = UnsafeRawBufferPointer(rebasing: raw[start..<(start + n)])
                    XCTAssertEqual(CRC32C.checksum(part), CRC32C.tableChecksum(part), "bytes \(start)..<\(start + n)")
                    XCTAssertEqual(
                        CRC32C.checksum(part, continuing: 0x1234_5678), CRC32C.tableChecksum(part, continuing: 0x1234_5678),
                        "bytes \(start)..<\(start + n), continued")
                }
            }
        }
    }
}
