import ArgumentParser
import KafkaClient

/// The `tape` command line: argument parsing only; each subcommand builds services and runs them.
@main
struct Tape: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tape",
        abstract: "Stream cryptocurrency market data through Kafka.",
        version: TapeVersion.string,
        subcommands: [
            VersionCommand.self,
            BrokerCommand.self,
        ]
    )
}

enum TapeVersion {
    static let tape = "0.1.0"
    static var string: String { "tape \(tape) (librdkafka \(LibrdkafkaInfo.version))" }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print Tape's and librdkafka's versions and librdkafka's built-in features.")
    func run() throws {
        print(TapeVersion.string)
    }
}
