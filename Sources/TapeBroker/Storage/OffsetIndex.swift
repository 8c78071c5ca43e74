import Foundation

/// A segment's sparse offset index: relative offset → byte position of a batch in the `.log` file.
///
/// File format (Kafka's `.index`): 8-byte entries, big-endian `relativeOffset: UInt32` (the
/// batch's last offset minus the segment's base offset) and `position: UInt32`. Entries are
/// strictly increasing in both fields. Kept in memory and appended to the file.
final class OffsetIndex {
    struct Entry: Equatable {
        var relativeOffset: UInt32
        var position: UInt32
    }
    static let entrySize = 8
    let file: DataFile
    private(set) var entries: [Entry] = []

    /// Opens the index; `valid` is false if the file is not a well-formed sequence of entries.
    init(path: String, faults: StorageFaults?, cache: OpenFileCache? = nil) throws {
        file = try DataFile(path: path, faults: faults, cache: cache)
        entries = Self.parse(try file.read(at: 0, count: Int(file.size))) ?? []
        wellFormed = file.size % Int64(Self.entrySize) == 0 && entries.count * Self.entrySize == Int(file.size)
    }

    /// Whether the file parsed as strictly increasing entries.
    private(set) var wellFormed: Bool

    static func parse(_ bytes: [UInt8]) -> [Entry]? {
        guard bytes.count % entrySize == 0 else { return nil }
        var out: [Entry] = []
        out.reserveCapacity(bytes.count / entrySize)
        var i = 0
        while i < bytes.count {
            let e = Entry(relativeOffset: BigEndian.u32(bytes, i), position: BigEndian.u32(bytes, i + 4))
            if let last = out.last, e.relativeOffset <= last.relativeOffset || e.position <= last.position {
                return nil
            }
            out.append(e)
            i += entrySize
        }
        return out
    }

    static func encode(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.count * entrySize)
        for e in entries {
            BigEndian.append(e.relativeOffset, to: &out)
            BigEndian.append(e.position, to: &out)
        }
        return out
    }

    func append(_ e: Entry) throws {
        var bytes: [UInt8] = []
        BigEndian.append(e.relativeOffset, to: &bytes)
        BigEndian.append(e.position, to: &bytes)
        try file.append(bytes)
        entries.append(e)
    }

    /// The entry with the largest relative offset <= `relativeOffset`.
    func floor(_ relativeOffset: UInt32) -> Entry? {
        var lo = 0
        var hi = entries.count - 1
        var best: Entry?
        while lo <= hi {
            let mid = (lo + hi) / 2
            if entries[mid].relativeOffset <= relativeOffset {
                best = entries[mid]
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        return best
    }

    /// Replaces the file's content with `entries`.
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

/// A segment's sparse time index: timestamp → relative offset.
///
/// File format (Kafka's `.timeindex`): 12-byte entries, big-endian `timestamp: Int64` (the largest
/// batch max-timestamp seen so far in the segment) and `relativeOffset: UInt32` (last offset of the
/// batch that had it). Timestamps strictly increase; the last entry holds the segment's max timestamp
/// once the segment is closed.
final class TimeIndex {
    struct Entry: Equatable {
        var timestamp: Int64
        var relativeOffset: UInt32
    }
    static let entrySize = 12
    let file: DataFile
    private(set) var entries: [Entry] = []
    private(set) var wellFormed: Bool

    init(path: String, faults: StorageFaults?, cache: OpenFileCache? = nil) throws {
        file = try DataFile(path: path, faults: faults, cache: cache)
        entries = Self.parse(try file.read(at: 0, count: Int(file.size))) ?? []
        wellFormed = entries.count * Self.entrySize == Int(file.size)
    }

    static func parse(_ bytes: [UInt8]) -> [Entry]? {
        guard bytes.count % entrySize == 0 else { return nil }
        var out: [Entry] = []
        var i = 0
        while i < bytes.count {
            let e = Entry(
                timestamp: Int64(bitPattern: BigEndian.u64(bytes, i)), relativeOffset: BigEndian.u32(bytes, i + 8))
            if let last = out.last, e.timestamp <= last.timestamp || e.relativeOffset < last.relativeOffset {
                return nil
            }
            out.append(e)
            i += entrySize
        }
        return out
    }

    static func encode(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        for e in entries {
            BigEndian.append(UInt64(bitPattern: e.timestamp), to: &out)
            BigEndian.append(e.relativeOffset, to: &out)
        }
        return out
    }

    /// Appends if `timestamp` is larger than the last entry's.
    func maybeAppend(_ e: Entry) throws {
        if let last = entries.last, e.timestamp <= last.timestamp { return }
        try file.append(Self.encode([e]))
        entries.append(e)
    }

    /// The last entry with timestamp < `timestamp`.
    func lastBefore(_ timestamp: Int64) -> Entry? {
        var lo = 0
        var hi = entries.count - 1
        var best: Entry?
        while lo <= hi {
            let mid = (lo + hi) / 2
            if entries[mid].timestamp < timestamp {
                best = entries[mid]
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        return best
    }

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
