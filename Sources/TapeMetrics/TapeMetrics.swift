import CoreMetrics

/// The one place where Tape's metric names and label sets are defined.
///
/// The server increments its own series here (`tape_server_*`, `tape_ws_*`, gaps, health, its
/// consumer lag); the ingest and process stages and the broker keep plain counters, which their
/// `tape up` services (TapeRuntime's `IngestStage`, `ProcessorStage`, `BrokerStage`) report into
/// these series once a second; producers record `tape_produce_latency_seconds` because Tape passes that name to
/// KafkaClient (`KafkaConfiguration.produceLatencyMetric`). `tape serve` / `tape up` bootstrap the
/// metrics system with swift-prometheus (see `TapeServer.MetricsExporter.bootstrap()`) and expose
/// them on `GET /metrics` in the Prometheus text format, each family with `# HELP` (from `help`)
/// and `# TYPE`, followed by the standard `process_*` families (`ProcessStats`, `MetricsText`).
///
/// Rules (swift-prometheus enforces them with a crash, so use the helpers below, not raw labels):
/// - a name always carries the same label *names* (values vary);
/// - a name is one type only (counter, gauge or timer);
/// - no help text is attached through swift-metrics (swift-prometheus would stop the process on a
///   second registration with other help); `help` below holds each family's `# HELP` text and the
///   exporter adds it to the scrape (`MetricsText.addingHelp`).
///
/// | name | type | labels | incremented by |
/// |---|---|---|---|
/// | `tape_frames_in_total` | counter | exchange | ingest: each websocket text frame received |
/// | `tape_trades_in_total` | counter | exchange | ingest: each trade parsed from a frame or REST backfill |
/// | `tape_parse_errors_total` | counter | exchange | ingest: each frame that could not be parsed (→ `tape.deadletter`) |
/// | `tape_reconnects_total` | counter | exchange | ingest: each reconnect of the exchange socket |
/// | `tape_book_updates_total` | counter | exchange | ingest: each `tape.books` record published (snapshots and updates) |
/// | `tape_book_resyncs_total` | counter | exchange, reason | ingest: each book thrown away and re-synchronized (`sequence_break`, `checksum`, `crossed`, `reconnect`/`invalid` as `other`) |
/// | `tape_book_checksum_failures_total` | counter | exchange | ingest: each venue checksum that did not match Tape's book (Kraken) |
/// | `tape_book_age_seconds` | gauge | exchange | ingest: seconds since the venue time of the newest book record (staleness) |
/// | `tape_produce_latency_seconds` | timer (histogram) | topic | any producer: enqueue → delivery report |
/// | `tape_consumer_lag_messages` | gauge | group, topic | the processor (`tape-processor`, its input topic) and the server's readers (`tape-serve`, each topic): high watermark − position, summed over partitions |
/// | `tape_consumer_fetch_refills_total` | counter | group | the processor's input consumer: requests sent to restart fetching after its pre-fetch queue had filled (reading a backlog; docs/processing.md) |
/// | `tape_broker_bytes_in_total` | counter | — | embedded broker: request bytes read from sockets |
/// | `tape_broker_bytes_out_total` | counter | — | embedded broker: response bytes written to sockets |
/// | `tape_broker_connections` | gauge | — | embedded broker: client connections open |
/// | `tape_broker_connections_closed_total` | counter | reason | embedded broker: connections closed by a limit (`refused`, `evicted`, `idle`, `read-timeout`; docs/limits.md) |
/// | `tape_http_rejected_total` | counter | reason | server: requests and connections refused by a limit (`uri-too-long`, `headers-too-large`, `timeout`, `refused`, `evicted`) |
/// | `tape_ingest_dead_letters_total` | counter | exchange, reason | ingest: each record written to `tape.deadletter` (`unparseable-frame`, `backfill-failed`) |
/// | `tape_backfill_requests_total` | counter | exchange | ingest: each REST recent-trades request (backfill after a subscribe, gap repair, reconciliation; every attempt) |
/// | `tape_backfill_trades_total` | counter | exchange | ingest: trades REST delivered that the stream had not (backfill and repairs) |
/// | `tape_backfill_failures_total` | counter | exchange | ingest: each market whose REST backfill or repair failed after its attempts |
/// | `tape_candles_emitted_total` | counter | interval | processing: each candle update produced to `tape.candles`, per interval (`1m`, ...) |
/// | `tape_process_dead_letters_total` | counter | reason | processing: each input record rejected (`not-a-trade`, `time-out-of-range`, `overflow`; → `tape.deadletter`), and `deadletter-failed` for each one that could not be written there |
/// | `tape_server_trades_seen_total` | counter | — | server: trades read from its trade feed |
/// | `tape_server_candles_seen_total` | counter | — | server: candles read from its candle feed |
/// | `tape_ws_clients` | gauge | — | server: open `/ws` connections |
/// | `tape_ws_messages_out_total` | counter | — | server: messages queued to `/ws` clients |
/// | `tape_ws_messages_dropped_total` | counter | — | server: messages dropped because a `/ws` client was too slow |
/// | `tape_gaps_total` | counter | exchange, channel | server: gaps found, read from `tape.gaps` (each gap once) |
/// | `tape_gaps_repaired_total` | counter | exchange, channel | server: gaps `tape.gaps` says were repaired |
/// | `tape_gaps_open` | gauge | exchange, channel | server: gaps known and not repaired |
/// | `tape_health_degraded` | gauge | — | server: 1 while `/health` says degraded |
/// | `tape_health_check` | gauge | check | server: 1 while that check (`exchange`, `kafka`, `trades`, `processor`) fails |
/// | `tape_last_trade_age_seconds` | gauge | — | server: seconds since it last read a trade (since start when none yet) |
/// | `tape_server_trade_delay_seconds` | timer (histogram) | — | server: each live trade it reads, ingestion's receipt of the frame (`receivedAt`) → read from the trade feed |
///
/// Create metric handles once and keep them (a handle created before the metrics system is
/// bootstrapped stays a no-op forever).
public enum TapeMetrics {
    public static let framesIn = "tape_frames_in_total"
    public static let tradesIn = "tape_trades_in_total"
    public static let parseErrors = "tape_parse_errors_total"
    public static let reconnects = "tape_reconnects_total"
    public static let bookUpdates = "tape_book_updates_total"
    public static let bookResyncs = "tape_book_resyncs_total"
    public static let bookChecksumFailures = "tape_book_checksum_failures_total"
    public static let bookAge = "tape_book_age_seconds"
    public static let produceLatency = "tape_produce_latency_seconds"
    public static let consumerLag = "tape_consumer_lag_messages"
    public static let consumerFetchRefills = "tape_consumer_fetch_refills_total"
    public static let brokerBytesIn = "tape_broker_bytes_in_total"
    public static let brokerBytesOut = "tape_broker_bytes_out_total"
    public static let brokerConnections = "tape_broker_connections"
    public static let brokerConnectionsClosed = "tape_broker_connections_closed_total"
    public static let httpRejected = "tape_http_rejected_total"
    public static let candlesEmitted = "tape_candles_emitted_total"
    public static let processDeadLetters = "tape_process_dead_letters_total"
    public static let serverTradesSeen = "tape_server_trades_seen_total"
    public static let serverCandlesSeen = "tape_server_candles_seen_total"
    public static let wsClients = "tape_ws_clients"
    public static let wsMessagesOut = "tape_ws_messages_out_total"
    public static let wsMessagesDropped = "tape_ws_messages_dropped_total"
    public static let gaps = "tape_gaps_total"
    public static let gapsRepaired = "tape_gaps_repaired_total"
    public static let gapsOpen = "tape_gaps_open"
    public static let healthDegraded = "tape_health_degraded"
    public static let healthCheck = "tape_health_check"
    public static let lastTradeAge = "tape_last_trade_age_seconds"
    public static let serverTradeDelay = "tape_server_trade_delay_seconds"
    public static let ingestDeadLetters = "tape_ingest_dead_letters_total"
    public static let backfillRequests = "tape_backfill_requests_total"
    public static let backfillTrades = "tape_backfill_trades_total"
    public static let backfillFailures = "tape_backfill_failures_total"
    public static let simulatorTrades = "tape_simulator_trades_total"
    public static let simulatorBursts = "tape_simulator_bursts_total"
    public static let simulatorBurstSeconds = "tape_simulator_burst_seconds_total"

