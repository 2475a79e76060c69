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
