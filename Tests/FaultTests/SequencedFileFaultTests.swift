import Faultline
import FaultlineTestSupport
import Glibc
import Testing

/// Lespinasse's design on file mappings (his 2021 series): a fault on a cached page completes
/// without `mmap_lock`; a miss falls back (`spf_file_miss`) and the locked path reads the page
/// in; a shared write to a file system with `->page_mkwrite` falls back (`spf_vma_notsup`).
@Suite struct SequencedFileFaultTests {
  func counters(_ r: Rig) -> (spec: UInt64, miss: UInt64, notSup: UInt64) {
    let v = r.machine.vmstat
    return (v[.speculativePgfault], v[VMStatItem(abort: .fileMiss)], v[VMStatItem(abort: .vmaNotSup)])
  }

  @Test func aCachedPageFaultsWithoutTheLockAndAMissFallsBackToReadIt() throws {
    let dir = makeHostTempDir("seq-file")
    defer { _ = Glibc.system("rm -rf '\(dir)'") }
    let content = (0..<(4 * Int(page))).map { UInt8(truncatingIfNeeded: $0 &* 5 &+ 1) }
    #expect(writeHostFile(dir + "/f", content))
    var config = AddressSpaceConfig(profile: .reference)
    config.faultAroundPages = 1
    try withRig(config: config, design: .sequenced) { r in
      r.machine.mount(try HostFS(root: dir, machine: r.machine), at: "/mnt")
      let fd = try r.cpu.open("/mnt/f", flags: OpenFlags.readWrite)
      let inode = try r.mm.files.getRaw(fd).inode
      let a = try r.cpu.mmap(0, 4 * page, prot: Prot.read, flags: MapFlags.private, fd: fd)
      // Page 0 through the locked path: it allocates the page table (spf_pte_alloc first).
      #expect(try r.cpu.loadByte(a) == content[0])
      // Page 1 is not cached: the attempt misses and aborts, the locked path reads it in.
      var before = counters(r)
      let fills = inode.pageCache.fills
      #expect(try r.cpu.loadByte(a + page + 3) == content[Int(page) + 3])
      var after = counters(r)
      #expect(after.miss - before.miss == 1)
      #expect(after.spec == before.spec)
      #expect(inode.pageCache.fills - fills == 1)
      // Page 2, cached by a read(2)-like fill first: found under RCU, mapped without the lock.
      let p2 = try inode.pageCache.findOrRead(2, cache: nil)
      r.machine.memory.put(p2.page)
      before = counters(r)
      #expect(try r.cpu.loadByte(a + 2 * page + 9) == content[2 * Int(page) + 9])
      after = counters(r)
      #expect(after.spec - before.spec == 1)
      #expect(after.miss == before.miss)
      try r.cpu.munmap(a, 4 * page)
      try r.cpu.close(fd)
      try r.machine.umount("/mnt")
    }
  }

  @Test func aSharedWriteDirtiesTheCachedPageWithoutTheLockUnlessTheFileSystemHasPageMkwrite() throws {
    try withRig(design: .sequenced) { r in
      let fs = TmpFS(memory: r.machine.memory)
      r.machine.mount(fs, at: "/t")
      let fd = try r.cpu.open("/t/f", flags: OpenFlags.readWrite | OpenFlags.create)
      // Written first, so that every page is cached (a tmpfs hole would be a miss).
      let bytes = [UInt8](repeating: 7, count: 4 * Int(page))
      _ = try bytes.withUnsafeBytes { (p) throws(Errno) in try r.mm.files.pwrite(fd, p, at: 0) }
      let inode = try r.mm.files.getRaw(fd).inode
      _ = try inode.pageCache.writebackAll()
      #expect(inode.pageCache.dirtyCount == 0)
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeByte(a, 1)  // locked: the page table
      var before = counters(r)
      try r.cpu.storeByte(a + page, 2)  // none PTE: do_shared_fault, speculative
      try r.cpu.storeByte(a + 2 * page, 3)
      var after = counters(r)
      #expect(after.spec - before.spec == 2)
      #expect(inode.pageCache.isDirty(1) && inode.pageCache.isDirty(2))
      #expect(inode.pageCache.dirtyCount == 3)
      try r.cpu.munmap(a, 4 * page)

      // With a ->page_mkwrite, shared writes fall back: the call may sleep, and nothing would
      // pin the file across it.
      final class Calls: @unchecked Sendable { var n = 0 }
      let calls = Calls()
      fs.pageMkwriteHook = { _, _ throws(Errno) in calls.n += 1 }
      let b = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeByte(b, 4)  // locked: the page table
      before = counters(r)
      try r.cpu.storeByte(b + 3 * page, 5)
      after = counters(r)
      #expect(after.notSup - before.notSup == 1)
      #expect(after.spec == before.spec)
      #expect(calls.n == 2)
      #expect(inode.pageCache.isDirty(3))
      #expect(try r.cpu.loadByte(b + 3 * page) == 5)
      fs.pageMkwriteHook = nil
      try r.cpu.munmap(b, 4 * page)
      try r.cpu.close(fd)
      try r.machine.umount("/t")
    }
  }
}
