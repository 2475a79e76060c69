import Faultline
import FaultlineTestSupport
import Testing

// mincore(2). Ground truth: mm/mincore.c (sys_mincore, do_mincore, mincore_pte_range,
// mincore_page; "Probe m1" labels are the case numbers of a run on a 6.18 host, program not
// kept): a page counts when a PTE maps it (the zero page and PROT_NONE entries too) or,
// for shared and file mappings, when the backing object holds it; a hole is ENOMEM with the
// vector written up to the hole. TmpFS stands for the host's tmpfs: ext4 reads ahead, so its
// numbers after one read fault are not one page.

@Suite struct MincoreTests {
  /// Probe m1, m1b: an unaligned address is EINVAL, even with len 0.
  @Test func mincoreUnalignedAddressIsEINVAL() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonPrivate)
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mincore(a + 1, page) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mincore(a + 1, 0) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.mincore(0x1000_0001, page) }
    }
  }

  /// Probe m2, m2b: len 0 is 0 with an empty vector, mapped or not.
  @Test func mincoreZeroLengthReturnsAnEmptyVector() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      #expect(try r.cpu.mincore(a, 0) == [])
      #expect(try r.cpu.mincore(0x1000_0000, 0) == [])
    }
  }

  /// Probe m3, m4: untouched is 0, written and read (the zero page) are 1, and a partial last
  /// page counts as a page.
  @Test func mincoreReportsWrittenAndReadPagesAndCountsAPartialLastPage() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      #expect(try r.cpu.mincore(a, 4 * page) == [0, 0, 0, 0])
      try r.cpu.storeByte(a, 1)
      _ = try r.cpu.loadByte(a + page)
      #expect(try r.cpu.mincore(a, 2 * page + 1) == [1, 1, 0])
      #expect(try r.cpu.mincore(a, 1) == [1])
      #expect(try r.cpu.mincore(a + 2 * page, 2 * page - 1) == [0, 0])
    }
  }

  /// Probe m5, m6: PROT_NONE keeps touched pages resident; DONTNEED on private memory drops
  /// them.
  @Test func mincoreSeesProtNonePagesAndNotDontNeedPages() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)
      _ = try r.cpu.loadByte(a + page)
      try r.cpu.mprotect(a, 2 * page, prot: Prot.none)
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 1, 0, 0])
      try r.cpu.mprotect(a, 2 * page, prot: rw)
      try r.cpu.madvise(a, 2 * page, advice: Advice.dontNeed)
      #expect(try r.cpu.mincore(a, 4 * page) == [0, 0, 0, 0])
    }
  }

  /// Probe m8: DONTNEED on shared anonymous memory drops the PTE but the shmem object keeps the
  /// page, so it still counts; a page never touched does not.
  @Test func mincoreCountsShmemPagesAfterDontNeed() throws {
    try withRig { r throws in
      let s = try r.cpu.mmap(0, 2 * page, prot: rw, flags: anonShared)
      try r.cpu.storeByte(s, 1)
      try r.cpu.madvise(s, 2 * page, advice: Advice.dontNeed)
      #expect(r.mm.pageTable.pte(at: s).isNone)
      #expect(try r.cpu.mincore(s, 2 * page) == [1, 0])
    }
  }

  /// Probe m9, m10 and mc2 (tmpfs): file pages in the page cache count though no PTE maps them,
  /// past EOF nothing counts, a hole of a truncated file counts once a fault or a write fills it.
  @Test func mincoreCountsFilePagesInThePageCache() throws {
    try withRig { r throws in
      r.machine.mount(TmpFS(memory: r.machine.memory), at: "/mnt")
      let fd = try r.cpu.open("/mnt/f", flags: OpenFlags.readWrite | OpenFlags.create)
      let bytes = [UInt8](repeating: 0x41, count: Int(3 * page))
      _ = try bytes.withUnsafeBytes { try r.mm.files.pwrite(fd, $0, at: 0) }
      let p = try r.cpu.mmap(0, 3 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      #expect(try r.cpu.mincore(p, 3 * page) == [1, 1, 1])
      let s = try r.cpu.mmap(0, 4 * page, prot: Prot.read, flags: MapFlags.shared, fd: fd)
      #expect(try r.cpu.mincore(s, 4 * page) == [1, 1, 1, 0])
      try r.cpu.munmap(p, 3 * page)
      try r.cpu.munmap(s, 4 * page)

      let hfd = try r.cpu.open("/mnt/h", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(hfd, 3 * page)
      let h = try r.cpu.mmap(0, 3 * page, prot: rw, flags: MapFlags.shared, fd: hfd)
      #expect(try r.cpu.mincore(h, 3 * page) == [0, 0, 0])
      _ = try r.cpu.loadByte(h)
      #expect(try r.cpu.mincore(h, 3 * page) == [1, 0, 0])
      try r.cpu.storeByte(h + 2 * page, 1)
      #expect(try r.cpu.mincore(h, 3 * page) == [1, 0, 1])
      try r.cpu.munmap(h, 3 * page)
      let hp = try r.cpu.mmap(0, 3 * page, prot: Prot.read, flags: MapFlags.private, fd: hfd)
      #expect(try r.cpu.mincore(hp, 3 * page) == [1, 0, 1])
      _ = try [UInt8(7)].withUnsafeBytes { try r.mm.files.pwrite(hfd, $0, at: page) }
      #expect(try r.cpu.mincore(hp, 3 * page) == [1, 1, 1])
      try r.cpu.munmap(hp, 3 * page)
      try r.cpu.close(fd)
      try r.cpu.close(hfd)
      try r.machine.umount("/mnt")
    }
  }

  /// Probe m7, m7b: a hole is ENOMEM, with the vector written for the pages before it.
  @Test func mincoreHoleIsENOMEMWithTheVectorFilledUpToIt() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: anonPrivate)
      try r.cpu.storeByte(a, 1)
      try r.cpu.storeByte(a + 3 * page, 1)
      try r.cpu.munmap(a + 2 * page, page)
      var vec: [UInt8] = [0xEE]
      expectErrno(.noMemory) { () throws(Errno) in try r.mm.mincore(a, 4 * page, vec: &vec) }
      #expect(vec == [1, 0])
      vec = [0xEE]
      expectErrno(.noMemory) { () throws(Errno) in try r.mm.mincore(a - page, 2 * page, vec: &vec) }
      #expect(vec == [])
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mincore(0x1000_0000, page) }
      vec = []
      try r.mm.mincore(a + 3 * page, page, vec: &vec)
      #expect(vec == [1])
    }
  }

  /// Probe m7c, m7d: a range past TASK_SIZE, or one whose end wraps, is ENOMEM.
  @Test func mincoreBeyondTaskSizeIsENOMEM() throws {
    try withRig { r throws in
      let a = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate)
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mincore(taskSize, page) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mincore(taskSize - page, 2 * page) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mincore(a, UInt64(bitPattern: -4096)) }
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.mincore(0xFFFF_FFFF_FFFF_F000, page) }
    }
  }
}
