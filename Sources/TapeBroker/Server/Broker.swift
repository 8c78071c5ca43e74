import Foundation
import KafkaProtocol
import Logging
import NIOCore
import Synchronization
import TapeCommon

/// Milliseconds on a monotonic clock, injected so tests control time.
public protocol MillisecondClock: Sendable {
    func nowMs() -> Int64
}

/// `ContinuousClock` in milliseconds since this clock was made.
public struct ContinuousMillisecondClock: MillisecondClock {
    private let origin = ContinuousClock.now
    public init() {}
    public func nowMs() -> Int64 {
        let d = ContinuousClock.now - origin
        return d.wholeMilliseconds
    }
}

/// The request handler of the single-node broker: one decoded request in, one encoded response
/// frame out (nil for acks=0 produces). Holds the idempotent-producer window, the group
/// coordinator, and the parked JoinGroup/SyncGroup/Fetch requests.
///
/// The handlers live in `Handlers/`, one file per API family (extensions of this actor); adding
/// an API is a handler there plus its line in `handle`'s dispatch.
public actor Broker {
    public let configuration: BrokerConfiguration
    let topics: any TopicStore
    let committedOffsets: any CommittedOffsetStore
    let logger: Logger
    let clock: any MillisecondClock

    /// Bytes of large responses handed to sockets and not yet written (kept by the server);
    /// fetches shrink while it is over `maxPendingResponseBytes`.
    public nonisolated let pendingResponseBytes = PendingBytes()

    /// Port advertised to clients (the bound port once the server listens).
    public private(set) var advertisedPort: Int

    var producers = ProducerStateTable()
    /// Partitions whose idempotent-producer window was rebuilt from the log since start.
    var seededPartitions: Set<TopicPartition> = []
    var nextProducerId: Int64
    var coordinator: GroupCoordinator
    var parkedJoins: [ConsumerGroup.RequestID: CheckedContinuation<JoinGroupResponse, Never>] = [:]
    var parkedSyncs: [ConsumerGroup.RequestID: CheckedContinuation<SyncGroupResponse, Never>] = [:]

    var fetchWaiters: [UInt64: FetchWaiter] = [:]
    var waitersByPartition: [TopicPartition: Set<UInt64>] = [:]
    var nextWaiterID: UInt64 = 1
    /// The one timer of all parked fetches, sleeping until `fetchSweeperDeadline` (see
    /// `armFetchSweeper`).
    var fetchSweeper: Task<Void, Never>?
    var fetchSweeperDeadline: ContinuousClock.Instant?
    private var nextProducerSweepMs: Int64 = 0
    /// Transactions (KIP-98): the coordinator, where it is kept, and per partition the open and
    /// aborted transactions (rebuilt from the log at first use after a start; see Broker+Transactions).
    var transactions: TransactionCoordinator
    let transactionStore: any TransactionStateStore
    var transactionalPartitions: Set<TopicPartition>
    var partitionTransactions: [TopicPartition: PartitionTransactions] = [:]
    var transactionsRecovered = false
    var nextTransactionTimeoutCheckMs: Int64 = 0
    var isShuttingDown = false
    /// The users (SASL credentials), when the broker has a credentials file.
    public nonisolated let credentials: CredentialStore?
    /// The authenticated principal of each connection ("User:NAME"), set by the server.
    var principals: [UInt64: String] = [:]
    /// The ACLs, when the broker has an ACL file (enforced only with `security.aclAuthorizer`).
    public nonisolated let acls: AclStore?

    public init(
        configuration: BrokerConfiguration, topics: any TopicStore, committedOffsets: any CommittedOffsetStore,
        clock: any MillisecondClock = ContinuousMillisecondClock(), logger: Logger = Logger(label: "tape.broker"),
        firstProducerId: Int64? = nil, transactionStore: any TransactionStateStore = InMemoryTransactionStateStore()
    ) {
        self.configuration = configuration
        self.topics = topics
        self.committedOffsets = committedOffsets
        self.clock = clock
        self.logger = logger
        self.advertisedPort = configuration.advertisedPort ?? configuration.port
        self.coordinator = GroupCoordinator(settings: configuration.group, maxGroups: configuration.maxGroups, logger: logger)
        self.credentials = configuration.security.credentialsPath.map { CredentialStore(path: $0, fixedUsers: configuration.security.internalUsers) }
        self.acls = configuration.security.aclsPath.map { AclStore(path: $0) }
        // Producer ids must not repeat across restarts (the log keeps old ids' sequences):
        // by default they start at the wall-clock time in microseconds.
        self.nextProducerId = firstProducerId ?? Int64(Date().timeIntervalSince1970 * 1_000_000)
        self.transactionStore = transactionStore
        var coordinator = TransactionCoordinator(maxTimeoutMs: configuration.transactionMaxTimeoutMs)
        let saved = transactionStore.load()
        for var t in saved.transactions {
            // Timeouts run on this run's clock: an ongoing transaction gets its whole timeout again.
            if t.state == .ongoing { t.startMs = clock.nowMs() }
            coordinator.restore(t, now: clock.nowMs())
            // Producer ids must not repeat: the next one is past every restored one.
            if t.producerId >= self.nextProducerId && t.producerId < Int64.max { self.nextProducerId = t.producerId + 1 }
        }
        self.transactions = coordinator
        self.transactionalPartitions = saved.partitions
    }
    /// Called once the listener is bound: the bound port is advertised unless one was configured.
    public func setAdvertisedPort(_ port: Int) { advertisedPort = configuration.advertisedPort ?? port }

    var advertisedHost: String {
        if let h = configuration.advertisedHost { return h }
        // Clients get an IPv4 address: wildcard and "localhost" listeners advertise loopback.
        switch configuration.host {
        case "0.0.0.0", "localhost", "::": return "127.0.0.1"
        default: return configuration.host
        }
    }

    // MARK: Dispatch

    /// A request's answer: none (acks=0), ready now, or after durability (produce with acks != 0).
    public enum Reply: Sendable {
        case none
        /// A frame ready now, in consecutive buffers written together (one, except for a fetch,
        /// whose large record sets are not copied into the frame).
        case now([ByteBuffer])
        case later(@Sendable () async -> ByteBuffer)
        /// An acks=0 produce failed: as Kafka does, close the connection so the client notices.
        case closeConnection(reason: String)
    }

    /// Like `handle`, but a produce returns as soon as its batches are appended, with the wait for
    /// durability left to the caller, so a connection can read its next request meanwhile
    /// (pipelined produces then share fsyncs). Effects still happen in request order.
    public func receive(_ request: KafkaRequest, clientHost: String = "/127.0.0.1", connection: UInt64 = 0) async -> Reply {
        if case .produce(var r) = request.body {
            let refused = refuseProduce(&r, auth: authorization(connection: connection, clientHost: clientHost))
            var (appended, appendedLogs) = r.topics.isEmpty ? (ProduceResponse(topics: []), []) : produceAppend(r)
            appended.topics += refused
            let response = appended
            let logs = appendedLogs
            if r.acks == 0 {
                let failed = response.topics.flatMap { t in t.partitions.filter { $0.errorCode != .none }.map { "\(t.name)-\($0.index): error \($0.errorCode)" }
                }
                return failed.isEmpty ? .none : .closeConnection(reason: "acks=0 produce failed (\(failed.joined(separator: ", ")))")
            }
            let topics = self.topics
            let logger = self.logger
            let version = request.header.apiVersion
            let correlationId = request.header.correlationId
            // interval/never: nothing to wait for, so the answer is ready now (the connection can
            // write it without handing it to its writer task).
            if logs.allSatisfy({ topics.durableWithoutWaiting($0) }) {
                return .now([KafkaResponse.encodeFrame(response, apiKey: .produce, version: version, correlationId: correlationId)])
            }
            return .later {
                let final = await Broker.awaitDurability(response, logs: logs, topics: topics, logger: logger)
                return KafkaResponse.encodeFrame(final, apiKey: .produce, version: version, correlationId: correlationId)
            }
        }
        if case .fetch(let r) = request.body, !authorization(connection: connection, clientHost: clientHost).isEnforced {
            // As `handle` answers it, with the record sets not copied into the frame.
            let response = await fetch(r, connection: connection)
            return .now(KafkaResponse.encodeFetchFrameParts(response, version: request.header.apiVersion, correlationId: request.header.correlationId))
        }
        if let frame = await handle(request, clientHost: clientHost, connection: connection) { return .now([frame]) }
        return .none
    }

    /// A connection closed: its parked fetch (if any) is answered now instead of at its deadline.
    public func connectionClosed(_ connection: UInt64) {
        for (id, w) in fetchWaiters where w.connection == connection { releaseWaiter(id) }
        principals[connection] = nil
    }

    /// Handles one request; returns the whole response frame, or nil when none is due (acks=0).
    public func handle(_ request: KafkaRequest, clientHost: String = "/127.0.0.1", connection: UInt64 = 0) async -> ByteBuffer? {
        let h = request.header
        let v = h.apiVersion
        func frame(_ payload: some KafkaResponseMessage, version: Int16 = v, capacity: Int = 256) -> ByteBuffer {
            KafkaResponse.encodeFrame(payload, apiKey: request.body.apiKey, version: version, correlationId: h.correlationId, capacity: capacity)
        }
        let auth = authorization(connection: connection, clientHost: clientHost)
        if auth.isEnforced, let refused = await handleAuthorized(request, auth: auth, clientHost: clientHost, connection: connection) { return refused }
        switch request.body {
        case .apiVersions: return frame(apiVersions())
        case .unsupportedApiVersions: return frame(unsupportedApiVersions(version: v, clientId: h.clientId), version: 0)
        case .initProducerId(let r): return frame(initProducerId(r, version: v))
        case .metadata(let r): return frame(withTopicOperations(metadata(r, version: v), r, auth: auth))
        case .createTopics(let r): return frame(createTopics(r, version: v))
        case .deleteTopics(let r): return frame(deleteTopics(r))
        case .describeConfigs(let r): return frame(describeConfigs(r))
        case .alterConfigs(let r): return frame(alterConfigs(r))
        case .incrementalAlterConfigs(let r): return frame(incrementalAlterConfigs(r))
        case .produce(var r):
            let refused = refuseProduce(&r, auth: auth)
            var response = r.topics.isEmpty ? ProduceResponse(topics: []) : await produce(r)
            response.topics += refused
            return r.acks == 0 ? nil : frame(response)
        case .fetch(let r):
            let response = await fetch(r, connection: connection)
            return frame(response, capacity: response.estimatedFrameBytes())
        case .listOffsets(let r): return frame(listOffsets(r))
        case .findCoordinator(let r): return frame(findCoordinator(r))
        case .joinGroup(let r): return frame(await joinGroup(r, version: v, clientId: h.clientId ?? "", clientHost: clientHost))
        case .syncGroup(let r): return frame(await syncGroup(r))
        case .heartbeat(let r): return frame(heartbeat(r))
        case .leaveGroup(let r): return frame(leaveGroup(r))
        case .listGroups(let r): return frame(listGroups(r))
        case .describeGroups(let r): return frame(withGroupOperations(describeGroups(r), r, auth: auth))
        case .offsetCommit(let r): return frame(await offsetCommit(r))
        case .offsetFetch(let r): return frame(offsetFetch(r))
        case .createPartitions(let r): return frame(createPartitions(r))
        case .deleteRecords(let r): return frame(deleteRecords(r))
        case .deleteGroups(let r): return frame(await deleteGroups(r))
        case .offsetDelete(let r): return frame(await offsetDelete(r))
        case .describeCluster(let r): return frame(describeCluster(r, version: v))
        case .saslHandshake: return frame(SaslHandshakeResponse(errorCode: .unsupportedSaslMechanism, mechanisms: []))
        case .saslAuthenticate:
            return frame(SaslAuthenticateResponse(errorCode: .illegalSaslState, errorMessage: "SASL is not enabled on this listener"))
        case .describeUserScramCredentials(let r): return frame(describeUserScramCredentials(r, connection: connection, auth: auth))
        case .alterUserScramCredentials(let r): return frame(alterUserScramCredentials(r, connection: connection, auth: auth))
        case .describeAcls(let r): return frame(describeAcls(r, auth: auth))
        case .createAcls(let r): return frame(createAcls(r, auth: auth))
        case .deleteAcls(let r): return frame(deleteAcls(r, auth: auth))
        case .addPartitionsToTxn(let r): return frame(addPartitionsToTxn(r, version: v))
        case .addOffsetsToTxn(let r): return frame(addOffsetsToTxn(r, version: v))
        case .endTxn(let r): return frame(await endTxn(r, version: v))
        case .txnOffsetCommit(let r): return frame(txnOffsetCommit(r, version: v))
        }
    }

    // MARK: Lifecycle

    /// Answers every parked request (JoinGroup/SyncGroup with COORDINATOR_NOT_AVAILABLE so clients
    /// retry elsewhere or later; long-polling fetches with what they have) so connections can close.
    public func shutDown() {
        for (_, c) in parkedJoins { c.resume(returning: JoinGroupResponse(errorCode: .coordinatorNotAvailable, memberId: "")) }
        parkedJoins = [:]
        for (_, c) in parkedSyncs { c.resume(returning: SyncGroupResponse(errorCode: .coordinatorNotAvailable)) }
        parkedSyncs = [:]
        for id in Array(fetchWaiters.keys) { releaseWaiter(id) }
        fetchSweeper?.cancel()
        fetchSweeper = nil
        fetchSweeperDeadline = nil
        isShuttingDown = true
    }

    /// Evicts expired members, finishes overdue rebalances, and (every 10 s) expires idle
    /// producer states; the server calls this periodically.
    public func tick() {
        let now = clock.nowMs()
        _ = carryOut(coordinator.tick(now: now))
        tickTransactions(now: now)
        if now >= nextProducerSweepMs {
            nextProducerSweepMs = now + 10_000
            let dropped = producers.expire(now: now, expirationMs: configuration.producerIdExpirationMs, maxStates: configuration.maxProducerStates)
            if dropped > 0 { logger.debug("expired idle producer states", metadata: ["dropped": "\(dropped)"]) }
            expireTransactionalIds(now: now)
        }
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}

/// A byte count shared between the broker and its connections.
public final class PendingBytes: Sendable {
    private let bytes = Synchronization.Atomic<Int>(0)
    public init() {}
    public var value: Int { bytes.load(ordering: .relaxed) }
    public func add(_ n: Int) { bytes.add(n, ordering: .relaxed) }
    public func subtract(_ n: Int) { bytes.subtract(n, ordering: .relaxed) }
}
