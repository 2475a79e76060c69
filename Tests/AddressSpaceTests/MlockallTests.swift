import Faultline
import FaultlineTestSupport
import Testing

// mlockall(2) and munlockall(2) (issue 13, rule 9): MCL_CURRENT locks every VMA as mlock does,
// MCL_FUTURE puts the lock bits in mm->def_flags for later mappings, MCL_ONFAULT locks without
// populating, munlockall clears both.
//
// Ground truth: mm/mlock.c (SYSCALL_DEFINE1(mlockall), apply_mlockall_flags, munlockall,
// mlock_future_ok) and do_mmap/do_brk_flags taking mm->def_flags. The rows were run on this
// machine's 6.18 kernel, unprivileged, by Tests/Probes/mseal_mlockall.c (output
// Tests/Probes/mseal_mlockall.txt, whose row names the comments quote).

fileprivate func withLimitRig(pages: UInt64, _ body: (Rig) throws -> Void) throws {
  var config = AddressSpaceConfig(profile: .reference)
  config.rlimitMemlock = pages * 4096
  config.capIPCLock = false
  try withRig(config: config, body)
}

@Suite struct MlockallTests {
  /// "mlockall 0", "8 (unknown)", "ONFAULT alone": EINVAL; "FUTURE at RLIMIT_MEMLOCK 0": EPERM.
  @Test func mlockallChecksItsFlagsThenTheLimit() throws {
    try withLimitRig(pages: 2048) { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlockall([]) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlockall(8) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlockall(.onFault) }
    }
    try withLimitRig(pages: 0) { r throws in
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mlockall(.future) }
    }
  }

  /// "mlockall CURRENT, total_vm over RLIMIT_MEMLOCK": ENOMEM, nothing locked, even for
  /// PROT_NONE memory that would never be populated.
  @Test func mlockallCurrentOverTheLimitIsENOMEM() throws {
    try withLimitRig(pages: 16) { r throws in
      let a = try r.cpu.mmap(0, 17 * page, prot: .none, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlockall(.current) }
      #expect(r.mm.lockedVM == 0)
      try r.cpu.munmap(a, page)
      try r.cpu.mlockall(.current)
      #expect(r.mm.lockedVM == 16)
    }
  }

  /// "mlockall CURRENT|ONFAULT" locks without populating; "mlockall CURRENT" populates
  /// (mincore all 1, VmLck, `lo`); "munlockall" clears it.
  @Test func mlockallCurrentLocksAndPopulatesEveryVMA() throws {
    try withLimitRig(pages: 2048) { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      let b = try r.cpu.mmap(0, 2 * page, prot: .read, flags: anonPrivate)
      try r.cpu.mlockall([.current, .onFault])
      #expect(r.vmFlagsLine(a) == "VmFlags: rd wr mr mw me lo lf ac ")
      #expect(try r.cpu.mincore(a, 4 * page) == [0, 0, 0, 0])
      try r.cpu.mlockall(.current)
      #expect(r.vmFlagsLine(a) == "VmFlags: rd wr mr mw me lo ac ")
      #expect(r.vmFlagsLine(b) == "VmFlags: rd mr mw me lo ")
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 1, 1, 1])
      #expect(try r.cpu.mincore(b, 2 * page) == [1, 1])
      #expect(r.mm.lockedVM == 6)
      #expect(r.mm.smaps().contains("Locked:               16 kB"))
      r.cpu.munlockall()
      #expect(r.vmFlagsLine(a) == "VmFlags: rd wr mr mw me ac ")
      #expect(r.mm.lockedVM == 0)
      // MCL_CURRENT alone leaves later mappings unlocked.
      let c = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      #expect(r.vmFlagsLine(c) == "VmFlags: rd wr mr mw me ac ")
    }
  }

  /// "mlockall FUTURE": a later mmap is locked and populated; "FUTURE|ONFAULT": locked, not
  /// populated; "VmFlags of an mmap after munlockall": neither.
  @Test func mlockallFutureLocksLaterMappings() throws {
    try withLimitRig(pages: 2048) { r throws in
      let before = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.mlockall(.future)
      #expect(r.mm.lockedVM == 0)
      let f = try r.cpu.mmap(0x1000_0000, 4 * page, prot: rw, flags: anonPrivate)
      #expect(r.vmFlagsLine(f) == "VmFlags: rd wr mr mw me lo ac ")
      #expect(try r.cpu.mincore(f, 4 * page) == [1, 1, 1, 1])
      #expect(r.vmFlagsLine(before) == "VmFlags: rd wr mr mw me ac ")
      try r.cpu.mlockall([.future, .onFault])
      let g = try r.cpu.mmap(0x2000_0000, 4 * page, prot: rw, flags: anonPrivate)
      #expect(r.vmFlagsLine(g) == "VmFlags: rd wr mr mw me lo lf ac ")
      #expect(try r.cpu.mincore(g, 4 * page) == [0, 0, 0, 0])
      r.cpu.munlockall()
      #expect(r.vmFlagsLine(f) == "VmFlags: rd wr mr mw me ac ")
      let h = try r.cpu.mmap(0x3000_0000, 4 * page, prot: rw, flags: anonPrivate)
      #expect(r.vmFlagsLine(h) == "VmFlags: rd wr mr mw me ac ")
    }
  }

  /// MCL_FUTURE and the limit: a later mmap over RLIMIT_MEMLOCK is EAGAIN (mlock_future_ok),
  /// heap growth is locked and populated, and a fork child does not inherit def_flags.
  @Test func mlockallFutureChargesLaterMappingsAndTheHeap() throws {
    try withLimitRig(pages: 8) { r throws in
      try r.cpu.mlockall(.future)
      expectErrno(.resourceTemporarilyUnavailable) { () throws(Errno) in
        try r.cpu.mmap(0, 9 * page, prot: rw, flags: anonPrivate)
      }
      let base = r.cpu.brk(0)
      #expect(r.cpu.brk(base + 2 * page) == base + 2 * page)
      #expect(try r.cpu.mincore(base, 2 * page) == [1, 1])
      #expect(r.mm.lockedVM == 2)
      #expect(r.cpu.brk(base + 9 * page) == base + 2 * page)
      let child = try r.cpu.fork()
      defer { child.destroy() }
      let cpu = try CPU(mm: child)
      let c = try cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      #expect(child.tree.findW(c)?.flags.contains(.locked) == false)
    }
  }
}
