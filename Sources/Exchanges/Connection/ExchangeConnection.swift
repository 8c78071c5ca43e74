import MarketData
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The thin driver of `ConnectionStateMachine`: opens the websocket, subscribes, pings, reads and
/// parses frames, deduplicates, backfills from REST after every (re)subscribe, reports gaps and
/// unparseable frames, and reconnects forever until its task is cancelled.
public struct ExchangeConnection<Adapter: ExchangeAdapter, C: Clock>: Sendable where C.Duration == Duration {
    public let adapter: Adapter.Type
    public let configuration: ExchangeConnectionConfiguration
    public let clock: C
    public let metrics: ConnectionMetrics

    public init(adapter: Adapter.Type, configuration: ExchangeConnectionConfiguration, clock: C, metrics: ConnectionMetrics = .init()) {
        self.adapter = adapter
        self.configuration = configuration
        self.clock = clock
        self.metrics = metrics
    }

    /// Runs until the task is cancelled. `deduplicator` carries what was already published (from
    /// Kafka's tail on restart); with `resumeSequences` the newest trade of each market in it also
    /// starts gap detection, so trades made while Tape was down are found too (off for a venue
    /// whose history does not survive a restart: the built-in simulator of `tape up --offline`).
    public func run(sink: some TradeSink, deduplicator: TradeDeduplicator = TradeDeduplicator(), resumeSequences: Bool = true) async {
        let continuity = Continuity(deduplicator: deduplicator, resumeSequences: resumeSequences)
        let books = collectsBooks ? BookDesk<Adapter.BookSync>(exchange: adapter.exchange, markets: configuration.subscribedMarkets) : nil
        let origin = clock.now
        let clock = self.clock
        let now: @Sendable () -> Duration = { origin.duration(to: clock.now) }
        let machine = MachineBox(ConnectionStateMachine(configuration: configuration.machine, seed: configuration.jitterSeed))
        var action = machine.with { $0.start(now: now()) }
        let ws = configuration.websocket.description
        while !Task.isCancelled {
            switch action {
            case .connect:
                let attempt: Int
                if case .connecting(let a, _) = machine.with({ $0.state }) { attempt = a } else { attempt = 1 }
                await sink.event(.connecting(endpoint: ws, attempt: attempt))
                let outcome = await session(machine: machine, now: now, continuity: continuity, books: books, sink: sink)
                metrics.connected.store(false, ordering: .relaxed)
                if Task.isCancelled { return }
                switch outcome {
                case .connectFailed(let reason): action = machine.with { $0.connectFailed(reason, now: now()) }
                case .closed(let reason): action = machine.with { $0.connectionClosed(reason, now: now()) }
                }
            case .scheduleReconnect(let delay, let attempt, let reason):
                metrics.reconnects.add(1, ordering: .relaxed)
                metrics.recordFailure(reason.description)
                await sink.event(.reconnectScheduled(endpoint: ws, delay: delay, attempt: attempt, reason: reason.description))
                do { try await clock.sleep(for: delay) } catch { return }
                action = machine.with { $0.reconnectDue(now: now()) }
            case .none, .sendSubscribe, .sendPing, .backfill, .close:
                // Not expected between sessions; wait a tick rather than spin.
                do { try await clock.sleep(for: configuration.tickInterval) } catch { return }
                action = machine.with { $0.tick(now: now()) }
            }
        }
    }

    enum SessionOutcome {
        case connectFailed(String)
        case closed(ConnectionStateMachine.CloseReason)
    }

    /// True when this connection collects order books (asked for, and the venue has them in Tape).
    var collectsBooks: Bool { configuration.channels.contains(.book) && adapter.supportsBooks }
    var collectsTrades: Bool { configuration.channels.contains(.trades) }

