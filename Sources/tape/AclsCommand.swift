import ArgumentParser
import Foundation
import TapeBroker

/// `tape acls`: the ACLs of a `tape broker`, kept in `acls.json` of its data directory. A running
/// broker re-reads the file when it changes, so these commands work on running and stopped brokers.
struct AclsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acls",
        abstract: "Manage the ACLs of a tape broker (acls.json in its data directory; enforced with tape broker --authorizer acl).",
        subcommands: [Add.self, List.self, Delete.self])

    struct Location: ParsableArguments {
        @Option(help: "The broker's data directory (as given to tape broker --data-dir), or tape up's (its kafka/ is used).")
        var dataDir: String = "./tape-data"

        var store: AclStore {
            get throws {
                try Preflight.notAFile(dataDir, flag: "--data-dir")
                return AclStore(dataDirectory: UsersCommand.brokerDirectory(dataDir))
            }
        }
    }

    /// Options that name the resource pattern and entry, shared by the three commands.
    struct Fields: ParsableArguments {
        @Option(help: "Resource type: topic, group, cluster, transactional-id.")
        var resourceType: String?

        @Option(help: "Resource name (\"*\" for every name; the cluster is kafka-cluster).")
        var resourceName: String?

        @Option(help: "Pattern type: literal or prefixed (list and delete also take any and match).")
        var pattern: String?

        @Option(help: "Principal, e.g. User:alice or User:* for everyone.")
        var principal: String?

        @Option(help: "Client address the ACL applies to (\"*\" for every host).")
        var host: String?

        @Option(
            help: ArgumentHelp(
                "Operation (repeatable): all, read, write, create, delete, alter, describe, cluster-action, describe-configs, alter-configs, idempotent-write.",
                valueName: "operation"))
        var operation: [String] = []

        @Option(help: "Permission: allow or deny.")
        var permission: String?

        func resourceTypeValue() throws -> AclResourceType? {
            guard let resourceType else { return nil }
            guard let t = AclResourceType(rawValue: resourceType) else {
                throw ValidationError("--resource-type takes topic, group, cluster or transactional-id; got \(resourceType).")
            }
            return t
        }

        func operations() throws -> [AclOperation] {
            try operation.map { name in
                guard let o = AclOperation(rawValue: name) else {
                    throw ValidationError(
                        "--operation takes \(AclOperation.allCases.map(\.rawValue).joined(separator: ", ")); got \(name).")
                }
                return o
            }
        }

        func permissionValue() throws -> AclPermission? {
            guard let permission else { return nil }
            guard let p = AclPermission(rawValue: permission) else { throw ValidationError("--permission takes allow or deny; got \(permission).") }
            return p
        }

        func filters() throws -> [AclBindingFilter] {
            let pattern: AclBindingFilter.PatternFilter
            switch self.pattern {
            case nil, "any": pattern = .any
            case "match": pattern = .match
            case "literal": pattern = .literal
            case "prefixed": pattern = .prefixed
            case let other?: throw ValidationError("--pattern takes literal, prefixed, any or match; got \(other).")
            }
            let base = AclBindingFilter(
                resourceType: try resourceTypeValue(), resourceName: resourceName, patternType: pattern, principal: principal, host: host,
                permission: try permissionValue())
            let ops = try operations()
            if ops.isEmpty { return [base] }
            return ops.map { o in
                var f = base
                f.operation = o
                return f
            }
        }

        var isEmpty: Bool {
            resourceType == nil && resourceName == nil && pattern == nil && principal == nil && host == nil && operation.isEmpty && permission == nil
        }
    }

    static func line(_ b: AclBinding) -> String {
        [b.resourceType.rawValue, b.resourceName, b.patternType.rawValue, b.principal, b.host, b.operation.rawValue, b.permission.rawValue].joined(
            separator: "\t")
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add ACLs: one per --operation, e.g. tape acls add --resource-type topic --resource-name orders --principal User:alice --operation write."
        )
        @OptionGroup var fields: Fields
        @OptionGroup var location: Location

        func bindings() throws -> [AclBinding] {
            guard let type = try fields.resourceTypeValue() else { throw ValidationError("--resource-type is required.") }
            let name = fields.resourceName ?? (type == .cluster ? AclBinding.clusterResourceName : nil)
            guard let name else { throw ValidationError("--resource-name is required (use \"*\" for every \(type.rawValue)).") }
            guard let principal = fields.principal else { throw ValidationError("--principal is required, e.g. User:alice.") }
            let pattern: AclPatternType
            switch fields.pattern {
            case nil, "literal": pattern = .literal
            case "prefixed": pattern = .prefixed
            case let other?: throw ValidationError("--pattern for add takes literal or prefixed; got \(other).")
            }
            let ops = try fields.operations()
            guard !ops.isEmpty else { throw ValidationError("--operation is required (repeatable), e.g. --operation read.") }
            return try ops.map { o in
                let b = AclBinding(
                    resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: fields.host ?? "*", operation: o,
                    permission: try fields.permissionValue() ?? .allow)
                do { try b.validate() } catch { throw ValidationError("\(error).") }
                return b
            }
        }

        func validate() throws { _ = try bindings() }

        func run() throws {
            let bindings = try bindings()
            let added = try location.store.add(bindings)
            for b in bindings { print(AclsCommand.line(b)) }
            print("added \(added) ACL\(added == 1 ? "" : "s")\(added < bindings.count ? " (\(bindings.count - added) already present)" : "")")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List ACLs (tab-separated: type, name, pattern, principal, host, operation, permission), optionally filtered.")
        @OptionGroup var fields: Fields
        @OptionGroup var location: Location

        func validate() throws { _ = try fields.filters() }

        func run() throws {
            let filters = try fields.filters()
            for b in try location.store.read().acls where filters.contains(where: { $0.matches(b) }) { print(AclsCommand.line(b)) }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete the ACLs matching the given fields (--all: every ACL).")
        @OptionGroup var fields: Fields
        @Flag(help: "Delete every ACL.")
        var all = false
        @OptionGroup var location: Location

        func validate() throws {
            if fields.isEmpty && !all { throw ValidationError("give fields to match (e.g. --principal User:alice), or --all to delete every ACL.") }
            _ = try fields.filters()
        }

        func run() throws {
            let matched = try location.store.remove(matching: try fields.filters())
            let removed = Set(matched.flatMap { $0 })
            for b in removed.sorted(by: { AclsCommand.line($0) < AclsCommand.line($1) }) { print(AclsCommand.line(b)) }
            guard !removed.isEmpty else {
                FileHandle.standardError.write(Data("Error: no ACL in \(try location.store.path) matches.\n".utf8))
                throw ExitCode.failure
            }
            print("deleted \(removed.count) ACL\(removed.count == 1 ? "" : "s")")
        }
    }
}
