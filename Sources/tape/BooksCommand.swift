import ArgumentParser
import Foundation
import KafkaClient
import MarketData

/// `tape books`: a market's order book at a point in time, replayed from `tape.books`.
struct BooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "books",
        abstract: "Print a market's order book at a point in time, replayed from tape.books (from the nearest snapshot before it).",
        discussion: """
            Reads --topic from --lookback seconds before --at (tape ingest publishes every book whole once per
            --book-snapshot-interval, 300 s by default, so the default look-back holds a snapshot), applies
            the market's records in order from its first snapshot up to --at, and prints the best --depth levels.
            """
    )

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Market as exchange:SYMBOL, e.g. binance:BTC-USDT.") var symbol: String
    @Option(help: "Point in time: ISO 8601 (2022-08-21T23:12:00Z) or ms since the epoch (default: now, the end of the topic).")
    var at: String?
    @Option(help: "Levels per side to print.") var depth: Int = 10
    @Option(help: "Seconds before --at to start reading (must reach back to a snapshot of the market).") var lookback: Double = 660
    @Option(help: "Output: table or json (one tape.books snapshot record).") var format: Format = .table
    @Option(help: "Order book topic.") var topic: String = "tape.books"

    enum Format: String, ExpressibleByArgument { case table, json }

    func validate() throws {
        guard let market = symbol.split(separator: ":", maxSplits: 1).last, symbol.contains(":"), !market.isEmpty else {
            throw ValidationError("--symbol must be exchange:SYMBOL, e.g. binance:BTC-USDT.")
        }
        if let at {
            // Record times are 1970..9999 (Trade.validTimes); anything else would overflow the look-back.
            guard Trade.validTimes.contains(try CandlesCommand.parseTime(at, flag: "at")) else {
                throw ValidationError("--at must be a time from 1970 to 9999 (ms since the epoch or ISO 8601).")
            }
        }
        guard depth > 0, depth <= 100_000 else { throw ValidationError("--depth must be between 1 and 100000.") }
        guard lookback > 0, lookback <= 86_400 * 365 else { throw ValidationError("--lookback must be between 0 and 31536000 seconds.") }
    }

    /// The record key of `--symbol`: the exchange lowercased, the symbol normalized.
    var key: String {
        let parts = symbol.split(separator: ":", maxSplits: 1)
        return parts[0].lowercased() + ":" + Symbol(normalizing: String(parts[1])).rawValue
    }

    func run() async throws {
        let until = try at.map { try CandlesCommand.parseTime($0, flag: "at") }
        let startTime = (until ?? Int64(Date().timeIntervalSince1970 * 1000)) - Int64(lookback * 1000)
        var config = KafkaConsumerConfiguration(kafka: try kafka.configuration())
        config.autoOffsetReset = .earliest
        let consumer = try KafkaConsumer(configuration: config, logger: kafka.logger("tape.books"))
        defer { consumer.close() }
        let md = try await consumer.metadata(timeout: .seconds(5))
        guard let topicMD = md.topics.first(where: { $0.name == topic }), topicMD.error == .noError, !topicMD.partitions.isEmpty else {
            throw ValidationError("Topic '\(topic)' does not exist at \(kafka.bootstrapServers): run tape ingest --channels book (or tape up) first.")
        }
        let partitions = topicMD.partitions.map(\.id)
        // Where each partition ends now: the replay stops there (or at --at).
        var ends: [Int32: Int64] = [:]
        for p in partitions { ends[p] = try await consumer.watermarks(topic: topic, partition: p).high }
        let starts = try await consumer.offsets(forTimestamp: startTime, partitions: partitions.map { (topic, $0) })
        var remaining: Set<Int32> = []
        var assignment: [TopicPartitionOffset] = []
        for start in starts {
            let end = ends[start.partition] ?? 0
            guard start.offset >= 0, start.offset < end else { continue }
            assignment.append(start)
            remaining.insert(start.partition)
        }
        var replay = BookReplay(key: key, until: until)
        if !assignment.isEmpty {
            try consumer.assign(assignment)
            let box = UncheckedBox(consumer)
            for try await batch in box.value.batches {
                for message in batch where remaining.contains(message.partition) {
                    if !replay.consume(key: message.key, value: message.value) || message.offset + 1 >= (ends[message.partition] ?? 0) {
                        remaining.remove(message.partition)
                    }
                }
                if remaining.isEmpty { break }
            }
        }
        guard let book = replay.book else {
            let when = until.map { "before \($0) ms" } ?? "in the topic's recent past"
            var message = "No snapshot of \(key) in \(topic) within \(Int(lookback)) s \(when)"
            if replay.updatesBeforeSnapshot > 0 { message += " (\(replay.updatesBeforeSnapshot) updates seen, but no snapshot to apply them to)" }
            throw ValidationError(message + ": pass a larger --lookback, or check --symbol against the keys tape ingest writes.")
        }
        let parts = key.split(separator: ":", maxSplits: 1)
        let event = BookEvent(
            exchange: Exchange(String(parts[0])), symbol: Symbol(normalizing: String(parts[1])), nativeSymbol: String(parts[1]),
            kind: .snapshot, sequence: replay.sequence, bids: book.bids(top: depth), asks: book.asks(top: depth),
            time: replay.time ?? 0, receivedAt: (replay.time ?? 0) * 1000)
        let out = OutputBuffer()
        defer { out.flush() }
        switch format {
        case .json:
            out.write(event.jsonBytes)
            out.write("\n")
        case .table:
            let iso = ISO8601DateFormatter()
            iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let time = iso.string(from: Date(timeIntervalSince1970: Double(replay.time ?? 0) / 1000))
            out.write(
                "\(key) as of \(time) (sequence \(replay.sequence ?? "-"); \(replay.snapshotsApplied) snapshot(s) + \(replay.updatesApplied) update(s) applied; \(book.depth.bids) bids, \(book.depth.asks) asks in all)\n"
            )
            if let spread = book.spread, let mid = book.mid { out.write("spread \(spread)  mid \(mid)\n") }
            let bids = book.bids(top: depth)
            let asks = book.asks(top: depth)
            let rows = max(bids.count, asks.count)
            let width = max(12, (bids + asks).map { max($0.price.count, $0.quantity.count) }.max() ?? 12)
            func pad(_ s: String) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
            out.write("\(pad("bid qty")) \(pad("bid")) | \(pad("ask")) \(pad("ask qty"))\n")
            for i in 0..<rows {
                let b = i < bids.count ? bids[i] : nil
                let a = i < asks.count ? asks[i] : nil
                out.write("\(pad(b?.quantity ?? "")) \(pad(b?.price ?? "")) | \(pad(a?.price ?? "")) \(pad(a?.quantity ?? ""))\n")
            }
        }
        if replay.crossedAfterRecord > 0 {
            printError("warning: the book was crossed after \(replay.crossedAfterRecord) record(s) of the replay")
        }
    }
}
