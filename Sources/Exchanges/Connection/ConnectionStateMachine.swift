import TapeCommon

/// The life of one exchange websocket connection, as a value: connecting → subscribing →
/// subscribed → (stale) → reconnecting → connecting ... It performs no I/O and reads no clock:
/// every event carries `now` (time since an arbitrary origin) and returns the `Action` the driver
/// (`ExchangeConnection`) must carry out. Tested without sockets in `ConnectionStateMachineTests`.
///
/// Rules it enforces:
/// - a failed or lost connection is always followed by a reconnect after a capped, jittered,
///   exponential backoff (`Backoff`) — it never gives up;
/// - while subscribed, an application ping goes out every `pingInterval`;
/// - a subscribed connection that received no frame for `silenceTimeout` (while Tape was not itself
///   busy handing trades downstream) is *stale* and gets replaced;
/// - connect and subscribe have deadlines;
/// - after every successful subscribe, the driver backfills from REST (`.backfill`).
public struct ConnectionStateMachine: Sendable {
    /// Timing of the loop.
    public struct Configuration: Sendable, Hashable {
        /// Application ping period while subscribed. Default 15 s (Poloniex drops clients silent for 30 s).
        public var pingInterval: Duration = .seconds(15)
        /// No frame for this long while subscribed → the connection is replaced. Default 30 s.
        public var silenceTimeout: Duration = .seconds(30)
        /// Deadline for the TCP + websocket handshake. Default 10 s.
        public var connectTimeout: Duration = .seconds(10)
        /// Deadline for the subscribe acknowledgement. Default 10 s.
        public var subscribeTimeout: Duration = .seconds(10)
        /// Delays between attempts.
        public var backoff = Backoff()

        public init() {}
    }

    /// Capped exponential backoff with jitter: attempt n waits `initial × multiplier^(n-1)`, capped
    /// at `maximum`, minus up to `jitter` (a fraction) of it, drawn at random.
    public struct Backoff: Sendable, Hashable {
        /// First delay. Default 250 ms.
        public var initial: Duration = .milliseconds(250)
        /// Largest delay. Default 30 s.
        public var maximum: Duration = .seconds(30)
        /// Growth per attempt. Default 2.
        public var multiplier: Double = 2
        /// Fraction of the delay that is randomised away (0 = none, 1 = "full jitter"). Default 0.5.
        public var jitter: Double = 0.5

        public init() {}

        /// The delay before attempt `attempt` (1-based) given a uniform random `unit` in [0, 1).
        public func delay(attempt: Int, unit: Double) -> Duration {
            let base = initial.seconds * pow(multiplier, Double(max(0, min(attempt - 1, 62))))
            let capped = min(base, maximum.seconds)
            let jittered = capped * (1 - jitter * min(max(unit, 0), 1))
            return .nanoseconds(Int64(jittered * 1e9))
        }
    }

    /// Why a connection was (or is to be) closed.
    public enum CloseReason: Sendable, Hashable, CustomStringConvertible {
        /// No frame for `silenceTimeout`.
        case silent(Duration)
        case connectTimeout
        case subscribeTimeout
        /// The exchange answered the subscription with an error.
        case subscribeRejected(String)
        /// The peer or the network closed it (with what the driver saw).
        case lost(String)
        /// Connecting failed (refused, DNS, handshake ...).
        case connectFailed(String)
        case shutdown

        public var description: String {
            switch self {
            case .silent(let d): "no frame for \(d.seconds.formatted1) s"
            case .connectTimeout: "connect timed out"
            case .subscribeTimeout: "no subscribe acknowledgement in time"
            case .subscribeRejected(let m): "subscription rejected: \(m)"
            case .lost(let m): "connection lost: \(m)"
            case .connectFailed(let m): "connect failed: \(m)"
            case .shutdown: "shutdown"
            }
        }
    }

    public enum State: Sendable, Hashable {
        case idle
        /// A connect attempt is under way (`attempt` counts failures since the last good session, from 1).
        case connecting(attempt: Int, since: Duration)
        /// Connected; subscribe sent; waiting for the ack.
        case subscribing(attempt: Int, since: Duration, lastFrameAt: Duration)
        /// Receiving data.
        case subscribed(Session)
        /// The machine asked the driver to close the connection (silence, a deadline, a rejected
        /// subscription); `attempt` is the attempt number the next reconnect continues from.
        case stale(since: Duration, attempt: Int)
        /// Waiting `until` before the next connect attempt.
        case reconnecting(attempt: Int, until: Duration)
        case stopped
    }

    /// What a subscribed connection keeps.
    public struct Session: Sendable, Hashable {
        public var since: Duration
        public var lastFrameAt: Duration
        public var lastPingAt: Duration
        /// True while the driver is handing data downstream (back-pressure): silence is not counted.
        public var busy: Bool
    }

    public enum Action: Sendable, Hashable {
        case none
        /// Open the websocket.
        case connect
        /// Send the subscribe request(s).
        case sendSubscribe
        /// Send the application ping.
        case sendPing
        /// Fetch recent trades over REST and reconcile them with what was seen.
        case backfill
        /// Close the socket; then report `connectionClosed`.
        case close(CloseReason)
        /// Log the failure (it is never silent), wait `delay`, then report `reconnectDue`.
        case scheduleReconnect(delay: Duration, attempt: Int, reason: CloseReason)
    }

    public let configuration: Configuration
    public private(set) var state: State = .idle
    /// Connections that were replaced or retried (for metrics).
    public private(set) var reconnects = 0
    /// Sessions that reached `subscribed`.
    public private(set) var subscriptions = 0
    private var random: SplitMix64

