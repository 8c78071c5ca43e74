import CoreMetrics
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import TapeMetrics

/// Limits of the HTTP side (docs/limits.md).
public struct HTTPLimits: Sendable {
    /// Longest request line (method, URL, version). Longer: 414 URI Too Long and the connection closes.
    public var maxRequestLineBytes = 8 << 10
    /// Largest header block. Larger: 431 Request Header Fields Too Large and the connection closes.
    public var maxHeaderBytes = 32 << 10
    /// A request head (line and headers) must arrive within this long once started. 30 s.
    public var headTimeoutMs: Int64 = 30_000
    /// A connection with no request in progress and no traffic for this long is closed (WebSocket
    /// connections excepted). 120 s.
    public var idleTimeoutMs: Int64 = 120_000
    /// HTTP and WebSocket connections at once. At the cap the keep-alive connection idle longest
    /// (at least 1 s) is closed to make room; if none is, the newcomer gets 503. 512.
    public var maxConnections = 512
    public init() {}
}

/// Counters of the HTTP limits, for tests and metrics, and the open connections' last traffic
/// (so a newcomer at the cap can take the place of the connection idle longest).
public final class HTTPLimitCounters: Sendable {
    public let open = Atomic<Int>(0)
    public let refused = Atomic<Int>(0)
    /// Idle connections closed to make room for a new one at the cap.
    public let evicted = Atomic<Int>(0)
    private let metrics: [String: Counter]?

    /// `metrics`: also count in `tape_http_rejected_total{reason}` (make it once swift-metrics is bootstrapped).
    public init(metrics: Bool = false) {
        self.metrics =
            metrics
            ? Dictionary(
                uniqueKeysWithValues: ["uri-too-long", "headers-too-large", "timeout", "refused", "evicted"].map { ($0, TapeMetrics.httpRejected(reason: $0)) })
            : nil
    }

    func record(_ reason: String, _ counter: borrowing Synchronization.Atomic<Int>) {
        counter.add(1, ordering: .relaxed)
        metrics?[reason]?.increment()
    }

    private let idleSince = Mutex<[ObjectIdentifier: (nanos: UInt64, close: @Sendable () -> Void)]>([:])

    /// `nanos` is the uptime of the last traffic, or nil while a request is in progress (not idle).
    func update(_ id: ObjectIdentifier, idleSince nanos: UInt64?, close: @escaping @Sendable () -> Void) {
        idleSince.withLock { table in
            if let nanos { table[id] = (nanos, close) } else { table[id] = nil }
        }
    }

    func forget(_ id: ObjectIdentifier) { _ = idleSince.withLock { $0.removeValue(forKey: id) } }

    /// Closes the connection idle longest, if idle for at least `minimumNanos`.
    func evictIdlest(now: UInt64, minimumNanos: UInt64) -> Bool {
        let victim: (@Sendable () -> Void)? = idleSince.withLock { table in
            guard let (id, entry) = table.min(by: { $0.value.nanos < $1.value.nanos }), now >= entry.nanos, now - entry.nanos >= minimumNanos else {
                return nil
            }
            table[id] = nil
            return entry.close
        }
        victim?()
        return victim != nil
    }
    public let uriTooLong = Atomic<Int>(0)
    public let headersTooLarge = Atomic<Int>(0)
    public let timedOut = Atomic<Int>(0)
}

