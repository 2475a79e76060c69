import Faultline
import FaultlineTestSupport
import Testing

// MAP_DROPPABLE (issue 13, rule 9; Linux 6.11). Ground truth: mm/mmap.c do_mmap's
// MAP_DROPPABLE case, mm/mlock.c mlock_fixup, mm/madvise.c (MADV_KEEPONFORK, MADV_DODUMP), run on
// this machine's 6.18 kernel by Tests/Probes/map_droppable.c (output map_droppable.txt; comments
// quote its lines). That the kernel may drop the pages under memory pressure is not modelled
// (Faultline has no reclaim).

@Suite struct DroppableTests {
  private let droppable = MapFlags.droppable | MapFlags.anonymous

  /// "VmFlags: rd wr mr mw me nr wf dd dp": not accounted (nr, no ac), wiped on fork, not dumped;
  /// the maps line is an ordinary private anonymous one.
  @Test func droppableMappingShowsItsFlagsInSmaps() throws {
    try withRig { r throws in
      let d = try r.cpu.mmap(0, 2 * page, prot: rw, flags: droppable)
      try r.cpu.storeByte(d, 7)
      #expect(r.vmFlagsLine(d) == "VmFlags: rd wr mr mw me nr wf dd dp ")
      #expect(r.mm.mapsLines().contains(anonLine(d, d + 2 * page, "rw-p")))
      #expect(try r.cpu.loadByte(d) == 7)
    }
  }