    /// Every name above, for documentation and tests.
    public static let allNames: [String] = [
        framesIn, tradesIn, parseErrors, reconnects, bookUpdates, bookResyncs, bookChecksumFailures, bookAge,
        produceLatency, consumerLag, consumerFetchRefills, brokerBytesIn, brokerBytesOut, brokerConnections, brokerConnectionsClosed,
        httpRejected,
        candlesEmitted, processDeadLetters, serverTradesSeen, serverCandlesSeen, wsClients, wsMessagesOut, wsMessagesDropped,
        gaps, gapsRepaired, gapsOpen, healthDegraded, healthCheck, lastTradeAge, serverTradeDelay,
        ingestDeadLetters, backfillRequests, backfillTrades, backfillFailures,
        simulatorTrades, simulatorBursts, simulatorBurstSeconds,
    ]

    /// The `# HELP` text of every family (the exporter adds it to the scrape; one line, plain text).
    public static let help: [String: String] = [
        framesIn: "Websocket text frames received from the exchange.",
        simulatorTrades: "Trades the built-in simulator generated (tape up --offline), in bursts or calm.",
        simulatorBursts: "Bursts (the order rate times 20) the built-in simulator started.",
        simulatorBurstSeconds: "Simulated seconds the built-in simulator spent in bursts.",
        tradesIn: "Trades parsed from exchange frames or REST backfill (deduplicated).",
        parseErrors: "Exchange frames that could not be parsed (written to the dead-letter topic).",
        reconnects: "Reconnects of the exchange websocket.",
        bookUpdates: "Order book records published to the books topic (snapshots and updates).",
        bookResyncs: "Order books thrown away and re-synchronized, by reason.",
        bookChecksumFailures: "Venue book checksums that did not match Tape's book.",
        bookAge: "Seconds since the venue time of the newest order book record.",
        produceLatency: "Producer enqueue to broker acknowledgement, sampled 1 record in 64.",
        consumerLag: "Records not yet read by a consumer group: high watermark minus position, summed over partitions.",
        consumerFetchRefills: "Requests a consumer sent to restart fetching after its pre-fetch queue had filled (it is reading a backlog).",
        brokerBytesIn: "Request bytes the embedded broker read from client sockets.",
        brokerBytesOut: "Response bytes the embedded broker wrote to client sockets.",
        brokerConnections: "Client connections open on the embedded broker.",
        brokerConnectionsClosed: "Embedded broker connections refused or closed by a limit, by reason.",
        httpRejected: "HTTP requests and connections refused by a limit, by reason.",
        candlesEmitted: "Candle updates produced to the candles topic, by interval.",
        processDeadLetters: "Input records the processor rejected, by reason (deadletter-failed: could not be written to the dead-letter topic).",
        serverTradesSeen: "Trades the server read from its trade feed.",
        serverCandlesSeen: "Candles the server read from its candle feed.",
        wsClients: "Open /ws connections.",
        wsMessagesOut: "Messages queued to /ws clients.",
        wsMessagesDropped: "Messages dropped because a /ws client was too slow.",
        gaps: "Intervals with possibly missing data found, read from the gaps topic (each gap once).",
        gapsRepaired: "Gaps the gaps topic reports as repaired.",
        gapsOpen: "Gaps known and not repaired.",
        healthDegraded: "1 while /health says degraded, else 0.",
        healthCheck: "1 while that /health check fails, else 0.",
        lastTradeAge: "Seconds since the server last read a trade (since start when none yet).",
        serverTradeDelay:
            "Ingestion's receipt of a trade's frame to the server reading the trade from its feed (wall clocks; both stages on one host in tape up).",
        ingestDeadLetters: "Records ingest wrote to the dead-letter topic, by reason.",
        backfillRequests: "REST recent-trades requests: backfill after a subscribe, gap repairs and reconciliation, every attempt.",
        backfillTrades: "Trades REST delivered that the websocket had not (backfill and repairs).",
        backfillFailures: "Markets whose REST backfill or repair failed after all attempts.",
    ]

