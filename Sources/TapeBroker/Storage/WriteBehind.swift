import CTapeFileIO
import Foundation

/// Keeps a log's appends supplied with page-cache pages the kernel has just freed, and its page
/// cache bounded, without waiting for the disk on the append path (starting writeback can block
/// briefly only when the device's request queue is full).
///
/// Every append needs new page-cache pages. On a virtual machine, memory the guest has not touched
/// recently is slow to hand out: on the dev VM, copying an append into never-used pages ran at
/// ~440 MB/s and took 45% of the broker's CPU while producing; into pages freed a moment earlier it
/// runs at ~5 GB/s. So, as the active segment grows, for every `step` appended:
/// - writeback of the new bytes is started at once (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: no
///   wait, no durability promise — `--fsync` still decides when data is durable);
/// - bytes older than the last `tailBytes` are offered to `POSIX_FADV_DONTNEED`, which drops the
///   pages already written back (clean) and leaves the rest. Their writeback started `tailBytes`
///   of appends ago, so they are normally clean; the last `reofferBytes` already offered are offered
///   again, for pages that were still being written the first time.
/// The pages dropped are the ones the next appends get, still warm. Readers near the tail are served
/// from memory; a consumer more than `tailBytes` behind reads from disk. Nothing here can lose data:
/// only clean pages are dropped, and a failed writeback surfaces at the next fsync.
///
/// After each fsync `Log` also drops everything older than the tail (all clean then), which catches
/// pages that were dirty both times they were offered here.
struct WriteBehind {
    /// Bytes at the end of the active segment kept in the page cache (32 MiB).
    static let tailBytes: Int64 = 32 << 20
    /// Granularity of both calls (1 MiB, whole pages).
    static let step: Int64 = 1 << 20
    /// How far back an earlier offer is repeated (16 MiB).
    static let reofferBytes: Int64 = 16 << 20

    private var segmentBase: Int64 = -1
    /// Writeback was started for the bytes below this.
    private(set) var writebackStarted: Int64 = 0
    /// Bytes below this were offered to DONTNEED.
    private(set) var offeredUpTo: Int64 = 0

    /// Called after an append (with the log's lock held) with the active segment's descriptor and
    /// new size. Cheap when less than `step` was appended since the last call that did something.
    mutating func appended(file: DataFile, segmentBase base: Int64, size: Int64) {
        // The descriptor is only looked up (and pinned in the open-file cache) when there is work.
        guard base != segmentBase || size - min(writebackStarted, size) >= Self.step else { return }
        try? file.withDescriptor { fd in appended(fd: fd, segmentBase: base, size: size) }
    }

    /// Same, given the descriptor.
    mutating func appended(fd: Int32, segmentBase base: Int64, size: Int64) {
        if base != segmentBase {
            segmentBase = base
            writebackStarted = 0
            offeredUpTo = 0
        }
        // A rolled-back append may have shrunk the file.
        writebackStarted = min(writebackStarted, size)
        offeredUpTo = min(offeredUpTo, size)
        guard size - writebackStarted >= Self.step else { return }
        _ = tape_start_writeback(fd, writebackStarted, size - writebackStarted)
        writebackStarted = size
        let end = (size - Self.tailBytes) & ~(Self.step - 1)
        guard end - offeredUpTo >= Self.step else { return }
        let start = max(0, offeredUpTo - Self.reofferBytes)
        #if os(Linux)
            _ = posix_fadvise(fd, off_t(start), off_t(end - start), POSIX_FADV_DONTNEED)
        #endif
        offeredUpTo = end
    }
}
