import NIOCore

/// Caps applied while decoding untrusted bytes.
public enum DecodeLimits {
    /// Largest element count accepted for any array (also bounded by the bytes left).
    public static let maxArrayCount = 1_000_000
}

// MARK: - Decoding

extension ByteBuffer {
    @inline(__always)
    mutating func need(_ n: Int, _ what: StaticString) throws {
        if readableBytes < n {
            throw KafkaProtocolError(.truncated, "\(what): need \(n) bytes, \(readableBytes) left")
        }
    }

    public mutating func decodeInt8() throws -> Int8 {
        guard let v = readInteger(as: Int8.self) else { throw KafkaProtocolError(.truncated, "int8") }
        return v
    }

    public mutating func decodeBool() throws -> Bool { try decodeInt8() != 0 }

    public mutating func decodeInt16() throws -> Int16 {
        guard let v = readInteger(endianness: .big, as: Int16.self) else { throw KafkaProtocolError(.truncated, "int16") }
        return v
    }

    public mutating func decodeInt32() throws -> Int32 {
        guard let v = readInteger(endianness: .big, as: Int32.self) else { throw KafkaProtocolError(.truncated, "int32") }
        return v
    }

    public mutating func decodeUInt32() throws -> UInt32 {
        guard let v = readInteger(endianness: .big, as: UInt32.self) else { throw KafkaProtocolError(.truncated, "uint32") }
        return v
    }

    public mutating func decodeInt64() throws -> Int64 {
        guard let v = readInteger(endianness: .big, as: Int64.self) else { throw KafkaProtocolError(.truncated, "int64") }
        return v
    }

