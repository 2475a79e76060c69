import Faultline
import FaultlineTestSupport
import Testing

// fork(2)'s memory half: copy-on-write of private memory in both directions, reuse of a page no
// longer shared (asserted through pgcow/pgreuse and the frame count), shared memory staying
// shared, what the child inherits (VMAs, flags, file table, counters) and the anon_vma merge rule.
//
// Ground truth: dup_mmap (mm/mmap.c since 6.16, kernel/fork.c before) copies VMAs one by one,
// skips VM_DONTCOPY (and subtracts it from total_vm), clears VM_LOCKED and locked_vm, and gives a
// VM_WIPEONFORK VMA no anon_vma and no pages; mm/vma.c is_mergeable_anon_vma merges a VMA with
// no anon_vma only into one whose anon_vma_chain is singular, which a child's copied VMA's is
// not. The same was seen on a 6.18 host in a forked child and its parent:
// - after writing a private anonymous VMA and forking, an adjacent MAP_FIXED mapping with the
//   same flags stays a separate VMA in the child (2 maps lines, above or below) but merges in
//   the parent (1 line); in a child whose VMA was never written (no anon_vma) it merges;
//   mprotect-splitting the copied VMA and restoring it merges it back in the child.
// - the child's maps equal the parent's minus the MADV_DONTFORK VMA; VMAs split by mlock stay
//   split in the child (three identical lines: dup_mmap copies VMAs one by one, no merge) while
//   losing `lo`; a MADV_WIPEONFORK VMA keeps `wf` in the child and reads zeros there.
// - VmLck is 0 in the child; VmSize/VmData are the parent's minus the DONTFORK VMA.
// - brk growth in a child whose heap was written before the fork makes a second [heap] VMA
//   (mm/mmap.c do_brk_flags extends the last VMA only if can_vma_merge_after allows it, by the
//   same anon_vma rule); growing again extends that second one.

/// A TmpFS mounted at `/mnt` in the rig, for the file-backed cases.
fileprivate final class ForkFiles {
  let r: Rig
  private(set) var mounted = true

  init(_ r: Rig) {
    self.r = r
    r.machine.mount(TmpFS(memory: r.machine.memory), at: "/mnt")
  }

  /// Creates `/mnt/<name>` with `pages` pages, page i filled with `"A" + i`; returns an
  /// `O_RDWR` fd.
  func create(_ name: String, pages: Int) throws -> Int32 {
    let fd = try r.cpu.open("/mnt/" + name, flags: OpenFlags.readWrite | OpenFlags.create)
    let bytes = (0..<pages * 4096).map { UInt8(ascii: "A") &+ UInt8(truncatingIfNeeded: $0 >> 12) }
    _ = try bytes.withUnsafeBytes { try r.mm.files.pwrite(fd, $0, at: 0) }
    return fd
  }

  /// One byte of the file behind `fd` in `files`, by `pread`.
  func byte(_ files: FileTable, _ fd: Int32, at offset: UInt64) throws -> UInt8 {
    var b: UInt8 = 0
    _ = try withUnsafeMutableBytes(of: &b) { try files.pread(fd, into: $0, at: offset) }
    return b
  }

  func umount() throws(Errno) {
    try r.machine.umount("/mnt")
    mounted = false
  }
}

/// A forked child: its address space and one thread in it.
fileprivate struct Child {
  let mm: AddressSpace
  let cpu: CPU
}

extension Rig {
  /// Forks, runs `body` with the child, then destroys the child and runs the deferred frees.
  fileprivate func withChild(_ body: (Child) throws -> Void) throws {
    let mm = try self.mm.fork()
    defer {
      mm.destroy()
      machine.drainDeferredFrees()
    }
    try body(Child(mm: mm, cpu: try CPU(mm: mm)))
  }
}

/// The frame, refcount and mapcount of the page mapped at `addr` in `mm`.
fileprivate func frameInfo(_ mm: AddressSpace, _ addr: UInt64) -> (pfn: UInt64, ref: Int, map: Int)? {
  let e = mm.pageTable.pte(at: addr)
  guard e.mapsFrame else { return nil }
  let m = mm.machine.memory.meta(e.pfn)
  return (UInt64(e.pfn.raw), Int(m.refcount), Int(m.mapcount))
}

