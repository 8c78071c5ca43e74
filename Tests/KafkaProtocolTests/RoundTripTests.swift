import KafkaProtocol
import NIOCore
import XCTest

final class RoundTripTests: XCTestCase {
    func testEveryRequestAtEverySupportedVersionRoundTrips() throws {
        var count = 0
        for key in ApiKey.allCases {
            for v in key.supportedVersions {
                let body = Samples.requests(version: v, key: key)
                var frame = Samples.frame(body, version: v)
                let bytes = Array(frame.readableBytesView)
                let decoded = try KafkaRequest.decode(frame: &frame)
                XCTAssertEqual(decoded.body, body, "\(key) v\(v)")
                XCTAssertEqual(decoded.header.correlationId, 7)
                XCTAssertEqual(decoded.header.clientId, "tape-test")
                XCTAssertEqual(Array(decoded.encodeFrameBody().readableBytesView), bytes, "\(key) v\(v)")
                count += 1
            }
        }
        XCTAssertGreaterThan(count, 60)
    }

    func testFlexibleApiVersionsV3UsesHeaderV2AndCompactStrings() throws {
        let frame = Samples.frame(.apiVersions(ApiVersionsRequest(clientSoftwareName: "tape", clientSoftwareVersion: "0.1")), version: 3, correlationId: 1)
        // key 18, v3, correlation 1, client id "tape-test" (classic string), empty tags, "tape", "0.1", empty tags
        let expected: [UInt8] = [0, 18, 0, 3, 0, 0, 0, 1, 0, 9] + Array("tape-test".utf8) + [0, 5] + Array("tape".utf8) + [4] + Array("0.1".utf8) + [0]
        XCTAssertEqual(Array(frame.readableBytesView), expected)
    }

