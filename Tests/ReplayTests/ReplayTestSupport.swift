import Faultline
import FaultlineReplay
import Foundation

/// The text of a checked-in fixture (`Tests/ReplayTests/Fixtures/NAME`).
func readFixture(_ name: String, filePath: String = #filePath) throws -> String {
  let dir = URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
  // Lossy, as the fuzzer reads its inputs: fuzzer findings need not be UTF-8.
  return String(decoding: try Data(contentsOf: dir.appendingPathComponent(name)), as: UTF8.self)
}

/// Parses and replays `text` on a small machine. The fixtures and scripts were recorded on
/// machines without protection keys unless a test says otherwise, so `profile` is pinned
/// (`.reference`) rather than this host's: the tests answer the same on every host.
func replay(
  _ text: String, mapsBase: UInt64? = nil, design: FaultDesign = .mmapLock, profile: MachineProfile = .reference
) throws -> ReplayReport {
  var options = ReplayOptions(mapsBase: mapsBase, design: design)
  options.memoryBytes = 64 << 20
  options.profile = profile
  return try ReplayExecutor.replay(text, options: options)
}
