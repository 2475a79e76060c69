import Faultline
import FaultlineTestSupport
import Testing

// Engine rules 6 and 7 of issue 13, with the mincore vectors and maps lines a Linux 6.18 host
// gave: Tests/Probes/fork-anonvma-willneed.c ran there, its output is
// Tests/Probes/fork-anonvma-willneed.txt, and each test below repeats one part of it.
//
// Rule 6, mm/madvise.c madvise_willneed: private anonymous memory only has swapped-out pages read
// back (swapin_walk_ops), and so has shmem (shmem_mapping(file->f_mapping) → shmem_swapin_range):
// shared anonymous memory, memfd and tmpfs files alike. With no swap nothing happens, and a hole
// is never filled: mincore stays 0 for a page never written. Any other file goes through
// vfs_fadvise(POSIX_FADV_WILLNEED) → force_page_cache_readahead (WillNeedTests, on HostFS).
//
// Rule 7, mm/rmap.c anon_vma_fork: a child VMA whose parent VMA has an anon_vma is linked to the
// parent's anon_vmas (anon_vma_clone) and gets one of its own whose parent is the parent VMA's
// (or, in anon_vma_clone, an ancestor's anon_vma that no VMA uses any more): never one another
// child VMA holds. mm/vma.c is_mergeable_anon_vma merges two VMAs with anon_vmas only when they
// are the same one, so child VMAs that came from one split parent VMA stay apart when the child
// restores the protection between them, while the parent's (one anon_vma) merge. A split inside
// one child VMA keeps its anon_vma on both sides and merges back; VMAs never written (no
// anon_vma) merge in the child too.

/// A TmpFS mounted at `/mnt` for the duration of `body`.
fileprivate func withTmpFS(_ body: (Rig) throws -> Void) throws {
  try withRig { r throws in
    r.machine.mount(TmpFS(memory: r.machine.memory), at: "/mnt")
    defer {
      r.mm.destroy()
      r.machine.drainDeferredFrees()
      try? r.machine.umount("/mnt")
    }
    try body(r)
  }
}

@Suite struct LinuxRulesForkMadviseTests {
  // MARK: Rule 6: MADV_WILLNEED on shmem fills no hole

  /// Probe "shared-anon": page 0 written, WILLNEED over all four pages leaves 1 0 0 0.
  @Test func willNeedOnSharedAnonymousMemoryFillsNoHole() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 1)
      #expect(try r.cpu.mincore(s, 4 * page) == [1, 0, 0, 0])
      try r.cpu.madvise(s, 4 * page, advice: Advice.willNeed)
      #expect(try r.cpu.mincore(s, 4 * page) == [1, 0, 0, 0])
      try r.cpu.munmap(s, 4 * page)
    }
  }

  /// Probe "tmpfs" (and "memfd", which is a tmpfs file too): a four-page file with only page 2
  /// written by `pwrite`, mapped shared or private; WILLNEED leaves 0 0 1 0.
  @Test(arguments: [MapFlags.shared, MapFlags.private])
  func willNeedOnATmpFSFileFillsNoHole(type: MapFlags) throws {
    try withTmpFS { r throws in
      let fd = try r.cpu.open("/mnt/f", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(fd, 4 * page)
      let bytes = [UInt8](repeating: UInt8(ascii: "x"), count: Int(page))
      _ = try bytes.withUnsafeBytes { try r.mm.files.pwrite(fd, $0, at: 2 * page) }
      let f = try r.cpu.mmap(0, 4 * page, prot: Prot.read, flags: type, fd: fd)
      #expect(try r.cpu.mincore(f, 4 * page) == [0, 0, 1, 0])
      try r.cpu.madvise(f, 4 * page, advice: Advice.willNeed)
      #expect(try r.cpu.mincore(f, 4 * page) == [0, 0, 1, 0])
      #expect(try r.cpu.loadByte(f + 2 * page) == UInt8(ascii: "x"))
      try r.cpu.munmap(f, 4 * page)
      try r.cpu.close(fd)
    }
  }

  // MARK: Rule 7: fork gives each child VMA its own anon_vma

  /// The probe's fork part: four written pages at `a`, the third made read-only before the fork;
  /// three untouched pages at `u`, the middle one read-only.
  @Test func childVMAsOfOneSplitParentVMADoNotMergeButTheParentsDo() throws {
    try withRig { r throws in
      let fixed = anonPrivate | MapFlags.fixed
      let a: UInt64 = 0x7F00_0000_0000
      let u = a + 16 * page
      _ = try r.cpu.mmap(a, 4 * page, prot: rw, flags: fixed)
      try r.cpu.fill(a, value: 1, count: Int(4 * page))
      try r.cpu.mprotect(a + 2 * page, page, prot: Prot.read)
      _ = try r.cpu.mmap(u, 3 * page, prot: rw, flags: fixed)
      try r.cpu.mprotect(u + page, page, prot: Prot.read)
      let untouchedSplit = [anonLine(u, u + page, "rw-p"), anonLine(u + page, u + 2 * page, "r--p"), anonLine(u + 2 * page, u + 3 * page, "rw-p")]
      #expect(
        r.mm.mapsLines()
          == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "r--p"), anonLine(a + 3 * page, a + 4 * page, "rw-p")]
          + untouchedSplit)

      let child = try r.mm.fork()
      let c = try CPU(mm: child)
      // A split inside one child VMA merges back: both halves keep the child's anon_vma.
      try c.mprotect(a, page, prot: Prot.read)
      #expect(
        child.mapsLines()
          == [
            anonLine(a, a + page, "r--p"), anonLine(a + page, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "r--p"),
            anonLine(a + 3 * page, a + 4 * page, "rw-p"),
          ] + untouchedSplit)
      try c.mprotect(a, page, prot: rw)
      #expect(
        child.mapsLines()
          == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "r--p"), anonLine(a + 3 * page, a + 4 * page, "rw-p")]
          + untouchedSplit)
      // Restoring the parent's splits: the written VMAs stay three, the untouched ones merge.
      try c.mprotect(a + 2 * page, page, prot: rw)
      try c.mprotect(u + page, page, prot: rw)
      #expect(
        child.mapsLines() == [
          anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "rw-p"), anonLine(a + 3 * page, a + 4 * page, "rw-p"),
          anonLine(u, u + 3 * page, "rw-p"),
        ])
      // The copied pages are still the child's to read and write, apart from the parent's.
      #expect(try c.loadByte(a + 2 * page) == 1)
      try c.storeByte(a + 2 * page, 2)
      #expect(try r.cpu.loadByte(a + 2 * page) == 1)
      child.destroy()
      r.machine.drainDeferredFrees()

      try r.cpu.mprotect(a + 2 * page, page, prot: rw)
      try r.cpu.mprotect(u + page, page, prot: rw)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 4 * page, "rw-p"), anonLine(u, u + 3 * page, "rw-p")])
    }
  }
}