    /// What librdkafka 2.0.2 leaves after requests is accepted (ClientQuirks): a second empty tag section
    /// after ListGroups v4, OffsetFetch v7's unfinalized 4-byte count; any other trailing byte (and
    /// any extra byte after a non-flexible request) is refused.
    func testTrailingBytesOfLibrdkafka20AreAcceptedAndNothingElse() throws {
        var doubled = Samples.frame(.listGroups(ListGroupsRequest(statesFilter: [])), version: 4)
        doubled.writeBytes([0])
        XCTAssertEqual(try KafkaRequest.decode(frame: &doubled).body, .listGroups(ListGroupsRequest(statesFilter: [])))
        var nonZero = Samples.frame(.listGroups(ListGroupsRequest(statesFilter: [])), version: 4)
        nonZero.writeBytes([1])
        XCTAssertThrowsError(try KafkaRequest.decode(frame: &nonZero)) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .trailingBytes) }
        var two = Samples.frame(.listGroups(ListGroupsRequest(statesFilter: [])), version: 4)
        two.writeBytes([0, 0])
        XCTAssertThrowsError(try KafkaRequest.decode(frame: &two)) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .trailingBytes) }
        // OffsetFetch v7 for all topics as librdkafka 2.0.2 sends it: a 4-byte unfinalized count, requireStable, tags.
        var header = ByteBuffer()
        RequestHeader(apiKey: 9, apiVersion: 7, correlationId: 7, clientId: "rdk").encode(into: &header, headerVersion: 2)
        for stable: UInt8 in [0, 1] {
            var allTopics = header
            allTopics.writeBytes([2] + Array("g".utf8) + [0, 0, 0, 0, stable, 0])
            guard case .offsetFetch(let r) = try KafkaRequest.decode(frame: &allTopics).body else { return XCTFail("not OffsetFetch") }
            XCTAssertEqual(r.groupId, "g")
            XCTAssertNil(r.topics)
            XCTAssertEqual(r.requireStable, stable == 1)
        }
        var wrong = header
        wrong.writeBytes([2] + Array("g".utf8) + [0, 0, 0, 7, 1, 0])
        XCTAssertThrowsError(try KafkaRequest.decode(frame: &wrong)) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .trailingBytes) }
        var classic = Samples.frame(Samples.requests(version: 1, key: .heartbeat), version: 1)
        classic.writeBytes([0])
        XCTAssertThrowsError(try KafkaRequest.decode(frame: &classic)) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .trailingBytes) }
    }

    func testUnknownKeyUnsupportedVersionTrailingBytesAndTruncationThrow() {
        var unknown = ByteBuffer(bytes: [0, 99, 0, 0, 0, 0, 0, 1, 255, 255])
        XCTAssertThrowsError(try KafkaRequest.decode(frame: &unknown)) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .unknownApiKey) }
        var oldFetch = Samples.frame(Samples.requests(version: 4, key: .fetch), version: 4)
        oldFetch.setInteger(Int16(3), at: 2, endianness: .big)
        XCTAssertThrowsError(try KafkaRequest.decode(frame: &oldFetch)) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .unsupportedVersion) }
        var trailing = Samples.frame(Samples.requests(version: 1, key: .heartbeat), version: 1)
        trailing.writeBytes([1, 2, 3])
        XCTAssertThrowsError(try KafkaRequest.decode(frame: &trailing)) { XCTAssertEqual(($0 as? KafkaProtocolError)?.code, .trailingBytes) }
        let full = Samples.frame(Samples.requests(version: 5, key: .joinGroup), version: 5)
        for cut in 0..<full.readableBytes {
            var truncated = full.getSlice(at: 0, length: cut)!
            XCTAssertThrowsError(try KafkaRequest.decode(frame: &truncated), "cut at \(cut)")
        }
    }

    func testUnsupportedApiVersionsGetsAV0BodyWithErrorAndHeaderV0() throws {
        var future = Samples.frame(.apiVersions(ApiVersionsRequest(clientSoftwareName: "x", clientSoftwareVersion: "y")), version: 3, correlationId: 5)
        future.setInteger(Int16(9), at: 2, endianness: .big)
        XCTAssertEqual(try KafkaRequest.decode(frame: &future).body, .unsupportedApiVersions)

        var frame = KafkaResponse.encodeFrame(ApiVersionsResponse.supported(errorCode: .unsupportedVersion), apiKey: .apiVersions, version: 0, correlationId: 5)
        XCTAssertEqual(try frame.decodeInt32(), Int32(frame.readableBytes))
        XCTAssertEqual(try frame.decodeInt32(), 5)  // header v0: no tagged fields
        let body = try ApiVersionsResponse.decode(from: &frame, version: 0)
        XCTAssertEqual(frame.readableBytes, 0)
        XCTAssertEqual(body.errorCode, .unsupportedVersion)
        XCTAssertEqual(body.apiKeys.first { $0.apiKey == 18 }?.maxVersion, 3)
    }

    func testApiVersionsV3ResponseKeepsHeaderV0AndAdvertisesTheRanges() throws {
        var frame = KafkaResponse.encodeFrame(ApiVersionsResponse.supported(), apiKey: .apiVersions, version: 3, correlationId: 9)
        _ = try frame.decodeInt32()
        XCTAssertEqual(try frame.decodeInt32(), 9)
        let body = try ApiVersionsResponse.decode(from: &frame, version: 3)
        XCTAssertEqual(frame.readableBytes, 0)
        let ranges = Dictionary(uniqueKeysWithValues: body.apiKeys.map { ($0.apiKey, $0.minVersion...$0.maxVersion) })
        XCTAssertEqual(ranges[0], 0...8)
        XCTAssertEqual(ranges[1], 4...11)
        XCTAssertEqual(ranges[3], 0...8)
        XCTAssertEqual(ranges[9], 1...8)
        XCTAssertEqual(ranges[22], 0...4)
        XCTAssertEqual(ranges[16], 0...5)
        XCTAssertEqual(ranges[21], 0...2)
        XCTAssertEqual(ranges[37], 0...3)
        XCTAssertEqual(ranges[42], 0...2)
        XCTAssertEqual(ranges[47], 0...0)
        XCTAssertEqual(ranges[60], 0...1)
        XCTAssertEqual(ranges[2], 1...7)
        XCTAssertEqual(ranges[33], 0...2)
        XCTAssertEqual(ranges[44], 0...1)
        // Every advertised maximum stays below the first flexible version, except where flexible versions are implemented.
        let flexibleImplemented: Set<ApiKey> = [
            .apiVersions, .offsetFetch, .listGroups, .createPartitions, .deleteRecords, .deleteGroups, .describeCluster, .listOffsets, .alterConfigs,
            .incrementalAlterConfigs, .saslAuthenticate, .describeUserScramCredentials, .alterUserScramCredentials, .addPartitionsToTxn, .addOffsetsToTxn,
            .endTxn, .txnOffsetCommit, .initProducerId, .describeAcls, .createAcls, .deleteAcls,
        ]
        for key in ApiKey.allCases where !flexibleImplemented.contains(key) {
            XCTAssertLessThan(key.supportedVersions.upperBound, key.firstFlexibleVersion, "\(key)")
        }
    }

    func testMetadataV0ResponseGoldenBytes() {
        let r = MetadataResponse(
            brokers: [.init(nodeId: 0, host: "h", port: 9092)], clusterId: "c", controllerId: 0,
            topics: [.init(errorCode: .none, name: "t", partitions: [.init(partitionIndex: 0, leaderId: 0, replicaNodes: [0], isrNodes: [0])])])
        var b = ByteBuffer()
        r.encode(into: &b, version: 0)
        let expected: [UInt8] = [
            0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0x68, 0, 0, 0x23, 0x84,  // brokers
            0, 0, 0, 1, 0, 0, 0, 1, 0x74, 0, 0, 0, 1,  // topics: count, error, name, partition count
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,  // partition: error, index, leader, replicas [0], isr [0]
        ]
        XCTAssertEqual(Array(b.readableBytesView), expected)
    }
}
