import ArgumentParser
import Foundation
import KafkaClient

struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Produce messages from stdin, one message a line.",
        discussion:
            "Lines are split on \\n (a trailing \\r is kept: the bytes are sent as read). Waits for every acknowledgement and exits non-zero if any message was not delivered."
    )

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Topic to produce to.") var topic: String
    @Option(help: "Key for every message.") var key: String?
    @Option(name: .customLong("key-delimiter"), help: "Split each line at the first occurrence of this string into key and value.") var keyDelimiter: String?
    @Option(help: "Partition (default: chosen by the partitioner from the key).") var partition: Int32?
    @Option(help: "Compression: none, gzip, snappy, lz4, zstd.") var compression: String = "none"
    @Option(help: "acks: all (-1), 0 or 1.") var acks: String = "all"
    @Option(name: .customLong("header"), help: ArgumentHelp("Header key=value added to every message (repeatable).", valueName: "key=value"))
    var headers: [String] = []
    @Flag(name: .customLong("no-idempotence"), help: "Disable the idempotent producer.") var noIdempotence = false

    func validate() throws {
        if key != nil && keyDelimiter != nil { throw ValidationError("Use either --key or --key-delimiter, not both.") }
        if keyDelimiter == "" { throw ValidationError("--key-delimiter must not be empty.") }
        guard KafkaCompression(rawValue: compression) != nil else {
            throw ValidationError("Unknown compression '\(compression)'; use one of none, gzip, snappy, lz4, zstd.")
        }
        guard ["all", "-1", "0", "1"].contains(acks) else { throw ValidationError("--acks must be all, -1, 0 or 1; got \(acks).") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more; got \(partition).") }
        _ = try parsedHeaders()
    }

    /// `--header key=value` in command-line order (Kafka allows duplicate keys).
    func parsedHeaders() throws -> [KafkaHeader] {
        try headers.map { item -> KafkaHeader in
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ValidationError("--header '\(item)' is not of the form key=value.")
            }
            return KafkaHeader(key: String(item[..<eq]), value: Array(item[item.index(after: eq)...].utf8))
        }
    }

    func run() async throws {
        var config = KafkaProducerConfiguration(kafka: try kafka.configuration())
        config.compression = KafkaCompression(rawValue: compression) ?? .none
        config.acks = parseAcks(acks)
        config.idempotence = !noIdempotence && config.acks == -1
        // Headers keep the order given on the command line (duplicate keys are allowed in Kafka).
        let orderedHeaders = try parsedHeaders()
        let producer = try KafkaProducer(configuration: config, logger: kafka.logger("tape.produce"))
        let metadata = try await producer.metadata(timeout: .seconds(5))
        // A partition the topic does not have is refused before reading stdin (an existing topic only:
        // a new one is created with the cluster's default partition count on the first record).
        if let partition, let existing = metadata.topics.first(where: { $0.name == topic && $0.error == .noError }), !existing.partitions.isEmpty,
            !existing.partitions.contains(where: { $0.id == partition })
        {
            throw TapeFailure("\(topic) has \(partitionsText(existing.partitions.map(\.id))); --partition \(partition) does not exist.")
        }

        let reports = Task {
            var delivered = 0
            var failed: [KafkaError] = []
            for await batch in producer.deliveryReports {
                for report in batch {
                    if let error = report.error { failed.append(error) } else { delivered += 1 }
                }
            }
            return (delivered, failed)
        }
        let delimiter = keyDelimiter.map { Array($0.utf8) }
        let fixedKey = key.map { Array($0.utf8) }
        var sent = 0
        for try await line in StandardInputLines() {
            var messageKey = fixedKey
            var value = line
            if let delimiter, let split = firstRange(of: delimiter, in: line) {
                messageKey = Array(line[..<split.lowerBound])
                value = Array(line[split.upperBound...])
            }
            try await producer.enqueue(ProducerMessage(topic: topic, partition: partition, key: messageKey, value: value, headers: orderedHeaders))
            sent += 1
        }
        try await producer.close(timeout: .seconds(60))
        let (delivered, failed) = await reports.value
        if !failed.isEmpty {
            throw TapeFailure("\(failed.count) of \(sent) message(s) were not delivered to \(topic): \(failed[0].message)")
        }
        printError("Produced \(delivered) message(s) to \(topic).")
    }
}

func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && haystack[i..<i + needle.count].elementsEqual(needle) { return i..<i + needle.count }
        i += 1
    }
    return nil
}

/// stdin split into lines (without the `\n`), read in large blocks off the cooperative pool.
struct StandardInputLines: AsyncSequence {
    typealias Element = [UInt8]
    func makeAsyncIterator() -> Iterator { Iterator() }

    struct Iterator: AsyncIteratorProtocol {
        var buffer: [UInt8] = []
        var start = 0
        var eof = false

        mutating func next() async throws -> [UInt8]? {
            while true {
                if let nl = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(buffer[start..<nl])
                    start = nl + 1
                    return line
                }
                if eof {
                    if start < buffer.count {
                        let line = Array(buffer[start...])
                        start = buffer.count
                        return line
                    }
                    return nil
                }
                buffer.removeFirst(start)
                start = 0
                let chunk = try await Self.read()
                if chunk.isEmpty { eof = true } else { buffer += chunk }
            }
        }

        static func read() async throws -> [UInt8] {
            try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    var chunk = [UInt8](repeating: 0, count: 1 << 16)
                    let n = chunk.withUnsafeMutableBytes { Foundation.read(0, $0.baseAddress, $0.count) }
                    if n < 0 {
                        continuation.resume(throwing: TapeFailure("Cannot read stdin: \(String(cString: strerror(errno)))."))
                    } else {
                        continuation.resume(returning: Array(chunk[0..<n]))
                    }
                }
            }
        }
    }
}
