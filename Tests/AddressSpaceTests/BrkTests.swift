import Faultline
import FaultlineTestSupport
import Testing

/// `brk(2)` as the system call behaves (probe case 22): it returns the new break on success and
/// the old one on failure, never an errno.
@Suite struct BrkTests {
  let s = AddressSpaceConfig(profile: .reference).startBrk

  /// Probe 22a, 22b, 22b2: a break below `start_brk` (0 included) changes nothing and returns
  /// the current break.
  @Test func brkBelowStartReturnsCurrentBreak() throws {
    try withRig { r throws in
      #expect(r.mm.brk(0) == s)
      #expect(r.mm.mapCount == 0)
      #expect(r.mm.brk(s + 3 * page) == s + 3 * page)
      #expect(r.mm.brk(s - (1 << 30)) == s + 3 * page)
      #expect(r.mm.brk(1) == s + 3 * page)
      #expect(r.mm.brk(s - 1) == s + 3 * page)
      #expect(r.mm.brk(0) == s + 3 * page)
      #expect(r.mm.currentBrk == s + 3 * page)
      #expect(r.mm.mapsLines() == [heapLine(s, s + 3 * page)])
    }
  }

  /// Probe 22c, 22d: growing returns the requested break and maps `[heap]`; going back to the
  /// start removes it.
  @Test func brkGrowReturnsRequestedAndMapsHeap() throws {
    try withRig { r throws in
      #expect(r.mm.brk(s + 3 * page) == s + 3 * page)
      #expect(r.mm.mapsLines() == [heapLine(s, s + 3 * page)])
      try r.cpu.storeByte(s + 3 * page - 1, 0x44)
      #expect(try r.cpu.loadByte(s + 3 * page - 1) == 0x44)
      #expect(throws: Signal.self) { try r.cpu.loadByte(s + 3 * page) }
      #expect(r.mm.brk(s) == s)
      #expect(r.mm.mapsLines() == [])
      #expect(r.mm.currentBrk == s)
    }
  }

  /// Probe 22e-22e5: the break itself may be unaligned; the heap VMA ends at the next page.
  @Test func brkUnalignedBreakIsReturnedAsIs() throws {
    try withRig { r throws in
      #expect(r.mm.brk(s + 100) == s + 100)
      #expect(r.mm.brk(0) == s + 100)
      #expect(r.mm.mapsLines() == [heapLine(s, s + page)])
      #expect(r.mm.brk(s + 200) == s + 200)
      #expect(r.mm.mapsLines() == [heapLine(s, s + page)])
      #expect(r.mm.brk(s + page + 50) == s + page + 50)
      #expect(r.mm.mapsLines() == [heapLine(s, s + 2 * page)])
      #expect(r.mm.brk(s + 50) == s + 50)
      #expect(r.mm.mapsLines() == [heapLine(s, s + page)])
      #expect(r.mm.brk(s) == s)
      #expect(r.mm.mapsLines() == [])
    }
  }

  /// Shrinking unmaps the pages above the new break; growing again gives zero pages.
  @Test func brkShrinkUnmapsPagesAboveBreak() throws {
    try withRig { r throws in
      #expect(r.mm.brk(s + 4 * page) == s + 4 * page)
      try r.cpu.storeByte(s, 1)
      try r.cpu.storeByte(s + 3 * page, 3)
      #expect(r.mm.brk(s + page) == s + page)
      #expect(r.mm.mapsLines() == [heapLine(s, s + page)])
      #expect(throws: Signal.self) { try r.cpu.loadByte(s + 3 * page) }
      #expect(try r.cpu.loadByte(s) == 1)
      #expect(r.mm.brk(s + 4 * page) == s + 4 * page)
      #expect(try r.cpu.loadByte(s + 3 * page) == 0)
    }
  }

  /// Probe 22f-22h: the heap must keep a one-page gap below the next mapping. Overlapping or
  /// touching it fails (the old break comes back and the mapping is untouched).
  @Test func brkGrowingToTouchNextMappingFails() throws {
    try withRig { r throws in
      let m = try r.cpu.mmap(s + 8 * page, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      try r.cpu.storeByte(m, 0x99)
      #expect(r.mm.brk(s + 16 * page) == s)
      #expect(r.mm.brk(s + 8 * page) == s)
      #expect(r.mm.brk(s + 7 * page + 1) == s)
      #expect(r.mm.mapsLines() == [anonLine(m, m + page, "rw-p")])
      #expect(r.mm.brk(s + 7 * page) == s + 7 * page)
      #expect(r.mm.mapsLines() == [heapLine(s, s + 7 * page), anonLine(m, m + page, "rw-p")])
      #expect(try r.cpu.loadByte(m) == 0x99)
      #expect(r.mm.brk(s) == s)
    }
  }

  /// Kernel `brk`: below a grows-down VMA the gap must also cover `stack_guard_gap` (256 pages).
  @Test func brkKeepsStackGuardGapBelowGrowsDownMapping() throws {
    try withRig { r throws in
      let g = try r.cpu.mmap(s + 300 * page, page, prot: rw, flags: anonPrivate | MapFlags.fixed | MapFlags.growsDown)
      #expect(g == s + 300 * page)
      #expect(r.mm.brk(s + 44 * page) == s)
      #expect(r.mm.brk(s + 43 * page) == s + 43 * page)
    }
  }

  /// Kernel `check_data_rlimit`: a heap larger than RLIMIT_DATA fails.
  @Test func brkOverRlimitDataFails() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitData = 4 * page
    try withRig(config: config) { r throws in
      #expect(r.mm.brk(s + 5 * page) == s)
      #expect(r.mm.brk(s + 4 * page + 1) == s)
      #expect(r.mm.mapCount == 0)
      #expect(r.mm.brk(s + 4 * page) == s + 4 * page)
      #expect(r.mm.mapsLines() == [heapLine(s, s + 4 * page)])
    }
  }
}
