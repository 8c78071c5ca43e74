import KafkaProtocol

/// The ACL admin APIs (DescribeAcls, CreateAcls, DeleteAcls) and produce authorization.
///
/// Who may call them: with `--authorizer acl`, DESCRIBE on the cluster to describe and ALTER on the
/// cluster to create or delete (super users always); without it ACLs are stored but not enforced,
/// and any client may manage them, as any client may then delete topics.
extension Broker {
    static let aclRefusal = "Managing ACLs needs ALTER on the cluster (DESCRIBE to list them), or a super user."

    func describeAcls(_ r: DescribeAclsRequest, auth: Authorization) -> DescribeAclsResponse {
        guard auth.allowsCluster(.describe) else {
            return DescribeAclsResponse(errorCode: .clusterAuthorizationFailed, errorMessage: Self.aclRefusal, resources: [])
        }
        guard let acls else { return DescribeAclsResponse(errorCode: .securityDisabled, errorMessage: "This broker has no ACL file.", resources: []) }
        let filter: AclBindingFilter
        do { filter = try AclBindingFilter(wire: r.filter) } catch {
            return DescribeAclsResponse(errorCode: .invalidRequest, errorMessage: error.message, resources: [])
        }
        return DescribeAclsResponse(errorCode: .none, resources: Self.grouped(acls.current().filter { filter.matches($0) }))
    }

    /// Bindings grouped by resource pattern, in first-seen order (DescribeAcls' shape).
    static func grouped(_ bindings: [AclBinding]) -> [DescribeAclsResponse.Resource] {
        struct Key: Hashable {
            var type: AclResourceType
            var name: String
            var pattern: AclPatternType
        }
        var order: [Key] = []
        var entries: [Key: [DescribeAclsResponse.Entry]] = [:]
        for b in bindings {
            let key = Key(type: b.resourceType, name: b.resourceName, pattern: b.patternType)
            if entries[key] == nil { order.append(key) }
            entries[key, default: []].append(.init(principal: b.principal, host: b.host, operation: b.operation.code, permissionType: b.permission.code))
        }
        return order.map { .init(resourceType: $0.type.code, resourceName: $0.name, patternType: $0.pattern.code, acls: entries[$0] ?? []) }
    }

    func createAcls(_ r: CreateAclsRequest, auth: Authorization) -> CreateAclsResponse {
        guard auth.allowsCluster(.alter) else {
            return CreateAclsResponse(results: r.creations.map { _ in .init(errorCode: .clusterAuthorizationFailed, errorMessage: Self.aclRefusal) })
        }
        guard let acls else {
            return CreateAclsResponse(results: r.creations.map { _ in .init(errorCode: .securityDisabled, errorMessage: "This broker has no ACL file.") })
        }
        var results: [CreateAclsResponse.Result] = []
        var valid: [AclBinding] = []
        for c in r.creations {
            do {
                valid.append(try AclBinding(fields: c))
                results.append(.init(errorCode: .none))
            } catch {
                results.append(.init(errorCode: .invalidRequest, errorMessage: error.message))
            }
        }
        do {
            try acls.add(valid)
        } catch {
            logger.error("could not store ACLs: \(error)")
            let message = "Could not store the ACLs: \(error)"
            return CreateAclsResponse(results: results.map { $0.errorCode == .none ? .init(errorCode: .unknownServerError, errorMessage: message) : $0 })
        }
        if !valid.isEmpty { logger.info("created ACLs", metadata: ["count": "\(valid.count)", "principal": "\(auth.principal)"]) }
        return CreateAclsResponse(results: results)
    }

    func deleteAcls(_ r: DeleteAclsRequest, auth: Authorization) -> DeleteAclsResponse {
        guard auth.allowsCluster(.alter) else {
            return DeleteAclsResponse(filterResults: r.filters.map { _ in .init(errorCode: .clusterAuthorizationFailed, errorMessage: Self.aclRefusal) })
        }
        guard let acls else {
            return DeleteAclsResponse(filterResults: r.filters.map { _ in .init(errorCode: .securityDisabled, errorMessage: "This broker has no ACL file.") })
        }
        // Invalid filters get INVALID_REQUEST and delete nothing; the valid ones are applied together.
        var parsed: [Result<AclBindingFilter, AclValidationError>] = []
        for f in r.filters {
            do { parsed.append(.success(try AclBindingFilter(wire: f))) } catch { parsed.append(.failure(error)) }
        }
        let filters = parsed.compactMap { try? $0.get() }
        let matched: [[AclBinding]]
        do {
            matched = try acls.remove(matching: filters)
        } catch {
            logger.error("could not store ACLs: \(error)")
            return DeleteAclsResponse(
                filterResults: r.filters.map { _ in .init(errorCode: .unknownServerError, errorMessage: "Could not store the ACLs: \(error)") })
        }
        var next = matched.makeIterator()
        return DeleteAclsResponse(
            filterResults: parsed.map { p in
                switch p {
                case .failure(let e): return .init(errorCode: .invalidRequest, errorMessage: e.message)
                case .success: return .init(errorCode: .none, matchingAcls: (next.next() ?? []).map { .init(binding: $0.fields) })
                }
            })
    }

    /// Takes out of `r` what ACLs refuse (Kafka's `handleProduceRequest`): everything when the
    /// transactional id may not be written, else each topic without WRITE (and each missing topic
    /// the principal may not create); returns the answers for what was taken out.
    func refuseProduce(_ r: inout ProduceRequest, auth: Authorization) -> [ProduceResponse.TopicResponse] {
        guard auth.isEnforced else { return [] }
        func refused(_ t: ProduceRequest.TopicData, _ code: ErrorCode, _ message: String) -> ProduceResponse.TopicResponse {
            .init(
                name: t.name,
                partitions: t.partitions.map { .init(index: $0.index, errorCode: code, baseOffset: -1, logStartOffset: -1, errorMessage: message) })
        }
        if let id = r.transactionalId, !auth.allows(.write, .transactionalId, id) {
            defer { r.topics = [] }
            return r.topics.map { refused($0, .transactionalIdAuthorizationFailed, "not authorized to write transactional id \(id)") }
        }
        var answers: [ProduceResponse.TopicResponse] = []
        var kept: [ProduceRequest.TopicData] = []
        for t in r.topics {
            if !auth.allows(.write, .topic, t.name) {
                answers.append(refused(t, .topicAuthorizationFailed, "not authorized to write to topic \(t.name)"))
            } else if topics.partitionLogs(of: t.name) == nil && !auth.allowsCreating(topic: t.name) {
                answers.append(refused(t, .unknownTopicOrPartition, "topic \(t.name) does not exist"))
            } else {
                kept.append(t)
            }
        }
        r.topics = kept
        return answers
    }
}
