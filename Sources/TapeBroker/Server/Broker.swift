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

/// The request handler of the single-node broker: one decoded request in, one encoded
/// response frame out (nil for acks=0 produces). Holds the idempotent-producer window,
/// the consumer groups and the parked JoinGroup/SyncGroup/Fetch requests.
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

    private var producers = ProducerStateTable()
    /// Partitions whose idempotent-producer window was rebuilt from the log since start.
    private var seededPartitions: Set<TopicPartition> = []
    private var nextProducerId: Int64
    private var groups: [String: ConsumerGroup] = [:]
    private var nextRequestID: ConsumerGroup.RequestID = 1
    private var parkedJoins: [ConsumerGroup.RequestID: CheckedContinuation<JoinGroupResponse, Never>] = [:]
    private var parkedSyncs: [ConsumerGroup.RequestID: CheckedContinuation<SyncGroupResponse, Never>] = [:]

    private struct FetchWaiter {
        var partitions: Set<TopicPartition>
        /// Bytes still to be appended to `partitions` before `min_bytes` is met.
        var bytesNeeded: Int
        var bytesSeen = 0
        /// The connection the fetch came on (0: none known).
        var connection: UInt64
        var continuation: CheckedContinuation<Void, Never>
        var timer: Task<Void, Never>?
    }
    private var fetchWaiters: [UInt64: FetchWaiter] = [:]
    private var waitersByPartition: [TopicPartition: Set<UInt64>] = [:]
    private var nextWaiterID: UInt64 = 1
    private var nextProducerSweepMs: Int64 = 0
    private var isShuttingDown = false

    public init(
        configuration: BrokerConfiguration, topics: any TopicStore, committedOffsets: any CommittedOffsetStore,
        clock: any MillisecondClock = ContinuousMillisecondClock(), logger: Logger = Logger(label: "tape.broker"),
        firstProducerId: Int64? = nil
    ) {
        self.configuration = configuration
        self.topics = topics
        self.committedOffsets = committedOffsets
        self.clock = clock
        self.logger = logger
        self.advertisedPort = configuration.advertisedPort ?? configuration.port
        // Producer ids must not repeat across restarts (the log keeps old ids' sequences):
        // by default they start at the wall-clock time in microseconds.
        self.nextProducerId = firstProducerId ?? Int64(Date().timeIntervalSince1970 * 1_000_000)
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
        case now(ByteBuffer)
        case later(@Sendable () async -> ByteBuffer)
        /// An acks=0 produce failed: as Kafka does, close the connection so the client notices.
        case closeConnection(reason: String)
    }

    /// Like `handle`, but a produce returns as soon as its batches are appended, with the wait for
    /// durability left to the caller, so a connection can read its next request meanwhile
    /// (pipelined produces then share fsyncs). Effects still happen in request order.
    public func receive(_ request: KafkaRequest, clientHost: String = "/127.0.0.1", connection: UInt64 = 0) async -> Reply {
        if case .produce(let r) = request.body {
            let (response, logs) = produceAppend(r)
            if r.acks == 0 {
                let failed = response.topics.flatMap { t in t.partitions.filter { $0.errorCode != .none }.map { "\(t.name)-\($0.index): error \($0.errorCode)" } }
                return failed.isEmpty ? .none : .closeConnection(reason: "acks=0 produce failed (\(failed.joined(separator: ", ")))")
            }
            let topics = self.topics
            let logger = self.logger
            let version = request.header.apiVersion
            let correlationId = request.header.correlationId
            // interval/never: nothing to wait for, so the answer is ready now (the connection can
            // write it without handing it to its writer task).
            if logs.allSatisfy({ topics.durableWithoutWaiting($0) }) {
                return .now(KafkaResponse.encodeFrame(response, apiKey: .produce, version: version, correlationId: correlationId))
            }
            return .later {
                let final = await Broker.awaitDurability(response, logs: logs, topics: topics, logger: logger)
                return KafkaResponse.encodeFrame(final, apiKey: .produce, version: version, correlationId: correlationId)
            }
        }
        if let frame = await handle(request, clientHost: clientHost, connection: connection) { return .now(frame) }
        return .none
    }

    /// A connection closed: its parked fetch (if any) is answered now instead of at its deadline.
    public func connectionClosed(_ connection: UInt64) {
        for (id, w) in fetchWaiters where w.connection == connection { releaseWaiter(id) }
    }

    /// Handles one request; returns the whole response frame, or nil when none is due (acks=0).
    public func handle(_ request: KafkaRequest, clientHost: String = "/127.0.0.1", connection: UInt64 = 0) async -> ByteBuffer? {
        let h = request.header
        let v = h.apiVersion
        func frame(_ payload: some KafkaResponseMessage, version: Int16 = v, capacity: Int = 256) -> ByteBuffer {
            KafkaResponse.encodeFrame(payload, apiKey: request.body.apiKey, version: version, correlationId: h.correlationId, capacity: capacity)
        }
        switch request.body {
        case .apiVersions:
            return frame(ApiVersionsResponse.supported())
        case .unsupportedApiVersions:
            logger.info("ApiVersions v\(v) is not supported; answering UNSUPPORTED_VERSION with a v0 body", metadata: ["client": "\(h.clientId ?? "")"])
            return frame(ApiVersionsResponse.supported(errorCode: .unsupportedVersion), version: 0)
        case .metadata(let r): return frame(metadata(r, version: v))
        case .produce(let r):
            let response = await produce(r)
            return r.acks == 0 ? nil : frame(response)
        case .fetch(let r):
            let response = await fetch(r, connection: connection)
            // Records plus room for the per-topic and per-partition fields.
            var size = 1024
            for t in response.topics {
                size += t.topic.utf8.count + 16
                for p in t.partitions { size += (p.records?.readableBytes ?? 0) + 64 }
            }
            return frame(response, capacity: size)
        case .listOffsets(let r): return frame(listOffsets(r))
        case .findCoordinator:
            return frame(FindCoordinatorResponse(errorCode: .none, nodeId: configuration.nodeId, host: advertisedHost, port: Int32(advertisedPort)))
        case .initProducerId(let r):
            let id = nextProducerId
            nextProducerId += 1
            producers.issued(producerId: id, now: clock.nowMs())
            logger.debug("InitProducerId", metadata: ["producerId": "\(id)", "transactionalId": "\(r.transactionalId ?? "-")"])
            return frame(InitProducerIdResponse(errorCode: .none, producerId: id, producerEpoch: 0))
        case .createTopics(let r): return frame(createTopics(r, version: v))
        case .deleteTopics(let r): return frame(deleteTopics(r))
        case .describeConfigs(let r): return frame(describeConfigs(r))
        case .joinGroup(let r): return frame(await joinGroup(r, version: v, clientId: h.clientId ?? "", clientHost: clientHost))
        case .syncGroup(let r): return frame(await syncGroup(r))
        case .heartbeat(let r):
            var code = ErrorCode.unknownMemberId
            if var g = groups[r.groupId] {
                code = g.heartbeat(memberId: r.memberId, groupInstanceId: r.groupInstanceId, generationId: r.generationId, now: clock.nowMs())
                groups[r.groupId] = g
            }
            return frame(HeartbeatResponse(errorCode: code))
        case .leaveGroup(let r): return frame(leaveGroup(r))
        case .offsetCommit(let r): return frame(await offsetCommit(r))
        case .offsetFetch(let r): return frame(offsetFetch(r))
        case .listGroups: return frame(listGroups())
        case .describeGroups(let r): return frame(describeGroups(r))
        }
    }

    // MARK: Topics

    /// Partitions one CreateTopics request may create in all (Kafka's controller: MAX_PARTITIONS_PER_BATCH).
    static let maxPartitionsPerCreateTopics = 10_000

    /// Kafka's legal topic names: 1–249 of [a-zA-Z0-9._-], not "." or "..".
    static func topicNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "topic name is empty" }
        if name == "." || name == ".." { return "topic name may not be '.' or '..'" }
        if name.utf8.count > 249 { return "topic name is longer than 249 characters" }
        let ok = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x5F || c == 0x2D
        }
        return ok ? nil : "topic name \(name) has characters other than a-z A-Z 0-9 . _ -"
    }

    /// The topic's logs, creating the topic first when auto-creation is on and allowed.
    private func logsCreatingIfAllowed(_ topic: String, allowed: Bool) -> ([any PartitionLog]?, ErrorCode) {
        if let logs = topics.partitionLogs(of: topic) { return (logs, .none) }
        guard configuration.autoCreateTopics && allowed else { return (nil, .unknownTopicOrPartition) }
        if let problem = Self.topicNameProblem(topic) {
            logger.info("not auto-creating topic: \(problem)")
            return (nil, .invalidTopicException)
        }
        do {
            try topics.createTopic(name: topic, partitions: configuration.numPartitions, configs: [:])
            logger.info("auto-created topic", metadata: ["topic": "\(topic)", "partitions": "\(configuration.numPartitions)"])
        } catch {
            let failure = topicCreationFailure(error)
            if failure.code != .topicAlreadyExists {
                logger.error("could not auto-create topic \(topic): \(failure.message)")
                return (nil, failure.code)
            }
        }
        return (topics.partitionLogs(of: topic), .none)
    }

    func metadata(_ r: MetadataRequest, version: Int16) -> MetadataResponse {
        let node = configuration.nodeId
        let names = r.topics ?? topics.topicNames()
        let allowCreate = r.topics != nil && r.allowAutoTopicCreation
        let described = names.map { name -> MetadataResponse.Topic in
            let (logs, code) = logsCreatingIfAllowed(name, allowed: allowCreate)
            guard let logs else { return MetadataResponse.Topic(errorCode: code, name: name, partitions: []) }
            return MetadataResponse.Topic(
                errorCode: .none, name: name,
                partitions: logs.indices.map {
                    MetadataResponse.Partition(partitionIndex: Int32($0), leaderId: node, replicaNodes: [node], isrNodes: [node])
                })
        }
        return MetadataResponse(
            brokers: [.init(nodeId: node, host: advertisedHost, port: Int32(advertisedPort))], clusterId: configuration.clusterId,
            controllerId: node, topics: described)
    }

    static let knownTopicConfigs: [String: String] = [
        "cleanup.policy": "delete",
        "compression.type": "producer",
        "delete.retention.ms": "86400000",
        "max.message.bytes": "1048576",
        "message.timestamp.type": "CreateTime",
        "min.compaction.lag.ms": "0",
        "min.insync.replicas": "1",
        "retention.bytes": "-1",
        "retention.ms": "604800000",
        "segment.bytes": "1073741824",
        "segment.ms": "604800000",
    ]

    static func configProblem(_ name: String, _ value: String?) -> String? {
        guard knownTopicConfigs[name] != nil else { return "unknown topic config \(name)" }
        guard let value else { return nil }
        switch name {
        case "cleanup.policy":
            let parts = Set(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            return parts.isEmpty || !parts.isSubset(of: ["delete", "compact"]) ? "cleanup.policy must be delete, compact or compact,delete" : nil
        case "compression.type", "message.timestamp.type": return nil
        default: return Int64(value) == nil ? "\(name) must be an integer, got \(value)" : nil
        }
    }

    func createTopics(_ r: CreateTopicsRequest, version: Int16) -> CreateTopicsResponse {
        // Kafka's controller refuses a request for more than 10 000 partitions in all, whole.
        let requested = r.topics.reduce(0) { $0 + Int($1.assignments.isEmpty ? ($1.numPartitions == -1 ? configuration.numPartitions : max($1.numPartitions, 0)) : Int32($1.assignments.count)) }
        if requested > Self.maxPartitionsPerCreateTopics {
            let message = "Excessively large number of partitions per request: \(requested) requested, limit \(Self.maxPartitionsPerCreateTopics)."
            logger.info("CreateTopics refused: \(message)")
            return CreateTopicsResponse(topics: r.topics.map { .init(name: $0.name, errorCode: .policyViolation, errorMessage: message) })
        }
        return CreateTopicsResponse(
            topics: r.topics.map { t in
                func fail(_ code: ErrorCode, _ message: String) -> CreateTopicsResponse.Topic {
                    logger.info("CreateTopics \(t.name) refused: \(message)")
                    return .init(name: t.name, errorCode: code, errorMessage: message)
                }
                if let problem = Self.topicNameProblem(t.name) { return fail(.invalidTopicException, problem) }
                if topics.partitionLogs(of: t.name) != nil { return fail(.topicAlreadyExists, "topic \(t.name) already exists") }
                var partitions = t.numPartitions == -1 ? configuration.numPartitions : t.numPartitions
                if !t.assignments.isEmpty {
                    if t.assignments.contains(where: { $0.brokerIds.contains { $0 != configuration.nodeId } || $0.brokerIds.count > 1 }) {
                        return fail(.invalidReplicaAssignment, "this tape broker is a single node (id \(configuration.nodeId)); every partition's only replica must be node \(configuration.nodeId)")
                    }
                    partitions = Int32(t.assignments.count)
                }
                if partitions <= 0 || partitions > 10_000 { return fail(.invalidPartitions, "number of partitions must be between 1 and 10000, got \(partitions)") }
                if t.replicationFactor > 1 {
                    return fail(
                        .invalidReplicationFactor,
                        "replication factor \(t.replicationFactor) is impossible on this single-node tape broker: it has one broker to hold each partition; use 1 (or -1), or point --brokers at an Apache Kafka cluster for replication")
                }
                if t.replicationFactor == 0 || t.replicationFactor < -1 {
                    return fail(.invalidReplicationFactor, "replication factor must be 1 (or -1 for the default), got \(t.replicationFactor)")
                }
                var configs: [String: String] = [:]
                for c in t.configs {
                    if let problem = Self.configProblem(c.name, c.value) { return fail(.invalidConfig, problem) }
                    if let value = c.value { configs[c.name] = value }
                }
                if r.validateOnly { return .init(name: t.name, errorCode: .none) }
                do {
                    try topics.createTopic(name: t.name, partitions: partitions, configs: configs)
                } catch {
                    let failure = topicCreationFailure(error)
                    return fail(failure.code, failure.message)
                }
                logger.info("created topic", metadata: ["topic": "\(t.name)", "partitions": "\(partitions)"])
                return .init(name: t.name, errorCode: .none)
            })
    }

    func deleteTopics(_ r: DeleteTopicsRequest) -> DeleteTopicsResponse {
        DeleteTopicsResponse(
            responses: r.topicNames.map { name in
                // Checked here so any TopicStore's own "unknown topic" error type does not matter.
                guard topics.partitionLogs(of: name) != nil else { return .init(name: name, errorCode: .unknownTopicOrPartition) }
                do {
                    try topics.deleteTopic(name: name)
                    producers.removeTopic(name)
                    seededPartitions = seededPartitions.filter { $0.topic != name }
                    committedOffsets.removeTopic(name)
                    wakeFetchers(topic: name)
                    logger.info("deleted topic", metadata: ["topic": "\(name)"])
                    return .init(name: name, errorCode: .none)
                } catch let e as TopicStoreError where e.code == .unknownTopic {
                    return .init(name: name, errorCode: .unknownTopicOrPartition)
                } catch {
                    logger.error("could not delete topic \(name): \(error)")
                    return .init(name: name, errorCode: .unknownServerError)
                }
            })
    }

    func describeConfigs(_ r: DescribeConfigsRequest) -> DescribeConfigsResponse {
        DescribeConfigsResponse(
            results: r.resources.map { res in
                var entries: [(String, String, Int8)] = []
                switch res.resourceType {
                case DescribeConfigsRequest.topicResource:
                    guard let set = topics.configs(of: res.resourceName) else {
                        return .init(errorCode: .unknownTopicOrPartition, errorMessage: "topic \(res.resourceName) does not exist", resourceType: res.resourceType, resourceName: res.resourceName, configs: [])
                    }
                    var defaults = Self.knownTopicConfigs
                    defaults["max.message.bytes"] = "\(configuration.maxMessageBytes)"
                    for (k, d) in defaults.sorted(by: { $0.key < $1.key }) {
                        if let value = set[k] { entries.append((k, value, 1)) } else { entries.append((k, d, 5)) }
                    }
                case DescribeConfigsRequest.brokerResource:
                    entries = [
                        ("auto.create.topics.enable", "\(configuration.autoCreateTopics)", 4),
                        ("broker.id", "\(configuration.nodeId)", 4),
                        ("default.replication.factor", "1", 4),
                        ("message.max.bytes", "\(configuration.maxMessageBytes)", 4),
                        ("num.partitions", "\(configuration.numPartitions)", 4),
                        ("offsets.topic.replication.factor", "1", 4),
                    ]
                default:
                    return .init(errorCode: .invalidRequest, errorMessage: "resource type \(res.resourceType) is not supported", resourceType: res.resourceType, resourceName: res.resourceName, configs: [])
                }
                if let keys = res.configurationKeys { entries = entries.filter { keys.contains($0.0) } }
                return .init(
                    errorCode: .none, resourceType: res.resourceType, resourceName: res.resourceName,
                    configs: entries.map { .init(name: $0.0, value: $0.1, readOnly: res.resourceType == DescribeConfigsRequest.brokerResource, configSource: $0.2) })
            })
    }

    private func maxMessageBytes(_ topic: String) -> Int {
        topics.configs(of: topic)?["max.message.bytes"].flatMap { Int($0) } ?? configuration.maxMessageBytes
    }

    // MARK: Produce

    func produce(_ r: ProduceRequest) async -> ProduceResponse {
        let (response, logs) = produceAppend(r)
        if r.acks == 0 { return response }
        return await Self.awaitDurability(response, logs: logs, topics: topics, logger: logger)
    }

    /// The append phase of a produce, on the actor and so in request order: validates and appends
    /// every batch; returns the response and the logs that must become durable before it is sent.
    func produceAppend(_ r: ProduceRequest) -> (ProduceResponse, [any PartitionLog]) {
        var toSync: [ObjectIdentifier: any PartitionLog] = [:]
        var results: [ProduceResponse.TopicResponse] = []
        let acksValid = r.acks == 0 || r.acks == 1 || r.acks == -1
        for t in r.topics {
            let (logs, topicError) = logsCreatingIfAllowed(t.name, allowed: true)
            var partitions: [ProduceResponse.PartitionResponse] = []
            for p in t.partitions {
                func fail(_ code: ErrorCode, _ message: String) -> ProduceResponse.PartitionResponse {
                    logger.info("produce to \(t.name)-\(p.index) refused: \(message)", metadata: ["error": "\(code)"])
                    return .init(index: p.index, errorCode: code, baseOffset: -1, logStartOffset: -1, errorMessage: message)
                }
                guard acksValid else { partitions.append(fail(.invalidRequiredAcks, "acks must be 0, 1 or -1, got \(r.acks)")); continue }
                guard let logs else { partitions.append(fail(topicError, "topic \(t.name) does not exist")); continue }
                guard p.index >= 0 && Int(p.index) < logs.count else {
                    partitions.append(fail(.unknownTopicOrPartition, "topic \(t.name) has no partition \(p.index)"))
                    continue
                }
                guard let records = p.records else { partitions.append(fail(.invalidRecord, "null record set")); continue }
                let log = logs[Int(p.index)]
                let tp = TopicPartition(t.name, p.index)
                let batches: [ValidatedBatch]
                do {
                    batches = try RecordBatchValidator.validate(records: records, maxBatchBytes: maxMessageBytes(t.name))
                } catch let e as RecordBatchError {
                    partitions.append(fail(e.errorCode, e.message))
                    continue
                } catch {
                    partitions.append(fail(.corruptMessage, "\(error)"))
                    continue
                }
                if batches.contains(where: { $0.header.producerId >= 0 }) && !seededPartitions.contains(tp) {
                    seedProducerState(tp, log)
                }
                var firstOffset: Int64? = nil
                var failure: ProduceResponse.PartitionResponse? = nil
                for batch in batches {
                    switch producers.check(batch.header, partition: tp) {
                    case .duplicate(let base):
                        logger.debug("duplicate batch acknowledged without writing", metadata: ["partition": "\(tp)", "baseOffset": "\(base)"])
                        firstOffset = firstOffset ?? base
                    case .reject(let code, let message):
                        failure = fail(code, message)
                    case .append:
                        do {
                            let info = try batch.bytes.withUnsafeReadableBytes { try log.append(batchBytes: $0) }
                            producers.record(batch.header, partition: tp, baseOffset: info.baseOffset, now: clock.nowMs())
                            firstOffset = firstOffset ?? info.baseOffset
                            toSync[ObjectIdentifier(log)] = log
                            wakeFetchers(tp, appended: batch.bytes.readableBytes)
                            logger.debug(
                                "appended batch",
                                metadata: [
                                    "partition": "\(tp)", "baseOffset": "\(info.baseOffset)", "records": "\(batch.header.recordCount)",
                                    "compression": "\(Self.codecName(batch.header.compression))", "producerId": "\(batch.header.producerId)",
                                ])
                        } catch let e as StorageError {
                            failure = fail(Self.errorCode(e), e.message)
                        } catch {
                            failure = fail(.kafkaStorageError, "\(error)")
                        }
                    }
                    if failure != nil { break }
                }
                if let failure {
                    partitions.append(failure)
                } else {
                    partitions.append(.init(index: p.index, errorCode: .none, baseOffset: firstOffset ?? -1, logStartOffset: log.logStartOffset))
                }
            }
            results.append(.init(name: t.name, partitions: partitions))
        }
        return (ProduceResponse(topics: results), Array(toSync.values))
    }

    /// The durability phase of a produce: waits until the appended data is as durable as the
    /// fsync policy promises (off the actor, so later requests proceed and share the fsync);
    /// partitions whose log could not be made durable get KAFKA_STORAGE_ERROR.
    static func awaitDurability(_ response: ProduceResponse, logs: [any PartitionLog], topics: any TopicStore, logger: Logger) async -> ProduceResponse {
        var failed: [ObjectIdentifier: String] = [:]
        for log in logs {
            do { try await topics.waitDurable(log) } catch {
                logger.error("could not make \(log.topic)-\(log.partition) durable: \(error)")
                failed[ObjectIdentifier(log)] = "\(error)"
            }
        }
        guard !failed.isEmpty else { return response }
        var results = response.topics
        for (ti, t) in results.enumerated() {
            guard let partitionLogs = topics.partitionLogs(of: t.name) else { continue }
            for (pi, p) in t.partitions.enumerated() where p.errorCode == .none && Int(p.index) < partitionLogs.count {
                if let message = failed[ObjectIdentifier(partitionLogs[Int(p.index)])] {
                    results[ti].partitions[pi] = .init(index: p.index, errorCode: .kafkaStorageError, baseOffset: -1, logStartOffset: -1, errorMessage: message)
                }
            }
        }
        return ProduceResponse(topics: results)
    }

    /// How far back (in offsets) the log is scanned for idempotent producers' last batches.
    static let producerStateScanOffsets: Int64 = 100_000

    /// Rebuilds the idempotence window of `tp` from the batch headers at the log's tail, so a
    /// producer that retries across a broker restart is still deduplicated (as Kafka does).
    private func seedProducerState(_ tp: TopicPartition, _ log: any PartitionLog) {
        seededPartitions.insert(tp)
        var offset = max(log.logStartOffset, log.logEndOffset &- Self.producerStateScanOffsets)
        var seeded = 0
        while offset < log.logEndOffset {
            guard let read = try? log.read(from: offset, maxBytes: 8 << 20), !read.records.isEmpty else { break }
            var rest = ByteBuffer(bytes: read.records)
            var next = offset
            while let header = try? RecordBatchHeader.peek(rest), header.totalSize >= RecordBatchHeader.size, header.totalSize <= rest.readableBytes {
                if header.producerId >= 0 {
                    producers.record(header, partition: tp, baseOffset: header.baseOffset, now: clock.nowMs())
                    seeded += 1
                }
                // Numbers from the file: a corrupt header ends the scan instead of trapping.
                let (last, overflow) = header.baseOffset.addingReportingOverflow(Int64(header.lastOffsetDelta))
                guard !overflow, last < Int64.max else { break }
                next = last + 1
                rest.moveReaderIndex(forwardBy: header.totalSize)
            }
            if next <= offset { break }
            offset = next
        }
        if seeded > 0 { logger.info("rebuilt idempotent-producer state from the log", metadata: ["partition": "\(tp)", "batches": "\(seeded)"]) }
    }

    static func codecName(_ c: Int) -> String {
        ["none", "gzip", "snappy", "lz4", "zstd"][safe: c] ?? "codec-\(c)"
    }

    static func errorCode(_ e: StorageError) -> ErrorCode {
        switch e.code {
        case .offsetOutOfRange: .offsetOutOfRange
        case .corruptBatch: .corruptMessage
        case .messageTooLarge: .messageTooLarge
        default: .kafkaStorageError
        }
    }

    // MARK: Fetch

    /// Wakes the parked fetches that wait on `tp` once `appended` more bytes bring them to their
    /// `min_bytes`; the data itself is read only once, by the woken fetch.
    private func wakeFetchers(_ tp: TopicPartition, appended: Int) {
        guard let ids = waitersByPartition[tp] else { return }
        for id in ids {
            guard var w = fetchWaiters[id] else { continue }
            w.bytesSeen += appended
            if w.bytesSeen >= w.bytesNeeded {
                releaseWaiter(id)
            } else {
                fetchWaiters[id] = w
            }
        }
    }

    /// Wakes every fetch parked on a partition of `topic` (it was deleted).
    private func wakeFetchers(topic: String) {
        for (tp, ids) in waitersByPartition where tp.topic == topic {
            for id in ids { releaseWaiter(id) }
        }
    }

    private func releaseWaiter(_ id: UInt64) {
        guard let w = fetchWaiters.removeValue(forKey: id) else { return }
        for tp in w.partitions {
            waitersByPartition[tp]?.remove(id)
            if waitersByPartition[tp]?.isEmpty == true { waitersByPartition[tp] = nil }
        }
        w.timer?.cancel()
        w.continuation.resume()
    }

    /// Parked fetches (one at most per connection, as a connection's requests run in order).
    public var parkedFetchCount: Int { fetchWaiters.count }

    /// Waits until `bytesNeeded` more bytes were appended to `partitions`, `timeoutMs` passes,
    /// or the task is cancelled (its connection closed).
    private func waitForData(_ partitions: Set<TopicPartition>, bytesNeeded: Int, timeoutMs: Int64, connection: UInt64) async {
        let id = nextWaiterID
        nextWaiterID += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                if Task.isCancelled {
                    c.resume()
                    return
                }
                let timer = Task { [weak self] in
                    try? await Task.sleep(for: .milliseconds(max(timeoutMs, 0)))
                    await self?.releaseWaiter(id)
                }
                fetchWaiters[id] = FetchWaiter(partitions: partitions, bytesNeeded: bytesNeeded, connection: connection, continuation: c, timer: timer)
                for tp in partitions { waitersByPartition[tp, default: []].insert(id) }
            }
        } onCancel: {
            Task { await self.releaseWaiter(id) }
        }
    }

    /// The request with each partition once (the first mention wins, duplicate topics merged) and
    /// `max_bytes` within the broker's `fetchMaxBytes`, so no request can make a response
    /// bigger than the protocol's 2 GiB frame or read the same data twice.
    static func normalized(_ r: FetchRequest, fetchMaxBytes: Int) -> FetchRequest {
        var out = r
        let cap = Int32(clamping: max(fetchMaxBytes, 1))
        out.maxBytes = r.maxBytes <= 0 ? cap : min(r.maxBytes, cap)
        var seen = Set<TopicPartition>()
        var topicIndex: [String: Int] = [:]
        var topics: [FetchRequest.Topic] = []
        var duplicates = false
        for t in r.topics {
            for p in t.partitions {
                guard seen.insert(TopicPartition(t.topic, p.partition)).inserted else {
                    duplicates = true
                    continue
                }
                if let i = topicIndex[t.topic] {
                    duplicates = true
                    topics[i].partitions.append(p)
                } else {
                    topicIndex[t.topic] = topics.count
                    topics.append(FetchRequest.Topic(topic: t.topic, partitions: [p]))
                }
            }
            if t.partitions.isEmpty && topicIndex[t.topic] == nil {
                topicIndex[t.topic] = topics.count
                topics.append(t)
            }
        }
        if duplicates { out.topics = topics }
        return out
    }

    func fetch(_ request: FetchRequest, connection: UInt64 = 0) async -> FetchResponse {
        let r = Self.normalized(request, fetchMaxBytes: configuration.fetchMaxBytes)
        let start = clock.nowMs()
        let (response, bytes, hadError) = readFetch(r)
        let waitMs = Int64(max(r.maxWaitMs, 0))
        if bytes >= Int(r.minBytes) || hadError || waitMs == 0 || r.topics.isEmpty || isShuttingDown || Task.isCancelled {
            return response
        }
        let wanted = Set(r.topics.flatMap { t in t.partitions.map { TopicPartition(t.topic, $0.partition) } })
        await waitForData(wanted, bytesNeeded: Int(r.minBytes) - bytes, timeoutMs: waitMs - (clock.nowMs() - start), connection: connection)
        return readFetch(r).0
    }

    private func readFetch(_ r: FetchRequest) -> (FetchResponse, Int, Bool) {
        // While sockets hold too many unwritten responses, answer with one batch at most.
        let room = configuration.maxPendingResponseBytes - pendingResponseBytes.value
        var remaining = min(Int(max(r.maxBytes, 0)), max(room, 0))
        var total = 0
        var hadError = false
        var topicsOut: [FetchResponse.Topic] = []
        for t in r.topics {
            let logs = topics.partitionLogs(of: t.topic)
            var partitionsOut: [FetchResponse.Partition] = []
            for p in t.partitions {
                func failed(_ code: ErrorCode, hw: Int64 = -1, start: Int64 = -1) -> FetchResponse.Partition {
                    .init(partitionIndex: p.partition, errorCode: code, highWatermark: hw, lastStableOffset: hw, logStartOffset: start, records: nil)
                }
                guard let logs, p.partition >= 0, Int(p.partition) < logs.count else {
                    hadError = true
                    partitionsOut.append(failed(.unknownTopicOrPartition))
                    continue
                }
                let log = logs[Int(p.partition)]
                let limit = min(Int(max(p.partitionMaxBytes, 0)), remaining)
                if limit == 0 && total > 0 {
                    // The response is full: report the partition's offsets without reading data.
                    partitionsOut.append(
                        .init(
                            partitionIndex: p.partition, errorCode: .none, highWatermark: log.logEndOffset, lastStableOffset: log.logEndOffset,
                            logStartOffset: log.logStartOffset, records: ByteBuffer()))
                    continue
                }
                do {
                    let read = try log.read(from: p.fetchOffset, maxBytes: max(limit, 1))
                    var records = read.records
                    if records.count > remaining && total > 0 { records = [] }  // only the first data may exceed the limits
                    total += records.count
                    remaining = max(remaining - records.count, 0)
                    let buffer = ByteBuffer(bytes: records)
                    partitionsOut.append(
                        .init(
                            partitionIndex: p.partition, errorCode: .none, highWatermark: read.highWatermark, lastStableOffset: read.highWatermark,
                            logStartOffset: read.logStartOffset, records: buffer))
                } catch let e as StorageError {
                    if e.code != .offsetOutOfRange { logger.error("fetch from \(t.topic)-\(p.partition) failed: \(e)") }
                    hadError = true
                    partitionsOut.append(failed(Self.errorCode(e), hw: log.logEndOffset, start: log.logStartOffset))
                } catch {
                    logger.error("fetch from \(t.topic)-\(p.partition) failed: \(error)")
                    hadError = true
                    partitionsOut.append(failed(.kafkaStorageError))
                }
            }
            topicsOut.append(FetchResponse.Topic(topic: t.topic, partitions: partitionsOut))
        }
        return (FetchResponse(topics: topicsOut), total, hadError)
    }

    func listOffsets(_ r: ListOffsetsRequest) -> ListOffsetsResponse {
        ListOffsetsResponse(
            topics: r.topics.map { t in
                let logs = topics.partitionLogs(of: t.name)
                return .init(
                    name: t.name,
                    partitions: t.partitions.map { p in
                        guard let logs, p.partitionIndex >= 0, Int(p.partitionIndex) < logs.count else {
                            return .init(partitionIndex: p.partitionIndex, errorCode: .unknownTopicOrPartition, timestamp: -1, offset: -1)
                        }
                        let log = logs[Int(p.partitionIndex)]
                        switch p.timestamp {
                        case ListOffsetsRequest.latestTimestamp:
                            return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: -1, offset: log.logEndOffset)
                        case ListOffsetsRequest.earliestTimestamp:
                            return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: -1, offset: log.logStartOffset)
                        default:
                            do {
                                if let found = try log.offset(forTimestamp: p.timestamp) {
                                    return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: found.timestamp, offset: found.offset)
                                }
                                return .init(partitionIndex: p.partitionIndex, errorCode: .none, timestamp: -1, offset: -1)
                            } catch {
                                logger.error("ListOffsets on \(t.name)-\(p.partitionIndex) failed: \(error)")
                                return .init(partitionIndex: p.partitionIndex, errorCode: .kafkaStorageError, timestamp: -1, offset: -1)
                            }
                        }
                    })
            })
    }

    // MARK: Consumer groups

    private func takeRequestID() -> ConsumerGroup.RequestID {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    /// Answers parked requests; returns the answers meant for `mine` (if any) instead of resuming.
    private func carryOut(_ actions: [ConsumerGroup.Action], mine: ConsumerGroup.RequestID? = nil) -> (JoinGroupResponse?, SyncGroupResponse?) {
        var join: JoinGroupResponse? = nil
        var sync: SyncGroupResponse? = nil
        for action in actions {
            switch action {
            case .respondJoin(let id, let response):
                if id == mine { join = response } else { parkedJoins.removeValue(forKey: id)?.resume(returning: response) }
            case .respondSync(let id, let response):
                if id == mine { sync = response } else { parkedSyncs.removeValue(forKey: id)?.resume(returning: response) }
            }
        }
        return (join, sync)
    }

    func joinGroup(_ r: JoinGroupRequest, version: Int16, clientId: String, clientHost: String) async -> JoinGroupResponse {
        if r.groupId.isEmpty { return JoinGroupResponse(errorCode: .invalidGroupId, memberId: r.memberId) }
        let id = takeRequestID()
        if groups[r.groupId] == nil && groups.count >= configuration.maxGroups {
            tick()  // forget vacant groups first
            if groups.count >= configuration.maxGroups {
                logger.warning("JoinGroup refused: the broker holds its maximum of \(configuration.maxGroups) active groups", metadata: ["group": "\(r.groupId)"])
                return JoinGroupResponse(errorCode: .groupMaxSizeReached, memberId: r.memberId)
            }
        }
        var group = groups[r.groupId] ?? ConsumerGroup(groupId: r.groupId, settings: configuration.group)
        let actions = group.join(r, version: version, clientId: clientId, clientHost: clientHost, requestID: id, now: clock.nowMs())
        groups[r.groupId] = group
        let (mine, _) = carryOut(actions, mine: id)
        let response: JoinGroupResponse
        if let mine {
            response = mine
        } else if isShuttingDown {
            response = JoinGroupResponse(errorCode: .coordinatorNotAvailable, memberId: r.memberId)
        } else {
            response = await withCheckedContinuation { parkedJoins[id] = $0 }
        }
        if response.errorCode == .none {
            logger.info(
                "group joined",
                metadata: [
                    "group": "\(r.groupId)", "member": "\(response.memberId)", "instance": "\(r.groupInstanceId ?? "-")",
                    "generation": "\(response.generationId)", "leader": "\(response.leader == response.memberId)",
                ])
        }
        return response
    }

    func syncGroup(_ r: SyncGroupRequest) async -> SyncGroupResponse {
        guard var group = groups[r.groupId] else { return SyncGroupResponse(errorCode: .unknownMemberId) }
        let id = takeRequestID()
        let actions = group.sync(r, requestID: id, now: clock.nowMs())
        groups[r.groupId] = group
        let (_, mine) = carryOut(actions, mine: id)
        if let mine { return mine }
        if isShuttingDown { return SyncGroupResponse(errorCode: .coordinatorNotAvailable) }
        return await withCheckedContinuation { parkedSyncs[id] = $0 }
    }

    func leaveGroup(_ r: LeaveGroupRequest) -> LeaveGroupResponse {
        guard var group = groups[r.groupId] else {
            return LeaveGroupResponse(errorCode: .unknownMemberId, members: r.members.map { .init(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, errorCode: .unknownMemberId) })
        }
        var results: [LeaveGroupResponse.Member] = []
        for m in r.members {
            // v3+ may name a static member by its group.instance.id alone (empty member id).
            let (code, actions) = group.leave(memberId: m.memberId, groupInstanceId: m.groupInstanceId, now: clock.nowMs())
            _ = carryOut(actions)
            results.append(.init(memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: code))
            if code == .none {
                logger.info("member left group", metadata: ["group": "\(r.groupId)", "member": "\(m.memberId)", "instance": "\(m.groupInstanceId ?? "-")"])
            }
        }
        groups[r.groupId] = group
        let top: ErrorCode = r.members.count == 1 ? results[0].errorCode : .none
        return LeaveGroupResponse(errorCode: top, members: results)
    }

    /// Answers every parked request (JoinGroup/SyncGroup with COORDINATOR_NOT_AVAILABLE so clients
    /// retry elsewhere or later; long-polling fetches with what they have) so connections can close.
    public func shutDown() {
        for (_, c) in parkedJoins { c.resume(returning: JoinGroupResponse(errorCode: .coordinatorNotAvailable, memberId: "")) }
        parkedJoins = [:]
        for (_, c) in parkedSyncs { c.resume(returning: SyncGroupResponse(errorCode: .coordinatorNotAvailable)) }
        parkedSyncs = [:]
        for id in Array(fetchWaiters.keys) { releaseWaiter(id) }
        isShuttingDown = true
    }

    /// Evicts expired members and finishes overdue rebalances; the server calls this periodically.
    public func tick() {
        let now = clock.nowMs()
        for (name, var group) in groups {
            for m in group.expiredMembers(now: now) {
                logger.info("member's session expired; removing it from the group", metadata: ["group": "\(name)", "member": "\(m)"])
            }
            let actions = group.tick(now: now)
            groups[name] = group.isVacant ? nil : group
            _ = carryOut(actions)
        }
        if now >= nextProducerSweepMs {
            nextProducerSweepMs = now + 10_000
            let dropped = producers.expire(now: now, expirationMs: configuration.producerIdExpirationMs, maxStates: configuration.maxProducerStates)
            if dropped > 0 { logger.debug("expired idle producer states", metadata: ["dropped": "\(dropped)"]) }
        }
    }

    func offsetCommit(_ r: OffsetCommitRequest) async -> OffsetCommitResponse {
        var code = ErrorCode.none
        if var group = groups[r.groupId] {
            code = group.validateCommit(memberId: r.memberId, groupInstanceId: r.groupInstanceId, generationId: r.generationId, now: clock.nowMs())
            groups[r.groupId] = group
        } else if r.generationId >= 0 {
            code = .unknownMemberId
        }
        var accepted: [TopicPartition: CommittedOffset] = [:]
        var topicsOut = r.topics.map { t in
            let logs = topics.partitionLogs(of: t.name)
            return OffsetCommitResponse.Topic(
                name: t.name,
                partitions: t.partitions.map { p in
                    if code != .none { return .init(partitionIndex: p.partitionIndex, errorCode: code) }
                    guard let logs, p.partitionIndex >= 0, Int(p.partitionIndex) < logs.count else {
                        return .init(partitionIndex: p.partitionIndex, errorCode: .unknownTopicOrPartition)
                    }
                    if let m = p.committedMetadata, m.utf8.count > configuration.offsetMetadataMaxBytes {
                        return .init(partitionIndex: p.partitionIndex, errorCode: .offsetMetadataTooLarge)
                    }
                    accepted[TopicPartition(t.name, p.partitionIndex)] = CommittedOffset(offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch, metadata: p.committedMetadata)
                    return .init(partitionIndex: p.partitionIndex, errorCode: .none)
                })
        }
        if code != .none { logger.info("OffsetCommit refused", metadata: ["group": "\(r.groupId)", "member": "\(r.memberId)", "error": "\(code)"]) }
        if !accepted.isEmpty {
            do {
                try await committedOffsets.commit(group: r.groupId, offsets: accepted)
            } catch {
                logger.error("could not store committed offsets of \(r.groupId): \(error)")
                for i in topicsOut.indices {
                    for j in topicsOut[i].partitions.indices where topicsOut[i].partitions[j].errorCode == .none {
                        topicsOut[i].partitions[j].errorCode = .unknownServerError
                    }
                }
            }
        }
        return OffsetCommitResponse(topics: topicsOut)
    }

    func offsetFetch(_ r: OffsetFetchRequest) -> OffsetFetchResponse {
        let committed = committedOffsets.offsets(group: r.groupId)
        let asked: [OffsetFetchRequest.Topic]
        if let t = r.topics {
            asked = t
        } else {
            let byTopic = Dictionary(grouping: committed.keys, by: \.topic)
            asked = byTopic.keys.sorted().map { OffsetFetchRequest.Topic(name: $0, partitionIndexes: byTopic[$0]!.map(\.partition).sorted()) }
        }
        return OffsetFetchResponse(
            topics: asked.map { t in
                .init(
                    name: t.name,
                    partitions: t.partitionIndexes.map { p in
                        if let c = committed[TopicPartition(t.name, p)] {
                            return .init(partitionIndex: p, committedOffset: c.offset, committedLeaderEpoch: c.leaderEpoch, metadata: c.metadata ?? "", errorCode: .none)
                        }
                        return .init(partitionIndex: p, committedOffset: -1, metadata: "", errorCode: .none)
                    })
            })
    }

    func listGroups() -> ListGroupsResponse {
        var out: [String: String] = [:]
        for g in committedOffsets.groups() { out[g] = "consumer" }
        for (name, g) in groups { out[name] = g.protocolType ?? out[name] ?? "consumer" }
        return ListGroupsResponse(groups: out.keys.sorted().map { .init(groupId: $0, protocolType: out[$0]!) })
    }

    func describeGroups(_ r: DescribeGroupsRequest) -> DescribeGroupsResponse {
        // The stored groups once per request (was once per named group: 2,000 names over 20,000
        // stored groups blocked the broker for 18 s).
        lazy var stored = Set(committedOffsets.groups())
        return DescribeGroupsResponse(
            groups: r.groups.map { name in
                guard let g = groups[name] else {
                    let known = stored.contains(name)
                    return .init(errorCode: .none, groupId: name, groupState: known ? "Empty" : "Dead", protocolType: known ? "consumer" : "", protocolData: "", members: [])
                }
                return .init(
                    errorCode: .none, groupId: name, groupState: g.state.kafkaName, protocolType: g.protocolType ?? "", protocolData: g.protocolName ?? "",
                    members: g.orderedMembers.map {
                        .init(
                            memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, clientId: $0.clientId, clientHost: $0.clientHost,
                            memberMetadata: $0.metadata(for: g.protocolName), memberAssignment: $0.assignment)
                    })
            })
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
