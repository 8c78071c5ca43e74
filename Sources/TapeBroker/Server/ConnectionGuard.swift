import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Bytes of large request frames being read, across all connections (Kafka's
/// `queued.max.request.bytes`). A connection reserves a large frame's whole size when its size
/// prefix arrives and releases it once the frame is read (or the connection closes); a frame that
/// does not fit waits, its socket unread, until memory is released. A frame always fits when
/// nothing else is reserved, so holders can always finish and no frame waits forever. Frames of
/// at most `smallFrameBytes` are not counted: metadata, fetch, commit and heartbeat requests
/// never wait behind large produces.
public final class RequestMemoryPool: Sendable {
    public let capacity: Int
    /// Frames of at most this many bytes are not counted. 64 KiB.
    public static let smallFrameBytes = 64 << 10
    private struct State {
        var used = 0
        var waiters: [UInt64: @Sendable () -> Void] = [:]
    }
    private let state = NIOLockedValueBox(State())

    public init(capacity: Int) { self.capacity = max(capacity, 1) }

    /// Bytes reserved now.
    public var used: Int { state.withLockedValue { $0.used } }

    /// Reserves `bytes` if they fit; otherwise remembers `retry` (called, on any thread, when
    /// memory is released) and returns false.
    func reserve(_ bytes: Int, waiter id: UInt64, retry: @escaping @Sendable () -> Void) -> Bool {
        state.withLockedValue { s in
            if s.used == 0 || s.used + bytes <= capacity {
                s.used += bytes
                s.waiters[id] = nil
                return true
            }
            s.waiters[id] = retry
            return false
        }
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let waiters: [@Sendable () -> Void] = state.withLockedValue { s in
            s.used -= bytes
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for retry in waiters { retry() }
    }

    func forget(waiter id: UInt64) {
        state.withLockedValue { _ = $0.waiters.removeValue(forKey: id) }
    }
}

/// The connections being served, with when each last carried traffic, so that a new client
/// arriving at `maxConnections` can take the place of one that has been idle longest.
public final class ConnectionTable: Sendable {
    /// A connection's last traffic, in uptime nanoseconds (.max while busy reading a frame).
    final class Activity: Sendable {
        let nanos = Synchronization.Atomic<Int64>(Int64(NIODeadline.now().uptimeNanoseconds))
    }
    struct Entry {
        let lastActivity: Activity
        let close: @Sendable () -> Void
    }
    private let entries = NIOLockedValueBox([UInt64: Entry]())
    public init() {}

    func add(_ id: UInt64, lastActivity: Activity, close: @escaping @Sendable () -> Void) {
        entries.withLockedValue { $0[id] = Entry(lastActivity: lastActivity, close: close) }
    }

    func remove(_ id: UInt64) { entries.withLockedValue { $0[id] = nil } }

    public var count: Int { entries.withLockedValue { $0.count } }

    /// Closes the connection idle longest if it has been idle at least `minimumIdleNanos`;
    /// returns whether one was closed.
    func evictIdlest(now: Int64, minimumIdleNanos: Int64) -> Bool {
        let victim: (UInt64, Entry)? = entries.withLockedValue { table in
            var best: (UInt64, Entry, Int64)?
            for (id, e) in table {
                let last = e.lastActivity.nanos.load(ordering: .relaxed)
                if last != .max, now - last >= minimumIdleNanos, best == nil || last < best!.2 { best = (id, e, last) }
            }
            guard let best else { return nil }
            table[best.0] = nil
            return (best.0, best.1)
        }
        guard let victim else { return false }
        victim.1.close()
        return true
    }
}

/// Counters of the limits the server enforces, for metrics and tests.
public final class ConnectionLimitCounters: Sendable {
    /// Connections being served.
    public let open = Synchronization.Atomic<Int>(0)
    /// Connections closed at accept because `maxConnections` were open.
    public let rejected = Synchronization.Atomic<Int>(0)
    /// Connections closed after `connectionsMaxIdleMs` without traffic.
    public let idleClosed = Synchronization.Atomic<Int>(0)
    /// Connections closed because a started frame did not complete within `requestReadTimeoutMs`.
    public let readTimeouts = Synchronization.Atomic<Int>(0)
    /// Times a connection had to wait for request memory.
    public let memoryWaits = Synchronization.Atomic<Int>(0)
    /// Idle connections closed to make room for a new one at `maxConnections`.
    public let evicted = Synchronization.Atomic<Int>(0)
    public init() {}
}

/// Sits in front of the frame decoder and watches the byte stream: closes connections idle for
/// too long or holding a half-sent frame for too long, and reserves each large frame's bytes in
/// the shared `RequestMemoryPool` (not reading the socket while they do not fit).
final class ConnectionGuard: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let nextID = Synchronization.Atomic<UInt64>(1)

    private let id = ConnectionGuard.nextID.add(1, ordering: .relaxed).newValue
    private let pool: RequestMemoryPool
    private let maxFrameBytes: Int
    private let idleNanos: Int64
    private let readTimeoutNanos: Int64
    private let counters: ConnectionLimitCounters
    private let onClose: @Sendable (String) -> Void

    private var header: [UInt8] = []
    /// Body bytes of the current frame still to come (0: between frames or reading a header).
    private var bodyRemaining = 0
    /// Bytes of the pool reserved for the current frame.
    private var reserved = 0
    /// The size of a large frame waiting for memory (nil: not waiting).
    private var waitingFor: Int?
    /// When the current frame's first byte arrived (nil between frames).
    private var frameStarted: NIODeadline? {
        didSet { publishActivity() }
    }
    private var lastActivity = NIODeadline.now() {
        didSet { publishActivity() }
    }
    /// `lastActivity` for the connection table (.max while a frame is being read: not idle).
    private let sharedLastActivity = ConnectionTable.Activity()

    private func publishActivity() {
        sharedLastActivity.nanos.store(frameStarted == nil ? Int64(lastActivity.uptimeNanoseconds) : .max, ordering: .relaxed)
    }
    private let table: ConnectionTable
    private let pending: PendingBytes
    /// Waiting for request memory: the socket is not read meanwhile.
    private var waitingForMemory: Bool { waitingFor != nil }
    private var timer: RepeatedTask?
    private weak var context: ChannelHandlerContext?

    init(
        pool: RequestMemoryPool, table: ConnectionTable, pending: PendingBytes, maxFrameBytes: Int, idleMs: Int64, readTimeoutMs: Int64,
        counters: ConnectionLimitCounters,
        onClose: @escaping @Sendable (String) -> Void
    ) {
        self.pool = pool
        self.table = table
        self.pending = pending
        self.maxFrameBytes = maxFrameBytes
        self.idleNanos = idleMs > 0 ? idleMs.multipliedReportingOverflow(by: 1_000_000).partialValue : .max
        self.readTimeoutNanos = readTimeoutMs > 0 ? readTimeoutMs.multipliedReportingOverflow(by: 1_000_000).partialValue : .max
        self.counters = counters
        self.onClose = onClose
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let channel = context.channel
        let onClose = self.onClose
        table.add(id, lastActivity: sharedLastActivity) {
            onClose("idle the longest while a new client arrived at --max-connections")
            channel.close(promise: nil)
        }
        let checkEvery = max(min(min(idleNanos, readTimeoutNanos) / 4, 1_000_000_000), 10_000_000)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: .nanoseconds(checkEvery), delay: .nanoseconds(checkEvery)) { _ in
            loopBound.value.check()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        table.remove(id)
        timer?.cancel()
        timer = nil
        pool.forget(waiter: id)
        pool.release(reserved)
        reserved = 0
        self.context = nil
    }

    private func check() {
        guard let context else { return }
        let now = NIODeadline.now()
        if waitingForMemory { return }  // not the client's fault
        if let started = frameStarted, (now - started).nanoseconds > readTimeoutNanos {
            counters.readTimeouts.add(1, ordering: .relaxed)
            close(
                context,
                "a request frame started \((now - started).nanoseconds / 1_000_000) ms ago is still incomplete (request read timeout \(readTimeoutNanos / 1_000_000) ms)"
            )
        } else if frameStarted == nil, (now - lastActivity).nanoseconds > idleNanos {
            counters.idleClosed.add(1, ordering: .relaxed)
            close(context, "idle for \((now - lastActivity).nanoseconds / 1_000_000) ms (connections.max.idle.ms \(idleNanos / 1_000_000))")
        }
    }

    private func close(_ context: ChannelHandlerContext, _ reason: String) {
        timer?.cancel()
        timer = nil
        onClose(reason)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lastActivity = .now()
        track(buffer, context: context)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        let size = unwrapOutboundIn(data).readableBytes
        guard size > RequestMemoryPool.smallFrameBytes else {
            context.write(data, promise: promise)
            return
        }
        // Large responses (fetches) count until the socket took them.
        let pending = self.pending
        pending.add(size)
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.whenComplete { _ in pending.subtract(size) }
        context.write(data, promise: written)
    }

    /// Follows frame boundaries in the bytes just read.
    private func track(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        var offset = buffer.readerIndex
        let end = buffer.writerIndex
        while offset < end {
            if bodyRemaining > 0 {
                let take = min(bodyRemaining, end - offset)
                bodyRemaining -= take
                offset += take
                if bodyRemaining == 0 { frameDone() }
                continue
            }
            if frameStarted == nil { frameStarted = .now() }
            header.append(buffer.getInteger(at: offset, as: UInt8.self)!)
            offset += 1
            guard header.count == 4 else { continue }
            let size = Int(Int32(bitPattern: UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3])))
            header.removeAll(keepingCapacity: true)
            guard size > 0, size <= maxFrameBytes else {
                // Empty, or invalid: the decoder closes the connection on an invalid size.
                frameDone()
                continue
            }
            bodyRemaining = size
            if size > RequestMemoryPool.smallFrameBytes { reserve(size, context: context) }
        }
    }

    private func frameDone() {
        frameStarted = nil
        if reserved > 0 {
            let r = reserved
            reserved = 0
            pool.release(r)
        }
    }

    private func reserve(_ size: Int, context: ChannelHandlerContext) {
        if tryReserve(size, context: context) { return }
        counters.memoryWaits.add(1, ordering: .relaxed)
        waitingFor = size
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
    }

    private func tryReserve(_ size: Int, context: ChannelHandlerContext) -> Bool {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        guard pool.reserve(size, waiter: id, retry: { eventLoop.execute { loopBound.value.retryReserve() } }) else { return false }
        reserved += size
        return true
    }

    private func retryReserve() {
        guard let size = waitingFor, let context else { return }
        guard tryReserve(size, context: context) else { return }
        waitingFor = nil
        if bodyRemaining > 0 {
            frameStarted = .now()  // the wait does not count against the client
        } else {
            // The frame completed from bytes read before the socket was paused.
            pool.release(reserved)
            reserved = 0
        }
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        context.read()
    }
}
