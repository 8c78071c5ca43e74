import Foundation
import NIOCore

/// The contract between the broker's request handling (Server/) and its storage (Storage/).
///
/// One `PartitionLog` is one topic-partition's log. Implementations are thread-safe.
/// Batches are Kafka RecordBatch v2 bytes exactly as a producer sent them (compressed batches
/// are not unpacked); the log only rewrites the 8-byte `baseOffset` field (which the CRC does
/// not cover) to the offset it assigns.
public protocol PartitionLog: AnyObject, Sendable {
    var topic: String { get }
    var partition: Int32 { get }
    /// First offset still in the log (grows with retention / deletion).
    var logStartOffset: Int64 { get }
    /// The offset the next appended record gets (== high watermark on one node).
    var logEndOffset: Int64 { get }

    /// Appends one validated RecordBatch v2; assigns offsets `logEndOffset ..< logEndOffset + recordCount`.
    func append(batch: [UInt8]) throws -> LogAppendInfo

    /// Same as `append(batch:)` for bytes that are not in an array (a slice of a request); logs
    /// that can write them without a copy implement it.
    func append(batchBytes: UnsafeRawBufferPointer) throws -> LogAppendInfo

    /// Whole batches starting with the one that contains `offset`, up to about `maxBytes`
    /// (at least one whole batch, even if larger, as Kafka does). Empty at the log end.
    /// Throws `StorageError.offsetOutOfRange` outside `logStartOffset ... logEndOffset`.
    func read(from offset: Int64, maxBytes: Int) throws -> LogReadResult

    /// Like `read(from:maxBytes:)`, but appends the bytes to `buffer` (the fetch path: logs on
    /// disk read them straight into it, with no array in between).
    func read(from offset: Int64, maxBytes: Int, appendingTo buffer: inout ByteBuffer) throws -> LogBufferRead

    /// The first offset whose record timestamp is >= `timestamp`, or nil if none.
    func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)?

    /// Makes everything appended so far durable (fsync of segment and indexes).
    func sync() throws

    /// DeleteRecords: makes `offset` the log start offset (-1 = the log end offset) durably and
    /// returns the new start offset; an offset at or below the current start changes nothing.
    /// Throws `StorageError.offsetOutOfRange` past the log end or for a negative offset other than -1.
    func deleteRecords(before offset: Int64) throws -> Int64
}

extension PartitionLog {
    public func deleteRecords(before offset: Int64) throws -> Int64 {
        throw StorageError(.io, "\(topic)-\(partition): this log cannot delete records")
    }

    public func append(batchBytes: UnsafeRawBufferPointer) throws -> LogAppendInfo {
        try append(batch: Array(batchBytes))
    }
}

/// Logs that can answer ListOffsets -3 (MAX_TIMESTAMP) and expose their storage config.
public protocol MaxTimestampLookup {
    /// The offset and timestamp of the record with the largest timestamp, or nil if none.
    func offsetOfMaxTimestamp() throws -> (offset: Int64, timestamp: Int64)?
}

extension Log: MaxTimestampLookup {}

/// What an append did.
public struct LogAppendInfo: Sendable, Equatable {
    public var baseOffset: Int64
    public var lastOffset: Int64
    public var maxTimestamp: Int64
    public var logStartOffset: Int64
    public init(baseOffset: Int64, lastOffset: Int64, maxTimestamp: Int64, logStartOffset: Int64) {
        self.baseOffset = baseOffset
        self.lastOffset = lastOffset
        self.maxTimestamp = maxTimestamp
        self.logStartOffset = logStartOffset
    }
}

/// What a read into a caller's buffer found: the bytes it appended and the log's offsets.
public struct LogBufferRead: Sendable, Equatable {
    public var bytes: Int
    public var highWatermark: Int64
    public var logStartOffset: Int64
    public init(bytes: Int, highWatermark: Int64, logStartOffset: Int64) {
        self.bytes = bytes
        self.highWatermark = highWatermark
        self.logStartOffset = logStartOffset
    }
}

extension PartitionLog {
    /// For logs that hold their batches in memory: `read(from:maxBytes:)`, copied.
    public func read(from offset: Int64, maxBytes: Int, appendingTo buffer: inout ByteBuffer) throws -> LogBufferRead {
        let read = try read(from: offset, maxBytes: maxBytes)
        buffer.writeBytes(read.records)
        return LogBufferRead(bytes: read.records.count, highWatermark: read.highWatermark, logStartOffset: read.logStartOffset)
    }
}

/// What a read returned.
public struct LogReadResult: Sendable, Equatable {
    /// Concatenated whole RecordBatch v2 byte sequences.
    public var records: [UInt8]
    public var highWatermark: Int64
    public var logStartOffset: Int64
    public init(records: [UInt8], highWatermark: Int64, logStartOffset: Int64) {
        self.records = records
        self.highWatermark = highWatermark
        self.logStartOffset = logStartOffset
    }
}

/// Storage failures, mapped to Kafka error codes by the server.
public struct StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let raw: String
        public static let offsetOutOfRange = Code(raw: "offsetOutOfRange")
        public static let corruptBatch = Code(raw: "corruptBatch")
        public static let diskFull = Code(raw: "diskFull")
        public static let io = Code(raw: "io")
        public static let messageTooLarge = Code(raw: "messageTooLarge")
        /// Bytes on disk that cannot be a stored batch (found while reading, not at recovery).
        public static let corruptSegment = Code(raw: "corruptSegment")
        /// The log's offsets would pass Int64.max.
        public static let offsetOverflow = Code(raw: "offsetOverflow")
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
    public static func offsetOutOfRange(_ message: String) -> StorageError { .init(.offsetOutOfRange, message) }
}
