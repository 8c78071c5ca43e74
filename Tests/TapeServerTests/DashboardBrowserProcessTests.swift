import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import MarketData
import TapeServer
import TapeTestSupport
import XCTest

/// The dashboard in a real headless Chromium (Debian's `chromium`), driven over the DevTools
/// protocol: the page draws the candles the API returns, applies live updates from /ws, switches
/// interval, and a screenshot is taken (written to docs/dashboard.png when TAPE_UPDATE_SCREENSHOT=1).
final class DashboardBrowserProcessTests: XCTestCase {
    static func findChromium() -> String? {
        ["chromium", "chromium-browser", "google-chrome"].lazy.compactMap { Executables.which($0) }.first
    }

    /// With `--token`, the page takes `?token=` for its REST calls (header) and its WebSocket (query).
    func testDashboardUsesTheTokenFromItsURL() async throws {
        guard let chromium = Self.findChromium() else { throw XCTSkip("chromium is not installed (apt-get install chromium)") }
        let f = Fixture(token: "s3cret", candlesPerMarket: 5)
        let state = f.state
        try await f.app.test(.live) { client in
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage("http://127.0.0.1:\(client.port!)/?token=s3cret") { cdp in
                try await cdp.waitFor("candles with the token", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready + ' ' + document.body.dataset.candlesDrawn") as? String == "1 10"
                }
                try await eventually(20, "the page's authorized /ws subscription") {
                    state.hub.subscriberCount(.candles(Fixture.btc, .oneMinute)) == 1
                }
            }
            try await browser.withPage("http://127.0.0.1:\(client.port!)/") { cdp in
                try await cdp.waitFor("the page without a token", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready") as? String == "1"
                }
                let status = try await cdp.evaluate("document.querySelector('#status span').textContent") as? String ?? ""
                XCTAssertTrue(status.contains("needs a token"), status)
                let drawn = try await cdp.evaluate("document.body.dataset.candlesDrawn") as? String
                XCTAssertEqual(drawn, "0")
            }
        }
    }

    /// Data from Kafka is untrusted: markup in an exchange or symbol name must show as text.
    func testDashboardShowsMarkupInDataAsText() async throws {
        guard let chromium = Self.findChromium() else { throw XCTSkip("chromium is not installed (apt-get install chromium)") }
        let f = Fixture(candlesPerMarket: 3)
        let evil = MarketID(exchange: Exchange("x<img src=x onerror=\"document.body.dataset.pwned=1\">"), symbol: Symbol(normalizing: "<b>A-B</b>"))
        f.state.accept(Fixture.trade(evil, id: 1, price: "1", time: Fixture.t0 + 9_000))
        try await f.app.test(.live) { client in
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage("http://127.0.0.1:\(client.port!)/") { cdp in
                try await cdp.waitFor("the page", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready + ' ' + document.body.dataset.tradesShown") as? String == "1 7"
                }
                try await Task.sleep(for: .milliseconds(300))
                let pwned = try await cdp.evaluate("document.body.dataset.pwned") as? String
                XCTAssertEqual(pwned, "undefined", "markup from the data ran")
                let text =
                    try await cdp.evaluate("document.body.innerText.includes('<B>A-B<-B>') && document.body.innerText.includes('x<img src=x onerror=')")
                    as? String
                XCTAssertEqual(text, "true", "the name shows as text")
                let images = try await cdp.evaluate("document.querySelectorAll('img, b').length") as? String
                XCTAssertEqual(images, "0")
            }
        }
    }