    /// `tape_frames_in_total{exchange}`.
    public static func framesIn(exchange: String) -> Counter { Counter(label: framesIn, dimensions: [("exchange", exchange)]) }
    /// `tape_simulator_trades_total{exchange,phase}`, phase `burst` or `calm`.
    public static func simulatorTrades(exchange: String, phase: String) -> Counter {
        Counter(label: simulatorTrades, dimensions: [("exchange", exchange), ("phase", phase)])
    }
    /// `tape_simulator_bursts_total{exchange}`.
    public static func simulatorBursts(exchange: String) -> Counter { Counter(label: simulatorBursts, dimensions: [("exchange", exchange)]) }
    /// `tape_simulator_burst_seconds_total{exchange}` (whole milliseconds counted as a float counter).
    public static func simulatorBurstSeconds(exchange: String) -> FloatingPointCounter {
        FloatingPointCounter(label: simulatorBurstSeconds, dimensions: [("exchange", exchange)])
    }
    /// `tape_trades_in_total{exchange}`.
    public static func tradesIn(exchange: String) -> Counter { Counter(label: tradesIn, dimensions: [("exchange", exchange)]) }
    /// `tape_parse_errors_total{exchange}`.
    public static func parseErrors(exchange: String) -> Counter {
        Counter(label: parseErrors, dimensions: [("exchange", exchange)])
    }
    /// `tape_reconnects_total{exchange}`.
    public static func reconnects(exchange: String) -> Counter {
        Counter(label: reconnects, dimensions: [("exchange", exchange)])
    }
    /// `tape_book_updates_total{exchange}`.
    public static func bookUpdates(exchange: String) -> Counter { Counter(label: bookUpdates, dimensions: [("exchange", exchange)]) }

    public static func bookResyncs(exchange: String, reason: String) -> Counter {
        Counter(label: bookResyncs, dimensions: [("exchange", exchange), ("reason", reason)])
    }

