import ArgumentParser
import Foundation
import KafkaClient

struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract:
            "Consume messages to stdout (text: the value bytes and a newline; json: one object a line with key, partition, offset, timestamp and headers)."
    )

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Topic to consume.") var topic: String
    @Option(help: "Consumer group: join it, start from its committed offsets and commit what is printed. Without it, all partitions are read with no group.")
    var group: String?
    @Flag(name: .customLong("from-beginning"), help: "Start at the earliest offset (with --group: where the group has no committed offset).")
    var fromBeginning = false
    @Option(help: "Exit after this many messages.") var count: Int?
    @Option(help: "Output format: text or json.") var format: OutputFormat = .text
    @Option(help: "Only this partition (no group).") var partition: Int32?
    @Option(help: "Start offset for --partition (no group).") var offset: Int64?
    @Flag(name: .customLong("exit-at-end"), help: "Exit when the end of every partition (as it was at start) is reached.")
    var exitAtEnd = false
    @Flag(name: .customLong("print-key"), help: "Text format: print key, a tab, then the value.")
    var printKey = false

    enum OutputFormat: String, ExpressibleByArgument { case text, json }

    func validate() throws {
        if group != nil && (partition != nil || offset != nil) { throw ValidationError("--partition/--offset cannot be combined with --group.") }
        if offset != nil && partition == nil { throw ValidationError("--offset needs --partition.") }
        if let count, count <= 0 { throw ValidationError("--count must be positive; got \(count).") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more; got \(partition).") }
        if let offset, offset < 0 { throw ValidationError("--offset must be 0 or more; got \(offset).") }
    }

    func run() async throws {
        var config = KafkaConsumerConfiguration(kafka: try kafka.configuration())
        if let group { config.groupID = group }
        config.autoOffsetReset = fromBeginning ? .earliest : .latest
        let consumer = try KafkaConsumer(configuration: config, logger: kafka.logger("tape.consume"))
        let md = try await consumer.metadata(timeout: .seconds(5))
        guard let topicMD = md.topics.first(where: { $0.name == topic }), topicMD.error == .noError, !topicMD.partitions.isEmpty else {
            throw TapeFailure("Topic '\(topic)' does not exist at \(kafka.bootstrapServers). `tape topics list` shows the topics there are.")
        }
        if let partition {
            let ids = topicMD.partitions.map(\.id)
            guard ids.contains(partition) else {
                throw TapeFailure("\(topic) has \(partitionsText(ids)); --partition \(partition) does not exist.")
            }
            if let offset {
                let marks = try await consumer.watermarks(topic: topic, partition: partition)
                guard offset <= marks.high else {
                    throw TapeFailure(
                        "--offset \(offset) is beyond the end of \(topic) partition \(partition) (high watermark \(marks.high)); give an offset from \(marks.low) to \(marks.high).")
                }
                guard offset >= marks.low else {
                    throw TapeFailure(
                        "--offset \(offset) is before the start of \(topic) partition \(partition) (records before \(marks.low) were deleted); give an offset from \(marks.low) to \(marks.high).")
                }
            }
        }
        var ends: [Int32: Int64] = [:]
        let partitions = partition.map { [$0] } ?? topicMD.partitions.map(\.id)
        if exitAtEnd {
            for p in partitions { ends[p] = try await consumer.watermarks(topic: topic, partition: p).high }
        }
        if group != nil {
            try consumer.subscribe([topic])
        } else {
            let start = offset ?? (fromBeginning ? KafkaOffset.beginning : KafkaOffset.end)
            try consumer.assign(partitions.map { .init(topic: topic, partition: $0, offset: start) })
        }
        let output = OutputBuffer()
        let format = self.format
        let printKey = self.printKey
        let limit = count
        let useGroup = group != nil
        let exitAtEnd = self.exitAtEnd
        let topicName = topic
        let box = UncheckedBox((consumer, output, ends))
        try await runUntilSignalled {
            let (consumer, output, ends) = box.value
            var remainingEnds = ends.filter { $0.value > 0 }
            if exitAtEnd && remainingEnds.isEmpty { return }
            var printed = 0
            defer { output.flush() }
            batches: for try await batch in consumer.batches {
                var last: [Int32: Int64] = [:]
                for message in batch {
                    Self.write(message, format: format, printKey: printKey, to: output)
                    printed += 1
                    last[message.partition] = message.offset
                    if exitAtEnd, let end = remainingEnds[message.partition], message.offset + 1 >= end {
                        remainingEnds[message.partition] = nil
                    }
                    if let limit, printed >= limit { break }
                }
                output.flush()
                if useGroup && !last.isEmpty {
                    try await consumer.commit(last.map { .init(topic: topicName, partition: $0.key, offset: $0.value + 1) })
                }
                if let limit, printed >= limit { break batches }
                if exitAtEnd && remainingEnds.isEmpty { break batches }
            }
        }
        consumer.close()
    }

    static func write(_ m: KafkaMessage, format: OutputFormat, printKey: Bool, to out: OutputBuffer) {
        switch format {
        case .text:
            if printKey {
                out.write(m.key ?? [])
                out.write([UInt8(ascii: "\t")])
            }
            out.write(m.value ?? [])
            out.write([UInt8(ascii: "\n")])
        case .json:
            var s =
                "{\"topic\":\(jsonString(m.topic)),\"partition\":\(m.partition),\"offset\":\(m.offset),\"timestamp\":\(m.timestamp),\"timestampType\":\"\(m.timestampType.rawValue)\""
            s += ",\"key\":" + bytesJSON(m.key, name: "key")
            s += ",\"value\":" + bytesJSON(m.value, name: "value")
            s += ",\"headers\":["
            s += m.headers.map { "{\"key\":\(jsonString($0.key)),\"value\":\(bytesJSON($0.value, name: "value"))}" }.joined(separator: ",")
            s += "]}\n"
            out.write(s)
        }
    }

    /// A JSON string when the bytes are UTF-8, else `{"base64":"..."}`; null for null.
    static func bytesJSON(_ bytes: [UInt8]?, name: String) -> String {
        guard let bytes else { return "null" }
        if let s = String(validating: bytes, as: UTF8.self) { return jsonString(s) }
        return "{\"base64\":\"\(Data(bytes).base64EncodedString())\"}"
    }
}

/// Carries non-Sendable values into a task we know runs alone.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
