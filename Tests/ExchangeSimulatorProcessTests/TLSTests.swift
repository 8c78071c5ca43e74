import ExchangeSimulator
import Exchanges
import Foundation
import MarketData
import TapeTestSupport
import XCTest

/// `wss://` and `https://` through Tape's transports, against the simulator serving TLS with a
/// certificate made for the test (trusted through `TLSOptions.caFile`; untrusted without it).
final class TLSTests: XCTestCase {
    func makeCertificate() throws -> (certificate: String, key: String) {
        let directory = try temporaryDirectory("tls")
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        guard let openssl = Executables.which("openssl") else { throw XCTSkip("openssl not installed") }
        let made = try runProcess(
            openssl,
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "2",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ])
        guard made.status == 0 else { throw XCTSkip("openssl could not make a certificate: \(made.stderr)") }
        return (certificate, key)
    }

    func testWebSocketAndRESTOverTLS() async throws {
        let (certificate, key) = try makeCertificate()
        var configuration = PoloniexSimulatorConfiguration()
        configuration.rate = 200
        configuration.tlsCertificateFile = certificate
        configuration.tlsKeyFile = key
        let simulator = try await PoloniexSimulator.build(configuration)
        let server = Task { try await simulator.run() }
        defer { server.cancel() }
        XCTAssertTrue(simulator.websocketURL.hasPrefix("wss://"))
        XCTAssertTrue(simulator.restURL.hasPrefix("https://"))
        let tls = TLSOptions(caFile: certificate)

        let rest = try Endpoint(simulator.restURL)
        let symbols = try await MarketDirectory.resolve(["all"], adapter: Poloniex.self, rest: rest, tls: tls)
        XCTAssertEqual(symbols.count, MarketSimulator.defaultInstruments.count)

        let received = try await WebSocketClient.withConnection(to: try Endpoint(simulator.websocketURL), tls: tls) { inbound, outbound in
            try await outbound.send(text: Poloniex.subscribeMessage(symbols: ["BTC_USDT"]))
            var parser = PoloniexFrameParser()
            var trades: [Trade] = []
            while trades.count < 5, let message = try await inbound.next() {
                _ = try parser.parse(message.bytes, receivedAt: 0, into: &trades)
            }
            return trades.count
        }
        XCTAssertGreaterThanOrEqual(received, 5)

        // Without the test CA the certificate is not trusted: the connection must fail.
        do {
            _ = try await HTTPClient.get(rest.appending(path: "/markets"), timeout: .seconds(5))
            XCTFail("an untrusted certificate was accepted")
        } catch {}
    }
}
