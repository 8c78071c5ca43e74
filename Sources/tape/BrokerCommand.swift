import ArgumentParser
import Dispatch
import Foundation
import Logging
import TapeBroker
import TapeRuntime

/// `tape broker`: runs the embedded single-node Kafka-compatible broker.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the embedded single-node Kafka-compatible broker.")

    enum FsyncPolicyOption: String, ExpressibleByArgument, CaseIterable {
        case always, interval, never

        var policy: FsyncPolicy {
            switch self {
            case .always: .always
            case .interval: .interval(milliseconds: 1000)
            case .never: .never
            }
        }
    }

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: String = "127.0.0.1:9092"

    @Option(help: ArgumentHelp("Address clients are told to connect to, HOST:PORT (default: the listen address).", visibility: .hidden))
    var advertise: String?

    @Option(help: "Directory for topic data and committed offsets.")
    var dataDir: String = "./tape-data"

    @Option(help: "When appended data is fsynced: always (before acks>=1 answers), interval or never.")
    var fsync: FsyncPolicyOption = .interval

    @Option(help: "Create unknown topics on produce and metadata requests: true or false.")
    var autoCreateTopics: Bool = true

    @Option(help: "Partitions of auto-created topics.")
    var numPartitions: Int32 = 1

    @Option(help: "Partitions of all topics together; creating more is refused with POLICY_VIOLATION.")
    var maxPartitions: Int = 10_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Milliseconds a new consumer group waits for more members before its first rebalance (Kafka's group.initial.rebalance.delay.ms).")
    var groupInitialRebalanceDelayMs: Int64 = 3000

    @OptionGroup(title: "Limits (docs/limits.md)")
    var limits: BrokerLimitOptions

    @OptionGroup(title: "Security (docs/security.md)")
    var security: BrokerSecurityOptions

    func validate() throws {
        guard (try? Self.parseListen(listen)) != nil else {
            throw ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9092; got \(listen).")
        }
        if let advertise, (try? Self.parseListen(advertise)) == nil {
            throw ValidationError("--advertise must be HOST:PORT, e.g. 127.0.0.1:9092; got \(advertise).")
        }
        guard numPartitions >= 1 else { throw ValidationError("--num-partitions must be at least 1; got \(numPartitions).") }
        guard maxPartitions >= 1 else { throw ValidationError("--max-partitions must be at least 1; got \(maxPartitions).") }
        guard groupInitialRebalanceDelayMs >= 0 else {
            throw ValidationError("--group-initial-rebalance-delay-ms must be 0 or more; got \(groupInitialRebalanceDelayMs).")
        }
        try limits.validate()
        try security.validate()
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(logLevel).")
        }
    }

    static func parseListen(_ s: String) throws -> (String, Int) {
        guard let address = HostPort(s) else { throw ValidationError("\(s) is not HOST:PORT with a port from 0 to 65535") }
        return (address.host, address.port)
    }

    func run() async throws {
        // Before NIO and the storage threads start (see ShutdownSignals).
        tuneMallocForStreaming()
        let shutdown = ShutdownSignals()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "tape.broker")
        var config = BrokerConfiguration()
        (config.host, config.port) = try Self.parseListen(listen)
        if let advertise {
            let (host, port) = try Self.parseListen(advertise)
            config.advertisedHost = host
            config.advertisedPort = port
        }
        config.autoCreateTopics = autoCreateTopics
        config.numPartitions = numPartitions
        config.group.initialRebalanceDelayMs = groupInitialRebalanceDelayMs
        limits.apply(to: &config)
        security.apply(to: &config, dataDir: dataDir)
        // Not on a reachable address without authentication, unless asked for (exit 64, as a usage error).
        if let refusal = BrokerSecurity.insecureListenerRefusal(
            host: config.host, authenticatesClients: config.security.authenticatesClients, insecure: security.insecure)
        {
            FileHandle.standardError.write(Data("Error: \(refusal)\n".utf8))
            throw ExitCode(64)
        }
        // systemd and most shells start processes at 1024 open files (soft) with a far higher hard
        // limit: take what is allowed, then size the connection budget to it.
        DescriptorLimit.raiseSoftLimit()
        try Preflight.directory(dataDir, flag: "--data-dir")
        let stores = try Self.buildStores(dataDir: dataDir, fsync: fsync, logger: logger, maxPartitions: maxPartitions)
        let broker = Broker(
            configuration: config, topics: stores.topics, committedOffsets: stores.offsets, logger: logger, transactionStore: stores.transactions)
        // A BrokerStartError is one sentence saying what to do; it is printed without usage text.
        let bound = try await BrokerServer(broker: broker, logger: logger).bind()
        // Ctrl-C / SIGTERM stop the server gracefully.
        let signals = shutdown.received
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await bound.run() }
            group.addTask {
                for await sig in signals {
                    logger.info("received \(ShutdownSignals.name(sig)); shutting down")
                    return
                }
            }
            _ = try await group.next()
            group.cancelAll()
        }
        shutdown.cancel()
        await stores.close()
        logger.info("tape broker stopped")
    }

    /// The durable stores: topics in `LogManager`, committed offsets in its `OffsetStore`.
    static func buildStores(dataDir: String, fsync: FsyncPolicyOption, logger: Logger, maxPartitions: Int = 10_000) throws -> BrokerStage.Stores {
        try BrokerStage.openStores(dataDirectory: dataDir, fsync: fsync.policy, logger: logger, maxPartitions: maxPartitions)
    }
}

