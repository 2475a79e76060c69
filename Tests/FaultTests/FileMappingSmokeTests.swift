import Faultline
import FaultlineTestSupport
import Glibc
import Testing

@Suite struct FileMappingSmokeTests {
  @Test func sharedWriteMsyncReachesTheHostFile() throws {
    let dir = makeHostTempDir("smoke")
    defer { _ = system("rm -rf '\(dir)'") }
    try withRig { r in
      let fs = try HostFS(root: dir, machine: r.machine)
      r.machine.mount(fs, at: "/mnt")
      let fd = try r.cpu.open("/mnt/data", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(fd, 3 * page)
      let a = try r.cpu.mmap(0, 3 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.storeBytes(a + page + 5, Array("hello".utf8))
      try r.cpu.msync(a, 3 * page, flags: MsyncFlags.sync)
      let h = Glibc.open(dir + "/data", O_RDONLY)
      var buf = [UInt8](repeating: 0, count: 5)
      #expect(pread(h, &buf, 5, off_t(page + 5)) == 5)
      Glibc.close(h)
      #expect(String(decoding: buf, as: UTF8.self) == "hello")
      // Beyond EOF: SIGBUS.
      try r.cpu.munmap(a, 3 * page)
      let b = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.private, fd: fd)
      #expect(try r.cpu.loadByte(b + page + 5) == UInt8(ascii: "h"))
      #expect(throws: Signal.sigbus(address: b + 3 * page)) { try r.cpu.loadByte(b + 3 * page) }
      try r.cpu.storeByte(b + page + 5, UInt8(ascii: "j"))
      #expect(try r.cpu.loadByte(b + page + 5) == UInt8(ascii: "j"))
      try r.cpu.munmap(b, 4 * page)
      try r.cpu.close(fd)
      try r.machine.umount("/mnt")
    }
  }
}

@Suite struct PageMkwriteTests {
  /// `->page_mkwrite` runs once per page made writable in a shared mapping (not for reads, not
  /// for private mappings), and a refusal is SIGBUS with nothing written.
  @Test func pageMkwriteRunsOnSharedWriteFaultsAndItsRefusalIsSigbus() throws {
    final class Calls: @unchecked Sendable { var indices: [UInt64] = [] }
    let calls = Calls()
    try withRig { r in
      let fs = TmpFS(memory: r.machine.memory)
      fs.pageMkwriteHook = { _, index throws(Errno) in
        calls.indices.append(index)
        if index == 2 { throw Errno.noSpace }
      }
      r.machine.mount(fs, at: "/t")
      let fd = try r.cpu.open("/t/f", flags: OpenFlags.readWrite | OpenFlags.create)
      try r.cpu.ftruncate(fd, 4 * page)
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      #expect(try r.cpu.loadByte(a) == 0)
      #expect(calls.indices.isEmpty)
      try r.cpu.storeByte(a, 1)  // read-only PTE -> wp_page_shared
      try r.cpu.storeByte(a + page, 1)  // none PTE -> do_shared_fault
      try r.cpu.storeByte(a + 5, 2)  // already writable: no fault
      #expect(calls.indices == [0, 1])
      #expect(throws: Signal.sigbus(address: a + 2 * page)) { try r.cpu.storeByte(a + 2 * page, 1) }
      #expect(try r.cpu.loadByte(a + 2 * page) == 0)
      let p = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.private, fd: fd)
      try r.cpu.storeByte(p + 3 * page, 9)
      #expect(calls.indices == [0, 1, 2])
      try r.cpu.munmap(p, 4 * page)
      try r.cpu.munmap(a, 4 * page)
      try r.cpu.close(fd)
      try r.machine.umount("/t")
    }
  }
}
