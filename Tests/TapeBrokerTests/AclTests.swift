import Foundation
import KafkaProtocol
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

/// ACLs: the authorizer's decisions (pure), filter matching, the ACL file across reopen, and the
/// ACL admin APIs and enforcement through the broker's handler.
final class AclTests: XCTestCase {
    func allow(
        _ type: AclResourceType, _ name: String, _ op: AclOperation, _ principal: String = "User:alice", pattern: AclPatternType = .literal, host: String = "*"
    )
        -> AclBinding
    {
        AclBinding(resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: host, operation: op, permission: .allow)
    }

    func deny(_ type: AclResourceType, _ name: String, _ op: AclOperation, _ principal: String = "User:alice", pattern: AclPatternType = .literal) -> AclBinding
    {
        AclBinding(resourceType: type, resourceName: name, patternType: pattern, principal: principal, operation: op, permission: .deny)
    }

    func may(
        _ a: AclAuthorizer, _ op: AclOperation, _ name: String, type: AclResourceType = .topic, principal: String = "User:alice", host: String = "/10.0.0.1"
    )
        -> Bool
    {
        a.authorize(principal: principal, host: host, operation: op, resourceType: type, resourceName: name)
    }

    // MARK: Authorizer

    func testDenyBeatsAllow() {
        let a = AclAuthorizer(bindings: [allow(.topic, "orders", .write), deny(.topic, "orders", .write), allow(.topic, "orders", .read)])
        XCTAssertFalse(may(a, .write, "orders"))
        XCTAssertTrue(may(a, .read, "orders"))
        // A DENY of ALL refuses every operation, also ones allowed explicitly.
        let all = AclAuthorizer(bindings: [allow(.topic, "orders", .read), deny(.topic, "*", .all, "User:*")])
        XCTAssertFalse(may(all, .read, "orders"))
    }

    func testWildcardPrincipalAndHost() {
        let a = AclAuthorizer(bindings: [allow(.topic, "t", .read, "User:*"), allow(.topic, "h", .read, host: "10.0.0.9")])
        XCTAssertTrue(may(a, .read, "t", principal: "User:bob"))
        XCTAssertTrue(may(a, .read, "t", principal: AclAuthorizer.anonymous))
        XCTAssertFalse(may(a, .write, "t", principal: "User:bob"))
        XCTAssertFalse(may(a, .read, "h", host: "/10.0.0.1"))
        XCTAssertTrue(may(a, .read, "h", host: "/10.0.0.9"))
        // The principal matches exactly, never by prefix.
        let exact = AclAuthorizer(bindings: [allow(.topic, "t", .read, "User:al")])
        XCTAssertFalse(may(exact, .read, "t"))
    }

    func testPrefixedAndWildcardResourceNames() {
        let a = AclAuthorizer(bindings: [allow(.topic, "orders-", .write, pattern: .prefixed), allow(.group, "*", .read)])
        XCTAssertTrue(may(a, .write, "orders-eu"))
        XCTAssertTrue(may(a, .write, "orders-"))
        XCTAssertFalse(may(a, .write, "order"))
        XCTAssertTrue(may(a, .read, "anything", type: .group))
        // A prefixed DENY under a literal ALLOW wins.
        let d = AclAuthorizer(bindings: [allow(.topic, "orders-eu", .write), deny(.topic, "orders-", .write, pattern: .prefixed)])
        XCTAssertFalse(may(d, .write, "orders-eu"))
    }

    func testImpliedOperations() {
        let a = AclAuthorizer(bindings: [
            allow(.topic, "r", .read), allow(.topic, "w", .write), allow(.topic, "d", .delete), allow(.topic, "al", .alter),
            allow(.topic, "c", .alterConfigs), allow(.topic, "all", .all), allow(.topic, "x", .describe),
        ])
        for name in ["r", "w", "d", "al", "all", "x"] { XCTAssertTrue(may(a, .describe, name), name) }
        XCTAssertFalse(may(a, .describe, "c"))
        XCTAssertTrue(may(a, .describeConfigs, "c"))
        XCTAssertTrue(may(a, .alterConfigs, "all"))
        XCTAssertTrue(may(a, .delete, "all"))
        // Implication goes one way only: DESCRIBE does not imply READ, READ does not imply WRITE.
        XCTAssertFalse(may(a, .read, "x"))
        XCTAssertFalse(may(a, .write, "r"))
        // A DENY of DESCRIBE refuses it even where an allowed WRITE would imply it.
        let d = AclAuthorizer(bindings: [allow(.topic, "t", .write), deny(.topic, "t", .describe)])
        XCTAssertFalse(may(d, .describe, "t"))
        XCTAssertTrue(may(d, .write, "t"))
    }