    /// Open gaps shade the windows they overlap and show a badge; incomplete candles are hollow;
    /// a repaired gap pushed over /ws clears both marks; a degraded /health turns the dot amber
    /// with the reason.
    func testDashboardMarksGapsIncompleteCandlesAndDegradedHealth() async throws {
        guard let chromium = Self.findChromium() else { throw XCTSkip("chromium is not installed (apt-get install chromium)") }
        let gap = Fixture.gap(Fixture.btc, minutes: 10...11, reason: "trade ids jumped from 100 to 140")
        // --stale-after 2 s and no trade after the fixture's: degraded soon after the page loads.
        let f = Fixture(candlesPerMarket: 30, gaps: [gap], health: HealthPolicy(staleAfterMilliseconds: 2_000), incomplete: [10, 11])
        let state = f.state
        let gapInput = f.gapInput
        let inputs = (f.tradeInput, f.candleInput)
        try await f.app.test(.live) { client in
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage("http://127.0.0.1:\(client.port!)/") { cdp in
                let btc = "document.querySelector('[data-symbol=\"poloniex:BTC-USDT\"]')"
                try await cdp.waitFor("candles and the gap", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready + ' ' + document.body.dataset.candlesDrawn + ' ' + \(btc).dataset.openGaps")
                        as? String == "1 60 1"
                }
                let marks =
                    try await cdp.evaluate(
                        "\(btc).querySelector('canvas').dataset.incompleteDrawn + ' ' + \(btc).querySelector('canvas').dataset.gapSlots") as? String
                XCTAssertEqual(marks, "2 2", "minutes 10 and 11 hollow; the gap (10:05 to 11:10) shades their two windows")
                let eth =
                    try await cdp.evaluate(
                        "document.querySelector('[data-symbol=\"poloniex:ETH-USDT\"] canvas').dataset.incompleteDrawn") as? String
                XCTAssertEqual(eth, "2", "incomplete comes from each candle's own flag")
                let badge =
                    try await cdp.evaluate("\(btc).querySelector('.gapbadge').textContent + ' | ' + \(btc).querySelector('.gapbadge').title") as? String ?? ""
                XCTAssertTrue(badge.hasPrefix("⚠ 1 open gap | trades ") && badge.contains("trade ids jumped from 100 to 140"), badge)
                // hollow candles: a candle slot whose centre pixel is background, not the body colour
                let hover =
                    try await cdp.evaluate(
                        """
                        (() => { const c = \(btc).querySelector('canvas'); const r = c.getBoundingClientRect(); const L = charts.get('poloniex:BTC-USDT').layout;
                          const i = L.shown.findIndex(k => k.complete === false);
                          c.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + L.x0 + (i + 0.5) * L.slot, clientY: r.top + 50 }));
                          return c.title; })()
                        """) as? String ?? ""
                XCTAssertTrue(hover.contains("Incomplete: an unrepaired gap overlaps this window") && hover.contains("Open gap"), hover)

                // degraded: amber dot, the reason in the text and the tooltip
                try await cdp.waitFor("the degraded status", timeout: 20) {
                    try await $0.evaluate("document.body.dataset.health + ' ' + document.querySelector('#status').className") as? String == "degraded degraded"
                }
                let status =
                    try await cdp.evaluate("document.querySelector('#status span').textContent + ' | ' + document.querySelector('#status').title") as? String
                    ?? ""
                XCTAssertTrue(status.hasPrefix("degraded: No trade on tape.trades for "), status)
                XCTAssertTrue(status.contains("(--stale-after 2 s)"), status)
                let dot = try await cdp.evaluate("getComputedStyle(document.querySelector('#status i')).backgroundColor") as? String
                XCTAssertEqual(dot, "rgb(210, 153, 34)")
                let shot = try await cdp.call("Page.captureScreenshot", ["format": "png"])
                let png = Data(base64Encoded: shot["data"] as? String ?? "") ?? Data()
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("tape-dashboard-gaps.png")
                try png.write(to: out)
                print("dashboard with a gap, incomplete candles and degraded health: \(out.path)")

                // the gap is repaired: pushed over /ws, the marks go
                try await eventually(20, "the page's gap subscription") { state.hub.subscriberCount(.gaps(Fixture.btc)) == 1 }
                var repaired = gap
                repaired.repaired = true
                gapInput.yield(repaired)
                try await cdp.waitFor("the repaired gap", timeout: 20) {
                    try await $0.evaluate(
                        "document.body.dataset.gapUpdates + ' ' + \(btc).dataset.openGaps + ' ' + \(btc).querySelector('canvas').dataset.gapSlots + ' ' + \(btc).querySelector('.gapbadge').hidden"
                    ) as? String == "1 0 0 true"
                }
                // trades and candles flow again: ok, green, "live"
                let feeder = Task {
                    for i in 0..<200 {
                        inputs.0.yield(Fixture.trade(Fixture.btc, id: 5_000 + i, price: "21600", time: Fixture.t0 + 30 * 60_000 + Int64(i)))
                        inputs.1.yield(Fixture.candle(Fixture.btc, .oneMinute, index: 30, base: 21_600, revision: Int64(i + 1), isFinal: false))
                        try await Task.sleep(for: .milliseconds(250))
                    }
                }
                defer { feeder.cancel() }
                try await cdp.waitFor("live again", timeout: 20) {
                    try await $0.evaluate("document.body.dataset.health + ' ' + document.querySelector('#status span').textContent") as? String == "ok live"
                }
            }
        }
    }

