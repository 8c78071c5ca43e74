import Foundation
import KafkaProtocol
import Logging
import NIOCore

/// Produce: validation, idempotent-producer deduplication, append, and the wait for durability.
extension Broker {
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
                guard acksValid else {
                    partitions.append(fail(.invalidRequiredAcks, "acks must be 0, 1 or -1, got \(r.acks)"))
                    continue
                }
                guard let logs else {
                    partitions.append(fail(topicError, "topic \(t.name) does not exist"))
                    continue
                }
                guard p.index >= 0 && Int(p.index) < logs.count else {
                    partitions.append(fail(.unknownTopicOrPartition, "topic \(t.name) has no partition \(p.index)"))
                    continue
                }
                guard let records = p.records else {
                    partitions.append(fail(.invalidRecord, "null record set"))
                    continue
                }
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
                let settings = appendSettings(t.name)
                var appendTime: Int64 = -1
                for batch in batches {
                    if let refused = checkTransactionalBatch(batch.header, partition: tp) {
                        failure = fail(refused.0, refused.1)
                        break
                    }
                    switch producers.check(batch.header, partition: tp) {
                    case .duplicate(let base):
                        logger.debug("duplicate batch acknowledged without writing", metadata: ["partition": "\(tp)", "baseOffset": "\(base)"])
                        firstOffset = firstOffset ?? base
                    case .reject(let code, let message):
                        failure = fail(code, message)
                    case .append:
                        do {
                            // LogAppendTime is wall-clock time (epoch ms), not the broker's monotonic clock.
                            let now = settings.logAppendTime ? Int64(Date().timeIntervalSince1970 * 1000) : -1
                            let rewritten = try batch.bytes.withUnsafeReadableBytes {
                                try ProducedBatch.prepare(
                                    $0, target: settings.codec, logAppendTime: settings.logAppendTime ? now : nil, inflateLimit: settings.inflateLimit)
                            }
                            if settings.logAppendTime { appendTime = now }
                            let info = try rewritten.map { try log.append(batch: $0) } ?? batch.bytes.withUnsafeReadableBytes { try log.append(batchBytes: $0) }
                            producers.record(batch.header, partition: tp, baseOffset: info.baseOffset, now: clock.nowMs())
                            recordTransactionalBatch(batch.header, partition: tp, log: log, offset: info.baseOffset)
                            firstOffset = firstOffset ?? info.baseOffset
                            toSync[ObjectIdentifier(log)] = log
                            wakeFetchers(tp, appended: batch.bytes.readableBytes)
                            logger.debug(
                                "appended batch",
                                metadata: [
                                    "partition": "\(tp)", "baseOffset": "\(info.baseOffset)", "records": "\(batch.header.recordCount)",
                                    "compression": "\(Self.codecName(batch.header.compression))", "producerId": "\(batch.header.producerId)",
                                ])
                        } catch let e as RecordBatchError {
                            failure = fail(e.errorCode, e.message)
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
                    partitions.append(
                        .init(index: p.index, errorCode: .none, baseOffset: firstOffset ?? -1, logAppendTimeMs: appendTime, logStartOffset: log.logStartOffset))
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
    func seedProducerState(_ tp: TopicPartition, _ log: any PartitionLog) {
        seededPartitions.insert(tp)
        var offset = max(log.logStartOffset, log.logEndOffset &- Self.producerStateScanOffsets)
        var seeded = 0
        while offset < log.logEndOffset {
            var rest = ByteBuffer()
            guard let read = try? log.read(from: offset, maxBytes: 8 << 20, appendingTo: &rest), read.bytes > 0 else { break }
            var next = offset
            while let header = try? RecordBatchHeader.peek(rest), header.totalSize >= RecordBatchHeader.size, header.totalSize <= rest.readableBytes {
                if header.producerId >= 0 && !header.isControl {  // markers carry no sequence
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

    /// What the topic's configs ask of appended batches: the codec to store them in (nil = as the
    /// producer sent them), whether the broker stamps its append time, and how far a compressed
    /// batch may inflate (the larger of the topic's and the broker's max message bytes: beyond it
    /// the batch is refused as corrupt).
    func appendSettings(_ topic: String) -> (codec: CompressionCodec?, logAppendTime: Bool, inflateLimit: Int) {
        let configs = topics.configs(of: topic) ?? [:]
        let codec = configs["compression.type"].flatMap { LogConfig.CompressionType(rawValue: $0.lowercased()) }?.codec
        let logAppendTime = configs["message.timestamp.type"] == LogConfig.TimestampType.logAppendTime.rawValue
        return (codec, logAppendTime, max(maxMessageBytes(topic), configuration.maxMessageBytes))
    }

    /// The largest batch the topic accepts: its `max.message.bytes`, else the broker's.
    func maxMessageBytes(_ topic: String) -> Int {
        topics.configs(of: topic)?["max.message.bytes"].flatMap { Int($0) } ?? configuration.maxMessageBytes
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
}
