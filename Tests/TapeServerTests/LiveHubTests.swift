import MarketData
import NIOCore
import TapeServer
import XCTest

/// The hub's subscriber lists, without sockets.
final class LiveHubTests: XCTestCase {
    /// Every message a client was sent, once it is disconnected.
    func received(_ client: LiveHub.Client) async -> [String] {
        var out: [String] = []
        for await bytes in client.messages { out.append(String(buffer: bytes)) }
        return out
    }

    func testEachSubscriberGetsAnEventOnceHoweverOftenItSubscribed() async {
        let hub = LiveHub()
        let a = hub.connect()
        let b = hub.connect()
        hub.subscribe(a, to: .trades(Fixture.btc))
        hub.subscribe(a, to: .trades(Fixture.btc))
        hub.subscribe(b, to: .trades(Fixture.btc))
        hub.subscribe(b, to: .trades(Fixture.eth))
        XCTAssertEqual(hub.subscriberCount(.trades(Fixture.btc)), 2)
        hub.publish(Fixture.trade(Fixture.btc, id: 1, price: "100", time: Fixture.t0))
        hub.unsubscribe(a, from: .trades(Fixture.btc))
        hub.unsubscribe(a, from: .trades(Fixture.btc))
        XCTAssertEqual(hub.subscriberCount(.trades(Fixture.btc)), 1)
        hub.publish(Fixture.trade(Fixture.btc, id: 2, price: "101", time: Fixture.t0 + 1))
        hub.publish(Fixture.trade(Fixture.eth, id: 3, price: "10", time: Fixture.t0 + 2))
        hub.disconnect(a)
        hub.disconnect(b)
        XCTAssertEqual(hub.subscriberCount(.trades(Fixture.btc)), 0)
        XCTAssertEqual(hub.subscriberCount(.trades(Fixture.eth)), 0)
        let toA = await received(a)
        let toB = await received(b)
        XCTAssertEqual(toA.count, 1, "\(toA)")
        XCTAssertTrue(toA.first?.contains(#""tradeId":"1""#) == true, "\(toA)")
        XCTAssertEqual(toB.count, 3, "\(toB)")
        for (message, id) in zip(toB, ["1", "2", "3"]) { XCTAssertTrue(message.contains(#""tradeId":"\#(id)""#), message) }
    }

    func testADisconnectedClientCannotSubscribe() {
        let hub = LiveHub()
        let a = hub.connect()
        hub.disconnect(a)
        hub.subscribe(a, to: .trades(Fixture.btc))
        XCTAssertEqual(hub.subscriberCount(.trades(Fixture.btc)), 0)
        XCTAssertEqual(hub.clientCount, 0)
    }
}
