import ArgumentParser
import Foundation
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

    /// The one error path of the whole CLI. Bad flags (found while parsing and validating) get
    /// ArgumentParser's message and usage, a did-you-mean for an unknown option or subcommand, and
    /// exit 64. Anything thrown while a command runs is a runtime failure: one line,
    /// `Error: <sentence>` (FailureText), no usage, exit 1 (an `ExitCode` thrown by a command that
    /// already said why is passed through).
    static func main() async {
        let arguments = CommandLineWords.joiningNegativeValues(Array(CommandLine.arguments.dropFirst()), root: Tape.self)
        var command: any ParsableCommand
        do {
            command = try await asyncParseAsRoot(arguments)
        } catch {
            exitForUsage(error, arguments: arguments)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exitForRuntime(error)
        }
    }

    /// A parse or validation error (or a help / version request, which exits 0).
    static func exitForUsage(_ error: any Error, arguments: [String]) -> Never {
        let code = exitCode(for: error)
        if code == .success || error is ExitCode { Tape.exit(withError: error) }  // help, version; or already reported
        guard code == .validationFailure else {
            // Something other than a ValidationError thrown while validating: its one line.
            printError("Error: " + FailureText.oneLine(message(for: error)))
            Foundation.exit(code.rawValue)
        }
        // ArgumentParser names a missing required option before an unknown one (`--topik x`
        // gives "Missing expected argument '--topic'"): the unknown one, with a suggestion, first.
        if let unknown = CommandLineWords.unknownOptionMessage(arguments, root: Tape.self) {
            printError("Error: \(unknown.message)\n\(unknown.usage)")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        var text = fullMessage(for: error)
        if let suggestion = CommandLineWords.subcommandSuggestion(arguments, root: Tape.self),
            let end = text.firstIndex(of: "\n"), text.hasPrefix("Error: Unexpected argument")
        {
            text.insert(contentsOf: ". \(suggestion)", at: end)
        }
        printError(text.hasSuffix("\n") ? String(text.dropLast()) : text)
        Foundation.exit(code.rawValue)
    }

    /// A failure while a command ran: one sentence, no usage.
    static func exitForRuntime(_ error: any Error) -> Never {
        if let code = error as? ExitCode { Foundation.exit(code.rawValue) }
        // ArgumentParser's own requests (CleanExit, help shown by a built-in command's run) exit 0.
        if exitCode(for: error) == .success { Tape.exit(withError: error) }
        let status = (error as? TapeFailure)?.exitCode ?? ExitCode.failure.rawValue
        printError("Error: " + FailureText.sentence(for: error))
        Foundation.exit(status)
    }
}

/// What the command line says, read without ArgumentParser: which (sub)command it names, and
/// that command's option names (from its help, hidden options included).
enum CommandLineWords {
    struct OptionNames {
        /// Every long option, `--name`.
        var all: Set<String> = []
        /// The long options that take a value.
        var takingValue: Set<String> = []
    }

    /// The command `arguments` name (`tape topics list ...` -> TopicsCommand.List) and how many
    /// words named it.
    static func command(_ arguments: [String], root: any ParsableCommand.Type) -> (command: any ParsableCommand.Type, depth: Int) {
        var current = root
        var depth = 0
        for word in arguments {
            guard let next = current.configuration.subcommands.first(where: { $0._commandName == word }) else { break }
            current = next
            depth += 1
        }
        return (current, depth)
    }

    static func options(of command: any ParsableCommand.Type, root: any ParsableCommand.Type) -> OptionNames {
        var names = OptionNames()
        let help = root.helpMessage(for: command, includeHidden: true, columns: 10_000)
        for line in help.split(separator: "\n") {
            let text = line.drop(while: { $0 == " " })
            guard text.hasPrefix("-") else { continue }
            // "-X, --kafka-option <key=value>  help", "--offline  help", "--rate <rate>  help"
            let head = text.components(separatedBy: "  ").first ?? String(text)
            let takesValue = head.contains("<")
            for word in head.split(whereSeparator: { $0 == " " || $0 == "," }) where word.hasPrefix("--") {
                names.all.insert(String(word))
                if takesValue { names.takingValue.insert(String(word)) }
            }
        }
        names.all.formUnion(["--help", "--help-hidden", "--version", "--experimental-dump-help", "--generate-completion-script"])
        return names
    }

    /// `--rate -5` as `--rate=-5`: ArgumentParser takes a word starting with `-` for an option, so
    /// a negative number after an option that takes a value would be "Missing value for '--rate'"
    /// instead of reaching the command's own check ("--rate must be positive; got -5.").
    static func joiningNegativeValues(_ arguments: [String], root: any ParsableCommand.Type) -> [String] {
        guard arguments.contains(where: isNegativeNumber) else { return arguments }
        let (command, depth) = command(arguments, root: root)
        let valued = options(of: command, root: root).takingValue
        var out = Array(arguments.prefix(depth))
        var i = depth
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" {
                out += arguments[i...]
                break
            }
            if valued.contains(word), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
                out.append("\(word)=\(arguments[i + 1])")
                i += 2
            } else {
                out.append(word)
                i += 1
            }
        }
        return out
    }

    static func isNegativeNumber(_ word: String) -> Bool {
        word.count > 1 && word.hasPrefix("-") && Double(word) != nil
    }

    /// "Unknown option '--topik'. Did you mean '--topic'?" and the usage lines, for the first long
    /// option the named command does not have (nil when every option is known).
    static func unknownOptionMessage(_ arguments: [String], root: any ParsableCommand.Type) -> (message: String, usage: String)? {
        let (command, depth) = command(arguments, root: root)
        let names = options(of: command, root: root)
        var i = depth
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" { break }
            let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
            if name.hasPrefix("--"), name.count > 2, !names.all.contains(name) {
                var message = "Unknown option '\(name)'"
                if let best = closest(name, in: names.all) { message += ". Did you mean '\(best)'?" }
                let path = ([root._commandName] + arguments.prefix(depth)).joined(separator: " ")
                let usage = "Usage: \(root.usageString(for: command))\n  See '\(path) --help' for more information."
                return (message, usage)
            }
            // The value of an option that takes one is not an option name.
            i += (names.takingValue.contains(word) ? 2 : 1)
        }
        return nil
    }

    /// "Did you mean 'consume'?" for the word after the last command named, when that command
    /// has subcommands and the word is close to one.
    static func subcommandSuggestion(_ arguments: [String], root: any ParsableCommand.Type) -> String? {
        let (command, depth) = command(arguments, root: root)
        let subcommands = command.configuration.subcommands.map { $0._commandName }
        guard !subcommands.isEmpty, depth < arguments.count, !arguments[depth].hasPrefix("-") else { return nil }
        return closest(arguments[depth], in: Set(subcommands)).map { "Did you mean '\($0)'?" }
    }

    /// The candidate nearest to `word` by edit distance, if near enough to be a typo.
    static func closest(_ word: String, in candidates: Set<String>) -> String? {
        let scored = candidates.map { ($0, editDistance(word, $0)) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        guard let best = scored.first else { return nil }
        let allowed = max(1, min(3, word.count / 3))
        if best.1 <= allowed { return best.0 }
        // A shortened name (`--replication` for `--replication-factor`), when only one fits.
        let extended = candidates.filter { $0.hasPrefix(word) }
        return extended.count == 1 && word.count >= 4 ? extended.first : nil
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
