import Foundation
import Logging
import NIOConcurrencyHelpers

/// DeleteRecords: moving the log start offset forward on request, durably.
///
/// The new start offset is written to `<partition dir>/log-start-offset` (temp file, fsync, rename,
/// fsync directory) before it takes effect — the commit point; then the whole segments below it are
/// deleted. Opening the log reads the file back (the start offset is the larger of it and the first
/// segment's base offset, at most the log end) and deletes segments left below it by a crash.
extension Log {
    /// File name of the log-start-offset checkpoint inside the partition directory.
    static let logStartOffsetFileName = "log-start-offset"

    var logStartOffsetFile: String { (directory as NSString).appendingPathComponent(Self.logStartOffsetFileName) }

    /// Makes `offset` the log start offset (-1: the log end offset, i.e. the high watermark) and
    /// returns the new start offset. An offset at or below the current start changes nothing.
    /// Throws `.offsetOutOfRange` for an offset past the log end or negative other than -1.
    @discardableResult
    public func deleteRecords(before offset: Int64) throws -> Int64 {
        try maintenanceLock.withLock {
            try lock.withLock {
                guard !closed else { throw StorageError(.closed, "log \(topic)-\(partition) is closed") }
                let target = offset == -1 ? _logEndOffset : offset
                guard target >= 0, target <= _logEndOffset else {
                    throw StorageError.offsetOutOfRange(
                        "cannot delete records before offset \(offset) of \(topic)-\(partition): it is outside \(_logStartOffset)...\(_logEndOffset)")
                }
                guard target > _logStartOffset else { return _logStartOffset }
                try writeFileDurably(Array("\(target)\n".utf8), to: logStartOffsetFile)
                _logStartOffset = target
                let deleted = deleteSegmentsBelowStartLocked()
                if deleted > 0 { try syncDirectory(directory) }
                logger.info("deleted records", metadata: ["logStartOffset": "\(target)", "segmentsDeleted": "\(deleted)"])
                return target
            }
        }
    }

    /// Deletes closed segments whose records are all below `_logStartOffset` (the next segment
    /// starts at or below it). Never the active segment. Caller holds `lock`.
    func deleteSegmentsBelowStartLocked() -> Int {
        var deleted = 0
        while segments.count > 1, segments[1].baseOffset <= _logStartOffset {
            let s = segments.removeFirst()
            s.delete()
            deleted += 1
        }
        return deleted
    }

    /// At open: applies the checkpointed start offset (if any) to the loaded segments.
    func applyLogStartOffsetCheckpoint() throws {
        guard let bytes = FileManager.default.contents(atPath: logStartOffsetFile) else { return }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let stored = Int64(text), stored >= 0 else {
            logger.warning("ignoring an unreadable log-start-offset file", metadata: ["file": "\(logStartOffsetFile)"])
            return
        }
        // Recovery may have cut the tail below the checkpoint; the start never passes the end.
        let start = min(max(_logStartOffset, stored), _logEndOffset)
        guard start > _logStartOffset else { return }
        _logStartOffset = start
        if deleteSegmentsBelowStartLocked() > 0 { try syncDirectory(directory) }
    }
}
