import Metrics

/// A swift-metrics counter fed from a stage's own running total: each `record` adds what the total
/// grew by since the last one (stages count with plain atomics on their hot paths).
struct DeltaCounter: Sendable {
    private let counter: Counter
    private var last: Int64 = 0

    init(_ counter: Counter) { self.counter = counter }

    mutating func record(total: Int64) {
        if total > last { counter.increment(by: total - last) }
        last = max(last, total)
    }

    mutating func record(total: Int) { record(total: Int64(total)) }
}

/// Calls `report` once a second, and once more when the returned task is cancelled: how a stage
/// turns its own counters into swift-metrics while it runs.
func reportEverySecond<State: Sendable>(
    _ initial: State, _ report: @escaping @Sendable (inout State) -> Void
) -> Task<Void, Never> {
    Task {
        var state = initial
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(1)) } catch { break }
            report(&state)
        }
        report(&state)
    }
}

/// Runs `work` beside a once-a-second metrics reporter; the reporter reports a last time and ends
/// when `work` does.
func withMetricsReporter<State: Sendable>(
    _ initial: State, _ report: @escaping @Sendable (inout State) -> Void, work: () async throws -> Void
) async throws {
    let reporter = reportEverySecond(initial, report)
    defer { reporter.cancel() }
    try await work()
    reporter.cancel()
    await reporter.value
}
