import Faultline
import FaultlineTestSupport
import Testing

// Engine rule 6 of issue 13, with the mincore vectors and maps lines a Linux 6.18 host
// gave: Tests/Probes/fork-anonvma-willneed.c ran there, its output is
// Tests/Probes/fork-anonvma-willneed.txt, and each test below repeats one part of it.
//
// Rule 6, mm/madvise.c madvise_willneed: private anonymous memory only has swapped-out pages read
// back (swapin_walk_ops), and so has shmem (shmem_mapping(file->f_mapping) → shmem_swapin_range):
// shared anonymous memory, memfd and tmpfs files alike. With no swap nothing happens, and a hole
// is never filled: mincore stays 0 for a page never written. Any other file goes through
// vfs_fadvise(POSIX_FADV_WILLNEED) → force_page_cache_readahead (WillNeedTests, on HostFS).


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
}
