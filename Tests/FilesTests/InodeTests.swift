import Faultline
import FaultlineTestSupport
import Testing

// Inode timestamps: Linux's relatime rule.

@Suite struct InodeTests {
  @Test func relatimeUpdatesAtimeOncePerModification() throws {
    try withMemory { memory in
      let fs = TmpFS(memory: memory)
      try withExtendedLifetime(fs) {
        let inode = try fs.create("/r")
        let now = inode.mtimeNanoseconds
        // atime <= mtime: the file changed since it was read.
        inode.atimeNanoseconds = now - 1_000
        inode.ctimeNanoseconds = now - 2_000
        inode.mtimeNanoseconds = now
        #expect(inode.touchAtime())
        #expect(inode.atimeNanoseconds > now)
        // Not again until mtime moves.
        #expect(!inode.touchAtime())
        #expect(!inode.touchAtime())
        inode.touchMtime()
        #expect(inode.mtimeNanoseconds >= inode.atimeNanoseconds)
        #expect(inode.touchAtime())
        #expect(!inode.touchAtime())

        // An atime older than 24 h is refreshed even with no modification since.
        inode.mtimeNanoseconds = 0
        inode.ctimeNanoseconds = 0
        inode.atimeNanoseconds = Inode.wallClockNanoseconds() - Inode.relatimeInterval - 1_000_000_000
        #expect(inode.touchAtime())
        #expect(!inode.touchAtime())
      }
    }
  }

  @Test func readsCountAtimeUpdatesUnderRelatime() throws {
    try withMemory { memory in
      let fs = TmpFS(memory: memory)
      let ns = Namespace()
      ns.mount(fs, at: "/")
      let table = FileTable(namespace: ns)
      let fd = try table.open("/f", flags: OpenFlags.create | OpenFlags.readWrite)
      _ = try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try table.pwrite(fd, $0, at: 0) }
      let inode = try table.get(fd).inode
      var b = [UInt8](repeating: 0, count: 10)
      let before = inode.atimeNanoseconds
      _ = try b.withUnsafeMutableBytes { try table.pread(fd, into: $0, at: 0) }
      let after = inode.atimeNanoseconds
      #expect(after > before)
      _ = try b.withUnsafeMutableBytes { try table.pread(fd, into: $0, at: 0) }
      #expect(inode.atimeNanoseconds == after)
      try table.close(fd)
    }
  }
}
