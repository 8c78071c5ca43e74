import Foundation
import Hummingbird
import HummingbirdTesting
import MarketData
import TapeServer
import TapeTestSupport
import XCTest

/// The dashboard's layout and view state in a real headless Chromium, at phone, laptop and desktop
/// sizes: axis labels that differ and fit, time gaps kept, the exchange column, a labelled change,
/// the view in the URL, the market picker grouped by exchange, the venue strip, the favicon and a
/// token-protected server opened by its plain URL. Screenshots go to a temporary directory.
final class DashboardViewBrowserProcessTests: XCTestCase {
    /// A low-priced market on a second exchange, nearly flat (its whole range a few millionths),
    /// with no candles in minutes 20 to 24 (nothing traded).
    static let bch = MarketID("binance:BCH-BTC")!
    static let sizes = [(390, 844), (1280, 800), (1920, 1080)]

    func fixture(token: String? = nil) -> Fixture {
        let f = Fixture(token: token, candlesPerMarket: 40)
        for i in 0..<40 where !(20..<25).contains(i) {
            f.history.record(Fixture.candle(Self.bch, .oneMinute, index: i, base: 0.005561, amplitude: 0.0002, decimals: 8))
        }
        f.state.accept(Fixture.trade(Self.bch, id: 7, price: "0.00556123", quantity: "1.25", time: Fixture.t0 + 39 * 60_000 + 1_000))
        return f
    }

    static let screenshots: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tape-dashboard-screenshots")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    static func screenshot(_ cdp: inout DevTools, _ name: String) async throws {
        let shot = try await cdp.call("Page.captureScreenshot", ["format": "png"])
        let png = Data(base64Encoded: shot["data"] as? String ?? "") ?? Data()
        XCTAssertTrue(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG")
        let out = screenshots.appendingPathComponent(name)
        try png.write(to: out)
        print("dashboard screenshot: \(out.path)")
    }

    /// Every element that sticks out of its box (or text cut off), as text; "" when none.
    static let overflowCheck = """
        (() => { const W = document.documentElement.clientWidth, bad = [];
          if (document.documentElement.scrollWidth > W + 1) bad.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + W);
          const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + String(el.className).split(' ').join('.') : '');
          const check = (el, box) => { const r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
            if (r.width > 0 && (r.left < b.left - 1 || r.right > b.right + 1)) bad.push(name(el) + ' [' + Math.round(r.left) + ',' + Math.round(r.right) + '] outside ' + name(box) + ' [' + Math.round(b.left) + ',' + Math.round(b.right) + ']'); };
          const header = document.querySelector('header');
          for (const el of header.querySelectorAll(':scope > *, #venues > *')) check(el, header);
          for (const card of document.querySelectorAll('.card')) for (const el of card.querySelectorAll('h2 > *, canvas, .tob, .tob > *, table')) check(el, card);
          for (const el of document.querySelectorAll('#tape tr')) check(el, document.querySelector('#tape'));
          for (const el of document.querySelectorAll('.px, #tape td')) if (el.getBoundingClientRect().width > 0 && el.scrollWidth > el.clientWidth + 1) bad.push(name(el) + ' text cut: ' + el.textContent);
          return bad.join('; '); })()
        """

