import KafkaProtocol
import NIOCore
import XCTest

/// AlterConfigs (33), IncrementalAlterConfigs (44) and ListOffsets v6–7, byte for byte against
/// Kafka's message specs.
final class ConfigMessagesTests: XCTestCase {
    func testAlterConfigsV0RequestGoldenBytes() throws {
        let r = AlterConfigsRequest(resources: [
            .init(resourceType: 2, resourceName: "t", configs: [.init(name: "a", value: "1"), .init(name: "b", value: nil)])
        ])
        var b = ByteBuffer()
        r.encode(into: &b, version: 0)
        let expected: [UInt8] = [
            0, 0, 0, 1,  // resources
            2, 0, 1, 0x74,  // type 2, "t"
            0, 0, 0, 2, 0, 1, 0x61, 0, 1, 0x31,  // configs: "a" = "1"
            0, 1, 0x62, 0xFF, 0xFF,  // "b" = null
            0,  // validate_only
        ]
        XCTAssertEqual(Array(b.readableBytesView), expected)
        XCTAssertEqual(try AlterConfigsRequest.decode(from: &b, version: 0), r)
    }

    func testIncrementalAlterConfigsV1IsFlexible() throws {
        let r = IncrementalAlterConfigsRequest(
            resources: [.init(resourceType: 2, resourceName: "t", configs: [.init(name: "a", operation: 3, value: "x")])], validateOnly: true)
        var b = ByteBuffer()
        r.encode(into: &b, version: 1)
        let expected: [UInt8] = [
            2,  // compact array of 1
            2, 2, 0x74,  // type 2, compact "t"
            2, 2, 0x61, 3, 2, 0x78, 0,  // configs: "a", SUBTRACT, "x", tags
            0,  // resource tags
            1, 0,  // validate_only, tags
        ]
        XCTAssertEqual(Array(b.readableBytesView), expected)
        XCTAssertEqual(try IncrementalAlterConfigsRequest.decode(from: &b, version: 1), r)
        XCTAssertEqual(b.readableBytes, 0)
    }

    func testAlterResponsesRoundTripAtEveryVersion() throws {
        let responses = [
            AlterConfigsResourceResponse(
                errorCode: .invalidConfig, errorMessage: "topic config compression.type=bogus ...", resourceType: 2, resourceName: "t"),
            AlterConfigsResourceResponse(errorCode: .none, resourceType: 2, resourceName: "u"),
        ]
        for v: Int16 in 0...2 {
            var b = ByteBuffer()
            AlterConfigsResponse(responses: responses).encode(into: &b, version: v)
            XCTAssertEqual(try AlterConfigsResponse.decode(from: &b, version: v).responses, responses, "v\(v)")
            XCTAssertEqual(b.readableBytes, 0)
        }
        for v: Int16 in 0...1 {
            var b = ByteBuffer()
            IncrementalAlterConfigsResponse(responses: responses).encode(into: &b, version: v)
            XCTAssertEqual(try IncrementalAlterConfigsResponse.decode(from: &b, version: v).responses, responses, "v\(v)")
            XCTAssertEqual(b.readableBytes, 0)
        }
        var v0 = ByteBuffer()
        AlterConfigsResponse(responses: [responses[1]]).encode(into: &v0, version: 0)
        XCTAssertEqual(Array(v0.readableBytesView), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xFF, 0xFF, 2, 0, 1, 0x75])
    }

    func testListOffsetsV7MaxTimestampRequestAndFlexibleResponse() throws {
        let r = ListOffsetsRequest(topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, currentLeaderEpoch: -1, timestamp: ListOffsetsRequest.maxTimestamp)])
        ])
        var b = ByteBuffer()
        r.encode(into: &b, version: 7)
        let expected: [UInt8] =
            [0xFF, 0xFF, 0xFF, 0xFF, 0]  // replica -1, isolation 0
            + [2, 2, 0x74, 2]  // topics[1]: "t", partitions[1]
            + [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF] + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFD] + [0]  // index, epoch, -3, tags
            + [0, 0]  // topic tags, request tags
        XCTAssertEqual(Array(b.readableBytesView), expected)
        XCTAssertEqual(try ListOffsetsRequest.decode(from: &b, version: 7).topics, r.topics)
        let response = ListOffsetsResponse(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, errorCode: .none, timestamp: 5, offset: 9)])])
        var out = ByteBuffer()
        response.encode(into: &out, version: 7)
        let expectedResponse: [UInt8] =
            [0, 0, 0, 0, 2, 2, 0x74, 2, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 5] + [0, 0, 0, 0, 0, 0, 0, 9] + [0, 0, 0, 0, 0] + [0, 0]
        XCTAssertEqual(Array(out.readableBytesView), expectedResponse)
        XCTAssertEqual(ApiKey.listOffsets.supportedVersions, 1...7)
    }
}