    /// Order books on the page: top of book and a depth chart per market, first from /api/book,
    /// then from the `book` channel of /ws.
    func testDashboardShowsTopOfBookAndDepthInChromium() async throws {
        guard let chromium = Self.findChromium() else {
            throw XCTSkip("chromium is not installed (apt-get install chromium)")
        }
        let f = Fixture(candlesPerMarket: 10)
        let state = f.state
        let input = f.bookInput
        let bids = (0..<15).map { ("\(21_600 - $0).5", "\($0 + 1).25") }
        let asks = (0..<15).map { ("\(21_601 + $0).5", "\(2 * $0 + 1)") }
        state.accept(BookServerTests.event(.snapshot, sequence: 10, bids: bids, asks: asks, exchange: "poloniex"))
        try await f.app.test(.live) { client in
            let port = client.port!
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage("http://127.0.0.1:\(port)/") { cdp in
                let btc = "document.querySelector('[data-symbol=\"poloniex:BTC-USDT\"]')"
                try await cdp.waitFor("the book from /api/book", timeout: 30) {
                    try await $0.evaluate("\(btc).dataset.bestBid + ' ' + \(btc).dataset.bestAsk + ' ' + \(btc).querySelector('canvas.depth').dataset.levelsDrawn")
                        as? String == "21600.5 21601.5 30"
                }
                let shown = try await cdp.evaluate("\(btc).querySelector('.tob').textContent") as? String ?? ""
                XCTAssertTrue(shown.contains("spread 1") && shown.contains("mid 21601"), shown)
                // The depth chart really holds both sides.
                let colours =
                    try await cdp.evaluate(
                        """
                        (() => { const c = \(btc).querySelector('canvas.depth'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                          let bid = 0, ask = 0; for (let i = 0; i < d.length; i += 4) { if (d[i+3] === 0) continue;
                            if (d[i+1] > d[i] + 40) bid++; else if (d[i] > d[i+1] + 40) ask++; }
                          return bid + ' ' + ask; })()
                        """) as? String ?? ""
                let counts = colours.split(separator: " ").compactMap { Int($0) }
                XCTAssertEqual(counts.count, 2)
                XCTAssertGreaterThan(counts.first ?? 0, 50, "bid-side (green) pixels")
                XCTAssertGreaterThan(counts.last ?? 0, 50, "ask-side (red) pixels")
                // Live: an update moves the best bid up; the page follows over /ws (book messages, at
                // most one per 250 ms, carry the latest state).
                try await eventually(30, "the page's book subscription") { state.hub.subscriberCount(.book(Fixture.btc)) == 1 }
                input.yield(BookServerTests.event(.update, sequence: 11, bids: [("21601", "0.75")], asks: [], exchange: "poloniex"))
                try await cdp.waitFor("the live book", timeout: 20) {
                    try await $0.evaluate("\(btc).dataset.bestBid + ' ' + \(btc).dataset.bookSequence") as? String == "21601 11"
                }
            }
        }
    }

