import Foundation

/// The dynamic broker configs (AlterConfigs / IncrementalAlterConfigs on resource type BROKER) this
/// broker accepts, stores (`broker-configs.json` in the data directory) and describes with source
/// DYNAMIC_BROKER_CONFIG.
///
/// They are the SASL settings Apache Kafka lists as dynamically updatable per broker
/// (`DynamicListenerConfig.ReconfigurableConfigs`) for mechanisms Tape does not offer: Kerberos
/// (GSSAPI) and the login refresh of OAUTHBEARER. Kafka accepts them while those mechanisms are not
/// enabled, and so does Tape; **they have no effect** here, because Tape has neither mechanism.
/// Every other broker config is refused with INVALID_CONFIG naming it: Tape's broker settings are
/// its `tape broker` flags, fixed at start.
public enum DynamicBrokerConfigs {
    /// Value types, as Kafka's ConfigDef defines them for these keys.
    enum ValueType: Sendable {
        case string
        case list
        case long
        case short(ClosedRange<Int16>)
        case double(ClosedRange<Double>?)
    }

    /// Key → (type, Kafka's default shown by DescribeConfigs; nil = no default, shown as null).
    static let accepted: [String: (type: ValueType, defaultValue: String?)] = [
        "sasl.kerberos.service.name": (.string, nil),
        "sasl.kerberos.kinit.cmd": (.string, "/usr/bin/kinit"),
        "sasl.kerberos.ticket.renew.window.factor": (.double(nil), "0.8"),
        "sasl.kerberos.ticket.renew.jitter": (.double(nil), "0.05"),
        "sasl.kerberos.min.time.before.relogin": (.long, "60000"),
        "sasl.kerberos.principal.to.local.rules": (.list, "DEFAULT"),
        "sasl.login.refresh.window.factor": (.double(0.5...1.0), "0.8"),
        "sasl.login.refresh.window.jitter": (.double(0.0...0.25), "0.05"),
        "sasl.login.refresh.min.period.seconds": (.short(0...900), "60"),
        "sasl.login.refresh.buffer.seconds": (.short(0...3600), "300"),
    ]

    /// The keys accepted, sorted.
    public static var keys: [String] { accepted.keys.sorted() }

    /// Kafka's default of an accepted key (nil: none, or not accepted).
    public static func defaultValue(of key: String) -> String? { accepted[key]?.defaultValue }

    /// Why `key=value` cannot be set as a dynamic broker config here (one sentence naming it), or nil.
    /// A nil value (DELETE) is only checked for the key.
    public static func problem(key: String, value: String?) -> String? {
        guard let entry = accepted[key] else {
            let shown = value.map { "\(key)=\($0)" } ?? key
            return "broker config \(shown) cannot be set dynamically on this tape broker (its settings are `tape broker` flags, fixed at start)"
        }
        guard let value else { return nil }
        let v = value.trimmingCharacters(in: .whitespaces)
        switch entry.type {
        case .string, .list:
            return nil
        case .long:
            return Int64(v) == nil ? "broker config \(key)=\(value) is not a long integer" : nil
        case .short(let range):
            guard let n = Int16(v) else { return "broker config \(key)=\(value) is not a short integer" }
            return range.contains(n) ? nil : "broker config \(key)=\(value) must be between \(range.lowerBound) and \(range.upperBound)"
        case .double(let range):
            guard let d = Double(v), d.isFinite else { return "broker config \(key)=\(value) is not a number" }
            if let range, !range.contains(d) { return "broker config \(key)=\(value) must be between \(range.lowerBound) and \(range.upperBound)" }
            return nil
        }
    }
}