    func testSuperUsersBypassEverything() {
        let a = AclAuthorizer(bindings: [deny(.topic, "*", .all, "User:*")], superUsers: ["User:root"])
        XCTAssertTrue(may(a, .write, "t", principal: "User:root"))
        XCTAssertTrue(may(a, .alter, AclBinding.clusterResourceName, type: .cluster, principal: "User:root"))
        XCTAssertFalse(may(a, .write, "t", principal: "User:alice"))
    }

    func testNoAclFoundDefaultBothWays() {
        let strict = AclAuthorizer(bindings: [allow(.topic, "other", .read)])
        XCTAssertFalse(may(strict, .read, "t"))
        let open = AclAuthorizer(bindings: [allow(.topic, "other", .read)], allowEveryoneIfNoAclFound: true)
        XCTAssertTrue(may(open, .read, "t"))
        // Once any ACL covers the resource, the default no longer applies.
        let covered = AclAuthorizer(bindings: [allow(.topic, "t", .read, "User:bob")], allowEveryoneIfNoAclFound: true)
        XCTAssertFalse(may(covered, .read, "t"))
    }

    func testAuthorizeAnyTopicForIdempotentProducers() {
        let a = AclAuthorizer(bindings: [allow(.topic, "logs-", .write, pattern: .prefixed)])
        XCTAssertTrue(a.authorizeAny(principal: "User:alice", host: "/h", operation: .write, resourceType: .topic))
        XCTAssertFalse(a.authorizeAny(principal: "User:bob", host: "/h", operation: .write, resourceType: .topic))
        let denied = AclAuthorizer(bindings: [allow(.topic, "logs-", .write, pattern: .prefixed), deny(.topic, "*", .write)])
        XCTAssertFalse(denied.authorizeAny(principal: "User:alice", host: "/h", operation: .write, resourceType: .topic))
    }

    // MARK: Bindings and filters

    func testBindingValidationRefusesWhatKafkaRefuses() {
        func fields(_ type: Int8 = 2, _ name: String = "t", pattern: Int8 = 3, principal: String = "User:a", op: Int8 = 3, perm: Int8 = 3) -> AclBindingFields {
            AclBindingFields(resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: "*", operation: op, permissionType: perm)
        }
        XCTAssertNoThrow(try AclBinding(fields: fields()))
        for bad in [
            fields(0), fields(1), fields(99), fields(pattern: 1), fields(pattern: 2), fields(pattern: -1), fields(op: 0), fields(op: 1), fields(op: 13),
            fields(perm: 1), fields(perm: 0), fields(principal: "alice"), fields(principal: "User:"), fields(4, "c"), fields(2, ""),
            fields(3, "g", op: 4),  // WRITE on a group
        ] {
            XCTAssertThrowsError(try AclBinding(fields: bad), "\(bad)")
        }
        XCTAssertNoThrow(try AclBinding(fields: fields(4, "kafka-cluster", op: 12)))
    }