    func testLayoutAtPhoneLaptopAndDesktopSizes() async throws {
        guard let chromium = DashboardBrowserProcessTests.findChromium() else { throw XCTSkip("chromium is not installed (apt-get install chromium)") }
        let f = fixture()
        try await f.app.test(.live) { client in
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            for (width, height) in Self.sizes {
                try await browser.withPage("http://127.0.0.1:\(client.port!)/", width: width, height: height) { cdp in
                    try await cdp.waitFor("candles at \(width)×\(height)", timeout: 30) {
                        try await $0.evaluate(
                            "document.body.dataset.ready + ' ' + document.body.dataset.candlesDrawn + ' ' + document.body.dataset.tradesShown")
                            as? String == "1 115 7"
                    }
                    let card = { (m: MarketID) in "document.querySelector('[data-symbol=\"\(m)\"]')" }
                    // y-axis labels: distinct on every chart, the nearly flat BCH-BTC included; none clipped
                    for market in [Fixture.btc, Fixture.eth, Self.bch] {
                        let labels = try await cdp.evaluate("\(card(market)).querySelector('canvas').dataset.yLabels") as? String ?? ""
                        let list = labels.split(separator: "|").map(String.init)
                        XCTAssertGreaterThanOrEqual(list.count, 2, "\(market) at \(width): \(labels)")
                        XCTAssertEqual(Set(list).count, list.count, "\(market) labels repeat at \(width): \(labels)")
                        let clipped = try await cdp.evaluate("\(card(market)).querySelector('canvas').dataset.labelsClipped") as? String
                        XCTAssertEqual(clipped, "0", "\(market) at \(width)")
                    }
                    let bchLabels = try await cdp.evaluate("\(card(Self.bch)).querySelector('canvas').dataset.yLabels") as? String ?? ""
                    XCTAssertTrue(bchLabels.split(separator: "|").allSatisfy { $0.hasPrefix("0.0055") }, bchLabels)
                    // time gaps stay: minutes 20 to 24 are empty slots, the axis is by time
                    let slots =
                        try await cdp.evaluate(
                            "\(card(Self.bch)).querySelector('canvas').dataset.candlesDrawn + ' ' + \(card(Self.bch)).querySelector('canvas').dataset.emptySlots"
                        ) as? String
                    XCTAssertEqual(slots, "35 5")
                    let holes =
                        try await cdp.evaluate(
                            "(() => { const L = charts.get('binance:BCH-BTC').layout; return L.shown.map((k, i) => k ? '' : i).filter(x => x !== '').join(','); })()"
                        ) as? String
                    XCTAssertEqual(holes, "20,21,22,23,24")
                    // the trade tape has an exchange column
                    let head = try await cdp.evaluate("[...document.querySelectorAll('#tape th')].map(t => t.textContent).join(',')") as? String
                    XCTAssertEqual(head, "time,exchange,market,price,qty")
                    let bchRow =
                        try await cdp.evaluate(
                            "[...document.querySelectorAll('#trades tr')].map(r => [...r.cells].map(c => c.textContent).slice(1).join(' ')).find(t => t.startsWith('binance'))"
                        ) as? String
                    XCTAssertEqual(bchRow, "binance BCH-BTC 0.00556123 1.25")
                    // the change says what it is measured over
                    let change = try await cdp.evaluate("\(card(Fixture.btc)).querySelector('.px').textContent") as? String ?? ""
                    XCTAssertTrue(change.hasSuffix("% since 23:00"), change)
                    // nothing sticks out of its box
                    let overflow = try await cdp.evaluate(Self.overflowCheck) as? String
                    XCTAssertEqual(overflow, "", "at \(width)×\(height)")
                    try await Self.screenshot(&cdp, "tape-dashboard-\(width)x\(height).png")
                }
            }
        }
    }

