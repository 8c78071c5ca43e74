import Foundation
import Logging
import NIOConcurrencyHelpers

/// Opening a `Log`'s directory: leftover files removed, segments loaded from their indexes or
/// scanned and cut at the first partial or corrupt batch.
extension Log {
    func load() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let names = try fm.contentsOfDirectory(atPath: directory)
        // Interrupted compaction or temp files: the originals are authoritative.
        for name in names where name.hasSuffix(".cleaned") || name.hasSuffix(".tmp") || name.hasPrefix(temporaryFilePrefix) {
            logger.warning("removing leftover file", metadata: ["file": "\(name)"])
            unlink((directory as NSString).appendingPathComponent(name))
        }
        // A clean-shutdown marker is consumed now, so a crash from here on leads to a full scan.
        let cleanShutdown = access(cleanShutdownMarker, F_OK) == 0
        if cleanShutdown {
            unlink(cleanShutdownMarker)
            try syncDirectory(directory)
        }
        let bases = names.compactMap { LogSegment.baseOffset(fromFileName: $0) }.sorted()
        let baseSet = Set(bases)
        for name in names {
            for suffix in [".index", ".timeindex"] {
                if let b = LogSegment.baseOffset(fromFileName: name, suffix: suffix), !baseSet.contains(b) {
                    logger.warning("removing orphan index", metadata: ["file": "\(name)"])
                    unlink((directory as NSString).appendingPathComponent(name))
                }
            }
        }
        if bases.isEmpty {
            segments = [
                try LogSegment(
                    directory: directory, baseOffset: 0, indexIntervalBytes: _config.indexIntervalBytes,
                    faults: faults, nowMs: clock(), cache: fileCache)
            ]
            directoryDirty = true
            _logStartOffset = 0
            _logEndOffset = 0
            return
        }
        for (i, base) in bases.enumerated() {
            let segment = try LogSegment(
                directory: directory, baseOffset: base, indexIntervalBytes: _config.indexIntervalBytes,
                faults: faults, nowMs: clock(), cache: fileCache)
            let isActive = i == bases.count - 1
            let trustIndexes = (!isActive || cleanShutdown) && segment.indexesLookConsistent()
            if isActive && !trustIndexes { scannedActiveSegmentOnOpen = true }
            if !trustIndexes {
                let r = try segment.recover(sealed: !isActive)
                if r.truncatedBytes > 0 {
                    logger.warning(
                        "recovery cut a partial or corrupt tail",
                        metadata: [
                            "file": "\(segment.log.path)", "validBytes": "\(r.validBytes)",
                            "truncatedBytes": "\(r.truncatedBytes)", "batches": "\(r.batches)",
                            "reason": "\(r.reason ?? "")",
                        ])
                }
                if r.indexRebuilt {
                    logger.warning(
                        "rebuilt segment indexes",
                        metadata: ["file": "\(segment.log.path)", "batches": "\(r.batches)"])
                }
                if r.truncatedBytes > 0 || r.indexRebuilt { try segment.sync() }
                if !isActive && r.truncatedBytes > 0 {
                    logger.error(
                        "a closed segment was corrupt; records after the cut up to the next segment are lost",
                        metadata: ["file": "\(segment.log.path)", "nextSegmentBaseOffset": "\(bases[i + 1])"])
                }
            } else {
                try segment.loadFromIndexes()
            }
            segments.append(segment)
        }
        _logStartOffset = segments[0].baseOffset
        let active = segments[segments.count - 1]
        _logEndOffset = max(active.baseOffset, active.lastOffset + 1)
        _durableEndOffset = _logEndOffset
        try applyLogStartOffsetCheckpoint()
    }
}
