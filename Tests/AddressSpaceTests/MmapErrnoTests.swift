import Faultline
import FaultlineTestSupport
import Testing

/// One test per applicable `mmap` row of reference/errno.md, with the real kernel's answers
/// (probe case numbers in the comments).
@Suite struct MmapErrnoTests {
  // MARK: Argument checks

  /// Probe 1.
  @Test func mmapZeroLengthIsEINVAL() throws {
    try withRig { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, 0, prot: rw, flags: anonPrivate) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, 0, prot: rw, flags: anonShared) }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 2, 4n.
  @Test func mmapWithoutPrivateOrSharedIsEINVAL() throws {
    try withRig { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.anonymous) }
      // Type bits that are no mapping type at all (0x0f).
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.anonymous | MapFlags.type)
      }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 3, 4a-4c, 4f: PRIVATE|SHARED is MAP_SHARED_VALIDATE, which anonymous memory rejects
  /// outright (EINVAL, not EOPNOTSUPP), whatever other flags come with it.
  @Test func mmapAnonymousSharedValidateIsEINVAL() throws {
    try withRig { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.private | MapFlags.shared | MapFlags.anonymous)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.sharedValidate | MapFlags.anonymous | 0x80_0000)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.sharedValidate | MapFlags.anonymous | 0x20_0000)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.sharedValidate | MapFlags.anonymous | MapFlags.sync)
      }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 4d, 4e, 4g, 4h: without MAP_SHARED_VALIDATE unknown flags (and MAP_SYNC) are ignored.
  @Test func mmapUnknownFlagsWithoutValidateAreIgnored() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonShared | 0x80_0000)
      let b = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | 0x80_0000)
      let c = try r.cpu.mmap(0, page, prot: rw, flags: anonShared | MapFlags.sync)
      let d = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.sync)
      #expect(Set([a, b, c, d]).count == 4)
    }
  }

  /// Kernel `do_mmap`: a shared anonymous mapping may not grow down.
  @Test func mmapSharedGrowsDownIsEINVAL() throws {
    try withRig { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: rw, flags: anonShared | MapFlags.growsDown)
      }
    }
  }

  /// Probe 5a, 5b.
  @Test func mmapFixedUnalignedAddressIsEINVAL() throws {
    try withRig { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0x1000_0001, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0x1000_0001, page, prot: rw, flags: anonPrivate | MapFlags.fixedNoReplace)
      }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 6: a non-fixed unaligned hint is rounded down and used when free.
  @Test func mmapUnalignedHintIsRoundedDownAndUsed() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0x1000_0001, page, prot: rw, flags: anonPrivate)
      #expect(a == 0x1000_0000)
      try r.mm.munmap(a, page)
      let b = try r.cpu.mmap(0x1000_0FFF, page, prot: rw, flags: anonPrivate)
      #expect(b == 0x1000_0000)
      try r.mm.munmap(b, page)
      let c = try r.cpu.mmap(0x1000_0001, 100, prot: rw, flags: anonPrivate)
      #expect(c == 0x1000_0000)
      #expect(r.mm.mapsLines() == [anonLine(0x1000_0000, 0x1000_1000, "rw-p")])
    }
  }

  /// Probe 6 (0x800) and 9h: a hint that rounds down to 0 is no hint; top-down placement.
  @Test func mmapHintBelowMmapMinAddrIsIgnored() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0x800, page, prot: rw, flags: anonPrivate)
      #expect(a == defaultMmapBase - page)
    }
  }

  /// Kernel `do_mmap` → `round_hint_to_min`: a non-zero page-aligned hint below
  /// `mmap_min_addr` is raised to `PAGE_ALIGN(mmap_min_addr)`, and used when that is free.
  @Test func mmapNonZeroHintBelowMmapMinAddrIsRaisedToIt() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.mmapMinAddr = 0x10000
    try withRig(config: config) { r throws in
      let a = try r.cpu.mmap(0x2000, page, prot: rw, flags: anonPrivate)
      #expect(a == 0x10000)
    }
  }

  /// Probe 6 (hint == TASK_SIZE) and 10e: a hint that does not fit, or overlaps a mapping, is
  /// ignored.
  @Test func mmapHintThatDoesNotFitIsIgnored() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(taskSize, page, prot: rw, flags: anonPrivate)
      #expect(a == defaultMmapBase - page)
      let b = try r.cpu.mmap(0x1000_0000, 4 * page, prot: rw, flags: anonPrivate)
      #expect(b == 0x1000_0000)
      let c = try r.cpu.mmap(0x1000_2000, page, prot: Prot.read, flags: anonPrivate)
      #expect(c == defaultMmapBase - 2 * page)
    }
  }

  /// Probe 7a, and 11f (the offset check comes before the descriptor check).
  @Test func mmapUnalignedOffsetIsEINVAL() throws {
    try withRig { r throws in
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate, offset: 100) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: anonShared, offset: 4095) }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.private, fd: -1, offset: 100)
      }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 7b-7d: an aligned offset on anonymous memory is accepted and does not show in maps.
  @Test func mmapAnonymousAlignedOffsetIsAccepted() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate, offset: 4096)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "rw-p")])
      let s = try r.cpu.mmap(0, page, prot: rw, flags: anonShared, offset: 0x10000)
      let line = r.mm.mapsLines().first { $0.hasPrefix("\(hex8(s))-") }
      #expect(line?.contains(" rw-s 00000000 00:01 ") == true)
      #expect(line?.hasSuffix("/dev/zero (deleted)") == true)
    }
  }

  /// Probe 8a, 8d: a length that PAGE_ALIGN wraps to 0 is ENOMEM (not EINVAL).
  @Test func mmapLengthRoundingToZeroIsENOMEM() throws {
    try withRig { r throws in
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, UInt64.max, prot: rw, flags: anonPrivate) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, UInt64(bitPattern: -4095), prot: rw, flags: anonPrivate) }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 8b, 8c: a length larger than the address space is ENOMEM.
  @Test func mmapLengthBeyondAddressSpaceIsENOMEM() throws {
    try withRig { r throws in
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 0xFFFF_FFFF_FFFF_F000, prot: rw, flags: anonPrivate) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 1 << 47, prot: Prot.none, flags: anonPrivate) }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// The EOVERFLOW row (`pgoff + pages(len)` wraps) cannot be reached on x86-64 through
  /// `mmap(2)`: the offset is a 64-bit value, so `pgoff = offset >> 12 < 2^52`, and the page
  /// count of a length that survives PAGE_ALIGN is below 2^52 too, so the sum stays below 2^53.
  /// (The kernel's other EOVERFLOW cases need a regular file, which Faultline does not have yet.)
  /// What can be pinned is the consequence: an anonymous mapping accepts any aligned offset,
  /// negative ones included, since anonymous memory never checks it against a file size.
  @Test func mmapAnonymousHugeOffsetCannotOverflowPgoff() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate, offset: -4096)
      let b = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate, offset: Int64.min)
      let c = try r.cpu.mmap(0, page, prot: rw, flags: anonShared, offset: Int64.max & ~0xFFF)
      #expect(Set([a, b, c]).count == 3)
    }
  }

  // MARK: File descriptor

  /// Probe 11a: no files yet, so every non-anonymous mmap has a bad descriptor.
  @Test func mmapNonAnonymousWithBadFdIsEBADF() throws {
    try withRig { r throws in
      expectErrno(.badFileDescriptor) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.private, fd: -1) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.shared, fd: 12345) }
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 11d, 11e: EBADF comes before the length and address checks.
  @Test func mmapBadFdIsReportedBeforeLengthAndAddressErrors() throws {
    try withRig { r throws in
      expectErrno(.badFileDescriptor) { () throws(Errno) in try r.cpu.mmap(0, 0, prot: rw, flags: MapFlags.private, fd: -1) }
      expectErrno(.badFileDescriptor) { () throws(Errno) in
        try r.cpu.mmap(0x1000_0001, page, prot: rw, flags: MapFlags.private | MapFlags.fixed, fd: -1)
      }
      // No mapping type at all: still EBADF first.
      expectErrno(.badFileDescriptor) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: 0, fd: -1) }
    }
  }

  /// Probe 11b, 11c: an anonymous mapping ignores the descriptor.
  @Test func mmapAnonymousIgnoresFd() throws {
    try withRig { r throws in
      _ = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate, fd: 5)
      _ = try r.cpu.mmap(0, page, prot: rw, flags: anonShared, fd: 12345)
    }
  }

  // MARK: Placement

  /// Probe 10a-10d: MAP_FIXED_NOREPLACE over any part of a mapping is EEXIST and changes
  /// nothing; touching it from either side is fine.
  @Test func mmapFixedNoReplaceOverlapIsEEXISTAndAdjacentIsOK() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a + 3 * page, 0x77)
      let noReplace = anonPrivate | MapFlags.fixedNoReplace
      expectErrno(.fileExists) { () throws(Errno) in try r.cpu.mmap(a + 3 * page, 2 * page, prot: Prot.read, flags: noReplace) }
      expectErrno(.fileExists) { () throws(Errno) in try r.cpu.mmap(a, 4 * page, prot: Prot.read, flags: noReplace) }
      expectErrno(.fileExists) { () throws(Errno) in try r.cpu.mmap(a - page, 2 * page, prot: Prot.read, flags: noReplace) }
      expectErrno(.fileExists) { () throws(Errno) in try r.cpu.mmap(a + page, page, prot: Prot.read, flags: noReplace) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p")])
      #expect(try r.cpu.loadByte(a + 3 * page) == 0x77)
      #expect(try r.cpu.mmap(a + 4 * page, page, prot: rw, flags: noReplace) == a + 4 * page)
      #expect(try r.cpu.mmap(a - page, page, prot: rw, flags: noReplace) == a - page)
      #expect(r.mm.mapsLines() == [anonLine(a - page, a + 5 * page, "rw-p")])
    }
  }

  /// Probe 9a-9d: a fixed range that reaches past TASK_SIZE is ENOMEM; the last page is fine.
  @Test func mmapFixedBeyondTaskSizeIsENOMEM() throws {
    try withRig { r throws in
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mmap(taskSize - 3 * page, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(taskSize, page, prot: rw, flags: anonPrivate | MapFlags.fixed) }
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mmap(taskSize - 3 * page, 4 * page, prot: rw, flags: anonPrivate | MapFlags.fixedNoReplace)
      }
      // Also past TASK_SIZE and unaligned: the range check comes first.
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mmap(taskSize + 1, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      }
      #expect(r.mm.mapCount == 0)
      #expect(try r.cpu.mmap(taskSize - page, page, prot: rw, flags: anonPrivate | MapFlags.fixed) == taskSize - page)
    }
  }

  /// Probe 9e-9g without CAP_SYS_RAWIO.
  @Test func mmapFixedBelowMmapMinAddrIsEPERM() throws {
    try withRig { r throws in
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.fixed) }
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.fixedNoReplace) }
      #expect(r.mm.mapCount == 0)
      #expect(try r.cpu.mmap(0x1000, page, prot: rw, flags: anonPrivate | MapFlags.fixed) == 0x1000)
    }
    var config = AddressSpaceConfig(profile: .reference)
    config.mmapMinAddr = 0x10000
    try withRig(config: config) { r throws in
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mmap(0xF000, page, prot: rw, flags: anonPrivate | MapFlags.fixed) }
      #expect(try r.cpu.mmap(0x10000, page, prot: rw, flags: anonPrivate | MapFlags.fixed) == 0x10000)
    }
  }

  /// Probe 9e-9g with full capabilities.
  @Test func mmapFixedBelowMmapMinAddrWithCapSysRawIOIsAllowed() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capSysRawIO = true
    try withRig(config: config) { r throws in
      #expect(try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.fixed) == 0)
      try r.cpu.storeByte(0, 9)
      #expect(try r.cpu.loadByte(0) == 9)
      try r.mm.munmap(0, page)
      #expect(try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.fixedNoReplace) == 0)
    }
  }

  /// x86-64 `arch_get_unmapped_area_topdown` only refuses `len > TASK_SIZE`; with
  /// CAP_SYS_RAWIO a MAP_FIXED mapping of the whole of `[0, TASK_SIZE)` is allowed (one byte
  /// more is ENOMEM).
  @Test func mmapFixedWholeAddressSpaceWithCapSysRawIOIsAllowed() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capSysRawIO = true
    try withRig(config: config) { r throws in
      let flags = anonPrivate | MapFlags.fixed | MapFlags.noReserve
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, taskSize + 1, prot: Prot.none, flags: flags) }
      #expect(try r.cpu.mmap(0, taskSize, prot: Prot.none, flags: flags) == 0)
      // It covers start_brk, so Linux's show_map_vma names it [heap] (vma_is_initial_heap).
      var line = anonLine(0, taskSize, "---p")
      line += String(repeating: " ", count: 73 - line.utf8.count) + "[heap]"
      #expect(r.mm.mapsLines() == [line])
    }
  }

  /// A non-fixed mmap with no gap large enough anywhere is ENOMEM.
  @Test func mmapWithNoFreeGapIsENOMEM() throws {
    try withRig { r throws in
      // One reservation over everything but [0x1000, 0x10000): 15 pages are left.
      let low: UInt64 = 0x10000
      #expect(try r.cpu.mmap(low, taskSize - low, prot: Prot.none, flags: anonPrivate | MapFlags.fixed | MapFlags.noReserve) == low)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 16 * page, prot: rw, flags: anonPrivate) }
      #expect(r.mm.mapCount == 1)
      #expect(try r.cpu.mmap(0, 15 * page, prot: rw, flags: anonPrivate) == 0x1000)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate) }
    }
  }

  // MARK: Limits

  /// Probe 12a-12c.
  @Test func mmapOverRlimitASIsENOMEM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitAS = 1 << 30
    try withRig(config: config) { r throws in
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 2 << 30, prot: rw, flags: anonPrivate) }
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mmap(0, 2 << 30, prot: Prot.none, flags: anonPrivate | MapFlags.noReserve)
      }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 2 << 30, prot: rw, flags: anonShared) }
      #expect(r.mm.mapCount == 0)
      let a = try r.cpu.mmap(0, 512 << 20, prot: rw, flags: anonPrivate)
      _ = try r.cpu.mmap(0, 512 << 20, prot: Prot.read, flags: anonPrivate)
      // At the limit: one more page does not fit...
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, page, prot: Prot.read, flags: anonPrivate) }
      // ...but MAP_FIXED over mapped pages only counts the pages it adds (mmap_region).
      #expect(try r.cpu.mmap(a, 512 << 20, prot: Prot.read, flags: anonPrivate | MapFlags.fixed) == a)
      // One page over the top of `a` is new: that one does not fit.
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mmap(a + (512 << 20) - page, 2 * page, prot: Prot.read, flags: anonPrivate | MapFlags.fixed)
      }
      #expect(r.mm.totalVM == (1 << 30) >> 12)
    }
  }

  /// Probe 15a, 15g, 15h: the check is `map_count > max_map_count`, so the count reaches
  /// max_map_count + 1 before mmap fails.
  @Test func mmapBeyondMaxMapCountIsENOMEM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.maxMapCount = 20
    try withRig(config: config) { r throws in
      let (mapped, error) = mapUntilFailure(r)
      #expect(mapped == 21)
      #expect(error == .noMemory)
      #expect(r.mm.mapCount == 21)
      #expect(r.mm.mapsLines().count == 21)
      // Freeing one VMA lets exactly one more in.
      let last = defaultMmapBase - 21 * page
      try r.mm.munmap(last, page)
      #expect(r.mm.mapCount == 20)
      _ = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, page, prot: Prot.read, flags: anonPrivate) }
    }
  }

  /// Probe 15e5, 15e6: at the limit even a MAP_FIXED that would replace a whole VMA is ENOMEM
  /// (the map_count check comes first), and nothing is unmapped.
  @Test func mmapFixedAtMaxMapCountIsENOMEM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.maxMapCount = 20
    try withRig(config: config) { r throws in
      _ = mapUntilFailure(r)
      let before = r.mm.mapsLines()
      let lone = defaultMmapBase - page
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(lone, page, prot: Prot.exec, flags: anonPrivate | MapFlags.fixed) }
      #expect(r.mm.mapsLines() == before)
    }
  }

  /// Probe 12d-12i: RLIMIT_DATA limits private writable memory (NORESERVE included), but not
  /// read-only, shared, grows-down (VM_STACK) or PROT_NONE memory.
  @Test func mmapPrivateWritableOverRlimitDataIsENOMEM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitData = 8 << 20
    try withRig(config: config) { r throws in
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 64 << 20, prot: rw, flags: anonPrivate) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 64 << 20, prot: rw, flags: anonPrivate | MapFlags.noReserve) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, 64 << 20, prot: Prot.write, flags: anonPrivate) }
      #expect(r.mm.mapCount == 0)
      _ = try r.cpu.mmap(0, 64 << 20, prot: Prot.read, flags: anonPrivate)
      _ = try r.cpu.mmap(0, 64 << 20, prot: rw, flags: anonShared)
      _ = try r.cpu.mmap(0, 64 << 20, prot: rw, flags: anonPrivate | MapFlags.growsDown)
      _ = try r.cpu.mmap(0, 64 << 20, prot: Prot.none, flags: anonPrivate)
      // Exactly the limit fits; one page more does not.
      _ = try r.cpu.mmap(0, 8 << 20, prot: rw, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate) }
    }
  }

  /// Probe 13a: MAP_LOCKED with RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK.
  @Test func mmapLockedWithZeroMemlockLimitIsEPERM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitMemlock = 0
    try withRig(config: config) { r throws in
      expectErrno(.notPermitted) { () throws(Errno) in try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.locked) }
      #expect(r.mm.mapCount == 0)
      #expect(r.mm.lockedVM == 0)
    }
  }

  /// Probe 13d, 13e: MAP_LOCKED beyond a non-zero RLIMIT_MEMLOCK.
  @Test func mmapLockedOverMemlockLimitIsEAGAIN() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitMemlock = 4096
    try withRig(config: config) { r throws in
      _ = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.locked)
      #expect(r.mm.lockedVM == 1)
      expectErrno(.resourceTemporarilyUnavailable) { () throws(Errno) in
        try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate | MapFlags.locked)
      }
      #expect(r.mm.mapCount == 1)
      #expect(r.mm.lockedVM == 1)
      // munmap gives the locked pages back to the limit.
      try r.mm.munmap(defaultMmapBase - page, page)
      #expect(r.mm.lockedVM == 0)
      _ = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.locked)
    }
  }

  /// Probe 13a, 13d, 13e with CAP_IPC_LOCK: no limit applies.
  @Test func mmapLockedWithCapIPCLockIgnoresMemlockLimit() throws {
    for limit: UInt64 in [0, 4096] {
      var config = AddressSpaceConfig(profile: .reference)
      config.rlimitMemlock = limit
      config.capIPCLock = true
      try withRig(config: config) { r throws in
        _ = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.locked)
        _ = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonPrivate | MapFlags.locked)
        #expect(r.mm.lockedVM == 3)
      }
    }
  }

  // MARK: Protections

  /// Probe 14a-14e: mmap ignores unknown prot bits (and PROT_GROWSDOWN).
  @Test func mmapIgnoresUnknownProtBits() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: 0x100 | Prot.read, flags: anonPrivate)
      let b = try r.cpu.mmap(0, page, prot: 0x100, flags: anonPrivate)
      let c = try r.cpu.mmap(0, page, prot: Prot.read | Prot.growsDown, flags: anonPrivate)
      let d = try r.cpu.mmap(0, page, prot: Prot.write, flags: anonPrivate)
      let e = try r.cpu.mmap(0, page, prot: Prot.exec, flags: anonPrivate)
      #expect(
        r.mm.mapsLines() == [
          anonLine(e, e + page, "--xp"), anonLine(d, d + page, "-w-p"), anonLine(c, c + page, "r--p"),
          anonLine(b, b + page, "---p"), anonLine(a, a + page, "r--p"),
        ])
    }
  }
}
