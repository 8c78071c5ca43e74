import NIOCore

/// Every request payload the broker understands: one case per API.
public enum KafkaRequestBody: Sendable, Equatable {
    case produce(ProduceRequest)
    case fetch(FetchRequest)
    case listOffsets(ListOffsetsRequest)
    case metadata(MetadataRequest)
    case offsetCommit(OffsetCommitRequest)
    case offsetFetch(OffsetFetchRequest)
    case findCoordinator(FindCoordinatorRequest)
    case joinGroup(JoinGroupRequest)
    case heartbeat(HeartbeatRequest)
    case leaveGroup(LeaveGroupRequest)
    case syncGroup(SyncGroupRequest)
    case describeGroups(DescribeGroupsRequest)
    case listGroups(ListGroupsRequest)
    case apiVersions(ApiVersionsRequest)
    case createTopics(CreateTopicsRequest)
    case deleteTopics(DeleteTopicsRequest)
    case initProducerId(InitProducerIdRequest)
    case describeConfigs(DescribeConfigsRequest)
    case deleteRecords(DeleteRecordsRequest)
    case createPartitions(CreatePartitionsRequest)
    case deleteGroups(DeleteGroupsRequest)
    case offsetDelete(OffsetDeleteRequest)
    case describeCluster(DescribeClusterRequest)
    case alterConfigs(AlterConfigsRequest)
    case incrementalAlterConfigs(IncrementalAlterConfigsRequest)
    case saslHandshake(SaslHandshakeRequest)
    case saslAuthenticate(SaslAuthenticateRequest)
    case describeUserScramCredentials(DescribeUserScramCredentialsRequest)
    case alterUserScramCredentials(AlterUserScramCredentialsRequest)
    case addPartitionsToTxn(AddPartitionsToTxnRequest)
    case addOffsetsToTxn(AddOffsetsToTxnRequest)
    case endTxn(EndTxnRequest)
    case txnOffsetCommit(TxnOffsetCommitRequest)
    case describeAcls(DescribeAclsRequest)
    case createAcls(CreateAclsRequest)
    case deleteAcls(DeleteAclsRequest)
    /// An ApiVersions request of a version this broker does not know: answered with
    /// UNSUPPORTED_VERSION and a v0 body so the client can retry with a version listed there.
    case unsupportedApiVersions

    public var apiKey: ApiKey {
        switch self {
        case .produce: .produce
        case .fetch: .fetch
        case .listOffsets: .listOffsets
        case .metadata: .metadata
        case .offsetCommit: .offsetCommit
        case .offsetFetch: .offsetFetch
        case .findCoordinator: .findCoordinator
        case .joinGroup: .joinGroup
        case .heartbeat: .heartbeat
        case .leaveGroup: .leaveGroup
        case .syncGroup: .syncGroup
        case .describeGroups: .describeGroups
        case .listGroups: .listGroups
        case .apiVersions, .unsupportedApiVersions: .apiVersions
        case .createTopics: .createTopics
        case .deleteTopics: .deleteTopics
        case .initProducerId: .initProducerId
        case .describeConfigs: .describeConfigs
        case .deleteRecords: .deleteRecords
        case .createPartitions: .createPartitions
        case .deleteGroups: .deleteGroups
        case .offsetDelete: .offsetDelete
        case .describeCluster: .describeCluster
        case .alterConfigs: .alterConfigs
        case .incrementalAlterConfigs: .incrementalAlterConfigs
        case .saslHandshake: .saslHandshake
        case .saslAuthenticate: .saslAuthenticate
        case .describeUserScramCredentials: .describeUserScramCredentials
        case .alterUserScramCredentials: .alterUserScramCredentials
        case .addPartitionsToTxn: .addPartitionsToTxn
        case .addOffsetsToTxn: .addOffsetsToTxn
        case .endTxn: .endTxn
        case .txnOffsetCommit: .txnOffsetCommit
        case .describeAcls: .describeAcls
        case .createAcls: .createAcls
        case .deleteAcls: .deleteAcls
        }
    }
}

/// One decoded request: header and payload.
public struct KafkaRequest: Sendable, Equatable {
    public var header: RequestHeader
    public var body: KafkaRequestBody

