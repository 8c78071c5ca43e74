import ArgumentParser
import Foundation
import TapeBroker
import TapeRuntime

/// `tape users`: the SASL users of a `tape broker`, kept in its data directory.
struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Manage the SASL users of a tape broker (credentials.json in its data directory).",
        subcommands: [Add.self, List.self, Delete.self])

    struct Location: ParsableArguments {
        @Option(help: "The broker's data directory (as given to tape broker --data-dir), or tape up's (its kafka/ is used).")
        var dataDir: String = "./tape-data"

        var store: CredentialStore {
            get throws {
                try Preflight.notAFile(dataDir, flag: "--data-dir")
                return CredentialStore(dataDirectory: UsersCommand.brokerDirectory(dataDir))
            }
        }
    }

    /// `tape up`'s data directory (the one with `candles.sqlite`) keeps its broker's files,
    /// users and ACLs included, in `kafka/`: given the former, `tape users` and `tape acls` use
    /// the latter, and say so on stderr.
    static func brokerDirectory(_ dataDir: String) -> String {
        let fm = FileManager.default
        let broker = (dataDir as NSString).appendingPathComponent("kafka")
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: (dataDir as NSString).appendingPathComponent("candles.sqlite")),
            fm.fileExists(atPath: broker, isDirectory: &isDirectory), isDirectory.boolValue
        else { return dataDir }
        FileHandle.standardError.write(Data("(\(dataDir) is tape up's data directory: using its broker's, \(broker))\n".utf8))
        return broker
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user, or replace the password of one (read from --password-file, else from standard input).")

        @Argument(help: "User name.")
        var name: String

        @Option(
            help: ArgumentHelp(
                "Mechanism to store a credential for (repeatable): plain, scram-sha-256, scram-sha-512. Default: all three.", valueName: "mechanism"))
        var mechanism: [String] = []

        @Option(help: "Read the password from the first line of this file instead of standard input.")
        var passwordFile: String?

        @Option(help: ArgumentHelp("SCRAM and PLAIN hash iterations (4096 to 16384).", visibility: .hidden))
        var iterations: Int = 4096

        @OptionGroup var location: Location

        func validate() throws {
            guard !name.isEmpty, name.utf8.count <= 255, !name.contains("\0") else {
                throw ValidationError("the user name must be 1 to 255 bytes without NUL; got \(name.debugDescription).")
            }
            for m in mechanism where SaslMechanism(optionName: m) == nil {
                throw ValidationError("--mechanism takes plain, scram-sha-256 or scram-sha-512; got \(m).")
            }
            guard (4096...16384).contains(iterations) else { throw ValidationError("--iterations must be from 4096 to 16384; got \(iterations).") }
            if name == InternalClient.userName {
                throw ValidationError("\(name) is the user tape up's own stages log in as (with a password kept in memory); pick another name.")
            }
        }

        func run() throws {
            let mechanisms = mechanism.isEmpty ? SaslMechanism.allCases : mechanism.compactMap { SaslMechanism(optionName: $0) }
            let password = try readPassword()
            let existed = try location.store.update { file -> Bool in
                let existed = file.users[name] != nil
                var user = file.users[name] ?? UserCredentials()
                for m in mechanisms {
                    switch m {
                    case .plain: user.plain = PlainCredential(password: password, iterations: iterations)
                    case .scramSha256, .scramSha512: user.setScram(m, ScramCredential(hash: m.scramHash ?? .sha256, password: password, iterations: iterations))
                    }
                }
                file.users[name] = user
                return existed
            }
            print("\(existed ? "updated" : "added") user \(name) (\(mechanisms.map(\.rawValue).joined(separator: ", ")))")
        }

        func readPassword() throws -> String {
            var text: String
            if let passwordFile {
                guard let data = FileManager.default.contents(atPath: passwordFile), let s = String(data: data, encoding: .utf8) else {
                    throw ValidationError("cannot read the password file \(passwordFile) as UTF-8 text.")
                }
                text = s
            } else if isatty(0) == 1, let p = getpass("Password for \(name): ") {
                text = String(cString: p)
            } else {
                text = readLine(strippingNewline: false) ?? ""
            }
            if let newline = text.firstIndex(where: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) { text = String(text[..<newline]) }
            guard !text.isEmpty else { throw ValidationError("the password is empty; give it on standard input or with --password-file.") }
            guard text.utf8.count <= 255, !text.contains("\0") else { throw ValidationError("the password must be at most 255 bytes without NUL.") }
            return text
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the users and the mechanisms each has a credential for.")
        @OptionGroup var location: Location

        func run() throws {
            let file = try location.store.read()
            for name in file.users.keys.sorted() {
                print("\(name)\t\((file.users[name]?.mechanisms ?? []).map(\.rawValue).joined(separator: ","))")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user; its connections stay open, new ones are refused.")
        @Argument(help: "User name.")
        var name: String
        @OptionGroup var location: Location

        func run() throws {
            let existed = try location.store.update { file in file.users.removeValue(forKey: name) != nil }
            guard existed else {
                FileHandle.standardError.write(Data("Error: there is no user \(name) in \(try location.store.path).\n".utf8))
                throw ExitCode.failure
            }
            print("deleted user \(name)")
        }
    }
}
