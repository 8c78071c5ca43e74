import KafkaProtocol

extension Broker {
    /// The server authenticated `connection` as `principal` ("User:NAME").
    public func setPrincipal(_ principal: String, connection: UInt64) { principals[connection] = principal }

    /// The principal of `connection`, if it authenticated.
    public func principal(connection: UInt64) -> String? { principals[connection] }

    static let scramIterationsAccepted: ClosedRange<Int32> = 4096...16384

    /// Whether `connection` may describe (`operation` DESCRIBE) or alter (ALTER) credentials: with
    /// ACLs enforced, that operation on the cluster; otherwise authenticated, and a super user when
    /// any are configured.
    func mayManageCredentials(_ connection: UInt64, _ operation: AclOperation = .alter, auth: Authorization = .unrestricted) -> Bool {
        if auth.isEnforced { return auth.allowsCluster(operation) }
        guard let principal = principals[connection] else { return false }
        let superUsers = configuration.security.superUsers
        return superUsers.isEmpty || superUsers.contains(principal)
    }

    static func mechanism(code: Int8) -> SaslMechanism? {
        switch ScramMechanismCode(rawValue: code) {
        case .scramSha256: .scramSha256
        case .scramSha512: .scramSha512
        default: nil
        }
    }

    static func code(of m: SaslMechanism) -> Int8 {
        m == .scramSha512 ? ScramMechanismCode.scramSha512.rawValue : ScramMechanismCode.scramSha256.rawValue
    }

    func describeUserScramCredentials(
        _ r: DescribeUserScramCredentialsRequest, connection: UInt64, auth: Authorization = .unrestricted
    ) -> DescribeUserScramCredentialsResponse {
        guard mayManageCredentials(connection, .describe, auth: auth) else {
            // Kafka puts the error at the top (and per user), but librdkafka (2.16 too) frees the
            // top-level error string it kept and crashes (confluent-kafka's AdminClient aborted in
            // munmap_chunk()). Users asked by name get the error per user only; "describe all" has no
            // other place for it than the top.
            let message = "Describing SCRAM credentials needs an authenticated connection (SASL or a client certificate) of a super user."
            guard let users = r.users, !users.isEmpty else {
                return DescribeUserScramCredentialsResponse(errorCode: .clusterAuthorizationFailed, errorMessage: message, results: [])
            }
            return DescribeUserScramCredentialsResponse(
                errorCode: .none, results: users.map { .init(user: $0, errorCode: .clusterAuthorizationFailed, errorMessage: message) })
        }
        guard let credentials else {
            return DescribeUserScramCredentialsResponse(errorCode: .none, results: [])
        }
        let users = credentials.current().users
        func info(_ u: UserCredentials) -> [DescribeUserScramCredentialsResponse.CredentialInfo] {
            [SaslMechanism.scramSha256, .scramSha512].compactMap { m in
                u.scram(m).map { DescribeUserScramCredentialsResponse.CredentialInfo(mechanism: Self.code(of: m), iterations: Int32(clamping: $0.iterations)) }
            }
        }
        guard let names = r.users, !names.isEmpty else {
            let results = users.keys.sorted().compactMap { name -> DescribeUserScramCredentialsResponse.Result? in
                let i = info(users[name] ?? UserCredentials())
                return i.isEmpty ? nil : .init(user: name, errorCode: .none, credentials: i)
            }
            return DescribeUserScramCredentialsResponse(errorCode: .none, results: results)
        }
        var counts: [String: Int] = [:]
        for n in names { counts[n, default: 0] += 1 }
        var seen = Set<String>()
        var results: [DescribeUserScramCredentialsResponse.Result] = []
        for name in names where seen.insert(name).inserted {
            if counts[name, default: 0] > 1 {
                results.append(.init(user: name, errorCode: .duplicateResource, errorMessage: "Cannot describe user \(name) more than once in one request"))
            } else if let u = users[name], !info(u).isEmpty {
                results.append(.init(user: name, errorCode: .none, credentials: info(u)))
            } else {
                results.append(.init(user: name, errorCode: .resourceNotFound, errorMessage: "Attempt to describe a user credential that does not exist"))
            }
        }
        return DescribeUserScramCredentialsResponse(errorCode: .none, results: results)
    }

