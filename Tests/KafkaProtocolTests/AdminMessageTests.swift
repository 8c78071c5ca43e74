import KafkaProtocol
import NIOCore
import XCTest

/// The admin messages: every response round-trips at every version, golden bytes for the flexible
/// encodings, and malformed requests are refused. (Requests round-trip in RoundTripTests via Samples.)
final class AdminMessageTests: XCTestCase {
    func roundTrip<R: KafkaResponseMessage & Equatable>(
        _ response: R, versions: ClosedRange<Int16>, decode: (inout ByteBuffer, Int16) throws -> R, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        for v in versions {
            var b = ByteBuffer()
            response.encode(into: &b, version: v)
            XCTAssertEqual(try decode(&b, v), response, "v\(v)", file: file, line: line)
            XCTAssertEqual(b.readableBytes, 0, "v\(v): bytes left", file: file, line: line)
        }
    }

    func testResponsesRoundTripAtEveryVersion() throws {
        try roundTrip(
            CreatePartitionsResponse(results: [.init(name: "t", errorCode: .none), .init(name: "u", errorCode: .invalidPartitions, errorMessage: "no")]),
            versions: ApiKey.createPartitions.supportedVersions, decode: { try CreatePartitionsResponse.decode(from: &$0, version: $1) })
        try roundTrip(
            DeleteRecordsResponse(topics: [
                .init(
                    name: "t",
                    partitions: [
                        .init(partitionIndex: 0, lowWatermark: 5, errorCode: .none), .init(partitionIndex: 1, lowWatermark: -1, errorCode: .offsetOutOfRange),
                    ])
            ]), versions: ApiKey.deleteRecords.supportedVersions, decode: { try DeleteRecordsResponse.decode(from: &$0, version: $1) })
        try roundTrip(
            DeleteGroupsResponse(results: [.init(groupId: "g", errorCode: .none), .init(groupId: "h", errorCode: .nonEmptyGroup)]),
            versions: ApiKey.deleteGroups.supportedVersions, decode: { try DeleteGroupsResponse.decode(from: &$0, version: $1) })
        try roundTrip(
            OffsetDeleteResponse(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, errorCode: .groupSubscribedToTopic)])]),
            versions: ApiKey.offsetDelete.supportedVersions, decode: { try OffsetDeleteResponse.decode(from: &$0, version: $1) })
        try roundTrip(
            DescribeClusterResponse(
                clusterId: "c", controllerId: 0, brokers: [.init(brokerId: 0, host: "h", port: 9092), .init(brokerId: 1, host: "i", port: 1, rack: "r")],
                clusterAuthorizedOperations: 256), versions: ApiKey.describeCluster.supportedVersions,
            decode: { try DescribeClusterResponse.decode(from: &$0, version: $1) })
        for v in ApiKey.listGroups.supportedVersions {
            let r = ListGroupsResponse(groups: [
                .init(groupId: "g", protocolType: "consumer", groupState: v >= 4 ? "Stable" : "", groupType: v >= 5 ? "Classic" : "")
            ])
            try roundTrip(r, versions: v...v, decode: { try ListGroupsResponse.decode(from: &$0, version: $1) })
        }
        for v in ApiKey.offsetFetch.supportedVersions {
            let partitions: [OffsetFetchResponse.Partition] = [
                .init(partitionIndex: 0, committedOffset: 7, committedLeaderEpoch: v >= 5 ? 2 : -1, metadata: "m", errorCode: .none),
                .init(partitionIndex: 1, committedOffset: -1, metadata: nil, errorCode: .none),
            ]
            let r =
                v >= 8
                ? OffsetFetchResponse(groups: [
                    .init(groupId: "g", topics: [.init(name: "t", partitions: partitions)]), .init(groupId: "h", topics: [], errorCode: .groupIdNotFound),
                ])
                : OffsetFetchResponse(topics: [.init(name: "t", partitions: partitions)], errorCode: v >= 2 ? .coordinatorNotAvailable : .none)
            try roundTrip(r, versions: v...v, decode: { try OffsetFetchResponse.decode(from: &$0, version: $1) })
        }
    }

    func testDeleteGroupsV2GoldenBytes() throws {
        var request = ByteBuffer()
        DeleteGroupsRequest(groupsNames: ["ab"]).encode(into: &request, version: 2)
        XCTAssertEqual(Array(request.readableBytesView), [2, 3, 0x61, 0x62, 0])  // compact array of 1, compact string "ab", tags
        var classic = ByteBuffer()
        DeleteGroupsRequest(groupsNames: ["ab"]).encode(into: &classic, version: 1)
        XCTAssertEqual(Array(classic.readableBytesView), [0, 0, 0, 1, 0, 2, 0x61, 0x62])
        var response = ByteBuffer()
        DeleteGroupsResponse(results: [.init(groupId: "ab", errorCode: .groupIdNotFound)]).encode(into: &response, version: 2)
        XCTAssertEqual(Array(response.readableBytesView), [0, 0, 0, 0, 2, 3, 0x61, 0x62, 0, 69, 0, 0])
    }

    func testDescribeClusterV0IsFlexibleWithHeaderV2() throws {
        let frame = KafkaRequest(
            header: RequestHeader(apiKey: 60, apiVersion: 0, correlationId: 1, clientId: "c"), body: .describeCluster(DescribeClusterRequest())
        ).encodeFrameBody()
        // key 60, v0, correlation 1, client id "c" (classic), header tags, include ops false, body tags
        XCTAssertEqual(Array(frame.readableBytesView), [0, 60, 0, 0, 0, 0, 0, 1, 0, 1, 0x63, 0, 0, 0])
        var response = KafkaResponse.encodeFrame(
            DescribeClusterResponse(clusterId: "c", controllerId: 0, brokers: [.init(brokerId: 0, host: "h", port: 1)]), apiKey: .describeCluster, version: 1,
            correlationId: 5)
        XCTAssertEqual(try response.decodeInt32(), Int32(response.readableBytes))
        XCTAssertEqual(try ResponseHeader.decode(from: &response, headerVersion: 1).correlationId, 5)
        let expected: [UInt8] =
            [0, 0, 0, 0, 0, 0, 0, 1, 2, 0x63, 0, 0, 0, 0]  // throttle, error, null message, endpoint type 1, "c", controller 0
            + [2, 0, 0, 0, 0, 2, 0x68, 0, 0, 0, 1, 0, 0]  // one broker: id 0, "h", port 1, null rack, tags
            + [0x80, 0, 0, 0, 0]  // authorized operations omitted, tags
        XCTAssertEqual(Array(response.readableBytesView), expected)
    }

    func testOffsetFetchV8RequestGoldenBytesAndNullGroupsRefused() throws {
        var b = ByteBuffer()
        OffsetFetchRequest(groups: [.init(groupId: "g", topics: nil)], requireStable: true).encode(into: &b, version: 8)
        // groups [ "g", topics null, tags ], require_stable, tags
        XCTAssertEqual(Array(b.readableBytesView), [2, 2, 0x67, 0, 0, 1, 0])
        var decoded = b
        XCTAssertEqual(try OffsetFetchRequest.decode(from: &decoded, version: 8).groups, [.init(groupId: "g", topics: nil)])
        var nullGroups = ByteBuffer(bytes: [0, 0, 0])
        XCTAssertThrowsError(try OffsetFetchRequest.decode(from: &nullGroups, version: 8))
        // v1 may not ask for all topics (null), v6 may.
        var v1 = ByteBuffer(bytes: [0, 1, 0x67, 0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try OffsetFetchRequest.decode(from: &v1, version: 1))
        var v6 = ByteBuffer(bytes: [2, 0x67, 0, 0])
        XCTAssertNil(try OffsetFetchRequest.decode(from: &v6, version: 6).topics)
    }

    func testListGroupsV5GoldenBytes() throws {
        var request = ByteBuffer()
        ListGroupsRequest(statesFilter: [], typesFilter: ["c"]).encode(into: &request, version: 5)
        XCTAssertEqual(Array(request.readableBytesView), [1, 2, 2, 0x63, 0])  // no states, types ["c"], tags
        var response = ByteBuffer()
        ListGroupsResponse(groups: [.init(groupId: "g", protocolType: "c", groupState: "E", groupType: "T")]).encode(into: &response, version: 5)
        XCTAssertEqual(Array(response.readableBytesView), [0, 0, 0, 0, 0, 0, 2, 2, 0x67, 2, 0x63, 2, 0x45, 2, 0x54, 0, 0])
    }

    func testListGroupsV4GoldenBytes() throws {
        var request = ByteBuffer()
        ListGroupsRequest(statesFilter: ["Empty"]).encode(into: &request, version: 4)
        XCTAssertEqual(Array(request.readableBytesView), [2, 6] + Array("Empty".utf8) + [0])
        var response = ByteBuffer()
        ListGroupsResponse(groups: [.init(groupId: "g", protocolType: "c", groupState: "Empty")]).encode(into: &response, version: 4)
        XCTAssertEqual(Array(response.readableBytesView), [0, 0, 0, 0, 0, 0, 2, 2, 0x67, 2, 0x63, 6] + Array("Empty".utf8) + [0, 0])
    }

    func testTruncatedAdminRequestsThrowAtEveryCut() throws {
        let bodies: [(KafkaRequestBody, Int16)] = [
            (.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 3, assignments: [[0], [0]])])), 3),
            (.createPartitions(CreatePartitionsRequest(topics: [.init(name: "t", count: 3, assignments: [[0], [0]])])), 1),
            (.deleteRecords(DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: 9)])])), 2),
            (.deleteGroups(DeleteGroupsRequest(groupsNames: ["g", "h"])), 2),
            (.offsetDelete(OffsetDeleteRequest(groupId: "g", topics: [.init(name: "t", partitions: [0])])), 0),
            (.describeCluster(DescribeClusterRequest(endpointType: 1)), 1),
            (.offsetFetch(OffsetFetchRequest(groups: [.init(groupId: "g", topics: [.init(name: "t", partitionIndexes: [0])])])), 8),
            (.listGroups(ListGroupsRequest(statesFilter: ["Stable"])), 4),
        ]
        for (body, v) in bodies {
            let full = KafkaRequest(header: RequestHeader(apiKey: body.apiKey.rawValue, apiVersion: v, correlationId: 1, clientId: "c"), body: body)
                .encodeFrameBody()
            var whole = full
            XCTAssertEqual(try KafkaRequest.decode(frame: &whole).body, body)
            for cut in 0..<full.readableBytes {
                var truncated = full.getSlice(at: full.readerIndex, length: cut)!
                XCTAssertThrowsError(try KafkaRequest.decode(frame: &truncated), "\(body.apiKey) v\(v) cut at \(cut)")
            }
        }
    }

    /// What real clients sent for the admin APIs (Fixtures/captured-requests.txt), field by field.
    func testCapturedAdminRequestsFromRealClients() throws {
        func body(_ client: String, _ key: Int16, _ version: Int16) throws -> KafkaRequestBody {
            let c = try XCTUnwrap(
                GoldenRequestTests.fixtures().first { $0.client.hasPrefix(client) && $0.apiKey == key && $0.version == version }, "\(client) \(key) v\(version)"
            )
            var frame = ByteBuffer(bytes: c.bytes)
            return try KafkaRequest.decode(frame: &frame).body
        }
        XCTAssertEqual(try body("confluent", 37, 2), .createPartitions(CreatePartitionsRequest(topics: [.init(name: "adm", count: 3)], timeoutMs: 60_000)))
        XCTAssertEqual(try body("kafka-python", 37, 3), .createPartitions(CreatePartitionsRequest(topics: [.init(name: "kp", count: 4)], timeoutMs: 10_000)))
        XCTAssertEqual(
            try body("confluent", 21, 2),
            .deleteRecords(
                DeleteRecordsRequest(
                    topics: [.init(name: "adm", partitions: [.init(partitionIndex: 0, offset: 4), .init(partitionIndex: 1, offset: -1)])], timeoutMs: 60_000)))
        XCTAssertEqual(
            try body("kafka-python", 21, 2),
            .deleteRecords(DeleteRecordsRequest(topics: [.init(name: "kp", partitions: [.init(partitionIndex: 3, offset: 2)])], timeoutMs: 9_998)))
        XCTAssertEqual(try body("confluent", 42, 2), .deleteGroups(DeleteGroupsRequest(groupsNames: ["g-del"])))
        XCTAssertEqual(try body("kafka-python", 42, 2), .deleteGroups(DeleteGroupsRequest(groupsNames: ["kp-g", "kp-none"])))
        XCTAssertEqual(try body("kafka-python", 47, 0), .offsetDelete(OffsetDeleteRequest(groupId: "g-keep", topics: [.init(name: "adm", partitions: [1])])))
        XCTAssertEqual(try body("confluent", 16, 4), .listGroups(ListGroupsRequest(statesFilter: ["Empty"])))
        XCTAssertEqual(try body("kafka-python", 16, 4), .listGroups(ListGroupsRequest(statesFilter: ["Empty"])))
        XCTAssertEqual(try body("kafka-python", 60, 1), .describeCluster(DescribeClusterRequest(includeClusterAuthorizedOperations: true, endpointType: 1)))
        guard case .offsetFetch(let fetch) = try body("confluent", 9, 8) else { return XCTFail("not an OffsetFetch") }
        XCTAssertEqual(fetch.groups, [.init(groupId: "g-live", topics: [.init(name: "adm", partitionIndexes: [0, 1, 2])])])
        XCTAssertTrue(fetch.requireStable)
    }
}
