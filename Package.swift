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
        .library(name: "PlumbCore", targets: ["PlumbCore"]),
        .library(name: "PlumbModelIO", targets: ["PlumbModelIO"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
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
        .executableTarget(
            name: "plumb",
            dependencies: [
                "PlumbCore", "PlumbModelIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "plumb-bench",
            dependencies: ["PlumbCore", "PlumbModelIO"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlumbCoreTests",
            dependencies: ["PlumbCore", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlumbModelIOTests",
            dependencies: ["PlumbCore", "PlumbModelIO"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