@Suite struct ForkTests {
  // MARK: Copy-on-write of private memory

  @Test func privateAnonWritesAreInvisibleAcrossForkBothWays() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      for i in 0..<UInt64(4) { try r.cpu.fill(a + i * page, value: UInt8(0x10 + i), count: Int(page)) }
      try r.withChild { c throws in
        for i in 0..<UInt64(4) { #expect(try c.cpu.loadByte(a + i * page + 17) == UInt8(0x10 + i)) }
        // Child writes page 0: the parent keeps its value.
        try c.cpu.storeByte(a, 0xC0)
        #expect(try r.cpu.loadByte(a) == 0x10)
        #expect(try c.cpu.loadByte(a) == 0xC0)
        #expect(try c.cpu.loadByte(a + 1) == 0x10)
        // Parent writes page 1: the child keeps its value.
        try r.cpu.storeByte(a + page, 0xB1)
        #expect(try c.cpu.loadByte(a + page) == 0x11)
        #expect(try r.cpu.loadByte(a + page) == 0xB1)
        // Both write the same page afterwards: each sees its own.
        try r.cpu.storeByte(a + 2 * page, 0xB2)
        try c.cpu.storeByte(a + 2 * page, 0xC2)
        #expect(try r.cpu.loadByte(a + 2 * page) == 0xB2)
        #expect(try c.cpu.loadByte(a + 2 * page) == 0xC2)
        #expect(try r.cpu.loadByte(a + 3 * page) == 0x13)
        #expect(try c.cpu.loadByte(a + 3 * page) == 0x13)
      }
      // The child is gone: the parent's data is intact.
      #expect(try r.cpu.loadBytes(a, count: 2) == [0x10, 0x10])
      #expect(try r.cpu.loadByte(a + page) == 0xB1)
      #expect(try r.cpu.loadByte(a + 3 * page) == 0x13)
    }
  }

  @Test func forkWriteProtectsPrivatePagesInBothAddressSpaces() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)
      #expect(r.mm.pageTable.pte(at: a).isWritable)
      try r.withChild { c throws in
        #expect(!r.mm.pageTable.pte(at: a).isWritable)
        #expect(!c.mm.pageTable.pte(at: a).isWritable)
        let p = frameInfo(r.mm, a)
        let q = frameInfo(c.mm, a)
        #expect(p != nil && p?.pfn == q?.pfn)
        #expect(p?.ref == 2 && p?.map == 2)
      }
    }
  }

  @Test func privateFileMappingWithACopiedPageIsCopyOnWriteAcrossFork() throws {
    try withRig { r throws in
      let env = ForkFiles(r)
      defer { if env.mounted { try? env.umount() } }
      let fd = try env.create("data", pages: 2)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.private, fd: fd)
      // Page 0 becomes a private (anonymous) copy; page 1 stays the page-cache page.
      try r.cpu.storeByte(a, 0x70)
      #expect(try r.cpu.loadByte(a + page) == UInt8(ascii: "B"))
      try r.withChild { c throws in
        #expect(try c.cpu.loadByte(a) == 0x70)
        #expect(try c.cpu.loadByte(a + 1) == UInt8(ascii: "A"))
        #expect(try c.cpu.loadByte(a + page) == UInt8(ascii: "B"))
        try c.cpu.storeByte(a, 0xC0)
        #expect(try r.cpu.loadByte(a) == 0x70)
        try r.cpu.storeByte(a + 1, 0xB0)
        #expect(try c.cpu.loadByte(a + 1) == UInt8(ascii: "A"))
        #expect(try c.cpu.loadByte(a) == 0xC0)
        // Page 1: each side's first write copies the file page; the file is untouched.
        try c.cpu.storeByte(a + page, 0xC1)
        #expect(try r.cpu.loadByte(a + page) == UInt8(ascii: "B"))
        try r.cpu.storeByte(a + page, 0xB1)
        #expect(try c.cpu.loadByte(a + page) == 0xC1)
        // The file table was copied: the child reads the file through the same fd.
        #expect(try env.byte(c.mm.files, fd, at: 0) == UInt8(ascii: "A"))
        #expect(try env.byte(c.mm.files, fd, at: page) == UInt8(ascii: "B"))
      }
      #expect(try env.byte(r.mm.files, fd, at: 0) == UInt8(ascii: "A"))
      #expect(try env.byte(r.mm.files, fd, at: page) == UInt8(ascii: "B"))
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test func brkHeapIsCopyOnWriteAcrossFork() throws {
    try withRig { r throws in
      let s = r.mm.currentBrk
      #expect(r.cpu.brk(s + 2 * page) == s + 2 * page)
      try r.cpu.storeByte(s, 0x42)
      try r.cpu.storeByte(s + page, 0x43)
      try r.withChild { c throws in
        #expect(c.mm.currentBrk == s + 2 * page)
        #expect(c.mm.mapsLines() == [heapLine(s, s + 2 * page)])
        #expect(try c.cpu.loadByte(s) == 0x42)
        try c.cpu.storeByte(s, 0xC0)
        try r.cpu.storeByte(s + page, 0xB0)
        #expect(try r.cpu.loadByte(s) == 0x42)
        #expect(try c.cpu.loadByte(s + page) == 0x43)
        // The child's heap is its own: growing it leaves the parent's break alone. As in
        // do_brk_flags, the growth does not merge with the copied heap VMA (its anon_vma chain
        // is shared with the parent) but a second growth extends the new one.
        #expect(c.cpu.brk(s + 3 * page) == s + 3 * page)
        try c.cpu.storeByte(s + 2 * page, 9)
        #expect(r.mm.currentBrk == s + 2 * page)
        #expect(c.mm.mapsLines() == [heapLine(s, s + 2 * page), heapLine(s + 2 * page, s + 3 * page)])
        #expect(c.cpu.brk(s + 4 * page) == s + 4 * page)
        #expect(c.mm.mapsLines() == [heapLine(s, s + 2 * page), heapLine(s + 2 * page, s + 4 * page)])
        #expect(r.mm.mapsLines() == [heapLine(s, s + 2 * page)])
      }
    }
  }

  // MARK: Shared memory stays shared

  @Test func sharedAnonymousMemoryStaysSharedBothWays() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 1)
      try r.withChild { c throws in
        #expect(try c.cpu.loadByte(s) == 1)
        try c.cpu.storeByte(s, 2)
        #expect(try r.cpu.loadByte(s) == 2)
        try r.cpu.storeByte(s + page, 3)  // a page neither had faulted in before the fork
        #expect(try c.cpu.loadByte(s + page) == 3)
        try c.cpu.storeByte(s + page + 1, 4)
        #expect(try r.cpu.loadByte(s + page + 1) == 4)
        #expect(r.mm.pageTable.pte(at: s).pfn == c.mm.pageTable.pte(at: s).pfn)
      }
      #expect(try r.cpu.loadByte(s) == 2)
    }
  }

  @Test func sharedFileMappingStaysSharedBothWays() throws {
    try withRig { r throws in
      let env = ForkFiles(r)
      defer { if env.mounted { try? env.umount() } }
      let fd = try env.create("shared", pages: 2)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeByte(a, 0x61)
      try r.withChild { c throws in
        #expect(try c.cpu.loadByte(a) == 0x61)
        try c.cpu.storeByte(a + 1, 0x62)
        #expect(try r.cpu.loadByte(a + 1) == 0x62)
        try r.cpu.storeByte(a + page, 0x63)
        #expect(try c.cpu.loadByte(a + page) == 0x63)
        #expect(try env.byte(c.mm.files, fd, at: 1) == 0x62)
      }
      #expect(try env.byte(r.mm.files, fd, at: 0) == 0x61)
      #expect(try env.byte(r.mm.files, fd, at: page) == 0x63)
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  // MARK: Reuse of a page no longer shared

  @Test func parentReusesThePageWithoutCopyOnceTheChildExits() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 0x5A, count: Int(2 * page))
      let before = r.machine.memory.framesInUse
      let child = try r.mm.fork()
      #expect(r.machine.memory.framesInUse > before, "the child's page tables")
      child.destroy()
      // The child's references are queued behind a grace period (nobody drains them here):
      // the parent's write must still reuse, as Linux's does once the child has exited.
      #expect(frameInfo(r.mm, a)?.map == 1)
      #expect(!r.mm.pageTable.pte(at: a).isWritable)

      let cow = r.machine.vmstat[.pgcow]
      let reuse = r.machine.vmstat[.pgreuse]
      let pfn = frameInfo(r.mm, a)?.pfn
      try r.cpu.storeByte(a, 0x77)
      #expect(r.machine.vmstat[.pgreuse] == reuse + 1)
      #expect(r.machine.vmstat[.pgcow] == cow)
      #expect(r.machine.memory.framesInUse == before)
      #expect(frameInfo(r.mm, a)?.ref == 1)
      #expect(frameInfo(r.mm, a)?.pfn == pfn)
      #expect(r.mm.pageTable.pte(at: a).isWritable)
      #expect(try r.cpu.loadBytes(a, count: 2) == [0x77, 0x5A])
    }
  }

  @Test func childReusesThePageAfterTheParentCopiedIt() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 0x5A, count: Int(page))
      try r.withChild { c throws in
        let shared = frameInfo(r.mm, a)
        #expect(shared?.ref == 2 && shared?.map == 2)
        // The parent writes first: a copy (one new frame).
        var cow = r.machine.vmstat[.pgcow]
        var reuse = r.machine.vmstat[.pgreuse]
        var frames = r.machine.memory.framesInUse
        try r.cpu.storeByte(a, 0xB0)
        #expect(r.machine.vmstat[.pgcow] == cow + 1)
        #expect(r.machine.vmstat[.pgreuse] == reuse)
        #expect(r.machine.memory.framesInUse == frames + 1)
        #expect(frameInfo(r.mm, a)?.pfn != shared?.pfn)
        // Only the child maps the old page now; the parent's reference to it is still queued
        // behind a grace period (nobody drains it here). The child reuses it, as in Linux.
        #expect(frameInfo(c.mm, a)?.ref == 2 && frameInfo(c.mm, a)?.map == 1)
        cow = r.machine.vmstat[.pgcow]
        reuse = r.machine.vmstat[.pgreuse]
        frames = r.machine.memory.framesInUse
        try c.cpu.storeByte(a, 0xC0)
        #expect(r.machine.vmstat[.pgreuse] == reuse + 1)
        #expect(r.machine.vmstat[.pgcow] == cow)
        #expect(r.machine.memory.framesInUse == frames)
        #expect(frameInfo(c.mm, a)?.pfn == shared?.pfn)
        #expect(frameInfo(c.mm, a)?.ref == 1)
        #expect(try c.cpu.loadBytes(a, count: 2) == [0xC0, 0x5A])
        #expect(try r.cpu.loadBytes(a, count: 2) == [0xB0, 0x5A])
      }
    }
  }

  @Test func aPageSharedByThreeAddressSpacesIsCopiedUntilOnlyOneMapsIt() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)
      try r.withChild { c throws in
        try r.withChild { d throws in
          #expect(frameInfo(r.mm, a)?.ref == 3)
          let cow = r.machine.vmstat[.pgcow]
          try c.cpu.storeByte(a, 2)
          try d.cpu.storeByte(a, 3)  // still mapped by the parent: a copy
          #expect(r.machine.vmstat[.pgcow] == cow + 2)
          let reuse = r.machine.vmstat[.pgreuse]
          try r.cpu.storeByte(a, 4)
          #expect(r.machine.vmstat[.pgreuse] == reuse + 1)
          #expect(r.machine.vmstat[.pgcow] == cow + 2)
          #expect(try [r.cpu.loadByte(a), c.cpu.loadByte(a), d.cpu.loadByte(a)] == [4, 2, 3])
        }
      }
    }
  }

  // MARK: The zero page

  @Test func zeroPageAfterForkReadsZeroAndWritesArePrivate() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)  // gives the VMA an anon_vma, so its page table is copied
      #expect(try r.cpu.loadByte(a + page) == 0)  // maps the zero page
      #expect(r.mm.pageTable.pte(at: a + page).isSpecial)
      try r.withChild { c throws in
        #expect(c.mm.pageTable.pte(at: a + page).isSpecial)
        #expect(try c.mm.mincore(a, 2 * page) == [1, 1])
        #expect(try c.cpu.loadByte(a + page) == 0)
        let frames = r.machine.memory.framesInUse
        try c.cpu.storeByte(a + page, 0xC0)
        #expect(r.machine.memory.framesInUse == frames + 1)
        #expect(try r.cpu.loadByte(a + page) == 0)
        try r.cpu.storeByte(a + page + 1, 0xB0)
        #expect(try c.cpu.loadBytes(a + page, count: 2) == [0xC0, 0])
        #expect(try r.cpu.loadBytes(a + page, count: 2) == [0, 0xB0])
      }
    }
  }

  @Test func readOnlyTouchedVMAIsNotCopiedAndReadsZeroInTheChild() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      #expect(try r.cpu.loadByte(a) == 0)
      try r.withChild { c throws in
        // No anon_vma: Linux's vma_needs_copy skips the page table; the child faults again.
        #expect(c.mm.pageTable.pte(at: a).isNone)
        #expect(try c.cpu.loadByte(a) == 0)
        try c.cpu.storeByte(a, 5)
        #expect(try r.cpu.loadByte(a) == 0)
      }
    }
  }

  // MARK: What the child inherits

  @Test func dontForkVMAIsAbsentInTheChildAndWipeOnForkReadsZeros() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 8 * page, prot: rw, flags: anonPrivate)
      try r.cpu.fill(a, value: 0x11, count: Int(8 * page))
      try r.cpu.madvise(a + 3 * page, page, advice: Advice.dontFork)
      try r.cpu.madvise(a + 5 * page, page, advice: Advice.wipeOnFork)
      let parentLines = r.mm.mapsLines()
      #expect(
        parentLines == [
          anonLine(a, a + 3 * page, "rw-p"),
          anonLine(a + 3 * page, a + 4 * page, "rw-p"),
          anonLine(a + 4 * page, a + 5 * page, "rw-p"),
          anonLine(a + 5 * page, a + 6 * page, "rw-p"),
          anonLine(a + 6 * page, a + 8 * page, "rw-p"),
        ])
      try r.withChild { c throws in
        #expect(c.mm.mapsLines() == parentLines.filter { $0 != anonLine(a + 3 * page, a + 4 * page, "rw-p") })
        #expect(throws: Signal.sigsegv(.mapErr, address: a + 3 * page)) { try c.cpu.loadByte(a + 3 * page) }
        #expect(try c.cpu.loadByte(a + 5 * page) == 0)
        #expect(try c.cpu.loadByte(a + 6 * page - 1) == 0)
        #expect(try c.cpu.loadByte(a + 4 * page) == 0x11)
        #expect(try c.cpu.loadByte(a + 6 * page) == 0x11)
        #expect(try r.cpu.loadByte(a + 5 * page) == 0x11)
        #expect(try r.cpu.loadByte(a + 3 * page) == 0x11)
        // The flags are kept (smaps shows `wf` in the host's child); DONTFORK went with its VMA.
        #expect(c.mm.tree.findW(a + 5 * page)?.flags.contains(.wipeOnFork) == true)
        #expect(c.mm.tree.findW(a + 4 * page)?.flags.contains(.dontCopy) == false)
        #expect(c.mm.mapCount == r.mm.mapCount - 1)
      }
    }
  }

  @Test func wipeOnForkIsWipedAgainInAGrandchild() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      try r.cpu.madvise(a, page, advice: Advice.wipeOnFork)
      try r.cpu.storeByte(a, 9)
      try r.withChild { c throws in
        #expect(try c.cpu.loadByte(a) == 0)
        try c.cpu.storeByte(a, 7)
        let g = try c.mm.fork()
        let gc = try CPU(mm: g)
        #expect(try gc.loadByte(a) == 0)
        g.destroy()
        #expect(try c.cpu.loadByte(a) == 7)
      }
      #expect(try r.cpu.loadByte(a) == 9)
    }
  }

  @Test func mlockIsNotInheritedButItsSplitIs() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withRig(config: config) { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.mlock(a + page, page)
      let locked = r.mm.mapsLines()
      #expect(
        locked == [
          anonLine(a, a + page, "rw-p"), anonLine(a + page, a + 2 * page, "rw-p"),
          anonLine(a + 2 * page, a + 4 * page, "rw-p"),
        ])
      #expect(r.mm.lockedVM == 1)
      try r.withChild { c throws in
        #expect(c.mm.lockedVM == 0)
        #expect(c.mm.mapsLines() == locked)
        #expect(c.mm.mapCount == 3)
        #expect(c.mm.tree.findW(a + page)?.flags.intersection([.locked, .lockOnFault]) == [])
        #expect(r.mm.tree.findW(a + page)?.flags.contains(.locked) == true)
        // Locked memory refuses DONTNEED in the parent only.
        try c.cpu.madvise(a + page, page, advice: Advice.dontNeed)
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.madvise(a + page, page, advice: Advice.dontNeed) }
      }
      #expect(r.mm.lockedVM == 1)
    }
  }

  @Test func childMapsEqualParentMapsAndCountersFollowThem() throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withRig(config: config) { r throws in
      let env = ForkFiles(r)
      defer { if env.mounted { try? env.umount() } }
      let s = r.mm.currentBrk
      _ = r.cpu.brk(s + 2 * page)
      let fd = try env.create("f", pages: 3)
      let file = try r.cpu.mmap(0, 3 * page, prot: Prot.read, flags: MapFlags.shared, fd: fd)
      let text = try r.cpu.mmap(0, 2 * page, prot: Prot.read | Prot.exec, flags: MapFlags.private, fd: fd)
      let shm = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      let data = try r.cpu.mmap(0, 6 * page, prot: rw, flags: anonPrivate)
      let stack = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate | MapFlags.growsDown)
      try r.cpu.fill(data, value: 3, count: Int(6 * page))
      try r.cpu.mlock(data, 2 * page)
      try r.cpu.madvise(data + 4 * page, 2 * page, advice: Advice.dontFork)
      try r.cpu.storeByte(shm, 1)
      _ = try r.cpu.loadByte(file)
      let parent = r.mm.mapsLines()
      #expect(parent.count == 8)
      let dontFork = anonLine(data + 4 * page, data + 6 * page, "rw-p")
      #expect(parent.contains(dontFork))
      #expect(r.mm.totalVM == 2 + 3 + 2 + 2 + 6 + 2)
      #expect(r.mm.dataVM == 2 + 6)
      #expect(r.mm.execVM == 2)
      #expect(r.mm.stackVM == 2)
      #expect(r.mm.lockedVM == 2)
      try r.withChild { c throws in
        #expect(c.mm.mapsLines() == parent.filter { $0 != dontFork })
        #expect(c.mm.mapCount == 7)
        #expect(c.mm.totalVM == r.mm.totalVM - 2)
        #expect(c.mm.dataVM == r.mm.dataVM - 2)
        #expect(c.mm.execVM == 2)
        #expect(c.mm.stackVM == 2)
        #expect(c.mm.lockedVM == 0)
        #expect(c.mm.tree.verify() == c.mm.mapCount)
        #expect(try c.cpu.loadByte(shm) == 1)
        #expect(try c.cpu.loadByte(file + 2 * page) == UInt8(ascii: "C"))
        #expect(try c.cpu.loadByte(text + page) == UInt8(ascii: "B"))
        #expect(try c.cpu.loadByte(stack) == 0)
      }
      try r.cpu.munmap(file, 3 * page)
      try r.cpu.munmap(text, 2 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test func fileTableIsCopiedAndTheChildsMappingKeepsTheMountBusy() throws {
    try withRig { r throws in
      let env = ForkFiles(r)
      defer { if env.mounted { try? env.umount() } }
      let fd = try env.create("g", pages: 2)
      let a = try r.cpu.mmap(0, 2 * page, prot: Prot.read, flags: MapFlags.shared, fd: fd)
      let kept = try r.cpu.open("/mnt/g", flags: OpenFlags.readOnly)
      let child = try r.mm.fork()
      let cc = try CPU(mm: child)
      // The fds the parent had open work in the child, and are its own.
      try r.cpu.close(kept)
      #expect(try env.byte(child.files, kept, at: page) == UInt8(ascii: "B"))
      let b = try cc.mmap(0, page, prot: Prot.read, flags: MapFlags.private, fd: fd, offset: 4096)
      #expect(try cc.loadByte(b) == UInt8(ascii: "B"))
      try cc.munmap(b, page)
      try cc.close(kept)
      try cc.close(fd)
      expectErrno(.badFileDescriptor) { () throws(Errno) in try child.files.getRaw(fd) }
      // The parent drops everything; the child's mapping still holds the file.
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      expectErrno(.resourceBusy) { () throws(Errno) in try env.umount() }
      #expect(try cc.loadByte(a + 1) == UInt8(ascii: "A"))
      child.destroy()
      r.machine.drainDeferredFrees()
      try env.umount()
    }
  }

  // MARK: The anon_vma merge rule

  @Test func childVMAWithCopiedPagesDoesNotMergeWithANewNeighbourButParentDoes() throws {
    try withRig { r throws in
      let fixed = anonPrivate | MapFlags.fixed
      let a: UInt64 = 0x7F00_0000_0000
      _ = try r.cpu.mmap(a, 2 * page, prot: rw, flags: fixed)
      try r.cpu.storeByte(a, 1)
      try r.cpu.storeByte(a + page, 2)
      try r.withChild { c throws in
        _ = try c.cpu.mmap(a + 2 * page, page, prot: rw, flags: fixed)
        #expect(c.mm.mapsLines() == [anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "rw-p")])
        try c.cpu.storeByte(a + 2 * page, 5)
        #expect(c.mm.mapCount == 2)
        _ = try c.cpu.mmap(a - page, page, prot: rw, flags: fixed)
        #expect(
          c.mm.mapsLines() == [
            anonLine(a - page, a, "rw-p"), anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "rw-p"),
          ])
        // Splitting the copied VMA and restoring it merges it back (same anon_vma).
        try c.cpu.mprotect(a, page, prot: Prot.read)
        #expect(c.mm.mapCount == 4)
        try c.cpu.mprotect(a, page, prot: rw)
        #expect(
          c.mm.mapsLines() == [
            anonLine(a - page, a, "rw-p"), anonLine(a, a + 2 * page, "rw-p"), anonLine(a + 2 * page, a + 3 * page, "rw-p"),
          ])
        #expect(try c.cpu.loadBytes(a, count: 1) == [1])
      }
      _ = try r.cpu.mmap(a + 2 * page, page, prot: rw, flags: fixed)
      #expect(r.mm.mapsLines() == [anonLine(a, a + 3 * page, "rw-p")])
    }
  }

  @Test func childVMAWithoutAnonVMAMergesWithANewNeighbour() throws {
    try withRig { r throws in
      let fixed = anonPrivate | MapFlags.fixed
      let a: UInt64 = 0x7F00_0000_0000
      _ = try r.cpu.mmap(a, 2 * page, prot: rw, flags: fixed)
      try r.withChild { c throws in
        _ = try c.cpu.mmap(a + 2 * page, page, prot: rw, flags: fixed)
        #expect(c.mm.mapsLines() == [anonLine(a, a + 3 * page, "rw-p")])
      }
    }
  }

  // MARK: Frames

  @Test func everyFrameComesBackAfterBothAddressSpacesAreDestroyed() throws {
    try withRig { r throws in
      let baseline = r.machine.memory.framesInUse
      let a = try r.cpu.mmap(0, 16 * page, prot: rw, flags: anonPrivate)
      let s = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonShared)
      try r.cpu.fill(a, value: 1, count: Int(16 * page))
      try r.cpu.fill(s, value: 2, count: Int(4 * page))
      r.machine.drainDeferredFrees()
      let beforeFork = r.machine.memory.framesInUse
      let child = try r.mm.fork()
      let cc = try CPU(mm: child)
      for i in stride(from: 0, to: 16, by: 2) { try cc.storeByte(a + UInt64(i) * page, 3) }
      for i in stride(from: 0, to: 16, by: 3) { try r.cpu.storeByte(a + UInt64(i) * page, 4) }
      try cc.storeByte(s, 5)
      _ = try cc.mmap(0, 4 * page, prot: rw, flags: anonPrivate | MapFlags.populate)
      child.destroy()
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse == beforeFork)
      #expect(try r.cpu.loadByte(s) == 5)
      #expect(try r.cpu.loadByte(a + 2 * page) == 1)
      #expect(try r.cpu.loadByte(a + 3 * page) == 4)
      _ = cc
      try r.cpu.munmap(a, 16 * page)
      try r.cpu.munmap(s, 4 * page)
      r.machine.drainDeferredFrees()
      #expect(r.machine.memory.framesInUse <= baseline + 2, "only page tables may stay")
    }
  }
}