    /// Unsigned LEB128 varint, at most 5 bytes (32 bits).
    public mutating func decodeUnsignedVarint() throws -> UInt32 {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            guard let byte = readInteger(as: UInt8.self) else { throw KafkaProtocolError(.truncated, "unsigned varint") }
            if shift == 28 && byte & 0xF0 != 0 {
                throw KafkaProtocolError(.invalidValue, "unsigned varint longer than 32 bits")
            }
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Unsigned LEB128 varlong, at most 10 bytes (64 bits).
    public mutating func decodeUnsignedVarlong() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = readInteger(as: UInt8.self) else { throw KafkaProtocolError(.truncated, "unsigned varlong") }
            if shift == 63 && byte & 0xFE != 0 {
                throw KafkaProtocolError(.invalidValue, "varlong longer than 64 bits")
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Zigzag-encoded signed varint (32 bits).
    public mutating func decodeVarint() throws -> Int32 {
        let u = try decodeUnsignedVarint()
        return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// Zigzag-encoded signed varlong (64 bits).
    public mutating func decodeVarlong() throws -> Int64 {
        let u = try decodeUnsignedVarlong()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    private mutating func decodeUTF8(length: Int, _ what: StaticString) throws -> String {
        try need(length, what)
        guard let s = readString(length: length) else { throw KafkaProtocolError(.truncated, "\(what)") }
        return s
    }

    /// INT16 length + UTF-8; -1 is null.
    public mutating func decodeNullableString() throws -> String? {
        let length = Int(try decodeInt16())
        if length < 0 {
            if length == -1 { return nil }
            throw KafkaProtocolError(.invalidLength, "string length \(length)")
        }
        return try decodeUTF8(length: length, "string")
    }

    public mutating func decodeString() throws -> String {
        guard let s = try decodeNullableString() else { throw KafkaProtocolError(.invalidValue, "null where a string is required") }
        return s
    }

    /// UNSIGNED_VARINT length+1 + UTF-8; 0 is null.
    public mutating func decodeCompactNullableString() throws -> String? {
        let n = try decodeUnsignedVarint()
        if n == 0 { return nil }
        return try decodeUTF8(length: Int(n - 1), "compact string")
    }

    public mutating func decodeCompactString() throws -> String {
        guard let s = try decodeCompactNullableString() else { throw KafkaProtocolError(.invalidValue, "null where a compact string is required") }
        return s
    }

    public mutating func decodeString(flexible: Bool) throws -> String {
        flexible ? try decodeCompactString() : try decodeString()
    }

    public mutating func decodeNullableString(flexible: Bool) throws -> String? {
        flexible ? try decodeCompactNullableString() : try decodeNullableString()
    }

    /// INT32 length + bytes, as a slice of this buffer; -1 is null.
    public mutating func decodeNullableBytes() throws -> ByteBuffer? {
        let length = Int(try decodeInt32())
        if length < 0 {
            if length == -1 { return nil }
            throw KafkaProtocolError(.invalidLength, "bytes length \(length)")
        }
        try need(length, "bytes")
        return readSlice(length: length)
    }

    public mutating func decodeBytes() throws -> [UInt8] {
        guard var b = try decodeNullableBytes() else { throw KafkaProtocolError(.invalidValue, "null where bytes are required") }
        return b.readBytes(length: b.readableBytes) ?? []
    }

    /// A count of elements that follow; each element takes at least one byte,
    /// so a count larger than the bytes left is rejected before any allocation.
    private func checkCount(_ count: Int, _ what: StaticString) throws {
        if count > DecodeLimits.maxArrayCount {
            throw KafkaProtocolError(.tooLarge, "\(what) count \(count) exceeds \(DecodeLimits.maxArrayCount)")
        }
        if count > readableBytes {
            throw KafkaProtocolError(.invalidLength, "\(what) count \(count) exceeds the \(readableBytes) bytes left")
        }
    }

    /// INT32 count + elements; -1 is null.
    public mutating func decodeNullableArray<T>(_ element: (inout ByteBuffer) throws -> T) throws -> [T]? {
        let count = Int(try decodeInt32())
        if count < 0 {
            if count == -1 { return nil }
            throw KafkaProtocolError(.invalidLength, "array count \(count)")
        }
        try checkCount(count, "array")
        var out: [T] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(try element(&self)) }
        return out
    }

    public mutating func decodeArray<T>(_ element: (inout ByteBuffer) throws -> T) throws -> [T] {
        guard let a = try decodeNullableArray(element) else { throw KafkaProtocolError(.invalidValue, "null where an array is required") }
        return a
    }

    /// UNSIGNED_VARINT count+1 + elements; 0 is null.
    public mutating func decodeCompactNullableArray<T>(_ element: (inout ByteBuffer) throws -> T) throws -> [T]? {
        let n = try decodeUnsignedVarint()
        if n == 0 { return nil }
        let count = Int(n - 1)
        try checkCount(count, "compact array")
        var out: [T] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(try element(&self)) }
        return out
    }

    public mutating func decodeCompactArray<T>(_ element: (inout ByteBuffer) throws -> T) throws -> [T] {
        guard let a = try decodeCompactNullableArray(element) else { throw KafkaProtocolError(.invalidValue, "null where a compact array is required") }
        return a
    }

    public mutating func decodeArray<T>(flexible: Bool, _ element: (inout ByteBuffer) throws -> T) throws -> [T] {
        flexible ? try decodeCompactArray(element) : try decodeArray(element)
    }

    /// Tagged fields: a count, then (tag, size, bytes) each. Unknown tags are skipped.
    public mutating func skipTaggedFields() throws {
        let count = Int(try decodeUnsignedVarint())
        try checkCount(count, "tagged fields")
        for _ in 0..<count {
            _ = try decodeUnsignedVarint()
            let size = Int(try decodeUnsignedVarint())
            try need(size, "tagged field")
            moveReaderIndex(forwardBy: size)
        }
    }
}

// MARK: - Encoding

extension ByteBuffer {
    public mutating func encodeInt8(_ v: Int8) { writeInteger(v) }
    public mutating func encodeBool(_ v: Bool) { writeInteger(v ? Int8(1) : Int8(0)) }
    public mutating func encodeInt16(_ v: Int16) { writeInteger(v, endianness: .big) }
    public mutating func encodeInt32(_ v: Int32) { writeInteger(v, endianness: .big) }
    public mutating func encodeUInt32(_ v: UInt32) { writeInteger(v, endianness: .big) }
    public mutating func encodeInt64(_ v: Int64) { writeInteger(v, endianness: .big) }

    public mutating func encodeUnsignedVarint(_ v: UInt32) {
        var v = v
        while v >= 0x80 {
            writeInteger(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    public mutating func encodeUnsignedVarlong(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            writeInteger(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    public mutating func encodeVarint(_ v: Int32) {
        encodeUnsignedVarint(UInt32(bitPattern: (v << 1) ^ (v >> 31)))
    }

    public mutating func encodeVarlong(_ v: Int64) {
        encodeUnsignedVarlong(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    public mutating func encodeNullableString(_ s: String?) {
        guard let s else {
            encodeInt16(-1)
            return
        }
        encodeInt16(Int16(truncatingIfNeeded: s.utf8.count))
        writeString(s)
    }

    public mutating func encodeString(_ s: String) { encodeNullableString(s) }

    public mutating func encodeCompactNullableString(_ s: String?) {
        guard let s else {
            encodeUnsignedVarint(0)
            return
        }
        encodeUnsignedVarint(UInt32(s.utf8.count + 1))
        writeString(s)
    }

    public mutating func encodeString(_ s: String, flexible: Bool) {
        flexible ? encodeCompactNullableString(s) : encodeNullableString(s)
    }

    public mutating func encodeNullableString(_ s: String?, flexible: Bool) {
        flexible ? encodeCompactNullableString(s) : encodeNullableString(s)
    }

    public mutating func encodeNullableBytes(_ b: ByteBuffer?) {
        guard var b else {
            encodeInt32(-1)
            return
        }
        encodeInt32(Int32(b.readableBytes))
        writeBuffer(&b)
    }

    public mutating func encodeBytes(_ b: [UInt8]) {
        encodeInt32(Int32(b.count))
        writeBytes(b)
    }

    public mutating func encodeNullableArray<T>(_ items: [T]?, _ element: (inout ByteBuffer, T) -> Void) {
        guard let items else {
            encodeInt32(-1)
            return
        }
        encodeInt32(Int32(items.count))
        for item in items { element(&self, item) }
    }

    public mutating func encodeArray<T>(_ items: [T], _ element: (inout ByteBuffer, T) -> Void) {
        encodeNullableArray(items, element)
    }

    public mutating func encodeCompactNullableArray<T>(_ items: [T]?, _ element: (inout ByteBuffer, T) -> Void) {
        guard let items else {
            encodeUnsignedVarint(0)
            return
        }
        encodeUnsignedVarint(UInt32(items.count + 1))
        for item in items { element(&self, item) }
    }

    public mutating func encodeArray<T>(_ items: [T], flexible: Bool, _ element: (inout ByteBuffer, T) -> Void) {
        flexible ? encodeCompactNullableArray(items, element) : encodeNullableArray(items, element)
    }

    /// An empty tagged-field section.
    public mutating func encodeEmptyTaggedFields() { encodeUnsignedVarint(0) }
}
