import Exchanges
import Foundation
import TapeTestSupport
import XCTest

/// The connection loop's rules, checked on the pure state machine (no sockets, no clock).
final class ConnectionStateMachineTests: XCTestCase {
    typealias Machine = ConnectionStateMachine

    func configuration() -> Machine.Configuration {
        var c = Machine.Configuration()
        c.pingInterval = .seconds(15)
        c.silenceTimeout = .seconds(30)
        c.connectTimeout = .seconds(10)
        c.subscribeTimeout = .seconds(10)
        c.backoff.initial = .milliseconds(250)
        c.backoff.maximum = .seconds(30)
        c.backoff.jitter = 0.5
        return c
    }

    func subscribedMachine(at t: Duration = .zero) -> Machine {
        var m = Machine(configuration: configuration(), seed: 7)
        XCTAssertEqual(m.start(now: t), .connect)
        XCTAssertEqual(m.connected(now: t), .sendSubscribe)
        XCTAssertEqual(m.subscribeAcknowledged(now: t), .backfill)
        return m
    }

    func testHappyPathConnectsSubscribesAndBackfills() {
        var m = Machine(configuration: configuration())
        XCTAssertEqual(m.state, .idle)
        XCTAssertEqual(m.start(now: .zero), .connect)
        XCTAssertEqual(m.start(now: .zero), .none, "a second start does nothing")
        XCTAssertEqual(m.connected(now: .seconds(1)), .sendSubscribe)
        guard case .subscribing = m.state else { return XCTFail("\(m.state)") }
        XCTAssertEqual(m.subscribeAcknowledged(now: .seconds(2)), .backfill)
        guard case .subscribed = m.state else { return XCTFail("\(m.state)") }
        XCTAssertEqual(m.subscriptions, 1)
    }

    func testPingsEveryIntervalWhileSubscribed() {
        var m = subscribedMachine()
        var pings: [Int] = []
        for second in 1...61 {
            m.frameReceived(now: .seconds(second))
            if m.tick(now: .seconds(second)) == .sendPing { pings.append(second) }
        }
        XCTAssertEqual(pings, [15, 30, 45, 60])
    }

    func testSilenceMakesTheConnectionStaleAndItIsReplaced() {
        var m = subscribedMachine()
        m.frameReceived(now: .seconds(5))
        for second in 6..<35 {
            let action = m.tick(now: .seconds(second))
            XCTAssertTrue(action == .none || action == .sendPing, "second \(second): \(action)")
        }
        let action = m.tick(now: .seconds(35))
        XCTAssertEqual(action, .close(.silent(.seconds(30))))
        guard case .stale = m.state else { return XCTFail("\(m.state)") }
        guard case .scheduleReconnect(let delay, let attempt, let reason) = m.connectionClosed(.silent(.seconds(30)), now: .seconds(35))
        else { return XCTFail("no reconnect") }
        XCTAssertEqual(attempt, 1, "a session that worked restarts the backoff")
        XCTAssertEqual(reason, .silent(.seconds(30)))
        XCTAssertLessThanOrEqual(delay, .milliseconds(250))
        XCTAssertGreaterThanOrEqual(delay, .milliseconds(125))
        XCTAssertEqual(m.reconnects, 1)
    }

    func testSilenceIsNotCountedWhileDownstreamIsBusy() {
        var m = subscribedMachine()
        m.downstream(busy: true, now: .seconds(1))
        for second in 2...100 {
            if case .close = m.tick(now: .seconds(second)) { return XCTFail("closed while busy at \(second)") }
        }
        m.downstream(busy: false, now: .seconds(100))
        XCTAssertNotEqual(m.tick(now: .seconds(101)), .close(.silent(.seconds(1))))
        if case .close = m.tick(now: .seconds(129)) { XCTFail("closed too early") }
        XCTAssertEqual(m.tick(now: .seconds(130)), .close(.silent(.seconds(30))))
    }

