import Faultline
import FaultlineTestSupport
import Testing

/// mremap as mm/mremap.c decides it (check_mremap_params, mremap_to, the in-place expand and
/// shrink, move_vma): every expectation below (results, errnos, maps lines) was also seen on a
/// 6.18 host running the same calls; `faultline conform` checks mremap against the host kernel.
@Suite struct MremapTests {
  static let w: UInt64 = 0x1_0000_0000
  let mayMove = MremapFlags.mayMove
  let fixed = MremapFlags.fixed
  let dontUnmap = MremapFlags.dontUnmap

  /// `start-end perms offset` of the VMAs inside the 16 MiB window at `w`.
  func window(_ mm: AddressSpace) -> [String] {
    mm.mapsLines().compactMap { line in
      let f = line.split(separator: " ")
      let r = f[0].split(separator: "-")
      guard let s = UInt64(r[0], radix: 16), s >= Self.w, s < Self.w + 0x100_0000 else { return nil }
      return "\(f[0]) \(f[1]) \(f[2])"
    }
  }

  func at(_ p: UInt64) -> UInt64 { Self.w + p * page }
  @discardableResult
  func map(_ r: Rig, _ p: UInt64, _ n: UInt64, prot: Prot = rw, flags: MapFlags = anonPrivate) throws -> UInt64 {
    try r.cpu.mmap(at(p), n * page, prot: prot, flags: flags | MapFlags.fixed)
  }

