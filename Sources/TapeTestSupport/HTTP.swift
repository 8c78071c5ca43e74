import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// An HTTP answer: status (0 when there was none) and body text.
package struct HTTPResult: Sendable {
    package var status: Int
    package var body: String
}

/// A blocking GET (a child's HTTP server on loopback).
package func httpGet(_ url: String, timeout: TimeInterval = 10) throws -> HTTPResult {
    guard let target = URL(string: url) else { throw TestSupportError("not a URL: \(url)") }
    let answer = Locked(HTTPResult(status: 0, body: ""))
    let done = DispatchSemaphore(value: 0)
    var request = URLRequest(url: target)
    request.timeoutInterval = timeout
    URLSession.shared.dataTask(with: request) { data, response, _ in
        answer.value = HTTPResult(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: String(decoding: data ?? Data(), as: UTF8.self))
        done.signal()
    }.resume()
    _ = done.wait(timeout: .now() + timeout + 1)
    return answer.value
}
