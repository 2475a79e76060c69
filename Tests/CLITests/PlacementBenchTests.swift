import ArgumentParser
import Faultline
import FaultlineReplay
import Testing

@testable import FaultlineCLI

/// `faultline placement-bench`: its options, and the thread log it replays (no timing).
@Suite struct PlacementBenchTests {
  @Test func checkpointsKeepCountsWithinTheMappings() throws {
    let b = try PlacementBench.parse(["--mappings", "5000", "--at", "1000,10000,5000", "--lookup-vmas", "10"])
    #expect(b.checkpoints == [1000, 5000])
    #expect(b.lookupVMAs == "10")
  }

  @Test(arguments: [["--mappings", "0"], ["--at", "0"], ["--window", "0"], ["--threads", "-1"]])
  func badCountsAreRejected(_ args: [String]) {
    #expect(throws: (any Error).self) { try PlacementBench.parse(args) }
  }

  /// The generated log is what the engine's placement gives (stacks stacked downward from the
  /// first one's end, a reused stack back in its own hole, the malloc chunk below them all), so
  /// it replays with no mismatch: 1 brk + 2 calls per stack, twice, + munmap per reuse + 2 per
  /// malloc chunk.
  @Test func threadLogReplaysWithoutMismatches() throws {
    let text = PlacementBench.threadsLog(threads: 40)
    #expect(text.split(separator: "\n").count == 1 + 40 * 7)
    let (script, unreadable) = try ScriptParser.parseSkippingUnreadable(text)
    #expect(unreadable.isEmpty)
    let report = try ReplayExecutor(options: ReplayOptions(design: .mmapLock)).run(script, unreadableLines: unreadable)
    #expect(report.mismatches.isEmpty)
  }
}
