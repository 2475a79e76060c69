import Faultline
import FaultlineTestSupport
import Testing

/// One test per applicable `mprotect` row of reference/errno.md, with the real kernel's
/// answers (probe cases 18, 15 and 12j).
@Suite struct MprotectErrnoTests {
  /// Probe 18a.
  @Test func mprotectUnalignedAddressIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a + 1, page, prot: Prot.read) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a + 0x800, page, prot: Prot.read) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + 3 * page, "rw-p")])
    }
  }

  /// Probe 18b: bits other than READ/WRITE/EXEC/SEM are EINVAL (mmap ignores them; mprotect
  /// does not).
  @Test func mprotectUnknownProtBitsIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a, page, prot: 0x100) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a, page, prot: Prot.read | 0x10) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a, page, prot: Prot.read | 0x0400_0000) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + 3 * page, "rw-p")])
    }
  }

  /// Kernel `arch_validate_prot` (generic, used by x86-64): PROT_SEM (0x8) is a valid bit.
  @Test func mprotectAcceptsProtSem() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.mprotect(a, page, prot: Prot.read | 0x8)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "r--p")])
    }
  }

  /// Probe 18c: GROWSDOWN and GROWSUP together are EINVAL, before any other check.
  @Test func mprotectGrowsDownAndGrowsUpIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.growsDown)
      let both = Prot.read | Prot.growsDown | Prot.growsUp
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a, page, prot: both) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a, 0, prot: both) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(0x1000_0000, page, prot: both) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "rw-p")])
    }
  }

  /// Probe 18d3, 18e: len 0 at an aligned address returns 0 with no further checks, even with
  /// invalid prot bits or nothing mapped.
  @Test func mprotectZeroLengthAlignedSucceedsWithoutChecks() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.mprotect(a, 0, prot: 0x100)
      try r.cpu.mprotect(0x1000_0000, 0, prot: Prot.read)
      try r.cpu.mprotect(a, 0, prot: Prot.read)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "rw-p")])
    }
  }

  /// Probe 18d, 18d2: len 0 does not excuse an unaligned address.
  @Test func mprotectZeroLengthUnalignedIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a + 1, 0, prot: Prot.read) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a + 1, 0, prot: 0x100) }
    }
  }

  /// Probe 18f, 18f2, 18f3: an end that wraps (or PAGE_ALIGN wrapping to 0) is ENOMEM, as is a
  /// range past TASK_SIZE.
  @Test func mprotectLengthOverflowIsENOMEM() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a, UInt64(bitPattern: -4096), prot: Prot.read) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a, UInt64(bitPattern: -4095), prot: Prot.read) }
      // ENOMEM comes before the prot check here.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a, UInt64(bitPattern: -4096), prot: 0x100) }
      _ = try r.cpu.mmap(taskSize - page, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(taskSize - page, 2 * page, prot: Prot.read) }
      #expect(mapsLines(r, in: a, a + page) == [anonLine(a, a + page, "rw-p")])
    }
  }

  /// Probe 18h, 18h2: a range that starts in a hole is ENOMEM and nothing changes.
  @Test func mprotectRangeStartingUnmappedIsENOMEMAndChangesNothing() throws {
    try withRig { r throws in
      let f = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.mm.munmap(f, page)
      try r.mm.munmap(f + 3 * page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(f, 3 * page, prot: Prot.read) }
      #expect(r.mm.mapsLines() == [anonLine(f + page, f + 3 * page, "rw-p")])
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(f + 3 * page, page, prot: Prot.read) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(0x1000_0000, page, prot: Prot.read) }
      #expect(r.mm.mapsLines() == [anonLine(f + page, f + 3 * page, "rw-p")])
    }
  }

  /// Probe 18g, 18h3: a hole inside (or at the end of) the range is ENOMEM, but the VMAs before
  /// the hole have already been changed.
  @Test func mprotectHoleIsENOMEMWithPartBeforeHoleChanged() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)
      try r.mm.munmap(a + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a, 3 * page, prot: Prot.read) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "r--p"), anonLine(a + 2 * page, a + 3 * page, "rw-p")])
      // The change is real: the page is no longer writable.
      #expect(throws: Signal.self) { try r.cpu.storeByte(a, 2) }
      #expect(try r.cpu.loadByte(a) == 1)
      // A range ending in a hole: the mapped head changes.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a + 2 * page, 2 * page, prot: Prot.none) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "r--p"), anonLine(a + 2 * page, a + 3 * page, "---p")])
    }
  }

  /// Probe 18i, 18j: PROT_GROWSDOWN needs a grows-down VMA; x86-64 has no grows-up VMAs.
  @Test func mprotectGrowsDownOnNormalVMAIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a + page, page, prot: Prot.read | Prot.growsDown) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mprotect(a + page, page, prot: Prot.read | Prot.growsUp) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p")])
    }
  }

  /// Probe 18l: on a MAP_GROWSDOWN VMA, PROT_GROWSDOWN extends the change down to the VMA start.
  @Test func mprotectGrowsDownOnGrowsDownVMAExtendsToVMAStart() throws {
    try withRig { r throws in
      let g = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate | MapFlags.growsDown)
      try r.cpu.mprotect(g + 2 * page, 2 * page, prot: Prot.read | Prot.growsDown)
      #expect(r.mm.mapsLines() == [anonLine(g, g + 4 * page, "r--p")])
    }
  }

  /// Probe 18k: a partial page counts as the whole page.
  @Test func mprotectPartialPageCoversThePage() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonPrivate)
      try r.cpu.mprotect(a, 100, prot: Prot.none)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "---p"), anonLine(a + page, a + 2 * page, "r--p")])
    }
  }

  /// Probe 15c, 15d, 15e3, 15e4: at max_map_count any split is ENOMEM (head, middle or tail);
  /// changing a whole VMA needs no split and succeeds.
  @Test func mprotectSplitAtMaxMapCountIsENOMEM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.maxMapCount = 20
    try withRig(config: config) { r throws in
      let big = try r.cpu.mmap(0, 3 * page, prot: Prot.read | Prot.exec, flags: anonPrivate)
      let (_, error) = mapUntilFailure(r)
      #expect(error == .noMemory)
      #expect(r.mm.mapCount == 21)
      let before = r.mm.mapsLines()
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(big + page, page, prot: Prot.read) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(big, page, prot: Prot.read) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(big + 2 * page, page, prot: Prot.read) }
      #expect(r.mm.mapsLines() == before)
      try r.cpu.mprotect(big, 3 * page, prot: Prot.read)
      #expect(mapsLines(r, in: big, big + 3 * page) == [anonLine(big, big + 3 * page, "r--p")])
      // Exactly at the limit a split is still refused (`map_count >= max_map_count`).
      try r.mm.munmap(big - 4 * page, page)
      #expect(r.mm.mapCount == 20)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(big, page, prot: Prot.none) }
      #expect(mapsLines(r, in: big, big + 3 * page) == [anonLine(big, big + 3 * page, "r--p")])
      // One below the limit, a single split is allowed.
      try r.mm.munmap(big - 6 * page, page)
      try r.cpu.mprotect(big, page, prot: Prot.none)
      #expect(r.mm.mapCount == 20)
      #expect(
        mapsLines(r, in: big, big + 3 * page) == [anonLine(big, big + page, "---p"), anonLine(big + page, big + 3 * page, "r--p")])
    }
  }

  /// Probe 12j: making private memory writable counts against RLIMIT_DATA; the mapping is left
  /// as it was.
  @Test func mprotectReadOnlyToWritableOverRlimitDataIsENOMEM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitData = 8 << 20
    try withRig(config: config) { r throws in
      let a = try r.cpu.mmap(0, 64 << 20, prot: Prot.read, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a, 64 << 20, prot: rw) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + (64 << 20), "r--p")])
      // Up to the limit is fine; one page more is not.
      try r.cpu.mprotect(a, 8 << 20, prot: rw)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mprotect(a + (8 << 20), page, prot: rw) }
      #expect(
        r.mm.mapsLines() == [anonLine(a, a + (8 << 20), "rw-p"), anonLine(a + (8 << 20), a + (64 << 20), "r--p")])
      // Shared and grows-down memory is not data: no limit.
      let sh = try r.cpu.mmap(0, 64 << 20, prot: Prot.read, flags: anonShared)
      try r.cpu.mprotect(sh, 64 << 20, prot: rw)
      let g = try r.cpu.mmap(0, 64 << 20, prot: Prot.read, flags: anonPrivate | MapFlags.growsDown)
      try r.cpu.mprotect(g, 64 << 20, prot: rw)
    }
  }
}
