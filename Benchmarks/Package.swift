// swift-tools-version: 6.1
// Microbenchmarks (ordo-one/package-benchmark), kept out of the main package so that building
// and testing Faultline does not build the benchmark harness. Run from this folder:
//   swift package benchmark
import PackageDescription

// A path dependency's identity is its folder's name, whatever the clone was called.
let faultlineIdentity = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "Faultline").lowercased()

let package = Package(
  name: "FaultlineBenchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(path: ".."),
    .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
  ],
  targets: [
    .executableTarget(
      name: "FaultBenchmarks",
      dependencies: [
        .product(name: "Faultline", package: faultlineIdentity),
        .product(name: "Benchmark", package: "benchmark"),
      ],
      path: "Benchmarks/FaultBenchmarks",
      plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
  ]
)