/// Wraps Hummingbird's child channel: counts connections against the cap and puts an
/// `HTTPHeadGuard` in front of the HTTP decoder.
struct GuardedChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let limits: HTTPLimits
    let counters: HTTPLimitCounters

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        var open = counters.open.add(1, ordering: .relaxed).newValue
        let counters = self.counters
        channel.closeFuture.whenComplete { _ in counters.open.subtract(1, ordering: .relaxed) }
        if open > limits.maxConnections, counters.evictIdlest(now: NIODeadline.now().uptimeNanoseconds, minimumNanos: 1_000_000_000) {
            counters.record("evicted", counters.evicted)
            open -= 1
        }
        let over = open > limits.maxConnections
        let guardHandler = HTTPHeadGuard(limits: limits, counters: counters, refuse: over)
        if over { counters.record("refused", counters.refused) }
        return channel.eventLoop.makeCompletedFuture {
            // Nearest the socket, so it sees every handler's flushes.
            try channel.pipeline.syncOperations.addHandler(FlushCoalescer())
            try channel.pipeline.syncOperations.addHandler(guardHandler)
        }.flatMap { inner.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Watches the bytes of each HTTP request head before NIO's parser sees them: a request line or
/// header block beyond the limits gets 414 or 431 and the connection closes (NIO's parser would
/// error out with no answer, leaving the client waiting); heads that never finish and idle
/// keep-alive connections are closed; after a WebSocket upgrade it steps aside.
final class HTTPHeadGuard: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Mode {
        case head
        case body(remaining: Int)
        /// Upgraded (WebSocket) or a body we cannot follow (chunked): pass everything on.
        case transparent
        case closing
    }

    private let limits: HTTPLimits
    private let counters: HTTPLimitCounters
    private let refuse: Bool
    private var mode = Mode.head {
        didSet { publishIdleness() }
    }
    private var head: [UInt8] = []
    private var requestLineLength: Int?
    private var headStarted: NIODeadline? {
        didSet { publishIdleness() }
    }
    private var lastActivity = NIODeadline.now() {
        didSet { publishIdleness() }
    }
    private weak var channel: (any Channel)?
    private var timer: RepeatedTask?

    init(limits: HTTPLimits, counters: HTTPLimitCounters, refuse: Bool) {
        self.limits = limits
        self.counters = counters
        self.refuse = refuse
    }

    /// Tells the counters whether this connection is idle (no head or body in progress, not a
    /// WebSocket) and since when, so it can make room for a newcomer at the cap.
    private func publishIdleness() {
        let id = ObjectIdentifier(self)
        guard case .head = mode, headStarted == nil, let channel else {
            counters.forget(id)
            return
        }
        counters.update(id, idleSince: lastActivity.uptimeNanoseconds) { channel.close(promise: nil) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        channel = context.channel
        if refuse {
            reject(context, status: "503 Service Unavailable", reason: "too many connections")
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let (handler, context) = loopBound.value
            handler.check(context)
        }
        publishIdleness()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        counters.forget(ObjectIdentifier(self))
    }

    private func check(_ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        switch mode {
        case .transparent, .closing:
            timer?.cancel()
            timer = nil
        case .head:
            if let started = headStarted, (now - started).nanoseconds / 1_000_000 > limits.headTimeoutMs {
                counters.record("timeout", counters.timedOut)
                reject(context, status: "408 Request Timeout", reason: "request head not complete in time")
            } else if headStarted == nil, (now - lastActivity).nanoseconds / 1_000_000 > limits.idleTimeoutMs {
                counters.record("timeout", counters.timedOut)
                mode = .closing
                context.close(promise: nil)
            }
        case .body:
            if (now - lastActivity).nanoseconds / 1_000_000 > limits.headTimeoutMs {
                counters.record("timeout", counters.timedOut)
                mode = .closing
                context.close(promise: nil)
            }
        }
    }

    private func reject(_ context: ChannelHandlerContext, status: String, reason: String) {
        mode = .closing
        timer?.cancel()
        timer = nil
        let body = "{\"error\":\"\(reason)\"}"
        var out = context.channel.allocator.buffer(capacity: 160)
        out.writeString("HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        context.writeAndFlush(NIOAny(out)).whenComplete { _ in context.close(promise: nil) }
    }

    /// False once the connection is a WebSocket (or a body it cannot follow): no clock read or
    /// table update per frame then.
    private var isTimed: Bool {
        if case .transparent = mode { return false }
        return true
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if isTimed { lastActivity = .now() }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if isTimed { lastActivity = .now() }
        switch mode {
        case .transparent:
            context.fireChannelRead(data)
            return
        case .closing:
            return
        default: break
        }
        let buffer = unwrapInboundIn(data)
        if let problem = scan(buffer) {
            switch problem {
            case .uriTooLong:
                counters.record("uri-too-long", counters.uriTooLong)
                reject(context, status: "414 URI Too Long", reason: "request line longer than \(limits.maxRequestLineBytes) bytes")
            case .headersTooLarge:
                counters.record("headers-too-large", counters.headersTooLarge)
                reject(context, status: "431 Request Header Fields Too Large", reason: "headers larger than \(limits.maxHeaderBytes) bytes")
            }
            return
        }
        context.fireChannelRead(data)
    }

    private enum Problem { case uriTooLong, headersTooLarge }

    /// Follows request heads and bodies through the bytes just read.
    private func scan(_ buffer: ByteBuffer) -> Problem? {
        var view = buffer.readableBytesView[...]
        while !view.isEmpty {
            switch mode {
            case .transparent, .closing:
                return nil
            case .body(let remaining):
                let take = min(remaining, view.count)
                view = view.dropFirst(take)
                mode = remaining - take == 0 ? .head : .body(remaining: remaining - take)
            case .head:
                if headStarted == nil { headStarted = .now() }
                let byte = view.first!
                view = view.dropFirst()
                head.append(byte)
                if requestLineLength == nil {
                    if head.count >= 2 && head[head.count - 2] == 13 && byte == 10 {
                        requestLineLength = head.count
                        if head.count == 2 {
                            head.removeAll()
                            requestLineLength = nil
                        }  // a stray CRLF between requests
                    } else if head.count > limits.maxRequestLineBytes {
                        return .uriTooLong
                    }
                    continue
                }
                if head.count - requestLineLength! > limits.maxHeaderBytes { return .headersTooLarge }
                if head.count >= 4 && byte == 10 && head[head.count - 2] == 13 && head[head.count - 3] == 10 && head[head.count - 4] == 13 {
                    endOfHead()
                }
            }
        }
        return nil
    }

    private func endOfHead() {
        let text = String(decoding: head, as: UTF8.self).lowercased()
        head.removeAll(keepingCapacity: true)
        requestLineLength = nil
        headStarted = nil
        var contentLength = 0
        var follow = true
        for line in text.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = Self.trimmed(line[..<colon])
            let value = Self.trimmed(line[line.index(after: colon)...])
            switch name {
            case "content-length": if let n = Int(value), n >= 0 { contentLength = n } else { follow = false }
            case "transfer-encoding": follow = false
            case "upgrade": follow = false
            default: break
            }
        }
        if !follow {
            mode = .transparent
        } else if contentLength > 0 {
            mode = .body(remaining: contentLength)
        } else {
            mode = .head
        }
    }

    private static func trimmed(_ s: Substring) -> String {
        var s = s
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// Turns the flushes of one event-loop pass into one: a flush is passed on once the tasks already
/// queued on the loop have run, so a burst of `/ws` messages — each written and flushed by its own
/// task, as the WebSocket writer does — leaves in one `writev` and wakes the client once, instead
/// of one syscall and one wake-up per message. A close first flushes what is pending, so nothing
/// written before it is lost.
public final class FlushCoalescer: ChannelOutboundHandler, @unchecked Sendable {
    public typealias OutboundIn = NIOAny
    public typealias OutboundOut = NIOAny

    public init() {}

    private var flushScheduled = false
    private var flushPending = false

    public func flush(context: ChannelHandlerContext) {
        flushPending = true
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = loopBound.value
            coalescer.flushScheduled = false
            coalescer.flushNow(context: context)
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        flushNow(context: context)
        context.close(mode: mode, promise: promise)
    }

    private func flushNow(context: ChannelHandlerContext) {
        guard flushPending else { return }
        flushPending = false
        context.flush()
    }
}
