// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "plumb",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "plumb", targets: ["plumb"]),
        .executable(name: "plumb-bench", targets: ["plumb-bench"]),
        .executable(name: "plumb-agent", targets: ["plumb-agent"]),
        .executable(name: "plumb-collector", targets: ["plumb-collector"]),
        .library(name: "PlumbCore", targets: ["PlumbCore"]),
        .library(name: "PlumbModelIO", targets: ["PlumbModelIO"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Pure: no dependencies, no Foundation, no I/O. Time is an argument.
        .target(name: "PlumbCore", dependencies: [], swiftSettings: swiftSettings),
        // Reads and writes model documents (YAML/JSON) and AWS describe-* output.
        .target(
            name: "PlumbModelIO",
            dependencies: ["PlumbCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // The VPC drawn from the model (layout and SVG), for the collector's page and `plumb diagram`. Pure, like Core.
        .target(name: "PlumbDiagram", dependencies: ["PlumbCore"], swiftSettings: swiftSettings),
        // libcurl from the system (Debian: libcurl4-openssl-dev), with one-type wrappers for the variadic calls.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // Socket calls Swift cannot import directly: epoll, control messages (IP_PKTINFO), ICMP framing.
        .target(name: "CPlumbSys"),
        // The v1 documents agents and collector exchange. Codable values only: no Foundation, no I/O.
        .target(name: "PlumbWire", dependencies: [], swiftSettings: swiftSettings),
        // Probers (udp-echo, tcp, icmp, http, dns), the responder, and the I/O they share.
        .target(
            name: "PlumbProbes",
            dependencies: ["PlumbWire", "CCurl", "CPlumbSys"],
            swiftSettings: swiftSettings
        ),
        // Discovery, plan sync, scheduler, reporter and spool.
        .target(
            name: "PlumbAgent",
            dependencies: [
                "PlumbCore", "PlumbWire", "PlumbProbes", "PlumbModelIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The collector's storage: a `Store` protocol, its SQLite implementation (the embedded default) and its
        // PostgreSQL implementation (several collectors).
        .target(
            name: "PlumbStore",
            dependencies: [
                "PlumbCore", "PlumbWire",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // EC2 instance identity: verifying the signed document an agent sends (collector), signing one (the lab's IMDS
        // stand-in, tests). swift-crypto and swift-asn1; no hand-written crypto.
        .target(
            name: "PlumbIdentity",
            dependencies: [
                "PlumbWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        // The collector: HTTP API, ingest, evaluation loop, notifier, metrics.
        .target(
            name: "PlumbCollector",
            dependencies: [
                "PlumbCore", "PlumbWire", "PlumbStore", "PlumbModelIO", "PlumbProbes", "PlumbIdentity", "PlumbDiagram",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "plumb-collector",
            dependencies: [
                "PlumbCollector", "PlumbStore", "PlumbAgent", "PlumbFakes", "PlumbProbes", "PlumbWire", "PlumbCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Stand-ins for what an agent talks to outside the VPC's own hosts: a fake IMDS, an egress-echo endpoint, an
        // HTTP server for tests and the lab.
        .target(name: "PlumbFakes", dependencies: ["PlumbProbes"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "plumb-agent",
            dependencies: [
                "PlumbAgent", "PlumbProbes", "PlumbWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "plumb",
            dependencies: [
                "PlumbCore", "PlumbModelIO", "PlumbProbes", "PlumbDiagram",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "plumb-lab",
            dependencies: [
                "PlumbCore", "PlumbModelIO", "PlumbProbes", "PlumbFakes", "PlumbIdentity", "PlumbWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "plumb-bench",
            dependencies: [
                "PlumbCore", "PlumbModelIO", "PlumbProbes", "PlumbWire", "PlumbFakes", "CPlumbSys", "PlumbCollector", "PlumbStore", "PlumbDiagram",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // For the tests only: the PostgreSQL server they use (PLUMB_TEST_POSTGRES, or a throwaway cluster).
        .target(name: "PlumbTestSupport", dependencies: [], swiftSettings: swiftSettings),
        .testTarget(
            name: "PlumbCoreTests",
            dependencies: ["PlumbCore", "PlumbDiagram", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlumbModelIOTests",
            dependencies: ["PlumbCore", "PlumbModelIO"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlumbProbesTests",
            dependencies: ["PlumbProbes", "PlumbWire", "PlumbFakes", "CPlumbSys"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlumbCollectorTests",
            dependencies: [
                "PlumbCollector", "PlumbStore", "PlumbCore", "PlumbWire", "PlumbFakes", "PlumbProbes", "PlumbModelIO", "PlumbTestSupport",
                "PlumbIdentity",
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlumbStoreTests",
            dependencies: [
                "PlumbStore", "PlumbCore", "PlumbWire", "PlumbTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlumbAgentTests",
            dependencies: [
                "PlumbAgent", "PlumbProbes", "PlumbWire", "PlumbFakes", "CPlumbSys",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
