import Foundation
import TapeTestSupport
import XCTest

/// ACLs on a real `tape broker --sasl scram-sha-256 --authorizer acl`, driven by confluent-kafka
/// (librdkafka 2.16): the AdminClient's create/describe/delete ACL calls, produce and consume
/// refused without the ACLs and allowed with them, and `tape acls` on the same data directory,
/// also across a restart.
final class AclProcessTests: XCTestCase {
    var python: String!

    override func setUpWithError() throws {
        python = try Executables.require("python3")
    }

    func tape(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
        try runProcess(TapeBinary.privateCopy, arguments, stdin: stdin, timeout: 60)
    }

    static let script = """
        import sys, time
        from confluent_kafka import Producer, Consumer, KafkaException
        from confluent_kafka.admin import (AdminClient, NewTopic, AclBinding, AclBindingFilter, ResourceType, ResourcePatternType,
            AclOperation, AclPermissionType)
        b = sys.argv[1]
        def conf(user, **extra):
            return dict({"bootstrap.servers": b, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                "sasl.username": user, "sasl.password": user + "-secret"}, **extra)
        def show(b):
            return "%s %s %s %s %s %s %s" % (b.restype.name, b.name, b.resource_pattern_type.name, b.principal, b.host, b.operation.name,
                b.permission_type.name)
        admin = AdminClient(conf("admin"))
        for f in admin.create_topics([NewTopic("acl-t", 1, 1)]).values():
            f.result()
        # alice may not create ACLs nor list them (no ALTER/DESCRIBE on the cluster). librdkafka drops
        # DescribeAcls' top-level error (2.16 returns an empty list), so the refusal is read with kafka-python.
        alice_admin = AdminClient(conf("alice"))
        for f in alice_admin.create_acls([AclBinding(ResourceType.TOPIC, "acl-t", ResourcePatternType.LITERAL, "User:alice", "*",
                AclOperation.ALL, AclPermissionType.ALLOW)]).values():
            try:
                f.result(10)
                print("ALICE-CREATE ACCEPTED")
            except KafkaException as e:
                print("ALICE-CREATE", e.args[0].name())
        import kafka
        from kafka.admin import ACLFilter, ResourcePatternFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType
        from kafka.admin import ResourceType as KResourceType
        kadmin = kafka.KafkaAdminClient(bootstrap_servers=b, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
            sasl_plain_username="alice", sasl_plain_password="alice-secret")
        try:
            kadmin.describe_acls(ACLFilter(principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY)))
            print("ALICE-DESCRIBE ACCEPTED")
        except kafka.errors.KafkaError as e:
            print("ALICE-DESCRIBE", type(e).__name__)
        kadmin.close()
        acls = [
            AclBinding(ResourceType.TOPIC, "acl-t", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW),
            AclBinding(ResourceType.TOPIC, "acl-", ResourcePatternType.PREFIXED, "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW),
            AclBinding(ResourceType.GROUP, "g-ok", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW),
        ]
        for binding, f in admin.create_acls(acls).items():
            print("CREATE", f.result(10))
        described = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
            AclOperation.ANY, AclPermissionType.ANY)).result(10)
        for line in sorted(show(x) for x in described):
            print("ACL", line)
        def produce(user):
            p = Producer(conf(user, **{"message.timeout.ms": 8000}))
            out = []
            p.produce("acl-t", value=b"from-" + user.encode(), on_delivery=lambda err, msg: out.append(err.name() if err else "OK"))
            p.flush(15)
            return out[0] if out else "NO-REPORT"
        print("PRODUCE alice", produce("alice"))
        print("PRODUCE bob", produce("bob"))
        def consume(user, group):
            c = Consumer(conf(user, **{"group.id": group, "auto.offset.reset": "earliest"}))
            c.subscribe(["acl-t"])
            deadline = time.time() + 20
            result = "TIMEOUT"
            while time.time() < deadline:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    result = m.error().name()
                    break
                result = "GOT " + m.value().decode()
                break
            c.close()
            return result
        print("CONSUME g-ok", consume("alice", "g-ok"))
        print("CONSUME g-bad", consume("alice", "g-bad"))
        deleted = admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, "User:alice", None,
            AclOperation.WRITE, AclPermissionType.ANY)])
        for f in deleted.values():
            for x in f.result(10):
                print("DELETED", show(x))
        print("PRODUCE alice-after-delete", produce("alice"))
        """

