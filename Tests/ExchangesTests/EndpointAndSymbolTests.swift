import Exchanges
import MarketData
import XCTest

final class EndpointAndSymbolTests: XCTestCase {
    func testEndpoints() throws {
        let ws = try Endpoint("ws://127.0.0.1:8765/ws/public")
        XCTAssertEqual(ws.host, "127.0.0.1")
        XCTAssertEqual(ws.port, 8765)
        XCTAssertEqual(ws.path, "/ws/public")
        XCTAssertFalse(ws.isSecure)
        let wss = try Endpoint("wss://ws.poloniex.com/ws/public")
        XCTAssertEqual(wss.port, 443)
        XCTAssertTrue(wss.isSecure)
        let rest = try Endpoint("http://[::1]:9000")
        XCTAssertEqual(rest.host, "::1")
        XCTAssertEqual(rest.appending(path: "/markets").path, "/markets")
        XCTAssertEqual(try Endpoint("http://h:1/api/").appending(path: "/markets").path, "/api/markets")
        XCTAssertThrowsError(try Endpoint("127.0.0.1:80"))
        XCTAssertThrowsError(try Endpoint("ftp://x/"))
        XCTAssertThrowsError(try Endpoint("ws://x:99999/"))
    }

    let markets = [
        ListedMarket(nativeSymbol: "BTC_USDT", symbol: Symbol(normalizing: "BTC_USDT"), isTrading: true),
        ListedMarket(nativeSymbol: "ETH_USDT", symbol: Symbol(normalizing: "ETH_USDT"), isTrading: true),
        ListedMarket(nativeSymbol: "OLD_USDT", symbol: Symbol(normalizing: "OLD_USDT"), isTrading: false),
    ]

    func testSymbolsAreCheckedAgainstTheMarketList() throws {
        XCTAssertEqual(try SymbolSelection.resolve(["BTC_USDT", "eth-usdt"], markets: markets, exchange: .poloniex), ["BTC_USDT", "ETH_USDT"])
        XCTAssertEqual(try SymbolSelection.resolve(["all"], markets: markets, exchange: .poloniex), ["BTC_USDT", "ETH_USDT"])
        do {
            _ = try SymbolSelection.resolve(["BTC_USDT", "NOPE_USDT"], markets: markets, exchange: .poloniex)
            XCTFail("accepted an unknown symbol")
        } catch {
            XCTAssertEqual(error.code, .unknownSymbol)
            XCTAssertTrue(error.message.contains("NOPE_USDT"), error.message)
        }
        XCTAssertThrowsError(try SymbolSelection.resolve(["OLD_USDT"], markets: markets, exchange: .poloniex))
    }
}
