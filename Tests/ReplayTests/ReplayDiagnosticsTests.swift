import Faultline
import Testing

@testable import FaultlineReplay

/// What the replay says about a log beyond its mismatches: a recording that lost the process
/// calls, and the form of mismatch messages.
@Suite struct ReplayDiagnosticsTests {
  static let note = "2 pids but no process calls: children's calls were replayed in one address space;"
    + " record with -e trace=memory,process"

  @Test func severalPidsWithoutProcessCallsAreNamedInTheSummary() throws {
    let r = try replay(
      """
      100   brk(NULL) = 0x555555559000
      100   mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffd000
      101   munmap(0x7ffff7ffd000, 4096) = 0
      """)
    #expect(r.pids == 2 && r.processCalls == 0)
    #expect(r.summary.hasSuffix("; " + Self.note), "\(r.summary)")
  }

  @Test func aTracedCloneOrOnePidLeavesTheSummaryAlone() throws {
    let traced = try replay(
      """
      100   brk(NULL) = 0x555555559000
      100   mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffd000
      100   clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD) = 101
      101   munmap(0x7ffff7ffd000, 4096) = 0
      """)
    #expect(traced.mismatches == [] && traced.pids == 2 && traced.processCalls == 1)
    #expect(!traced.summary.contains("process calls"), "\(traced.summary)")
    let single = try replay(
      """
      mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffd000
      munmap(0x7ffff7ffd000, 4096) = 0
      """)
    #expect(single.pids == 0 && !single.summary.contains("process calls"))
  }
}

/// Memory the kernel made before the log starts, inferred on first use.
@Suite struct InferredStackTests {
  /// glibc's `_dl_make_stack_executable` on the stack the kernel made: Linux accepts
  /// `PROT_GROWSDOWN` there because the stack is `VM_GROWSDOWN`, and so does the replay.
  @Test func mprotectGrowsDownOnTheInferredStackSucceeds() throws {
    for design in FaultDesign.allCases {
      let r = try replay(
        """
        mprotect(0x7ffffffde000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC|PROT_GROWSDOWN) = 0
        mprotect(0x7ffffffdd000, 4096, PROT_READ|PROT_WRITE|PROT_GROWSDOWN) = -1 ENOMEM (Cannot allocate memory)
        """, design: design)
      #expect(r.inferred == 1 && r.matched == 2, "\(design): \(r.mismatches)")
    }
  }

  @Test func otherInferredMemoryIsNotGrowsDown() throws {
    let r = try replay(
      """
      mprotect(0x555555557000, 4096, PROT_READ) = 0
      mprotect(0x555555557000, 4096, PROT_READ|PROT_GROWSDOWN) = -1 EINVAL (Invalid argument)
      """)
    #expect(r.inferred == 1 && r.matched == 2, "\(r.mismatches)")
  }
}

/// Mismatch messages print addresses in hex.
@Suite struct MismatchMessageTests {
  @Test func aLowAddressResultPrintsInHex() throws {
    var profile = MachineProfile.reference
    profile.mmapMinAddr = 0x1000
    let r = try replay(
      """
      mmap(0x2000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x3000
      mprotect(0x2000, 4096, PROT_NONE) = 1
      """, profile: profile)
    #expect(
      r.mismatches.map(\.description) == [
        "1: expected 0x3000, got 0x2000 in mmap(0x2000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x3000",
        "2: expected 1, got 0 in mprotect(0x2000, 4096, PROT_NONE) = 1",
      ])
  }
}
