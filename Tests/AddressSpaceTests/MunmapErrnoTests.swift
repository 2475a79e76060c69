import Faultline
import FaultlineTestSupport
import Testing

/// One test per `munmap` row of reference/errno.md, with the real kernel's answers (probe case
/// 17 and 15).
@Suite struct MunmapErrnoTests {
  /// Probe 17a.
  @Test func munmapUnalignedAddressIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(a + 1, page) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(a + page - 1, page) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p")])
    }
  }

  /// Probe 17b, 17c.
  @Test func munmapZeroLengthIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(a, 0) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(a + 1, 0) }
      // Also at an unmapped address.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(0x1000_0000, 0) }
      #expect(r.mm.mapCount == 1)
    }
  }

  /// Probe 17d, 17e3, 17e4: the range must lie below TASK_SIZE.
  @Test func munmapRangeBeyondTaskSizeIsEINVAL() throws {
    try withRig { r throws in
      let last = try r.cpu.mmap(taskSize - page, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(taskSize - page, 2 * page) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(taskSize, 4095) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(taskSize, page) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(taskSize + page, page) }
      #expect(r.mm.mapCount == 1)
      try r.mm.munmap(last, page)
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 17e, 17e2: a length that PAGE_ALIGN would wrap to 0 is EINVAL (here the TASK_SIZE
  /// check catches it first, as in Linux).
  @Test func munmapLengthRoundingToZeroIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(a, UInt64(bitPattern: -4095)) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(0, UInt64(bitPattern: -4095)) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.mm.munmap(0, UInt64.max) }
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p")])
    }
  }

  /// Probe 17f, 17g, 17h: unmapped parts are not an error, and a partial page unmaps the page.
  @Test func munmapUnmappedRangeSucceeds() throws {
    try withRig { r throws in
      try r.mm.munmap(0x1000_0000, 4 * page)
      try r.mm.munmap(0, page)
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.mm.munmap(a, 100)
      #expect(r.mm.mapsLines() == [anonLine(a + page, a + 4 * page, "rw-p")])
      // A range that is mapped only in part (holes on both sides) unmaps that part.
      try r.mm.munmap(a - 4 * page, 6 * page)
      #expect(r.mm.mapsLines() == [anonLine(a + 2 * page, a + 4 * page, "rw-p")])
      try r.mm.munmap(a, 8 * page)
      #expect(r.mm.mapCount == 0)
    }
  }

  /// Probe 15b, 15e, 15e2: at max_map_count, unmapping the middle of a VMA (which needs one
  /// more VMA) is ENOMEM and changes nothing, while trimming its head or tail succeeds.
  @Test func munmapSplitInMiddleAtMaxMapCountIsENOMEM() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.maxMapCount = 20
    try withRig(config: config) { r throws in
      let big = try r.cpu.mmap(0, 4 * page, prot: Prot.read | Prot.exec, flags: anonPrivate)
      let big2 = try r.cpu.mmap(0, 4 * page, prot: Prot.write, flags: anonPrivate)
      #expect(big2 == big - 4 * page)
      try r.cpu.storeByte(big2 + page, 0x42)
      let (_, error) = mapUntilFailure(r)
      #expect(error == .noMemory)
      #expect(r.mm.mapCount == 21)
      let before = r.mm.mapsLines()
      expectErrno(.noMemory) { () throws(Errno) in try r.mm.munmap(big + page, page) }
      expectErrno(.noMemory) { () throws(Errno) in try r.mm.munmap(big2 + page, 2 * page) }
      #expect(r.mm.mapsLines() == before)
      #expect(try r.cpu.loadByte(big2 + page) == 0x42)
      // Head and tail trims need no new VMA.
      try r.mm.munmap(big, page)
      try r.mm.munmap(big2 + 3 * page, page)
      #expect(r.mm.mapCount == 21)
      #expect(
        mapsLines(r, in: big2, big + 4 * page) == [
          anonLine(big2, big2 + 3 * page, "-w-p"), anonLine(big + page, big + 4 * page, "r-xp"),
        ])
      // Exactly at the limit (not above it) the middle split is still refused: `>=`.
      let loopTop = big2 - page  // the first one-page VMA of the fill loop
      try r.mm.munmap(loopTop - 3 * page, page)
      #expect(r.mm.mapCount == 20)
      expectErrno(.noMemory) { () throws(Errno) in try r.mm.munmap(big + 2 * page, page) }
      // Below the limit it is allowed.
      try r.mm.munmap(loopTop - 5 * page, page)
      #expect(r.mm.mapCount == 19)
      try r.mm.munmap(big + 2 * page, page)
      #expect(r.mm.mapCount == 20)
    }
  }
}
