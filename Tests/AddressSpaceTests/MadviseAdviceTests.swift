import Faultline
import FaultlineTestSupport
import Testing

// The madvise rows of issue 7 that MadviseErrnoTests does not cover: FREE, WIPEONFORK and REMOVE
// on the mappings that refuse them, REMOVE punching the hole, WILLNEED on files,
// POPULATE_READ/WRITE, and "applied to the mapped parts, then ENOMEM" for the flag-changing
// advice.
//
// Ground truth: mm/madvise.c: madvise_walk_vmas (applied to the mapped parts, then ENOMEM),
// madvise_dontneed_free_valid_vma, madvise_remove (needs vm_file and a shared writable mapping),
// madvise_populate (through faultin_page_range, mm/gup.c), madvise_vma_behavior and
// madvise_update_vma (the flag-changing advice). "Probe d1" labels are the case numbers of a run
// of the same calls on a 6.18 host (its program is not kept). Where errno.md and Linux differ:
// - REMOVE on a private *anonymous* mapping is EINVAL (no vm_file), not the EACCES of the "not
//   shared-writable" row; EACCES is for private or read-only-fd *file* mappings (d3, d7, d12).
//   A shared anonymous mapping with PROT_READ is still shared-maywrite, so REMOVE succeeds (d11).
// - POPULATE_* on a VMA without VM_READ (PROT_WRITE-only, PROT_EXEC-only) for READ or without
//   VM_WRITE for WRITE is EINVAL (as the row says); an access that would SIGBUS (past EOF) is
//   EFAULT, with the pages before it populated (p11, e3-e5) — errno.md has no row for it.
// - With a hole *and* a VMA that refuses the advice, the refusal wins (EINVAL, not ENOMEM), and
//   VMAs after the refusing one are left alone (h6, h7).

/// A TmpFS mounted at `/mnt` for the file cases; `body` must unmap and close what it opens.
fileprivate func withTmpFS(_ body: (Rig) throws -> Void) throws {
  try withRig { r throws in
    r.machine.mount(TmpFS(memory: r.machine.memory), at: "/mnt")
    var mounted = true
    defer {
      // A failed body may leave mappings and fds behind: tear the address space down first so
      // that the file system (and its page cache) can go, and only the failure is reported.
      if mounted {
        r.mm.destroy()
        r.machine.drainDeferredFrees()
        try? r.machine.umount("/mnt")
      }
    }
    try body(r)
    try r.machine.umount("/mnt")
    mounted = false
  }
}

extension Rig {
  /// Creates `/mnt/<name>` holding `pages` pages, page i filled with `"A" + i`.
  fileprivate func createFile(_ name: String, pages: Int) throws -> Int32 {
    let fd = try cpu.open("/mnt/" + name, flags: OpenFlags.readWrite | OpenFlags.create)
    let bytes = (0..<pages * 4096).map { UInt8(ascii: "A") &+ UInt8(truncatingIfNeeded: $0 >> 12) }
    _ = try bytes.withUnsafeBytes { try mm.files.pwrite(fd, $0, at: 0) }
    return fd
  }

  fileprivate func fileByte(_ fd: Int32, at offset: UInt64) throws -> UInt8 {
    var b: UInt8 = 0
    _ = try withUnsafeMutableBytes(of: &b) { try mm.files.pread(fd, into: $0, at: offset) }
    return b
  }

  fileprivate func vmaFlags(_ addr: UInt64) -> VMFlags? { mm.tree.findW(addr)?.flags }
}

@Suite struct MadviseAdviceTests {
  // MARK: FREE and WIPEONFORK need private anonymous memory

