import Faultline
import Testing

@testable import FaultlineExplore

/// The real scenarios: no violations under any design, replay reproduces an outcome, and a
/// broken writer is caught. Scenarios with many schedules are sampled (`budget`) to keep the
/// suite to seconds, also under TSan; `faultline explore all` covers them exhaustively.
@Suite struct ScenarioTests {
  struct Case: CustomStringConvertible, Sendable {
    let scenario: String
    let design: FaultDesign
    let fput: FputMode
    var description: String { "\(scenario)/\(design)/\(fput.rawValue)" }
  }

  static let cases: [Case] = Scenario.all.flatMap { sc in
    FaultDesign.allCases.flatMap { d in
      (sc.usesFputMode ? FputMode.allCases : [.synchronous]).map { Case(scenario: sc.name, design: d, fput: $0) }
    }
  }

  static func explore(_ c: Case, variant: String, mode: Explorer.Mode, sabotage: Bool = false) -> Explorer.Result {
    var config = ScenarioConfig(design: c.design, variant: variant)
    config.fputMode = c.fput
    config.sabotage = sabotage
    return Explorer(scenario: Scenario.named(c.scenario)!, config: config, mode: mode).explore()
  }

  @Test(arguments: cases)
  func everyInterleavingKeepsTheInvariants(c: Case) {
    for v in Scenario.named(c.scenario)!.variants {
      // At most 40 schedules per variant: exhaustive where the tree is that small.
      var r = Self.explore(c, variant: v, mode: .exhaustive(limit: 40))
      if r.truncated { r = Self.explore(c, variant: v, mode: .random(budget: 40, seed: 42)) }
      #expect(!r.runs.isEmpty)
      for bad in r.violating {
        Issue.record("\(c) \(v) schedule \(bad.scheduleString): \(bad.error ?? "") \(bad.violations)")
      }
    }
  }

  /// Replaying a schedule gives the same yield-point log and outcome.
  @Test(arguments: [FaultDesign.speculative, .perVMALock, .mmapLock])
  func replayedScheduleGivesTheSameOutcome(design: FaultDesign) {
    let c = Case(scenario: "fault-munmap", design: design, fput: .synchronous)
    let all = Self.explore(c, variant: "write", mode: .exhaustive(limit: 200))
    #expect(all.runs.count > 3)
    for run in [all.runs.first!, all.runs[all.runs.count / 2], all.runs.last!] {
      let again = Self.explore(c, variant: "write", mode: .replay(run.schedule))
      #expect(again.runs.count == 1)
      #expect(again.runs.first?.scheduleString == run.scheduleString)
      #expect(again.runs.first?.observation.key == run.observation.key)
      #expect(again.runs.first?.log == run.log)
    }
  }

  /// Under SPF munmap overtakes the fault in some interleavings; under mmap_lock and per-VMA
  /// locks a fault that holds its lock makes munmap wait (it shows as a blocked step).
  @Test func munmapOvertakesOnlyTheSpeculativeDesigns() {
    let spf = Self.explore(Case(scenario: "fault-munmap", design: .speculative, fput: .synchronous), variant: "write", mode: .exhaustive(limit: 200))
    #expect(spf.runs.contains { $0.observation.counters["spf_vma_changed"] != nil })
    let locked = Self.explore(Case(scenario: "fault-munmap", design: .mmapLock, fput: .synchronous), variant: "write", mode: .exhaustive(limit: 200))
    #expect(locked.blockedSteps > 0)
    #expect(locked.runs.allSatisfy { $0.observation.counters["spf_vma_changed"] == nil })
  }

  /// The checks can fail: a writer that skips its step is caught.
  @Test(arguments: Scenario.all.map(\.name))
  func aBrokenWriterIsReportedAsAViolation(scenario: String) {
    let c = Case(scenario: scenario, design: .speculative, fput: .synchronous)
    let r = Self.explore(c, variant: Scenario.named(scenario)!.variants[0], mode: .exhaustive(limit: 40), sabotage: true)
    #expect(!r.violating.isEmpty)
    let first = r.violating.first?.violations.first ?? ""
    #expect(["inv1", "inv2", "inv6", "truncate"].contains { first.hasPrefix($0) }, "\(first)")
  }
}
