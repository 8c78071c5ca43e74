import Foundation

/// Polls `condition` every 10 ms until it holds; after `seconds`, fails naming `what`.
package func eventually(_ seconds: Double = 10, _ what: String, _ condition: () -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { throw TestSupportError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
