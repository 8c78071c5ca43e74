import KafkaClient
import XCTest

/// Secret librdkafka properties (`--kafka-option sasl.password=...`) never appear in errors.
final class SecretPropertyTests: XCTestCase {
    func testSecretsAreRedactedInConfigurationErrors() {
        var config = KafkaProducerConfiguration(kafka: .init(bootstrapServers: "127.0.0.1:1", properties: ["sasl.password.typo": "hunter2"]))
        config.deliveryReports = false
        XCTAssertThrowsError(try KafkaProducer(configuration: config)) { error in
            XCTAssertEqual((error as? KafkaError)?.code, .configuration, "\(error)")
            XCTAssertFalse("\(error)".contains("hunter2"), "\(error)")
            XCTAssertTrue("\(error)".contains("(redacted)"), "\(error)")
        }
        // A non-secret value is still shown, so typos can be found.
        config.kafka.properties = ["no.such.property": "visible"]
        XCTAssertThrowsError(try KafkaProducer(configuration: config)) { XCTAssertTrue("\($0)".contains("visible"), "\($0)") }
    }

    func testWhichPropertiesAreSecret() {
        for key in ["sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret", "ssl.key.pem", "sasl.jaas.config"] {
            XCTAssertTrue(KafkaConfiguration.isSecret(key), key)
        }
        for key in ["sasl.username", "security.protocol", "sasl.mechanism", "ssl.ca.location", "bootstrap.servers"] {
            XCTAssertFalse(KafkaConfiguration.isSecret(key), key)
        }
        let c = KafkaConfiguration(properties: ["sasl.username": "alice", "sasl.password": "pw"])
        XCTAssertEqual(c.redactedProperties, ["sasl.username": "alice", "sasl.password": "(redacted)"])
    }
}
