import KafkaProtocol
import NIOCore
import TapeTestSupport
import XCTest

/// Seeded mutation fuzzing of the request decoder: mutated valid requests and random garbage
/// must either decode or throw — never trap, never allocate from an unchecked count.
final class DecoderFuzzTests: XCTestCase {
    static let iterations = TestBudget.iterations(60_000)

    func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = input
        let edits = Int.random(in: 1...4, using: &rng)
        for _ in 0..<edits {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !b.isEmpty:  // flip a bit
                let i = Int.random(in: 0..<b.count, using: &rng)
                b[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !b.isEmpty:  // random byte
                b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 2 where !b.isEmpty:  // truncate
                b.removeLast(Int.random(in: 0..<b.count, using: &rng))
            case 3:  // insert garbage
                let at = Int.random(in: 0...b.count, using: &rng)
                b.insert(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            case 4 where b.count >= 4:  // overwrite a 4-byte field with an extreme length/count
                let i = Int.random(in: 0...(b.count - 4), using: &rng)
                let v: [UInt8] = [[0x7F, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF], [0x80, 0, 0, 0], [0, 0x10, 0, 0]][Int.random(in: 0..<4, using: &rng)]
                b.replaceSubrange(i..<i + 4, with: v)
            case 5 where b.count >= 2:  // overwrite a 2-byte string length
                let i = Int.random(in: 0...(b.count - 2), using: &rng)
                b.replaceSubrange(i..<i + 2, with: [0x7F, 0xFF])
            case 6 where b.count > 4:  // duplicate a slice
                let i = Int.random(in: 0..<(b.count - 1), using: &rng)
                let n = Int.random(in: 1...min(32, b.count - i), using: &rng)
                b.insert(contentsOf: b[i..<i + n], at: i)
            default:
                b.append(UInt8.random(in: 0...255, using: &rng))
            }
        }
        return b
    }

    func testMutatedRequestsNeverCrash() throws {
        var seeds = Samples.allFrames.map { Array($0.readableBytesView) }
        seeds += try GoldenRequestTests.fixtures().map(\.bytes)
        var rng = SplitMix64(seed: 0x7A9E_2026)
        var decoded = 0
        var rejected = 0
        for i in 0..<Self.iterations {
            let input: [UInt8]
            if i % 10 == 9 {  // pure garbage with a plausible API key prefix
                var g = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if g.count >= 4 && Bool.random(using: &rng) {
                    let key = ApiKey.allCases.randomElement(using: &rng)!
                    g[0] = 0
                    g[1] = UInt8(key.rawValue)
                    g[2] = 0
                    g[3] = UInt8(key.supportedVersions.randomElement(using: &rng)!)
                }
                input = g
            } else {
                input = mutate(seeds[Int.random(in: 0..<seeds.count, using: &rng)], &rng)
            }
            var frame = ByteBuffer(bytes: input)
            do {
                let r = try KafkaRequest.decode(frame: &frame)
                decoded += 1
                // Whatever decoded must re-encode without trapping, and produce batches must validate or throw.
                _ = r.encodeFrameBody()
                if case .produce(let p) = r.body {
                    for t in p.topics {
                        for part in t.partitions { if let rec = part.records { _ = try? RecordBatchValidator.validate(records: rec, maxBatchBytes: 1 << 20) } }
                    }
                }
            } catch is KafkaProtocolError {
                rejected += 1
            }
        }
        XCTAssertEqual(decoded + rejected, Self.iterations)
        XCTAssertGreaterThan(rejected, Self.iterations / 4)
        XCTAssertGreaterThan(decoded, 100)
    }
}
