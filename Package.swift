// swift-tools-version: 6.1
import PackageDescription

let package = Package(
  name: "Faultline",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "Faultline", targets: ["Faultline"]),
    .library(name: "FaultlineReplay", targets: ["FaultlineReplay"]),
    .executable(name: "faultline", targets: ["faultline"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    // `swift package generate-documentation --target Faultline` (the DocC catalog in
    // Sources/Faultline/Faultline.docc).
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
  ],
  targets: [
    // C shims for what Swift's Glibc module does not expose: membarrier, futex, CPU pinning, TSan
    // annotations and the pause instruction.
    .target(name: "CFaultlineShims"),
    // The host side of `faultline conform`: runs op sequences on the kernel in a forked child.
    .target(name: "CFaultlineProbe"),
    .target(
      name: "Faultline",
      dependencies: [
        "CFaultlineShims",
        .product(name: "SystemPackage", package: "swift-system"),
      ]
    ),
    .target(
      name: "FaultlineWorkloads",
      dependencies: ["Faultline", "CFaultlineShims", .product(name: "Histogram", package: "hdrhistogram-swift")]
    ),
    .target(name: "FaultlineExplore", dependencies: ["Faultline", "CFaultlineShims"]),
    .target(name: "FaultlineConform", dependencies: ["Faultline", "CFaultlineProbe", "FaultlineReplay"]),
    .target(name: "FaultlineReplay", dependencies: ["Faultline"]),
    .target(
      name: "FaultlineCLI",
      dependencies: [
        "Faultline", "FaultlineWorkloads", "FaultlineExplore", "FaultlineConform", "FaultlineReplay",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    .executableTarget(name: "faultline", dependencies: ["FaultlineCLI"]),
    .target(name: "FaultlineTestSupport", dependencies: ["Faultline", "FaultlineWorkloads"], path: "Tests/FaultlineTestSupport"),
    .testTarget(name: "SyncTests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "PhysicalTests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "PageTableTests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "VMATests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "AddressSpaceTests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "FaultTests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "AccessTests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "FilesTests", dependencies: ["Faultline", "FaultlineTestSupport"]),
    .testTarget(name: "WorkloadsTests", dependencies: ["FaultlineWorkloads"]),
    .testTarget(name: "CLITests", dependencies: ["FaultlineCLI"]),
    .testTarget(name: "ExploreTests", dependencies: ["FaultlineExplore", "Faultline"]),
    .testTarget(
      name: "ConformTests", dependencies: ["FaultlineConform", "FaultlineReplay", "CFaultlineProbe", "FaultlineTestSupport"]),
    .testTarget(
      name: "ReplayTests", dependencies: ["FaultlineReplay", "FaultlineCLI", "FaultlineTestSupport"],
      exclude: ["Fixtures"]),
  ]
)