  /// "MAP_DROPPABLE,fd = EINVAL" (a file), "MAP_DROPPABLE,-1 = EBADF" (no MAP_ANONYMOUS),
  /// "|MAP_GROWSDOWN = EINVAL", "|MAP_LOCKED = EINVAL", "hugetlb ... Invalid argument",
  /// "MAP_DROPPABLE|MAP_SHARED = EINVAL", types 0x0c and 0x0a EINVAL; POPULATE, NORESERVE and
  /// STACK are accepted.
  @Test func droppableErrnosAsTheHostGaveThem() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withFileRig(.tmpfs, config: config) { r, env throws in
      let fd = try env.create("data", pages: 2)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, 2 * page, prot: rw, flags: .droppable, fd: fd) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try r.cpu.mmap(0, 2 * page, prot: rw, flags: .droppable) }
      for extra in [MapFlags.growsDown, .locked, .hugeTLB, .shared] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, 2 * page, prot: rw, flags: droppable | extra) }
      }
      for type: Int32 in [0x0c, 0x0a] {
        expectErrno(.invalidArgument) { () throws(Errno) in
          try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags(rawValue: type) | .anonymous)
        }
      }
      _ = try r.cpu.mmap(0, 2 * page, prot: rw, flags: droppable | .populate | .noReserve | .stack)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  /// "mlock(d,2*ps) = 0" populates but leaves the VMA unlocked ("Locked: 0 kB", no lo);
  /// mlockall(MCL_CURRENT|MCL_FUTURE) likewise, and a droppable mmap after it is populated but
  /// not locked, nor merged with the droppable VMA above it (the host's smaps shows f2
  /// `7ffff7fb6000-7ffff7fb8000` and a `7ffff7fb8000-7ffff7fc0000` apart).
  @Test func mlockPopulatesButNeverLocksDroppableMemory() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withRig(config: config) { r throws in
      let d = try r.cpu.mmap(0, 2 * page, prot: rw, flags: droppable)
      try r.cpu.mlock(d, 2 * page)
      #expect(r.vmFlagsLine(d) == "VmFlags: rd wr mr mw me nr wf dd dp ")
      #expect(try r.cpu.mincore(d, 2 * page) == [1, 1])
      try r.cpu.mlock(d, 2 * page, flags: .onFault)
      try r.cpu.mlockall([.current, .future])
      let f = try r.cpu.mmap(0, 2 * page, prot: rw, flags: droppable)
      #expect(f == d - 2 * page)
      #expect(mapsLines(r, in: f, d + 2 * page) == [anonLine(f, d, "rw-p"), anonLine(d, d + 2 * page, "rw-p")])
      #expect(r.vmFlagsLine(f) == "VmFlags: rd wr mr mw me nr wf dd dp ")
      #expect(try r.cpu.mincore(f, 2 * page) == [1, 1])
      #expect(r.mm.lockedVM == 0)
      r.cpu.munlockall()
    }
  }

  /// Found by `faultline conform` (issue 13, rule 9), confirmed on the host: after
  /// mlockall(MCL_FUTURE|MCL_ONFAULT), `mmap(0x100000020000, 45056, …, MAP_DROPPABLE|MAP_FIXED)`
  /// then `mmap(0x10000002a000, 69632, …)` give two maps lines
  /// (`100000020000-10000002a000` and `10000002a000-10000003b000`): `__mmap_complete` drops
  /// VM_LOCKED after the merge attempt, which saw it. Without mlockall they merge. Unprivileged,
  /// so nothing is charged to RLIMIT_MEMLOCK either ("VmLck" counted only the heap).
  @Test func droppableMappingsUnderMlockallFutureDoNotMerge() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 0x1b000, prot: rw, flags: droppable)
      try r.cpu.munmap(a, 0x1b000)
      try r.cpu.mlockall([.future, .onFault])
      _ = try r.cpu.mmap(a, 0xb000, prot: rw, flags: droppable | .fixed)
      _ = try r.cpu.mmap(a + 0xb000, 0x10000, prot: rw, flags: droppable | .fixed)
      #expect(mapsLines(r, in: a, a + 0x1b000) == [anonLine(a, a + 0xb000, "rw-p"), anonLine(a + 0xb000, a + 0x1b000, "rw-p")])
      #expect(r.mm.lockedVM == 0)
      r.cpu.munlockall()
      _ = try r.cpu.mmap(a + 0x1b000, page, prot: rw, flags: droppable | .fixed)
      #expect(mapsLines(r, in: a, a + 0x1c000) == [anonLine(a, a + 0xb000, "rw-p"), anonLine(a + 0xb000, a + 0x1c000, "rw-p")])
    }
  }

  /// "MADV_KEEPONFORK = EINVAL", "MADV_DODUMP = EINVAL", WIPEONFORK and DONTFORK 0 ("dc" then
  /// shows), MADV_REMOVE EINVAL; "child d[ps]=0": a fork child sees zeros.
  @Test func madviseAndForkOnDroppableMemory() throws {
    try withRig { r throws in
      let d = try r.cpu.mmap(0, 2 * page, prot: rw, flags: droppable)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(d, page, advice: .keepOnFork) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(d, page, advice: .doDump) }
      try r.cpu.madvise(d, page, advice: .wipeOnFork)
      try r.cpu.madvise(d, page, advice: .dontFork)
      #expect(r.vmFlagsLine(d) == "VmFlags: rd wr mr mw me dc nr wf dd dp ")
      try r.cpu.madvise(d, page, advice: .doFork)
      try r.cpu.madvise(d, page, advice: .free)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(d, page, advice: .remove) }
      try r.cpu.storeByte(d + page, 9)
      let child = try r.cpu.fork()
      defer { child.destroy() }
      let c = try CPU(mm: child)
      #expect(try c.loadByte(d + page) == 0)
      #expect(try r.cpu.loadByte(d + page) == 9)
    }
  }

  /// Two droppable mappings side by side merge; a private one next to them does not.
  @Test func droppableMappingsMergeOnlyWithDroppableOnes() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: droppable)
      try r.cpu.munmap(a, 8 * page)
      _ = try r.cpu.mmap(a, 4 * page, prot: rw, flags: droppable | .fixed)
      _ = try r.cpu.mmap(a + 4 * page, 2 * page, prot: rw, flags: droppable | .fixed)
      _ = try r.cpu.mmap(a + 6 * page, 2 * page, prot: rw, flags: anonPrivate | .fixed)
      #expect(mapsLines(r, in: a, a + 8 * page) == [anonLine(a, a + 6 * page, "rw-p"), anonLine(a + 6 * page, a + 8 * page, "rw-p")])
    }
  }

  /// Found by `faultline conform` (issue 13), confirmed on the host (no swap): MADV_PAGEOUT
  /// discards a droppable mapping's written pages ("0 1 0 d0=0 d2=0": the zero page read in
  /// the middle stays mapped), while a private page stays ("1 q=5").
  @Test func pageoutDiscardsDroppablePagesEvenDirty() throws {
    try withRig { r throws in
      let d = try r.cpu.mmap(0, 3 * page, prot: rw, flags: droppable)
      try r.cpu.storeByte(d, 7)
      _ = try r.cpu.loadByte(d + page)
      try r.cpu.storeByte(d + 2 * page, 9)
      let q = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(q, 5)
      try r.cpu.madvise(d, 3 * page, advice: .pageOut)
      #expect(try r.cpu.mincore(d, 3 * page) == [0, 1, 0])
      #expect(try r.cpu.loadByte(d) == 0 && r.cpu.loadByte(d + 2 * page) == 0)
      try r.cpu.madvise(q, page, advice: .pageOut)
      #expect(try r.cpu.mincore(q, page) == [1])
      #expect(try r.cpu.loadByte(q) == 5)
    }
  }
}
