import Faultline
import Foundation
import Testing

@testable import FaultlineReplay

/// The executor: each call against the engine, mismatch reports, the options, and the rules for
/// memory and processes the engine does not model.
@Suite struct ExecutorTests {
  /// Linux's mmap_base with ASLR off: the first hint-less page lands right below it.
  static let top: UInt64 = 0x7fff_f7ff_f000

  @Test func aWrongRecordedErrnoIsExactlyOneMismatchOnItsLine() throws {
    let r = try replay(
      """
      mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffd000
      munmap(0x7ffff7ffd001, 4096) = -1 ENOMEM (Cannot allocate memory)
      munmap(0x7ffff7ffd000, 0) = -1 EINVAL (Invalid argument)
      """)
    #expect(r.executed == 3 && r.matched == 2)
    #expect(
      r.mismatches == [
        ReplayMismatch(
          line: 2, call: "munmap(0x7ffff7ffd001, 4096) = -1 ENOMEM (Cannot allocate memory)",
          expected: "-1 ENOMEM (Cannot allocate memory)", got: "-1 EINVAL (Invalid argument)")
      ])
    #expect(
      r.mismatches[0].description
        == "2: expected -1 ENOMEM (Cannot allocate memory), got -1 EINVAL (Invalid argument) in munmap(0x7ffff7ffd001, 4096) = -1 ENOMEM (Cannot allocate memory)"
    )
  }

  @Test func aWrongAddressOrSuccessIsAMismatch() throws {
    let r = try replay(
      """
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffe000
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ff0000
      mprotect(0x7ffff7ffe000, 4096, PROT_READ|PROT_WRITE) = -1 EACCES (Permission denied)
      """)
    #expect(r.mismatches.map(\.line) == [2, 3])
    #expect(r.mismatches[0].expected == "0x7ffff7ff0000" && r.mismatches[0].got == "0x7ffff7ffd000")
    #expect(r.mismatches[1].got == "0")
  }

  @Test func loadsAndStoresReportOkSegvAndBus() throws {
    let r = try replay(
      """
      mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffd000
      load(0x7ffff7ffd000, 8192) = ok
      store(0x7ffff7ffd000, 1) = SIGSEGV
      load(0x7ffff7fff000, 1) = SIGSEGV
      mprotect(0x7ffff7ffd000, 8192, PROT_READ|PROT_WRITE) = 0
      store(0x7ffff7ffdff0, 32) = ok
      open("/f", O_RDWR|O_CREAT, 0644) = 3
      ftruncate(3, 4096) = 0
      mmap(NULL, 8192, PROT_READ, MAP_SHARED, 3, 0) = 0x7ffff7ffb000
      load(0x7ffff7ffb000, 4096) = ok
      load(0x7ffff7ffc000, 1) = SIGBUS
      close(3) = 0
      close(3) = -1 EBADF (Bad file descriptor)
      ftruncate(3, 0) = -1 EBADF (Bad file descriptor)
      load(0x7ffff7ffc000, 1) = ok
      """)
    #expect(r.executed == 15)
    #expect(r.mismatches.map(\.line) == [15])
    #expect(r.mismatches.first?.expected == "ok" && r.mismatches.first?.got == "SIGBUS")
  }

  @Test func mapsComparesEveryLineTheEngineModels() throws {
    let script = """
      open("/data", O_RDWR|O_CREAT, 0600) = 3
      ftruncate(3, 8192) = 0
      mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7ffff7ffd000
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffc000
      brk(NULL) = 0x555555559000
      brk(0x55555557a000) = 0x55555557a000
      maps() = 
      555555559000-55555557a000 rw-p 00000000 00:00 0                          [heap]
      7ffff7ffc000-7ffff7ffd000 r--p 00000000 00:00 0 
      7ffff7ffd000-7ffff7fff000 rw-s 00000000 00:99 2                          /data
      7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]

      mprotect(0x7ffff7ffc000, 4096, PROT_NONE) = 0
      maps() = 
      555555559000-55555557a000 rw-p 00000000 00:00 0                          [heap]
      7ffff7ffc000-7ffff7ffd000 r--p 00000000 00:00 0 
      7ffff7ffd000-7ffff7fff000 rw-s 00000000 00:99 2                          /data

      """
    let r = try replay(script)
    #expect(r.executed == 9 && r.matched == 8)
    #expect(r.mismatches.map(\.line) == [14])
    #expect(r.mismatches.first?.expected == "maps line \"7ffff7ffc000-7ffff7ffd000 r--p 00000000 00:00 0\"")
    #expect(r.mismatches.first?.got == "\"7ffff7ffc000-7ffff7ffd000 ---p 00000000 00:00 0\"")
  }

  @Test func mapsBaseSetsWhereHintlessMappingsGo() throws {
    let script = """
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x1ffffffff000
      mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x1fffffffd000
      """
    let given = try replay(script, mapsBase: 0x2000_0000_0000)
    #expect(given.mismatches.isEmpty && given.matched == 2 && given.mapsBases == [0x2000_0000_0000])
    let wrong = try replay(script, mapsBase: 0x3000_0000_0000)
    #expect(wrong.mismatches.map(\.line) == [1, 2])
    #expect(wrong.mismatches[0].got == "0x2ffffffff000")
    // By default the base is the end of the first hint-less mapping; the second is then checked.
    let auto = try replay(script)
    #expect(auto.mismatches.isEmpty && auto.mapsBases == [0x2000_0000_0000])
    let autoWrong = try replay(script.replacingFirst("0x1fffffffd000", with: "0x1fffffff0000"))
    #expect(autoWrong.mismatches.map(\.line) == [2])
  }

  @Test(arguments: FaultDesign.allCases)
  func theDesignOptionSelectsTheFaultPath(_ design: FaultDesign) throws {
    let script = try ScriptParser.parse(
      """
      mmap(NULL, 65536, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fef000
      store(0x7ffff7fef000, 1) = ok
      store(0x7ffff7ff0000, 1) = ok
      store(0x7ffff7ff1000, 1) = ok
      """)
    var options = ReplayOptions(design: design)
    options.memoryBytes = 16 << 20
    options.profile = .reference
    let executor = try ReplayExecutor(options: options)
    let r = executor.run(script)
    #expect(r.mismatches.isEmpty && r.matched == 4)
    let vmstat = executor.machine.vmstat
    let lockless = vmstat[.speculativePgfault] + vmstat[.vmaLockSuccess]
    switch design {
    case .mmapLock: #expect(lockless == 0)
    case .perVMALock: #expect(vmstat[.vmaLockSuccess] > 0 && vmstat[.speculativePgfault] == 0)
    case .speculative, .sequenced: #expect(vmstat[.speculativePgfault] > 0 && vmstat[.vmaLockSuccess] == 0)
    }
  }

  @Test func unmodelledCallsAndForeignFdsAreSkippedAndCounted() throws {
    let r = try replay(
      """
      arch_prctl(ARCH_SET_FS, 0x7ffff7d8a740) = 0
      set_tid_address(0x7ffff7d8aa10) = 5707
      set_robust_list(0x7ffff7d8aa20, 24) = 0
      shmat(1, NULL, 0) = 0x7ffff7000000
      close(7) = 0
      ftruncate(7, 0) = 0
      mmap(NULL, 4096, PROT_READ, MAP_SHARED, 8, 0) = -1 EACCES (Permission denied)
      mmap(NULL, 4096, PROT_READ, MAP_SHARED, 8, 0) = -1 EBADF (Bad file descriptor)
      close(9) = -1 EBADF (Bad file descriptor)
      brk(NULL) = 0x555555559000
      """)
    #expect(r.skipped == 7 && r.skippedUnmodelled == 3)
    #expect(r.skippedByReason["arch_prctl: not modelled"] == 1)
    // shmat is modelled (issue 13, rule 9); a segment the log never created is skipped.
    #expect(r.skippedByReason["shmat: segment id the log never created"] == 1)
    #expect(r.skippedByReason["close: fd the script never opened"] == 1)
    #expect(r.executed == 3 && r.matched == 3)
  }

  @Test func filesTheScriptNeverOpenedAreStandInsThatKeepTheirPlace() throws {
    let r = try replay(
      """
      mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x7ffff7ffd000
      mmap(0x7ffff7ffe000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1000) = 0x7ffff7ffe000
      mprotect(0x7ffff7ffd000, 4096, PROT_NONE) = 0
      mmap(NULL, 6003000, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 4, 0) = 0x7ffff7a00000
      maps() = 
      7ffff7a00000-7ffff7fba000 r--p 00000000 fe:00 4242                       /usr/lib/libbig.so
      7ffff7ffd000-7ffff7ffe000 ---p 00000000 fe:00 4241                       /usr/lib/libfoo.so
      7ffff7ffe000-7ffff7fff000 r-xp 00001000 fe:00 4241                       /usr/lib/libfoo.so

      load(0x7ffff7ffe000, 1) = ok
      """)
    #expect(r.mismatches.isEmpty)
    #expect(r.standIns == 3 && r.matched == 6)
  }

  @Test func kernelMadeMemoryIsInferredOnlyWhereTheScriptNeverWas() throws {
    let r = try replay(
      """
      mprotect(0x555555557000, 4096, PROT_READ) = 0
      mprotect(0x600000000000, 4096, PROT_READ) = -1 ENOMEM (Cannot allocate memory)
      mmap(0x500000000000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x500000000000
      munmap(0x500000000000, 4096) = 0
      mprotect(0x500000000000, 4096, PROT_READ) = 0
      """)
    #expect(r.inferred == 1)
    #expect(r.mismatches.map(\.line) == [5])
    #expect(r.mismatches.first?.got == "-1 ENOMEM (Cannot allocate memory)")
  }

  @Test func eachProgramGetsItsOwnAddressSpaceAndThreadsShareOne() throws {
    let r = try replay(
      """
      [pid   10] brk(NULL) = 0x555555559000
      [pid   10] mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fc0000
      [pid   11] brk(NULL) = 0x555555560000
      [pid   11] mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fc0000
      [pid   12] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fbf000
      [pid   10] clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 13
      [pid   13] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fbf000
      [pid   10] clone3({flags=CLONE_VM|CLONE_THREAD, stack_size=0x7fff80} => {parent_tid=[14]}, 88) = 14
      [pid   14] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fbf000
      [pid   11] execve("/bin/true", ["/bin/true"], 0x7ffe /* 3 vars */) = 0
      [pid   11] brk(NULL) = 0x555555570000
      [pid   11] mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fc0000
      [pid   10] brk(NULL) = 0x555555580000
      [pid   10] brk(0x5555555a1000) = 0x5555555a1000
      """)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    // pid 10, pid 11, pid 13 (a fork of 10), pid 11 after execve, pid 10 after an untraced exec.
    #expect(r.processes == 5 && r.forks == 1)
    #expect(r.matched == 11)
  }

  @Test func aForkedChildRunsInACopyOfItsParent() throws {
    let r = try replay(
      """
      [pid   10] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffd000
      [pid   10] store(0x7ffff7ffd000, 8192) = ok
      [pid   10] fork() = 11
      [pid   11] load(0x7ffff7ffd000, 8192) = ok
      [pid   11] munmap(0x7ffff7ffd000, 4096) = 0
      [pid   11] load(0x7ffff7ffd000, 1) = SIGSEGV
      [pid   10] load(0x7ffff7ffd000, 1) = ok
      [pid   10] maps() = 
      7ffff7ffd000-7ffff7fff000 rw-p 00000000 00:00 0 

      [pid   11] maps() = 
      7ffff7ffe000-7ffff7fff000 rw-p 00000000 00:00 0 

      """)
    #expect(r.mismatches.isEmpty, "\(r.mismatches)")
    #expect(r.forks == 1 && r.processes == 2 && r.matched == 8)
  }

  @Test func mremapMlockAndMincoreRunOnTheEngine() throws {
    let r = try replay(
      """
      mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ffd000
      store(0x7ffff7ffd000, 1) = ok
      mincore(0x7ffff7ffd000, 8192, [1, 0]) = 0
      mlock(0x7ffff7ffd000, 8192) = 0
      mincore(0x7ffff7ffd000, 8192, [1, 1]) = 0
      munlock(0x7ffff7ffd000, 8192) = 0
      mlock2(0x7ffff7ffd000, 4096, MLOCK_ONFAULT) = 0
      mremap(0x7ffff7ffd000, 8192, 4096, 0) = 0x7ffff7ffd000
      mincore(0x7ffff7ffd000, 8192, 0x7ffc0000) = -1 ENOMEM (Cannot allocate memory)
      mremap(0x7ffff7ffd000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x600000000000) = 0x600000000000
      load(0x600000000000, 1) = ok
      load(0x7ffff7ffd000, 1) = SIGSEGV
      mremap(0x1000, 4096, 8192, 0) = -1 EFAULT (Bad address)
      mincore(0x600000000000, 8192, [0, 1]) = 0
      """)
    #expect(r.executed == 14 && r.skipped == 0)
    #expect(r.mismatches.map(\.line) == [14])
    #expect(r.mismatches.first?.expected == "page 0 not resident" && r.mismatches.first?.got == "1")
  }

  @Test func unfinishedCallsThatNeverResumeAreSkipped() throws {
    let r = try replay(
      """
      [pid 1] munmap(0x1000, 4096 <unfinished ...>
      [pid 1] +++ killed by SIGKILL +++
      """)
    #expect(r.executed == 0 && r.skippedByReason["munmap: unfinished in the log"] == 1)
  }

  @Test func accessesLongerThanTheLimitAreSkipped() throws {
    var options = ReplayOptions()
    options.memoryBytes = 16 << 20
    options.profile = .reference
    options.maxAccessBytes = 4096
    let r = try ReplayExecutor.replay("load(0x1000, 4097) = SIGSEGV\nload(0x1000, 4096) = SIGSEGV\n", options: options)
    #expect(r.executed == 1 && r.skipped == 1)
  }
}

extension String {
  func replacingFirst(_ target: String, with replacement: String) -> String {
    guard let r = range(of: target) else { return self }
    return replacingCharacters(in: r, with: replacement)
  }
}