    func testFilterMatchingFollowsKafka() throws {
        let literal = allow(.topic, "orders", .read)
        let star = allow(.topic, "*", .read)
        let prefixed = allow(.topic, "ord", .write, pattern: .prefixed)
        let group = allow(.group, "orders", .read)
        let all = [literal, star, prefixed, group]
        func match(_ f: AclBindingFilter) -> [AclBinding] { all.filter { f.matches($0) } }
        XCTAssertEqual(match(.all), all)
        XCTAssertEqual(match(AclBindingFilter(resourceType: .topic, resourceName: "orders", patternType: .match)), [literal, star, prefixed])
        XCTAssertEqual(match(AclBindingFilter(resourceName: "orders", patternType: .any)), [literal, group])
        XCTAssertEqual(match(AclBindingFilter(resourceType: .topic, patternType: .prefixed)), [prefixed])
        XCTAssertEqual(match(AclBindingFilter(resourceType: .topic, resourceName: "orders", patternType: .literal)), [literal])
        XCTAssertEqual(match(AclBindingFilter(operation: .write)), [prefixed])
        XCTAssertEqual(match(AclBindingFilter(principal: "User:bob")), [])
        // Wire filters: ANY is 1; UNKNOWN and undefined numbers are refused.
        XCTAssertEqual(
            try AclBindingFilter(
                wire: AclFilter(resourceType: 1, resourceName: nil, patternType: 1, principal: nil, host: nil, operation: 1, permissionType: 1)),
            .all)
        for bad in [
            AclFilter(resourceType: 0, resourceName: nil, patternType: 1, principal: nil, host: nil, operation: 1, permissionType: 1),
            AclFilter(resourceType: 1, resourceName: nil, patternType: 0, principal: nil, host: nil, operation: 1, permissionType: 1),
            AclFilter(resourceType: 1, resourceName: nil, patternType: 1, principal: nil, host: nil, operation: 99, permissionType: 1),
            AclFilter(resourceType: 1, resourceName: nil, patternType: 1, principal: nil, host: nil, operation: 1, permissionType: -3),
        ] {
            XCTAssertThrowsError(try AclBindingFilter(wire: bad))
        }
    }

    // MARK: The ACL file

    func testAclsSurviveReopenAndDuplicatesAreKeptOnce() throws {
        let dir = try temporaryDirectory("acls")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = AclStore(dataDirectory: dir.path)
        XCTAssertEqual(try store.add([allow(.topic, "t", .read), allow(.topic, "t", .read), deny(.group, "g", .all)]), 2)
        XCTAssertEqual(try store.add([allow(.topic, "t", .read)]), 0)
        let reopened = AclStore(dataDirectory: dir.path)
        XCTAssertEqual(reopened.current(), [allow(.topic, "t", .read), deny(.group, "g", .all)])
        let mode = (try FileManager.default.attributesOfItem(atPath: reopened.path)[.posixPermissions] as? NSNumber)?.intValue
        XCTAssertEqual(mode, 0o600)
        // A change made through one store is seen by the other (the broker re-reads the file).
        let removed = try store.remove(matching: [AclBindingFilter(resourceType: .group)])
        XCTAssertEqual(removed, [[deny(.group, "g", .all)]])
        XCTAssertEqual(reopened.current(), [allow(.topic, "t", .read)])
        // A corrupt file is an error when read, and does not replace what the broker holds.
        try "{not json".write(toFile: reopened.path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AclStore(dataDirectory: dir.path).read())
        XCTAssertEqual(reopened.current(), [allow(.topic, "t", .read)])
    }

    // MARK: Through the broker