    public static func bookChecksumFailures(exchange: String) -> Counter {
        Counter(label: bookChecksumFailures, dimensions: [("exchange", exchange)])
    }

    public static func bookAge(exchange: String) -> Gauge { Gauge(label: bookAge, dimensions: [("exchange", exchange)]) }

    /// `tape_produce_latency_seconds{topic}`: record with `.recordNanoseconds` / `.record(duration:)`.
    public static func produceLatency(topic: String) -> Timer {
        Timer(label: produceLatency, dimensions: [("topic", topic)], preferredDisplayUnit: .seconds)
    }
    /// `tape_consumer_lag_messages{group,topic}`.
    public static func consumerLag(group: String, topic: String) -> Gauge {
        Gauge(label: consumerLag, dimensions: [("group", group), ("topic", topic)])
    }
    /// `tape_consumer_fetch_refills_total{group}`.
    public static func consumerFetchRefills(group: String) -> Counter {
        Counter(label: consumerFetchRefills, dimensions: [("group", group)])
    }
    /// `tape_broker_bytes_in_total`.
    public static func brokerBytesInCounter() -> Counter { Counter(label: brokerBytesIn) }
    /// `tape_broker_connections`.
    public static func brokerConnectionsGauge() -> Gauge { Gauge(label: brokerConnections) }
    /// `tape_broker_connections_closed_total{reason}`.
    public static func brokerConnectionsClosed(reason: String) -> Counter { Counter(label: brokerConnectionsClosed, dimensions: [("reason", reason)]) }
    /// `tape_http_rejected_total{reason}`.
    public static func httpRejected(reason: String) -> Counter { Counter(label: httpRejected, dimensions: [("reason", reason)]) }
    /// `tape_broker_bytes_out_total`.
    public static func brokerBytesOutCounter() -> Counter { Counter(label: brokerBytesOut) }
    /// `tape_candles_emitted_total{interval}` (interval in canonical text, "1m").
    public static func candlesEmitted(interval: String) -> Counter {
        Counter(label: candlesEmitted, dimensions: [("interval", interval)])
    }
    /// `tape_ingest_dead_letters_total{exchange,reason}`: `unparseable-frame` or `backfill-failed`.
    public static func ingestDeadLetters(exchange: String, reason: String) -> Counter {
        Counter(label: ingestDeadLetters, dimensions: [("exchange", exchange), ("reason", reason)])
    }
    /// `tape_backfill_requests_total{exchange}`.
    public static func backfillRequests(exchange: String) -> Counter { Counter(label: backfillRequests, dimensions: [("exchange", exchange)]) }
    /// `tape_backfill_trades_total{exchange}`.
    public static func backfillTrades(exchange: String) -> Counter { Counter(label: backfillTrades, dimensions: [("exchange", exchange)]) }
    /// `tape_backfill_failures_total{exchange}`.
    public static func backfillFailures(exchange: String) -> Counter { Counter(label: backfillFailures, dimensions: [("exchange", exchange)]) }
    /// `tape_process_dead_letters_total{reason}`: `not-a-trade`, `time-out-of-range`, `overflow`,
    /// or `deadletter-failed`.
    public static func processDeadLetters(reason: String) -> Counter {
        Counter(label: processDeadLetters, dimensions: [("reason", reason)])
    }
    /// `tape_gaps_total{exchange,channel}`.
    public static func gapsFound(exchange: String, channel: String) -> Counter {
        Counter(label: gaps, dimensions: [("exchange", exchange), ("channel", channel)])
    }
    /// `tape_gaps_repaired_total{exchange,channel}`.
    public static func gapsRepaired(exchange: String, channel: String) -> Counter {
        Counter(label: gapsRepaired, dimensions: [("exchange", exchange), ("channel", channel)])
    }
    /// `tape_gaps_open{exchange,channel}`.
    public static func gapsOpen(exchange: String, channel: String) -> Gauge {
        Gauge(label: gapsOpen, dimensions: [("exchange", exchange), ("channel", channel)])
    }
    /// `tape_health_degraded`.
    public static func healthDegradedGauge() -> Gauge { Gauge(label: healthDegraded) }
    /// `tape_health_check{check}`: `exchange`, `kafka`, `trades`, `processor`.
    public static func healthCheckGauge(check: String) -> Gauge { Gauge(label: healthCheck, dimensions: [("check", check)]) }
    /// `tape_last_trade_age_seconds`.
    public static func lastTradeAgeGauge() -> Gauge { Gauge(label: lastTradeAge) }
    /// `tape_server_trade_delay_seconds`: record with `.recordNanoseconds`.
    public static func serverTradeDelayTimer() -> Timer { Timer(label: serverTradeDelay, preferredDisplayUnit: .seconds) }
}
