import NIOCore

/// The Kafka API keys this broker knows about.
public enum ApiKey: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case leaveGroup = 13
    case syncGroup = 14
    case describeGroups = 15
    case listGroups = 16
    case apiVersions = 18
    case createTopics = 19
    case deleteTopics = 20
    case initProducerId = 22
    case describeConfigs = 32
    case deleteRecords = 21
    case createPartitions = 37
    case deleteGroups = 42
    case offsetDelete = 47
    case describeCluster = 60
    case alterConfigs = 33
    case incrementalAlterConfigs = 44
    case saslHandshake = 17
    case saslAuthenticate = 36
    case describeUserScramCredentials = 50
    case alterUserScramCredentials = 51
    case addPartitionsToTxn = 24
    case addOffsetsToTxn = 25
    case endTxn = 26
    case txnOffsetCommit = 28
    case describeAcls = 29
    case createAcls = 30
    case deleteAcls = 31

    public var description: String { "\(self.name)(\(rawValue))" }

    var name: String {
        switch self {
        case .produce: "Produce"
        case .fetch: "Fetch"
        case .listOffsets: "ListOffsets"
        case .metadata: "Metadata"
        case .offsetCommit: "OffsetCommit"
        case .offsetFetch: "OffsetFetch"
        case .findCoordinator: "FindCoordinator"
        case .joinGroup: "JoinGroup"
        case .heartbeat: "Heartbeat"
        case .leaveGroup: "LeaveGroup"
        case .syncGroup: "SyncGroup"
        case .describeGroups: "DescribeGroups"
        case .listGroups: "ListGroups"
        case .apiVersions: "ApiVersions"
        case .createTopics: "CreateTopics"
        case .deleteTopics: "DeleteTopics"
        case .initProducerId: "InitProducerId"
        case .describeConfigs: "DescribeConfigs"
        case .deleteRecords: "DeleteRecords"
        case .createPartitions: "CreatePartitions"
        case .deleteGroups: "DeleteGroups"
        case .offsetDelete: "OffsetDelete"
        case .describeCluster: "DescribeCluster"
        case .alterConfigs: "AlterConfigs"
        case .incrementalAlterConfigs: "IncrementalAlterConfigs"
        case .saslHandshake: "SaslHandshake"
        case .saslAuthenticate: "SaslAuthenticate"
        case .describeUserScramCredentials: "DescribeUserScramCredentials"
        case .alterUserScramCredentials: "AlterUserScramCredentials"
        case .addPartitionsToTxn: "AddPartitionsToTxn"
        case .addOffsetsToTxn: "AddOffsetsToTxn"
        case .endTxn: "EndTxn"
        case .txnOffsetCommit: "TxnOffsetCommit"
        case .describeAcls: "DescribeAcls"
        case .createAcls: "CreateAcls"
        case .deleteAcls: "DeleteAcls"
        }
    }

    /// The versions this broker implements and advertises in ApiVersions.
    public var supportedVersions: ClosedRange<Int16> {
        switch self {
        // Produce v0-2 are advertised although only RecordBatch v2 (magic 2) is accepted:
        // librdkafka <= 2.11 compresses gzip/snappy/lz4 batches only when the broker lists
        // Produce v0 (its codec check asks for Produce 0..0), even though it then sends v3+.
        case .produce: 0...8
        case .fetch: 4...11
        case .listOffsets: 1...7
        case .metadata: 0...8
        case .offsetCommit: 2...7
        case .offsetFetch: 1...8
        case .findCoordinator: 0...2
        case .joinGroup: 0...5
        case .heartbeat: 0...3
        case .leaveGroup: 0...3
        case .syncGroup: 0...3
        case .describeGroups: 0...4
        case .listGroups: 0...5
        case .apiVersions: 0...3
        case .createTopics: 0...4
        case .deleteTopics: 0...3
        case .initProducerId: 0...4
        case .describeConfigs: 0...2
        case .deleteRecords: 0...2
        case .createPartitions: 0...3
        case .deleteGroups: 0...2
        case .offsetDelete: 0...0
        case .describeCluster: 0...1
        case .alterConfigs: 0...2
        case .incrementalAlterConfigs: 0...1
        case .saslHandshake: 0...1
        case .saslAuthenticate: 0...2
        case .describeUserScramCredentials: 0...0
        case .alterUserScramCredentials: 0...0
        case .addPartitionsToTxn: 0...3
        case .addOffsetsToTxn: 0...3
        case .endTxn: 0...3
        case .txnOffsetCommit: 0...3
        case .describeAcls, .createAcls, .deleteAcls: 0...3
        }
    }

    /// The first version that uses the flexible (compact, tagged-field) encoding, per Kafka's message specs.
    public var firstFlexibleVersion: Int16 {
        switch self {
        case .produce: 9
        case .fetch: 12
        case .listOffsets: 6
        case .metadata: 9
        case .offsetCommit: 8
        case .offsetFetch: 6
        case .findCoordinator: 3
        case .joinGroup: 6
        case .heartbeat: 4
        case .leaveGroup: 4
        case .syncGroup: 4
        case .describeGroups: 5
        case .listGroups: 3
        case .apiVersions: 3
        case .createTopics: 5
        case .deleteTopics: 4
        case .initProducerId: 2
        case .describeConfigs: 4
        case .deleteRecords: 2
        case .createPartitions: 2
        case .deleteGroups: 2
        // OffsetDelete has no flexible version.
        case .offsetDelete: .max
        case .describeCluster: 0
        case .alterConfigs: 2
        case .incrementalAlterConfigs: 1
        case .saslHandshake: Int16.max
        case .saslAuthenticate: 2
        case .describeUserScramCredentials: 0
        case .alterUserScramCredentials: 0
        case .addPartitionsToTxn, .addOffsetsToTxn, .endTxn, .txnOffsetCommit: 3
        case .describeAcls, .createAcls, .deleteAcls: 2
        }
    }

    public func isFlexible(_ version: Int16) -> Bool { version >= firstFlexibleVersion }

    /// Request header version: 2 for flexible versions, else 1.
    public func requestHeaderVersion(_ version: Int16) -> Int16 { isFlexible(version) ? 2 : 1 }

    /// Response header version: 1 for flexible versions, else 0; ApiVersions always uses 0.
    public func responseHeaderVersion(_ version: Int16) -> Int16 {
        if self == .apiVersions { return 0 }
        return isFlexible(version) ? 1 : 0
    }
}