    func testViewIsKeptInTheURLAndMarketsAreGroupedByExchange() async throws {
        guard let chromium = DashboardBrowserProcessTests.findChromium() else { throw XCTSkip("chromium is not installed (apt-get install chromium)") }
        let f = fixture()
        try await f.app.test(.live) { client in
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage("http://127.0.0.1:\(client.port!)/", width: 1280, height: 800) { cdp in
                try await cdp.waitFor("the page", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready + ' ' + document.body.dataset.candlesDrawn") as? String == "1 115"
                }
                let initial = try await cdp.evaluate("location.search") as? String
                XCTAssertEqual(initial, "?interval=1m")
                let groups =
                    try await cdp.evaluate(
                        "[...document.querySelectorAll('#market optgroup')].map(g => g.label + ':' + [...g.children].map(o => o.textContent).join('/')).join(' ')"
                    ) as? String
                XCTAssertEqual(groups, "binance:BCH-BTC poloniex:BTC-USDT/ETH-USDT")
                _ = try await cdp.evaluate("document.querySelector('[data-i=\"5m\"]').click()")
                try await cdp.waitFor("the interval in the URL", timeout: 10) {
                    try await $0.evaluate("location.search") as? String == "?interval=5m"
                }
                _ = try await cdp.evaluate(
                    "(() => { const s = document.querySelector('#market'); s.value = 'binance:BCH-BTC'; s.dispatchEvent(new Event('change')); })()")
                try await cdp.waitFor("the market in the URL", timeout: 10) {
                    try await $0.evaluate("location.search") as? String == "?symbol=binance%3ABCH-BTC&interval=5m"
                }
                let visible =
                    try await cdp.evaluate("[...document.querySelectorAll('#charts .card')].filter(c => !c.hidden).map(c => c.dataset.symbol).join()")
                    as? String
                XCTAssertEqual(visible, "binance:BCH-BTC")
                // a reload shows the same view
                _ = try await cdp.evaluate("(() => { document.body.dataset.old = '1'; location.reload(); })()")
                try await cdp.waitFor("the reloaded page", timeout: 30) {
                    try await $0.evaluate("String(document.body.dataset.old) + ' ' + document.body.dataset.ready") as? String == "undefined 1"
                }
                let view =
                    try await cdp.evaluate(
                        "[document.querySelector('#market').value, document.querySelector('#intervals .on').textContent, [...document.querySelectorAll('#charts .card')].filter(c => !c.hidden).map(c => c.dataset.symbol).join(), document.body.dataset.tradesShown, location.search].join(' ')"
                    ) as? String
                XCTAssertEqual(view, "binance:BCH-BTC 5m binance:BCH-BTC 1 ?symbol=binance%3ABCH-BTC&interval=5m")
                // back to every market
                _ = try await cdp.evaluate(
                    "(() => { const s = document.querySelector('#market'); s.value = ''; s.dispatchEvent(new Event('change')); })()")
                try await cdp.waitFor("all markets", timeout: 10) {
                    try await $0.evaluate("location.search + ' ' + [...document.querySelectorAll('#charts .card')].filter(c => !c.hidden).length")
                        as? String == "?interval=5m 3"
                }
            }
        }
    }

    /// `/api/stats` `exchanges` with a known connection (multi-exchange `tape up`): one chip per venue, hidden when none.
    func testVenueStripAndFavicon() async throws {
        guard let chromium = DashboardBrowserProcessTests.findChromium() else { throw XCTSkip("chromium is not installed (apt-get install chromium)") }
        let f = fixture()
        try await f.app.test(.live) { client in
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage("http://127.0.0.1:\(client.port!)/", width: 390, height: 844) { cdp in
                try await cdp.waitFor("the page", timeout: 30) { try await $0.evaluate("document.body.dataset.ready") as? String == "1" }
                let absent =
                    try await cdp.evaluate("document.querySelector('#venues').hidden + ' ' + document.querySelector('#venues').children.length") as? String
                XCTAssertEqual(absent, "true 0", "this server knows no exchange connection (tape serve alone)")
                // The strip from a stats answer of the multi-exchange shape; rendered and read in one
                // go (the page's own polling would put the server's answer back).
                let strip =
                    try await cdp.evaluate(
                        """
                        (() => { renderStats({ consumerLag: [], exchanges: [
                            { exchange: 'binance', simulated: true, connected: true, tradesPerSecond: 12.3, tradesTotal: 1234, lastTradeTime: 1700000000000, reconnects: 0, gapsOpen: 0 },
                            { exchange: 'coinbase', simulated: false, connected: false, tradesPerSecond: 0, tradesTotal: 5, lastTradeTime: null, reconnects: 3, gapsOpen: 0 },
                            { exchange: 'kraken<img src=x>', simulated: true, connected: true, tradesPerSecond: 4, tradesTotal: 77, lastTradeTime: 1700000000000, reconnects: 1, gapsOpen: 2 } ] });
                          const box = document.querySelector('#venues');
                          return [box.hidden, box.dataset.count, [...box.children].map(c => c.dataset.state + ':' + c.textContent).join(' | '),
                            box.querySelectorAll('img').length, box.children[0].title.includes('trades 1234')].join(' / '); })()
                        """) as? String
                XCTAssertEqual(strip, "false / 3 / ok:binancesim12.3/s | down:coinbase0.0/s | warn:kraken<img src=x>sim4.0/s / 0 / true")
                let overflow =
                    try await cdp.evaluate(
                        "(() => { renderStats({ consumerLag: [], exchanges: [{ exchange: 'binance', simulated: true, connected: true, tradesPerSecond: 12.3 }, { exchange: 'coinbase', connected: true, tradesPerSecond: 1 }, { exchange: 'kraken', connected: true, tradesPerSecond: 1 }, { exchange: 'poloniex', connected: true, tradesPerSecond: 1 }] }); return \(Self.overflowCheck); })()"
                    ) as? String
                XCTAssertEqual(overflow, "", "four chips on a phone")
                try await Self.screenshot(&cdp, "tape-dashboard-venues-390x844.png")
                _ = try await cdp.evaluate("renderStats({ exchanges: [], consumerLag: [] })")
                let hidden = try await cdp.evaluate("document.querySelector('#venues').hidden") as? String
                XCTAssertEqual(hidden, "true")
                // the favicon: a real ICO, no 404
                let icon =
                    try await cdp.evaluateAwaiting(
                        "fetch('/favicon.ico').then(async r => { const b = new Uint8Array(await r.arrayBuffer()); return r.status + ' ' + r.headers.get('content-type') + ' ' + b.length + ' ' + [...b.slice(0, 4)].join(','); })"
                    ) as? String
                XCTAssertEqual(icon, "200 image/x-icon 1150 0,0,1,0")
            }
        }
    }