    private func session(
        machine: MachineBox, now: @escaping @Sendable () -> Duration, continuity: Continuity,
        books: BookDesk<Adapter.BookSync>?, sink: some TradeSink
    ) async -> SessionOutcome {
        let requested = CloseRequest()
        let connected = Atomic<Bool>(false)
        var peerClose: String?
        do {
            try await WebSocketClient.withConnection(
                to: configuration.websocket, connectTimeout: configuration.machine.connectTimeout, tls: configuration.tls
            ) { inbound, outbound in
                connected.store(true, ordering: .relaxed)
                metrics.connected.store(true, ordering: .relaxed)
                _ = machine.with { $0.connected(now: now()) }
                if let books {
                    // A new connection: every book is unknown until its next snapshot.
                    for (market, step) in books.resetAll(receivedAt: WallClock.microseconds()) {
                        await handle(step, market: market, books: books, outbound: nil, sink: sink)
                    }
                }
                if collectsTrades {
                    for message in adapter.tradeSubscribeMessages(nativeSymbols: configuration.symbols) {
                        try await outbound.send(text: message)
                    }
                }
                if collectsBooks {
                    for message in adapter.bookSubscribeMessages(nativeSymbols: configuration.symbols) {
                        try await outbound.send(text: message)
                    }
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while true {
                            try await clock.sleep(for: configuration.tickInterval)
                            switch machine.with({ $0.tick(now: now()) }) {
                            case .sendPing:
                                if let ping = adapter.applicationPing { try await outbound.send(text: ping) }
                                if adapter.protocolPing { try await outbound.sendPing() }
                            case .close(let reason):
                                requested.withLock { $0 = reason }
                                outbound.close()
                                return
                            default:
                                break
                            }
                        }
                    }
                    if collectsTrades {
                        group.addTask { try await repairLoop(continuity: continuity, now: now, sink: sink) }
                    }
                    if let books {
                        group.addTask { try await bookSnapshotLoop(books: books, now: now, outbound: outbound, sink: sink) }
                    }
                    defer { group.cancelAll() }
                    try await read(
                        inbound: &inbound, outbound: outbound, machine: machine, now: now, continuity: continuity, books: books,
                        sink: sink, requested: requested)
                    peerClose = inbound.closeReason
                }
            }
        } catch {
            if !connected.load(ordering: .relaxed) { return .connectFailed(String(describing: error)) }
            if let reason = requested.withLock({ $0 }) { return .closed(reason) }
            return .closed(.lost(String(describing: error)))
        }
        if let reason = requested.withLock({ $0 }) { return .closed(reason) }
        return .closed(.lost(peerClose ?? "closed by the server"))
    }

    private func read(
        inbound: inout WebSocketInbound, outbound: WebSocketOutbound, machine: MachineBox,
        now: @escaping @Sendable () -> Duration, continuity: Continuity, books: BookDesk<Adapter.BookSync>?,
        sink: some TradeSink, requested: CloseRequest
    ) async throws {
        var parser = adapter.makeFrameParser(markets: configuration.subscribedMarkets)
        // Control frames (the venue's pings, answers to ours) are traffic too.
        inbound.returnsControlFrames = true
        var trades: [Trade] = []
        trades.reserveCapacity(64)
        var bookFrames: [BookFrame] = []
        let subscribed = Set(configuration.symbols)
        let tracksIds = adapter.tradeIdsAreConsecutive && configuration.detectIdJumps
        while let message = try await inbound.next() {
            machine.with { $0.frameReceived(now: now()) }
            if message.isControl { continue }
            let receivedAt = WallClock.microseconds()
            metrics.frames.add(1, ordering: .relaxed)
            metrics.frameBytes.add(message.bytes.count, ordering: .relaxed)
            trades.removeAll(keepingCapacity: true)
            bookFrames.removeAll(keepingCapacity: true)
            var parsed = message.bytes.withUnsafeBufferPointer { buffer in
                Result { () throws(FrameParseError) -> ExchangeMessage in
                    books == nil
                        ? try parser.parse(buffer, receivedAt: receivedAt, into: &trades)
                        : try parser.parse(buffer, receivedAt: receivedAt, into: &trades, books: &bookFrames)
                }
            }
            // Every venue parser checks trade times; this keeps the promise for any parser added later.
            if case .success = parsed, let error = invalidTradeTime(in: trades) ?? invalidBookTime(in: bookFrames) {
                trades.removeAll(keepingCapacity: true)
                bookFrames.removeAll(keepingCapacity: true)
                parsed = .failure(error)
            }
            switch parsed {
            case .failure(let error):
                metrics.unparseableFrames.add(1, ordering: .relaxed)
                machine.with { $0.downstream(busy: true, now: now()) }
                await sink.deadLetter(frame: message.bytes, error: error)
                machine.with { $0.downstream(busy: false, now: now()) }
                // Re-read the markets the frame names — all of them, since a frame may batch several
                // markets (Poloniex, Coinbase) — unless it was cut short (malformed JSON): what
                // followed the cut may have named others, so then every market is re-read.
                let mentioned = symbolsMentioned(in: message.bytes)
                let markets =
                    error.code != .malformedJSON && !mentioned.isEmpty && mentioned.isSubset(of: subscribed)
                    ? mentioned : subscribed
                continuity.requestRepair(markets, due: now() + configuration.repairDelay)
            case .success(.trades):
                let fresh = continuity.admit(trades, tracksIds: tracksIds, repairDue: now() + configuration.gapRepairDelay)
                metrics.duplicates.add(trades.count - fresh.count, ordering: .relaxed)
                if let last = fresh.last {
                    metrics.lastLagMicros.store(lagMicroseconds(receivedAt: last.receivedAt, time: last.time), ordering: .relaxed)
                    metrics.trades.add(fresh.count, ordering: .relaxed)
                    machine.with { $0.downstream(busy: true, now: now()) }
                    await sink.publish(fresh)
                    machine.with { $0.downstream(busy: false, now: now()) }
                }
            case .success(.books):
                guard let books else { break }
                machine.with { $0.downstream(busy: true, now: now()) }
                for frame in bookFrames {
                    guard let step = books.receive(frame) else { continue }
                    await handle(step, market: frame.nativeSymbol, books: books, outbound: outbound, sink: sink)
                }
                machine.with { $0.downstream(busy: false, now: now()) }
            case .success(.subscribed):
                if machine.with({ $0.subscribeAcknowledged(now: now()) }) == .backfill, collectsTrades {
                    await sink.event(.subscribed(endpoint: configuration.websocket.description, symbols: configuration.symbols.count))
                    machine.with { $0.downstream(busy: true, now: now()) }
                    continuity.cancelRepairs()
                    await backfill(symbols: configuration.symbols, continuity: continuity, sink: sink, now: now)
                    machine.with { $0.downstream(busy: false, now: now()) }
                }
            case .success(.error(let text)):
                await sink.event(.exchangeError(endpoint: configuration.websocket.description, message: text))
                if case .close(let reason) = machine.with({ $0.exchangeError(text, now: now()) }) {
                    requested.withLock { $0 = reason }
                    outbound.close()
                }
            case .success:
                break
            }
        }
    }

    /// Carries out one synchronizer step: publishes its records, reports its gaps, counts a resync,
    /// and resubscribes the market or queues its REST snapshot. Without `outbound` (between
    /// connections) a resubscribe is left to the next connection's subscribe.
    func handle(
        _ step: BookSyncStep, market: String, books: BookDesk<Adapter.BookSync>, outbound: WebSocketOutbound?,
        sink: some TradeSink
    ) async {
        if !step.events.isEmpty {
            metrics.bookEvents.add(step.events.count, ordering: .relaxed)
            metrics.bookLevels.add(step.events.reduce(0) { $0 + $1.levelCount }, ordering: .relaxed)
            if let last = step.events.last { metrics.lastBookEventTime.store(Int(last.time), ordering: .relaxed) }
            await sink.publishBooks(step.events)
        }
        for gap in step.gaps {
            metrics.bookGaps.add(1, ordering: .relaxed)
            await sink.gap(gap)
        }
        if let reason = step.resyncReason {
            metrics.recordResync(reason)
            let detail: String
            switch step.action {
            case .resubscribe(let why): detail = why
            case .fetchSnapshot: detail = "fetching a REST snapshot"
            case .none: detail = "waiting for the next snapshot"
            }
            await sink.event(.bookResync(symbol: market, reason: reason, detail: detail))
        }
        if case .resubscribe = step.action, let outbound {
            do {
                for message in adapter.bookResubscribeMessages(nativeSymbol: market) { try await outbound.send(text: message) }
            } catch {
                // The connection is going down; the next one subscribes afresh.
            }
        }
    }

    /// Requests queued REST depth snapshots (venues whose stream has none: Binance), one at a time
    /// and never faster than the venue's `bookSnapshotSpacing`; also publishes the periodic full
    /// snapshot records.
    func bookSnapshotLoop(
        books: BookDesk<Adapter.BookSync>, now: @escaping @Sendable () -> Duration, outbound: WebSocketOutbound,
        sink: some TradeSink
    ) async throws {
        let spacing = max(adapter.bookSnapshotSpacing, .milliseconds(10))
        let interval = configuration.bookSnapshotInterval.map { Int64($0.components.seconds) * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 }
        while true {
            try await clock.sleep(for: .milliseconds(50))
            if let interval {
                let events = books.periodicSnapshots(
                    nowMs: WallClock.milliseconds(), receivedAt: WallClock.microseconds(), interval: interval)
                if !events.isEmpty {
                    metrics.bookEvents.add(events.count, ordering: .relaxed)
                    metrics.bookLevels.add(events.reduce(0) { $0 + $1.levelCount }, ordering: .relaxed)
                    await sink.publishBooks(events)
                }
            }
            guard let market = books.nextSnapshotRequest(now: now(), spacing: spacing) else { continue }
            guard let listed = books.markets[market], let path = adapter.bookSnapshotPath(market: listed) else { continue }
            metrics.bookSnapshotRequests.add(1, ordering: .relaxed)
            let endpoint = configuration.rest.appending(path: path)
            let step: BookSyncStep?
            do {
                metrics.restTradeRequests.add(1, ordering: .relaxed)
                let response = try await HTTPClient.get(endpoint, timeout: configuration.restTimeout, tls: configuration.tls)
                let receivedAt = WallClock.microseconds()
                guard response.status == 200 else {
                    throw ExchangeError(
                        .badResponse,
                        "GET \(endpoint) answered HTTP \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))")
                }
                let frame: BookFrame
                do {
                    frame = try adapter.parseBookSnapshot(response.body, market: listed, receivedAt: receivedAt)
                } catch {
                    throw ExchangeError(.badResponse, "GET \(endpoint): \(error)")
                }
                if let error = invalidBookTime(in: [frame]) { throw ExchangeError(.badResponse, "GET \(endpoint): \(error)") }
                step = books.snapshotArrived(frame, market: market)
            } catch {
                if Task.isCancelled { return }
                let reason = (error as? ExchangeError)?.message ?? "GET \(endpoint): \(error)"
                await sink.event(.bookSnapshotFailed(endpoint: configuration.rest.description, symbol: market, reason: reason))
                step = books.snapshotFailed(market: market, reason: reason, receivedAt: WallClock.microseconds())
            }
            if let step { await handle(step, market: market, books: books, outbound: outbound, sink: sink) }
        }
    }

    /// Re-reads markets over REST while a session is up, one request at a time and never faster
    /// than the venue's `restRequestSpacing`: first markets with a hole in their ids or an
    /// unparseable frame (after their delay), otherwise the next market of the periodic
    /// reconciliation.
    func repairLoop(continuity: Continuity, now: @escaping @Sendable () -> Duration, sink: some TradeSink) async throws {
        let symbols = configuration.symbols
        let spacing = max(adapter.restRequestSpacing, .milliseconds(10))
        var reconcileEvery: Duration?
        if let interval = configuration.reconcileInterval, !symbols.isEmpty, interval > .zero {
            reconcileEvery = max(spacing, interval / symbols.count)
        }
        continuity.startReconciling(at: now() + (reconcileEvery ?? .zero))
        while true {
            try await clock.sleep(for: .milliseconds(50))
            guard let symbol = continuity.nextRESTMarket(now: now(), symbols: symbols, spacing: spacing, reconcileEvery: reconcileEvery)
            else { continue }
            metrics.restRepairs.add(1, ordering: .relaxed)
            // Holes about to be repaired are written down first: until REST answers, data is missing.
            for hole in continuity.takeUnreported(market: symbol) {
                metrics.gaps.add(1, ordering: .relaxed)
                await sink.gap(gapRecord(hole, symbol: symbol, repaired: false))
            }
            switch await fetchBackfill(symbol: symbol) {
            case .success(let trades):
                let fresh = await reconcile(symbol: symbol, trades: trades, continuity: continuity, sink: sink, now: now())
                metrics.repairedTrades.add(fresh, ordering: .relaxed)
            case .failure where Task.isCancelled:
                return
            case .failure(let error):
                metrics.backfillFailures.add(1, ordering: .relaxed)
                await sink.event(.backfillFailed(endpoint: configuration.rest.description, symbol: symbol, reason: error.message))
                continuity.retryLater(market: symbol, due: now() + max(spacing, .seconds(2)))
            }
        }
    }

    /// Folds one market's REST page into what was seen: publishes the trades not seen yet and writes
    /// what changed about the market's gaps. Returns how many trades were new.
    @discardableResult
    func reconcile(symbol: String, trades: [Trade], continuity: Continuity, sink: some TradeSink, now: Duration) async -> Int {
        let limit = adapter.recentTradesLimit
        let outcome = continuity.reconcile(
            market: symbol, trades: trades, limit: limit, tracksIds: adapter.tradeIdsAreConsecutive && configuration.detectIdJumps,
            maxAttempts: configuration.gapRepairAttempts)
        metrics.trades.add(outcome.fresh.count, ordering: .relaxed)
        if !outcome.fresh.isEmpty { await sink.publish(outcome.fresh) }
        if outcome.verdict.disabled { await sink.event(.idsNotConsecutive(symbol: symbol)) }
        for hole in outcome.verdict.repaired {
            metrics.gapsRepaired.add(1, ordering: .relaxed)
            await sink.gap(gapRecord(hole, symbol: symbol, repaired: true))
        }
        for (hole, reason) in outcome.verdict.abandoned {
            if !hole.reported { metrics.gaps.add(1, ordering: .relaxed) }
            metrics.gapsUnrepaired.add(1, ordering: .relaxed)
            await sink.gap(gapRecord(hole, symbol: symbol, repaired: false, reason: reason))
        }
        if let gap = outcome.pageGap {
            metrics.gaps.add(1, ordering: .relaxed)
            metrics.gapsUnrepaired.add(1, ordering: .relaxed)
            let market = configuration.market(symbol)
            await sink.gap(
                Gap(
                    exchange: adapter.exchange, symbol: market.symbol, channel: .trades, from: gap.lastSeen.time,
                    to: gap.oldestBackfilled.time,
                    reason:
                        "REST's oldest trade (\(gap.oldestBackfilled)) is newer than the last one seen (\(gap.lastSeen)) and it returned a full page: trades in between are lost",
                    repaired: false, detected: WallClock.milliseconds()))
        }
        if outcome.stillOpen { continuity.retryLater(market: symbol, due: now + max(adapter.restRequestSpacing, .seconds(2))) }
        return outcome.fresh.count
    }

    func gapRecord(_ hole: TradeSequenceTracker.Hole, symbol: String, repaired: Bool, reason: String? = nil) -> Gap {
        hole.gap(
            exchange: adapter.exchange, symbol: configuration.market(symbol).symbol, repaired: repaired, reason: reason,
            detected: WallClock.milliseconds())
    }

    /// Fetches recent trades for every symbol (a few requests in flight) and publishes the ones not
    /// seen, per symbol oldest first; reports gaps and failures.
    func backfill(
        symbols: [String], continuity: Continuity, sink: some TradeSink, now: @escaping @Sendable () -> Duration
    ) async {
        var next = 0
        await withTaskGroup(of: (Int, Result<[Trade], ExchangeError>).self) { group in
            var pending: [Int: Result<[Trade], ExchangeError>] = [:]
            var emitted = 0
            func launch(_ index: Int) {
                let symbol = symbols[index]
                group.addTask { (index, await fetchBackfill(symbol: symbol)) }
            }
            while next < symbols.count && next < configuration.backfillConcurrency {
                launch(next)
                next += 1
            }
            while let (index, result) = await group.next() {
                pending[index] = result
                if next < symbols.count {
                    launch(next)
                    next += 1
                }
                // Publish in symbol order so the output does not depend on network timing.
                while let result = pending.removeValue(forKey: emitted) {
                    let symbol = symbols[emitted]
                    emitted += 1
                    switch result {
                    case .success(let trades):
                        let fresh = await reconcile(
                            symbol: symbol, trades: trades, continuity: continuity, sink: sink, now: now())
                        metrics.backfilledTrades.add(fresh, ordering: .relaxed)
                        await sink.event(.backfilled(symbol: symbol, fetched: trades.count, fresh: fresh))
                    case .failure where Task.isCancelled:
                        break  // shutting down: not a failure of the exchange
                    case .failure(let error):
                        metrics.backfillFailures.add(1, ordering: .relaxed)
                        await sink.event(.backfillFailed(endpoint: configuration.rest.description, symbol: symbol, reason: error.message))
                    }
                }
            }
        }
    }

    func fetchBackfill(symbol: String) async -> Result<[Trade], ExchangeError> {
        let market = configuration.market(symbol)
        guard let path = adapter.recentTradesPath(market: market, limit: adapter.recentTradesLimit) else {
            return .success([])  // the venue has no recent-trades request: nothing to backfill
        }
        let endpoint = configuration.rest.appending(path: path)
        var lastError = ExchangeError(.unreachable, "no attempt")
        for attempt in 1...max(1, configuration.backfillAttempts) {
            do {
                metrics.restTradeRequests.add(1, ordering: .relaxed)
                let response = try await HTTPClient.get(endpoint, timeout: configuration.restTimeout, tls: configuration.tls)
                guard response.status == 200 else {
                    throw ExchangeError(
                        .badResponse, "GET \(endpoint) answered HTTP \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))")
                }
                let trades: [Trade]
                do {
                    trades = try adapter.parseRecentTrades(response.body, market: market, receivedAt: WallClock.microseconds())
                } catch {
                    throw ExchangeError(.badResponse, "GET \(endpoint): \(error)")
                }
                if let error = invalidTradeTime(in: trades) { throw ExchangeError(.badResponse, "GET \(endpoint): \(error)") }
                return .success(trades)
            } catch let error as ExchangeError {
                lastError = error
            } catch {
                lastError = ExchangeError(.unreachable, "GET \(endpoint): \(error)")
            }
            if attempt < configuration.backfillAttempts {
                try? await clock.sleep(for: .milliseconds(200 * attempt))
            }
        }
        return .failure(lastError)
    }
}