    func testDashboardDrawsAPICandlesAndLiveUpdatesInChromium() async throws {
        guard let chromium = Self.findChromium() else {
            throw XCTSkip("chromium is not installed (apt-get install chromium)")
        }
        let stats = StaticStats(
            PipelineStats(
                exchanges: [
                    ExchangeStats(
                        exchange: "poloniex", connected: true, framesPerSecond: 41.5, tradesPerSecond: 63.2, tradesTotal: 182_311,
                        parseErrors: 0, reconnects: 1, lagMilliseconds: 38, lastTradeTime: Fixture.t0)
                ], consumerLag: [ConsumerLag(group: "tape-serve", topic: "tape.trades", messages: 0)]))
        let f = Fixture(candlesPerMarket: 48, stats: stats)
        let state = f.state
        let inputs = (f.tradeInput, f.candleInput)
        let apiCandles = try await f.history.candles(market: Fixture.btc, interval: .oneMinute, from: nil, to: nil, limit: 500)
        XCTAssertEqual(apiCandles.count, 48)

        try await f.app.test(.live) { client in
            let port = client.port!
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage("http://127.0.0.1:\(port)/") { cdp in

                // 1. the page draws what the API returns
                try await cdp.waitFor("initial candles", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready + ' ' + document.body.dataset.candlesDrawn") as? String == "1 96"
                }
                let btc = "document.querySelector('[data-symbol=\"poloniex:BTC-USDT\"]')"
                let v1 = try await cdp.evaluate("\(btc).querySelector('canvas').dataset.candlesDrawn") as? String
                XCTAssertEqual(v1, "48")
                let v2 = try await cdp.evaluate("\(btc).dataset.lastClose") as? String
                XCTAssertEqual(v2, apiCandles.last!.close.description)
                let v3 = try await cdp.evaluate("document.body.dataset.tradesShown") as? String
                XCTAssertEqual(v3, "6")
                // the canvas really holds rising and falling candle bodies
                let colours =
                    try await cdp.evaluate(
                        """
                        (() => { const c = \(btc).querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                          let up = 0, down = 0; for (let i = 0; i < d.length; i += 4) {
                            if (d[i] === 38 && d[i+1] === 166 && d[i+2] === 154) up++; if (d[i] === 239 && d[i+1] === 83 && d[i+2] === 80) down++; }
                          return up + ' ' + down; })()
                        """) as? String ?? ""
                let counts = colours.split(separator: " ").compactMap { Int($0) }
                XCTAssertEqual(counts.count, 2)
                XCTAssertGreaterThan(counts.first ?? 0, 100, "green candle pixels")
                XCTAssertGreaterThan(counts.last ?? 0, 100, "red candle pixels")

                // 2. live updates over /ws: a new candle and a trade
                try await eventually(30, "the page's /ws subscriptions") {
                    state.hub.subscriberCount(.candles(Fixture.btc, .oneMinute)) == 1 && state.hub.subscriberCount(.trades(Fixture.btc)) == 1
                }
                let live = Fixture.candle(Fixture.btc, .oneMinute, index: 48, base: 21_600, revision: 1, isFinal: false)
                inputs.1.yield(live)
                inputs.0.yield(Fixture.trade(Fixture.btc, id: 9_999, price: "21650.12", side: .buy, time: live.start + 5_000))
                try await cdp.waitFor("live candle and trade", timeout: 20) {
                    try await $0.evaluate(
                        "\(btc).querySelector('canvas').dataset.candlesDrawn + ' ' + \(btc).dataset.lastClose + ' ' + document.body.dataset.tradesShown"
                    ) as? String == "49 \(live.close) 7"
                }
                let v4 = try await cdp.evaluate("document.body.dataset.liveUpdates") as? String
                XCTAssertEqual(v4, "2")
                let v5 = try await cdp.evaluate("document.querySelector('#status span').textContent") as? String
                XCTAssertEqual(v5, "live")

                // 3. the interval switch reloads from the API and moves the subscription
                _ = try await cdp.evaluate("document.querySelector('[data-i=\"5m\"]').click()")
                try await cdp.waitFor("5m candles", timeout: 20) {
                    try await $0.evaluate("document.body.dataset.candlesDrawn") as? String == "6"
                }
                try await eventually(10, "5m subscription") {
                    state.hub.subscriberCount(.candles(Fixture.btc, .fiveMinutes)) == 1
                        && state.hub.subscriberCount(.candles(Fixture.btc, .oneMinute)) == 0
                }
                _ = try await cdp.evaluate("document.querySelector('[data-i=\"1m\"]').click()")
                try await cdp.waitFor("back to 1m", timeout: 20) {
                    try await $0.evaluate("document.body.dataset.candlesDrawn") as? String == "97"
                }
                // the health panel shows the stats source
                let health = try await cdp.evaluate("document.querySelector('#health').textContent") as? String ?? ""
                XCTAssertTrue(health.contains("poloniex") && health.contains("63.2") && health.contains("41.5"), health)

                // 4. screenshot
                try await Task.sleep(for: .milliseconds(300))
                let shot = try await cdp.call("Page.captureScreenshot", ["format": "png"])
                let png = Data(base64Encoded: shot["data"] as? String ?? "") ?? Data()
                XCTAssertTrue(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG")
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("tape-dashboard.png")
                try png.write(to: out)
                if ProcessInfo.processInfo.environment["TAPE_UPDATE_SCREENSHOT"] == "1" {
                    try png.write(to: OpenAPIConformanceTests.specURL.deletingLastPathComponent().appendingPathComponent("dashboard.png"))
                }
                print("dashboard screenshot: \(out.path) (\(png.count) bytes)")
            }
        }
    }
}

/// A headless Chromium with the DevTools protocol on a free loopback port.
final class ChromiumProcess: @unchecked Sendable {
    let child: ChildProcess
    let profile: URL

