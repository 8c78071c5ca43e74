import KafkaProtocol
import NIOCore
import XCTest

/// DescribeAcls, CreateAcls and DeleteAcls: responses round-trip at every version, golden bytes for
/// the classic and flexible encodings, and malformed requests throw (never trap).
final class AclMessageTests: XCTestCase {
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

    func testAclApisAreAdvertisedV0ToV3FlexibleFromV2() {
        for key in [ApiKey.describeAcls, .createAcls, .deleteAcls] {
            XCTAssertEqual(key.supportedVersions, 0...3, "\(key)")
            XCTAssertFalse(key.isFlexible(1), "\(key)")
            XCTAssertTrue(key.isFlexible(2), "\(key)")
        }
        XCTAssertEqual(ApiKey.describeAcls.rawValue, 29)
        XCTAssertEqual(ApiKey.createAcls.rawValue, 30)
        XCTAssertEqual(ApiKey.deleteAcls.rawValue, 31)
    }

    func testResponsesRoundTripAtEveryVersion() throws {
        for v in ApiKey.describeAcls.supportedVersions {
            let r = DescribeAclsResponse(
                errorCode: .none,
                resources: [
                    .init(
                        resourceType: 2, resourceName: "t", patternType: v >= 1 ? 4 : 3,
                        acls: [.init(principal: "User:alice", host: "*", operation: 3, permissionType: 3)]),
                    .init(resourceType: 4, resourceName: "kafka-cluster", patternType: 3, acls: []),
                ])
            try roundTrip(r, versions: v...v, decode: { try DescribeAclsResponse.decode(from: &$0, version: $1) })
        }
        try roundTrip(
            DescribeAclsResponse(errorCode: .clusterAuthorizationFailed, errorMessage: "no", resources: []), versions: 0...3,
            decode: { try DescribeAclsResponse.decode(from: &$0, version: $1) })
        try roundTrip(
            CreateAclsResponse(results: [.init(errorCode: .none), .init(errorCode: .invalidRequest, errorMessage: "bad")]), versions: 0...3,
            decode: { try CreateAclsResponse.decode(from: &$0, version: $1) })
        for v in ApiKey.deleteAcls.supportedVersions {
            let binding = AclBindingFields(
                resourceType: 3, resourceName: "g", patternType: v >= 1 ? 4 : 3, principal: "User:*", host: "*", operation: 2, permissionType: 2)
            let r = DeleteAclsResponse(filterResults: [
                .init(errorCode: .none, matchingAcls: [.init(binding: binding)]), .init(errorCode: .invalidRequest, errorMessage: "unknown"),
            ])
            try roundTrip(r, versions: v...v, decode: { try DeleteAclsResponse.decode(from: &$0, version: $1) })
        }
    }

    func testDescribeAclsV1GoldenBytes() throws {
        let r = DescribeAclsRequest(
            filter: AclFilter(resourceType: 2, resourceName: nil, patternType: 1, principal: "User:a", host: nil, operation: 1, permissionType: 1))
        var b = ByteBuffer()
        r.encode(into: &b, version: 1)
        // type 2, null name (-1), pattern any (1), "User:a", null host, operation any, permission any
        let expected: [UInt8] = [2, 0xFF, 0xFF, 1, 0, 6] + Array("User:a".utf8) + [0xFF, 0xFF, 1, 1]
        XCTAssertEqual(Array(b.readableBytesView), expected)
        XCTAssertEqual(try DescribeAclsRequest.decode(from: &b, version: 1), r)
    }

    func testCreateAclsV2GoldenBytes() throws {
        let r = CreateAclsRequest(creations: [
            .init(resourceType: 2, resourceName: "t", patternType: 4, principal: "User:a", host: "*", operation: 4, permissionType: 3)
        ])
        var b = ByteBuffer()
        r.encode(into: &b, version: 2)
        // compact array of 1 (2), type, compact "t", pattern prefixed, compact "User:a", compact "*", write, allow, tags, tags
        let expected: [UInt8] = [2, 2, 2] + Array("t".utf8) + [4, 7] + Array("User:a".utf8) + [2] + Array("*".utf8) + [4, 3, 0, 0]
        XCTAssertEqual(Array(b.readableBytesView), expected)
        XCTAssertEqual(try CreateAclsRequest.decode(from: &b, version: 2), r)
    }

    func testV0HasNoPatternTypeAndDecodesAsLiteral() throws {
        var b = ByteBuffer()
        DeleteAclsRequest(filters: [AclFilter(resourceType: 2, resourceName: "t", patternType: 4, principal: nil, host: nil, operation: 1, permissionType: 1)])
            .encode(into: &b, version: 0)
        XCTAssertEqual(b.readableBytes, 4 + 1 + 3 + 2 + 2 + 1 + 1)
        XCTAssertEqual(try DeleteAclsRequest.decode(from: &b, version: 0).filters.first?.patternType, 3)
    }

    func testTruncatedAclRequestsThrowAtEveryCut() throws {
        for key in [ApiKey.describeAcls, .createAcls, .deleteAcls] {
            for v in key.supportedVersions {
                let full = Samples.frame(Samples.requests(version: v, key: key), version: v)
                for cut in 0..<full.readableBytes {
                    var b = full.getSlice(at: full.readerIndex, length: cut)!
                    XCTAssertThrowsError(try KafkaRequest.decode(frame: &b), "\(key) v\(v) cut at \(cut)")
                }
            }
        }
    }

    func testHugeCountsAndNegativeLengthsAreRefused() throws {
        // CreateAcls v1 claiming 2^31-1 creations in 4 bytes.
        var huge = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try CreateAclsRequest.decode(from: &huge, version: 1))
        // DeleteAcls v2 claiming 2^32-2 filters (compact varint).
        var compact = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        XCTAssertThrowsError(try DeleteAclsRequest.decode(from: &compact, version: 2))
        // CreateAcls v1 with a resource name of length -2.
        var negative = ByteBuffer(bytes: [0, 0, 0, 1, 2, 0xFF, 0xFE])
        XCTAssertThrowsError(try CreateAclsRequest.decode(from: &negative, version: 1))
        // CreateAcls v0 with a null (-1) resource name, which is not nullable there.
        var null = ByteBuffer(bytes: [0, 0, 0, 1, 2, 0xFF, 0xFF])
        XCTAssertThrowsError(try CreateAclsRequest.decode(from: &null, version: 0))
        // Out-of-range enum numbers decode (the broker answers them with INVALID_REQUEST).
        var b = ByteBuffer()
        DescribeAclsRequest(
            filter: AclFilter(resourceType: 99, resourceName: nil, patternType: -5, principal: nil, host: nil, operation: 127, permissionType: -1)
        )
        .encode(into: &b, version: 3)
        XCTAssertEqual(try DescribeAclsRequest.decode(from: &b, version: 3).filter.operation, 127)
    }
}