/// `tape broker`'s resource limits; names follow Kafka's broker settings (docs/limits.md).
struct BrokerLimitOptions: ParsableArguments {
    @Option(help: "Client connections served at once; more are closed when accepted (lowered to fit the open-files limit).")
    var maxConnections: Int = 1000

    @Option(help: "Close connections without traffic for this many milliseconds (0: never).")
    var connectionsMaxIdleMs: Int64 = 600_000

    @Option(help: "Close a connection whose started request frame is not complete within this many milliseconds (0: never).")
    var requestReadTimeoutMs: Int64 = 60_000

    @Option(help: "Bytes of request frames being read across all connections; beyond it, connections wait unread.")
    var queuedMaxRequestBytes: Int = 512 << 20

    @Option(help: "Largest fetch response in bytes, whatever a client asks (the first batch is always returned).")
    var fetchMaxBytes: Int = 57_671_680

    @Option(help: "Members of one consumer group; joins beyond it get GROUP_MAX_SIZE_REACHED.")
    var groupMaxSize: Int = 1000

    @Option(help: "Consumer groups with members held at once; new groups beyond it get GROUP_MAX_SIZE_REACHED.")
    var maxGroups: Int = 10_000

    @Option(help: "Largest committed-offset metadata in bytes; larger commits get OFFSET_METADATA_TOO_LARGE.")
    var offsetMetadataMaxBytes: Int = 4096

    @Option(help: "Forget an idempotent producer's state after this many milliseconds without a write.")
    var producerIdExpirationMs: Int64 = 86_400_000

    @Option(help: "Longest transaction.timeout.ms a transactional producer may ask for; longer gets INVALID_TRANSACTION_TIMEOUT.")
    var transactionMaxTimeoutMs: Int32 = 900_000

    func validate() throws {
        let positive: [(String, Int64)] = [
            ("--max-connections", Int64(maxConnections)), ("--queued-max-request-bytes", Int64(queuedMaxRequestBytes)),
            ("--fetch-max-bytes", Int64(fetchMaxBytes)), ("--group-max-size", Int64(groupMaxSize)), ("--max-groups", Int64(maxGroups)),
            ("--producer-id-expiration-ms", producerIdExpirationMs),
        ]
        if transactionMaxTimeoutMs < 1 { throw ValidationError("--transaction-max-timeout-ms must be at least 1; got \(transactionMaxTimeoutMs).") }
        for (flag, value) in positive where value < 1 { throw ValidationError("\(flag) must be at least 1; got \(value).") }
        let nonNegative: [(String, Int64)] = [
            ("--connections-max-idle-ms", connectionsMaxIdleMs), ("--request-read-timeout-ms", requestReadTimeoutMs),
            ("--offset-metadata-max-bytes", Int64(offsetMetadataMaxBytes)),
        ]
        for (flag, value) in nonNegative where value < 0 { throw ValidationError("\(flag) must be 0 or more; got \(value).") }
        if fetchMaxBytes > Int(Int32.max) / 2 { throw ValidationError("--fetch-max-bytes must be at most \(Int(Int32.max) / 2); got \(fetchMaxBytes).") }
    }

    func apply(to config: inout BrokerConfiguration) {
        config.maxConnections = maxConnections
        config.connectionsMaxIdleMs = connectionsMaxIdleMs
        config.requestReadTimeoutMs = requestReadTimeoutMs
        config.maxRequestMemoryBytes = queuedMaxRequestBytes
        config.fetchMaxBytes = fetchMaxBytes
        config.group.maxSize = groupMaxSize
        config.maxGroups = maxGroups
        config.offsetMetadataMaxBytes = offsetMetadataMaxBytes
        config.producerIdExpirationMs = producerIdExpirationMs
        config.transactionMaxTimeoutMs = transactionMaxTimeoutMs
    }
}

