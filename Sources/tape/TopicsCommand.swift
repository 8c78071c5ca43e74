import ArgumentParser
import KafkaClient

struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics",
        abstract: "List, describe, create and delete topics.",
        subcommands: [List.self, Describe.self, Create.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List topics with their partition counts.")
        @OptionGroup var kafka: KafkaOptions
        @Flag(name: .customLong("internal"), help: "Include internal topics (__consumer_offsets, ...).") var includeInternal = false

        func run() async throws {
            let admin = try KafkaAdmin(configuration: kafka.configuration(), timeout: .seconds(5), logger: kafka.logger("tape.topics"))
            let topics = try await admin.listTopics(includeInternal: includeInternal)
            for topic in topics {
                print("\(topic.name)\tpartitions=\(topic.partitions.count)")
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a topic's partitions, leaders, replicas and configs.")
        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "Topic name.") var name: String

        func run() async throws {
            let admin = try KafkaAdmin(configuration: kafka.configuration(), timeout: .seconds(5), logger: kafka.logger("tape.topics"))
            let (topic, configs) = try await admin.describeTopic(name)
            print("Topic: \(topic.name)\tPartitionCount: \(topic.partitions.count)\tReplicationFactor: \(topic.partitions.first?.replicas.count ?? 0)")
            let overrides = configs.filter { !$0.isDefault }
            if !overrides.isEmpty {
                print("Configs: " + overrides.map { "\($0.name)=\($0.isSensitive ? "<sensitive>" : ($0.value ?? ""))" }.joined(separator: ","))
            }
            for p in topic.partitions {
                let error = p.error == .noError ? "" : "\tError: \(p.error.name)"
                print(
                    "\tPartition: \(p.id)\tLeader: \(p.leader)\tReplicas: \(p.replicas.map(String.init).joined(separator: ","))\tIsr: \(p.inSyncReplicas.map(String.init).joined(separator: ","))\(error)"
                )
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a topic.")
        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "Topic name.") var name: String
        @Option(help: "Number of partitions.") var partitions: Int32 = 1
        @Option(name: .customLong("replication-factor"), help: "Replication factor (1 on the embedded one-node broker).") var replicationFactor: Int32 = 1
        @Option(
            name: .customLong("config"),
            help: ArgumentHelp("Topic config key=value (repeatable), e.g. --config cleanup.policy=compact.", valueName: "key=value"))
        var configs: [String] = []

        func validate() throws {
            guard (1...100_000).contains(partitions) else { throw ValidationError("--partitions must be from 1 to 100000; got \(partitions).") }
            guard (1...32_767).contains(replicationFactor) else {
                throw ValidationError("--replication-factor must be from 1 to 32767; got \(replicationFactor).")
            }
            do { _ = try KafkaConfiguration.parseProperties(configs) } catch let error as KafkaError {
                throw ValidationError(error.message.replacingOccurrences(of: "Property", with: "--config"))
            }
        }

        func run() async throws {
            let parsed = try KafkaConfiguration.parseProperties(configs)
            // Unreachable within 5 s (the request itself may wait 10 s for a busy cluster).
            try await KafkaOptions.requireCluster(kafka.configuration())
            let admin = try KafkaAdmin(configuration: kafka.configuration(), timeout: .seconds(10), logger: kafka.logger("tape.topics"))
            try await admin.createTopic(name, partitions: partitions, replicationFactor: replicationFactor, configs: parsed)
            print("Created topic \(name) (partitions=\(partitions), replication-factor=\(replicationFactor)).")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a topic and its data.")
        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "Topic name.") var name: String

        func run() async throws {
            try await KafkaOptions.requireCluster(kafka.configuration())
            let admin = try KafkaAdmin(configuration: kafka.configuration(), timeout: .seconds(10), logger: kafka.logger("tape.topics"))
            try await admin.deleteTopic(name)
            print("Deleted topic \(name).")
        }
    }
}

struct GroupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "List and describe consumer groups (members, assignments, committed offsets, lag).",
        subcommands: [List.self, Describe.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List consumer groups.")
        @OptionGroup var kafka: KafkaOptions

        func run() async throws {
            let admin = try KafkaAdmin(configuration: kafka.configuration(), timeout: .seconds(5), logger: kafka.logger("tape.groups"))
            for group in try await admin.listGroups() {
                print("\(group.id)\tstate=\(group.state)\tprotocol=\(group.protocolType)")
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a group's members, assignments, committed offsets and lag.")
        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "Group id.") var group: String
        @Option(help: "Only these topics (comma-separated); default: topics the group is assigned or has committed to.")
        var topics: String?

        func run() async throws {
            let admin = try KafkaAdmin(configuration: kafka.configuration(), timeout: .seconds(5), logger: kafka.logger("tape.groups"))
            let d = try await admin.describeGroup(group, topics: topics.map { $0.split(separator: ",").map(String.init) })
            print(
                "Group: \(d.groupID)\tState: \(d.state)\tProtocol: \(d.protocolName.isEmpty ? "-" : d.protocolName)\tMembers: \(d.members.count)\tTotalLag: \(d.totalLag)"
            )
            for m in d.members {
                let assignment = m.assignment.sorted { $0.key < $1.key }.map { "\($0.key)[\($0.value.sorted().map(String.init).joined(separator: ","))]" }
                    .joined(separator: " ")
                print("\tMember: \(m.memberID)\tClient: \(m.clientID)\tHost: \(m.host)\tAssignment: \(assignment)")
            }
            print("\tTOPIC\tPARTITION\tCOMMITTED\tLOG-END\tLAG")
            for o in d.offsets {
                print("\t\(o.topic)\t\(o.partition)\t\(o.committed.map(String.init) ?? "-")\t\(o.logEndOffset)\t\(o.lag)")
            }
        }
    }
}
