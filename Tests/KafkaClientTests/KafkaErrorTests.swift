import KafkaClient
import XCTest

/// `KafkaError.Code` values are distinct: a configuration error is not librdkafka's invalid argument.
final class KafkaErrorTests: XCTestCase {
    func testConfigurationAndInvalidArgumentAreDifferentCodes() {
        XCTAssertNotEqual(KafkaError.Code.configuration, .invalidArgument)
        XCTAssertNotEqual(KafkaError.Code.configuration.rawValue, KafkaError.Code.invalidArgument.rawValue)
        XCTAssertEqual(KafkaError.Code.configuration.name, "_CONFIGURATION")
        XCTAssertEqual(KafkaError.Code.invalidArgument.name, "_INVALID_ARG")
        let all: [KafkaError.Code] = [
            .noError, .queueFull, .timedOut, .transport, .allBrokersDown, .unknownTopic, .unknownPartition, .unknownTopicOrPartition,
            .topicAlreadyExists, .invalidReplicationFactor, .messageTooLarge, .invalidArgument, .partitionEOF, .fatal, .state, .destroyed,
            .configuration,
        ]
        XCTAssertEqual(Set(all).count, all.count, "every named code has its own value")
    }

    func testABadPropertyIsAConfigurationError() {
        XCTAssertThrowsError(try KafkaConfiguration.parseProperties(["novalue"])) { error in
            XCTAssertEqual((error as? KafkaError)?.code, .configuration)
            XCTAssertNotEqual((error as? KafkaError)?.code, .invalidArgument)
        }
        var config = KafkaProducerConfiguration(kafka: .init(bootstrapServers: "127.0.0.1:1", properties: ["no.such.property": "1"]))
        config.deliveryReports = false
        XCTAssertThrowsError(try KafkaProducer(configuration: config)) { error in
            XCTAssertEqual((error as? KafkaError)?.code, .configuration, "\(error)")
        }
    }
}
