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
            UpCommand.self,
            VersionCommand.self,
            TopicsCommand.self,
            ProduceCommand.self,
            ConsumeCommand.self,
            GroupsCommand.self,
            BrokerCommand.self,
            BenchCommand.self,
            MockClusterCommand.self,
            IngestCommand.self,
            SimulateCommand.self,
            ProcessCommand.self, CandlesCommand.self, BooksCommand.self,
            ServeCommand.self,
            UsersCommand.self,
            AclsCommand.self,
        ]
    )
}
