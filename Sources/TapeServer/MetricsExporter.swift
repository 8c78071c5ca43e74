import CoreMetrics
import Prometheus
import TapeMetrics

/// Connects swift-metrics to swift-prometheus, once per process, so that every
/// `TapeMetrics` handle shows on `GET /metrics`.
public enum MetricsExporter {
    /// The registry `/metrics` prints. The first access bootstraps `MetricsSystem` with a
    /// Prometheus factory (it must come before any metric handle is created, or that handle is a
    /// no-op); do not bootstrap `MetricsSystem` anywhere else in a process that serves.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(3), .milliseconds(5), .milliseconds(7), .milliseconds(10), .milliseconds(15), .milliseconds(20),
            .milliseconds(25), .milliseconds(35), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        MetricsSystem.bootstrap(factory)
        // Unlabelled series exist from the start (0), so a scrape always lists them.
        TapeMetrics.brokerBytesInCounter().increment(by: 0)
        TapeMetrics.brokerBytesOutCounter().increment(by: 0)
        Counter(label: TapeMetrics.serverTradesSeen).increment(by: 0)
        Counter(label: TapeMetrics.serverCandlesSeen).increment(by: 0)
        Counter(label: TapeMetrics.wsMessagesOut).increment(by: 0)
        Counter(label: TapeMetrics.wsMessagesDropped).increment(by: 0)
        Gauge(label: TapeMetrics.wsClients).record(0)
        TapeMetrics.healthDegradedGauge().record(0)
        for check in HealthCheck.allCases { TapeMetrics.healthCheckGauge(check: check.rawValue).record(0) }
        return registry
    }()

    /// Bootstraps (if not yet) and returns the registry. Call it first thing in `tape up`.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry { registry }

    /// The body of `GET /metrics`: every registered family with its `# HELP` (from
    /// `TapeMetrics.help`) and `# TYPE`, then the standard `process_*` families of this process.
    public static func scrape() -> [UInt8] {
        var families: [UInt8] = []
        registry.emit(into: &families)
        var out = MetricsText.addingHelp(to: families, help: TapeMetrics.help)
        MetricsText.appendProcessFamilies(ProcessStats.current(), to: &out)
        return out
    }
}
