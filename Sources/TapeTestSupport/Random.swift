@_exported import TapeCommon

extension SplitMix64 {
    /// Uniform in 0..<bound (bound > 0), as an Int.
    package mutating func below(_ bound: Int) -> Int {
        Int(below(UInt64(bound)))
    }
}

extension SplitMix64 {
    /// One element of a non-empty array, uniformly.
    package mutating func pick<T>(_ elements: [T]) -> T { elements[Int.random(in: 0..<elements.count, using: &self)] }

    /// True with probability `p`.
    package mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}

extension SplitMix64 {
    /// Bytes that hurt a JSON frame parser most when put in the wrong place.
    package static let interestingJSONBytes: [UInt8] = Array(#"{}[]",:.-+0123456789eE\u"tfn "#.utf8) + [0, 0x7F, 0x80, 0xC3, 0xFF, 0x0A]

    /// The frame fuzzers' mutator: 1–4 random edits of `frame` (an interesting byte put in or
    /// over one, a bit flip, a cut, a truncation, a slice doubled).
    package mutating func mutateFrame(_ frame: inout [UInt8]) {
        let interesting = Self.interestingJSONBytes
        for _ in 0..<(1 + Int(next() % 4)) where !frame.isEmpty {
            let at = Int(next() % UInt64(frame.count))
            switch next() % 6 {
            case 0: frame[at] = interesting[Int(next() % UInt64(interesting.count))]
            case 1: frame[at] ^= UInt8(truncatingIfNeeded: next() | 1)
            case 2: frame.removeSubrange(at..<min(frame.count, at + 1 + Int(next() % 8)))
            case 3: frame.insert(interesting[Int(next() % UInt64(interesting.count))], at: at)
            case 4: frame.removeSubrange(at...)  // truncate
            default:
                let end = min(frame.count, at + 1 + Int(next() % 16))
                frame.insert(contentsOf: frame[at..<end], at: at)  // duplicate a slice
            }
        }
    }
}
