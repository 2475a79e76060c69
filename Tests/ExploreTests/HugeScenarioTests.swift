import Faultline
import Testing

@testable import FaultlineExplore

/// The transparent-huge-page scenarios explore what they claim to (issue 18, acceptance 3):
/// huge pages are faulted and split in them under every design, the speculative designs fall
/// back as SPF v12 and Lespinasse's series did, and fork shares a huge PMD with the child.
/// (`ScenarioTests` runs them for violations with the other scenarios.)
@Suite struct HugeScenarioTests {
  static func explore(_ name: String, _ design: FaultDesign, _ variant: String) -> Explorer.Result {
    Explorer(
      scenario: Scenario.named(name)!, config: ScenarioConfig(design: design, variant: variant),
      mode: .exhaustive(limit: 400)
    ).explore()
  }

  /// A write fault that comes first maps a huge page, and munmap of half the range splits it,
  /// leaving the other half resident (Linux: `thp_fault_alloc`, `thp_split_pmd`, 256 pages).
  @Test(arguments: FaultDesign.allCases)
  func aHugeFaultThenAPartialMunmapSplitsIt(design: FaultDesign) {
    let r = Self.explore("huge-fault-munmap", design, "write")
    #expect(!r.truncated && r.violating.isEmpty)
    let split = r.runs.filter {
      $0.observation.counters["thp_fault_alloc"] == 1 && $0.observation.counters["thp_split_pmd"] == 1
    }
    #expect(!split.isEmpty)
    #expect(split.allSatisfy { $0.observation.effects["resident"] == "256" })
    // A fault that comes after munmap maps one 4 KiB page: the range is no longer eligible.
    #expect(r.runs.contains { $0.observation.counters["thp_fault_alloc"] == nil && $0.observation.effects["resident"] == "1" })
  }

  /// The speculative designs never fault a huge page themselves: the empty PMD of a THP-eligible
  /// range aborts (`spf_thp_eligible`), and so does a huge PMD (`spf_pmd_huge`); per-VMA locks
  /// fault huge pages under the VMA lock.
  @Test func onlyTheLockedDesignsFaultHugePages() {
    for design in [FaultDesign.speculative, .sequenced] {
      let write = Self.explore("huge-fault-mprotect", design, "write")
      #expect(write.runs.contains { $0.observation.counters["spf_thp_eligible"] != nil })
      let zero = Self.explore("huge-fault-mprotect", design, "zero-write")
      #expect(zero.runs.contains { $0.observation.counters["spf_pmd_huge"] != nil })
    }
    let vmaLock = Self.explore("huge-fault-fork", .perVMALock, "write")
    #expect(vmaLock.runs.contains {
      $0.observation.counters["vma_lock_success"] == 1 && $0.observation.counters["thp_fault_alloc"] == 1
    })
  }

  /// Fork after the fault shares the huge page with the child (both read-only); fork before it
  /// leaves the child's range empty; a read fault's huge zero page is shared the same way.
  @Test(arguments: FaultDesign.allCases)
  func forkSharesAHugePMDWithTheChild(design: FaultDesign) {
    let write = Self.explore("huge-fault-fork", design, "write")
    #expect(write.violating.isEmpty)
    #expect(write.runs.contains {
      $0.observation.effects["child_pmd"] == "huge" && $0.observation.effects["child_sees"] == "0xbb"
        && $0.observation.pte == "ro"
    })
    #expect(write.runs.contains { $0.observation.effects["child_pmd"] == "none" && $0.observation.effects["child_sees"] == "0x0" })
    let read = Self.explore("huge-fault-fork", design, "read")
    #expect(read.runs.contains { $0.observation.effects["child_pmd"] == "huge-zero" })
  }

  /// `MADV_DONTNEED` of one page of a huge page splits it and drops that page alone (511
  /// resident); before the fault it changes nothing and the fault maps a huge page (512).
  @Test func dontneedOfOnePageSplitsTheHugePage() {
    let r = Self.explore("huge-fault-dontneed", .mmapLock, "write")
    #expect(r.violating.isEmpty)
    #expect(r.runs.contains { $0.observation.effects["resident"] == "511" && $0.observation.effects["pmd"] == "table" })
    #expect(r.runs.contains { $0.observation.effects["resident"] == "512" && $0.observation.effects["pmd"] == "huge" })
  }
}
