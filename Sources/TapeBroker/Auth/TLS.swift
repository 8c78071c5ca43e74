import NIOSSL

extension BrokerSecurity.TLSFiles {
    /// The server's TLS context; throws `BrokerStartError` naming the file that could not be used.
    func makeContext() throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw BrokerStartError(message: "cannot read the TLS certificate \(certificatePath) (\(error)); give a PEM file with --tls-cert.")
        }
        guard !chain.isEmpty else { throw BrokerStartError(message: "\(certificatePath) holds no PEM certificate; give one with --tls-cert.") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem) } catch {
            throw BrokerStartError(message: "cannot read the TLS private key \(privateKeyPath) (\(error)); give an unencrypted PEM key with --tls-key.")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAPath {
            let roots: [NIOSSLCertificate]
            do { roots = try NIOSSLCertificate.fromPEMFile(clientCAPath) } catch {
                throw BrokerStartError(message: "cannot read the client CA \(clientCAPath) (\(error)); give a PEM file with --tls-client-ca.")
            }
            guard !roots.isEmpty else { throw BrokerStartError(message: "\(clientCAPath) holds no PEM certificate; give one with --tls-client-ca.") }
            configuration.trustRoots = .certificates(roots)
            configuration.certificateVerification = .noHostnameVerification
        }
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw BrokerStartError(message: "the TLS certificate \(certificatePath) and key \(privateKeyPath) cannot be used together (\(error)).")
        }
    }
}

/// The subject of an X.509 certificate as an RFC 2253 string ("CN=client,O=Tape"), read from its
/// DER bytes; nil when they are not a certificate. Kafka's SSL principal is "User:" + this.
public enum CertificateSubject {
    /// The Kafka principal ("User:" + subject) of the first certificate in a PEM file; nil when
    /// the file cannot be read or holds no certificate.
    public static func principal(pemFile path: String) -> String? {
        guard let first = try? NIOSSLCertificate.fromPEMFile(path).first, let der = try? first.toDERBytes(),
            let name = distinguishedName(der: der)
        else { return nil }
        return "User:\(name)"
    }

    public static func distinguishedName(der: [UInt8]) -> String? {
        var reader = DERReader(bytes: der[...])
        guard var certificate = reader.read(tag: 0x30), var tbs = certificate.read(tag: 0x30) else { return nil }
        if tbs.peekTag == 0xA0 { _ = tbs.readAny() }  // version
        // serialNumber, signature, issuer, validity, then subject
        for _ in 0..<4 { guard tbs.readAny() != nil else { return nil } }
        guard var name = tbs.read(tag: 0x30) else { return nil }
        var rdns: [String] = []
        while !name.isAtEnd {
            guard var set = name.read(tag: 0x31) else { return nil }
            var parts: [String] = []
            while !set.isAtEnd {
                guard var pair = set.read(tag: 0x30), let oid = pair.read(tag: 0x06), let item = pair.readAny() else { return nil }
                let (valueTag, value) = item
                let text: String
                switch valueTag {
                case 0x0C, 0x13, 0x16, 0x14, 0x1A: text = String(decoding: value.bytes, as: UTF8.self)
                case 0x1E:  // BMPString, UTF-16BE
                    var units: [UInt16] = []
                    var i = value.bytes.startIndex
                    while i + 1 < value.bytes.endIndex {
                        units.append(UInt16(value.bytes[i]) << 8 | UInt16(value.bytes[i + 1]))
                        i += 2
                    }
                    text = String(decoding: units, as: UTF16.self)
                default: text = "#" + value.bytes.map { String($0, radix: 16).leftPadded(2) }.joined()
                }
                parts.append("\(attributeName(oid.bytes))=\(escape(text))")
            }
            rdns.append(parts.joined(separator: "+"))
        }
        return rdns.reversed().joined(separator: ",")
    }

    static func attributeName(_ oid: ArraySlice<UInt8>) -> String {
        let known: [[UInt8]: String] = [
            [0x55, 0x04, 0x03]: "CN", [0x55, 0x04, 0x06]: "C", [0x55, 0x04, 0x07]: "L", [0x55, 0x04, 0x08]: "ST", [0x55, 0x04, 0x09]: "STREET",
            [0x55, 0x04, 0x0A]: "O", [0x55, 0x04, 0x0B]: "OU", [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19]: "DC",
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01]: "UID",
        ]
        if let name = known[Array(oid)] { return name }
        // Dotted form: first byte is 40*a+b, then base-128 groups.
        guard let first = oid.first else { return "OID" }
        var arcs = [String(first / 40), String(first % 40)]
        var value: UInt64 = 0
        for b in oid.dropFirst() {
            guard value < (1 << 50) else { return "OID" }
            value = value << 7 | UInt64(b & 0x7f)
            if b & 0x80 == 0 {
                arcs.append(String(value))
                value = 0
            }
        }
        return arcs.joined(separator: ".")
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for (i, c) in s.enumerated() {
            if ",+\"\\<>;".contains(c) || (i == 0 && (c == " " || c == "#")) { out.append("\\") }
            out.append(c)
        }
        if out.hasSuffix(" ") { out.insert("\\", at: out.index(before: out.endIndex)) }
        return out
    }
}

/// A bounds-checked reader of DER tag-length-value items.
struct DERReader {
    var bytes: ArraySlice<UInt8>
    var isAtEnd: Bool { bytes.isEmpty }
    var peekTag: UInt8? { bytes.first }

    /// The next item, its tag and a reader over its content; nil (and nothing consumed) when malformed.
    mutating func readAny() -> (UInt8, DERReader)? {
        var i = bytes.startIndex
        guard i < bytes.endIndex else { return nil }
        let tag = bytes[i]
        i += 1
        guard i < bytes.endIndex else { return nil }
        var length = Int(bytes[i])
        i += 1
        if length & 0x80 != 0 {
            let count = length & 0x7f
            guard count >= 1, count <= 4, bytes.endIndex - i >= count else { return nil }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[i])
                i += 1
            }
        }
        guard length >= 0, bytes.endIndex - i >= length else { return nil }
        let content = bytes[i..<(i + length)]
        bytes = bytes[(i + length)...]
        return (tag, DERReader(bytes: content))
    }

    mutating func read(tag: UInt8) -> DERReader? {
        guard peekTag == tag, let item = readAny() else { return nil }
        return item.1
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