    public init(header: RequestHeader, body: KafkaRequestBody) {
        self.header = header
        self.body = body
    }

    /// The API key and version of a frame, read without consuming it; nil when shorter than 4 bytes.
    public static func peekKeyAndVersion(_ frame: ByteBuffer) -> (Int16, Int16)? {
        guard let key = frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int16.self),
            let version = frame.getInteger(at: frame.readerIndex + 2, endianness: .big, as: Int16.self)
        else { return nil }
        return (key, version)
    }

    /// Decodes one request frame (without its 4-byte size prefix).
    ///
    /// Throws for unknown API keys, unsupported versions (except ApiVersions, which gets
    /// `.unsupportedApiVersions`), truncated or inconsistent bytes and trailing garbage.
    public static func decode(frame: inout ByteBuffer) throws -> KafkaRequest {
        guard let (rawKey, version) = peekKeyAndVersion(frame) else {
            throw KafkaProtocolError(.truncated, "request header: \(frame.readableBytes) bytes")
        }
        guard let key = ApiKey(rawValue: rawKey) else {
            throw KafkaProtocolError(.unknownApiKey, "API key \(rawKey) is not implemented")
        }
        guard key.supportedVersions.contains(version) else {
            if key == .apiVersions {
                // Header v1 is readable for any version; the body is ignored.
                let header = try RequestHeader.decode(from: &frame, headerVersion: 1)
                frame.moveReaderIndex(to: frame.writerIndex)
                return KafkaRequest(header: header, body: .unsupportedApiVersions)
            }
            throw KafkaProtocolError(.unsupportedVersion, "\(key) v\(version) is not supported (supported: \(key.supportedVersions))")
        }
        let header = try RequestHeader.decode(from: &frame, headerVersion: key.requestHeaderVersion(version))
        var body: KafkaRequestBody
        switch key {
        case .produce: body = .produce(try .decode(from: &frame, version: version))
        case .fetch: body = .fetch(try .decode(from: &frame, version: version))
        case .listOffsets: body = .listOffsets(try .decode(from: &frame, version: version))
        case .metadata: body = .metadata(try .decode(from: &frame, version: version))
        case .offsetCommit: body = .offsetCommit(try .decode(from: &frame, version: version))
        case .offsetFetch: body = .offsetFetch(try .decode(from: &frame, version: version))
        case .findCoordinator: body = .findCoordinator(try .decode(from: &frame, version: version))
        case .joinGroup: body = .joinGroup(try .decode(from: &frame, version: version))
        case .heartbeat: body = .heartbeat(try .decode(from: &frame, version: version))
        case .leaveGroup: body = .leaveGroup(try .decode(from: &frame, version: version))
        case .syncGroup: body = .syncGroup(try .decode(from: &frame, version: version))
        case .describeGroups: body = .describeGroups(try .decode(from: &frame, version: version))
        case .listGroups: body = .listGroups(try .decode(from: &frame, version: version))
        case .apiVersions: body = .apiVersions(try .decode(from: &frame, version: version))
        case .createTopics: body = .createTopics(try .decode(from: &frame, version: version))
        case .deleteTopics: body = .deleteTopics(try .decode(from: &frame, version: version))
        case .initProducerId: body = .initProducerId(try .decode(from: &frame, version: version))
        case .describeConfigs: body = .describeConfigs(try .decode(from: &frame, version: version))
        case .deleteRecords: body = .deleteRecords(try .decode(from: &frame, version: version))
        case .createPartitions: body = .createPartitions(try .decode(from: &frame, version: version))
        case .deleteGroups: body = .deleteGroups(try .decode(from: &frame, version: version))
        case .offsetDelete: body = .offsetDelete(try .decode(from: &frame, version: version))
        case .describeCluster: body = .describeCluster(try .decode(from: &frame, version: version))
        case .alterConfigs: body = .alterConfigs(try .decode(from: &frame, version: version))
        case .incrementalAlterConfigs: body = .incrementalAlterConfigs(try .decode(from: &frame, version: version))
        case .saslHandshake: body = .saslHandshake(try .decode(from: &frame, version: version))
        case .saslAuthenticate: body = .saslAuthenticate(try .decode(from: &frame, version: version))
        case .describeUserScramCredentials: body = .describeUserScramCredentials(try .decode(from: &frame, version: version))
        case .alterUserScramCredentials: body = .alterUserScramCredentials(try .decode(from: &frame, version: version))
        case .addPartitionsToTxn: body = .addPartitionsToTxn(try .decode(from: &frame, version: version))
        case .addOffsetsToTxn: body = .addOffsetsToTxn(try .decode(from: &frame, version: version))
        case .endTxn: body = .endTxn(try .decode(from: &frame, version: version))
        case .txnOffsetCommit: body = .txnOffsetCommit(try .decode(from: &frame, version: version))
        case .describeAcls: body = .describeAcls(try .decode(from: &frame, version: version))
        case .createAcls: body = .createAcls(try .decode(from: &frame, version: version))
        case .deleteAcls: body = .deleteAcls(try .decode(from: &frame, version: version))
        }
        // What librdkafka 2.0.x leaves after some flexible requests (see ClientQuirks); nothing else.
        if frame.readableBytes != 0 { ClientQuirks.absorbTrailingBytes(&body, key: key, version: version, frame: &frame) }
        // ApiVersions v0-2 clients may send a newer body; be lenient there as Kafka is.
        if frame.readableBytes != 0 && key != .apiVersions {
            throw KafkaProtocolError(.trailingBytes, "\(key) v\(version): \(frame.readableBytes) bytes after the request")
        }
        return KafkaRequest(header: header, body: body)
    }

    /// Encodes a whole request frame, with its size prefix (clients and tests use this).
    public static func encodeFrame<M: KafkaRequestMessage>(_ message: M, version: Int16, correlationId: Int32, clientId: String?) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.encodeInt32(0)
        let header = RequestHeader(apiKey: M.apiKey.rawValue, apiVersion: version, correlationId: correlationId, clientId: clientId)
        header.encode(into: &buffer, headerVersion: M.apiKey.requestHeaderVersion(version))
        message.encode(into: &buffer, version: version)
        buffer.setInteger(Int32(buffer.readableBytes - 4), at: buffer.readerIndex, endianness: .big)
        return buffer
    }
}

