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

/// System V shared memory, `MAP_DROPPABLE` and guard regions (issue 13, rule 9) from a real log
/// (`Fixtures/sysv-shm-guard-droppable.c.txt`, recorded with strace 6.1, which prints
/// `MAP_DROPPABLE` and `MADV_GUARD_*` as `0x8 /* MAP_??? */` and `0x66 /* MADV_??? */`).
@Suite struct SysVShmFixtureTests {
  @Test(arguments: FaultDesign.allCases)
  func shmGuardAndDroppableLogReplaysUnderEveryDesign(_ design: FaultDesign) throws {
    let r = try replay(try readFixture("sysv-shm-guard-droppable.strace"), design: design)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    // 6 shmget/shmat/shmdt and 6 shmctl calls, 2 of them in the fork child, all run.
    #expect(r.skippedByReason.keys.allSatisfy { !$0.hasPrefix("shm") }, "\(r.skippedByReason)")
    #expect(r.executed == 37 && r.matched == 37)
    #expect(r.processes == 2)
  }

  /// strace 6.x's forms of the four calls decode; recorded ids are kept for the executor's map.
  @Test func straceShmLinesDecode() throws {
    let s = try ScriptParser.parse(
      """
      shmget(IPC_PRIVATE, 56, IPC_CREAT|IPC_EXCL|0600) = 32769
      shmat(32769, NULL, SHM_RDONLY|SHM_RND) = 0x7ffff7fbf000
      shmctl(32769, IPC_STAT, {shm_perm={uid=0, gid=0, mode=0600, key=23063, cuid=0, cgid=0}, shm_segsz=56, shm_cpid=1, shm_lpid=1, shm_nattch=2, shm_atime=1, shm_dtime=0, shm_ctime=1}) = 0
      shmctl(32769, IPC_RMID, NULL) = 0
      shmdt(0x7ffff7fbf000) = 0
      shmget(0x5a17, 56, 0600) = -1 ENOENT (No such file or directory)
      """)
    let ops = try s.entries.map { (e) throws -> Operation? in try Operation.decode(e.call) }
    #expect(
      ops == [
        .shmget(key: 0, size: 56, flags: 0o3600), .shmat(id: 32769, addr: 0, flags: 0o30000),
        .shmctl(id: 32769, cmd: 2, segsz: 56, nattch: 2), .shmctl(id: 32769, cmd: 0, segsz: nil, nattch: nil),
        .shmdt(addr: 0x7fff_f7fb_f000), .shmget(key: 0x5a17, size: 56, flags: 0o600),
      ])
  }

  /// A script whose ids are not the engine's: the recorded id maps to the engine's, an id from
  /// outside the log is skipped, and a removed one is EINVAL on both sides.
  @Test func recordedShmIdsMapToTheEngines() throws {
    let r = try replay(
      """
      shmget(IPC_PRIVATE, 8192, IPC_CREAT|0600) = 98305
      shmat(98305, NULL, 0) = 0x7ffff7ffd000
      shmat(4242, NULL, 0) = 0x7ffff7ff0000
      shmctl(98305, IPC_RMID, NULL) = 0
      shmdt(0x7ffff7ffd000) = 0
      shmctl(98305, IPC_STAT, 0x7ffc0000) = -1 EINVAL (Invalid argument)
      """)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.executed == 5 && r.matched == 5)
    #expect(r.skippedByReason["shmat: segment id the log never created"] == 1)
  }
}
