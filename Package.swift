// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

/// SwiftNIO products used by the exchange transports (websocket + REST clients, TLS) and the simulator's servers.
let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "NIOWebSocket", package: "swift-nio"),
    .product(name: "NIOSSL", package: "swift-nio-ssl"),
]

let package = Package(
    name: "Tape",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tape", targets: ["tape"]),
        .library(name: "KafkaClient", targets: ["KafkaClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // Package-internal helpers every module shares (no dependencies, `package` access only):
        // the one Duration → seconds conversion and the one seeded generator (SplitMix64).
        .target(name: "TapeCommon", swiftSettings: strict),
        .systemLibrary(
            name: "Crdkafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "KafkaClient",
            dependencies: [
                "Crdkafka",
                "TapeCommon",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // Kafka's record batch codecs through Debian's C libraries (the broker decompresses and recompresses batches).
        .systemLibrary(name: "CTapeZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CTapeSnappy", pkgConfig: "snappy", providers: [.apt(["libsnappy-dev"])]),
        .systemLibrary(name: "CTapeLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CTapeZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // SSE4.2 CRC-32C for RecordBatch checksums (runtime CPU check; Swift has no intrinsic).
        .target(name: "CTapeCRC32C"),
        .target(name: "CTapeMalloc"),
        // Linux file calls Glibc does not export to Swift (sync_file_range needs _GNU_SOURCE).
        .target(name: "CTapeFileIO"),
        .target(
            name: "KafkaProtocol",
            dependencies: ["CTapeCRC32C", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .target(
            name: "TapeBroker",
            dependencies: [
                "KafkaProtocol",
                "CTapeFileIO",
                "TapeCommon",
                "CTapeZlib",
                "CTapeSnappy",
                "CTapeLZ4",
                "CTapeZstd",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                // SASL SCRAM/PLAIN (HMAC, SHA-2) and TLS listeners.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "MarketData",
            swiftSettings: strict
        ),
        .target(
            name: "Exchanges",
            dependencies: ["MarketData", "TapeCommon"] + nio,
            swiftSettings: strict
        ),
        .target(
            name: "ExchangeSimulator",
            dependencies: ["MarketData", "TapeCommon"] + nio,
            swiftSettings: strict
        ),
        .target(
            name: "Ingest",
            dependencies: ["Exchanges", "MarketData", "KafkaClient", "TapeCommon", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "Processing",
            dependencies: [
                "MarketData",
                "TapeCommon",
                "KafkaClient",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TapeMetrics",
            dependencies: [.product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        .target(
            name: "TapeServer",
            dependencies: [
                "MarketData",
                "TapeCommon",
                "KafkaClient",
                "Processing",
                "TapeMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The whole pipeline as services in one ServiceGroup (`buildTape`): what `tape up` runs.
        .target(
            name: "TapeRuntime",
            dependencies: [
                "KafkaClient", "MarketData", "Exchanges", "TapeBroker", "Ingest", "ExchangeSimulator", "Processing", "TapeServer", "TapeMetrics",
                "TapeCommon",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tape",
            dependencies: [
                "KafkaClient",
                "MarketData",
                "Exchanges",
                "TapeBroker",
                "Ingest",
                "ExchangeSimulator",
                "Processing",
                "TapeServer",
                "TapeRuntime",
                "TapeMetrics",
                "CTapeMalloc",
                "TapeCommon",
                // IOError: socket errors (a busy port) become one sentence (Failure.swift).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        // Test plumbing every test target shares: child processes, the built `tape` binary, free
        // loopback ports, temporary directories, waiting for a line or a port, a lock for what
        // callbacks collect, and the seeded generator (TapeCommon's SplitMix64, re-exported).
        .target(
            name: "TapeTestSupport",
            dependencies: ["TapeCommon"],
            swiftSettings: strict
        ),

        // Pure test targets (`make test-fast`): no child processes, no sockets, seconds to run.
        .testTarget(
            name: "MarketDataTests",
            dependencies: ["MarketData", "TapeTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KafkaProtocolTests",
            dependencies: ["KafkaProtocol", "TapeTestSupport", .product(name: "NIOCore", package: "swift-nio")],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KafkaClientTests",
            dependencies: ["KafkaClient"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ExchangesTests",
            dependencies: ["Exchanges", "MarketData", "ExchangeSimulator", "TapeTestSupport"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ExchangeSimulatorTests",
            dependencies: ["ExchangeSimulator", "Exchanges", "TapeTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TapeBrokerTests",
            dependencies: [
                "TapeBroker", "KafkaProtocol", "TapeTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TapeBrokerStorageTests",
            dependencies: ["TapeBroker", "KafkaProtocol", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TapeServerTests",
            dependencies: [
                "TapeServer",
                "MarketData",
                "KafkaClient",
                "Processing",
                "TapeMetrics",
                "TapeTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ProcessingTests",
            dependencies: ["Processing", "MarketData", "KafkaClient", "TapeTestSupport"],
            swiftSettings: strict
        ),

        // Process test targets (names end in ProcessTests, plus IntegrationTests; only `make test`):
        // child processes (the built `tape`, kcat, kafka-python, openssl) and real sockets. They
        // do not depend on the `tape` executable target: TapeTestSupport finds the built binary.
        .testTarget(
            name: "KafkaClientProcessTests",
            dependencies: ["KafkaClient", "Crdkafka", "TapeTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ExchangeSimulatorProcessTests",
            dependencies: ["ExchangeSimulator", "Exchanges", "TapeTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TapeBrokerProcessTests",
            dependencies: [
                "TapeBroker", "KafkaProtocol", "TapeTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IngestProcessTests",
            dependencies: ["Ingest", "Exchanges", "ExchangeSimulator", "KafkaClient", "TapeTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ProcessingProcessTests",
            dependencies: ["Processing", "MarketData", "KafkaClient", "TapeTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["KafkaClient", "Processing", "MarketData", "TapeTestSupport"],
            swiftSettings: strict
        ),
        // The whole pipeline in this process through buildTape (loopback sockets, no child process).
        .testTarget(
            name: "TapeRuntimeTests",
            dependencies: [
                "TapeRuntime", "TapeBroker", "KafkaProtocol", "Processing", "TapeTestSupport", "Ingest", "MarketData", "KafkaClient", "TapeMetrics",
                "TapeServer",
            ],
            swiftSettings: strict
        ),
    ]
)
