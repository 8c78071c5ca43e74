import Foundation
import KafkaProtocol
import NIOCore
import TapeTestSupport
import XCTest

@testable import TapeBroker

/// Metadata v8+ `include_topic_authorized_operations` and DescribeGroups v3+
/// `include_authorized_operations`: the bit field of Kafka ACL operation codes the requesting
/// principal is allowed on each topic and group, through the broker's handler; and the principals
/// of the process's own clients (`BrokerSecurity.internalUsers`/`internalPrincipals`) exempt from ACLs.
final class AuthorizedOperationsTests: XCTestCase {
    func makeBroker(dir: URL, enforce: Bool, security: (inout BrokerSecurity) -> Void = { _ in }) -> Broker {
        var c = BrokerConfiguration()
        c.security.aclsPath = dir.appendingPathComponent(AclStore.fileName).path
        c.security.aclAuthorizer = enforce
        security(&c.security)
        return Broker(configuration: c, topics: InMemoryTopicStore(), committedOffsets: InMemoryCommittedOffsetStore())
    }

    func grant(_ dir: URL, _ type: AclResourceType, _ name: String, _ ops: [AclOperation], principal: String = "User:alice") throws {
        _ = try AclStore(dataDirectory: dir.path).add(
            ops.map { AclBinding(resourceType: type, resourceName: name, patternType: .literal, principal: principal, operation: $0, permission: .allow) })
    }

    /// Metadata v8 (the last non-flexible version): each topic's name, error and authorized operations.
    func metadataV8(_ b: Broker, _ topics: [String]?, include: Bool, connection: UInt64) async throws -> [String: (ErrorCode, Int32)] {
        var out = try await send(
            b, MetadataRequest(topics: topics, allowAutoTopicCreation: false, includeTopicAuthorizedOperations: include), version: 8, connection: connection)
        _ = try out.decodeInt32()  // throttle
        _ = try out.decodeArray { b in
            _ = try b.decodeInt32()
            _ = try b.decodeString()
            _ = try b.decodeInt32()
            _ = try b.decodeNullableString()
        }
        _ = try out.decodeNullableString()  // cluster id
        _ = try out.decodeInt32()  // controller
        let topics = try out.decodeArray { b -> (String, ErrorCode, Int32) in
            let code = try b.decodeErrorCode()
            let name = try b.decodeString()
            _ = try b.decodeBool()
            _ = try b.decodeArray { b in
                _ = try b.decodeErrorCode()
                _ = try b.decodeInt32()
                _ = try b.decodeInt32()
                _ = try b.decodeInt32()  // leader epoch
                _ = try b.decodeArray { try $0.decodeInt32() }
                _ = try b.decodeArray { try $0.decodeInt32() }
                _ = try b.decodeArray { try $0.decodeInt32() }
            }
            return (name, code, try b.decodeInt32())
        }
        _ = try out.decodeInt32()  // cluster authorized operations
        XCTAssertEqual(out.readableBytes, 0)
        return Dictionary(topics.map { ($0.0, ($0.1, $0.2)) }, uniquingKeysWith: { a, _ in a })
    }

    /// DescribeGroups v3: each group's id, error and authorized operations.
    func describeGroupsV3(_ b: Broker, _ groups: [String], include: Bool, connection: UInt64) async throws -> [String: (ErrorCode, Int32)] {
        var out = try await send(b, DescribeGroupsRequest(groups: groups, includeAuthorizedOperations: include), version: 3, connection: connection)
        _ = try out.decodeInt32()  // throttle
        let described = try out.decodeArray { b -> (String, ErrorCode, Int32) in
            let code = try b.decodeErrorCode()
            let id = try b.decodeString()
            for _ in 0..<3 { _ = try b.decodeString() }
            _ = try b.decodeArray { b in
                for _ in 0..<3 { _ = try b.decodeString() }
                _ = try b.decodeBytes()
                _ = try b.decodeBytes()
            }
            return (id, code, try b.decodeInt32())
        }
        return Dictionary(described.map { ($0.0, ($0.1, $0.2)) }, uniquingKeysWith: { a, _ in a })
    }

    func bits(_ ops: [AclOperation]) -> Int32 { ops.reduce(0) { $0 | (1 << Int32($1.code)) } }

    let allTopicOperations: [AclOperation] = [.read, .write, .create, .delete, .alter, .describe, .describeConfigs, .alterConfigs]

