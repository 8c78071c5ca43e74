// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
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
    ],
    targets: [
        .systemLibrary(
            name: "Crdkafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "KafkaClient",
            dependencies: [
                "Crdkafka",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // SSE4.2 CRC-32C for RecordBatch checksums (runtime CPU check; Swift has no intrinsic).
        .target(name: "CTapeCRC32C"),
        .target(
            name: "KafkaProtocol",
            dependencies: ["CTapeCRC32C", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .target(
            name: "TapeBroker",
            dependencies: [
                "KafkaProtocol",
                "CTapeCRC32C",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "MarketData",
            swiftSettings: strict
        ),
        .target(
            name: "Exchanges",
            dependencies: ["MarketData"],
            swiftSettings: strict
        ),
        .target(
            name: "ExchangeSimulator",
            dependencies: ["MarketData"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tape",
            dependencies: [
                "KafkaClient",
                "MarketData",
                "Exchanges",
                "TapeBroker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KafkaClientTests",
            dependencies: ["KafkaClient", "Crdkafka"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MarketDataTests",
            dependencies: ["MarketData"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ExchangesTests",
            dependencies: ["Exchanges", "MarketData", "ExchangeSimulator"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KafkaProtocolTests",
            dependencies: ["KafkaProtocol", .product(name: "NIOCore", package: "swift-nio")],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TapeBrokerTests",
            dependencies: [
                "TapeBroker", "KafkaProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["KafkaClient", "tape"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TapeBrokerStorageTests",
            dependencies: ["TapeBroker"],
            swiftSettings: strict
        ),
    ]
)