/// `tape broker`'s authentication and encryption (docs/security.md).
struct BrokerSecurityOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "SASL mechanisms clients must authenticate with, comma-separated: plain, scram-sha-256, scram-sha-512 (users: `tape users add`).",
            valueName: "mechanisms"))
    var sasl: String?

    @Option(help: ArgumentHelp("TLS: the listener's certificate chain, PEM (with --tls-key).", valueName: "pem-file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("TLS: the listener's private key, unencrypted PEM.", valueName: "pem-file"))
    var tlsKey: String?

    @Option(
        help: ArgumentHelp(
            "TLS: require client certificates signed by this CA (PEM); the principal is the certificate's subject.", valueName: "pem-file"))
    var tlsClientCa: String?

    @Option(
        help: ArgumentHelp(
            "Principals allowed to describe and alter SCRAM credentials through the Kafka API, and that bypass ACLs, comma-separated, e.g. User:admin,User:CN=ops (default: any authenticated one may manage credentials).",
            valueName: "principals"))
    var superUsers: String?

    @Flag(help: "Allow listening on a non-loopback address without authentication (anyone who reaches it can read, write and delete).")
    var insecure = false

    /// The authorizers `--authorizer` accepts.
    enum AuthorizerOption: String, ExpressibleByArgument, CaseIterable {
        case none, acl
    }

    @Option(
        help: ArgumentHelp(
            "Enforce ACLs (acls.json in the data directory, managed with `tape acls` or the Kafka ACL APIs): none or acl. Super users bypass them.",
            valueName: "authorizer"))
    var authorizer: AuthorizerOption = .none

    @Flag(help: "With --authorizer acl: allow what no ACL covers (Kafka's allow.everyone.if.no.acl.found); without it, such requests are denied.")
    var allowEveryoneIfNoAclFound = false

    var mechanisms: [SaslMechanism] {
        get throws {
            guard let sasl else { return [] }
            var out: [SaslMechanism] = []
            for name in sasl.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
                guard let m = SaslMechanism(optionName: name) else {
                    throw ValidationError("--sasl takes plain, scram-sha-256 and scram-sha-512, comma-separated; got \(name).")
                }
                if !out.contains(m) { out.append(m) }
            }
            if out.isEmpty { throw ValidationError("--sasl needs at least one of plain, scram-sha-256, scram-sha-512.") }
            return out
        }
    }

    /// The first security flag given that configures a broker (for `tape up --brokers`, where
    /// there is none), or nil.
    var embeddedBrokerFlag: String? {
        if sasl != nil { return "--sasl" }
        if tlsCert != nil || tlsKey != nil { return "--tls-cert" }
        if tlsClientCa != nil { return "--tls-client-ca" }
        if superUsers != nil { return "--super-users" }
        if authorizer != .none { return "--authorizer" }
        if allowEveryoneIfNoAclFound { return "--allow-everyone-if-no-acl-found" }
        return nil
    }

    func validate() throws {
        _ = try mechanisms
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together; give both or neither.") }
        for p in (superUsers ?? "").split(separator: ",") where !p.trimmingCharacters(in: .whitespaces).hasPrefix("User:") {
            throw ValidationError("--super-users takes principals like User:admin, comma-separated; got \(p).")
        }
        if allowEveryoneIfNoAclFound && authorizer != .acl {
            throw ValidationError("--allow-everyone-if-no-acl-found needs --authorizer acl.")
        }
        if tlsClientCa != nil, tlsCert == nil {
            throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key (client certificates are checked over TLS).")
        }
    }

    func apply(to config: inout BrokerConfiguration, dataDir: String) {
        config.security.saslMechanisms = (try? mechanisms) ?? []
        config.security.credentialsPath = (dataDir as NSString).appendingPathComponent(CredentialStore.fileName)
        config.security.aclsPath = (dataDir as NSString).appendingPathComponent(AclStore.fileName)
        config.security.aclAuthorizer = authorizer == .acl
        config.security.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
        config.security.superUsers = (superUsers ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if let tlsCert, let tlsKey {
            config.security.tls = BrokerSecurity.TLSFiles(certificatePath: tlsCert, privateKeyPath: tlsKey, clientCAPath: tlsClientCa)
        }
    }
}
