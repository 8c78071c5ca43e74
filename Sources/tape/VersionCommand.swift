import ArgumentParser
import Foundation
import KafkaClient

enum TapeVersion {
    static let tape = "0.1.0"
    static var string: String {
        "tape \(tape)\nlibrdkafka \(LibrdkafkaInfo.version)\nfeatures: \(LibrdkafkaInfo.features.joined(separator: ","))"
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print Tape's and librdkafka's versions and librdkafka's built-in features.")
    func run() throws {
        print(TapeVersion.string)
    }
}

struct MockClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-cluster",
        abstract: "Run librdkafka's in-memory mock Kafka cluster on loopback (for tests and benchmarks; no persistence).",
        discussion: "Prints the bootstrap address on the first line of stdout, then runs until Ctrl-C."
    )
    @Option(help: "Number of mock brokers.") var brokers: Int = 3
    @Option(
        name: .customLong("topic"),
        help: ArgumentHelp("Create a topic, name:partitions (repeatable); the mock cluster has no CreateTopics API.", valueName: "name:partitions"))
    var topics: [String] = []

    func validate() throws {
        guard (1...100).contains(brokers) else { throw ValidationError("--brokers must be from 1 to 100; got \(brokers).") }
        _ = try parsedTopics()
    }

    func parsedTopics() throws -> [(name: String, partitions: Int32)] {
        try topics.map { spec in
            let parts = spec.split(separator: ":")
            guard parts.count == 2, let n = Int32(parts[1]), (1...10_000).contains(n) else {
                throw ValidationError("--topic expects name:partitions with 1 to 10000 partitions, got '\(spec)'.")
            }
            return (String(parts[0]), n)
        }
    }

    func run() async throws {
        let cluster = try MockKafkaCluster(brokers: brokers)
        for (name, partitions) in try parsedTopics() {
            try cluster.createTopic(name, partitions: partitions)
        }
        let out = OutputBuffer()
        out.write(cluster.bootstrapServers + "\n")
        out.flush()
        try await runUntilSignalled {
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        withExtendedLifetime(cluster) {}
    }
}
