import Foundation

/// One entry of a segment index file: a fixed number of big-endian bytes.
protocol SegmentIndexEntry: Equatable {
    /// Bytes per entry in the file.
    static var size: Int { get }
    /// Decodes the entry at `offset` (`size` bytes are there).
    init(bigEndian bytes: [UInt8], at offset: Int)
    func appendBigEndian(to bytes: inout [UInt8])
    /// Whether `self` may come right after `previous` in a well-formed file.
    func mayFollow(_ previous: Self) -> Bool
}

/// A segment's index file, kept in memory and appended to: a sequence of fixed-size entries
/// that increase (as `E.mayFollow` says). The offset index and the time index are this type
/// over their entry (`OffsetIndex`, `TimeIndex`).
final class SegmentIndex<E: SegmentIndexEntry> {
    typealias Entry = E
    static var entrySize: Int { Entry.size }
    let file: DataFile
    private(set) var entries: [Entry] = []
    /// Whether the file parsed as a well-formed sequence of entries (false: `entries` is empty).
    private(set) var wellFormed: Bool

    init(path: String, faults: StorageFaults?, cache: OpenFileCache? = nil) throws {
        file = try DataFile(path: path, faults: faults, cache: cache)
        entries = Self.parse(try file.read(at: 0, count: Int(file.size))) ?? []
        wellFormed = entries.count * Self.entrySize == Int(file.size)
    }

    /// The entries of a file's bytes, or nil if they are not a whole number of increasing entries.
    static func parse(_ bytes: [UInt8]) -> [Entry]? {
        guard bytes.count % entrySize == 0 else { return nil }
        var out: [Entry] = []
        out.reserveCapacity(bytes.count / entrySize)
        var i = 0
        while i < bytes.count {
            let e = Entry(bigEndian: bytes, at: i)
            if let last = out.last, !e.mayFollow(last) { return nil }
            out.append(e)
            i += entrySize
        }
        return out
    }

    static func encode(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.count * entrySize)
        for e in entries { e.appendBigEndian(to: &out) }
        return out
    }

    /// Appends `e` to the file and to `entries` (the caller keeps the order).
    func append(_ e: Entry) throws {
        try file.append(Self.encode([e]))
        entries.append(e)
    }

    /// The last entry for which `isBefore` holds, given that it holds for a prefix of the entries
    /// (binary search).
    func last(where isBefore: (Entry) -> Bool) -> Entry? {
        var lo = 0
        var hi = entries.count - 1
        var best: Entry?
        while lo <= hi {
            let mid = (lo + hi) / 2
            if isBefore(entries[mid]) {
                best = entries[mid]
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        return best
    }

    /// Replaces the file's content with `newEntries`.
    func rewrite(_ newEntries: [Entry]) throws {
        try file.truncate(to: 0)
        try file.append(Self.encode(newEntries))
        entries = newEntries
        wellFormed = true
    }

    /// Drops the last entries back to `count` (undo after a failed append; cannot fail).
    func discard(toCount count: Int) {
        guard count < entries.count else { return }
        file.rollBack(to: Int64(count * Self.entrySize))
        entries.removeLast(entries.count - count)
    }
}

/// A segment's sparse offset index: relative offset → byte position of a batch in the `.log` file.
///
/// File format (Kafka's `.index`): 8-byte entries, big-endian `relativeOffset: UInt32` (the
/// batch's last offset minus the segment's base offset) and `position: UInt32`. Entries are
/// strictly increasing in both fields.
typealias OffsetIndex = SegmentIndex<OffsetIndexEntry>

struct OffsetIndexEntry: SegmentIndexEntry {
    var relativeOffset: UInt32
    var position: UInt32

    static var size: Int { 8 }

    init(relativeOffset: UInt32, position: UInt32) {
        self.relativeOffset = relativeOffset
        self.position = position
    }

    init(bigEndian bytes: [UInt8], at offset: Int) {
        self.init(relativeOffset: BigEndian.u32(bytes, offset), position: BigEndian.u32(bytes, offset + 4))
    }

    func appendBigEndian(to bytes: inout [UInt8]) {
        BigEndian.append(relativeOffset, to: &bytes)
        BigEndian.append(position, to: &bytes)
    }

    func mayFollow(_ previous: Self) -> Bool { relativeOffset > previous.relativeOffset && position > previous.position }
}

extension SegmentIndex where E == OffsetIndexEntry {
    /// The entry with the largest relative offset <= `relativeOffset`.
    func floor(_ relativeOffset: UInt32) -> Entry? { last { $0.relativeOffset <= relativeOffset } }
}

/// A segment's sparse time index: timestamp → relative offset.
///
/// File format (Kafka's `.timeindex`): 12-byte entries, big-endian `timestamp: Int64` (the largest
/// batch max-timestamp seen so far in the segment) and `relativeOffset: UInt32` (last offset of the
/// batch that had it). Timestamps strictly increase; the last entry holds the segment's max timestamp
/// once the segment is closed.
typealias TimeIndex = SegmentIndex<TimeIndexEntry>

struct TimeIndexEntry: SegmentIndexEntry {
    var timestamp: Int64
    var relativeOffset: UInt32

    static var size: Int { 12 }

    init(timestamp: Int64, relativeOffset: UInt32) {
        self.timestamp = timestamp
        self.relativeOffset = relativeOffset
    }

    init(bigEndian bytes: [UInt8], at offset: Int) {
        self.init(timestamp: Int64(bitPattern: BigEndian.u64(bytes, offset)), relativeOffset: BigEndian.u32(bytes, offset + 8))
    }

    func appendBigEndian(to bytes: inout [UInt8]) {
        BigEndian.append(UInt64(bitPattern: timestamp), to: &bytes)
        BigEndian.append(relativeOffset, to: &bytes)
    }

    func mayFollow(_ previous: Self) -> Bool { timestamp > previous.timestamp && relativeOffset >= previous.relativeOffset }
}

extension SegmentIndex where E == TimeIndexEntry {
    /// Appends if `e.timestamp` is larger than the last entry's.
    func maybeAppend(_ e: Entry) throws {
        if let last = entries.last, e.timestamp <= last.timestamp { return }
        try append(e)
    }

    /// The last entry with timestamp < `timestamp`.
    func lastBefore(_ timestamp: Int64) -> Entry? { last { $0.timestamp < timestamp } }
}
