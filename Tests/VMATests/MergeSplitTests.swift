import Faultline
import FaultlineTestSupport
import Testing

// Merge and split of VMAs, checked through exact /proc/self/maps lines.
//
// Ground truth: mm/vma.c (vma_merge_new_range for new mappings, vma_modify and
// vma_merge_existing_range for mprotect and madvise, __split_vma, is_mergeable_vma and
// is_mergeable_anon_vma) and fs/proc/task_mmu.c show_map_vma for the lines. "Probe 20a" labels
// are the case numbers of runs of the same calls on a 6.18 host (program not kept); the MAP_FIXED
// and mprotect cases are also among what `faultline conform` checks against the host.

/// A shared anonymous maps line: real offset, device 00:01, the shmem inode, and the name
/// starting at column 74 (0-based index 73), as `seq_pad` places it.
func shmemLine(_ start: UInt64, _ end: UInt64, _ perms: String, offset: UInt64, inode: UInt64) -> String {
  var line = "\(hex8(start))-\(hex8(end)) \(perms) \(hex8(offset)) 00:01 \(inode) "
  if line.utf8.count < 72 { line += String(repeating: " ", count: 72 - line.utf8.count) }
  return line + " /dev/zero (deleted)"
}

/// Where the tests map (an address the host placed them at; any free address would do).
let mbase: UInt64 = 0x7F2D_37CE_5000
let fixedAnon = anonPrivate | MapFlags.fixed
let fixedShared = anonShared | MapFlags.fixed

extension Rig {
  /// The inode of the shmem object behind the VMA at `addr`.
  func shmemInode(_ addr: UInt64) -> UInt64? { mm.tree.findW(addr)?.shmem?.inode }

  /// Stores one byte in each page of `[addr, addr + pages * 4096)`.
  func touch(_ addr: UInt64, pages: Int, value: UInt8 = 0x5A) throws {
    for i in 0..<UInt64(pages) { try cpu.storeByte(addr + i * page, value) }
  }
}

@Suite struct MergeSplitTests {
  // MARK: Adjacent mappings (probe 20a-c)