    func alterUserScramCredentials(
        _ r: AlterUserScramCredentialsRequest, connection: UInt64, auth: Authorization = .unrestricted
    ) -> AlterUserScramCredentialsResponse {
        let names = r.deletions.map(\.name) + r.upsertions.map(\.name)
        var order: [String] = []
        var seenOrder = Set<String>()
        for n in names where seenOrder.insert(n).inserted { order.append(n) }
        func all(_ code: ErrorCode, _ message: String) -> AlterUserScramCredentialsResponse {
            AlterUserScramCredentialsResponse(results: order.map { .init(user: $0, errorCode: code, errorMessage: message) })
        }
        guard mayManageCredentials(connection, .alter, auth: auth) else {
            return all(
                .clusterAuthorizationFailed, "Altering SCRAM credentials needs an authenticated connection (SASL or a client certificate) of a super user.")
        }
        guard let credentials else { return all(.unknownServerError, "This broker has no credentials file.") }
        // Validate first: a user with any invalid or duplicate alteration is not changed at all.
        var errors: [String: (ErrorCode, String)] = [:]
        var pairs = Set<String>()
        for (name, code) in r.deletions.map({ ($0.name, $0.mechanism) }) + r.upsertions.map({ ($0.name, $0.mechanism) }) {
            if !pairs.insert("\(code)/\(name)").inserted, errors[name] == nil {
                errors[name] = (.duplicateResource, "A user credential cannot be altered twice in the same request")
            }
        }
        for d in r.deletions where errors[d.name] == nil {
            if d.name.isEmpty { errors[d.name] = (.unacceptableCredential, "Username must not be empty") }
            if Self.mechanism(code: d.mechanism) == nil { errors[d.name] = (.unsupportedSaslMechanism, "Unknown SCRAM mechanism") }
        }
        for u in r.upsertions where errors[u.name] == nil {
            if u.name.isEmpty {
                errors[u.name] = (.unacceptableCredential, "Username must not be empty")
            } else if let m = Self.mechanism(code: u.mechanism), let hash = m.scramHash {
                if !Self.scramIterationsAccepted.contains(u.iterations) {
                    errors[u.name] = (
                        .unacceptableCredential,
                        "Iterations must be from \(Self.scramIterationsAccepted.lowerBound) to \(Self.scramIterationsAccepted.upperBound)"
                    )
                } else if u.saltedPassword.count != hash.outputByteCount || u.salt.isEmpty || u.salt.count > 1024 {
                    errors[u.name] = (.unacceptableCredential, "Salt must be 1 to 1024 bytes and the salted password \(hash.outputByteCount) bytes")
                }
            } else {
                errors[u.name] = (.unsupportedSaslMechanism, "Unknown SCRAM mechanism")
            }
        }
        do {
            let missing: Set<String> = try credentials.update { file in
                var missing = Set<String>()
                for d in r.deletions where errors[d.name] == nil {
                    guard let m = Self.mechanism(code: d.mechanism), var user = file.users[d.name], user.scram(m) != nil else {
                        missing.insert(d.name)
                        continue
                    }
                    user.setScram(m, nil)
                    file.users[d.name] = user.isEmpty ? nil : user
                }
                for u in r.upsertions where errors[u.name] == nil && !missing.contains(u.name) {
                    guard let m = Self.mechanism(code: u.mechanism), let hash = m.scramHash else { continue }
                    var user = file.users[u.name] ?? UserCredentials()
                    user.setScram(m, ScramCredential(hash: hash, saltedPassword: u.saltedPassword, salt: u.salt, iterations: Int(u.iterations)))
                    file.users[u.name] = user
                }
                return missing
            }
            for name in missing where errors[name] == nil {
                errors[name] = (.resourceNotFound, "Attempt to delete a user credential that does not exist")
            }
        } catch {
            return all(.unknownServerError, "Could not write the credentials file: \(error)")
        }
        return AlterUserScramCredentialsResponse(
            results: order.map { name in
                if let (code, message) = errors[name] { return .init(user: name, errorCode: code, errorMessage: message) }
                return .init(user: name, errorCode: .none)
            })
    }
}