    func testAdminClientAclRoundTripAndEnforcement() throws {
        let dir = try temporaryDirectory("acl-process")
        defer { try? FileManager.default.removeItem(at: dir) }
        for user in ["admin", "alice", "bob"] {
            let r = try tape(["users", "add", user, "--mechanism", "scram-sha-256", "--data-dir", dir.path], stdin: "\(user)-secret\n")
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let args = ["--sasl", "scram-sha-256", "--authorizer", "acl", "--super-users", "User:admin"]
        var broker = try BrokerProcess(extraArguments: args, dataDir: dir)
        let r = try runProcess(python, ["-c", Self.script, broker.address], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stderr + "\n" + broker.log.suffix(3000))
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("ALICE-CREATE CLUSTER_AUTHORIZATION_FAILED"), r.stdout)
        XCTAssertTrue(lines.contains("ALICE-DESCRIBE ClusterAuthorizationFailedError"), r.stdout)
        XCTAssertEqual(lines.filter { $0 == "CREATE None" }.count, 3, r.stdout)
        XCTAssertEqual(
            lines.filter { $0.hasPrefix("ACL ") },
            [
                "ACL GROUP g-ok LITERAL User:alice * READ ALLOW", "ACL TOPIC acl- PREFIXED User:alice * READ ALLOW",
                "ACL TOPIC acl-t LITERAL User:alice * WRITE ALLOW",
            ], r.stdout)
        XCTAssertTrue(lines.contains("PRODUCE alice OK"), r.stdout)
        XCTAssertTrue(lines.contains("PRODUCE bob TOPIC_AUTHORIZATION_FAILED"), r.stdout)
        XCTAssertTrue(lines.contains("CONSUME g-ok GOT from-alice"), r.stdout)
        XCTAssertTrue(lines.contains("CONSUME g-bad GROUP_AUTHORIZATION_FAILED"), r.stdout)
        XCTAssertTrue(lines.contains("DELETED TOPIC acl-t LITERAL User:alice * WRITE ALLOW"), r.stdout)
        XCTAssertTrue(lines.contains("PRODUCE alice-after-delete TOPIC_AUTHORIZATION_FAILED"), r.stdout)

        // The ACLs are in the data directory: tape acls sees them, also after a restart.
        broker.stop()
        var listed = try tape(["acls", "list", "--data-dir", dir.path])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertEqual(listed.stdout, "topic\tacl-\tprefixed\tUser:alice\t*\tread\tallow\ngroup\tg-ok\tliteral\tUser:alice\t*\tread\tallow\n")
        let added = try tape([
            "acls", "add", "--resource-type", "topic", "--resource-name", "acl-t", "--principal", "User:bob", "--operation", "write", "--data-dir", dir.path,
        ])
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertTrue(added.stdout.contains("added 1 ACL"), added.stdout)
        let bad = try tape([
            "acls", "add", "--resource-type", "group", "--resource-name", "g", "--principal", "User:bob", "--operation", "write", "--data-dir", dir.path,
        ])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("group ACLs support only"), bad.stderr)
        broker = try BrokerProcess(extraArguments: args, dataDir: dir)
        defer { broker.stop() }
        let again = try runProcess(
            python,
            [
                "-c",
                """
                import sys
                from confluent_kafka.admin import AdminClient, AclBindingFilter, ResourceType, ResourcePatternType, AclOperation, AclPermissionType
                a = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                    "sasl.username": "admin", "sasl.password": "admin-secret"})
                got = a.describe_acls(AclBindingFilter(ResourceType.TOPIC, "acl-t", ResourcePatternType.MATCH, None, None, AclOperation.ANY,
                    AclPermissionType.ANY)).result(10)
                print(sorted((x.name, x.principal, x.operation.name) for x in got))
                """, broker.address,
            ], timeout: 60)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout, "[('acl-', 'User:alice', 'READ'), ('acl-t', 'User:bob', 'WRITE')]\n")
        listed = try tape(["acls", "delete", "--principal", "User:bob", "--data-dir", dir.path])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("deleted 1 ACL"), listed.stdout)
        listed = try tape(["acls", "delete", "--data-dir", dir.path])
        XCTAssertNotEqual(listed.status, 0)
    }
}