  @Test func checksComeInLinuxsOrder() throws {
    try withRig { r in
      let w = Self.w
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w + 1, page, page, flags: 8) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w + 1, page, page, flags: fixed, newAddress: w) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w + 1, page, 2 * page, flags: 0) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w, page, 0, flags: 0) }
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(w, page, 2 * page, flags: 0) }
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(w, page, page, flags: 0) }
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(w, page, page / 2, flags: 0) }
      // FIXED or DONTUNMAP need MAYMOVE; DONTUNMAP cannot resize; ranges may not overlap.
      try map(r, 0, 2)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w, 2 * page, 2 * page, flags: fixed, newAddress: at(8)) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w, 2 * page, 2 * page, flags: dontUnmap) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w, 2 * page, 3 * page, flags: mayMove | dontUnmap) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w, 2 * page, 2 * page, flags: mayMove | fixed, newAddress: at(1)) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(w, 2 * page, 2 * page, flags: mayMove | fixed, newAddress: at(2) + 1) }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mremap(w, 2 * page, 2 * page, flags: mayMove | fixed, newAddress: 0x7FFF_FFFF_F000)
      }
    }
  }

  @Test func shrinkUnmapsTheTailAcrossVMAsAndHoles() throws {
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 3, 2, prot: Prot.read)
      #expect(try r.cpu.mremap(at(0), 5 * page, page, flags: 0) == at(0))
      #expect(window(r.mm) == ["100000000-100001000 rw-p 00000000"])
      // Equal sizes: nothing happens, even across the end of the VMA.
      #expect(try r.cpu.mremap(at(0), 5 * page, 5 * page, flags: 0) == at(0))
      // old_size 0 of a private mapping.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(at(0), 0, page, flags: mayMove) }
    }
  }

  @Test func growInPlaceAndItsFailures() throws {
    try withRig { r in
      try map(r, 0, 2)
      try r.cpu.storeByte(at(0), 1)
      try map(r, 4, 2)
      try r.cpu.storeByte(at(4), 1)
      #expect(try r.cpu.mremap(at(0), 2 * page, 4 * page, flags: 0) == at(0))
      // Both have their own anon_vma: no merge.
      #expect(window(r.mm) == ["100000000-100004000 rw-p 100000000", "100004000-100006000 rw-p 100004000"].map(anonOffset))
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mremap(at(0), 4 * page, 5 * page, flags: 0) }
      // Crossing the end of the VMA while growing.
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(at(0), 5 * page, 6 * page, flags: 0) }
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(at(1), 4 * page, 5 * page, flags: mayMove) }
      #expect(try r.cpu.loadByte(at(0)) == 1)
    }
  }

  /// Linux prints a private anonymous VMA's offset as 0 in maps? It prints `vm_pgoff << 12`
  /// only for file mappings; anonymous lines show 00000000.
  func anonOffset(_ s: String) -> String {
    let f = s.split(separator: " ")
    return "\(f[0]) \(f[1]) 00000000"
  }

  @Test func growInPlaceMergesWithTheNextVMAWhenNeitherHasPages() throws {
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 3, 2)
      #expect(try r.cpu.mremap(at(0), 2 * page, 3 * page, flags: 0) == at(0))
      #expect(window(r.mm) == ["100000000-100005000 rw-p 00000000"])
    }
    try withRig { r in
      try map(r, 0, 2)
      try r.cpu.storeByte(at(0), 1)
      try map(r, 3, 2)
      try r.cpu.storeByte(at(3), 1)
      #expect(try r.cpu.mremap(at(0), 2 * page, 3 * page, flags: 0) == at(0))
      #expect(window(r.mm) == ["100000000-100003000 rw-p 00000000", "100003000-100005000 rw-p 00000000"])
    }
  }

  @Test func mayMoveMovesThePagesWithoutCopying() throws {
    try withRig { r in
      try map(r, 0, 2)
      try r.cpu.storeByte(at(0), 5)
      try r.cpu.storeByte(at(1), 6)
      try map(r, 2, 1, prot: Prot.read)
      let frame = r.mm.pageTable.pte(at: at(0)).pfn
      let inUse = r.machine.memory.framesInUse
      let (cow, alloc) = (r.machine.vmstat[.pgcow], r.machine.vmstat[.pgallocNormal])
      let moved = try r.cpu.mremap(at(0), 2 * page, 4 * page, flags: mayMove)
      #expect(moved != at(0))
      #expect(r.mm.pageTable.pte(at: moved).pfn == frame)
      #expect(r.mm.pageTable.pte(at: at(0)).isNone)
      #expect(try r.cpu.loadByte(moved) == 5)
      #expect(try r.cpu.loadByte(moved + page) == 6)
      #expect(r.machine.vmstat[.pgcow] == cow)
      #expect(r.machine.vmstat[.pgallocNormal] == alloc)
      // No data frame was added: at most the three page-table levels of the new place.
      #expect(r.machine.memory.framesInUse <= inUse + 3)
      #expect(window(r.mm) == ["100002000-100003000 r--p 00000000"])
      #expect(throws: Signal.self) { try r.cpu.loadByte(at(0)) }
      // The grown part is fresh memory.
      #expect(try r.cpu.loadByte(moved + 3 * page) == 0)
    }
  }

  @Test func fixedMovesOverTheDestination() throws {
    try withRig { r in
      try map(r, 0, 2)
      try r.cpu.storeByte(at(0), 5)
      try map(r, 8, 4, prot: Prot.read)
      #expect(try r.cpu.mremap(at(0), 2 * page, 3 * page, flags: mayMove | fixed, newAddress: at(9)) == at(9))
      #expect(window(r.mm) == ["100008000-100009000 r--p 00000000", "100009000-10000c000 rw-p 00000000"])
      #expect(try r.cpu.loadByte(at(9)) == 5)
    }
  }

  @Test func fixedWithEqualSizesMovesSeveralVMAsKeepingGaps() throws {
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 2, 2, prot: Prot.read)
      try r.cpu.storeByte(at(0), 3)
      #expect(try r.cpu.mremap(at(0), 4 * page, 4 * page, flags: mayMove | fixed, newAddress: at(16)) == at(16))
      #expect(window(r.mm) == ["100010000-100012000 rw-p 00000000", "100012000-100014000 r--p 00000000"])
      #expect(try r.cpu.loadByte(at(16)) == 3)
    }
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 3, 2, prot: Prot.read)
      #expect(try r.cpu.mremap(at(0), 5 * page, 5 * page, flags: mayMove | fixed, newAddress: at(16)) == at(16))
      #expect(window(r.mm) == ["100010000-100012000 rw-p 00000000", "100013000-100015000 r--p 00000000"])
    }
    // Growing across VMAs is EFAULT, and nothing changes (6.18 checks before unmapping).
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 2, 2, prot: Prot.read)
      try map(r, 16, 8, prot: Prot.read)
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(at(0), 4 * page, 6 * page, flags: mayMove | fixed, newAddress: at(16)) }
      #expect(
        window(r.mm) == [
          "100000000-100002000 rw-p 00000000", "100002000-100004000 r--p 00000000", "100010000-100018000 r--p 00000000",
        ])
    }
    // A hole at the start of a pure move.
    try withRig { r in
      try map(r, 1, 2)
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(at(0), 3 * page, 3 * page, flags: mayMove | fixed, newAddress: at(16)) }
      #expect(window(r.mm) == ["100001000-100003000 rw-p 00000000"])
    }
    // Shrinking with FIXED: the tail goes, the rest moves; too long for the first VMA: EFAULT.
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 2, 2, prot: Prot.read)
      #expect(try r.cpu.mremap(at(0), 4 * page, 2 * page, flags: mayMove | fixed, newAddress: at(16)) == at(16))
      #expect(window(r.mm) == ["100010000-100012000 rw-p 00000000"])
    }
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 3, 2, prot: Prot.read)
      try map(r, 16, 8, prot: Prot.read)
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.mremap(at(0), 5 * page, 3 * page, flags: mayMove | fixed, newAddress: at(16)) }
      #expect(
        window(r.mm) == [
          "100000000-100002000 rw-p 00000000", "100003000-100005000 r--p 00000000", "100010000-100018000 r--p 00000000",
        ])
    }
  }

  @Test func moveMergesAtTheDestinationOnlyWithoutPages() throws {
    try withRig { r in
      try map(r, 0, 2)
      try map(r, 14, 2)
      _ = try r.cpu.mremap(at(0), 2 * page, 2 * page, flags: mayMove | fixed, newAddress: at(16))
      #expect(window(r.mm) == ["10000e000-100012000 rw-p 00000000"])
    }
    try withRig { r in
      try map(r, 0, 2)
      try r.cpu.storeByte(at(0), 1)
      try map(r, 14, 2)
      _ = try r.cpu.mremap(at(0), 2 * page, 2 * page, flags: mayMove | fixed, newAddress: at(16))
      #expect(window(r.mm) == ["10000e000-100010000 rw-p 00000000", "100010000-100012000 rw-p 00000000"])
      #expect(try r.cpu.loadByte(at(16)) == 1)
    }
  }

  @Test func dontUnmapLeavesTheSourceMappedAndEmpty() throws {
    try withRig { r in
      try map(r, 0, 2)
      try r.cpu.storeByte(at(0), 7)
      #expect(try r.cpu.mremap(at(0), 2 * page, 2 * page, flags: mayMove | dontUnmap | fixed, newAddress: at(8)) == at(8))
      #expect(window(r.mm) == ["100000000-100002000 rw-p 00000000", "100008000-10000a000 rw-p 00000000"])
      #expect(try r.cpu.loadByte(at(0)) == 0)
      #expect(try r.cpu.loadByte(at(8)) == 7)
    }
    try withRig { r in
      try map(r, 0, 2, flags: anonShared)
      try r.cpu.storeByte(at(0), 7)
      #expect(try r.cpu.mremap(at(0), 2 * page, 2 * page, flags: mayMove | dontUnmap | fixed, newAddress: at(8)) == at(8))
      #expect(try r.cpu.loadByte(at(0)) == 7)
      #expect(try r.cpu.loadByte(at(8)) == 7)
      try r.cpu.storeByte(at(9), 2)
      #expect(try r.cpu.loadByte(at(1)) == 2)
    }
    // Without FIXED, the new address is a hint.
    try withRig { r in
      try map(r, 0, 2)
      #expect(try r.cpu.mremap(at(0), 2 * page, 2 * page, flags: mayMove | dontUnmap, newAddress: at(12)) == at(12))
    }
  }

  @Test func oldSizeZeroDuplicatesASharedMapping() throws {
    try withRig { r in
      try map(r, 0, 2, flags: anonShared)
      try r.cpu.storeByte(at(0), 9)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mremap(at(0), 0, page, flags: 0) }
      #expect(try r.cpu.mremap(at(0), 0, page, flags: mayMove | fixed, newAddress: at(8)) == at(8))
      try r.cpu.storeByte(at(8), 4)
      #expect(try r.cpu.loadByte(at(0)) == 4)
      #expect(try r.cpu.mremap(at(1), 0, 2 * page, flags: mayMove | fixed, newAddress: at(10)) == at(10))
      #expect(
        window(r.mm) == [
          "100000000-100002000 rw-s 00000000", "100008000-100009000 rw-s 00000000", "10000a000-10000c000 rw-s 00001000",
        ])
    }
  }

  @Test func movingPartOfAVMASplitsIt() throws {
    try withRig { r in
      try map(r, 0, 4)
      try r.cpu.storeByte(at(1), 2)
      #expect(try r.cpu.mremap(at(1), page, 2 * page, flags: mayMove | fixed, newAddress: at(8)) == at(8))
      #expect(
        window(r.mm) == [
          "100000000-100001000 rw-p 00000000", "100002000-100004000 rw-p 00000000", "100008000-10000a000 rw-p 00000000",
        ])
      #expect(try r.cpu.loadByte(at(8)) == 2)
    }
  }

  @Test func lockedGrowthIsChargedAndPopulated() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withRig(config: config) { r in
      try map(r, 0, 2, flags: anonPrivate | MapFlags.locked)
      #expect(r.mm.lockedVM == 2)
      #expect(try r.cpu.mremap(at(0), 2 * page, 4 * page, flags: 0) == at(0))
      #expect(r.mm.lockedVM == 4)
      #expect(try r.mm.mincore(at(0), 4 * page) == [1, 1, 1, 1])
      // DONTUNMAP charges the new range and leaves the source charged, as 6.18 does.
      _ = try r.cpu.mremap(at(0), 4 * page, 4 * page, flags: mayMove | fixed | dontUnmap, newAddress: at(16))
      #expect(r.mm.lockedVM == 8)
    }
    var limited = AddressSpaceConfig(profile: .reference)
    limited.rlimitMemlock = 3 * page
    try withRig(config: limited) { r in
      try map(r, 0, 2, flags: anonPrivate | MapFlags.locked)
      expectErrno(.resourceTemporarilyUnavailable) { () throws(Errno) in try r.cpu.mremap(at(0), 2 * page, 4 * page, flags: 0) }
    }
  }

  @Test func limitsGiveENOMEM() throws {
    // RLIMIT_AS: growing past it fails, in place or moving.
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitAS = 6 * page
    try withRig(config: config) { r in
      try map(r, 0, 4)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mremap(at(0), 4 * page, 8 * page, flags: 0) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mremap(at(0), 4 * page, 8 * page, flags: mayMove) }
      #expect(try r.cpu.mremap(at(0), 4 * page, 6 * page, flags: 0) == at(0))
      // DONTUNMAP doubles the mapped size: over the limit, after the destination was unmapped.
      try map(r, 0, 2)
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mremap(at(0), 2 * page, 2 * page, flags: mayMove | fixed | dontUnmap, newAddress: at(16))
      }
    }
    // max_map_count: a move needs room for the splits (map_count + 2 < max - 3 for a new
    // address, map_count < max - 3 in move_vma).
    var few = AddressSpaceConfig(profile: .reference)
    few.maxMapCount = 10
    try withRig(config: few) { r in
      for i in 0..<UInt64(5) { try map(r, 2 * i, 1, prot: i % 2 == 0 ? rw : Prot.read) }
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mremap(at(0), page, page, flags: mayMove | fixed, newAddress: at(32))
      }
      #expect(try r.cpu.mremap(at(0), page, 3 * page, flags: mayMove) != at(0))
      try map(r, 40, 1)
      try map(r, 42, 1)
      #expect(r.mm.mapCount == 7)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mremap(at(2), page, 3 * page, flags: mayMove) }
    }
  }

  /// A 2 MiB-aligned move of whole PMDs moves the PTE tables themselves (move_normal_pmd); an
  /// unaligned move copies entries into new tables. Either way no page is copied.
  @Test func alignedMovesTakeWholePageTables() throws {
    try withRig(memoryBytes: 64 << 20) { r in
      let src: UInt64 = 0x2_0000_0000
      let dst: UInt64 = 0x3_0000_0000
      let len: UInt64 = 4 << 20
      _ = try r.cpu.mmap(src, len, prot: rw, flags: anonPrivate | MapFlags.fixed)
      for p in stride(from: 0, to: len, by: Int(page)) { try r.cpu.storeByte(src + UInt64(p), UInt8(truncatingIfNeeded: p >> 12)) }
      let tables = [src, src + PageTable.pmdSize].map { r.mm.pageTable.lookupPMD($0)!.pointee.load(ordering: .relaxed) }
      let alloc = r.machine.vmstat[.pgallocNormal]
      #expect(try r.cpu.mremap(src, len, len, flags: mayMove | fixed, newAddress: dst) == dst)
      let moved = [dst, dst + PageTable.pmdSize].map { r.mm.pageTable.lookupPMD($0)!.pointee.load(ordering: .relaxed) }
      #expect(moved == tables)
      #expect(r.mm.pageTable.lookupPMD(src).map { $0.pointee.load(ordering: .relaxed) } ?? 0 == 0)
      for p in stride(from: 0, to: len, by: Int(page)) {
        #expect(try r.cpu.loadByte(dst + UInt64(p)) == UInt8(truncatingIfNeeded: p >> 12))
      }
      // Unaligned by one page: entries move into fresh tables.
      let dst2 = dst + len + page
      #expect(try r.cpu.mremap(dst, len, len, flags: mayMove | fixed, newAddress: dst2) == dst2)
      let after = r.mm.pageTable.lookupPMD(dst2 + PageTable.pmdSize)!.pointee.load(ordering: .relaxed)
      #expect(!tables.contains(after))
      #expect(try r.cpu.loadByte(dst2 + len - page) == UInt8(truncatingIfNeeded: (len - page) >> 12))
      #expect(r.machine.vmstat[.pgallocNormal] == alloc)
    }
  }

  /// The partial-state row: a FIXED move unmaps its destination before a later check fails, and
  /// the destination stays unmapped (host: RLIMIT_AS set to the current size, DONTUNMAP of two
  /// pages onto a one-page mapping → ENOMEM, the one-page mapping gone).
  @Test func aFailedFixedMoveHasAlreadyUnmappedItsDestination() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.rlimitAS = 3 * page
    try withRig(config: config) { r in
      try map(r, 0, 2)
      try map(r, 16, 1, prot: Prot.read)
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.mremap(at(0), 2 * page, 2 * page, flags: mayMove | fixed | dontUnmap, newAddress: at(16))
      }
      #expect(window(r.mm) == ["100000000-100002000 rw-p 00000000"])
    }
  }

  /// Found by the fuzzer (the engine trapped on `addr + old_size`): an old size reaching past
  /// TASK_SIZE fails do_vmi_munmap's checks with EINVAL (host: all four calls below), and an
  /// address at or above TASK_SIZE has no VMA.
  @Test func hugeOldSizesAreEINVAL() throws {
    try withRig { r in
      try map(r, 0, 4)
      for oldSize: UInt64 in [0xFFFF_FFFF_FFFF_F000, 0x8000_0000_0000, 0x7FFF_0000_0000] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(at(0), oldSize, page, flags: 0) }
      }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mremap(at(0), 0xFFFF_FFFF_FFFF_F000, page, flags: mayMove | fixed, newAddress: at(64))
      }
      // Rounds up to 0: a zero-length "duplicate" of private memory.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mremap(at(0), 0xFFFF_FFFF_FFFF_F001, page, flags: 0) }
      expectErrno(.badAddress) { () throws(Errno) in
        try r.cpu.mremap(0xFFFF_FFFF_FFFF_F000, page, page, flags: mayMove | fixed, newAddress: at(64))
      }
      #expect(window(r.mm) == ["100000000-100004000 rw-p 00000000"])
    }
  }
}