/// Encodes response frames.
public enum KafkaResponse {
    /// A whole response frame: size prefix, header of the right version, payload.
    /// `capacity`: the expected frame size, so large responses (fetch) are not regrown while encoding.
    public static func encodeFrame(
        _ payload: some KafkaResponseMessage, apiKey: ApiKey, version: Int16, correlationId: Int32, allocator: ByteBufferAllocator = ByteBufferAllocator(),
        capacity: Int = 256
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: max(capacity, 256))
        buffer.encodeInt32(0)
        ResponseHeader(correlationId: correlationId).encode(into: &buffer, headerVersion: apiKey.responseHeaderVersion(version))
        payload.encode(into: &buffer, version: version)
        buffer.setInteger(Int32(buffer.readableBytes - 4), at: buffer.readerIndex, endianness: .big)
        return buffer
    }

    /// Record sets up to this size are copied into a fetch frame's head; larger ones are sent as
    /// buffers of their own.
    public static let inlineRecordsBytes = 16 << 10

    /// A fetch response frame as consecutive buffers — the same bytes as `encodeFrame` — in which
    /// every record set over `inlineRecordsBytes` is its own buffer (a slice of what the log was
    /// read into) instead of being copied into the frame: the socket gathers them in one write.
    public static func encodeFetchFrameParts(
        _ payload: FetchResponse, version: Int16, correlationId: Int32, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> [ByteBuffer] {
        var head = allocator.buffer(capacity: payload.estimatedFrameBytes(inliningRecordsUpTo: inlineRecordsBytes))
        head.encodeInt32(0)
        ResponseHeader(correlationId: correlationId).encode(into: &head, headerVersion: ApiKey.fetch.responseHeaderVersion(version))
        // Where each record set sent on its own goes: after this many bytes of `head`.
        var separate: [(at: Int, records: ByteBuffer)] = []
        payload.encode(into: &head, version: version) { b, records in
            guard let records, records.readableBytes > inlineRecordsBytes else {
                b.encodeNullableBytes(records ?? ByteBuffer())
                return
            }
            b.encodeInt32(Int32(records.readableBytes))
            separate.append((b.writerIndex, records))
        }
        let frameBytes = separate.reduce(head.readableBytes) { $0 + $1.records.readableBytes }
        head.setInteger(Int32(truncatingIfNeeded: frameBytes - 4), at: head.readerIndex, endianness: .big)
        if separate.isEmpty { return [head] }
        var parts: [ByteBuffer] = []
        parts.reserveCapacity(2 * separate.count + 1)
        var from = head.readerIndex
        for (at, records) in separate {
            parts.append(head.getSlice(at: from, length: at - from)!)
            parts.append(records)
            from = at
        }
        if head.writerIndex > from { parts.append(head.getSlice(at: from, length: head.writerIndex - from)!) }
        return parts
    }
}

