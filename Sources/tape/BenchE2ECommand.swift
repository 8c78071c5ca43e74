import ArgumentParser

struct BenchE2E: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "e2e", abstract: "End-to-end latency of tape up.")
    func run() async throws {}
}
