import Faultline
import FaultlineTestSupport
import Glibc
import Testing

/// Writeback that took a dirty page into its batch, racing a hole punch of that page (found by
/// review): the old bytes must not land in the punched hole of the host file.
@Suite struct PunchHoleWritebackTests {
  @Test func writebackRacingAPunchLeavesTheHoleEmpty() throws {
    let dir = makeHostTempDir("punch-wb")
    defer { _ = Glibc.system("rm -rf '\(dir)'") }
    #expect(writeHostFile(dir + "/f", [UInt8](repeating: 0x41, count: 2 * 4096)))
    try withRig { r in
      r.machine.mount(try HostFS(root: dir, machine: r.machine), at: "/mnt")
      let fd = try r.cpu.open("/mnt/f", flags: OpenFlags.readWrite)
      let inode = try r.mm.files.getRaw(fd).inode
      let b = [UInt8](repeating: 0x42, count: 4096)
      _ = try b.withUnsafeBytes { (p) throws(Errno) in try r.mm.files.pwrite(fd, p, at: 0) }
      #expect(inode.pageCache.isDirty(0))
      // The punch runs after writeback took page 0 and before it writes.
      _ = try inode.pageCache.writeback(from: 0, to: .max, flush: { try? inode.punchHole(fromPage: 0, toPage: 1) })
      var host = [UInt8](repeating: 0xFF, count: 4096)
      let h = Glibc.open(dir + "/f", O_RDONLY)
      defer { Glibc.close(h) }
      #expect(host.withUnsafeMutableBytes { Glibc.pread(h, $0.baseAddress, 4096, 0) } == 4096)
      #expect(host.allSatisfy { $0 == 0 }, "the punched page holds \(host[0]) in the host file")
      try r.cpu.close(fd)
      try r.machine.umount("/mnt")
    }
  }
}

/// A zap that finds a dirty PTE marks the frame dirty but cannot tag it (the page-cache lock is
/// never taken under a PTL). When that happens between writeback's cleaning of the page and its
/// write-protect pass, the frame is left flagged and untagged; the next write fault must still
/// tag it, or the store it allows is never written back (found in review of the lockless
/// `markDirty`, whose fast path skips pages already flagged).
@Suite struct ZapDirtyFlagTests {
  @Test func aWriteFaultTagsAPageAZapLeftFlaggedButUntagged() throws {
    let dir = makeHostTempDir("zap-dirty")
    defer { _ = Glibc.system("rm -rf '\(dir)'") }
    #expect(writeHostFile(dir + "/f", [UInt8](repeating: 0x41, count: 4096)))
    try withRig { r in
      r.machine.mount(try HostFS(root: dir, machine: r.machine), at: "/mnt")
      let fd = try r.cpu.open("/mnt/f", flags: OpenFlags.readWrite)
      let inode = try r.mm.files.getRaw(fd).inode
      let a = try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeByte(a, 0x42)
      #expect(inode.pageCache.isDirty(0))
      // Writeback cleans page 0; before it write-protects, munmap zaps the dirty PTE.
      _ = try inode.pageCache.writeback(from: 0, to: .max, flush: { try? r.cpu.munmap(a, page) })
      #expect(!inode.pageCache.isDirty(0))
      let b = try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeByte(b + 1, 0x43)
      #expect(inode.pageCache.isDirty(0), "the write fault left the page untagged")
      try r.cpu.msync(b, page, flags: MsyncFlags.sync)
      var host = [UInt8](repeating: 0, count: 2)
      let h = Glibc.open(dir + "/f", O_RDONLY)
      defer { Glibc.close(h) }
      #expect(host.withUnsafeMutableBytes { Glibc.pread(h, $0.baseAddress, 2, 0) } == 2)
      #expect(host == [0x42, 0x43])
      try r.cpu.munmap(b, page)
      try r.cpu.close(fd)
      try r.machine.umount("/mnt")
    }
  }
}