    /// With a token, the URL `tape up` and `tape serve` print (no token in it) opens a page that asks
    /// for the token and then works; a `?token=` link works too and leaves no token in the address bar.
    func testTokenServerOpenedByItsPlainURL() async throws {
        guard let chromium = DashboardBrowserProcessTests.findChromium() else { throw XCTSkip("chromium is not installed (apt-get install chromium)") }
        let f = fixture(token: "s3cret")
        @Sendable func printed(_ port: Int) -> String {
            TapeServerConfiguration(host: "127.0.0.1", port: port, token: "s3cret").dashboardURL(port: port)
        }
        try await f.app.test(.live) { client in
            let browser = try ChromiumProcess(path: chromium)
            defer { browser.stop() }
            try await browser.withPage(printed(client.port!), width: 1280, height: 800) { cdp in
                try await cdp.waitFor("the page asking for the token", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready + ' ' + document.querySelector('#tokenform').hidden") as? String == "1 false"
                }
                let status = try await cdp.evaluate("document.querySelector('#status span').textContent") as? String ?? ""
                XCTAssertTrue(status.contains("needs a token"), status)
                let placeholder = try await cdp.evaluate("document.querySelector('#nomarkets').textContent") as? String ?? ""
                XCTAssertTrue(placeholder.contains("API token"), placeholder)
                let icon = try await cdp.evaluateAwaiting("fetch('/favicon.ico').then(r => r.status)") as? String
                XCTAssertEqual(icon, "200", "the favicon needs no token")
                try await Self.screenshot(&cdp, "tape-dashboard-token-form.png")
                _ = try await cdp.evaluate(
                    "(() => { document.body.dataset.old = '1'; document.querySelector('#tokenform input').value = 's3cret'; document.querySelector('#tokenform button').click(); })()"
                )
                try await cdp.waitFor("the page with the token", timeout: 30) {
                    try await $0.evaluate(
                        "String(document.body.dataset.old) + ' ' + document.body.dataset.candlesDrawn + ' ' + document.querySelector('#tokenform').hidden")
                        as? String == "undefined 115 true"
                }
                let url = try await cdp.evaluate("location.href") as? String ?? ""
                XCTAssertFalse(url.contains("s3cret"), url)
            }
            try await browser.withPage("http://127.0.0.1:\(client.port!)/?token=s3cret&interval=5m", width: 1280, height: 800) { cdp in
                try await cdp.waitFor("the page from a token link", timeout: 30) {
                    try await $0.evaluate("document.body.dataset.ready + ' ' + document.querySelector('#status').className") as? String == "1 live"
                }
                let url = try await cdp.evaluate("location.search") as? String
                XCTAssertEqual(url, "?interval=5m")
            }
        }
    }
}