/// A frame error for the first trade whose time is outside `Trade.validTimes`, if any.
func invalidTradeTime(in trades: [Trade]) -> FrameParseError? {
    guard let bad = trades.first(where: { !Trade.validTimes.contains($0.time) }) else { return nil }
    return FrameParseError(.invalidTrade, Trade.invalidTimeReason(bad.time), offset: 0)
}

/// A frame error for the first book message whose time is outside `Trade.validTimes`, if any.
func invalidBookTime(in frames: [BookFrame]) -> FrameParseError? {
    guard let bad = frames.first(where: { !Trade.validTimes.contains($0.time) }) else { return nil }
    return FrameParseError(.invalidBook, "book time \(bad.time) is outside \(Trade.validTimes) ms", offset: 0)
}

/// receivedAt (µs) − trade time (ms → µs), saturated instead of trapping on absurd values.
func lagMicroseconds(receivedAt: Int64, time: Int64) -> Int {
    let (micros, o1) = time.multipliedReportingOverflow(by: 1_000)
    if o1 { return time > 0 ? Int.min : Int.max }
    let (lag, o2) = receivedAt.subtractingReportingOverflow(micros)
    if o2 { return micros > 0 ? Int.min : Int.max }
    return Int(truncatingIfNeeded: lag)
}

