import Foundation
import Processing
import XCTest

/// `tape serve --db FILE` and `tape process --db FILE` started together both open (and, when it is
/// new, create) the same SQLite file: neither may fail because the other created the schema first.
final class SharedCandleFileTests: XCTestCase {
    func testStoresOpenedAtOnceOnANewFileAllSucceed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-shared-file-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        for round in 0..<20 {
            let path = dir.appendingPathComponent("candles-\(round).sqlite").path
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do { _ = try CandleStore(path: path).count() } catch { failures.add("\(error)") }
            }
            XCTAssertEqual(failures.all, [], "round \(round)")
        }
    }
}

private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}
