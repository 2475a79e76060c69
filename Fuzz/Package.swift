// swift-tools-version: 6.1
// A libFuzzer target over the replay parser and the engine's system calls, kept out of the main
// package so that building Faultline never needs the fuzzer runtime. Build and run from this
// folder (see README.md, "Fuzzing"):
//   swift build -c release -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
//   .build/release/ReplayFuzzer Corpus -max_total_time=600
import PackageDescription

// A path dependency's identity is its folder's name, whatever the clone was called.
let faultlineIdentity = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "Faultline").lowercased()

let package = Package(
  name: "FaultlineFuzz",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(path: "..")
  ],
  targets: [
    .executableTarget(
      name: "ReplayFuzzer",
      dependencies: [.product(name: "FaultlineReplay", package: faultlineIdentity)]
    )
  ]
)