  @Test func adjacentUntouchedFixedMappingsWithEqualFlagsMerge() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, page, prot: rw, flags: fixedAnon)
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 2 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  @Test func mappingAboveATouchedMappingMergesWithIt() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, page, prot: rw, flags: fixedAnon)
      try r.touch(mbase, pages: 1)
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 2 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
      try r.touch(mbase + page, pages: 1)
      #expect(r.mm.mapCount == 1)
      #expect(try r.cpu.loadByte(mbase) == 0x5A)
    }
  }

  @Test func mappingBelowATouchedMappingMergesWithIt() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      try r.touch(mbase + page, pages: 1)
      _ = try r.cpu.mmap(mbase, page, prot: rw, flags: fixedAnon)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 2 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  @Test func adjacentMappingsWithDifferentProtectionsStaySeparate() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, page, prot: rw, flags: fixedAnon)
      _ = try r.cpu.mmap(mbase + page, page, prot: Prot.read, flags: fixedAnon)
      _ = try r.cpu.mmap(mbase + 2 * page, page, prot: Prot.none, flags: fixedAnon)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + page, mbase + 2 * page, "r--p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "---p"),
        ])
      #expect(r.mm.mapCount == 3)
    }
  }

  // MARK: munmap of a middle page, and remapping it (probe 20d)

  @Test func munmapOfMiddlePageGivesTwoVMAsAndRemappingItGivesOne() throws {
    try withRig { r in
      for i in 0..<UInt64(3) { _ = try r.cpu.mmap(mbase + i * page, page, prot: rw, flags: fixedAnon) }
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      try r.touch(mbase, pages: 3)

      try r.cpu.munmap(mbase + page, page)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "rw-p"),
        ])
      #expect(r.mm.mapCount == 2)
      #expect(throws: Signal.sigsegv(.mapErr, address: mbase + page)) { try r.cpu.loadByte(mbase + page) }

      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)

      try r.touch(mbase + page, pages: 1, value: 7)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(try r.cpu.loadByte(mbase) == 0x5A)
      #expect(try r.cpu.loadByte(mbase + page) == 7)
      #expect(try r.cpu.loadByte(mbase + 2 * page) == 0x5A)
    }
  }

  // MARK: MAP_FIXED over the middle of a mapping (probe 20e, 20f)

  @Test(arguments: [false, true])
  func fixedMappingOverTheMiddleLeavesOneVMA(touched: Bool) throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: rw, flags: fixedAnon)
      if touched { try r.touch(mbase, pages: 3) }
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
      // The new middle page is fresh; the outer pages keep their data.
      #expect(try r.cpu.loadByte(mbase + page) == 0)
      #expect(try r.cpu.loadByte(mbase) == (touched ? 0x5A : 0))
      #expect(try r.cpu.loadByte(mbase + 2 * page) == (touched ? 0x5A : 0))
    }
  }

  @Test func fixedReadOnlyMappingOverTheMiddleSplitsAndWritableOneMergesBack() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: rw, flags: fixedAnon)
      _ = try r.cpu.mmap(mbase + page, page, prot: Prot.read, flags: fixedAnon)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + page, mbase + 2 * page, "r--p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "rw-p"),
        ])
      #expect(r.mm.mapCount == 3)
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  // MARK: mprotect split and merge (probe 19, 23e)

  @Test(arguments: [false, true])
  func middleMprotectSplitsIntoThreeAndRestoreMerges(touched: Bool) throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: rw, flags: fixedAnon)
      if touched { try r.touch(mbase, pages: 3) }
      try r.cpu.mprotect(mbase + page, page, prot: Prot.read)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + page, mbase + 2 * page, "r--p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "rw-p"),
        ])
      #expect(r.mm.mapCount == 3)
      #expect(throws: Signal.sigsegv(.accErr, address: mbase + page)) { try r.cpu.storeByte(mbase + page, 1) }

      try r.cpu.mprotect(mbase + page, page, prot: rw)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
      #expect(try r.cpu.loadByte(mbase + page) == (touched ? 0x5A : 0))
      try r.cpu.storeByte(mbase + page, 9)
      #expect(try r.cpu.loadByte(mbase + page) == 9)
    }
  }

  @Test func mprotectOfTwoMiddlePagesOfFourSplitsIntoThree() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 4 * page, prot: rw, flags: fixedAnon)
      try r.cpu.mprotect(mbase + page, 2 * page, prot: Prot.read)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + page, mbase + 3 * page, "r--p"),
          anonLine(mbase + 3 * page, mbase + 4 * page, "rw-p"),
        ])
      #expect(r.mm.mapCount == 3)
    }
  }

  @Test func mprotectOfAnEdgePageSplitsInTwoAndRestoreMerges() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: rw, flags: fixedAnon)
      try r.cpu.mprotect(mbase, page, prot: Prot.none)
      try r.cpu.mprotect(mbase + 2 * page, page, prot: Prot.read | Prot.exec)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "---p"),
          anonLine(mbase + page, mbase + 2 * page, "rw-p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "r-xp"),
        ])
      try r.cpu.mprotect(mbase, 3 * page, prot: rw)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  @Test(arguments: [false, true])
  func protNoneMiddleAndBackToWritableMerges(touched: Bool) throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: rw, flags: fixedAnon)
      if touched { try r.touch(mbase, pages: 3) }
      try r.cpu.mprotect(mbase + page, page, prot: Prot.none)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + page, mbase + 2 * page, "---p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "rw-p"),
        ])
      try r.cpu.mprotect(mbase + page, page, prot: rw)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  // MARK: VM_ACCOUNT and merging (Linux >= 6.6, "allow unfaulted VMAs to be unaccounted on
  // mprotect()": an RW->RO mprotect of anonymous memory with no anon_vma drops VM_ACCOUNT)

  /// Linux 6.18: `mmap(3 pages, PROT_READ)`, `mprotect(middle, RW)`, `mprotect(middle, RO)` gives
  /// one VMA again, because the untouched middle loses the VM_ACCOUNT it gained.
  @Test func untouchedReadOnlyMadeWritableThenReadOnlyAgainMergesBack() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: Prot.read, flags: fixedAnon)
      try r.cpu.mprotect(mbase + page, page, prot: rw)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "r--p"),
          anonLine(mbase + page, mbase + 2 * page, "rw-p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "r--p"),
        ])
      try r.cpu.mprotect(mbase + page, page, prot: Prot.read)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "r--p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  /// Linux 6.18: a read-only mapping next to an untouched writable one made read-only merges
  /// with it (VM_ACCOUNT dropped); once the writable one was written (it has an anon_vma), it
  /// keeps VM_ACCOUNT and does not.
  @Test(arguments: [false, true])
  func readOnlyNextToWritableMadeReadOnlyMergesOnlyIfUntouched(touched: Bool) throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, page, prot: Prot.read, flags: fixedAnon)
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      if touched { try r.touch(mbase + page, pages: 1) }
      try r.cpu.mprotect(mbase + page, page, prot: Prot.read)
      if touched {
        #expect(
          r.mm.mapsLines() == [
            anonLine(mbase, mbase + page, "r--p"),
            anonLine(mbase + page, mbase + 2 * page, "r--p"),
          ])
        #expect(r.mm.mapCount == 2)
      } else {
        #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 2 * page, "r--p")])
        #expect(r.mm.mapCount == 1)
      }
    }
  }

  /// Linux 6.18: PROT_NONE from mmap next to untouched RW memory made PROT_NONE merges.
  @Test func protNoneMappingNextToUntouchedWritableMadeProtNoneMerges() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, page, prot: Prot.none, flags: fixedAnon)
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon)
      try r.cpu.mprotect(mbase + page, page, prot: Prot.none)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 2 * page, "---p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  // MARK: Mappings that must not merge (probe 20g, 20h)

  @Test func adjacentSharedAnonymousMappingsDoNotMerge() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, page, prot: rw, flags: fixedShared)
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedShared)
      let i1 = try #require(r.shmemInode(mbase))
      let i2 = try #require(r.shmemInode(mbase + page))
      #expect(i1 != i2)
      #expect(
        r.mm.mapsLines() == [
          shmemLine(mbase, mbase + page, "rw-s", offset: 0, inode: i1),
          shmemLine(mbase + page, mbase + 2 * page, "rw-s", offset: 0, inode: i2),
        ])
      #expect(r.mm.mapCount == 2)
    }
  }

  @Test func privateAndPrivateNoReserveAdjacentDoNotMerge() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, page, prot: rw, flags: fixedAnon)
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedAnon | MapFlags.noReserve)
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + page, mbase + 2 * page, "rw-p"),
        ])
      #expect(r.mm.mapCount == 2)
    }
  }

  // MARK: Shared anonymous splits (probe 23f)

  @Test func splitOfSharedAnonymousShowsRealOffsets() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 4 * page, prot: rw, flags: fixedShared)
      let inode = try #require(r.shmemInode(mbase))
      #expect(r.mm.mapsLines() == [shmemLine(mbase, mbase + 4 * page, "rw-s", offset: 0, inode: inode)])

      try r.cpu.mprotect(mbase + page, page, prot: Prot.read)
      let split = r.mm.mapsLines()
      #expect(
        split == [
          shmemLine(mbase, mbase + page, "rw-s", offset: 0, inode: inode),
          shmemLine(mbase + page, mbase + 2 * page, "r--s", offset: 0x1000, inode: inode),
          shmemLine(mbase + 2 * page, mbase + 4 * page, "rw-s", offset: 0x2000, inode: inode),
        ])
      // The name starts at column 74, as in the kernel's lines.
      for line in split {
        #expect(line.utf8.count >= 73 && Array(line.utf8)[73] == UInt8(ascii: "/"), "\(line)")
      }
      #expect(r.mm.mapCount == 3)

      // Restoring the protection merges the pieces back (same object, contiguous offsets).
      try r.cpu.mprotect(mbase + page, page, prot: rw)
      #expect(r.mm.mapsLines() == [shmemLine(mbase, mbase + 4 * page, "rw-s", offset: 0, inode: inode)])
      #expect(r.mm.mapCount == 1)
    }
  }

  @Test func touchedSharedAnonymousSplitAndRestoreKeepsDataAndMerges() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 4 * page, prot: rw, flags: fixedShared)
      let inode = try #require(r.shmemInode(mbase))
      try r.cpu.storeByte(mbase, 1)
      try r.cpu.storeByte(mbase + page, 2)
      try r.cpu.mprotect(mbase + page, page, prot: Prot.read)
      #expect(try r.cpu.loadByte(mbase + page) == 2)
      try r.cpu.mprotect(mbase + page, page, prot: rw)
      #expect(r.mm.mapsLines() == [shmemLine(mbase, mbase + 4 * page, "rw-s", offset: 0, inode: inode)])
      #expect(try r.cpu.loadByte(mbase) == 1)
      #expect(try r.cpu.loadByte(mbase + page) == 2)
    }
  }

  /// Linux 6.18: unmapping the middle page of a shared anonymous mapping keeps the upper piece's
  /// offset; a new shared mapping in the hole is a new object and merges with neither side.
  @Test func sharedAnonymousHoleRemappedIsANewObject() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 4 * page, prot: rw, flags: fixedShared)
      let inode = try #require(r.shmemInode(mbase))
      try r.cpu.munmap(mbase + page, page)
      #expect(
        r.mm.mapsLines() == [
          shmemLine(mbase, mbase + page, "rw-s", offset: 0, inode: inode),
          shmemLine(mbase + 2 * page, mbase + 4 * page, "rw-s", offset: 0x2000, inode: inode),
        ])
      _ = try r.cpu.mmap(mbase + page, page, prot: rw, flags: fixedShared)
      let fresh = try #require(r.shmemInode(mbase + page))
      #expect(fresh != inode)
      #expect(
        r.mm.mapsLines() == [
          shmemLine(mbase, mbase + page, "rw-s", offset: 0, inode: inode),
          shmemLine(mbase + page, mbase + 2 * page, "rw-s", offset: 0, inode: fresh),
          shmemLine(mbase + 2 * page, mbase + 4 * page, "rw-s", offset: 0x2000, inode: inode),
        ])
      #expect(r.mm.mapCount == 3)
    }
  }

  // MARK: madvise access-pattern flags

  @Test(arguments: [false, true])
  func madviseRandomOnMiddlePageSplitsAndNormalMergesBack(touched: Bool) throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: rw, flags: fixedAnon)
      if touched { try r.touch(mbase, pages: 3) }
      try r.cpu.madvise(mbase + page, page, advice: Advice.random)
      // VM_RAND_READ does not show in the permissions, so the three lines look alike.
      #expect(
        r.mm.mapsLines() == [
          anonLine(mbase, mbase + page, "rw-p"),
          anonLine(mbase + page, mbase + 2 * page, "rw-p"),
          anonLine(mbase + 2 * page, mbase + 3 * page, "rw-p"),
        ])
      #expect(r.mm.mapCount == 3)
      try r.cpu.madvise(mbase + page, page, advice: Advice.normal)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
    }
  }

  @Test func madviseSequentialOverWholeRangeDoesNotSplit() throws {
    try withRig { r in
      _ = try r.cpu.mmap(mbase, 3 * page, prot: rw, flags: fixedAnon)
      try r.cpu.madvise(mbase, 3 * page, advice: Advice.sequential)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 3 * page, "rw-p")])
      // A new neighbour without the hint does not merge with it.
      _ = try r.cpu.mmap(mbase + 3 * page, page, prot: rw, flags: fixedAnon)
      #expect(r.mm.mapCount == 2)
      try r.cpu.madvise(mbase, 3 * page, advice: Advice.normal)
      #expect(r.mm.mapsLines() == [anonLine(mbase, mbase + 4 * page, "rw-p")])
      #expect(r.mm.mapCount == 1)
    }
  }
}