  /// Probe d1, d2, d3c, d4, d5: FREE and WIPEONFORK on a private or shared file mapping are
  /// EINVAL; KEEPONFORK is accepted.
  @Test(arguments: [MapFlags.private, MapFlags.shared])
  func freeAndWipeOnForkOnAFileMappingAreEINVAL(type: MapFlags) throws {
    try withTmpFS { r throws in
      let fd = try r.createFile("f", pages: 2)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: type, fd: fd)
      try r.cpu.storeByte(a, 0x61)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 2 * page, advice: Advice.free) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 2 * page, advice: Advice.wipeOnFork) }
      try r.cpu.madvise(a, 2 * page, advice: Advice.keepOnFork)
      #expect(r.vmaFlags(a)?.contains(.wipeOnFork) == false)
      #expect(try r.cpu.loadByte(a) == 0x61)
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
    }
  }

  /// Probe d8, d9: the same on shared anonymous memory.
  @Test func freeAndWipeOnForkOnSharedAnonAreEINVAL() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 5)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(s, 2 * page, advice: Advice.free) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(s, 2 * page, advice: Advice.wipeOnFork) }
      #expect(try r.cpu.loadByte(s) == 5)
      #expect(r.vmaFlags(s)?.contains(.wipeOnFork) == false)
    }
  }

  // MARK: REMOVE

  /// Probe d10 and rm2.c: REMOVE on shared anonymous memory punches the hole: the data is gone
  /// for every mapping of the object (a forked child that had the page mapped reads 0 on the
  /// host too: shmem_fallocate runs unmap_mapping_range); the page after the range keeps its data.
  @Test func removeOnSharedAnonPunchesTheHole() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 5)
      try r.cpu.storeByte(s + page, 6)
      let child = try r.mm.fork()
      let cc = try CPU(mm: child)
      #expect(try cc.loadByte(s) == 5)
      try r.cpu.madvise(s, page, advice: Advice.remove)
      #expect(r.mm.pageTable.pte(at: s).isNone)
      #expect(try r.cpu.loadByte(s) == 0)
      #expect(try r.cpu.loadByte(s + page) == 6)
      #expect(try cc.loadByte(s) == 0)
      child.destroy()
      r.machine.drainDeferredFrees()
    }
  }

  /// Probe d11: a PROT_READ shared anonymous mapping is still VM_MAYWRITE, so REMOVE is 0.
  @Test func removeOnReadOnlySharedAnonSucceeds() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonShared)
      try r.cpu.madvise(s, page, advice: Advice.remove)
    }
  }

  /// Probe d12, d14: REMOVE on private anonymous memory, or on locked memory, is EINVAL.
  @Test func removeOnPrivateAnonOrLockedIsEINVAL() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withRig(config: config) { r throws in
      let p = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(p, 1)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(p, page, advice: Advice.remove) }
      #expect(try r.cpu.loadByte(p) == 1)
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 2)
      try r.cpu.mlock(s, 2 * page)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(s, page, advice: Advice.remove) }
      #expect(try r.cpu.loadByte(s) == 2)
    }
  }

  /// Probe d3, d6, d7: on files, REMOVE needs a shared writable mapping (EACCES for a private
  /// one or a read-only fd) and then punches the hole in the file.
  @Test func removeOnFileMappings() throws {
    try withTmpFS { r throws in
      let fd = try r.createFile("f", pages: 2)
      let p = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.private, fd: fd)
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.madvise(p, page, advice: Advice.remove) }
      try r.cpu.munmap(p, 2 * page)
      let ro = try r.cpu.open("/mnt/f", flags: OpenFlags.readOnly)
      let q = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: MapFlags.shared, fd: ro)
      expectErrno(.permissionDenied) { () throws(Errno) in try r.cpu.madvise(q, page, advice: Advice.remove) }
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      #expect(try r.cpu.loadByte(s) == UInt8(ascii: "A"))
      try r.cpu.madvise(s, page, advice: Advice.remove)
      #expect(try r.fileByte(fd, at: 0) == 0)
      #expect(try r.fileByte(fd, at: page) == UInt8(ascii: "B"))
      #expect(try r.cpu.loadByte(s) == 0)
      #expect(try r.cpu.loadByte(q) == 0)
      try r.cpu.munmap(q, 2 * page)
      try r.cpu.munmap(s, 2 * page)
      try r.cpu.close(ro)
      try r.cpu.close(fd)
    }
  }

  /// Probe h8: REMOVE over [shared, hole, shared] punches both sides, then ENOMEM.
  @Test func removeOverAHolePunchesBothSidesThenENOMEM() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 1)
      try r.cpu.storeByte(s + 2 * page, 2)
      try r.cpu.munmap(s + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(s, 3 * page, advice: Advice.remove) }
      #expect(try r.cpu.loadByte(s) == 0)
      #expect(try r.cpu.loadByte(s + 2 * page) == 0)
    }
  }

  // MARK: WILLNEED

  /// Probe d3b, d13, h10: WILLNEED is 0 on files and anonymous memory; over a hole ENOMEM.
  @Test func willNeedIsAHint() throws {
    try withTmpFS { r throws in
      let fd = try r.createFile("f", pages: 2)
      let f = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      try r.cpu.madvise(f, 2 * page, advice: Advice.willNeed)
      #expect(try r.cpu.loadByte(f + page) == UInt8(ascii: "B"))
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 3)
      try r.cpu.madvise(a, 3 * page, advice: Advice.willNeed)
      try r.cpu.munmap(a + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.willNeed) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.free) }
      #expect(try r.cpu.loadByte(f) == UInt8(ascii: "A"))
      try r.cpu.munmap(f, 2 * page)
      try r.cpu.close(fd)
    }
  }

  // MARK: POPULATE_READ / POPULATE_WRITE

  /// Probe p1, p2, p6, e2: the range is resident afterwards; READ maps the zero page, WRITE
  /// private pages (a PROT_WRITE-only mapping is writable).
  @Test func populateMakesTheRangeResident() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.madvise(a, 2 * page, advice: Advice.populateRead)
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 1, 0, 0])
      #expect(r.mm.pageTable.pte(at: a).isSpecial)
      try r.cpu.madvise(a + 2 * page, 2 * page, advice: Advice.populateWrite)
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 1, 1, 1])
      #expect(r.mm.pageTable.pte(at: a + 3 * page).isWritable)
      // POPULATE_WRITE over zero-page entries breaks them into private pages.
      try r.cpu.madvise(a, 2 * page, advice: Advice.populateWrite)
      #expect(r.mm.pageTable.pte(at: a).isWritable)
      #expect(!r.mm.pageTable.pte(at: a).isSpecial)

      let ro = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonPrivate)
      try r.cpu.madvise(ro, 2 * page, advice: Advice.populateRead)
      #expect(try r.cpu.mincore(ro, 2 * page) == [1, 1])
      let wo = try r.cpu.mmap(0, 2 * page, prot: Prot.write, flags: anonPrivate)
      try r.cpu.madvise(wo, 2 * page, advice: Advice.populateWrite)
      #expect(try r.cpu.mincore(wo, 2 * page) == [1, 1])
    }
  }

  /// Probe p3, p4, p5: PROT_NONE is EINVAL for both; WRITE on a read-only VMA is EINVAL.
  @Test func populateOnAVMAThatRefusesTheAccessIsEINVAL() throws {
    try withRig { r throws in
      let n = try r.cpu.mmap(0, 2 * page, prot: Prot.none, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(n, 2 * page, advice: Advice.populateRead) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(n, 2 * page, advice: Advice.populateWrite) }
      let ro = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(ro, 2 * page, advice: Advice.populateWrite) }
      #expect(try r.cpu.mincore(ro, 2 * page) == [0, 0])
    }
  }

  /// Probe p7, e1: POPULATE_READ needs VM_READ: a PROT_WRITE-only or PROT_EXEC-only VMA is
  /// EINVAL on the host (gup's check_vma_flags under FOLL_MADV_POPULATE), though x86 lets a
  /// load through such a mapping.
  @Test func populateReadOnAVMAWithoutReadIsEINVAL() throws {
    try withRig { r throws in
      let wo = try r.cpu.mmap(0, 2 * page, prot: Prot.write, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(wo, 2 * page, advice: Advice.populateRead) }
      #expect(try r.cpu.mincore(wo, 2 * page) == [0, 0])
      let xo = try r.cpu.mmap(0, 2 * page, prot: Prot.exec, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(xo, 2 * page, advice: Advice.populateRead) }
    }
  }

  /// Probe p8, p9: a hole is ENOMEM; what precedes it is populated, what follows is not.
  @Test func populateOverAHoleIsENOMEMAfterPopulatingWhatPrecedesIt() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 4 * page, advice: Advice.populateWrite) }
      #expect(try r.cpu.mincore(a, page) == [1])
      #expect(try r.cpu.mincore(a + 2 * page, 2 * page) == [0, 0])
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a + page, 2 * page, advice: Advice.populateRead) }
      #expect(try r.cpu.mincore(a + 2 * page, 2 * page) == [0, 0])
    }
  }

  /// Probe p10: [rw, ro, rw] with POPULATE_WRITE: the first VMA is populated, then EINVAL.
  @Test func populateStopsAtTheFirstRefusingVMA() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mprotect(a + page, page, prot: Prot.read)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.populateWrite) }
      #expect(try r.cpu.mincore(a, 3 * page) == [1, 0, 0])
    }
  }

  /// Probe p12, p13: POPULATE_WRITE on a private mapping of a read-only fd copies the pages
  /// (the file is untouched); on a shared read-only mapping it is EINVAL.
  @Test func populateWriteOnFileMappings() throws {
    try withTmpFS { r throws in
      let fd = try r.createFile("f", pages: 2)
      let ro = try r.cpu.open("/mnt/f", flags: OpenFlags.readOnly)
      let p = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.private, fd: ro)
      try r.cpu.madvise(p, 2 * page, advice: Advice.populateWrite)
      #expect(try r.cpu.mincore(p, 2 * page) == [1, 1])
      #expect(r.mm.pageTable.pte(at: p + page).isWritable)
      try r.cpu.storeByte(p, 0x7A)
      #expect(try r.fileByte(fd, at: 0) == UInt8(ascii: "A"))
      let s = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: MapFlags.shared, fd: ro)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(s, 2 * page, advice: Advice.populateWrite) }
      try r.cpu.munmap(p, 2 * page)
      try r.cpu.munmap(s, 2 * page)
      try r.cpu.close(ro)
      try r.cpu.close(fd)
    }
  }

  /// Probe p11, e3, e4, e5: pages past EOF would SIGBUS: POPULATE is EFAULT, with the pages
  /// inside the file populated first.
  @Test(arguments: [Advice.populateRead, Advice.populateWrite])
  func populatePastEndOfFileIsEFAULT(advice: Advice) throws {
    try withTmpFS { r throws in
      let fd = try r.createFile("f", pages: 2)
      let s = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.madvise(s, 4 * page, advice: advice) }
      #expect(try r.cpu.mincore(s, 4 * page) == [1, 1, 0, 0])
      #expect(!r.mm.pageTable.pte(at: s + page).isNone)
      let p = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.private, fd: fd)
      expectErrno(.badAddress) { () throws(Errno) in try r.cpu.madvise(p + 2 * page, 2 * page, advice: advice) }
      try r.cpu.munmap(s, 4 * page)
      try r.cpu.munmap(p, 4 * page)
      try r.cpu.close(fd)
    }
  }

  // MARK: Applied to the mapped parts, then ENOMEM

  /// Probe h1, h2, h3: DONTFORK over [vma, hole, vma] changes both VMAs, then ENOMEM; so does
  /// DOFORK over [hole, vma]. The child of a fork sees neither DONTFORK VMA.
  @Test func dontForkOverAHoleChangesBothSidesThenENOMEM() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.dontFork) }
      #expect(r.vmaFlags(a)?.contains(.dontCopy) == true)
      #expect(r.vmaFlags(a + 2 * page)?.contains(.dontCopy) == true)
      let child = try r.mm.fork()
      #expect(child.mapsLines() == [])
      child.destroy()

      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a + page, 2 * page, advice: Advice.doFork) }
      #expect(r.vmaFlags(a)?.contains(.dontCopy) == true)
      #expect(r.vmaFlags(a + 2 * page)?.contains(.dontCopy) == false)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a - page, 2 * page, advice: Advice.doFork) }
      #expect(r.vmaFlags(a)?.contains(.dontCopy) == false)
      #expect(r.mm.mapsLines() == [anonLine(a, a + page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "rw-p")])
      r.machine.drainDeferredFrees()
    }
  }

  /// Probe h4: DONTFORK over [vma, hole, first half of a vma] splits the second VMA at the end
  /// of the range.
  @Test func dontForkOverAHoleSplitsTheLastVMAAtTheEnd() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.dontFork) }
      #expect(
        r.mm.mapsLines() == [
          anonLine(a, a + page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p"),
        ])
      #expect(r.vmaFlags(a)?.contains(.dontCopy) == true)
      #expect(r.vmaFlags(a + 2 * page)?.contains(.dontCopy) == true)
      #expect(r.vmaFlags(a + 3 * page)?.contains(.dontCopy) == false)
    }
  }

  /// Probe h5: WIPEONFORK over [vma, hole, vma] sets it on both, then ENOMEM.
  @Test func wipeOnForkOverAHoleChangesBothSidesThenENOMEM() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 4, count: Int(3 * page))
      try r.cpu.munmap(a + page, page)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.wipeOnFork) }
      #expect(r.vmaFlags(a)?.contains(.wipeOnFork) == true)
      #expect(r.vmaFlags(a + 2 * page)?.contains(.wipeOnFork) == true)
      let child = try r.mm.fork()
      let cc = try CPU(mm: child)
      #expect(try cc.loadByte(a) == 0)
      #expect(try cc.loadByte(a + 2 * page) == 0)
      #expect(try r.cpu.loadByte(a + 2 * page) == 4)
      child.destroy()
      r.machine.drainDeferredFrees()
    }
  }

  /// Probe h6, h7: a VMA that refuses WIPEONFORK makes it EINVAL even with a hole in the range;
  /// the VMAs before it were changed, the ones after it were not.
  @Test func wipeOnForkRefusedBySharedVMAIsEINVALAndStopsThere() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonPrivate)
      try r.cpu.munmap(a + page, page)
      _ = try r.cpu.mmap(a + 2 * page, page, prot: rw, flags: anonShared | MapFlags.fixed)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a, 3 * page, advice: Advice.wipeOnFork) }
      #expect(r.vmaFlags(a)?.contains(.wipeOnFork) == true)
      #expect(r.vmaFlags(a + 2 * page)?.contains(.wipeOnFork) == false)

      let s = try r.cpu.mmap(0, 3 * page, prot: rw, flags: anonShared)
      _ = try r.cpu.mmap(s + page, page, prot: rw, flags: anonPrivate | MapFlags.fixed)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(s, 2 * page, advice: Advice.wipeOnFork) }
      #expect(r.vmaFlags(s + page)?.contains(.wipeOnFork) == false)
    }
  }
}

@Suite struct PunchHoleCOWTests {
  /// fallocate(PUNCH_HOLE)/MADV_REMOVE unmaps with even_cows = 0: a MAP_PRIVATE mapping keeps its
  /// private copy of a page in the hole (found by review; the engine zapped it).
  @Test func punchHoleKeepsPrivateCOWPages() throws {
    try withTmpFS { r throws in
      let fd = try r.createFile("f", pages: 2)
      let p = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.private, fd: fd)
      try r.cpu.storeByte(p, UInt8(ascii: "Z"))
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.madvise(s, page, advice: Advice.remove)
      #expect(try r.cpu.loadByte(p) == UInt8(ascii: "Z"))
      #expect(try r.cpu.loadByte(s) == 0)
      try r.cpu.munmap(p, 2 * page)
      try r.cpu.munmap(s, 2 * page)
      try r.cpu.close(fd)
    }
  }
}
