import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWSTesting
import Logging
import MarketData
import Synchronization
import TapeServer
import TapeTestSupport
import XCTest

/// `/ws` against a live server on a loopback port, fed through in-memory feeds.
final class WebSocketTests: XCTestCase {
    /// Waits until `condition` holds (polling), or fails after `seconds`.
    static func json(_ text: String) -> [String: Any] { Data(text.utf8).jsonObject }

    func testSubscribeThenReceivePushedTradeAndCandle() async throws {
        let f = Fixture()
        let trade = Fixture.trade(Fixture.btc, id: 777, price: "21700.01", time: Fixture.t0 + 60_000)
        let otherTrade = Fixture.trade(Fixture.eth, id: 778, price: "1600", time: Fixture.t0 + 60_000)
        let candle = Fixture.candle(Fixture.btc, .oneMinute, index: 40, base: 21_600, revision: 2, isFinal: false)
        let fiveMinute = Fixture.candle(Fixture.btc, .fiveMinutes, index: 6, base: 21_600)
        let state = f.state
        let inputs = (f.tradeInput, f.candleInput)
        try await f.app.test(.live) { client in
            try await client.ws("/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                func next() async throws -> [String: Any] {
                    guard case .text(let text) = try await messages.next() else { throw TestSupportError("timed out waiting for a text message") }
                    return Self.json(text)
                }
                try await outbound.write(.text(#"{"op":"subscribe","channel":"trades","symbol":"poloniex:BTC-USDT"}"#))
                try await outbound.write(.text(#"{"op":"subscribe","channel":"candles","symbol":"poloniex:btc_usdt","interval":"60s"}"#))
                let ack1 = try await next()
                XCTAssertEqual(ack1["type"] as? String, "subscribed")
                XCTAssertEqual(ack1["channel"] as? String, "trades")
                let ack2 = try await next()
                XCTAssertEqual(ack2["symbol"] as? String, "poloniex:BTC-USDT")  // normalized
                XCTAssertEqual(ack2["interval"] as? String, "1m")  // canonical
                XCTAssertEqual(state.hub.subscriberCount(.trades(Fixture.btc)), 1)

                inputs.0.yield(otherTrade)  // not subscribed: must not arrive
                inputs.1.yield(fiveMinute)  // other interval: must not arrive
                inputs.0.yield(trade)
                inputs.1.yield(candle)
                // trades and candles come through separate feeds: their relative order is not defined
                let first = try await next()
                let second = try await next()
                let (m1, m2) = (first["type"] as? String) == "trade" ? (first, second) : (second, first)
                XCTAssertEqual(m1["type"] as? String, "trade")
                XCTAssertEqual(m1["symbol"] as? String, "poloniex:BTC-USDT")
                let data1 = try JSONSerialization.data(withJSONObject: m1["data"] as Any)
                XCTAssertEqual(try Trade(json: [UInt8](data1)), trade)
                XCTAssertEqual(m2["type"] as? String, "candle")
                XCTAssertEqual(m2["interval"] as? String, "1m")
                let data2 = try JSONSerialization.data(withJSONObject: m2["data"] as Any)
                XCTAssertEqual(try Candle(json: [UInt8](data2)), candle)

                // errors name what was wrong; the connection stays usable
                try await outbound.write(.text(#"{"op":"subscribe","channel":"candles","symbol":"poloniex:BTC-USDT","interval":"7x"}"#))
                let e1 = try await next()
                XCTAssertEqual(e1["type"] as? String, "error")
                XCTAssertTrue((e1["message"] as? String ?? "").contains("7x"))
                try await outbound.write(.text(#"{"op":"subscribe","channel":"orders","symbol":"poloniex:BTC-USDT"}"#))
                let e2 = try await next()
                XCTAssertTrue((e2["message"] as? String ?? "").contains("channel"))
                try await outbound.write(.text("not json"))
                let r1 = try await next()
                XCTAssertEqual(r1["type"] as? String, "error")
                try await outbound.write(.text(#"{"op":"ping"}"#))
                let r2 = try await next()
                XCTAssertEqual(r2["type"] as? String, "pong")

                // a market the server has nothing of: subscribed (it may start trading), with a warning naming the known ones
                try await outbound.write(.text(#"{"op":"subscribe","channel":"trades","symbol":"poloniex:FOO-BAR"}"#))
                let w = try await next()
                XCTAssertEqual(w["type"] as? String, "subscribed")
                let warning = w["warning"] as? String ?? ""
                XCTAssertTrue(warning.contains("unknown market poloniex:FOO-BAR") && warning.contains("poloniex:BTC-USDT"), "\(w)")
                XCTAssertNil(ack1["warning"], "a known market has no warning: \(ack1)")

                try await outbound.write(.text(#"{"op":"unsubscribe","channel":"trades","symbol":"poloniex:BTC-USDT"}"#))
                let r3 = try await next()
                XCTAssertEqual(r3["type"] as? String, "unsubscribed")
                XCTAssertEqual(state.hub.subscriberCount(.trades(Fixture.btc)), 0)
            }
            // the server forgets the client once it closes
            try await eventually(5, "client cleanup") { state.hub.clientCount == 0 }
            // the pump also fed the ring, so REST sees the live trade
            try await client.execute(uri: "/api/trades?symbol=poloniex:BTC-USDT&limit=1", method: .get) { response in
                XCTAssertEqual((response.body.json["trades"] as? [[String: Any]])?.first?["tradeId"] as? String, "777")
            }
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&limit=1", method: .get) { response in
                XCTAssertEqual((response.body.json["candles"] as? [[String: Any]])?.first?["revision"] as? Int, 2)
            }
            // live candles of 1m and 5m were seen: an interval never computed is refused, naming those
            try await client.execute(uri: "/api/candles?symbol=poloniex:BTC-USDT&interval=2h", method: .get) { response in
                XCTAssertEqual(response.status, .notFound)
                let message = (response.body.json["error"] as? [String: Any])?["message"] as? String ?? ""
                XCTAssertTrue(message.contains("interval 2h is not computed here; intervals: 1m, 5m"), message)
            }
        }
    }

    func testWebSocketNeedsTheTokenWhenOneIsSet() async throws {
        let f = Fixture(token: "s3cret")
        try await f.app.test(.live) { client in
            let port = client.port!
            let logger = Logger(label: "test.ws")
            do {
                try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws", logger: logger) { _, _, _ in
                    XCTFail("upgraded without a token")
                }
                XCTFail("connect without a token should fail")
            } catch {}
            let got = Locked<String?>(nil)
            for url in ["ws://127.0.0.1:\(port)/ws?token=s3cret", "ws://127.0.0.1:\(port)/ws"] {
                got.withLock { $0 = nil }
                let config = WebSocketClientConfiguration(additionalHeaders: url.contains("token") ? [:] : [.authorization: "Bearer s3cret"])
                try await WebSocketClient.connect(url: url, configuration: config, logger: logger) { inbound, outbound, _ in
                    try await outbound.write(.text(#"{"op":"ping"}"#))
                    var it = inbound.messages(maxSize: 1024).makeAsyncIterator()
                    if case .text(let t) = try await it.next() { got.withLock { $0 = t } }
                }
                XCTAssertEqual(got.withLock { $0 }, #"{"type":"pong"}"#, url)
            }
        }
    }

    /// Fan-out latency: feed → server → WebSocket clients on loopback, per delivered message
    /// (debug build, clients in the same process; printed, loosely bounded).
    func testFanOutLatency() async throws {
        try await measureFanOut(clients: 1, trades: 2000)
        try await measureFanOut(clients: 20, trades: 500)
    }

    /// `"receivedAt":<digits>` read without a JSON parser, so the client side costs little.
    static func receivedAt(_ text: String) -> Int64? {
        guard let r = text.range(of: "\"receivedAt\":") else { return nil }
        return Int64(text[r.upperBound...].prefix { $0.isNumber })
    }

    func measureFanOut(clients: Int, trades tradesToSend: Int) async throws {
        let f = Fixture()
        let state = f.state
        let input = f.tradeInput
        let latencies = Locked<[Int64]>([])
        try await f.app.test(.live) { client in
            let port = client.port!
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<clients {
                    group.addTask {
                        try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws", logger: Logger(label: "test.ws")) { inbound, outbound, _ in
                            try await outbound.write(.text(#"{"op":"subscribe","channel":"trades","symbol":"poloniex:BTC-USDT"}"#))
                            var received = 0
                            var local: [Int64] = []
                            local.reserveCapacity(tradesToSend)
                            for try await message in inbound.messages(maxSize: 1 << 16) {
                                guard case .text(let text) = message, text.hasPrefix(#"{"type":"trade""#) else { continue }
                                let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
                                local.append(now - (Self.receivedAt(text) ?? now))
                                received += 1
                                if received == tradesToSend { break }
                            }
                            latencies.withLock { $0.append(contentsOf: local) }
                        }
                    }
                }
                try await eventually(20, "\(clients) subscribers") { state.hub.subscriberCount(.trades(Fixture.btc)) == clients }
                let start = ContinuousClock.now
                for i in 0..<tradesToSend {
                    var trade = Fixture.trade(Fixture.btc, id: 10_000 + i, price: "21600.5", time: Fixture.t0 + Int64(i))
                    trade.receivedAt = Int64(Date().timeIntervalSince1970 * 1_000_000)
                    input.yield(trade)
                    if i % 10 == 9 { try await Task.sleep(for: .milliseconds(1)) }  // at most ~10k trades/s offered
                }
                try await group.waitForAll()
                let elapsed = ContinuousClock.now - start
                let all = latencies.withLock { $0 }.sorted()
                XCTAssertEqual(all.count, clients * tradesToSend, "every client gets every trade")
                guard !all.isEmpty else { return }
                func pct(_ p: Double) -> Double { Double(all[min(all.count - 1, Int(Double(all.count) * p))]) / 1000 }
                print(
                    "ws fan-out: \(clients) client(s) × \(tradesToSend) trades in \(elapsed): latency p50 \(pct(0.5)) ms, p99 \(pct(0.99)) ms, max \(pct(1)) ms"
                )
                if clients == 1 {  // with many clients a debug build is throughput-bound: only delivery is asserted
                    XCTAssertLessThan(pct(0.5), 250, "median single-client latency is absurd")
                }
            }
        }
    }
}