    public init(configuration: Configuration = .init(), seed: UInt64 = 0x7A9E) {
        self.configuration = configuration
        self.random = SplitMix64(seed: seed)
    }

    // MARK: - events

    /// Starts the loop.
    public mutating func start(now: Duration) -> Action {
        guard case .idle = state else { return .none }
        state = .connecting(attempt: 1, since: now)
        return .connect
    }

    /// The websocket handshake completed.
    public mutating func connected(now: Duration) -> Action {
        guard case .connecting(let attempt, _) = state else { return .none }
        state = .subscribing(attempt: attempt, since: now, lastFrameAt: now)
        return .sendSubscribe
    }

    /// The exchange acknowledged the subscription.
    public mutating func subscribeAcknowledged(now: Duration) -> Action {
        guard case .subscribing = state else { return .none }
        state = .subscribed(Session(since: now, lastFrameAt: now, lastPingAt: now, busy: false))
        subscriptions += 1
        return .backfill
    }

    /// The exchange sent an `error` event. While subscribing it means the subscription failed.
    public mutating func exchangeError(_ message: String, now: Duration) -> Action {
        switch state {
        case .subscribing(let attempt, _, _):
            state = .stale(since: now, attempt: attempt)
            return .close(.subscribeRejected(message))
        default:
            return .none
        }
    }

    /// Any frame arrived.
    public mutating func frameReceived(now: Duration) {
        switch state {
        case .subscribing(let attempt, let since, _):
            state = .subscribing(attempt: attempt, since: since, lastFrameAt: now)
        case .subscribed(var session):
            session.lastFrameAt = now
            state = .subscribed(session)
        default:
            break
        }
    }

    /// The driver started (`busy: true`) or finished handing data downstream; silence is not
    /// measured while it is busy, and finishing counts as activity.
    public mutating func downstream(busy: Bool, now: Duration) {
        guard case .subscribed(var session) = state else { return }
        session.busy = busy
        if !busy { session.lastFrameAt = max(session.lastFrameAt, now) }
        state = .subscribed(session)
    }

    /// Periodic check (the driver calls it about once a second).
    public mutating func tick(now: Duration) -> Action {
        switch state {
        case .connecting(let attempt, let since):
            if now - since >= configuration.connectTimeout {
                state = .stale(since: now, attempt: attempt)
                return .close(.connectTimeout)
            }
        case .subscribing(let attempt, let since, _):
            if now - since >= configuration.subscribeTimeout {
                state = .stale(since: now, attempt: attempt)
                return .close(.subscribeTimeout)
            }
        case .subscribed(var session):
            if !session.busy && now - session.lastFrameAt >= configuration.silenceTimeout {
                let silence = now - session.lastFrameAt
                state = .stale(since: now, attempt: 1)
                return .close(.silent(silence))
            }
            if now - session.lastPingAt >= configuration.pingInterval {
                session.lastPingAt = now
                state = .subscribed(session)
                return .sendPing
            }
        case .reconnecting(let attempt, let until):
            if now >= until {
                state = .connecting(attempt: attempt, since: now)
                return .connect
            }
        case .idle, .stale, .stopped:
            break
        }
        return .none
    }

    /// The connect attempt failed.
    public mutating func connectFailed(_ message: String, now: Duration) -> Action {
        guard case .connecting(let attempt, _) = state else { return .none }
        return scheduleReconnect(attempt: attempt, reason: .connectFailed(message), now: now)
    }

    /// The connection ended (closed by us after `.close`, by the peer, or by an error).
    /// `reason` is used unless the machine itself asked for the close (then its own reason is kept by the caller).
    public mutating func connectionClosed(_ reason: CloseReason, now: Duration) -> Action {
        switch state {
        case .subscribed:
            // A session that worked: start the backoff over.
            return scheduleReconnect(attempt: 1, reason: reason, now: now)
        case .subscribing(let attempt, _, _), .connecting(let attempt, _):
            return scheduleReconnect(attempt: attempt, reason: reason, now: now)
        case .stale(_, let attempt):
            return scheduleReconnect(attempt: attempt, reason: reason, now: now)
        case .idle, .reconnecting, .stopped:
            return .none
        }
    }

    /// The backoff delay elapsed.
    public mutating func reconnectDue(now: Duration) -> Action {
        guard case .reconnecting(let attempt, _) = state else { return .none }
        state = .connecting(attempt: attempt, since: now)
        return .connect
    }

    /// Stop for good (graceful shutdown).
    public mutating func stop() -> Action {
        let wasOpen: Bool
        switch state {
        case .subscribing, .subscribed, .stale: wasOpen = true
        default: wasOpen = false
        }
        state = .stopped
        return wasOpen ? .close(.shutdown) : .none
    }

    // MARK: -

    private mutating func scheduleReconnect(attempt: Int, reason: CloseReason, now: Duration) -> Action {
        let delay = configuration.backoff.delay(attempt: attempt, unit: Double(random.next() >> 11) * 0x1.0p-53)
        state = .reconnecting(attempt: attempt + 1, until: now + delay)
        reconnects += 1
        return .scheduleReconnect(delay: delay, attempt: attempt, reason: reason)
    }
}

extension Double {
    var formatted1: String {
        let tenths = (self * 10).rounded()
        return "\(Int64(tenths) / 10).\(abs(Int64(tenths) % 10))"
    }
}

@inline(__always) private func pow(_ base: Double, _ exponent: Double) -> Double {
    var result = 1.0
    var i = 0
    while Double(i) < exponent {
        result *= base
        i += 1
    }
    return result
}
