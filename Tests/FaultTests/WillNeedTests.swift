import Faultline
import FaultlineTestSupport
import Glibc
import Testing

/// `MADV_WILLNEED` on a file mapping reads the pages into the page cache (the host kernel shows
/// them in `mincore` at once); the pages then fault in without a major fault.
@Suite struct WillNeedTests {
  @Test func willNeedReadsAFileMappingIntoThePageCache() throws {
    let dir = makeHostTempDir("willneed")
    defer { _ = Glibc.system("rm -rf '\(dir)'") }
    #expect(writeHostFile(dir + "/f", [UInt8](repeating: 7, count: 2 * 4096 + 100)))
    try withRig { r in
      r.machine.mount(try HostFS(root: dir, machine: r.machine), at: "/mnt")
      let fd = try r.cpu.open("/mnt/f", flags: OpenFlags.readOnly)
      let a = try r.cpu.mmap(0, 4 * page, prot: Prot.read, flags: MapFlags.shared, fd: fd)
      #expect(try r.cpu.mincore(a, 4 * page) == [0, 0, 0, 0])
      try r.cpu.madvise(a, 4 * page, advice: Advice.willNeed)
      // The three pages below EOF are cached; the fourth lies past it.
      #expect(try r.cpu.mincore(a, 4 * page) == [1, 1, 1, 0])
      let major = r.machine.vmstat[.pgmajfault]
      #expect(try r.cpu.loadByte(a + 2 * page + 99) == 7)
      #expect(r.machine.vmstat[.pgmajfault] == major)
      try r.cpu.munmap(a, 4 * page)
      try r.cpu.close(fd)
      try r.machine.umount("/mnt")  // the page cache goes with the last user of the mount
    }
  }
}
