import CTapeLZ4
import CTapeSnappy
import CTapeZlib
import CTapeZstd

/// Kafka's record batch codecs (attributes bits 0–2), through Debian's C libraries.
///
/// Decompression is always bounded: output past `limit` bytes makes the input corrupt
/// (`CompressionError`), never a large allocation (zip bombs) or a trap.
public enum CompressionCodec: Int, Sendable, CaseIterable {
    case none = 0
    case gzip = 1
    case snappy = 2
    case lz4 = 3
    case zstd = 4

    /// The name Kafka's `compression.type` uses (`none` is `uncompressed` there).
    public var name: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }

    /// Compresses `input` into this codec's Kafka framing (gzip stream; xerial-framed snappy as the
    /// Java client writes it; LZ4 frame; zstd frame). `.none` returns the input.
    public func compress(_ input: [UInt8]) throws -> [UInt8] {
        switch self {
        case .none: return input
        case .gzip: return try Self.gzipCompress(input)
        case .snappy: return try Self.snappyXerialCompress(input)
        case .lz4: return try Self.lz4Compress(input)
        case .zstd: return try Self.zstdCompress(input)
        }
    }

    /// Decompresses `input`; throws if it is malformed or would inflate past `limit` bytes.
    /// Snappy accepts both xerial framing (Java clients) and a raw snappy block (librdkafka).
    public func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        switch self {
        case .none:
            guard input.count <= limit else { throw CompressionError("\(input.count) bytes exceed the limit of \(limit)") }
            return Array(input)
        case .gzip: return try Self.gzipDecompress(input, limit: limit)
        case .snappy: return try Self.snappyDecompress(input, limit: limit)
        case .lz4: return try Self.lz4Decompress(input, limit: limit)
        case .zstd: return try Self.zstdDecompress(input, limit: limit)
        }
    }

    public func decompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { try decompress($0, limit: limit) }
    }

    // MARK: gzip (zlib)

    static func gzipCompress(_ input: [UInt8]) throws -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16: a gzip wrapper, as Java's GZIPOutputStream writes.
        guard
            deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw CompressionError("gzip: deflateInit2 failed") }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 32
        var out = [UInt8](repeating: 0, count: bound)
        var input = input
        let status = input.withUnsafeMutableBytes { inBuf -> Int32 in
            out.withUnsafeMutableBytes { outBuf -> Int32 in
                stream.next_in = inBuf.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(outBuf.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw CompressionError("gzip: deflate failed (\(status))") }
        out.removeSubrange(Int(stream.total_out)...)
        return out
    }

    static func gzipDecompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        var stream = z_stream()
        // 15 + 32: zlib or gzip header, detected.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CompressionError("gzip: inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        guard let base = input.baseAddress, input.count > 0 else { throw CompressionError("gzip: empty input") }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let (status, produced) = chunk.withUnsafeMutableBytes { c -> (Int32, Int) in
                stream.next_out = c.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(c.count)
                let s = inflate(&stream, Z_NO_FLUSH)
                return (s, c.count - Int(stream.avail_out))
            }
            if produced > 0 {
                guard out.count + produced <= limit else { throw CompressionError("gzip: inflates past the limit of \(limit) bytes") }
                out.append(contentsOf: chunk[0..<produced])
            }
            if status == Z_STREAM_END { return out }
            guard status == Z_OK else { throw CompressionError("gzip: malformed data (zlib status \(status))") }
            if produced == 0 && stream.avail_in == 0 { throw CompressionError("gzip: truncated stream") }
        }
    }

    // MARK: snappy

    /// The xerial snappy-java stream header: magic, version 1, compatible version 1.
    static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00]
    /// Block size snappy-java uses when it writes (32 KiB).
    static let xerialBlockSize = 32 << 10

    static func snappyRawCompress(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        // An empty block is its length, a varint 0.
        guard let source = input.baseAddress?.assumingMemoryBound(to: CChar.self), input.count > 0 else { return [0] }
        var length = snappy_max_compressed_length(input.count)
        var out = [UInt8](repeating: 0, count: length)
        let status = out.withUnsafeMutableBytes { o in
            snappy_compress(source, input.count, o.baseAddress!.assumingMemoryBound(to: CChar.self), &length)
        }
        guard status == SNAPPY_OK else { throw CompressionError("snappy: compression failed") }
        out.removeSubrange(length...)
        return out
    }

    static func snappyXerialCompress(_ input: [UInt8]) throws -> [UInt8] {
        var out = xerialMagic
        BigEndian.append(UInt32(1), to: &out)
        BigEndian.append(UInt32(1), to: &out)
        try input.withUnsafeBytes { all in
            var start = 0
            repeat {
                let end = min(start + xerialBlockSize, all.count)
                let block = try snappyRawCompress(UnsafeRawBufferPointer(rebasing: all[start..<end]))
                BigEndian.append(UInt32(block.count), to: &out)
                out += block
                start = end
            } while start < all.count
        }
        return out
    }

    static func snappyRawDecompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        guard let base = input.baseAddress?.assumingMemoryBound(to: CChar.self), input.count > 0 else {
            throw CompressionError("snappy: empty block")
        }
        var length = 0
        guard snappy_uncompressed_length(base, input.count, &length) == SNAPPY_OK else { throw CompressionError("snappy: malformed block header") }
        guard length <= limit else { throw CompressionError("snappy: block inflates to \(length) bytes, past the limit of \(limit)") }
        if length == 0 { return [] }
        var out = [UInt8](repeating: 0, count: length)
        let status = out.withUnsafeMutableBytes { o in snappy_uncompress(base, input.count, o.baseAddress!.assumingMemoryBound(to: CChar.self), &length) }
        guard status == SNAPPY_OK, length == out.count else { throw CompressionError("snappy: malformed block") }
        return out
    }

    static func snappyDecompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        guard input.count >= 16, Array(input[0..<8]) == xerialMagic else { return try snappyRawDecompress(input, limit: limit) }
        var position = 16
        var out: [UInt8] = []
        while position < input.count {
            guard input.count - position >= 4 else { throw CompressionError("snappy: truncated xerial block length") }
            let length = Int(BigEndian.u32(input, position))
            position += 4
            guard length <= input.count - position else { throw CompressionError("snappy: xerial block of \(length) bytes past the end") }
            let block = try snappyRawDecompress(UnsafeRawBufferPointer(rebasing: input[position..<position + length]), limit: limit - out.count)
            out += block
            position += length
        }
        return out
    }

    // MARK: lz4 (LZ4 frame format)

    static func lz4Compress(_ input: [UInt8]) throws -> [UInt8] {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.blockSizeID = LZ4F_max64KB
        prefs.frameInfo.blockMode = LZ4F_blockIndependent
        let bound = LZ4F_compressFrameBound(input.count, &prefs)
        var out = [UInt8](repeating: 0, count: bound)
        let written = input.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in LZ4F_compressFrame(o.baseAddress, o.count, i.baseAddress, i.count, &prefs) }
        }
        guard LZ4F_isError(written) == 0 else { throw CompressionError("lz4: compression failed") }
        out.removeSubrange(written...)
        return out
    }

    static func lz4Decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        var context: OpaquePointer? = nil
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw CompressionError("lz4: no decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        guard let base = input.baseAddress, input.count > 0 else { throw CompressionError("lz4: empty input") }
        var position = 0
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            var srcSize = input.count - position
            var dstSize = chunk.count
            let hint = chunk.withUnsafeMutableBytes { c in
                LZ4F_decompress(context, c.baseAddress, &dstSize, base + position, &srcSize, nil)
            }
            guard LZ4F_isError(hint) == 0 else {
                throw CompressionError("lz4: malformed frame (\(String(cString: LZ4F_getErrorName(hint))))")
            }
            position += srcSize
            if srcSize == 0 && dstSize == 0 { throw CompressionError("lz4: no progress on a malformed frame") }
            if dstSize > 0 {
                guard out.count + dstSize <= limit else { throw CompressionError("lz4: inflates past the limit of \(limit) bytes") }
                out.append(contentsOf: chunk[0..<dstSize])
            }
            if hint == 0 {
                // A frame ended; Kafka batches hold one frame.
                return out
            }
            if position >= input.count && dstSize == 0 { throw CompressionError("lz4: truncated frame") }
        }
    }

    // MARK: zstd

    static func zstdCompress(_ input: [UInt8]) throws -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        guard ZSTD_isError(bound) == 0 else { throw CompressionError("zstd: input too large") }
        var out = [UInt8](repeating: 0, count: bound)
        let written = input.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in ZSTD_compress(o.baseAddress, o.count, i.baseAddress, i.count, 3) }
        }
        guard ZSTD_isError(written) == 0 else { throw CompressionError("zstd: compression failed") }
        out.removeSubrange(written...)
        return out
    }

    static func zstdDecompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        guard let stream = ZSTD_createDStream() else { throw CompressionError("zstd: no decompression stream") }
        defer { ZSTD_freeDStream(stream) }
        _ = ZSTD_initDStream(stream)
        // A frame header may ask for a window of up to 128 MiB (zstd's default limit), allocated
        // before any output: cap it at 16 MiB (Kafka clients compress with windows of at most 8 MiB).
        _ = ZSTD_DCtx_setParameter(stream, ZSTD_d_windowLogMax, 24)
        guard let base = input.baseAddress, input.count > 0 else { throw CompressionError("zstd: empty input") }
        var inBuffer = ZSTD_inBuffer(src: base, size: input.count, pos: 0)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let (hint, produced) = chunk.withUnsafeMutableBytes { c -> (Int, Int) in
                var outBuffer = ZSTD_outBuffer(dst: c.baseAddress, size: c.count, pos: 0)
                let h = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                return (h, outBuffer.pos)
            }
            guard ZSTD_isError(hint) == 0 else {
                throw CompressionError("zstd: malformed frame (\(String(cString: ZSTD_getErrorName(hint))))")
            }
            if produced > 0 {
                guard out.count + produced <= limit else { throw CompressionError("zstd: inflates past the limit of \(limit) bytes") }
                out.append(contentsOf: chunk[0..<produced])
            }
            if hint == 0 { return out }
            if inBuffer.pos >= inBuffer.size && produced == 0 { throw CompressionError("zstd: truncated frame") }
        }
    }
}

/// A compressed payload that is malformed or inflates past its limit.
public struct CompressionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