/// Members that name a trade's market in the venues' frames: Poloniex and Kraken `symbol`,
/// Coinbase `product_id`, Binance `s`.
let symbolMemberKeys: [[UInt8]] = [#""symbol":""#, #""product_id":""#, #""s":""#].map { Array($0.utf8) }

/// The values of every `"symbol":"..."` (or `product_id`, `s`) member in a (possibly broken) frame.
func symbolsMentioned(in frame: [UInt8]) -> Set<String> {
    var found: Set<String> = []
    for key in symbolMemberKeys where frame.count > key.count {
        var i = 0
        while i + key.count <= frame.count {
            if frame[i] == key[0] && frame[i..<(i + key.count)].elementsEqual(key) {
                let start = i + key.count
                if let end = frame[start...].firstIndex(of: UInt8(ascii: "\"")), end > start, end - start < 64 {
                    found.insert(String(decoding: frame[start..<end], as: UTF8.self))
                    i = end
                    continue
                }
            }
            i += 1
        }
    }
    return found
}

/// The state machine behind a lock, shared by the reader and the timer task of a session.
final class MachineBox: Sendable {
    private let machine: Mutex<ConnectionStateMachine>
    init(_ machine: ConnectionStateMachine) { self.machine = Mutex(machine) }
    func with<R: Sendable>(_ body: (inout ConnectionStateMachine) -> R) -> R { machine.withLock { body(&$0) } }
}

/// The close the state machine asked for during a session, shared by its tasks.
final class CloseRequest: Sendable {
    private let reason = Mutex<ConnectionStateMachine.CloseReason?>(nil)
    func withLock<R: Sendable>(_ body: (inout ConnectionStateMachine.CloseReason?) -> R) -> R { reason.withLock { body(&$0) } }
}

/// Wall-clock time for `receivedAt`.
public enum WallClock {
    /// Microseconds since the Unix epoch.
    public static func microseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// Milliseconds since the Unix epoch.
    public static func milliseconds() -> Int64 { microseconds() / 1000 }
}