extension KafkaRequestBody {
    /// Encodes the payload at `version` (`.unsupportedApiVersions` has no payload).
    public func encode(into buffer: inout ByteBuffer, version: Int16) {
        switch self {
        case .produce(let m): m.encode(into: &buffer, version: version)
        case .fetch(let m): m.encode(into: &buffer, version: version)
        case .listOffsets(let m): m.encode(into: &buffer, version: version)
        case .metadata(let m): m.encode(into: &buffer, version: version)
        case .offsetCommit(let m): m.encode(into: &buffer, version: version)
        case .offsetFetch(let m): m.encode(into: &buffer, version: version)
        case .findCoordinator(let m): m.encode(into: &buffer, version: version)
        case .joinGroup(let m): m.encode(into: &buffer, version: version)
        case .heartbeat(let m): m.encode(into: &buffer, version: version)
        case .leaveGroup(let m): m.encode(into: &buffer, version: version)
        case .syncGroup(let m): m.encode(into: &buffer, version: version)
        case .describeGroups(let m): m.encode(into: &buffer, version: version)
        case .listGroups(let m): m.encode(into: &buffer, version: version)
        case .apiVersions(let m): m.encode(into: &buffer, version: version)
        case .createTopics(let m): m.encode(into: &buffer, version: version)
        case .deleteTopics(let m): m.encode(into: &buffer, version: version)
        case .initProducerId(let m): m.encode(into: &buffer, version: version)
        case .describeConfigs(let m): m.encode(into: &buffer, version: version)
        case .deleteRecords(let m): m.encode(into: &buffer, version: version)
        case .createPartitions(let m): m.encode(into: &buffer, version: version)
        case .deleteGroups(let m): m.encode(into: &buffer, version: version)
        case .offsetDelete(let m): m.encode(into: &buffer, version: version)
        case .describeCluster(let m): m.encode(into: &buffer, version: version)
        case .alterConfigs(let m): m.encode(into: &buffer, version: version)
        case .incrementalAlterConfigs(let m): m.encode(into: &buffer, version: version)
        case .saslHandshake(let m): m.encode(into: &buffer, version: version)
        case .saslAuthenticate(let m): m.encode(into: &buffer, version: version)
        case .describeUserScramCredentials(let m): m.encode(into: &buffer, version: version)
        case .alterUserScramCredentials(let m): m.encode(into: &buffer, version: version)
        case .addPartitionsToTxn(let m): m.encode(into: &buffer, version: version)
        case .addOffsetsToTxn(let m): m.encode(into: &buffer, version: version)
        case .endTxn(let m): m.encode(into: &buffer, version: version)
        case .txnOffsetCommit(let m): m.encode(into: &buffer, version: version)
        case .describeAcls(let m): m.encode(into: &buffer, version: version)
        case .createAcls(let m): m.encode(into: &buffer, version: version)
        case .deleteAcls(let m): m.encode(into: &buffer, version: version)
        case .unsupportedApiVersions: break
        }
    }
}

extension KafkaRequest {
    /// Header and payload, without the size prefix (the inverse of `decode(frame:)`).
    public func encodeFrameBody() -> ByteBuffer {
        var buffer = ByteBuffer()
        header.encode(into: &buffer, headerVersion: body.apiKey.requestHeaderVersion(header.apiVersion))
        body.encode(into: &buffer, version: header.apiVersion)
        return buffer
    }
}