/// Kafka error codes used by this broker (values from Kafka's `Errors` table).
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public var description: String { "\(rawValue)" }

    public static let unknownServerError = ErrorCode(rawValue: -1)
    public static let none = ErrorCode(rawValue: 0)
    public static let offsetOutOfRange = ErrorCode(rawValue: 1)
    public static let corruptMessage = ErrorCode(rawValue: 2)
    public static let unknownTopicOrPartition = ErrorCode(rawValue: 3)
    public static let leaderNotAvailable = ErrorCode(rawValue: 5)
    public static let requestTimedOut = ErrorCode(rawValue: 7)
    public static let messageTooLarge = ErrorCode(rawValue: 10)
    public static let offsetMetadataTooLarge = ErrorCode(rawValue: 12)
    public static let coordinatorNotAvailable = ErrorCode(rawValue: 15)
    public static let notCoordinator = ErrorCode(rawValue: 16)
    public static let invalidTopicException = ErrorCode(rawValue: 17)
    public static let recordListTooLarge = ErrorCode(rawValue: 18)
    public static let invalidRequiredAcks = ErrorCode(rawValue: 21)
    public static let invalidTimestamp = ErrorCode(rawValue: 32)
    public static let illegalGeneration = ErrorCode(rawValue: 22)
    public static let inconsistentGroupProtocol = ErrorCode(rawValue: 23)
    public static let invalidGroupId = ErrorCode(rawValue: 24)
    public static let unknownMemberId = ErrorCode(rawValue: 25)
    public static let invalidSessionTimeout = ErrorCode(rawValue: 26)
    public static let rebalanceInProgress = ErrorCode(rawValue: 27)
    public static let unsupportedVersion = ErrorCode(rawValue: 35)
    public static let topicAlreadyExists = ErrorCode(rawValue: 36)
    public static let invalidPartitions = ErrorCode(rawValue: 37)
    public static let invalidReplicationFactor = ErrorCode(rawValue: 38)
    public static let invalidReplicaAssignment = ErrorCode(rawValue: 39)
    public static let invalidConfig = ErrorCode(rawValue: 40)
    public static let invalidRequest = ErrorCode(rawValue: 42)
    public static let unsupportedForMessageFormat = ErrorCode(rawValue: 43)
    public static let policyViolation = ErrorCode(rawValue: 44)
    public static let outOfOrderSequenceNumber = ErrorCode(rawValue: 45)
    public static let duplicateSequenceNumber = ErrorCode(rawValue: 46)
    public static let invalidProducerEpoch = ErrorCode(rawValue: 47)
    public static let kafkaStorageError = ErrorCode(rawValue: 56)
    public static let unknownProducerId = ErrorCode(rawValue: 59)
    public static let nonEmptyGroup = ErrorCode(rawValue: 68)
    public static let groupIdNotFound = ErrorCode(rawValue: 69)
    public static let unsupportedCompressionType = ErrorCode(rawValue: 76)
    public static let memberIdRequired = ErrorCode(rawValue: 79)
    public static let groupMaxSizeReached = ErrorCode(rawValue: 81)
    public static let fencedInstanceId = ErrorCode(rawValue: 82)
    public static let invalidRecord = ErrorCode(rawValue: 87)
    public static let groupSubscribedToTopic = ErrorCode(rawValue: 86)
    public static let mismatchedEndpointType = ErrorCode(rawValue: 114)
    public static let unsupportedEndpointType = ErrorCode(rawValue: 115)
    public static let clusterAuthorizationFailed = ErrorCode(rawValue: 31)
    public static let unsupportedSaslMechanism = ErrorCode(rawValue: 33)
    public static let illegalSaslState = ErrorCode(rawValue: 34)
    public static let saslAuthenticationFailed = ErrorCode(rawValue: 58)
    public static let resourceNotFound = ErrorCode(rawValue: 91)
    public static let duplicateResource = ErrorCode(rawValue: 92)
    public static let unacceptableCredential = ErrorCode(rawValue: 93)
    public static let coordinatorLoadInProgress = ErrorCode(rawValue: 14)
    public static let invalidTxnState = ErrorCode(rawValue: 48)
    public static let invalidProducerIdMapping = ErrorCode(rawValue: 49)
    public static let invalidTransactionTimeout = ErrorCode(rawValue: 50)
    public static let concurrentTransactions = ErrorCode(rawValue: 51)
    public static let operationNotAttempted = ErrorCode(rawValue: 55)
    public static let producerFenced = ErrorCode(rawValue: 90)
    public static let topicAuthorizationFailed = ErrorCode(rawValue: 29)
    public static let groupAuthorizationFailed = ErrorCode(rawValue: 30)
    public static let transactionalIdAuthorizationFailed = ErrorCode(rawValue: 53)
    public static let securityDisabled = ErrorCode(rawValue: 54)
}

extension ByteBuffer {
    public mutating func decodeErrorCode() throws -> ErrorCode { ErrorCode(rawValue: try decodeInt16()) }
    public mutating func encodeErrorCode(_ e: ErrorCode) { encodeInt16(e.rawValue) }
}
