import Faultline
import FaultlineTestSupport
import Testing

// mlock(2), mlock2(2) and munlock(2): the lock bits as VMA flags with Linux's splits and merges,
// locked_vm accounting against RLIMIT_MEMLOCK, and populating.
//
// Ground truth: mm/mlock.c: do_mlock (the RLIMIT_MEMLOCK check, skipped with CAP_IPC_LOCK, before
// the range), can_do_mlock (EPERM at limit 0), apply_vma_lock_flags (EINVAL when the end wraps,
// ENOMEM at a hole), mlock_fixup (the splits and merges, locked_vm), sys_mlock2 (unknown flags)
// and __mm_populate (mm/gup.c); VmLck is fs/proc/task_mmu.c's locked_vm. "Probe 3c" labels are
// the case numbers of a run of the same calls on a 6.18 host, as root and without capabilities
// (its program is not kept).
//
// Where reference/errno.md has no row the kernel decides; two results worth noting:
// - a length that wraps is EINVAL only with CAP_IPC_LOCK; without it the limit check comes
//   first and the answer is ENOMEM (probe 3c vs 9f);
// - `mlock(addr, ULONG_MAX)` is 0: PAGE_ALIGN(len + offset) wraps to 0 (probe 3d, 3e).

/// A rig with CAP_IPC_LOCK, as the root probe ran.
fileprivate func withCapRig(_ body: (Rig) throws -> Void) throws {
  var config = AddressSpaceConfig(profile: .reference)
  config.capIPCLock = true
  try withRig(config: config, body)
}

/// A rig without CAP_IPC_LOCK and an RLIMIT_MEMLOCK of `pages` pages.
fileprivate func withLimitRig(pages: UInt64, _ body: (Rig) throws -> Void) throws {
  var config = AddressSpaceConfig(profile: .reference)
  config.rlimitMemlock = pages * 4096
  config.capIPCLock = false
  try withRig(config: config, body)
}

extension Rig {
  /// Whether the VMA at `addr` has `VM_LOCKED` (and `VM_LOCKONFAULT` when `onFault`).
  fileprivate func lockBits(_ addr: UInt64) -> VMFlags? {
    mm.tree.findW(addr).map { $0.flags.intersection([.locked, .lockOnFault]) }
  }
}

@Suite struct MlockTests {
  // MARK: Address and length