    init(path: String) throws {
        profile = try temporaryDirectory("chromium")
        child = try ChildProcess(
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir=\(profile.path)", "about:blank",
            ], name: "chromium", executable: path, stdoutToLog: true)
    }

    /// `ws://127.0.0.1:PORT/devtools/browser/ID`, from Chromium's stderr.
    func devToolsURL(timeout: Double) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = child.stderr
            if let r = text.range(of: "DevTools listening on ") {
                let url = text[r.upperBound...].prefix { !$0.isWhitespace }
                return String(url)
            }
            if !child.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSupportError("timed out waiting for Chromium's DevTools address; stderr: \(child.stderr)")
    }

    /// Opens `url` in a new tab (1400×860 unless told) and hands a DevTools session on it to `body`.
    func withPage(
        _ url: String, width: Int = 1400, height: Int = 860, _ body: @escaping @Sendable (inout DevTools) async throws -> Void
    ) async throws {
        let devtools = try await devToolsURL(timeout: 60)
        try await WebSocketClient.connect(url: devtools, configuration: .init(maxFrameSize: 1 << 26), logger: Logger(label: "test.cdp")) {
            inbound, outbound, _ in
            var cdp = DevTools(inbound: inbound.messages(maxSize: 1 << 26).makeAsyncIterator(), outbound: outbound)
            let target = try await cdp.call("Target.createTarget", ["url": "about:blank"])
            let targetId = target["targetId"] as? String ?? ""
            let attached = try await cdp.call("Target.attachToTarget", ["targetId": targetId, "flatten": true])
            cdp.session = attached["sessionId"] as? String
            _ = try await cdp.call("Emulation.setDeviceMetricsOverride", ["width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600])
            _ = try await cdp.call("Page.navigate", ["url": url])
            try await body(&cdp)
            _ = try? await cdp.call("Target.closeTarget", ["targetId": targetId], session: false)
        }
    }

    func stop() {
        child.terminate(timeout: 10)
        try? FileManager.default.removeItem(at: profile)
        try? FileManager.default.removeItem(at: child.stderrURL)
    }
}

/// A minimal Chrome DevTools Protocol client over one WebSocket (flattened target sessions).
struct DevTools {
    var inbound: WebSocketInboundMessageStream.AsyncIterator
    let outbound: WebSocketOutboundWriter
    var nextID = 0
    var session: String?

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    mutating func call(_ method: String, _ params: [String: Any], session useSession: Bool = true) async throws -> [String: Any] {
        nextID += 1
        var message: [String: Any] = ["id": nextID, "method": method, "params": params]
        if useSession, let session { message["sessionId"] = session }
        let data = try JSONSerialization.data(withJSONObject: message)
        try await outbound.write(.text(String(decoding: data, as: UTF8.self)))
        while let frame = try await inbound.next() {
            guard case .text(let text) = frame else { continue }
            let reply = Data(text.utf8).jsonObject
            guard (reply["id"] as? NSNumber)?.intValue == nextID else { continue }  // events and other replies
            if let error = reply["error"] as? [String: Any] { throw Failure(description: "\(method): \(error)") }
            return reply["result"] as? [String: Any] ?? [:]
        }
        throw Failure(description: "DevTools connection closed during \(method)")
    }

    /// Evaluates JS in the page; numbers and strings come back as strings (`String(value)` in JS).
    mutating func evaluate(_ expression: String) async throws -> Any? {
        let result = try await call("Runtime.evaluate", ["expression": "String(\(expression))", "returnByValue": true, "awaitPromise": true])
        if let exception = result["exceptionDetails"] { throw Failure(description: "\(expression): \(exception)") }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// Evaluates JS whose value is a promise, awaited; the result as a string.
    mutating func evaluateAwaiting(_ expression: String) async throws -> Any? {
        let result = try await call(
            "Runtime.evaluate", ["expression": "(async () => String(await (\(expression))))()", "returnByValue": true, "awaitPromise": true])
        if let exception = result["exceptionDetails"] { throw Failure(description: "\(expression): \(exception)") }
        return (result["result"] as? [String: Any])?["value"]
    }

    mutating func waitFor(_ what: String, timeout: Double, _ condition: (inout DevTools) async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? await condition(&self)) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let dom = (try? await evaluate("JSON.stringify(document.body.dataset) + ' ' + document.querySelector('#status').textContent")) ?? nil
        throw TestSupportError("timed out waiting for \(what) in the page; body data: \(dom ?? "?")")
    }
}
