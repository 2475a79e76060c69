import Faultline
import Testing

@testable import FaultlineReplay

/// Real programs' strace logs replay on the engine.
@Suite struct FixtureTests {
  @Test func pythonReplaysWithNoMismatch() throws {
    let r = try replay(try readFixture("python3-c-pass.strace"))
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    // Every call of a trace=memory log runs: 27 mmap, 6 mprotect, 3 munmap, 9 brk.
    #expect(r.executed == 45 && r.matched == 45 && r.skipped == 0)
    // 19 of the mmaps map ld.so's and the libraries' files, which the engine never saw: they
    // run as anonymous stand-ins; the 8 anonymous ones, the munmaps, mprotects and brks are real.
    #expect(r.standIns == 19)
    // The ELF's and ld.so's RELRO mprotects land on memory the kernel mapped before the log.
    #expect(r.inferred == 2)
    #expect(r.processes == 1 && r.mapsBases == [0x7fff_f7fc_2000])
  }

  @Test(arguments: FaultDesign.allCases)
  func pythonWithItsFileCallsReplaysUnderEveryDesign(_ design: FaultDesign) throws {
    let r = try replay(try readFixture("python3-c-pass-files.strace"), design: design)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    // The 24 opens that succeeded get stand-in files (StandInFile), so their 24 closes run too;
    // the 7 that failed (ENOENT for the glibc-hwcaps directories, ...) stand as recorded.
    #expect(r.executed == 69 && r.matched == 69)
    #expect(r.standInFiles == 24 && r.standIns == 19)
    #expect(r.skipped == 12 && r.skippedUnmodelled == 5)
    #expect(r.skippedByReason["openat: failed as recorded (a file of the traced machine)"] == 7)
  }

  @Test func aShellShimStartingThirtyNineProgramsReplaysWithNoMismatch() throws {
    let r = try replay(try readFixture("pyenv-shim-python3-c-pass.strace"))
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.processes == 39)
    #expect(r.executed == 1277 && r.matched == 1277 && r.skipped == 0)
  }

  /// Linux 6.7+ places a hint-less anonymous mapping whose length is a multiple of 2 MiB on a
  /// 2 MiB boundary (`__get_unmapped_area` → `thp_get_unmapped_area_vmflags`). The replay found
  /// the engine without it; now it places them as the host did.
  @Test func anonymousTHPAlignment() throws {
    let r = try replay(try readFixture("anon-thp-alignment.strace"))
    #expect(r.mismatches.isEmpty)
    #expect(r.executed == 18 && r.matched == 18)
  }

  /// glibc's per-thread arenas reserve 128 MiB hint-less (`MAP_NORESERVE`): the same gap, and
  /// every later placement of that process moves with it.
  @Test func threadedPythonWaitsOnTheSameAlignment() throws {
    let r = try replay(try readFixture("python3-threads.strace"))
    #expect(r.mismatches.isEmpty)
    #expect(r.executed == 164 && r.matched == 164 && r.processes == 1)
    #expect(r.skippedByReason["clone3: a thread of the same address space"] == 3)
  }

  /// Linux refuses a break above TASK_SIZE (`check_brk_limits` → `get_unmapped_area` with
  /// `MAP_FIXED`: ENOMEM, so brk returns the old break). Found by the fuzzer: the engine grew the
  /// heap past 2^47 and a load there never ended; both are fixed.
  @Test func brkAboveTaskSizeIsRefusedByLinux() throws {
    let r = try replay(
      """
      brk(NULL) = 0x555555559000
      brk(0x800000001000) = 0x555555559000
      load(0x800000000000, 1) = SIGSEGV
      maps() = 

      """)
    #expect(r.mismatches.isEmpty)
    #expect(r.executed == 4)
  }
}
