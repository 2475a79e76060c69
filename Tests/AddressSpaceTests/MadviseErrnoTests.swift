import Faultline
import FaultlineTestSupport
import Testing

/// One test per applicable `madvise` row of reference/errno.md (advice validity and
/// MADV_DONTNEED), with the real kernel's answers (probe case 21).
@Suite struct MadviseErrnoTests {
  /// Probe 21a, 21a2: advice the kernel does not know is EINVAL, even with len 0 and before the
  /// alignment check.
  @Test(arguments: [Advice(rawValue: 5), 6, 7, 99, 104, 12345, -1, Advice(rawValue: .max)])
  func madviseInvalidAdviceIsEINVAL(advice: Advice) throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, page, advice: advice) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 0, advice: advice) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(0x1000_0000, page, advice: advice) }
    }
  }

  /// Kernel `madvise_behavior_valid`: advice that needs no file, no KSM/THP/hugetlb and no
  /// privilege is accepted on private anonymous memory and returns 0.
  @Test(arguments: [
    Advice.normal, Advice.random, Advice.sequential, Advice.willNeed, Advice.dontNeed, Advice.free,
    Advice.dontFork, Advice.doFork, Advice.dontDump, Advice.doDump, Advice.wipeOnFork, Advice.keepOnFork,
    Advice.cold, Advice.pageOut, Advice.populateRead, Advice.populateWrite, Advice.dontNeedLocked,
  ])
  func madviseValidAdviceOnPrivateAnonSucceeds(advice: Advice) throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.madvise(a, 2 * page, advice: advice)
    }
  }

  /// Probe 21b, 21c2.
  @Test func madviseUnalignedAddressIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 0x33)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a + 1, page, advice: Advice.dontNeed) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a + 1, 0, advice: Advice.dontNeed) }
      #expect(try r.cpu.loadByte(a) == 0x33)
    }
  }

  /// Probe 21d, 21d2: a length whose end wraps, or that PAGE_ALIGN wraps to 0, is EINVAL (unlike
  /// mprotect's ENOMEM).
  @Test func madviseLengthOverflowIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 0x33)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, UInt64(bitPattern: -4096), advice: Advice.dontNeed) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, UInt64(bitPattern: -4095), advice: Advice.dontNeed) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(0, UInt64.max, advice: Advice.normal) }
      #expect(try r.cpu.loadByte(a) == 0x33)
    }
  }

  /// Probe 21c: len 0 at an aligned address is 0, mapped or not.
  @Test func madviseZeroLengthAlignedSucceeds() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 0x33)
      try r.cpu.madvise(a, 0, advice: Advice.dontNeed)
      try r.cpu.madvise(0x1000_0000, 0, advice: Advice.dontNeed)
      #expect(try r.cpu.loadByte(a) == 0x33)
    }
  }

  /// Probe 21d3-21d6: a range with nothing mapped is ENOMEM, whatever the advice.
  @Test func madviseUnmappedRangeIsENOMEM() throws {
    try withRig { r throws in
      for advice in [Advice.dontNeed, Advice.normal, Advice.willNeed] {
        expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(0x1000_0000, page, advice: advice) }
      }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(taskSize - page, 2 * page, advice: Advice.normal) }
    }
  }

  /// Probe 21e, 21e2: part of the range unmapped is ENOMEM, but DONTNEED is still applied to
  /// the mapped parts on both sides of the hole.
  @Test func madviseDontNeedPartlyUnmappedIsENOMEMButAppliedToMappedParts() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 0xAA, count: Int(3 * page))
      try r.mm.munmap(a + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.dontNeed) }
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(try r.cpu.loadByte(a + 2 * page) == 0)
      #expect(try r.cpu.loadByte(a + 3 * page - 1) == 0)
      // A hole before the first VMA and after the last one: the same.
      try r.cpu.fill(a, value: 0xAA, count: Int(page))
      try r.cpu.fill(a + 2 * page, value: 0xBB, count: Int(page))
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a - page, 2 * page, advice: Advice.dontNeed) }
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(try r.cpu.loadByte(a + 2 * page) == 0xBB)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a + 2 * page, 2 * page, advice: Advice.dontNeed) }
      #expect(try r.cpu.loadByte(a + 2 * page) == 0)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.normal) }
    }
  }

  /// Probe 21f, 21f2: DONTNEED (and FREE) on locked memory is EINVAL and the data stays.
  @Test func madviseDontNeedOnLockedIsEINVALAndKeepsData() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withRig(config: config) { r throws in
      let l = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate | MapFlags.locked)
      try r.cpu.fill(l, value: 0x11, count: Int(2 * page))
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(l, 2 * page, advice: Advice.dontNeed) }
      #expect(try r.cpu.loadByte(l) == 0x11)
      #expect(try r.cpu.loadByte(l + page) == 0x11)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(l, 2 * page, advice: Advice.free) }
      #expect(try r.cpu.loadByte(l + page) == 0x11)
    }
  }

  /// Probe 21g: DONTNEED on shared anonymous memory returns 0 and keeps the data (it lives in
  /// the shmem file; only the PTEs go).
  @Test func madviseDontNeedOnSharedAnonKeepsData() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, page, prot: rw, flags: anonShared)
      try r.cpu.fill(s, value: 0x5A, count: Int(page))
      try r.cpu.madvise(s, page, advice: Advice.dontNeed)
      #expect(try r.cpu.loadByte(s) == 0x5A)
      #expect(try r.cpu.loadByte(s + page - 1) == 0x5A)
    }
  }

  /// Probe 21h: DONTNEED on private anonymous memory returns 0 and the pages read back zero.
  @Test func madviseDontNeedOnPrivateAnonZeroesIt() throws {
    try withRig { r throws in
      let p = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(p, value: 0x5A, count: Int(2 * page))
      try r.cpu.madvise(p, page, advice: Advice.dontNeed)
      #expect(try r.cpu.loadByte(p) == 0)
      #expect(try r.cpu.loadByte(p + page - 1) == 0)
      #expect(try r.cpu.loadByte(p + page) == 0x5A)
      // A partial page length covers the page.
      try r.cpu.madvise(p + page, 1, advice: Advice.dontNeed)
      #expect(try r.cpu.loadByte(p + page) == 0)
    }
  }

  /// Probe 21j, 21k: DONTNEED on PROT_NONE memory and WILLNEED on private anonymous memory are
  /// both 0.
  @Test func madviseDontNeedOnProtNoneAndWillNeedSucceed() throws {
    try withRig { r throws in
      let n = try r.cpu.mmap(0, page, prot: Prot.none, flags: anonPrivate)
      try r.cpu.madvise(n, page, advice: Advice.dontNeed)
      let p = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(p, 7)
      try r.cpu.madvise(p, page, advice: Advice.willNeed)
      #expect(try r.cpu.loadByte(p) == 7)
    }
  }
}