    func testBackoffGrowsIsCappedAndNeverGivesUp() {
        var m = Machine(configuration: configuration(), seed: 42)
        XCTAssertEqual(m.start(now: .zero), .connect)
        var now: Duration = .zero
        var delays: [Duration] = []
        for attempt in 1...20 {
            guard case .scheduleReconnect(let delay, let a, let reason) = m.connectFailed("refused", now: now) else {
                return XCTFail("attempt \(attempt) did not schedule a reconnect")
            }
            XCTAssertEqual(a, attempt)
            XCTAssertEqual(reason, .connectFailed("refused"))
            delays.append(delay)
            now += delay
            XCTAssertEqual(m.reconnectDue(now: now), .connect)
        }
        // Upper bound doubles from 250 ms and is capped at 30 s; jitter takes off at most half.
        for (i, delay) in delays.enumerated() {
            let cap = min(0.25 * pow(2, Double(i)), 30)
            XCTAssertLessThanOrEqual(delay.seconds, cap + 1e-9, "attempt \(i + 1)")
            XCTAssertGreaterThanOrEqual(delay.seconds, cap / 2 - 1e-9, "attempt \(i + 1)")
        }
        XCTAssertGreaterThan(delays.last!.seconds, 14.9)
        XCTAssertEqual(m.reconnects, 20)
        // Jitter: not all capped delays are equal.
        XCTAssertGreaterThan(Set(delays.suffix(8)).count, 1)
    }

    func testSameSeedSameDelays() {
        func run(seed: UInt64) -> [Duration] {
            var m = Machine(configuration: configuration(), seed: seed)
            _ = m.start(now: .zero)
            var out: [Duration] = []
            for _ in 0..<5 {
                if case .scheduleReconnect(let d, _, _) = m.connectFailed("x", now: .zero) { out.append(d) }
                _ = m.reconnectDue(now: .zero)
            }
            return out
        }
        XCTAssertEqual(run(seed: 1), run(seed: 1))
        XCTAssertNotEqual(run(seed: 1), run(seed: 2))
    }

    func testSubscribeDeadlineAndRejection() {
        var m = Machine(configuration: configuration())
        _ = m.start(now: .zero)
        _ = m.connected(now: .zero)
        XCTAssertEqual(m.tick(now: .seconds(9)), .none)
        XCTAssertEqual(m.tick(now: .seconds(10)), .close(.subscribeTimeout))
        guard case .scheduleReconnect(_, let attempt, _) = m.connectionClosed(.subscribeTimeout, now: .seconds(10)) else {
            return XCTFail()
        }
        XCTAssertEqual(attempt, 1)
        _ = m.reconnectDue(now: .seconds(11))
        _ = m.connected(now: .seconds(11))
        XCTAssertEqual(m.exchangeError("Invalid symbol: NOPE", now: .seconds(11)), .close(.subscribeRejected("Invalid symbol: NOPE")))
        guard case .scheduleReconnect(_, let attempt2, _) = m.connectionClosed(.subscribeRejected("x"), now: .seconds(11)) else {
            return XCTFail()
        }
        XCTAssertEqual(attempt2, 2, "failures before a good session keep growing the backoff")
    }

    func testConnectDeadline() {
        var m = Machine(configuration: configuration())
        _ = m.start(now: .zero)
        XCTAssertEqual(m.tick(now: .seconds(10)), .close(.connectTimeout))
    }

    func testPeerCloseWhileSubscribedReconnectsQuickly() {
        var m = subscribedMachine()
        guard case .scheduleReconnect(let delay, 1, .lost("eof")) = m.connectionClosed(.lost("eof"), now: .seconds(3)) else {
            return XCTFail()
        }
        XCTAssertLessThanOrEqual(delay, .milliseconds(250))
        guard case .reconnecting = m.state else { return XCTFail("\(m.state)") }
        XCTAssertEqual(m.tick(now: .seconds(3)), .none)
        XCTAssertEqual(m.tick(now: .seconds(4)), .connect)
    }

    func testStop() {
        var m = subscribedMachine()
        XCTAssertEqual(m.stop(), .close(.shutdown))
        XCTAssertEqual(m.state, .stopped)
        XCTAssertEqual(m.connectionClosed(.shutdown, now: .seconds(1)), .none, "no reconnect after stop")
        XCTAssertEqual(m.tick(now: .seconds(100)), .none)
    }
}