  /// Probe 1a, 1b, 1c: the range is widened to whole pages, splitting the VMA exactly there.
  @Test func mlockWidensAnUnalignedRangeToWholePages() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a + page + 1, page)
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 3 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p"),
        ])
      #expect(r.mm.lockedVM == 2)
      #expect(r.lockBits(a + page) == .locked)
      #expect(r.lockBits(a) == [])
      try r.cpu.munlock(a, 4 * page)

      try r.cpu.mlock(a + page - 1, 2)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 4 * page, "rw-p")])
      #expect(r.mm.lockedVM == 2)
      try r.cpu.munmap(a, 4 * page)

      let b = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(b + page, 1)
      #expect(
        r.mm.mapsLines() == [
          anonLine(b, b + page, "rw-p"), anonLine(b + page, b + 2 * page, "rw-p"), anonLine(b + 2 * page, b + 4 * page, "rw-p"),
        ])
      #expect(r.mm.lockedVM == 1)
      // mlock populates what it locks, and only that.
      #expect(try r.cpu.mincore(b, 4 * page) == [0, 1, 0, 0])
    }
  }

  /// Probe 3a, 3b, 3d, 3e, 3h: len 0 is 0 anywhere, and so is a length that PAGE_ALIGN wraps
  /// to 0.
  @Test func mlockZeroLengthSucceedsEvenWhenTheLengthWrapsToZero() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a, 0)
      try r.cpu.mlock(0x1000_0000, 0)
      try r.cpu.mlock(a, .max)
      try r.cpu.mlock(a + 1, .max)
      try r.cpu.munlock(a, 0)
      try r.cpu.munlock(0x1000_0000, 0)
      #expect(r.mm.lockedVM == 0)
      #expect(r.mm.mapCount == 1)
    }
  }

  /// Probe 3c, 3f, 3g: with CAP_IPC_LOCK a wrapping range is EINVAL (apply_vma_lock_flags);
  /// munlock, which has no limit check, is EINVAL too.
  @Test func mlockWrappingLengthIsEINVALWithCapIPCLock() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlock(a, UInt64(bitPattern: -4096)) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlock(a, UInt64(bitPattern: -8192)) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.munlock(a, UInt64(bitPattern: -4096)) }
      #expect(r.mm.lockedVM == 0)
      #expect(r.mm.mapCount == 1)
    }
  }

  /// Probe 9f (unprivileged, limit 3 pages): the same wrapping length is ENOMEM, since the
  /// RLIMIT_MEMLOCK check runs before the range check. errno.md has no row for this; the kernel
  /// wins.
  @Test func mlockWrappingLengthIsENOMEMWithoutCapIPCLock() throws {
    try withLimitRig(pages: 3) { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a, UInt64(bitPattern: -4096)) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.munlock(a, UInt64(bitPattern: -4096)) }
      #expect(r.mm.lockedVM == 0)
    }
  }

  // MARK: mlock2 flags

  /// Probe 2a, 2d: MLOCK_ONFAULT sets VM_LOCKED|VM_LOCKONFAULT (a split, counted in locked_vm)
  /// and populates nothing; a later plain mlock clears VM_LOCKONFAULT and populates.
  @Test func mlock2OnFaultLocksWithoutPopulating() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a, 2 * page, flags: MlockFlags.onFault)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 4 * page, "rw-p")])
      #expect(r.lockBits(a) == [.locked, .lockOnFault])
      #expect(r.lockBits(a + 2 * page) == [])
      #expect(r.mm.lockedVM == 2)
      #expect(try r.cpu.mincore(a, 4 * page) == [0, 0, 0, 0])
      try r.cpu.mlock(a, 2 * page)
      #expect(r.lockBits(a) == .locked)
      #expect(r.mm.lockedVM == 2)
      #expect(r.mm.mapCount == 2)
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 1, 0, 0])
    }
  }

  /// Probe 2b, 2c, 3j, 9f2, 9m: unknown mlock2 flags are EINVAL before anything else (len 0,
  /// over the limit, a zero limit).
  @Test func mlock2UnknownFlagsAreEINVAL() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      for flags in [MlockFlags(rawValue: 2), 3, -1, MlockFlags(rawValue: Int32.min)] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlock(a, 2 * page, flags: flags) }
      }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlock(a, 0, flags: 2) }
      #expect(r.mm.lockedVM == 0)
      #expect(r.lockBits(a) == [])
    }
    try withLimitRig(pages: 1) { r throws in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlock(a, 8 * page, flags: 2) }
    }
    try withLimitRig(pages: 0) { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mlock(a, page, flags: 2) }
    }
  }

  // MARK: Holes

  /// Probe 4a: a hole is ENOMEM after the VMAs before it were locked; nothing is populated
  /// (the error comes before __mm_populate).
  @Test func mlockOverAHoleIsENOMEMAfterLockingTheVMAsBeforeIt() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + 2 * page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a + page, 3 * page) }
      #expect(r.mm.lockedVM == 1)
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 2 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p"),
        ])
      #expect(r.lockBits(a) == [])
      #expect(r.lockBits(a + page) == .locked)
      #expect(r.lockBits(a + 3 * page) == [])
      #expect(try r.cpu.mincore(a, 2 * page) == [0, 0])

      // Probe 4b: munlock over the hole unlocks what precedes it (merging it back), then ENOMEM.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.munlock(a, 4 * page) }
      #expect(r.mm.lockedVM == 0)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p")])

      // Probe 4c, 3i: a range that starts in a hole changes nothing.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a - page, 2 * page) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.munlock(0x1000_0000, page) }
      #expect(r.mm.lockedVM == 0)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p")])
    }
  }

  /// Probe 9h, 9i (unprivileged, limit 3 pages): over the limit the hole is never reached;
  /// within it the VMA before the hole is locked whole.
  @Test func mlockOverAHoleUnderTheLimitLocksTheFirstVMA() throws {
    try withLimitRig(pages: 3) { r throws in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + 2 * page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a, 8 * page) }
      #expect(r.mm.lockedVM == 0)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a, 3 * page) }
      #expect(r.mm.lockedVM == 2)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 3 * page, a + 8 * page, "rw-p")])
      #expect(r.lockBits(a) == .locked)
    }
  }

  // MARK: PROT_NONE

  /// Probe 5a: a PROT_NONE VMA in the range is locked like the others (VmLck grows by all three
  /// pages), populating stops at it, and the answer is ENOMEM (EFAULT from populate, turned
  /// into ENOMEM).
  @Test func mlockOverAProtNoneVMAIsENOMEMButLocksIt() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mprotect(a + page, page, prot: Prot.none)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a, 3 * page) }
      #expect(r.mm.lockedVM == 3)
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 2 * page, "---p"),
          anonLine(a + 2 * page, a + 3 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p"),
        ])
      #expect(r.lockBits(a) == .locked)
      #expect(r.lockBits(a + page) == .locked)
      #expect(r.lockBits(a + 2 * page) == .locked)
      #expect(r.lockBits(a + 3 * page) == [])
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 0, 0, 0])
    }
  }

  /// Probe 5b, 5c: a PROT_NONE mapping alone: mlock is ENOMEM with the flag set; mlock2
  /// MLOCK_ONFAULT populates nothing, so it succeeds.
  @Test func mlockOfProtNoneIsENOMEMButOnFaultSucceeds() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: Prot.none, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a, 2 * page) }
      #expect(r.mm.lockedVM == 2)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "---p"), anonLine(a + 2 * page, a + 4 * page, "---p")])
      #expect(r.lockBits(a) == .locked)
      try r.cpu.mlock(a + 2 * page, page, flags: MlockFlags.onFault)
      #expect(r.mm.lockedVM == 3)
      #expect(r.lockBits(a + 2 * page) == [.locked, .lockOnFault])
    }
  }

  // MARK: RLIMIT_MEMLOCK

  /// Probe 9a-9e (unprivileged, limit 3 pages): over the limit is ENOMEM with nothing locked;
  /// pages already locked in the range are not counted twice.
  @Test func mlockOverTheLimitIsENOMEMAndLockedPagesAreNotCountedTwice() throws {
    try withLimitRig(pages: 3) { r throws in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a, 4 * page) }
      #expect(r.mm.lockedVM == 0)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 8 * page, "rw-p")])
      try r.cpu.mlock(a, 2 * page)
      #expect(r.mm.lockedVM == 2)
      try r.cpu.mlock(a, 3 * page)
      #expect(r.mm.lockedVM == 3)
      try r.cpu.mlock(a, 3 * page)
      #expect(r.mm.lockedVM == 3)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mlock(a + 3 * page, page) }
      #expect(r.mm.lockedVM == 3)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 3 * page, "rw-p"), anonLine(a + 3 * page, a + 8 * page, "rw-p")])
      // len 0 is still fine at the limit (probe 9g, 9g2).
      try r.cpu.mlock(a, 0)
      try r.cpu.mlock(a, .max)
    }
  }

  /// With CAP_IPC_LOCK the limit does not apply (can_do_mlock, mlock_future_ok).
  @Test func capIPCLockIgnoresTheLimit() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitMemlock = 0
    config.capIPCLock = true
    try withRig(config: config) { r throws in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a, 8 * page)
      #expect(r.mm.lockedVM == 8)
    }
  }

  /// Probe 9k, 9l, 9n, 9o: RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK is EPERM, before the range is
  /// looked at (len 0 and an unmapped address included); munlock still works.
  @Test func mlockWithZeroLimitIsEPERM() throws {
    try withLimitRig(pages: 0) { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mlock(a, page) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mlock(a, 0) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mlock(0x1000_0000, page) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mlock(a, page, flags: MlockFlags.onFault) }
      try r.cpu.munlock(a, page)
      #expect(r.mm.lockedVM == 0)
      #expect(r.mm.mapCount == 1)
    }
  }

  // MARK: munlock

  /// Probe 7a-7e: munlock merges the pieces back into one VMA.
  @Test func munlockMergesBackIntoOneVMA() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a + page, page)
      #expect(r.mm.mapCount == 3)
      #expect(r.mm.lockedVM == 1)
      try r.cpu.munlock(a + page, page)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p")])
      #expect(r.mm.lockedVM == 0)

      try r.cpu.mlock(a, 4 * page)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p")])
      #expect(r.mm.lockedVM == 4)
      try r.cpu.munlock(a + page, 2 * page)
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 3 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p"),
        ])
      #expect(r.mm.lockedVM == 2)
      try r.cpu.munlock(a, 4 * page)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p")])
      #expect(r.mm.lockedVM == 0)
      // The data stayed.
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 1, 1, 1])
    }
  }

  // MARK: Populating

  /// Probe 6: a read-only private mapping is populated with read faults (the zero page).
  @Test func mlockPopulatesReadOnlyMemoryWithTheZeroPage() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonPrivate)
      try r.cpu.mlock(a, 2 * page)
      #expect(try r.cpu.mincore(a, 2 * page) == [1, 1])
      #expect(r.mm.pageTable.pte(at: a).isSpecial)
      #expect(r.mm.pageTable.pte(at: a + page).isSpecial)
    }
  }

  /// A writable private mapping is populated with write faults: every page its own frame.
  @Test func mlockPopulatesWritableMemoryWithPrivatePages() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a, 3 * page)
      #expect(try r.cpu.mincore(a, 3 * page) == [1, 1, 1])
      for i in 0..<UInt64(3) {
        #expect(r.mm.pageTable.pte(at: a + i * page).isWritable)
        #expect(!r.mm.pageTable.pte(at: a + i * page).isSpecial)
      }
    }
  }

  // MARK: Locked memory refuses DONTNEED and MS_INVALIDATE

  /// Probe 8a-8g: DONTNEED and FREE are EINVAL on mlocked memory, DONTNEED_LOCKED zaps it;
  /// MS_INVALIDATE is EBUSY when the range meets a locked VMA, 0 once it does not; MS_SYNC is 0.
  @Test func lockedMemoryRefusesDontNeedAndInvalidate() throws {
    try withCapRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a, 2 * page)
      try r.cpu.storeByte(a, 9)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 2 * page, advice: Advice.dontNeed) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 2 * page, advice: Advice.free) }
      expectErrno(.resourceBusy) { () throws(Errno) in try r.cpu.msync(a, 2 * page, flags: MsyncFlags.invalidate) }
      try r.cpu.msync(a, 2 * page, flags: MsyncFlags.sync)
      #expect(try r.cpu.loadByte(a) == 9)
      try r.cpu.madvise(a, 2 * page, advice: Advice.dontNeedLocked)
      #expect(try r.cpu.loadByte(a) == 0)
      try r.cpu.munlock(a + page, page)
      try r.cpu.msync(a + page, page, flags: MsyncFlags.invalidate)
      expectErrno(.resourceBusy) { () throws(Errno) in try r.cpu.msync(a, 2 * page, flags: MsyncFlags.invalidate) }
      try r.cpu.madvise(a + page, page, advice: Advice.dontNeed)
    }
  }

  /// Found by `faultline conform` (issue 13), confirmed on the host without capabilities:
  /// mprotect populates each locked VMA it makes writable before it changes the next one, so
  /// `[1,3)` (split from a read-only locked mapping) gets an anon_vma of its own, `[3,4)` joins
  /// it, and the written mapping `[4,8)`, whose anon_vma is another, stays apart: host maps
  /// `100000000000-100000001000 r--p`, `100000001000-100000004000 rw-p`,
  /// `100000004000-100000008000 rw-p`, mincore all 1.
  @Test func mprotectPopulatesEachLockedVMABeforeChangingTheNext() throws {
    try withLimitRig(pages: 32) { r throws in
      let b = try r.cpu.mmap(0, 8 * page, prot: .read, flags: anonPrivate | MapFlags.locked)
      try r.cpu.munmap(b, 8 * page)
      _ = try r.cpu.mmap(b, 4 * page, prot: .read, flags: anonPrivate | MapFlags.fixed | MapFlags.locked)
      try r.cpu.mprotect(b + 3 * page, page, prot: .none)
      _ = try r.cpu.mmap(b + 4 * page, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.locked)
      try r.cpu.mprotect(b + 4 * page, 4 * page, prot: .read)
      try r.cpu.mprotect(b + page, 7 * page, prot: rw)
      #expect(mapsLines(r, in: b, b + 8 * page) == [
        anonLine(b, b + page, "r--p"), anonLine(b + page, b + 4 * page, "rw-p"), anonLine(b + 4 * page, b + 8 * page, "rw-p"),
      ])
      #expect(try r.cpu.mincore(b, 8 * page) == [UInt8](repeating: 1, count: 8))
    }
  }

  /// Found by `faultline conform` after the test above, confirmed on the host: a VMA locked on
  /// fault (mlockall(MCL_FUTURE|MCL_ONFAULT)) is not populated when mprotect makes it writable,
  /// so it gets no anon_vma, and the VMAs around it, cut from one never-written mapping, merge
  /// back with it when they get its flags: host maps `100000007000-100000009000 rw-p` and
  /// `100000009000-10000000b000 r-xp`.
  @Test func mprotectLeavesALockOnFaultVMAUnpopulated() throws {
    try withLimitRig(pages: 32) { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: [.write, .exec], flags: anonPrivate)
      try r.cpu.mlockall([.future, .onFault])
      _ = try r.cpu.mmap(a + page, 2 * page, prot: .exec, flags: anonPrivate | MapFlags.fixed)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a, 42 * page, prot: rw) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a + 2 * page, 27 * page, prot: [.read, .exec]) }
      try r.cpu.munlock(a, 4 * page)
      #expect(mapsLines(r, in: a, a + 4 * page) == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 4 * page, "r-xp")])
      #expect(try r.cpu.mincore(a, 4 * page) == [0, 0, 0, 0])
      r.cpu.munlockall()
    }
  }
}