    func testTopicAndGroupOperationsFollowTheAcls() async throws {
        let dir = try temporaryDirectory("authorized-ops")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = makeBroker(dir: dir, enforce: true) { $0.superUsers = ["User:root"] }
        await b.setPrincipal("User:alice", connection: 1)
        await b.setPrincipal("User:root", connection: 2)
        for name in ["t", "u"] {
            _ = await b.createTopics(CreateTopicsRequest(topics: [.init(name: name, numPartitions: 1, replicationFactor: 1)]), version: 4)
        }
        try grant(dir, .topic, "t", [.read, .alterConfigs])
        try grant(dir, .group, "g", [.read])

        let alice = try await metadataV8(b, ["t", "u"], include: true, connection: 1)
        // READ implies DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS (Kafka's rules).
        XCTAssertEqual(alice["t"]?.0, ErrorCode.none)
        XCTAssertEqual(alice["t"]?.1, bits([.read, .describe, .alterConfigs, .describeConfigs]))
        XCTAssertEqual(alice["u"]?.0, .topicAuthorizationFailed)
        XCTAssertEqual(alice["u"]?.1, Int32.min)
        // Not asked: Int32.min, as before.
        let notAsked = try await metadataV8(b, ["t"], include: false, connection: 1)
        XCTAssertEqual(notAsked["t"]?.1, Int32.min)
        // A super user may do everything on both.
        let root = try await metadataV8(b, nil, include: true, connection: 2)
        XCTAssertEqual(root["t"]?.1, bits(allTopicOperations))
        XCTAssertEqual(root["u"]?.1, bits(allTopicOperations))

        let groups = try await describeGroupsV3(b, ["g"], include: true, connection: 1)
        XCTAssertEqual(groups["g"]?.0, ErrorCode.none)
        XCTAssertEqual(groups["g"]?.1, bits([.read, .describe]))
        let rootGroups = try await describeGroupsV3(b, ["g", "h"], include: true, connection: 2)
        XCTAssertEqual(rootGroups["h"]?.1, bits([.read, .delete, .describe]))
        let notAskedGroups = try await describeGroupsV3(b, ["g"], include: false, connection: 1)
        XCTAssertEqual(notAskedGroups["g"]?.1, Int32.min)
        // Refused groups keep Int32.min.
        let refused = try await describeGroupsV3(b, ["h"], include: true, connection: 1)
        XCTAssertEqual(refused["h"]?.0, .groupAuthorizationFailed)
        XCTAssertEqual(refused["h"]?.1, Int32.min)
    }

    func testWithoutEnforcementEveryOperationIsReported() async throws {
        let dir = try temporaryDirectory("authorized-ops-open")
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = makeBroker(dir: dir, enforce: false)
        _ = await b.createTopics(CreateTopicsRequest(topics: [.init(name: "t", numPartitions: 2, replicationFactor: 1)]), version: 4)
        let topics = try await metadataV8(b, nil, include: true, connection: 1)
        XCTAssertEqual(topics["t"]?.1, bits(allTopicOperations))
        let groups = try await describeGroupsV3(b, ["g"], include: true, connection: 1)
        XCTAssertEqual(groups["g"]?.1, bits([.read, .delete, .describe]))
    }

    /// The process's own clients (an internal SASL user, a certificate subject) are exempt from
    /// ACLs without being super users; the internal user's credentials are found without being
    /// in the credentials file, and win over a file user of the same name.
    func testInternalPrincipalsAreExemptAndInternalUsersStayInMemory() async throws {
        let dir = try temporaryDirectory("internal-principals")
        defer { try? FileManager.default.removeItem(at: dir) }
        let secret = UserCredentials(scramSha512: ScramCredential(hash: .sha512, password: "in-memory", iterations: 4096))
        let b = makeBroker(dir: dir, enforce: true) {
            $0.internalUsers = ["tape-internal": secret]
            $0.internalPrincipals = ["User:CN=stages"]
            $0.credentialsPath = dir.appendingPathComponent(CredentialStore.fileName).path
        }
        await b.setPrincipal("User:tape-internal", connection: 1)
        await b.setPrincipal("User:CN=stages", connection: 2)
        await b.setPrincipal("User:alice", connection: 3)
        _ = await b.createTopics(CreateTopicsRequest(topics: [.init(name: "t", numPartitions: 1, replicationFactor: 1)]), version: 4)
        for connection: UInt64 in [1, 2] {
            let topics = try await metadataV8(b, ["t"], include: true, connection: connection)
            XCTAssertEqual(topics["t"]?.1, bits(allTopicOperations), "\(connection)")
        }
        let alice = try await metadataV8(b, ["t"], include: true, connection: 3)
        XCTAssertEqual(alice["t"]?.0, .topicAuthorizationFailed)

        let store = try XCTUnwrap(b.credentials)
        try store.update { $0.users["tape-internal"] = UserCredentials(plain: PlainCredential(password: "guess", iterations: 4096)) }
        XCTAssertEqual(store.user("tape-internal"), secret)
        let onDisk = try String(contentsOf: dir.appendingPathComponent(CredentialStore.fileName), encoding: .utf8)
        XCTAssertFalse(onDisk.contains(secret.scramSha512?.storedKey.base64EncodedString() ?? "?"), onDisk)
    }
}
