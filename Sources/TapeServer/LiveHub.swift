import CoreMetrics
import MarketData
import NIOCore
import Synchronization
import TapeMetrics

/// What a `/ws` client can subscribe to.
public enum LiveTopic: Sendable, Hashable, CustomStringConvertible {
    case trades(MarketID)
    case candles(MarketID, CandleInterval)
    /// Gap records (found, repaired) of one market, as `tape.gaps` has them.
    case gaps(MarketID)
    /// The top of one market's order book, at most every `LiveHub.bookInterval`.
    case book(MarketID)

    public var description: String {
        switch self {
        case .trades(let m): "trades \(m)"
        case .candles(let m, let i): "candles \(m) \(i)"
        case .gaps(let m): "gaps \(m)"
        case .book(let m): "book \(m)"
        }
    }
}

/// Fans live trades, candles and gap records out to WebSocket clients.
///
/// Each event is encoded to JSON once and handed to every subscriber's bounded queue; a client
/// that does not keep up loses its oldest queued messages (counted in
/// `tape_ws_messages_dropped_total`), never slowing the feed or other clients.
public final class LiveHub: Sendable {
    /// One connected client's outbound queue.
    public struct Client: Sendable {
        public let id: Int
        /// UTF-8 JSON texts, each sent as one WebSocket text frame.
        public let messages: AsyncStream<ByteBuffer>
        let continuation: AsyncStream<ByteBuffer>.Continuation

        /// Queues a message for this client only (replies to its requests).
        public func send(_ text: String) { continuation.yield(ByteBuffer(string: text)) }
    }

    private struct Subscriber {
        var id: Int
        var continuation: AsyncStream<ByteBuffer>.Continuation
    }

    private struct State {
        var nextID = 0
        /// Each topic's clients in the order they subscribed: publishing (per event) copies only a
        /// reference to the list.
        var subscribers: [LiveTopic: [Subscriber]] = [:]
        var topicsOf: [Int: Set<LiveTopic>] = [:]

        mutating func removeSubscriber(_ id: Int, from topic: LiveTopic) {
            subscribers[topic]?.removeAll { $0.id == id }
            if subscribers[topic]?.isEmpty == true { subscribers[topic] = nil }
        }
    }

    private let state = Mutex(State())
    private let messagesOut = Counter(label: TapeMetrics.wsMessagesOut)
    private let messagesDropped = Counter(label: TapeMetrics.wsMessagesDropped)
    private let clientsGauge = Gauge(label: TapeMetrics.wsClients)
    /// Messages queued per client before the oldest are dropped. Default 4096.
    public let queueCapacity: Int

    public init(queueCapacity: Int = 4096) {
        self.queueCapacity = max(1, queueCapacity)
    }

    /// Registers a client; `disconnect` it when its socket closes.
    public func connect() -> Client {
        let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(queueCapacity))
        let (id, count) = state.withLock { s in
            s.nextID += 1
            s.topicsOf[s.nextID] = []
            return (s.nextID, s.topicsOf.count)
        }
        clientsGauge.record(count)
        return Client(id: id, messages: stream, continuation: continuation)
    }

    public func subscribe(_ client: Client, to topic: LiveTopic) {
        state.withLock { s in
            guard s.topicsOf[client.id]?.insert(topic).inserted == true else { return }  // gone, or subscribed already
            s.subscribers[topic, default: []].append(Subscriber(id: client.id, continuation: client.continuation))
        }
    }

    public func unsubscribe(_ client: Client, from topic: LiveTopic) {
        state.withLock { s in
            guard s.topicsOf[client.id]?.remove(topic) != nil else { return }
            s.removeSubscriber(client.id, from: topic)
        }
    }

    public func disconnect(_ client: Client) {
        let count = state.withLock { s in
            for topic in s.topicsOf[client.id] ?? [] { s.removeSubscriber(client.id, from: topic) }
            s.topicsOf[client.id] = nil
            return s.topicsOf.count
        }
        client.continuation.finish()
        clientsGauge.record(count)
    }

    /// Subscribers of a topic (tests wait on it; the dashboard test uses it to know the page is live).
    public func subscriberCount(_ topic: LiveTopic) -> Int { state.withLock { $0.subscribers[topic]?.count ?? 0 } }

    /// Connected clients.
    public var clientCount: Int { state.withLock { $0.topicsOf.count } }

    public func publish(_ trade: Trade) {
        let targets = state.withLock { $0.subscribers[.trades(trade.market)] ?? [] }
        guard !targets.isEmpty else { return }
        deliver(LiveMessage.trade(trade), to: targets)
    }

    public func publish(_ candle: Candle) {
        let targets = state.withLock { $0.subscribers[.candles(candle.market, candle.interval)] ?? [] }
        guard !targets.isEmpty else { return }
        deliver(LiveMessage.candle(candle), to: targets)
    }

    public func publish(_ gap: Gap) {
        let targets = state.withLock { $0.subscribers[.gaps(gap.market)] ?? [] }
        guard !targets.isEmpty else { return }
        deliver(LiveMessage.gap(gap), to: targets)
    }

    /// Levels per side sent to `book` subscribers.
    public static let bookDepth = 20
    /// Least time between two `book` messages of one market.
    public static let bookInterval: Duration = .milliseconds(250)

    /// Markets with at least one `book` subscriber.
    func bookSubscriptions() -> Set<MarketID> {
        state.withLock { s in
            var markets: Set<MarketID> = []
            for topic in s.subscribers.keys { if case .book(let market) = topic { markets.insert(market) } }
            return markets
        }
    }

    public func publish(_ book: BookView) {
        let targets = state.withLock { $0.subscribers[.book(book.market)] ?? [] }
        guard !targets.isEmpty else { return }
        deliver(LiveMessage.book(book), to: targets)
    }

    /// Encoded once; every client's frame shares the same bytes.
    private func deliver(_ json: [UInt8], to targets: [Subscriber]) {
        let bytes = ByteBuffer(bytes: json)
        var dropped = 0
        for target in targets {
            if case .dropped = target.continuation.yield(bytes) { dropped += 1 }
        }
        messagesOut.increment(by: targets.count)
        if dropped > 0 { messagesDropped.increment(by: dropped) }
    }
}