    func makeBroker(dir: URL, enforce: Bool, allowEveryone: Bool = false, superUsers: [String] = []) -> Broker {
        var c = BrokerConfiguration()
        c.security.aclsPath = dir.appendingPathComponent(AclStore.fileName).path
        c.security.aclAuthorizer = enforce
        c.security.allowEveryoneIfNoAclFound = allowEveryone
        c.security.superUsers = superUsers
        return Broker(configuration: c, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
    }

    /// Throttle time, then the error code (JoinGroup, InitProducerId).
    func topLevelError(_ b: inout ByteBuffer) throws -> ErrorCode {
        _ = try b.decodeInt32()
        return try b.decodeErrorCode()
    }

    /// Metadata v4's topic names and errors.
    func metadataTopics(_ b: inout ByteBuffer) throws -> [(String, ErrorCode)] {
        _ = try b.decodeInt32()  // throttle
        _ = try b.decodeArray { b in
            _ = try b.decodeInt32()
            _ = try b.decodeString()
            _ = try b.decodeInt32()
            _ = try b.decodeNullableString()
        }
        _ = try b.decodeNullableString()  // cluster id
        _ = try b.decodeInt32()  // controller
        return try b.decodeArray { b in
            let code = try b.decodeErrorCode()
            let name = try b.decodeString()
            _ = try b.decodeBool()
            _ = try b.decodeArray { b in
                _ = try b.decodeErrorCode()
                _ = try b.decodeInt32()
                _ = try b.decodeInt32()
                _ = try b.decodeArray { try $0.decodeInt32() }
                _ = try b.decodeArray { try $0.decodeInt32() }
            }
            return (name, code)
        }
    }

    func testAclApisRoundTripAndRefuseBadInput() async throws {
        let dir = try temporaryDirectory("acl-apis")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = makeBroker(dir: dir, enforce: false)
        var out = try await send(
            b,
            CreateAclsRequest(creations: [
                allow(.topic, "orders", .write).fields, allow(.group, "g-", .read, pattern: .prefixed).fields,
                AclBindingFields(resourceType: 2, resourceName: "x", patternType: 2, principal: "User:a", host: "*", operation: 3, permissionType: 3),
            ]), version: 3)
        let created = try CreateAclsResponse.decode(from: &out, version: 3)
        XCTAssertEqual(created.results.map(\.errorCode), [.none, .none, .invalidRequest])
        out = try await send(
            b,
            DescribeAclsRequest(
                filter: AclFilter(resourceType: 1, resourceName: nil, patternType: 1, principal: nil, host: nil, operation: 1, permissionType: 1)),
            version: 2)
        let described = try DescribeAclsResponse.decode(from: &out, version: 2)
        XCTAssertEqual(described.errorCode, ErrorCode.none)
        XCTAssertEqual(described.resources.map(\.resourceName), ["orders", "g-"])
        XCTAssertEqual(described.resources.last?.patternType, 4)
        out = try await send(
            b,
            DescribeAclsRequest(
                filter: AclFilter(resourceType: 0, resourceName: nil, patternType: 1, principal: nil, host: nil, operation: 1, permissionType: 1)),
            version: 1)
        XCTAssertEqual(try DescribeAclsResponse.decode(from: &out, version: 1).errorCode, .invalidRequest)
        out = try await send(
            b,
            DeleteAclsRequest(filters: [
                AclFilter(resourceType: 3, resourceName: "g-eu", patternType: 2, principal: nil, host: nil, operation: 1, permissionType: 1),
                AclFilter(resourceType: 2, resourceName: nil, patternType: 1, principal: nil, host: nil, operation: 77, permissionType: 1),
            ]), version: 1)
        let deleted = try DeleteAclsResponse.decode(from: &out, version: 1)
        XCTAssertEqual(deleted.filterResults.map(\.errorCode), [.none, .invalidRequest])
        XCTAssertEqual(deleted.filterResults[0].matchingAcls.map(\.binding.resourceName), ["g-"])
        XCTAssertEqual(AclStore(dataDirectory: dir.path).current(), [allow(.topic, "orders", .write)])
    }

    func testEnforcementOfProduceFetchMetadataGroupsAndAclApis() async throws {
        let dir = try temporaryDirectory("acl-enforce")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = makeBroker(dir: dir, enforce: true, superUsers: ["User:root"])
        await b.setPrincipal("User:alice", connection: 1)
        await b.setPrincipal("User:root", connection: 2)
        // Nobody but the super user may manage ACLs, without ACLs on the cluster.
        var out = try await send(b, CreateAclsRequest(creations: [allow(.topic, "t", .write).fields]), version: 1, connection: 1)
        XCTAssertEqual(try CreateAclsResponse.decode(from: &out, version: 1).results.map(\.errorCode), [.clusterAuthorizationFailed])
        out = try await send(
            b, CreateAclsRequest(creations: [allow(.topic, "t", .write).fields, allow(.cluster, "kafka-cluster", .create).fields]), version: 1, connection: 2)
        XCTAssertEqual(try CreateAclsResponse.decode(from: &out, version: 1).results.map(\.errorCode), [.none, .none])
        let batch = RecordBatchBuilder.build(
            records: [Record(timestampDelta: 0, offsetDelta: 0, key: nil, value: Array("v".utf8))], baseTimestamp: 1, producerId: -1, producerEpoch: -1,
            baseSequence: -1)
        func produce(_ topic: String, connection: UInt64) async throws -> ErrorCode {
            var out = try await send(
                b, ProduceRequest(acks: 1, timeoutMs: 1000, topics: [.init(name: topic, partitions: [.init(index: 0, records: batch)])]), version: 7,
                connection: connection)
            _ = try out.decodeInt32()  // topics
            _ = try out.decodeString()
            _ = try out.decodeInt32()  // partitions
            _ = try out.decodeInt32()  // index
            return try out.decodeErrorCode()
        }
        let aliceT = try await produce("t", connection: 1)
        let aliceU = try await produce("u", connection: 1)
        let anonymousT = try await produce("t", connection: 3)
        XCTAssertEqual(aliceT, ErrorCode.none)
        XCTAssertEqual(aliceU, .topicAuthorizationFailed)
        XCTAssertEqual(anonymousT, .topicAuthorizationFailed, "anonymous")
        // WRITE implies DESCRIBE: alice sees t in a full listing, not u (which root creates).
        let rootU = try await produce("u", connection: 2)
        XCTAssertEqual(rootU, ErrorCode.none)
        out = try await send(b, MetadataRequest(topics: nil, allowAutoTopicCreation: false), version: 4, connection: 1)
        XCTAssertEqual(try metadataTopics(&out).map(\.0), ["t"])
        out = try await send(b, MetadataRequest(topics: ["u", "t"], allowAutoTopicCreation: true), version: 4, connection: 1)
        XCTAssertEqual(try metadataTopics(&out).map(\.1), [.topicAuthorizationFailed, .none])
        // READ is not granted: fetch is refused per partition.
        out = try await send(
            b,
            FetchRequest(
                maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20,
                topics: [.init(topic: "t", partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 1 << 20)])]),
            version: 11, connection: 1)
        _ = try out.decodeInt32()  // throttle
        XCTAssertEqual(try out.decodeErrorCode(), ErrorCode.none)
        _ = try out.decodeInt32()  // session
        _ = try out.decodeInt32()  // topics
        XCTAssertEqual(try out.decodeString(), "t")
        _ = try out.decodeInt32()  // partitions
        _ = try out.decodeInt32()  // index
        XCTAssertEqual(try out.decodeErrorCode(), .topicAuthorizationFailed)
        // Groups: JoinGroup without READ on the group.
        out = try await send(
            b,
            JoinGroupRequest(
                groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: "", groupInstanceId: nil, protocolType: "consumer",
                protocols: [.init(name: "range", metadata: [])]), version: 5, connection: 1)
        XCTAssertEqual(try topLevelError(&out), .groupAuthorizationFailed)
        // Idempotent producers need IDEMPOTENT_WRITE or WRITE on some topic: alice has the latter, anonymous neither.
        out = try await send(b, InitProducerIdRequest(), version: 1, connection: 1)
        XCTAssertEqual(try topLevelError(&out), ErrorCode.none)
        out = try await send(b, InitProducerIdRequest(), version: 1, connection: 3)
        XCTAssertEqual(try topLevelError(&out), .clusterAuthorizationFailed)
        out = try await send(b, InitProducerIdRequest(transactionalId: "tx"), version: 1, connection: 1)
        XCTAssertEqual(try topLevelError(&out), .transactionalIdAuthorizationFailed)
    }

    func testEnforcementOfGroupsOffsetsAdminAndCredentialApis() async throws {
        let dir = try temporaryDirectory("acl-enforce-groups")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = makeBroker(dir: dir, enforce: true, superUsers: ["User:root"])
        await b.setPrincipal("User:alice", connection: 1)
        await b.setPrincipal("User:root", connection: 2)
        try AclStore(dataDirectory: dir.path).add([
            allow(.group, "g", .read), allow(.topic, "t", .read), allow(.group, "d-", .delete, pattern: .prefixed),
        ])
        func commit(_ group: String, _ topics: [String], connection: UInt64) async throws -> [ErrorCode] {
            var out = try await send(
                b,
                OffsetCommitRequest(
                    groupId: group, generationId: -1, memberId: "",
                    topics: topics.map { .init(name: $0, partitions: [.init(partitionIndex: 0, committedOffset: 0)]) }), version: 7,
                connection: connection)
            _ = try out.decodeInt32()  // throttle
            return try out.decodeArray { b in
                _ = try b.decodeString()
                return try b.decodeArray { b in
                    _ = try b.decodeInt32()
                    return try b.decodeErrorCode()
                }
            }.flatMap { $0 }
        }
        // root (super user) sets up groups g, h, d-1 with offsets on t and u (auto-created).
        for name in ["t", "u"] {
            _ = try await send(b, MetadataRequest(topics: [name], allowAutoTopicCreation: true), version: 4, connection: 2)
        }
        for group in ["g", "h", "d-1"] {
            let codes = try await commit(group, ["t", "u"], connection: 2)
            XCTAssertEqual(codes, [.none, .none], group)
        }
        // alice: READ on g and t only.
        let partly = try await commit("g", ["t", "u"], connection: 1)
        XCTAssertEqual(Set(partly), [.none, .topicAuthorizationFailed])
        let otherGroup = try await commit("h", ["t"], connection: 1)
        XCTAssertEqual(otherGroup, [.groupAuthorizationFailed])
        // ListGroups without DESCRIBE on the cluster: only the groups alice may describe.
        var out = try await send(b, ListGroupsRequest(), version: 2, connection: 1)
        XCTAssertEqual(try ListGroupsResponse.decode(from: &out, version: 2).groups.map(\.groupId).sorted(), ["d-1", "g"])
        out = try await send(b, ListGroupsRequest(), version: 2, connection: 2)
        XCTAssertEqual(try ListGroupsResponse.decode(from: &out, version: 2).groups.map(\.groupId).sorted(), ["d-1", "g", "h"])
        // OffsetFetch v8: DESCRIBE on the group (READ implies it), topics alice may not describe left out.
        out = try await send(b, OffsetFetchRequest(groups: [.init(groupId: "g", topics: nil), .init(groupId: "h", topics: nil)]), version: 8, connection: 1)
        let fetched = try OffsetFetchResponse.decode(from: &out, version: 8)
        XCTAssertEqual(fetched.groups.map(\.errorCode), [.none, .groupAuthorizationFailed])
        XCTAssertEqual(fetched.groups[0].topics.map(\.name), ["t"])
        // DeleteGroups: DELETE through a prefixed ACL.
        out = try await send(b, DeleteGroupsRequest(groupsNames: ["d-1", "h"]), version: 2, connection: 1)
        let deleted = try DeleteGroupsResponse.decode(from: &out, version: 2).results
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: deleted.map { ($0.groupId, $0.errorCode) }), ["d-1": .none, "h": .groupAuthorizationFailed])
        // Topic admin: no CREATE/ALTER/DELETE for alice.
        out = try await send(b, CreatePartitionsRequest(topics: [.init(name: "t", count: 3)]), version: 2, connection: 1)
        XCTAssertEqual(try CreatePartitionsResponse.decode(from: &out, version: 2).results.map(\.errorCode), [.topicAuthorizationFailed])
        out = try await send(b, DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: 0)])]), version: 2, connection: 1)
        XCTAssertEqual(try DeleteRecordsResponse.decode(from: &out, version: 2).topics.first?.partitions.first?.errorCode, .topicAuthorizationFailed)
        // DescribeCluster's authorized operations follow the ACLs: none for alice, all for root.
        out = try await send(b, DescribeClusterRequest(includeClusterAuthorizedOperations: true, endpointType: 1), version: 0, connection: 1)
        XCTAssertEqual(try DescribeClusterResponse.decode(from: &out, version: 0).clusterAuthorizedOperations, 0)
        out = try await send(b, DescribeClusterRequest(includeClusterAuthorizedOperations: true, endpointType: 1), version: 0, connection: 2)
        XCTAssertEqual(try DescribeClusterResponse.decode(from: &out, version: 0).clusterAuthorizedOperations, Broker.clusterOperations)
        // SCRAM credential admin needs DESCRIBE on the cluster once ACLs are enforced.
        out = try await send(b, DescribeUserScramCredentialsRequest(users: nil), version: 0, connection: 1)
        XCTAssertEqual(try DescribeUserScramCredentialsResponse.decode(from: &out, version: 0).errorCode, .clusterAuthorizationFailed)
        out = try await send(b, DescribeUserScramCredentialsRequest(users: nil), version: 0, connection: 2)
        XCTAssertEqual(try DescribeUserScramCredentialsResponse.decode(from: &out, version: 0).errorCode, ErrorCode.none)
    }

    func testEnforcementOfTransactions() async throws {
        let dir = try temporaryDirectory("acl-enforce-txn")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = makeBroker(dir: dir, enforce: true, superUsers: ["User:root"])
        await b.setPrincipal("User:alice", connection: 1)
        try AclStore(dataDirectory: dir.path).add([allow(.transactionalId, "tx", .write), allow(.topic, "t", .write), allow(.topic, "u", .describe)])
        // AddPartitionsToTxn: a refused transactional id refuses all; a refused topic refuses it and
        // leaves the others not attempted.
        var out = try await send(
            b, AddPartitionsToTxnRequest(transactionalId: "other", producerId: 1, producerEpoch: 0, topics: [.init(name: "t", partitions: [0])]), version: 3,
            connection: 1)
        XCTAssertEqual(
            try AddPartitionsToTxnResponse.decode(from: &out, version: 3).results.flatMap { $0.partitions.map(\.errorCode) },
            [.transactionalIdAuthorizationFailed])
        out = try await send(
            b,
            AddPartitionsToTxnRequest(
                transactionalId: "tx", producerId: 1, producerEpoch: 0, topics: [.init(name: "t", partitions: [0]), .init(name: "u", partitions: [0])]),
            version: 3, connection: 1)
        let added = try AddPartitionsToTxnResponse.decode(from: &out, version: 3).results
        XCTAssertEqual(
            Dictionary(uniqueKeysWithValues: added.map { ($0.name, $0.partitions[0].errorCode) }),
            ["t": .operationNotAttempted, "u": .topicAuthorizationFailed])
        // EndTxn and AddOffsetsToTxn: WRITE on the transactional id, then READ on the group.
        out = try await send(b, EndTxnRequest(transactionalId: "other", producerId: 1, producerEpoch: 0, committed: true), version: 3, connection: 1)
        XCTAssertEqual(try TxnErrorResponse.decode(from: &out, version: 3).errorCode, .transactionalIdAuthorizationFailed)
        out = try await send(b, AddOffsetsToTxnRequest(transactionalId: "tx", producerId: 1, producerEpoch: 0, groupId: "g"), version: 3, connection: 1)
        XCTAssertEqual(try TxnErrorResponse.decode(from: &out, version: 3).errorCode, .groupAuthorizationFailed)
        // A transactional produce with a refused transactional id is refused whole.
        let batch = RecordBatchBuilder.build(
            records: [Record(timestampDelta: 0, offsetDelta: 0, key: nil, value: [1])], baseTimestamp: 1, producerId: 1, producerEpoch: 0, baseSequence: 0)
        out = try await send(
            b, ProduceRequest(transactionalId: "other", acks: -1, timeoutMs: 1000, topics: [.init(name: "t", partitions: [.init(index: 0, records: batch)])]),
            version: 7, connection: 1)
        _ = try out.decodeInt32()
        _ = try out.decodeString()
        _ = try out.decodeInt32()
        _ = try out.decodeInt32()
        XCTAssertEqual(try out.decodeErrorCode(), .transactionalIdAuthorizationFailed)
    }
}

/// One request through `b`'s handler as connection `connection` sent it; the response after its header.
func send<M: KafkaRequestMessage>(_ b: Broker, _ m: M, version: Int16, connection: UInt64 = 1) async throws -> ByteBuffer {
    var frame = KafkaRequest.encodeFrame(m, version: version, correlationId: 9, clientId: "t")
    frame.moveReaderIndex(forwardBy: 4)
    let request = try KafkaRequest.decode(frame: &frame)
    let reply = await b.handle(request, clientHost: "/127.0.0.1", connection: connection)
    var response = try XCTUnwrap(reply)
    response.moveReaderIndex(forwardBy: 4)
    _ = try response.decodeInt32()  // correlation id
    if M.apiKey.responseHeaderVersion(version) >= 1 { try response.skipTaggedFields() }
    return response
}
